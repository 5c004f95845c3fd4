//! A stream request never ends as an empty or unfinished success, on any provider or route
//! family:
//! * a 2xx JSON answer to a stream request (a server or proxy that ignored `stream: true`) is a
//!   502 JSON error before any stream starts, relaying the upstream's error message when the
//!   body carries one;
//! * a stream that ends without any translated event is one error event;
//! * a stream that ends before the provider's end of stream (`[DONE]` or a `finish_reason`,
//!   Gemini's `finishReason`, Anthropic's `message_delta`/`message_stop`, Bedrock's
//!   `messageStop`/`metadata`, Cohere's `stream-end`) is the events so far, then one error event;
//! * one upstream event larger than `aigw.max_response_body` ends the stream with one error
//!   event, is counted as `aigw_rejected_total{reason="response_too_large"}`, and is not
//!   buffered whole.

use std::time::Duration;

use crate::common::bedrock::{converse_ok, env_with, event_frame};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, bedrock, sse_data, yaml};
use serde_json::{Value, json};

/// One provider: its endpoint, how its streams are framed, and a stream body that stops
/// short of its end (`complete` false) or reaches it.
struct Provider {
    name: &'static str,
    content_type: &'static str,
    body: fn(complete: bool) -> Vec<u8>,
}

fn openai_chunk(content: &str, finish: Value) -> String {
    let chunk = json!({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
    format!("data: {chunk}\n\n")
}

/// OpenAI's format, for the whole OpenAI family: complete with a `finish_reason` and `[DONE]`.
fn openai_body(complete: bool) -> Vec<u8> {
    let mut s = openai_chunk("Hel", Value::Null) + &openai_chunk("lo", Value::Null);
    if complete {
        s += &openai_chunk("", json!("stop"));
        s += "data: [DONE]\n\n";
    }
    s.into_bytes()
}

/// Complete with only one of the two OpenAI end markers.
fn openai_finish_reason_only(_: bool) -> Vec<u8> {
    (openai_chunk("Hel", Value::Null) + &openai_chunk("lo", json!("stop"))).into_bytes()
}

fn openai_done_only(_: bool) -> Vec<u8> {
    (openai_chunk("Hel", Value::Null) + "data: [DONE]\n\n").into_bytes()
}

fn gemini_body(complete: bool) -> Vec<u8> {
    let mut s = String::from(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n",
    );
    if complete {
        s += "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":1,\"candidatesTokenCount\":2,\"totalTokenCount\":3}}\r\n\r\n";
    }
    s.into_bytes()
}

fn anthropic_event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn anthropic_body(complete: bool) -> Vec<u8> {
    let mut s = anthropic_event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
               "content": [], "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
    );
    s += &anthropic_event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    s += &anthropic_event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
    );
    if complete {
        s += &anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0}));
        s += &anthropic_event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
        );
        s += &anthropic_event("message_stop", json!({"type": "message_stop"}));
    }
    s.into_bytes()
}

fn cohere_body(complete: bool) -> Vec<u8> {
    let mut s = String::from(concat!(
        "{\"is_finished\":false,\"event_type\":\"stream-start\",\"generation_id\":\"g\"}\n",
        "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Hel\"}\n",
    ));
    if complete {
        s += "{\"is_finished\":true,\"event_type\":\"stream-end\",\"finish_reason\":\"COMPLETE\",\"response\":{\"response_id\":\"r\",\"token_count\":{\"prompt_tokens\":1,\"response_tokens\":1,\"total_tokens\":2}}}\n";
    }
    s.into_bytes()
}

