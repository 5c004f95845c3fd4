//! `gemini` through the real binary: MLflow's fixtures replayed (see tests/it/common/replay.rs)
//! with exact checks of the time-derived ids and a `/v1` streaming run; then error paths:
//! Gemini's error bodies relayed with their status and message (native and `/v1` shapes), an
//! error event in the middle of a stream, provider rule violations (422) before any upstream
//! call, and configuration errors (the last two checks cover the deprecated `palm` provider
//! too, which shares this module's gateway; its own tests are in `providers::palm`).
//!
//! Gemini answers carry ids MLflow derives from the clock (`gemini-chat-<now>`,
//! `gemini-chat-stream-<now>`, `gemini-completions-stream-<now>`), recorded at frozen time
//! 1700000000. The replay cases ignore `created` and `id` (which also hides the tool-call ids
//! nested in `tool_calls`), so `*_exact_ids` runs each fixture once more and checks every id:
//! time-derived ones must be `<prefix>-<created>` with `created` taken during the call, all
//! others (tool-call ids: `functionCall.id` or `call_` + md5) must equal the fixture's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common;
use crate::common::replay::{Case, default_reply, expected_events, point_at, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

const GEMINI: (&str, &str) = ("gemini_api_base", "https://generativelanguage.googleapis.com/v1beta/models");

/// Time-derived values differ from the recording; `*_exact_ids` checks them.
const TIME: &[&str] = &["created", "id"];

replay_tests! {
    gemini_chat => Case { ignore: TIME, ..Case::new("gemini-chat", GEMINI) };
    gemini_chat_tools => Case { ignore: TIME, ..Case::new("gemini-chat-tools", GEMINI) };
    gemini_chat_stream => Case { ignore: TIME, ..Case::new("gemini-chat-stream", GEMINI) };
    gemini_completions => Case::new("gemini-completions", GEMINI);
    gemini_completions_stream => Case { ignore: TIME, ..Case::new("gemini-completions-stream", GEMINI) };
    gemini_completions_stream_v1 => Case { ignore: TIME, via_v1: true, ..Case::new("gemini-completions-stream", GEMINI) };
    gemini_embeddings_single => Case::new("gemini-embeddings-single", GEMINI);
    gemini_embeddings_batch => Case::new("gemini-embeddings-batch", GEMINI);
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Replace the fixture's time-derived values in `expected` with the ones `got` carries, after
/// checking that they are consistent: `created` within [`t0`, `t1`] and every id ending in the
/// frozen time `-1700000000` equal to the same prefix followed by `-<created>`.
fn patch_time(expected: &mut Value, got: &Value, t0: u64, t1: u64) {
    let created = got["created"].as_u64().expect("created");
    assert!((t0..=t1).contains(&created), "created {created} outside the call [{t0}, {t1}]");
    assert_eq!(expected["created"], json!(1_700_000_000));
    expected["created"] = json!(created);
    if let Some(id) = expected["id"].as_str()
        && let Some(prefix) = id.strip_suffix("-1700000000")
    {
        let want = format!("{prefix}-{created}");
        assert_eq!(got["id"], json!(want), "time-derived id");
        expected["id"] = json!(want);
    }
}

async fn exact_ids(name: &'static str) {
    let fx = fixture(&format!("{name}.json"));
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new(name, GEMINI), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;
    upstream.push(default_reply(&fx, None));

    let t0 = now();
    let (status, _, text) = gw.post_text(fx["client_path"].as_str().unwrap(), &fx["client_request"]).await;
    let t1 = now();
    assert_eq!(status, 200, "{text}");
    if fx["expected_client_response"].is_array() {
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
        let got: Vec<Value> = events.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        let mut expected = expected_events(&fx);
        assert_eq!(got.len(), expected.len(), "{text}");
        for (g, e) in got.iter().zip(&mut expected) {
            patch_time(e, g, t0, t1);
            assert_json_eq(g, e, &[]);
        }
    } else {
        let got: Value = serde_json::from_str(&text).unwrap();
        let mut expected = fx["expected_client_response"].clone();
        patch_time(&mut expected, &got, t0, t1);
        assert_json_eq(&got, &expected, &[]);
    }
}

#[tokio::test]
async fn gemini_chat_exact_ids() {
    exact_ids("gemini-chat").await;
}

#[tokio::test]
async fn gemini_chat_tools_exact_ids() {
    // The tool-call id MLflow generates when Gemini gives none: "call_" + md5 of
    // `get_weather/{"location": "Singapore"}`.
    let fx = fixture("gemini-chat-tools.json");
    assert_eq!(
        fx["expected_client_response"]["choices"][0]["message"]["tool_calls"][0]["id"],
        json!("call_c8800a29b7c6d0e92541b3fa793048ab")
    );
    exact_ids("gemini-chat-tools").await;
}

#[tokio::test]
async fn gemini_chat_stream_exact_ids() {
    exact_ids("gemini-chat-stream").await;
}

#[tokio::test]
async fn gemini_completions_stream_exact_ids() {
    exact_ids("gemini-completions-stream").await;
}

/// `/v1/chat/completions` with `stream: true`: OpenAI framing (`[DONE]` last), the deltas
/// concatenate to the whole answer, exactly one chunk has a finish reason, usage arrives.
#[tokio::test]
async fn v1_chat_stream() {
    let fx = fixture("gemini-chat-stream.json");
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new("gemini-chat-stream", GEMINI), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;

    for split in [None, Some(5)] {
        upstream.push(default_reply(&fx, split));
        let (status, ct, text) = gw
            .post_text(
                "/v1/chat/completions",
                &json!({"model": "gemini-chat", "messages": [{"role": "user", "content": "Hi"}], "stream": true}),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
        let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        assert_eq!(content, "Hello world");
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finishes, vec![&json!("stop")]);
        assert!(
            chunks.iter().all(|c| c["object"] == json!("chat.completion.chunk") && c["model"] == "gemini-2.0-flash")
        );
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], json!(4));
        let req = upstream.last();
        assert_eq!(req.target, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
        assert_eq!(req.json()["contents"], json!([{"role": "user", "parts": [{"text": "Hi"}]}]));
    }
    gw.assert_alive().await;
}

// ---- error paths ----

/// A gateway with Gemini and PaLM endpoints on `base` (PaLM's tests in `providers::palm` use it too).
pub(super) fn config(base: &str) -> String {
    let gemini = |name: &str, ty: &str, model: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "gemini", "name": model,
                         "config": {"gemini_api_key": "gk-secret", "gemini_api_base": format!("{base}/v1beta/models")}}})
    };
    let palm = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "palm", "name": "chat-bison",
                         "config": {"palm_api_key": "pk-secret", "palm_api_base": format!("{base}/v1beta3/models")}}})
    };
    yaml(&json!({"endpoints": [
        gemini("chat", "llm/v1/chat", "gemini-2.0-flash"),
        gemini("completions", "llm/v1/completions", "gemini-2.0-flash"),
        gemini("emb", "llm/v1/embeddings", "text-embedding-004"),
        palm("palm-chat", "llm/v1/chat"),
        palm("palm-completions", "llm/v1/completions"),
    ]}))
}

