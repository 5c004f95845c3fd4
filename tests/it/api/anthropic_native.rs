//! `/v1/messages` to a provider that speaks Anthropic's Messages API itself (`anthropic`):
//! nothing is translated. The client's body reaches Anthropic with only `model` replaced (its
//! `cache_control`, `thinking`, unknown fields and `anthropic-beta` header included), the answer
//! comes back byte for byte, whole or event by event at any split, with its usage in the audit
//! line; errors keep Anthropic's shape; `count_tokens` is forwarded.

use std::time::Duration;

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, split_points, yaml};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-native-test-key-0123456789";

fn claude(upstream: &MockUpstream) -> Value {
    json!({"name": "claude-sonnet-4-5", "endpoint_type": "llm/v1/chat",
           "model": {"provider": "anthropic", "name": "claude-sonnet-4-5-20250929",
                     "config": {"anthropic_api_key": KEY, "anthropic_api_base": format!("{}/v1", upstream.url()),
                                "temperature": 0.3}}})
}

async fn start(upstream: &MockUpstream) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let audit = dir.join("audit.log");
    let gw = Gateway::start(&yaml(&json!({"endpoints": [claude(upstream)], "aigw": {"audit": {"path": audit}}}))).await;
    (gw, audit)
}

/// What Claude Code sends, in essence: system blocks with cache_control, tools, metadata,
/// thinking, and a field aigw does not know.
fn claude_code_request(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list files", "cache_control": {"type": "ephemeral"}}]}],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}],
        "metadata": {"user_id": "user_abc"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "context_management": {"edits": []}
    })
}

fn message() -> Value {
    json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
           "content": [{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                       {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
           "stop_reason": "tool_use", "stop_sequence": null,
           "usage": {"input_tokens": 12, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0, "output_tokens": 9}})
}

async fn last_audit(path: &std::path::Path) -> Value {
    let mut line = Value::Null;
    crate::common::wait_until(Duration::from_secs(10), "the audit line", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["family"] == "anthropic")
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

#[tokio::test]
async fn a_whole_message_is_forwarded_and_relayed_unchanged() {
    let upstream = MockUpstream::start().await;
    let answer = serde_json::to_vec(&message()).unwrap();
    upstream.push(Reply::body(200, "application/json", answer.clone()));
    let (gw, audit) = start(&upstream).await;

    let r = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("x-api-key", "client-key-is-not-forwarded")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&claude_code_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), answer, "the answer is relayed byte for byte");

    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY), "the endpoint's credentials, not the client's");
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
    let mut expected = claude_code_request(false);
    expected["model"] = json!("claude-sonnet-4-5-20250929");
    // The endpoint's model default (unified scale), unset by the client, halved for Anthropic.
    expected["temperature"] = json!(0.15);
    assert_eq!(sent.json(), expected, "everything the client sent reaches Anthropic");

    let line = last_audit(&audit).await;
    assert_eq!((line["status"].as_u64(), line["endpoint"].as_str()), (Some(200), Some("claude-sonnet-4-5")));
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(112), Some(9)));
}

fn event_stream() -> String {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_02", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect()
}

#[tokio::test]
async fn a_stream_is_relayed_event_by_event_at_any_split() {
    let upstream = MockUpstream::start().await;
    let (gw, audit) = start(&upstream).await;
    let stream = event_stream();
    for seed in 0..4 {
        upstream.push(Reply::sse(split_points(stream.as_bytes(), seed, 6), Duration::from_millis(2)));
        let (status, ct, text) = gw.post_text("/v1/messages", &claude_code_request(true)).await;
        assert_eq!((status, ct.starts_with("text/event-stream")), (200, true));
        assert_eq!(text, stream, "split {seed}: the events as Anthropic sent them, nothing added");
    }
    let line = last_audit(&audit).await;
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(20), Some(5)));
    assert_eq!(line["stream"], json!(true));
}

#[tokio::test]
async fn a_stream_cut_short_ends_with_an_anthropic_error_event() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    let stream = event_stream();
    let cut = &stream[..stream.find("event: message_delta").unwrap()];
    upstream.push(Reply::sse(vec![cut.as_bytes().to_vec()], Duration::ZERO));
    let (status, _, text) = gw.post_text("/v1/messages", &claude_code_request(true)).await;
    assert_eq!(status, 200);
    assert!(text.starts_with(cut), "{text}");
    let tail = &text[cut.len()..];
    assert!(tail.starts_with("event: error\ndata: "), "{tail}");
    let err: Value = serde_json::from_str(tail.trim_start_matches("event: error\ndata: ").trim()).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["message"], "upstream stream ended before it was complete");
}

#[tokio::test]
async fn upstream_errors_keep_anthropics_shape_and_status() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    upstream.push(Reply::Json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let (status, body) = gw.post("/v1/messages", &claude_code_request(false)).await;
    assert_eq!(status, 529);
    assert_eq!(body, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    // Unknown model: Anthropic's not_found_error shape.
    let mut req = claude_code_request(false);
    req["model"] = json!("no-such-model");
    let (status, body) = gw.post("/v1/messages", &req).await;
    assert_eq!(
        (status, body["type"].as_str(), body["error"]["type"].as_str()),
        (404, Some("error"), Some("not_found_error"))
    );
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_anthropic() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    upstream.push(Reply::Json(200, json!({"input_tokens": 1234})));
    let req = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello"}],
                     "system": "be brief"});
    let (status, body) = gw.post("/v1/messages/count_tokens", &req).await;
    assert_eq!((status, body), (200, json!({"input_tokens": 1234})));
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/messages/count_tokens");
    assert_eq!(sent.json()["model"], json!("claude-sonnet-4-5-20250929"));
    assert!(sent.json().get("max_tokens").is_none(), "nothing added to a count request");
}
