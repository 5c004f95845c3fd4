//! Fixture replay (see tests/common/replay.rs) for `anthropic`, plus the completions fixture
//! replayed against the Messages API (see `anthropic_completions_use_the_messages_api`).

#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::replay::{Case, point_at, replay};
use common::upstream::{MockUpstream, Reply};
use common::{Gateway, assert_json_eq, fixture, split_points, sse_data, yaml};
use serde_json::{Value, json};

const ANTHROPIC: (&str, &str) = ("anthropic_api_base", "https://api.anthropic.com/v1");

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

replay_tests! {
    anthropic_chat => Case::new("anthropic-chat", ANTHROPIC);
    anthropic_chat_tools => Case::new("anthropic-chat-tools", ANTHROPIC);
    anthropic_chat_tool_result => Case::new("anthropic-chat-tool-result", ANTHROPIC);
    anthropic_chat_stream => Case::new("anthropic-chat-stream", ANTHROPIC);
    anthropic_chat_stream_tools => Case::new("anthropic-chat-stream-tools", ANTHROPIC);
    anthropic_chat_stream_v1 => Case { via_v1: true, ..Case::new("anthropic-chat-stream", ANTHROPIC) };
    anthropic_chat_stream_tools_v1 => Case { via_v1: true, ..Case::new("anthropic-chat-stream-tools", ANTHROPIC) };
}

/// The Messages API answer equivalent to the fixture's legacy `/v1/complete` answer.
fn messages_answer(fx: &Value) -> Value {
    let legacy = &fx["upstream_response"];
    json!({
        "id": "msg_01Complete",
        "type": "message",
        "role": "assistant",
        "model": legacy["model"],
        "content": [{"type": "text", "text": legacy["completion"]}],
        "stop_reason": "max_tokens",
        "stop_sequence": null,
        "usage": {"input_tokens": 14, "output_tokens": 200}
    })
}

/// `anthropic-completions.json` records MLflow calling the legacy Text Completions API
/// (`POST /v1/complete`, `"\n\nHuman: …\n\nAssistant:"` prompt, `max_tokens_to_sample`), which
/// no current Claude model serves. aigw serves completions through the Messages API instead,
/// so from the same client request it sends `POST /v1/messages` with the prompt as one user
/// message and the same parameter rules as chat (max_tokens, stop → stop_sequences,
/// temperature halved). The answer has the fixture's shape and values, except that the
/// Messages API provides what the legacy API did not: the message id and token usage.
#[tokio::test]
async fn anthropic_completions_use_the_messages_api() {
    let fx = fixture("anthropic-completions.json");
    let case = Case::new("anthropic-completions", ANTHROPIC);
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &case, &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;

    upstream.push(Reply::Json(200, messages_answer(&fx)));
    let (status, body) = gw.post(fx["client_path"].as_str().unwrap(), &fx["client_request"]).await;
    assert_eq!(status, 200, "{body}");

    let req = upstream.last();
    assert_eq!(req.target, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some("key"));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_json_eq(
        &req.json(),
        &json!({
            "model": "claude-instant-1",
            "messages": [{"role": "user", "content": "How does a car work?"}],
            "max_tokens": 200,
            "stop_sequences": ["foobazbardiddly"],
            "temperature": 0.5
        }),
        &[],
    );

    let mut expected = fx["expected_client_response"].clone();
    expected["id"] = json!("msg_01Complete");
    expected["usage"] = json!({"prompt_tokens": 14, "completion_tokens": 200, "total_tokens": 214});
    assert_json_eq(&body, &expected, &["created"]);

    // Streamed completions (MLflow: not implemented), natively and on /v1.
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_s\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-instant-1.1\",\"stop_reason\":null,\"usage\":{\"input_tokens\":14,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Here is a basic \"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"overview.\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat();
    for (path, seed) in [(fx["client_path"].as_str().unwrap(), 7u64), ("/v1/completions", 8)] {
        upstream.push(Reply::sse(split_points(events.as_bytes(), seed, 10), Duration::from_millis(1)));
        let mut request = fx["client_request"].clone();
        request["stream"] = json!(true);
        if path.starts_with("/v1/") {
            request["model"] = json!("claude-completions");
        }
        let (status, ct, text) = gw.post_text(path, &request).await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        assert_eq!(upstream.last().json()["stream"], json!(true));
        let mut data = sse_data(&text);
        if path.starts_with("/v1/") {
            assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{text}");
        }
        let chunks: Vec<Value> = data.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        let expected = [
            json!({"id": "msg_s", "object": "text_completion_chunk", "model": "claude-instant-1.1",
                   "choices": [{"index": 0, "finish_reason": null, "text": "Here is a basic "}], "usage": null}),
            json!({"id": "msg_s", "object": "text_completion_chunk", "model": "claude-instant-1.1",
                   "choices": [{"index": 0, "finish_reason": null, "text": "overview."}], "usage": null}),
            json!({"id": "msg_s", "object": "text_completion_chunk", "model": "claude-instant-1.1",
                   "choices": [{"index": 0, "finish_reason": "stop", "text": ""}],
                   "usage": {"prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19}}),
        ];
        assert_eq!(chunks.len(), expected.len(), "{path}: {text}");
        for (got, want) in chunks.iter().zip(&expected) {
            assert_json_eq(got, want, &["created"]);
        }
    }
    gw.assert_alive().await;
}