pub(super) fn hi(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn google_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

#[tokio::test]
async fn upstream_errors_keep_status_and_message() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;

    upstream.push(Reply::Json(
        400,
        google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(false)).await;
    assert_eq!((status, body), (400, json!({"detail": "API key not valid. Please pass a valid API key."})));

    upstream.push(Reply::Json(429, google_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted")));
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["message"], json!("Resource has been exhausted"));

    // A streamed call refused before its first byte is an HTTP error, not a stream.
    upstream.push(Reply::Json(429, google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded")));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(true)).await;
    assert_eq!((status, body), (429, json!({"detail": "Quota exceeded"})));

    upstream.push(Reply::Json(404, google_error(404, "NOT_FOUND", "models/nope is not found")));
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": ["a", "b"]})).await;
    assert_eq!((status, body), (404, json!({"detail": "models/nope is not found"})));

    // The key went as x-goog-api-key, never into an answer.
    let req = upstream.last();
    assert_eq!(req.header("x-goog-api-key"), Some("gk-secret"));
    assert_eq!(req.target, "/v1beta/models/text-embedding-004:batchEmbedContents");
    gw.assert_alive().await;
}

#[tokio::test]
async fn unreadable_answer_is_502() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::body(200, "application/json", "{\"candidates\": [oops"));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains("gk-secret"));
}

#[tokio::test]
async fn error_event_mid_stream_ends_the_stream() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let pieces = vec![
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}]}\r\n\r\n".to_vec(),
        b"data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"
            .to_vec(),
    ];
    for path in ["/endpoints/chat/invocations", "/v1/chat/completions"] {
        upstream.push(Reply::sse(pieces.clone(), Duration::from_millis(1)));
        let mut req = hi(true);
        if path.starts_with("/v1") {
            req["model"] = json!("chat");
        }
        let (status, _, text) = gw.post_text(path, &req).await;
        assert_eq!(status, 200);
        let events = sse_data(&text);
        assert_eq!(events.len(), 2, "{path}: {text}");
        let first: Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], json!("Hel"));
        let err: Value = serde_json::from_str(&events[1]).unwrap();
        assert_eq!(err["error"]["message"], json!("The model is overloaded."), "{text}");
        assert!(!text.contains("[DONE]"), "{text}");
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn completions_stream_on_v1() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::sse(
        vec![
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"An old\"}]}}]}\n\n".to_vec(),
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" pond\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"totalTokenCount\":9}}\n\n".to_vec(),
        ],
        Duration::from_millis(1),
    ));
    let (status, _, text) =
        gw.post_text("/v1/completions", &json!({"model": "completions", "prompt": "haiku", "stream": true})).await;
    assert_eq!(status, 200);
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["text"].as_str()).collect();
    assert_eq!(text, "An old pond");
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], json!("stop"));
    assert!(chunks.iter().all(|c| c["usage"].is_null() && c["object"] == json!("text_completion.chunk")));
    assert_eq!(upstream.last().target, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
}

