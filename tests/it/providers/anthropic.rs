//! `anthropic` through the real gateway: MLflow's fixtures replayed (see
//! tests/it/common/replay.rs), the completions fixture replayed against the Messages API (see
//! `anthropic_completions_use_the_messages_api`), upstream errors in Anthropic's shape,
//! provider rule violations (422 natively and OpenAI-shaped on /v1), embeddings 501, streams on
//! /v1 (with `[DONE]`, reasoning kept out of content) and an upstream `error` event mid-stream.

use std::time::Duration;

use crate::common::replay::{Case, point_at, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, split_points, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

const ANTHROPIC: (&str, &str) = ("anthropic_api_base", "https://api.anthropic.com/v1");

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
        // Both routes end the stream with `[DONE]` (MLflow 3.18).
        assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{text}");
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

// ---- the gateway ----

const NATIVE: &str = "/endpoints/claude/invocations";
const V1: &str = "/v1/chat/completions";

async fn setup() -> (MockUpstream, Gateway) {
    let upstream = MockUpstream::start().await;
    let config = |name: &str, endpoint_type: &str| {
        json!({"name": name, "endpoint_type": endpoint_type,
               "model": {"provider": "anthropic", "name": "claude-sonnet-4-5",
                         "config": {"anthropic_api_key": "$ANTHROPIC_TEST_KEY",
                                    "anthropic_api_base": format!("{}/v1", upstream.url())}}})
    };
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [config("claude", "llm/v1/chat"), config("claude-embed", "llm/v1/embeddings")]})),
        &[("ANTHROPIC_TEST_KEY", "sk-ant-test-secret")],
        &[],
    )
    .await;
    (upstream, gw)
}

fn chat(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "What is 2+2?"}], "stream": stream})
}

fn v1_chat(stream: bool) -> Value {
    let mut c = chat(stream);
    c["model"] = json!("claude");
    c
}

fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"})
}

#[tokio::test]
async fn upstream_errors_keep_status_and_message() {
    let (upstream, gw) = setup().await;
    for (status, kind, message) in [
        (400, "invalid_request_error", "max_tokens: 100000 > 64000, which is the maximum allowed"),
        (529, "overloaded_error", "Overloaded"),
    ] {
        upstream.push(Reply::Json(status, anthropic_error(kind, message)));
        let (got, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!((got, body), (status, json!({"detail": message})));

        upstream.push(Reply::Json(status, anthropic_error(kind, message)));
        let (got, body) = gw.post(V1, &v1_chat(false)).await;
        assert_eq!(got, status);
        assert_eq!(body["error"]["message"], json!(message), "{body}");

        // A streamed request that fails before the first byte is a proper HTTP error too.
        upstream.push(Reply::Json(status, anthropic_error(kind, message)));
        let (got, body) = gw.post(V1, &v1_chat(true)).await;
        assert_eq!(got, status);
        assert_eq!(body["error"]["message"], json!(message), "{body}");
    }
    // The credential went upstream in x-api-key and never comes back to the client.
    let req = upstream.last();
    assert_eq!(req.header("x-api-key"), Some("sk-ant-test-secret"));
    assert!(!gw.logs().contains("sk-ant-test-secret"));
    gw.assert_alive().await;
}

#[tokio::test]
async fn provider_rules_are_422_on_both_families() {
    let (upstream, gw) = setup().await;
    let mut req = chat(false);
    req["n"] = json!(2);
    let (status, body) = gw.post(NATIVE, &req).await;
    // MLflow's message has a literal '{n}' (a bug); aigw names the value received.
    assert_eq!(
        (status, body),
        (422, json!({"detail": "'n' must be '1' for the Anthropic provider. Received value: '2'."}))
    );

    let mut req = v1_chat(false);
    req["n"] = json!(2);
    let (status, body) = gw.post(V1, &req).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"error": {"message": "'n' must be '1' for the Anthropic provider. Received value: '2'.",
                         "type": "invalid_request_error", "param": "n", "code": null}})
    );

    let mut req = v1_chat(true);
    req["temperature"] = json!(0.5);
    req["top_p"] = json!(0.5);
    let (status, body) = gw.post(V1, &req).await;
    assert_eq!(status, 422, "a stream request breaking a rule is a JSON error, not a stream");
    assert_eq!(body["error"]["message"], json!("Cannot set both 'temperature' and 'top_p' parameters."));

    let mut req = chat(false);
    req["max_tokens"] = json!(1_000_001);
    let (status, body) = gw.post(NATIVE, &req).await;
    assert_eq!((status, body), (422, json!({"detail": "Invalid value for max_tokens: cannot exceed 1000000."})));

    assert!(upstream.requests().is_empty(), "no upstream call for a rejected request");
    gw.assert_alive().await;
}

