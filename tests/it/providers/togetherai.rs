//! TogetherAI through the real gateway: MLflow's fixtures replayed (see tests/it/common/replay.rs),
//! the configured model always wins (docs/mlflow-compat.md#fix-8), the logprobs and max_tokens rules answer 422
//! before any upstream call (streams too), streams end with `[DONE]`, and TogetherAI's error
//! bodies are relayed.

use std::time::Duration;

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

const TOGETHER: (&str, &str) = ("togetherai_api_base", "https://api.together.xyz/v1");

/// docs/mlflow-compat.md#fix-8: TogetherAI embeddings carry the configured `model` (MLflow omits it, and
/// TogetherAI refuses a request without it).
fn together_embeddings_model(p: &mut Value) {
    p["model"] = json!("togethercomputer/m2-bert-80M-8k-retrieval");
}

/// MLflow rejects the request before calling TogetherAI.
fn no_upstream_call(requests: &[Recorded]) {
    assert!(requests.is_empty(), "no upstream call expected, got {}", requests.len());
}

replay_tests! {
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
}

// ---- the gateway ----

const MODEL: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";

fn config(base: &str) -> String {
    let ep = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "togetherai", "name": MODEL,
                         "config": {"togetherai_api_key": "key", "togetherai_api_base": base}}})
    };
    yaml(&json!({"endpoints": [ep("chat", "llm/v1/chat"), ep("completions", "llm/v1/completions")]}))
}

#[tokio::test]
async fn v1_stream_and_configured_model() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    upstream.push(Reply::sse(
        vec![
            b"data: {\"id\":\"t\",\"created\":5,\"choices\":[{\"index\":0,\"text\":\"Par\",\"finish_reason\":null,\"delta\":{\"content\":\"Par\"}}],\"usage\":null}\n\n".to_vec(),
            b"data: {\"id\":\"t\",\"created\":5,\"choices\":[{\"index\":0,\"text\":\"is\",\"finish_reason\":\"eos\",\"delta\":{\"content\":\"is\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2,\"total_tokens\":6}}\n\n".to_vec(),
            b"data: [DONE]\n\n".to_vec(),
        ],
        Duration::from_millis(1),
    ));
    let (status, _, text) = gw
        .post_text(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [{"role": "user", "content": "Capital?"}], "stream": true, "top_logprobs": 2}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(content, "Paris");
    assert_eq!(chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).count(), 1);
    assert!(chunks.iter().all(|c| c["model"] == MODEL));
    assert_eq!(chunks[1]["usage"]["total_tokens"], json!(6));

    let sent = upstream.last().json();
    // The `/v1` body's `model` names the endpoint; TogetherAI gets the configured model.
    assert_eq!(sent["model"], json!(MODEL));
    assert_eq!(sent["logprobs"], json!(2));
    assert!(sent.get("top_logprobs").is_none() && sent.get("stream_options").is_none());
    gw.assert_alive().await;
}

#[tokio::test]
async fn rules_answer_422_before_any_call() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let missing = "max_tokens is not present in payload.It is a required parameter for TogetherAI completions.";
    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "x", "stream": true})).await;
    assert_eq!((status, body), (422, json!({"detail": missing})));
    let (status, body) = gw.post("/v1/completions", &json!({"model": "completions", "prompt": "x"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["message"], json!(missing));

    let (status, body) = gw
        .post(
            "/endpoints/chat/invocations",
            &json!({"messages": [{"role": "user", "content": "x"}], "logprobs": "many"}),
        )
        .await;
    assert_eq!((status, body), (422, json!({"detail": "Wrong type for logprobs. It should be an 32bit integer."})));
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn togetherai_errors_are_relayed() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    upstream.push(Reply::Json(
        400,
        json!({"id": "8e", "error": {"message": "Input validation error: `max_tokens` must be at most 4096",
               "type": "invalid_request_error", "param": "max_tokens", "code": null}}),
    ));
    let (status, body) =
        gw.post("/endpoints/completions/invocations", &json!({"prompt": "x", "max_tokens": 100000})).await;
    assert_eq!((status, body), (400, json!({"detail": "Input validation error: `max_tokens` must be at most 4096"})));
    upstream.push(Reply::Json(
        401,
        json!({"error": {"message": "Invalid API key provided.", "type": "invalid_request_error"}}),
    ));
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], json!("Invalid API key provided."));
}