#[tokio::test]
async fn rule_violations_are_422_before_any_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;

    let (status, body) = gw
        .post(
            "/endpoints/chat/invocations",
            &json!({"messages": [{"role": "user", "content": "hi"}], "maxOutputTokens": 5}),
        )
        .await;
    assert_eq!((status, body), (422, json!({"detail": "Invalid parameter maxOutputTokens. Use max_tokens instead."})));

    let unknown_tool = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_x", "content": "42"}
    ]});
    let (status, body) = gw.post("/endpoints/chat/invocations", &unknown_tool).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("call_x"), "{body}");
    let mut v1 = unknown_tool.clone();
    v1["model"] = json!("chat");
    let (status, body) = gw.post("/v1/chat/completions", &v1).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["type"], json!("invalid_request_error"));

    let (status, body) = gw
        .post(
            "/endpoints/palm-chat/invocations",
            &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        )
        .await;
    assert_eq!((status, body), (422, json!({"detail": "Max tokens is not supported for PaLM chat."})));

    assert!(upstream.requests().is_empty(), "no upstream call for a refused request");
}

#[tokio::test]
async fn tool_round_trip_goes_upstream_as_function_parts() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::Json(
        200,
        json!({"candidates": [{"content": {"parts": [{"text": "It is 30C."}], "role": "model"}, "finishReason": "STOP"}]}),
    ));
    let req = json!({"messages": [
        {"role": "user", "content": "Weather in Singapore?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_c8800a29b7c6d0e92541b3fa793048ab", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\": \"Singapore\"}"}}]},
        {"role": "tool", "tool_call_id": "call_c8800a29b7c6d0e92541b3fa793048ab", "content": "{\"temp_c\": 30}"}
    ]});
    let (status, body) = gw.post("/endpoints/chat/invocations", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("It is 30C."));
    assert_eq!(
        upstream.last().json()["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Singapore?"}]},
            {"role": "model", "parts": [{"functionCall": {"id": "call_c8800a29b7c6d0e92541b3fa793048ab",
                "name": "get_weather", "args": {"location": "Singapore"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"id": "call_c8800a29b7c6d0e92541b3fa793048ab",
                "name": "get_weather", "response": {"temp_c": 30}}}]}
        ])
    );
}