fn bedrock_body(complete: bool) -> Vec<u8> {
    let mut wire = event_frame(&json!({"messageStart": {"role": "assistant"}}));
    wire.extend(event_frame(&json!({"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}})));
    if complete {
        wire.extend(event_frame(&json!({"contentBlockStop": {"contentBlockIndex": 0}})));
        wire.extend(event_frame(&json!({"messageStop": {"stopReason": "end_turn"}})));
        wire.extend(event_frame(
            &json!({"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}}),
        ));
    }
    wire
}

const SSE: &str = "text/event-stream";

fn providers() -> Vec<Provider> {
    let openai_family = |name| Provider { name, content_type: SSE, body: openai_body };
    vec![
        openai_family("openai"),
        openai_family("groq"),
        openai_family("mistral"),
        openai_family("togetherai"),
        openai_family("databricks"),
        Provider { name: "gemini", content_type: SSE, body: gemini_body },
        Provider { name: "anthropic", content_type: SSE, body: anthropic_body },
        Provider { name: "cohere", content_type: "application/stream+json", body: cohere_body },
        Provider { name: "bedrock", content_type: "application/vnd.amazon.eventstream", body: bedrock_body },
    ]
}

/// One chat endpoint per provider, named after it, all on `base`; `settings` is the `aigw:`
/// block.
fn config(base: &str, settings: Value) -> String {
    let ep = |name: &str, provider: &str, model: &str, config: Value| {
        json!({"name": name, "endpoint_type": "llm/v1/chat",
               "model": {"provider": provider, "name": model, "config": config}})
    };
    yaml(&json!({"aigw": settings, "endpoints": [
        ep("openai", "openai", "gpt-4o-mini", json!({"openai_api_key": "sk-test", "openai_api_base": format!("{base}/v1")})),
        ep("groq", "groq", "llama-3.1-8b", json!({"api_key": "gsk-test", "api_base": format!("{base}/openai/v1")})),
        ep("mistral", "mistral", "mistral-small", json!({"mistral_api_key": "key", "mistral_api_base": format!("{base}/v1")})),
        ep("togetherai", "togetherai", "mixtral", json!({"togetherai_api_key": "key", "togetherai_api_base": format!("{base}/v1")})),
        ep("databricks", "databricks", "databricks-llama", json!({"host": base, "token": "dapi-test"})),
        ep("gemini", "gemini", "gemini-2.0-flash", json!({"gemini_api_key": "gk-test", "gemini_api_base": format!("{base}/v1beta/models")})),
        ep("anthropic", "anthropic", "claude-sonnet-4-5", json!({"anthropic_api_key": "sk-ant-test", "anthropic_api_base": format!("{base}/v1")})),
        ep("cohere", "cohere", "command", json!({"cohere_api_key": "key", "cohere_api_base": format!("{base}/v1")})),
        ep("bedrock", "bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0",
           json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"},
                  "bedrock_api_base": base})),
    ]}))
}

async fn gateway(upstream: &MockUpstream, settings: Value) -> Gateway {
    bedrock::start(&config(&upstream.url(), settings), &env_with(&[])).await
}

fn stream_reply(content_type: &str, pieces: Vec<Vec<u8>>) -> Reply {
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        pieces: pieces.into_iter().map(|p| (p, Duration::ZERO)).collect(),
        chunked: true,
    }
}

/// Both client APIs: (path, body) of a stream request to endpoint `name`.
fn stream_requests(name: &str) -> [(String, Value); 2] {
    let messages = json!([{"role": "user", "content": "hi"}]);
    [
        (format!("/endpoints/{name}/invocations"), json!({"messages": messages, "stream": true})),
        ("/v1/chat/completions".to_owned(), json!({"model": name, "messages": messages, "stream": true})),
    ]
}

/// The stream's events; asserts it is a 200 SSE answer, with `[DONE]` last exactly when it
/// succeeded, on every route (removed from the result).
async fn stream(gw: &Gateway, path: &str, body: &Value, ctx: &str) -> Vec<String> {
    let (status, ct, text) = gw.post_text(path, body).await;
    assert_eq!(status, 200, "{ctx}: {text}");
    assert!(ct.starts_with("text/event-stream"), "{ctx}: {ct}");
    let mut events = sse_data(&text);
    let failed = events.last().is_some_and(|e| e.contains("\"error\""));
    if !failed {
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{ctx}: {text}");
    }
    assert!(!events.iter().any(|e| e == "[DONE]"), "{ctx}: [DONE] only ends a successful stream: {text}");
    events
}

fn error_event(message: &str) -> Value {
    json!({"error": {"message": message, "type": "bad_gateway_error"}})
}

#[tokio::test]
async fn streams_that_stop_before_their_end_are_errors_on_every_provider() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream, json!({})).await;
    for p in providers() {
        for (path, request) in stream_requests(p.name) {
            // Cut short: the events so far, then the one error event.
            upstream.push(stream_reply(p.content_type, vec![(p.body)(false)]));
            let ctx = format!("{} {path} incomplete", p.name);
            let events = stream(&gw, &path, &request, &ctx).await;
            assert!(events.len() >= 2, "{ctx}: {events:?}");
            let (last, translated) = events.split_last().unwrap();
            let last: Value = serde_json::from_str(last).unwrap();
            assert_eq!(last, error_event("upstream stream ended before it was complete"), "{ctx}");
            assert!(translated.iter().any(|e| e.contains("Hel")), "{ctx}: the events so far are relayed: {events:?}");
            assert!(!translated.iter().any(|e| e.contains("\"error\"")), "{ctx}: one error event: {events:?}");

            // Whole: a success.
            upstream.push(stream_reply(p.content_type, vec![(p.body)(true)]));
            let ctx = format!("{} {path} complete", p.name);
            let events = stream(&gw, &path, &request, &ctx).await;
            assert!(!events.is_empty() && !events.iter().any(|e| e.contains("\"error\"")), "{ctx}: {events:?}");
        }
    }
    // OpenAI's family is complete with either end marker alone.
    for body in [openai_finish_reason_only, openai_done_only] {
        for (path, request) in stream_requests("openai") {
            upstream.push(stream_reply(SSE, vec![body(true)]));
            let events = stream(&gw, &path, &request, &path).await;
            assert!(!events.iter().any(|e| e.contains("\"error\"")), "{path}: {events:?}");
        }
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn streams_without_any_data_are_errors() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream, json!({})).await;
    let empty_sse = || stream_reply(SSE, vec![]);
    let cases: Vec<(&str, Reply)> = vec![
        ("openai", empty_sse()),
        // No content type, no body at all.
        ("openai", Reply::Raw { status: 200, headers: vec![], pieces: vec![], chunked: false }),
        ("openai", stream_reply(SSE, vec![b": keep-alive\n\ndata: [DONE]\n\n".to_vec()])),
        ("mistral", stream_reply(SSE, vec![b"data: [DONE]\n\n".to_vec()])),
        ("gemini", empty_sse()),
        (
            "anthropic",
            stream_reply(
                SSE,
                vec![
                    (anthropic_event("ping", json!({"type": "ping"}))
                        + &anthropic_event("message_stop", json!({"type": "message_stop"})))
                        .into_bytes(),
                ],
            ),
        ),
        (
            "cohere",
            stream_reply(
                "application/stream+json",
                vec![b"{\"is_finished\":false,\"event_type\":\"stream-start\",\"generation_id\":\"g\"}\n".to_vec()],
            ),
        ),
        ("bedrock", stream_reply("application/vnd.amazon.eventstream", vec![])),
    ];
    for (name, reply) in cases {
        for (path, request) in stream_requests(name) {
            upstream.push(reply.clone());
            let ctx = format!("{name} {path} {reply:?}");
            let events = stream(&gw, &path, &request, &ctx).await;
            assert_eq!(events.len(), 1, "{ctx}: {events:?}");
            let event: Value = serde_json::from_str(&events[0]).unwrap();
            assert_eq!(event, error_event("upstream stream ended without any data"), "{ctx}");
        }
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn json_answers_to_stream_requests_are_502_json_errors() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream, json!({})).await;
    let ignored = "upstream answered a streaming request with a non-streaming JSON body";
    let chat_completion = json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}]});
    let problem = |body: Value| Reply::body(200, "application/problem+json; charset=utf-8", body.to_string());
    let cases: Vec<(&str, Reply, &str)> = vec![
        // A server or proxy that ignored `stream: true`.
        ("openai", Reply::Json(200, chat_completion.clone()), ignored),
        ("groq", Reply::body(200, "Application/JSON; charset=utf-8", chat_completion.to_string()), ignored),
        ("bedrock", Reply::Json(200, converse_ok("whole")), ignored),
        ("cohere", Reply::Json(200, json!({"response_id": "r", "text": "whole"})), ignored),
        ("openai", Reply::body(200, "application/json", ""), ignored),
        // An error reported with a 2xx: its message, through the provider's error mapping.
        (
            "openai",
            Reply::Json(200, json!({"error": {"message": "The model is overloaded", "type": "server_error"}})),
            "The model is overloaded",
        ),
        ("mistral", problem(json!({"error": "upstream connect error"})), "upstream connect error"),
        (
            "gemini",
            Reply::Json(
                200,
                json!([{"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}]),
            ),
            "Resource has been exhausted",
        ),
        (
            "anthropic",
            Reply::Json(200, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            "Overloaded",
        ),
    ];
    for (name, reply, message) in cases {
        let [(native, native_body), (v1, v1_body)] = stream_requests(name);
        let ctx = format!("{name} {reply:?}");
        upstream.push(reply.clone());
        let (status, ct, text) = gw.post_text(&native, &native_body).await;
        assert_eq!(status, 502, "{ctx}: {text}");
        assert!(ct.starts_with("application/json"), "{ctx}: {ct}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"detail": message}), "{ctx}");

        upstream.push(reply);
        let (status, ct, text) = gw.post_text(&v1, &v1_body).await;
        assert_eq!(status, 502, "{ctx}: {text}");
        assert!(ct.starts_with("application/json"), "{ctx}: {ct}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["message"], message, "{ctx}: {body}");
        assert!(body["error"]["type"].is_string(), "{ctx}: {body}");
    }
    gw.assert_alive().await;
}

fn rejected_too_large(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("aigw_rejected_total{reason=\"response_too_large\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn metrics(gw: &Gateway) -> String {
    gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn an_oversized_stream_event_ends_the_stream_and_is_counted() {
    const CAP: usize = 64 * 1024;
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream, json!({"max_response_body": "64KiB"})).await;
    assert_eq!(rejected_too_large(&metrics(&gw).await), 0);
    let too_large = format!("upstream sent a stream event larger than {CAP} bytes (aigw.max_response_body)");

    // Many events far beyond the cap in total, each below it: fine (the cap is per event).
    let event = openai_chunk(&"x".repeat(1000), Value::Null);
    let mut many = vec![event.repeat(200).into_bytes()];
    many.push(openai_body(true));
    upstream.push(stream_reply(SSE, many));
    let events = stream(&gw, "/v1/chat/completions", &stream_requests("openai")[1].1, "many events").await;
    assert_eq!(events.len(), 200 + 3, "all events relayed");

    // One `data:` line that never ends (1 MiB of it is sent, 16 KiB at a time): the event so
    // far, then the error, long before the upstream is done.
    let endless = |first: &str, start: &str| {
        let mut pieces = vec![first.as_bytes().to_vec(), start.as_bytes().to_vec()];
        pieces.extend(std::iter::repeat_n(vec![b'x'; 16 * 1024], 64));
        pieces
    };
    for (path, request) in stream_requests("openai") {
        upstream.push(stream_reply(SSE, endless(&openai_chunk("Hel", Value::Null), "data: {\"id\":\"")));
        let events = stream(&gw, &path, &request, &path).await;
        assert_eq!(events.len(), 2, "{path}: {events:?}");
        assert!(events[0].contains("Hel"), "{path}: {events:?}");
        assert_eq!(serde_json::from_str::<Value>(&events[1]).unwrap(), error_event(&too_large), "{path}");
    }
    // The same for an event of many data lines, and for a Cohere NDJSON line.
    let line = format!("data: {}\n", "y".repeat(1000));
    upstream
        .push(stream_reply(SSE, vec![openai_chunk("Hel", Value::Null).into_bytes(), line.repeat(100).into_bytes()]));
    let events = stream(&gw, "/endpoints/openai/invocations", &stream_requests("openai")[0].1, "data lines").await;
    assert_eq!(serde_json::from_str::<Value>(events.last().unwrap()).unwrap(), error_event(&too_large));
    let first = "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Hel\"}\n";
    upstream.push(stream_reply(
        "application/stream+json",
        endless(first, "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\""),
    ));
    let events = stream(&gw, "/v1/chat/completions", &stream_requests("cohere")[1].1, "cohere").await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("Hel"), "{events:?}");
    assert_eq!(serde_json::from_str::<Value>(&events[1]).unwrap(), error_event(&too_large));
    assert_eq!(rejected_too_large(&metrics(&gw).await), 4, "every refused event is counted");

    // A JSON answer to a stream request is read up to the same cap.
    upstream.push(Reply::Json(200, json!({"error": {"message": "z".repeat(CAP)}})));
    let (status, body) = gw.post("/endpoints/openai/invocations", &stream_requests("openai")[0].1).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("max_response_body"), "{body}");
    assert_eq!(rejected_too_large(&metrics(&gw).await), 5);
    gw.assert_alive().await;
}

/// A JSON answer to a stream request is an answer: with retries configured and on a FALLBACK
/// route, the call is not repeated (the upstream may have billed it).
#[tokio::test]
async fn json_answers_to_stream_requests_are_not_retried() {
    let upstream = MockUpstream::start().await;
    let backup = MockUpstream::start().await;
    let ep = |name: &str, base: String| {
        json!({"name": name, "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-x", "config": {"openai_api_key": "sk-retry-0000000", "openai_api_base": base}},
        "retry": {"max_attempts": 3, "backoff_ms": 1, "max_backoff_ms": 1}})
    };
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [ep("primary", format!("{}/v1", upstream.url())), ep("backup", format!("{}/v1", backup.url()))],
        "routes": [{"name": "ha", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                    "destinations": [{"name": "primary"}, {"name": "backup"}]}]})))
    .await;
    upstream.handle(|_| Reply::Json(200, json!({"error": {"message": "overloaded", "type": "server_error"}})));
    let (status, _, text) = gw
        .post_text(
            "/endpoints/ha/invocations",
            &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
        )
        .await;
    assert_eq!(status, 502, "{text}");
    assert_eq!(upstream.requests().len(), 1, "the answered call was repeated");
    assert!(backup.requests().is_empty(), "the answered call fell back");
}