#[tokio::test]
async fn embeddings_are_not_implemented() {
    let (upstream, gw) = setup().await;
    let (status, body) = gw.post("/endpoints/claude-embed/invocations", &json!({"input": "hello"})).await;
    assert_eq!(
        (status, body),
        (501, json!({"detail": "The embeddings route is not implemented for Anthropic models."}))
    );
    let (status, body) = gw.post("/v1/embeddings", &json!({"model": "claude-embed", "input": ["a", "b"]})).await;
    assert_eq!(status, 501);
    assert_eq!(body["error"]["message"], json!("The embeddings route is not implemented for Anthropic models."));
    assert_eq!(body["error"]["type"], json!("not_implemented_error"));
    assert!(upstream.requests().is_empty());
}

fn ev(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn thinking_stream() -> String {
    [
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_v1", "type": "message",
            "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,
            "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "2+2 is basic arithmetic."}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "2 + 2 "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "= 4."}}),
        ),
        ev("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn",
            "stop_sequence": null}, "usage": {"output_tokens": 20}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
    .concat()
}

#[tokio::test]
async fn v1_stream_ends_with_done_and_concatenates() {
    let (upstream, gw) = setup().await;
    let body = thinking_stream();
    for seed in [None, Some(11u64), Some(12)] {
        let pieces = match seed {
            None => vec![body.as_bytes().to_vec()],
            Some(s) => split_points(body.as_bytes(), s, 16),
        };
        upstream.push(Reply::sse(pieces, Duration::from_millis(1)));
        let (status, ct, text) = gw.post_text(V1, &v1_chat(true)).await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"));
        let mut data = sse_data(&text);
        assert_eq!(data.pop().as_deref(), Some("[DONE]"), "{text}");
        assert!(!data.iter().any(|d| d == "[DONE]"));
        let chunks: Vec<Value> = data.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        assert_eq!(content, "2 + 2 = 4.");
        let reasoning: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(reasoning, "2+2 is basic arithmetic.", "docs/mlflow-compat.md#fix-9: thinking is not content");
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finishes, vec![&json!("stop")]);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"][0]["finish_reason"], json!("stop"));
        assert_eq!(
            last["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 20, "total_tokens": 35,
                   "prompt_tokens_details": {"cached_tokens": 3}})
        );
        assert!(chunks.iter().all(|c| c["id"] == json!("msg_v1") && c["provider"] == json!("anthropic")));
        let sent = upstream.last().json();
        assert_eq!(sent["stream"], json!(true));
        assert!(sent.get("model").is_some_and(|m| m == "claude-sonnet-4-5"));
    }

    // The same answer whole: thinking in reasoning_content, not in content.
    upstream.push(Reply::Json(
        200,
        json!({"id": "msg_w", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "thinking", "thinking": "Easy.", "signature": "s"},
                           {"type": "text", "text": "4"}],
               "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 6}}),
    ));
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "4", "tool_calls": null, "refusal": null, "reasoning_content": "Easy."})
    );
    gw.assert_alive().await;
}

#[tokio::test]
async fn upstream_error_event_becomes_one_error_event() {
    let (upstream, gw) = setup().await;
    let body = [
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_e", "type": "message",
            "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "usage": {"input_tokens": 3}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "Partial"}}),
        ),
        ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
    ]
    .concat();
    for (path, request) in [(NATIVE, chat(true)), (V1, v1_chat(true))] {
        upstream.push(Reply::sse(vec![body.as_bytes().to_vec()], Duration::ZERO));
        let (status, _, text) = gw.post_text(path, &request).await;
        assert_eq!(status, 200);
        let data = sse_data(&text);
        assert_eq!(data.len(), 3, "{path}: {text}");
        assert_eq!(serde_json::from_str::<Value>(&data[1]).unwrap()["choices"][0]["delta"]["content"], "Partial");
        let err: Value = serde_json::from_str(&data[2]).unwrap();
        assert_eq!(err, json!({"error": {"message": "Overloaded", "type": "upstream_error"}}), "{path}");
        assert!(!text.contains("[DONE]"), "{path}: an interrupted stream has no [DONE]");
    }

    // A stream cut off before its end is an error event too, not a silent truncation.
    let cut = [
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_c", "type": "message",
            "role": "assistant", "content": [], "model": "m", "usage": {"input_tokens": 3}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
    ]
    .concat();
    upstream.push(Reply::sse(vec![cut.into_bytes()], Duration::ZERO));
    let (status, _, text) = gw.post_text(V1, &v1_chat(true)).await;
    assert_eq!(status, 200);
    let data = sse_data(&text);
    let err: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(err["error"]["type"], json!("bad_gateway_error"), "{text}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn tools_round_trip_on_v1() {
    let (upstream, gw) = setup().await;
    upstream.push(Reply::Json(
        200,
        json!({"id": "msg_t", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "Checking."},
                           {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
               "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 20}}),
    ));
    let schema = json!({"type": "object", "properties": {"city": {"type": "string", "minLength": 2,
        "pattern": "^[A-Z]"}, "units": {"type": "string", "default": "metric"}}, "required": ["city"]});
    let req = json!({"model": "claude", "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [{"id": "toolu_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_0", "content": "18C"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}}],
        "tool_choice": "auto", "parallel_tool_calls": false});
    let (status, body) = gw.post(V1, &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"],
        json!([{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}])
    );
    assert_eq!(body["choices"][0]["finish_reason"], json!("tool_calls"));
    let sent = upstream.last().json();
    assert_eq!(sent["system"], json!("Be terse."));
    assert_eq!(sent["tools"][0]["input_schema"], schema, "docs/mlflow-compat.md#fix-6: the schema is forwarded whole");
    assert_eq!(sent["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "text", "text": "Let me look."},
               {"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "Lyon"}}])
    );
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "18C"}]})
    );
    gw.assert_alive().await;
}