fn check(yaml_text: &str, envs: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gateway.yaml");
    std::fs::write(&p, yaml_text).unwrap();
    let mut cmd = std::process::Command::new(common::binary());
    cmd.args(["-t", "--config-path"]).arg(&p).env_remove("MLFLOW_GATEWAY_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_errors_name_the_field() {
    let endpoint = |provider: &str, config: Value, name: Option<&str>| {
        let mut model = json!({"provider": provider, "config": config});
        if let Some(n) = name {
            model["name"] = json!(n);
        }
        yaml(&json!({"endpoints": [{"name": "e", "endpoint_type": "llm/v1/chat", "model": model}]}))
    };
    let cases = [
        (endpoint("gemini", json!({}), Some("m")), "gemini_api_key"),
        (
            endpoint("gemini", json!({"gemini_api_key": "$AIGW_TEST_UNSET_GEMINI_KEY"}), Some("m")),
            "AIGW_TEST_UNSET_GEMINI_KEY",
        ),
        (
            endpoint("gemini", json!({"gemini_api_key": "gk-secret", "gemini_api_base": "not a url"}), Some("m")),
            "gemini_api_base",
        ),
        (endpoint("gemini", json!({"gemini_api_key": "gk-secret"}), None), "model.name"),
        (endpoint("palm", json!({}), Some("m")), "palm_api_key"),
        (
            endpoint("palm", json!({"palm_api_key": "gk-secret", "palm_api_base": "ftp://x"}), Some("m")),
            "palm_api_base",
        ),
    ];
    for (text, field) in cases {
        let out = check(&text, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{field}: {err}");
        assert!(err.contains(field), "{field}: {err}");
        assert!(!err.contains("gk-secret"), "{err}");
    }
}

#[test]
fn example_configs_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples");
    for name in ["gemini.yaml", "palm.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let out = check(&text, &[("GEMINI_API_KEY", "example"), ("PALM_API_KEY", "example")]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let out = check(&text, &[]);
        assert_eq!(out.status.code(), Some(1), "{name} needs its key variable");
    }
}

// ---- extensions of the client APIs (docs/client-apis.md, "Extensions per provider") ----

/// A Gemini answer that thought (`thought: true` parts, sent because the request asked for
/// them) before it answered.
fn thoughtful_answer() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "The user greets me.", "thought": true},
        {"text": "Hello!"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 5, "totalTokenCount": 10}})
}

/// `/v1/messages` with `top_k` and `thinking`: `generationConfig.topK` and a thinking budget
/// with the thoughts included; the thought parts come back as a `thinking` block, not text.
#[tokio::test]
async fn messages_top_k_and_thinking_reach_gemini() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::Json(200, thoughtful_answer()));
    let request = json!({"model": "chat", "max_tokens": 4096, "top_k": 40,
                         "thinking": {"type": "enabled", "budget_tokens": 2048},
                         "messages": [{"role": "user", "content": "Hi"}]});
    let (status, body) = gw.post("/v1/messages", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        upstream.last().json()["generationConfig"],
        json!({"candidateCount": 1, "maxOutputTokens": 4096, "topK": 40,
               "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}})
    );
    assert_eq!(
        body["content"],
        json!([{"type": "thinking", "thinking": "The user greets me.", "signature": ""},
               {"type": "text", "text": "Hello!"}])
    );
    // Output tokens include the thinking tokens (2 candidates + 5 thoughts, MLflow 3.18).
    assert_eq!(body["usage"]["output_tokens"], json!(7), "{body}");
}

/// `/v1/responses` with `reasoning.effort`, streamed: Google's budget for the effort, the
/// thoughts streamed as the reasoning item's summary and the text as the message; reasoning
/// tokens reported.
#[tokio::test]
async fn responses_reasoning_effort_reaches_gemini() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let events = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Thinking", "thought": true}]}}]}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 5, "totalTokenCount": 10}}),
    ];
    let sse: Vec<Vec<u8>> = events.iter().map(|e| format!("data: {e}\r\n\r\n").into_bytes()).collect();
    upstream.push(Reply::sse(sse, Duration::ZERO));
    let request = json!({"model": "chat", "input": "Hi", "stream": true, "reasoning": {"effort": "medium"}});
    let (status, _, text) = gw.post_text("/v1/responses", &request).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        upstream.last().json()["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    let data: Vec<Value> = sse_data(&text).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    let completed = data.iter().find(|e| e["type"] == "response.completed").expect("response.completed");
    let output = &completed["response"]["output"];
    assert_eq!(output[0]["type"], json!("reasoning"));
    assert_eq!(output[0]["summary"], json!([{"type": "summary_text", "text": "Thinking"}]));
    assert_eq!(output[1]["content"][0]["text"], json!("Hello!"));
    assert_eq!(completed["response"]["usage"]["output_tokens_details"], json!({"reasoning_tokens": 5}));
    // Output tokens include the reasoning tokens, as OpenAI's do (2 + 5, MLflow 3.18).
    assert_eq!(completed["response"]["usage"]["output_tokens"], json!(7));
    assert_eq!(completed["response"]["usage"]["total_tokens"], json!(10));

    // An effort Gemini has no equivalent for is a 400 naming the field, before any call.
    let calls = upstream.requests().len();
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "chat", "input": "Hi", "reasoning": {"effort": "xhigh"}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], json!("reasoning.effort"));
    assert_eq!(upstream.requests().len(), calls);
}

