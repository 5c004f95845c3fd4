//! Fixture replay (see tests/common/replay.rs) for the smaller providers: mistral, togetherai,
//! cohere, mosaicml, huggingface-text-generation-inference, ai21labs and mlflow-model-serving.

#[path = "it/common/mod.rs"]
mod common;

use common::replay::{Case, replay};
use common::upstream::{Recorded, Reply};
use serde_json::{Value, json};

const MISTRAL: (&str, &str) = ("mistral_api_base", "https://api.mistral.ai/v1");
const TOGETHER: (&str, &str) = ("togetherai_api_base", "https://api.together.xyz/v1");
const COHERE: (&str, &str) = ("cohere_api_base", "https://api.cohere.ai/v1");
const MOSAIC: (&str, &str) = ("mosaicml_api_base", "https://models.hosted-on.mosaicml.hosting");
const AI21: (&str, &str) = ("ai21labs_api_base", "https://api.ai21.com/studio/v1");
const HF: (&str, &str) = ("hf_server_url", "https://tgi.example.com");
const MLFLOW_SERVING: (&str, &str) = ("model_server_url", "http://127.0.0.1:6000");

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

/// Product fix 8: TogetherAI embeddings carry the configured `model` (MLflow omits it, and
/// TogetherAI refuses a request without it).
fn together_embeddings_model(p: &mut Value) {
    p["model"] = json!("togethercomputer/m2-bert-80M-8k-retrieval");
}

/// MLflow rejects the request before calling TogetherAI.
fn no_upstream_call(requests: &[Recorded]) {
    assert!(requests.is_empty(), "no upstream call expected, got {}", requests.len());
}

/// Cohere streams newline-delimited JSON, not SSE: reply with the fixture's lines as they are
/// (split at random points for the split runs).
fn ndjson_reply(fx: &Value, split: Option<u64>) -> Reply {
    let lines: Vec<&str> = fx["upstream_response"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let bytes: Vec<u8> = lines.concat().into_bytes();
    let pieces = match split {
        None => lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
        Some(seed) => common::split_points(&bytes, seed, 12),
    };
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/stream+json".into())],
        pieces: pieces.into_iter().map(|p| (p, std::time::Duration::from_millis(1))).collect(),
        chunked: true,
    }
}

replay_tests! {
    mistral_chat => Case::new("mistral-chat", MISTRAL);
    mistral_chat_stream => Case::new("mistral-chat-stream", MISTRAL);
    mistral_chat_stream_v1 => Case { via_v1: true, ..Case::new("mistral-chat-stream", MISTRAL) };
    mistral_completions => Case::new("mistral-completions", MISTRAL);
    mistral_embeddings => Case::new("mistral-embeddings", MISTRAL);

    togetherai_chat => Case::new("togetherai-chat", TOGETHER);
    togetherai_chat_stream => Case::new("togetherai-chat-stream", TOGETHER);
    togetherai_completions => Case::new("togetherai-completions", TOGETHER);
    togetherai_completions_stream => Case::new("togetherai-completions-stream", TOGETHER);
    togetherai_chat_stream_v1 => Case { via_v1: true, ..Case::new("togetherai-chat-stream", TOGETHER) };
    togetherai_completions_stream_v1 => Case { via_v1: true, ..Case::new("togetherai-completions-stream", TOGETHER) };
    togetherai_completions_missing_max_tokens => Case {
        check_upstream: no_upstream_call,
        ..Case::new("togetherai-completions-missing-max-tokens", TOGETHER)
    };
    togetherai_embeddings => Case {
        expect_payload: together_embeddings_model,
        ..Case::new("togetherai-embeddings", TOGETHER)
    };

    cohere_chat => Case::new("cohere-chat", COHERE);
    cohere_chat_stream => Case { reply: Some(ndjson_reply), ..Case::new("cohere-chat-stream", COHERE) };
    cohere_completions => Case::new("cohere-completions", COHERE);
    cohere_completions_stream => Case { reply: Some(ndjson_reply), ..Case::new("cohere-completions-stream", COHERE) };
    cohere_chat_stream_v1 => Case { reply: Some(ndjson_reply), via_v1: true, ..Case::new("cohere-chat-stream", COHERE) };
    cohere_completions_stream_v1 => Case { reply: Some(ndjson_reply), via_v1: true, ..Case::new("cohere-completions-stream", COHERE) };
    cohere_embeddings => Case::new("cohere-embeddings", COHERE);

    mosaicml_chat => Case::new("mosaicml-chat", MOSAIC);
    mosaicml_completions => Case::new("mosaicml-completions", MOSAIC);

    huggingface_completions => Case::new("huggingface-completions", HF);

    ai21labs_completions => Case::new("ai21labs-completions", AI21);

    mlflow_model_serving_chat => Case::new("mlflow-model-serving-chat", MLFLOW_SERVING);
    mlflow_model_serving_completions => Case::new("mlflow-model-serving-completions", MLFLOW_SERVING);
    mlflow_model_serving_embeddings => Case::new("mlflow-model-serving-embeddings", ("model_server_url", "http://127.0.0.1:5002"));
}
