//! Bad client input: every case gets a clear JSON error with the right status for its route
//! family, nothing reaches the upstream, and the gateway keeps serving.

use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

async fn gateway(upstream: &MockUpstream) -> Gateway {
    let base = format!("{}/v1", upstream.url());
    let ep = |name: &str, t: &str| {
        json!({"name": name, "endpoint_type": t,
               "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": "sk-test", "openai_api_base": base}}})
    };
    Gateway::start(&yaml(&json!({"endpoints": [
        ep("chat", "llm/v1/chat"), ep("completions", "llm/v1/completions"), ep("embeddings", "llm/v1/embeddings")
    ]})))
    .await
}

/// (path, raw body, expected status, a check on the JSON answer)
type Case = (&'static str, Vec<u8>, u16, fn(&Value) -> bool);

#[tokio::test]
async fn bad_bodies_get_clear_errors_and_the_gateway_keeps_serving() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}),
    );
    let gw = gateway(&upstream).await;

    let cases: Vec<Case> = vec![
        // Native routes: FastAPI's 422 list.
        ("/endpoints/chat/invocations", b"{not json".to_vec(), 422, |v| v["detail"][0]["type"] == "json_invalid"),
        ("/endpoints/chat/invocations", b"".to_vec(), 422, |v| v["detail"][0]["type"] == "json_invalid"),
        ("/endpoints/chat/invocations", b"[1,2,3]".to_vec(), 422, |v| {
            v["detail"][0]["type"] == "model_attributes_type"
        }),
        ("/endpoints/chat/invocations", b"\xff\xfe\x00garbage".to_vec(), 422, |v| {
            v["detail"][0]["type"] == "json_invalid"
        }),
        ("/endpoints/chat/invocations", br#"{"messages": "hi"}"#.to_vec(), 422, |v| {
            v["detail"][0]["type"] == "list_type"
        }),
        ("/endpoints/chat/invocations", br#"{"messages": [{"content": "x"}]}"#.to_vec(), 422, |v| {
            v["detail"][0]["loc"] == json!(["body", "messages", 0, "role"])
        }),
        (
            "/endpoints/chat/invocations",
            br#"{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#.to_vec(),
            422,
            |v| v["detail"][0]["type"] == "float_parsing",
        ),
        (
            "/endpoints/chat/invocations",
            br#"{"messages": [{"role": "user", "content": "x"}], "n": 0}"#.to_vec(),
            422,
            |v| v["detail"][0]["type"] == "greater_than_equal",
        ),
        (
            "/endpoints/chat/invocations",
            br#"{"messages": [{"role": "user", "content": "x"}], "stream": "maybe"}"#.to_vec(),
            422,
            |v| v["detail"][0]["type"] == "bool_parsing",
        ),
        ("/endpoints/completions/invocations", br#"{"prompt": ["a", "b"]}"#.to_vec(), 422, |v| {
            v["detail"][0]["type"] == "string_type"
        }),
        ("/endpoints/embeddings/invocations", br#"{"input": {"a": 1}}"#.to_vec(), 422, |v| {
            v["detail"][0]["loc"] == json!(["body", "input"])
        }),
        // Wrong endpoint type for the body.
        ("/endpoints/embeddings/invocations", br#"{"prompt": "x"}"#.to_vec(), 422, |v| {
            v["detail"][0]["type"] == "missing"
        }),
        // model is not allowed on native routes.
        (
            "/endpoints/chat/invocations",
            br#"{"messages": [{"role": "user", "content": "x"}], "model": "gpt-4"}"#.to_vec(),
            422,
            |v| v["detail"].as_str().is_some_and(|d| d.contains("'model' is not permitted")),
        ),
        // Unknown endpoint.
        ("/endpoints/missing/invocations", br#"{"prompt": "x"}"#.to_vec(), 404, |v| {
            v == &json!({"detail": "Not Found"})
        }),
        // OpenAI routes: OpenAI-shaped 400s.
        ("/v1/chat/completions", b"{not json".to_vec(), 400, |v| v["error"]["type"] == "invalid_request_error"),
        ("/v1/chat/completions", br#"{"messages": [{"role": "user", "content": "x"}]}"#.to_vec(), 400, |v| {
            v["error"]["param"] == "model"
        }),
        ("/v1/chat/completions", br#"{"model": 5, "messages": []}"#.to_vec(), 400, |v| v["error"]["param"] == "model"),
        ("/v1/chat/completions", br#"{"model": "chat", "messages": []}"#.to_vec(), 400, |v| {
            v["error"]["param"] == "messages" && v["error"]["message"].as_str().unwrap().contains("at least 1 item")
        }),
        (
            "/v1/chat/completions",
            br#"{"model": "chat", "messages": [{"role": "user", "content": "x"}], "top_p": 3}"#.to_vec(),
            400,
            |v| v["error"]["param"] == "top_p",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "embeddings", "messages": [{"role": "user", "content": "x"}]}"#.to_vec(),
            400,
            |v| v["error"]["message"] == "Endpoint 'embeddings' is not a chat endpoint.",
        ),
        (
            "/v1/chat/completions",
            br#"{"model": "nope", "messages": [{"role": "user", "content": "x"}]}"#.to_vec(),
            404,
            |v| v["error"]["code"] == "model_not_found",
        ),
        ("/v1/embeddings", br#"{"model": "embeddings"}"#.to_vec(), 400, |v| v["error"]["param"] == "input"),
    ];
    for (path, body, status, check) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (got, ct, answer) = gw.post_raw(path, body).await;
        assert_eq!(got, status, "{path} {shown}: {answer}");
        assert!(ct.starts_with("application/json"), "{path} {shown}: content type {ct}");
        assert!(check(&answer), "{path} {shown}: unexpected answer {answer}");
        gw.assert_alive().await;
    }
    assert!(upstream.requests().is_empty(), "no bad request may reach the upstream");

    // And a good request still works afterwards.
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "ok");
}

#[tokio::test]
async fn keep_alive_survives_errors() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    // One client, one pooled connection: errors must not poison it.
    for _ in 0..3 {
        let (status, _) = gw.post("/endpoints/chat/invocations", &json!({"messages": []})).await;
        assert_eq!(status, 422);
        let (status, _) = gw.get("/api/2.0/endpoints/nope").await;
        assert_eq!(status, 404);
    }
    gw.assert_alive().await;
}
