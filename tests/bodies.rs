//! Request bodies of any size up to `max_request_body` work on every route, including `/v1/*`
//! where the endpoint comes from the body (Pingora's 64 KiB pre-read buffer is not enough);
//! larger ones get a 413 JSON and the gateway keeps serving.

mod common;

use common::upstream::MockUpstream;
use common::{Gateway, yaml};
use serde_json::{Value, json};

const OK: fn() -> Value = || {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
};

async fn gateway(upstream: &MockUpstream, extra: Value) -> Gateway {
    let mut config = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini",
                  "config": {"openai_api_key": "sk-test", "openai_api_base": format!("{}/v1", upstream.url())}}}]});
    if !extra.is_null() {
        config["aigw"] = extra;
    }
    Gateway::start(&yaml(&config)).await
}

/// A chat request whose body is about `size` bytes, with a recognisable content.
fn big_request(size: usize, model: Option<&str>) -> (Value, String) {
    let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut req = json!({"messages": [{"role": "user", "content": text.clone()}]});
    if let Some(m) = model {
        req["model"] = json!(m);
    }
    (req, text)
}

#[tokio::test]
async fn one_and_eight_mib_bodies_reach_the_upstream_whole() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, Value::Null).await;
    for size in [1 << 20, 8 << 20] {
        let (req, text) = big_request(size, Some("chat"));
        let (status, body) = gw.post("/v1/chat/completions", &req).await;
        assert_eq!(status, 200, "{body}");
        let got = upstream.last().json();
        assert_eq!(got["messages"][0]["content"].as_str().unwrap().len(), text.len());
        assert!(got["messages"][0]["content"] == json!(text), "upstream received the content whole");
        assert_eq!(got["model"], "gpt-4o-mini");
        assert_eq!(upstream.last().header("content-length").unwrap(), upstream.last().body.len().to_string());
    }
    // Native route too.
    let (req, text) = big_request(2 << 20, None);
    let (status, _) = gw.post("/endpoints/chat/invocations", &req).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().json()["messages"][0]["content"], json!(text));
}

#[tokio::test]
async fn oversize_body_is_413_and_the_next_request_works() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, Value::Null).await;
    let (req, _) = big_request(17 << 20, Some("chat"));
    let (status, ct, body) = gw.post_raw("/v1/chat/completions", serde_json::to_vec(&req).unwrap()).await;
    assert_eq!(status, 413, "{body}");
    assert!(ct.starts_with("application/json"));
    assert!(body["error"]["message"].as_str().unwrap().contains("too large"), "{body}");
    assert!(upstream.requests().is_empty());

    // Native shape.
    let (req, _) = big_request(17 << 20, None);
    let (status, _, body) = gw.post_raw("/endpoints/chat/invocations", serde_json::to_vec(&req).unwrap()).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("too large"));

    // A fresh connection works.
    let fresh = common::client();
    let r = fresh
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    gw.assert_alive().await;
}

#[tokio::test]
async fn chunked_upload_over_the_configured_limit_is_413() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, json!({"max_request_body": "64KiB"})).await;
    // No Content-Length: the limit is found while reading.
    let (req, _) = big_request(100 << 10, Some("chat"));
    let bytes = serde_json::to_vec(&req).unwrap();
    let stream =
        futures_util::stream::iter(bytes.chunks(8192).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Under the limit is fine.
    let (req, _) = big_request(60 << 10, Some("chat"));
    let (status, _) = gw.post("/v1/chat/completions", &req).await;
    assert_eq!(status, 200);
    gw.assert_alive().await;
}
