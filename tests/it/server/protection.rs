//! Protection of the gateway process (`src/server/mod.rs`, `src/server/body.rs`): the protective
//! limits (`aigw.max_request_body` 413, `aigw.limits.max_header_bytes` 431,
//! `aigw.max_response_body` 502, `body_read_timeout_s` 408, `max_inflight` 503), each counted,
//! and contained panics (500, the process keeps serving, the panic's message not logged).

use std::io::{Read, Write};
use std::time::Duration;

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn protective_limits() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(4000)}, "finish_reason": "stop"}]}));
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        {"name": "slow", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"latency_ms": 1500}}},
        {"name": "big", "endpoint_type": "llm/v1/chat", "model": {"provider": "openai", "name": "m",
            "config": {"openai_api_key": "sk-x-0000000000", "openai_api_base": upstream.url()}}}],
        "aigw": {"max_request_body": "64KiB", "max_response_body": "1KiB",
                 "limits": {"max_header_bytes": "8KiB", "max_inflight": 2, "body_read_timeout_s": 1}}})))
    .await;
    // Body too large: 413 JSON.
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(100_000)}]});
    let (status, body) = gw.post("/endpoints/slow/invocations", &big).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("exceeds the limit of 65536 bytes"), "{body}");
    // Header too large: 431 JSON.
    let r = gw
        .client
        .post(gw.url("/endpoints/slow/invocations"))
        .header("x-junk", "a".repeat(9000))
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("too large"));
    // Upstream answer over max_response_body: 502 naming the setting.
    let (status, body) = gw.post("/endpoints/big/invocations", &ask()).await;
    assert_eq!(status, 502);
    assert!(body["detail"].as_str().unwrap().contains("max_response_body"));
    // Slow body (slowloris): 408 after body_read_timeout.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.write_all(b"POST /endpoints/slow/invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"));
    // Too many in flight: 503 beyond max_inflight.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (common::client(), gw.url("/endpoints/slow/invocations"));
            tokio::spawn(async move { c.post(url).json(&ask()).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(codes, [200, 200, 503, 503]);
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["body_too_large", "header_too_large", "response_too_large", "read_timeout", "too_many_inflight"] {
        assert!(text.contains(&format!("aigw_rejected_total{{reason=\"{reason}\"}}")), "{reason}\n{text}");
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn panics_are_contained() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")]}))).await;
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("x-aigw-test-panic", "1")
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    gw.assert_alive().await;
    let (status, _) = gw.post("/endpoints/chat/invocations", &ask()).await;
    assert_eq!(status, 200);
    let logs = gw.logs();
    assert!(logs.contains("panic in thread") && logs.contains("message not logged"), "{logs}");
    assert!(!logs.contains("sk-test-panic-secret-value"), "the panic payload reached the log");
}
