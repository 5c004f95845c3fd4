//! `openai` (types openai, azure, azuread; and the `azure` alias): MLflow's fixtures replayed
//! (see tests/it/common/replay.rs), and `openai_api_version` on `openai_api_type: openai`
//! (docs/mlflow-compat.md#provider-translations: `?api-version=<v>` added to the base URL), also when the base URL already carries
//! a query string of its own (a proxy's routing parameter): the upstream sees the path before
//! the query and both parameters, on every endpoint type, blank values of the base's query kept
//! (MLflow 3.18, docs/mlflow-compat.md#mlflow-318).

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply, openai_answer};
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const OPENAI: (&str, &str) = ("openai_api_base", "https://api.openai.com/v1");

/// docs/mlflow-compat.md#fix-5: model.config parameters are defaults, sent when the request leaves them unset.
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
    // then `data: [DONE]` (docs/mlflow-compat.md#fix-1).
    openai_chat_stream_v1 => Case { via_v1: true, ..Case::new("openai-chat-stream", OPENAI) };
    openai_completions_stream_v1 => Case { via_v1: true, ..Case::new("openai-completions-stream", OPENAI) };
    openai_embeddings => Case::new("openai-embeddings", OPENAI);
    openai_compat_v1_chat => Case::new("openai-compat-v1-chat", OPENAI);
    openai_upstream_error => Case::new("openai-upstream-error", OPENAI);
    openai_model_params_are_defaults => Case { expect_payload: config_defaults_sent, ..Case::new("openai-model-params-in-config-ignored", OPENAI) };
    azure_chat => Case::new("azure-chat", OPENAI);
    azure_completions => Case::new("azure-completions", OPENAI);
    azure_embeddings => Case::new("azure-embeddings", OPENAI);
}

#[tokio::test]
async fn api_version_joins_an_existing_query_string() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|r| Reply::Json(200, openai_answer(&r.target)));
    let ep = |name: &str, ty: &str, base: String, version: Option<&str>| {
        let mut config = json!({"openai_api_key": "sk-v", "openai_api_base": base});
        if let Some(v) = version {
            config["openai_api_version"] = json!(v);
        }
        json!({"name": name, "endpoint_type": ty, "model": {"provider": "openai", "name": "gpt-4o-mini", "config": config}})
    };
    let u = upstream.url();
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        ep("chat", "llm/v1/chat", format!("{u}/proxy/v1?foo=bar"), Some("2024-10-21")),
        ep("cmp", "llm/v1/completions", format!("{u}/proxy/v1?foo=bar&team=a"), Some("2024-10-21")),
        ep("emb", "llm/v1/embeddings", format!("{u}/proxy/v1?foo=bar"), Some("2024-10-21")),
        ep("plain", "llm/v1/chat", format!("{u}/v1"), Some("2024-10-21")),
        ep("query-only", "llm/v1/chat", format!("{u}/v1?foo=bar"), None),
        // MLflow 3.18 keeps blank query values of a base (3.17 dropped `flag=`).
        ep("blank", "llm/v1/chat", format!("{u}/proxy/v1?flag=&x=1"), Some("2024-10-21")),
        json!({"name": "azure-blank", "endpoint_type": "llm/v1/chat", "model": {"provider": "openai", "name": "gpt-4o-mini",
               "config": {"openai_api_key": "sk-v", "openai_api_type": "azure", "openai_api_base": format!("{u}/?flag="),
                          "openai_deployment_name": "dep", "openai_api_version": "2024-10-21"}}}),
    ]})))
    .await;

    let chat = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (path, body, want) in [
        ("/endpoints/chat/invocations", chat.clone(), "/proxy/v1/chat/completions?foo=bar&api-version=2024-10-21"),
        (
            "/endpoints/cmp/invocations",
            json!({"prompt": "hi"}),
            "/proxy/v1/completions?foo=bar&team=a&api-version=2024-10-21",
        ),
        ("/endpoints/emb/invocations", json!({"input": "hi"}), "/proxy/v1/embeddings?foo=bar&api-version=2024-10-21"),
        ("/endpoints/plain/invocations", chat.clone(), "/v1/chat/completions?api-version=2024-10-21"),
        ("/endpoints/query-only/invocations", chat.clone(), "/v1/chat/completions?foo=bar"),
        ("/endpoints/blank/invocations", chat.clone(), "/proxy/v1/chat/completions?flag=&x=1&api-version=2024-10-21"),
    ] {
        let (status, answer) = gw.post(path, &body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        let sent = upstream.last();
        assert_eq!(sent.target, want, "{path}");
        assert_eq!(sent.header("authorization"), Some("Bearer sk-v"));
        assert_eq!(sent.json()["model"], "gpt-4o-mini", "type openai keeps `model` in the body");
    }
    let (status, answer) = gw.post("/endpoints/azure-blank/invocations", &chat).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(upstream.last().target, "/openai/deployments/dep/chat/completions?flag=&api-version=2024-10-21");
    // The same through /v1 and streamed.
    upstream.push(Reply::sse(
        vec![
            br#"data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#.to_vec(),
            b"\n\ndata: [DONE]\n\n".to_vec(),
        ],
        std::time::Duration::ZERO,
    ));
    let (status, _, text) = gw
        .post_text(
            "/v1/chat/completions",
            &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert_eq!(upstream.last().target, "/proxy/v1/chat/completions?foo=bar&api-version=2024-10-21");
}