/// The thoughts of a chat answer are `reasoning_content`, and its reasoning tokens
/// `completion_tokens_details.reasoning_tokens`; completion tokens count them too
/// (`candidatesTokenCount + thoughtsTokenCount`, MLflow 3.18; 3.17 said 2).
#[tokio::test]
async fn chat_answer_thoughts_are_reasoning_content() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::Json(200, thoughtful_answer()));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("Hello!"));
    assert_eq!(body["choices"][0]["message"]["reasoning_content"], json!("The user greets me."));
    assert_eq!(body["usage"]["completion_tokens"], json!(7));
    assert_eq!(body["usage"]["total_tokens"], json!(10));
    assert_eq!(body["usage"]["thoughtsTokenCount"], json!(5));
    assert_eq!(body["usage"]["completion_tokens_details"], json!({"reasoning_tokens": 5}));
}

// ---- MLflow 3.18 (docs/mlflow-compat.md#mlflow-318) ----

/// `gemini_api_base` is normalised into a models base as MLflow 3.18 does: a bare origin gets
/// `/v1beta/models`, a version gets `/models`, a relay's prefix is kept, and so is the base's
/// query, blank values included, with a stream's `alt=sse` after it (3.17 used the value
/// literally and dropped `flag=`).
#[tokio::test]
async fn api_base_is_normalised_and_its_query_kept() {
    let upstream = MockUpstream::start().await;
    let base = upstream.url();
    let endpoint = |name: &str, api_base: String| {
        json!({"name": name, "endpoint_type": "llm/v1/chat",
               "model": {"provider": "gemini", "name": "gemini-2.0-flash",
                         "config": {"gemini_api_key": "gk-secret", "gemini_api_base": api_base}}})
    };
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        endpoint("origin", base.clone()),
        endpoint("v1", format!("{base}/v1/")),
        endpoint("relay", format!("{base}/relay/v1alpha?key=abc&flag=")),
    ]})))
    .await;
    let answer = json!({"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]});
    let stream =
        b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]},\"finishReason\":\"STOP\"}]}\r\n\r\n";
    for (name, stream_it, target) in [
        ("origin", false, "/v1beta/models/gemini-2.0-flash:generateContent"),
        ("v1", false, "/v1/models/gemini-2.0-flash:generateContent"),
        ("relay", false, "/relay/v1alpha/models/gemini-2.0-flash:generateContent?key=abc&flag="),
        ("relay", true, "/relay/v1alpha/models/gemini-2.0-flash:streamGenerateContent?key=abc&flag=&alt=sse"),
    ] {
        if stream_it {
            upstream.push(Reply::sse(vec![stream.to_vec()], Duration::ZERO));
        } else {
            upstream.push(Reply::Json(200, answer.clone()));
        }
        let (status, _, text) = gw.post_text(&format!("/endpoints/{name}/invocations"), &hi(stream_it)).await;
        assert_eq!(status, 200, "{name}: {text}");
        assert_eq!(upstream.last().target, target, "{name}");
    }
}

/// A `gemini_api_base` ending in `/models` without an API version before it is refused at load
/// with MLflow 3.18's message (3.17 loaded it).
#[test]
fn a_versionless_models_base_is_refused_at_load() {
    for api_base in ["https://relay.example.com/models", "https://relay.example.com/v2/models/"] {
        let text = yaml(&json!({"endpoints": [{"name": "e", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "gemini", "name": "m",
                      "config": {"gemini_api_key": "gk-secret", "gemini_api_base": api_base}}}]}));
        let out = check(&text, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{api_base}: {err}");
        assert!(err.contains("gemini_api_base"), "{err}");
        assert!(
            err.contains(
                "gemini_api_base ending in /models must include a supported API version (/v1, /v1beta, or /v1alpha) immediately before /models."
            ),
            "{err}"
        );
        assert!(!err.contains("gk-secret"), "{err}");
    }
}

