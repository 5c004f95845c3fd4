//! Fixture replay (see tests/common/replay.rs) for `openai` (types openai, azure, azuread) and
//! the OpenAI-compatible family.

#[path = "it/common/mod.rs"]
mod common;

use common::replay::{Case, replay};
use serde_json::{Value, json};

const OPENAI: (&str, &str) = ("openai_api_base", "https://api.openai.com/v1");

fn compat(provider: &str) -> (&'static str, &'static str) {
    match provider {
        "groq" => ("api_base", "https://api.groq.com/openai/v1"),
        "deepseek" => ("api_base", "https://api.deepseek.com/v1"),
        "xai" => ("api_base", "https://api.x.ai/v1"),
        "openrouter" => ("api_base", "https://openrouter.ai/api/v1"),
        _ => ("api_base", "http://localhost:11434/v1"),
    }
}

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

/// Product fix 5: model.config parameters are defaults, sent when the request leaves them unset.
fn config_defaults_sent(p: &mut Value) {
    for (k, v) in [("temperature", json!(0.7)), ("max_tokens", json!(1000)), ("top_p", json!(0.9))] {
        p[k] = v;
    }
}

replay_tests! {
    openai_chat => Case::new("openai-chat", OPENAI);
    openai_chat_tools => Case::new("openai-chat-tools", OPENAI);
    openai_chat_stream => Case::new("openai-chat-stream", OPENAI);
    openai_completions => Case::new("openai-completions", OPENAI);
    openai_completions_stream => Case::new("openai-completions-stream", OPENAI);
    // The same streams through the OpenAI-compatible routes: same upstream call and events,
    // then `data: [DONE]` (product fix 1).
    openai_chat_stream_v1 => Case { via_v1: true, ..Case::new("openai-chat-stream", OPENAI) };
    openai_completions_stream_v1 => Case { via_v1: true, ..Case::new("openai-completions-stream", OPENAI) };
    openai_embeddings => Case::new("openai-embeddings", OPENAI);
    openai_compat_v1_chat => Case::new("openai-compat-v1-chat", OPENAI);
    openai_upstream_error => Case::new("openai-upstream-error", OPENAI);
    openai_model_params_are_defaults => Case { expect_payload: config_defaults_sent, ..Case::new("openai-model-params-in-config-ignored", OPENAI) };
    azure_chat => Case::new("azure-chat", OPENAI);
    azure_completions => Case::new("azure-completions", OPENAI);
    azure_embeddings => Case::new("azure-embeddings", OPENAI);
    groq_chat => Case::new("groq-chat", compat("groq"));
    deepseek_chat => Case::new("deepseek-chat", compat("deepseek"));
    xai_chat => Case::new("xai-chat", compat("xai"));
    openrouter_chat => Case::new("openrouter-chat", compat("openrouter"));
    ollama_chat => Case::new("ollama-chat", compat("ollama"));
}
