//! `/v1/responses` to a provider that speaks OpenAI's Responses API itself (`openai`, and Azure
//! OpenAI's v1 API): nothing is translated. The client's body reaches OpenAI with only `model`
//! replaced (its stateful fields, built-in tools and unknown fields included), the answer comes
//! back byte for byte, whole or event by event at any split, with its usage in the audit line.

use std::time::Duration;

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, split_points, yaml};
use serde_json::{Value, json};

const KEY: &str = "sk-openai-native-test-key-0123456789";

fn endpoints(upstream: &MockUpstream) -> Value {
    json!([
        {"name": "gpt", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "openai", "name": "gpt-5-mini",
                   "config": {"openai_api_key": KEY, "openai_api_base": format!("{}/v1", upstream.url())}}},
        {"name": "azure-gpt", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "openai", "name": "gpt-5-mini",
                   "config": {"openai_api_key": KEY, "openai_api_type": "azure", "openai_api_base": upstream.url(),
                              "openai_deployment_name": "my-deployment", "openai_api_version": "2024-06-01"}}},
        {"name": "mock", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "name": "m"}}
    ])
}

async fn start(upstream: &MockUpstream) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let audit = dir.join("audit.log");
    let gw =
        Gateway::start(&yaml(&json!({"endpoints": endpoints(upstream), "aigw": {"audit": {"path": audit}}}))).await;
    (gw, audit)
}

/// A Codex-like request with what only OpenAI serves: a stored previous response, a built-in
/// tool, encrypted reasoning.
fn stateful_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "previous_response_id": "resp_prev",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "search the web"}]}],
        "tools": [{"type": "web_search"}],
        "include": ["reasoning.encrypted_content", "web_search_call.action.sources"],
        "reasoning": {"effort": "low", "summary": "auto"},
        "store": true
    })
}

fn response() -> Value {
    json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "gpt-5-mini",
           "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                       "content": [{"type": "output_text", "text": "done", "annotations": []}]}],
           "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10}, "output_tokens": 6,
                     "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 36}})
}

async fn last_audit(path: &std::path::Path) -> Value {
    let mut line = Value::Null;
    crate::common::wait_until(Duration::from_secs(10), "the audit line", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["family"] == "responses")
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
async fn a_whole_response_is_forwarded_to_openai_and_relayed_unchanged() {
    let upstream = MockUpstream::start().await;
    let answer = serde_json::to_vec(&response()).unwrap();
    upstream.push(Reply::body(200, "application/json", answer.clone()));
    let (gw, audit) = start(&upstream).await;
    let r = gw
        .client
        .post(gw.url("/v1/responses"))
        .header("authorization", "Bearer client-token-not-forwarded")
        .header("openai-beta", "responses=v1")
        .json(&stateful_request("gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), answer);
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/responses");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(sent.header("openai-beta"), Some("responses=v1"));
    let mut expected = stateful_request("gpt-5-mini", false);
    expected["model"] = json!("gpt-5-mini");
    assert_eq!(sent.json(), expected, "everything the client sent reaches OpenAI");
    let line = last_audit(&audit).await;
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(30), Some(6)));
}

#[tokio::test]
async fn azure_gets_its_v1_responses_api_with_the_deployment_as_model() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Json(200, response()));
    let (gw, _audit) = start(&upstream).await;
    let (status, _) = gw.post("/v1/responses", &stateful_request("azure-gpt", false)).await;
    assert_eq!(status, 200);
    let sent = upstream.last();
    assert_eq!(sent.target, "/openai/v1/responses");
    assert_eq!(sent.header("api-key"), Some(KEY));
    assert_eq!(sent.json()["model"], json!("my-deployment"));
}

#[tokio::test]
async fn a_stream_is_relayed_event_by_event_at_any_split() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    let events = [
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "status": "in_progress"}}),
        ),
        (
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "done"}),
        ),
        ("response.completed", json!({"type": "response.completed", "sequence_number": 2, "response": response()})),
    ];
    let stream: String = events.iter().map(|(n, d)| format!("event: {n}\ndata: {d}\n\n")).collect();
    for seed in 0..3 {
        upstream.push(Reply::sse(split_points(stream.as_bytes(), seed, 5), Duration::from_millis(1)));
        let (status, ct, text) = gw.post_text("/v1/responses", &stateful_request("gpt", true)).await;
        assert_eq!((status, ct.starts_with("text/event-stream")), (200, true));
        assert_eq!(text, stream, "split {seed}");
    }
}

#[tokio::test]
async fn native_only_fields_need_a_provider_that_speaks_responses() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    let (status, body) = gw.post("/v1/responses", &stateful_request("mock", false)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], json!("previous_response_id"));
    assert!(body["error"]["message"].as_str().unwrap().contains("Responses API itself"), "{body}");
    assert!(upstream.requests().is_empty());
}

/// OpenAI's stream breaks off mid-way: the client has OpenAI's events so far, then one `error`
/// event numbered after them, and no `response.created` or `response.failed` of the gateway's
/// (they would name another response than the one under way; the Python SDK's stream helper
/// raises "Lifecycle response identity changed" on them instead of the error).
#[tokio::test]
async fn a_stream_cut_short_ends_with_one_error_event_after_the_relayed_ones() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream).await;
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "status": "in_progress"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "do"}),
    ];
    let relayed: String =
        events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect();
    upstream.push(Reply::CutAfter {
        status: 200,
        content_type: "text/event-stream".into(),
        pieces: vec![relayed.clone().into_bytes()],
    });
    let (status, _, text) = gw.post_text("/v1/responses", &stateful_request("gpt", true)).await;
    assert_eq!(status, 200);
    let rest = text.strip_prefix(&relayed).unwrap_or_else(|| panic!("the relayed events first: {text}"));
    assert!(rest.starts_with("event: error\n"), "{rest}");
    assert_eq!(rest.matches("event: ").count(), 1, "{rest}");
    let error: Value = serde_json::from_str(rest.lines().nth(1).unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["sequence_number"], json!(2));
    assert_eq!(error["error"]["message"], error["message"], "the nested error the Python SDK raises on");
    assert!(error["message"].as_str().unwrap().contains("before a complete answer"), "{error}");
}

/// Native forwarding keeps unknown fields (README, "Responses API"): a field OpenAI added after
/// this version of aigw reaches OpenAI as sent.
#[tokio::test]
async fn an_unknown_field_reaches_openai_on_the_native_path() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Json(200, response()));
    let (gw, _audit) = start(&upstream).await;
    let mut request = stateful_request("gpt", false);
    request["future_field"] = json!({"x": 1});
    let (status, body) = gw.post("/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.last().json()["future_field"], json!({"x": 1}));
}