/// What Gemini answers to a prompt it refuses: no candidates, the reason, prompt usage only.
fn blocked_prompt() -> Value {
    json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6}})
}

/// Chat and completions answers as MLflow 3.18 translates them: all text parts joined, the
/// safety and policy finish reasons `content_filter`, a filtered candidate kept without
/// content, and a blocked prompt one `content_filter` choice (3.17: the first part only,
/// `safety`, candidates dropped, `choices: []`).
#[tokio::test]
async fn filtered_answers_and_blocked_prompts() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let answer = json!({"candidates": [
        {"content": {"role": "model", "parts": [{"text": "Hello, "}, {"text": "world"}]}, "finishReason": "STOP"},
        {"finishReason": "PROHIBITED_CONTENT"},
        {"content": {"role": "model", "parts": [{"text": "Partial"}]}, "finishReason": "RECITATION"}
    ], "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 3, "totalTokenCount": 7}});

    upstream.push(Reply::Json(200, answer.clone()));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    let message =
        |content: Value| json!({"role": "assistant", "content": content, "tool_calls": null, "refusal": null});
    assert_eq!(
        body["choices"],
        json!([
            {"index": 0, "message": message(json!("Hello, world")), "finish_reason": "stop"},
            {"index": 1, "message": message(Value::Null), "finish_reason": "content_filter"},
            {"index": 2, "message": message(json!("Partial")), "finish_reason": "content_filter"}
        ])
    );

    upstream.push(Reply::Json(200, answer));
    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"],
        json!([
            {"index": 0, "text": "Hello, world", "finish_reason": "stop"},
            {"index": 1, "text": "", "finish_reason": "content_filter"},
            {"index": 2, "text": "Partial", "finish_reason": "content_filter"}
        ])
    );

    upstream.push(Reply::Json(200, blocked_prompt()));
    let (status, body) = gw.post("/endpoints/chat/invocations", &hi(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": message(Value::Null), "finish_reason": "content_filter"}])
    );
    assert_eq!(
        (&body["usage"]["prompt_tokens"], &body["usage"]["completion_tokens"], &body["usage"]["total_tokens"]),
        (&json!(6), &Value::Null, &json!(6))
    );

    upstream.push(Reply::Json(200, blocked_prompt()));
    let (status, body) = gw.post("/v1/completions", &json!({"model": "completions", "prompt": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"], json!([{"index": 0, "text": "", "finish_reason": "content_filter"}]));
    gw.assert_alive().await;
}

/// A blocked prompt in a stream is one `content_filter` chunk and a complete stream ending in
/// `[DONE]`, on both routes, for chat and completions (3.17: an empty chunk; before this
/// aigw called the stream incomplete).
#[tokio::test]
async fn a_blocked_prompt_completes_a_stream() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let event = format!("data: {}\r\n\r\n", blocked_prompt()).into_bytes();
    let chat_choice = json!({"index": 0, "finish_reason": "content_filter",
                             "delta": {"role": "assistant", "content": "", "tool_calls": null}});
    let completions_choice = json!({"index": 0, "finish_reason": "content_filter", "text": ""});
    let cases = [
        ("/endpoints/chat/invocations", hi(true), &chat_choice),
        (
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": true}),
            &chat_choice,
        ),
        ("/endpoints/completions/invocations", json!({"prompt": "hi", "stream": true}), &completions_choice),
        ("/v1/completions", json!({"model": "completions", "prompt": "hi", "stream": true}), &completions_choice),
    ];
    for (path, request, choice) in cases {
        upstream.push(Reply::sse(vec![event.clone()], Duration::ZERO));
        let (status, _, text) = gw.post_text(path, &request).await;
        assert_eq!(status, 200, "{path}: {text}");
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{path}: {text}");
        assert_eq!(events.len(), 1, "{path}: {text}");
        let chunk: Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(chunk["choices"], json!([choice]), "{path}: {text}");
    }
    gw.assert_alive().await;
}