/// `/v1/responses` reaches an `anthropic` endpoint through the translation: `reasoning.effort`
/// becomes extended thinking with the documented budget (and `max_tokens` room for the
/// answer), the thinking comes back as the reasoning item, and the Responses API's temperature
/// (OpenAI's 0–2 scale) is halved for Anthropic's 0–1.
#[tokio::test]
async fn responses_reasoning_effort_is_a_thinking_budget() {
    use crate::common::fake::Fake;
    let upstream = Fake::Anthropic.start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::Anthropic.endpoint("claude", &upstream)]}))).await;
    let request = json!({"model": "claude", "input": "Hi", "reasoning": {"effort": "medium"}});
    let (status, body) = gw.post("/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.last().json();
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 8192}));
    assert_eq!(sent["max_tokens"], json!(8192 + 8192));
    assert_eq!(body["output"][0]["type"], json!("reasoning"), "{body}");
    assert_eq!(body["output"][1]["type"], json!("message"), "{body}");

    let (status, body) = gw.post("/v1/responses", &json!({"model": "claude", "input": "Hi", "temperature": 1.5})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.last().json()["temperature"], json!(0.75));
    assert_eq!(body["temperature"], json!(1.5), "the answer echoes the client's value");
}

/// Reasoning with tools through `/v1/responses` on Claude: the reasoning item carries Claude's
/// signature in its `encrypted_content` (whole and streamed), and when the client sends the
/// output items back, the thinking goes back to Claude first in the turn that called tools.
#[tokio::test]
async fn responses_reasoning_with_tools_round_trip() {
    use crate::common::fake::{self, Fake};
    let upstream = Fake::Anthropic.start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::Anthropic.endpoint("claude", &upstream)]}))).await;
    let tool = json!({"type": "function", "name": "get_weather",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    for stream in [false, true] {
        let mut input = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
        let request = |input: &[Value]| json!({"model": "claude", "input": input, "tools": [tool], "reasoning": {"effort": "low"}, "stream": stream});
        let answer = if stream {
            let (status, _, text) = gw.post_text("/v1/responses", &request(&input)).await;
            assert_eq!(status, 200, "{text}");
            let events: Vec<Value> = sse_data(&text).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            events.into_iter().find(|e| e["type"] == "response.completed").unwrap()["response"].clone()
        } else {
            let (status, body) = gw.post("/v1/responses", &request(&input)).await;
            assert_eq!(status, 200, "{body}");
            body
        };
        let output = answer["output"].as_array().unwrap().clone();
        assert_eq!(output[0]["type"], json!("reasoning"), "{answer}");
        let encrypted = output[0]["encrypted_content"].as_str().unwrap_or_default();
        assert!(encrypted.ends_with(fake::SIGNATURE), "stream {stream}: {answer}");
        let call = output.iter().find(|i| i["type"] == "function_call").unwrap().clone();
        input.extend(output);
        input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}));
        let (status, body) = gw
            .post(
                "/v1/responses",
                &json!({"model": "claude", "input": input, "tools": [tool],
                                                               "reasoning": {"effort": "low"}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let sent = upstream.last().json();
        let assistant = &sent["messages"][1];
        assert_eq!(assistant["content"][0]["type"], json!("thinking"), "stream {stream}: {sent}");
        assert_eq!(assistant["content"][0]["signature"], json!(fake::SIGNATURE), "{sent}");
        assert!(assistant["content"].as_array().unwrap().iter().any(|b| b["type"] == "tool_use"), "{sent}");
    }
}

// ---- MLflow 3.18 (docs/mlflow-compat.md#mlflow-318-provider-translations) ----

/// A whole Messages answer with this `stop_reason`.
fn text_answer(stop_reason: &str) -> Value {
    json!({"id": "msg_318", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": stop_reason,
           "usage": {"input_tokens": 4, "output_tokens": 2}})
}

/// A tool whose `parameters` is `{}`, `{"type": "object"}` or absent is valid (MLflow 3.17
/// answered 422: `properties` was required) and reaches Anthropic as an object schema with
/// `type` and `properties`; a nested schema keeps every keyword (MLflow keeps only some).
#[tokio::test]
async fn parameterless_tools_reach_anthropic_as_object_schemas() {
    let (upstream, gw) = setup().await;
    let nested = json!({"type": "object", "properties": {"where": {"type": "object",
        "properties": {"city": {"type": "string", "minLength": 1}}, "required": ["city"],
        "additionalProperties": false}}, "required": ["where"]});
    let tools = json!([
        {"type": "function", "function": {"name": "now", "parameters": {}}},
        {"type": "function", "function": {"name": "tick", "description": "Tick", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "noop"}},
        {"type": "function", "function": {"name": "weather", "parameters": nested}},
    ]);
    for path in [NATIVE, V1] {
        upstream.push(Reply::Json(200, text_answer("end_turn")));
        let mut req = if path == V1 { v1_chat(false) } else { chat(false) };
        req["tools"] = tools.clone();
        let (status, body) = gw.post(path, &req).await;
        assert_eq!(status, 200, "{path}: {body}");
        let sent = upstream.last().json();
        let empty = json!({"type": "object", "properties": {}});
        assert_eq!(
            sent["tools"],
            json!([
                {"name": "now", "input_schema": empty},
                {"name": "tick", "description": "Tick", "input_schema": empty},
                {"name": "noop", "input_schema": empty},
                {"name": "weather", "input_schema": nested},
            ]),
            "{path}"
        );
    }
}

/// MLflow 3.18's new finish reasons, whole and streamed, natively and on /v1:
/// `model_context_window_exceeded` → `length`, `refusal` → `content_filter` (MLflow 3.17 said
/// `stop` for both); other stop reasons stay `stop`.
#[tokio::test]
async fn new_stop_reasons_map_like_mlflow_318() {
    let (upstream, gw) = setup().await;
    for (stop, want) in
        [("model_context_window_exceeded", "length"), ("refusal", "content_filter"), ("pause_turn", "stop")]
    {
        for path in [NATIVE, V1] {
            upstream.push(Reply::Json(200, text_answer(stop)));
            let req = if path == V1 { v1_chat(false) } else { chat(false) };
            let (status, body) = gw.post(path, &req).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["choices"][0]["finish_reason"], json!(want), "{stop} on {path}");

            let events = [
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_s", "type": "message",
                    "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "usage": {"input_tokens": 4}}}),
                ),
                ev(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": stop},
                    "usage": {"output_tokens": 0}}),
                ),
                ev("message_stop", json!({"type": "message_stop"})),
            ]
            .concat();
            upstream.push(Reply::sse(vec![events.into_bytes()], Duration::ZERO));
            let req = if path == V1 { v1_chat(true) } else { chat(true) };
            let (status, _, text) = gw.post_text(path, &req).await;
            assert_eq!(status, 200, "{text}");
            let finishes: Vec<Value> = sse_data(&text)
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .map(|c| c["choices"][0]["finish_reason"].clone())
                .filter(|f| !f.is_null())
                .collect();
            assert_eq!(finishes, vec![json!(want)], "{stop} streamed on {path}: {text}");
        }
    }
}

/// The usage of `message_delta` is cumulative (MLflow 3.18): input and cache counts it carries
/// (Anthropic sends them with server tools) replace those of `message_start`; a count that is
/// not an integer is ignored. MLflow 3.17 (and aigw before) gave 12 / 5 / 17 here.
#[tokio::test]
async fn stream_usage_takes_cumulative_counts_from_message_delta() {
    let (upstream, gw) = setup().await;
    let events = [
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_u", "type": "message",
            "role": "assistant", "content": [], "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1,
                      "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": "4"}}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 5, "input_tokens": 40, "cache_read_input_tokens": 3,
                      "cache_creation_input_tokens": "n/a"}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    upstream.push(Reply::sse(vec![events.into_bytes()], Duration::ZERO));
    let (status, _, text) = gw.post_text(NATIVE, &chat(true)).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "3.18: the stream ends with [DONE]");
    let last: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 44, "completion_tokens": 5, "total_tokens": 49,
               "prompt_tokens_details": {"cached_tokens": 3}, "cache_creation_input_tokens": 1}),
        "{text}"
    );
}
