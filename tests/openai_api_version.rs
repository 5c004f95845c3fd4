//! `openai_api_version` on `openai_api_type: openai` (spec §9.1: `?api-version=<v>` added to
//! the base URL), also when the base URL already carries a query string of its own (a proxy's
//! routing parameter): the upstream sees the path before the query and both parameters, on
//! every endpoint type.

#[path = "it/common/mod.rs"]
mod common;

use common::upstream::{MockUpstream, Reply};
use common::{Gateway, yaml};
use serde_json::json;

#[tokio::test]
async fn api_version_joins_an_existing_query_string() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|r| common::upstream::Reply::Json(200, common::upstream::openai_answer(&r.target)));
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
    ] {
        let (status, answer) = gw.post(path, &body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        let sent = upstream.last();
        assert_eq!(sent.target, want, "{path}");
        assert_eq!(sent.header("authorization"), Some("Bearer sk-v"));
        assert_eq!(sent.json()["model"], "gpt-4o-mini", "type openai keeps `model` in the body");
    }
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
