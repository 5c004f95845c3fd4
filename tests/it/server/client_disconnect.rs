//! `src/server/downstream.rs`: a client that goes away cancels its upstream call: while aigw waits on an upstream (for the
//! answer's head, between stream events, in a retry's backoff), a client that closes its
//! connection makes aigw close the upstream connection at once, release the request's
//! concurrency slot, and record the request as `client_closed` with status 499 (audit line and
//! `aigw_client_closed_total`).
//!
//! The upstreams here would answer only after a long time (60 s); each test waits (by polling,
//! with a bound far below that) for the upstream to see its connection closed, so a gateway
//! that kept waiting for the upstream fails the test.

use std::time::{Duration, Instant};

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

/// Far longer than any bound a test waits: an upstream answering after this is never awaited.
const LONG: Duration = Duration::from_secs(60);
/// How long a test polls for an event that a working gateway makes happen at once.
const BOUND: Duration = Duration::from_secs(15);

fn chat_body(stream: bool) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn answer(text: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

fn endpoint(upstream: &MockUpstream, extra: Value) -> Value {
    let mut e = json!({"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-x",
                  "config": {"openai_api_key": "sk-disconnect-test-key", "openai_api_base": format!("{}/v1", upstream.url())}}});
    if let (Value::Object(e), Value::Object(x)) = (&mut e, extra) {
        e.extend(x);
    }
    e
}

async fn start(upstream: &MockUpstream, extra: Value) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let audit = dir.join("audit.log");
    let gw =
        Gateway::start(&yaml(&json!({"endpoints": [endpoint(upstream, extra)], "aigw": {"audit": {"path": audit}}})))
            .await;
    (gw, audit)
}

/// Poll `check` until it holds or `BOUND` passes; panics naming `what` then.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !check() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit line of the `/v1/chat/completions` request, once written.
async fn audit_line(path: &std::path::Path) -> Value {
    let mut line = Value::Null;
    until("the audit line", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["path"] == "/v1/chat/completions")
        {
            Some(l) => {
                line = l;
                true
            }
            None => false,
        }
    })
    .await;
    line
}

async fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A client that gives up after `after` on `body`.
async fn give_up(gw: &Gateway, body: Value, after: Duration) {
    let client = reqwest::Client::builder().timeout(after).build().unwrap();
    let r = client.post(gw.url("/v1/chat/completions")).json(&body).send().await;
    match r {
        Err(e) => assert!(e.is_timeout(), "{e}"),
        Ok(r) => {
            // A stream: the head arrived; read until the client's timeout cuts it.
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await;
        }
    }
}

#[tokio::test]
async fn a_client_leaving_cancels_a_waiting_call() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|_| Reply::Delay(LONG, Box::new(Reply::Json(200, answer("late")))));
    let (gw, audit) =
        start(&upstream, json!({"limit": {"calls": 100, "renewal_period": "day", "max_concurrent": 1}})).await;

    give_up(&gw, chat_body(false), Duration::from_millis(500)).await;
    until("the upstream seeing its connection closed", || upstream.peer_closed() == 1).await;

    let line = audit_line(&audit).await;
    assert_eq!((line["status"].as_u64(), line["error"].as_str()), (Some(499), Some("client_closed")), "{line}");
    assert_eq!(metric(&gw, "aigw_client_closed_total").await, 1.0);
    // The concurrency slot (max_concurrent: 1) is free again: the next call is admitted.
    upstream.handle(|_| Reply::Json(200, answer("quick")));
    let (status, body) = gw.post("/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(status, 200, "{body}");
    // Only the /metrics scrape itself is in flight.
    assert_eq!(metric(&gw, "aigw_inflight_requests").await, 1.0);
}

#[tokio::test]
async fn a_client_leaving_a_stream_cancels_it_between_events() {
    let upstream = MockUpstream::start().await;
    let first = b"data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n".to_vec();
    let last = b"data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_vec();
    upstream.handle(move |_| Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![(first.clone(), Duration::ZERO), (last.clone(), LONG)],
        chunked: true,
    });
    let (gw, audit) = start(&upstream, json!({})).await;

    give_up(&gw, chat_body(true), Duration::from_millis(500)).await;
    until("the upstream seeing its stream's connection closed", || upstream.peer_closed() == 1).await;

    let line = audit_line(&audit).await;
    assert_eq!((line["status"].as_u64(), line["error"].as_str()), (Some(499), Some("client_closed")), "{line}");
    assert_eq!(line["stream"], json!(true));
    assert!(line["bytes_out"].as_u64().unwrap_or(0) > 0, "the first event was relayed: {line}");
    assert_eq!(metric(&gw, "aigw_client_closed_total").await, 1.0);
}

#[tokio::test]
async fn a_client_leaving_during_a_retry_backoff_stops_the_retries() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(503, json!({"error": {"message": "busy"}}));
    // The second attempt would come a minute after the first.
    let retry = json!({"retry": {"max_attempts": 3, "backoff_ms": 60_000, "max_backoff_ms": 60_000}});
    let (gw, audit) = start(&upstream, retry).await;

    give_up(&gw, chat_body(false), Duration::from_millis(800)).await;
    // The request ends (its audit line is written) long before the backoff would have.
    let line = audit_line(&audit).await;
    assert_eq!((line["status"].as_u64(), line["error"].as_str()), (Some(499), Some("client_closed")), "{line}");
    assert_eq!(upstream.requests().len(), 1, "no attempt after the client left");
    assert_eq!(metric(&gw, "aigw_client_closed_total").await, 1.0);
    gw.assert_alive().await;
}

#[tokio::test]
async fn a_client_that_stays_gets_its_answer() {
    // The watch does not cancel a request whose client is still waiting.
    let upstream = MockUpstream::start().await;
    upstream.handle(|_| Reply::Delay(Duration::from_millis(300), Box::new(Reply::Json(200, answer("late")))));
    let (gw, _audit) = start(&upstream, json!({})).await;
    let (status, body) = gw.post("/v1/chat/completions", &chat_body(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("late"));
    assert_eq!(upstream.peer_closed(), 0);
    assert_eq!(metric(&gw, "aigw_client_closed_total").await, 0.0);
}
