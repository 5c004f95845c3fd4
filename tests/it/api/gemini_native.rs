//! Gemini's generateContent (`/gateway/gemini/v1beta/models/{endpoint}:…`) to a `gemini`
//! endpoint: nothing is translated. The client's body reaches Gemini as sent (what only Google
//! serves included, plus the endpoint's model defaults it leaves unset), at the endpoint's model
//! with the endpoint's key; the answer comes back byte for byte, whole or event by event at any
//! split (as server-sent events, or one JSON array without `alt=sse`), with its usage in the
//! audit line; errors are Google's shape; gateway keys are read from `x-goog-api-key`, `?key=`
//! or a bearer token.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, split_points, yaml};

const KEY: &str = "gemini-native-test-key-0123456789";
const CLIENT_KEY: &str = "aigw-client-key-0123456789";

fn gemini(upstream: &MockUpstream) -> Value {
    json!({"name": "gem", "endpoint_type": "llm/v1/chat",
           "model": {"provider": "gemini", "name": "gemini-2.5-flash",
                     "config": {"gemini_api_key": KEY, "gemini_api_base": format!("{}/v1beta/models", upstream.url()),
                                "temperature": 0.3}}})
}

async fn start(upstream: &MockUpstream, extra: Value) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let audit = dir.join("audit.log");
    let mut aigw = json!({"audit": {"path": audit}});
    if let Value::Object(o) = extra {
        for (k, v) in o {
            aigw[k] = v;
        }
    }
    let embeddings = json!({"name": "emb", "endpoint_type": "llm/v1/embeddings", "model": {"provider": "mock"}});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [gemini(upstream), embeddings], "aigw": aigw}))).await;
    (gw, audit)
}

/// What the google-genai SDK sends, with what only Google serves (search grounding, a safety
/// threshold, a cached prompt) and Gemini's own spelling of everything.
fn request() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "Search the news"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"googleSearch": {}}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}],
        "cachedContent": "cachedContents/abc",
        "generationConfig": {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 512, "includeThoughts": true}}
    })
}

fn answer() -> Value {
    json!({"candidates": [{"content": {"parts": [{"text": "Looked it up.", "thought": true}, {"text": "Nothing new."}], "role": "model"},
                           "finishReason": "STOP", "index": 0,
                           "groundingMetadata": {"webSearchQueries": ["news"]}}],
           "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 6, "thoughtsTokenCount": 4, "totalTokenCount": 40},
           "modelVersion": "gemini-2.5-flash", "responseId": "abc123"})
}

async fn last_audit(path: &std::path::Path) -> Value {
    let mut line = Value::Null;
    crate::common::wait_until(Duration::from_secs(10), "the audit line", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text.lines().rev().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["family"] == "gemini")
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
async fn a_whole_answer_is_forwarded_and_relayed_unchanged() {
    let upstream = MockUpstream::start().await;
    let body = serde_json::to_vec(&answer()).unwrap();
    upstream.push(Reply::body(200, "application/json", body.clone()));
    let (gw, audit) = start(&upstream, json!({})).await;
    let r = gw
        .client
        .post(gw.url("/gateway/gemini/v1beta/models/gem:generateContent"))
        .header("x-goog-api-key", "client-key-is-not-forwarded")
        .json(&request())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), body, "the answer is relayed byte for byte");
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1beta/models/gemini-2.5-flash:generateContent", "the endpoint's model");
    assert_eq!(sent.header("x-goog-api-key"), Some(KEY), "the endpoint's key, not the client's");
    let mut expected = request();
    // The endpoint's model default the client left unset (Gemini shares the unified scale).
    expected["generationConfig"]["temperature"] = json!(0.3);
    assert_eq!(sent.json(), expected, "everything the client sent reaches Gemini");
    let line = last_audit(&audit).await;
    assert_eq!((line["status"].as_u64(), line["endpoint"].as_str()), (Some(200), Some("gem")));
    // Output tokens count the thoughts too (candidates 6 + thoughts 4), as MLflow 3.18 does.
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(30), Some(10)));
}

fn event_stream() -> String {
    let events = [
        json!({"candidates": [{"content": {"parts": [{"text": "Nothing"}], "role": "model"}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 30, "totalTokenCount": 30}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
        json!({"candidates": [{"content": {"parts": [{"text": " new."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 3, "totalTokenCount": 33},
               "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
    ];
    events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect()
}

#[tokio::test]
async fn a_stream_is_relayed_event_by_event_at_any_split_as_sse_or_a_json_array() {
    let upstream = MockUpstream::start().await;
    let (gw, audit) = start(&upstream, json!({})).await;
    let stream = event_stream();
    for seed in 0..3 {
        upstream.push(Reply::sse(split_points(stream.as_bytes(), seed, 6), Duration::from_millis(1)));
        let (status, ct, text) =
            gw.post_text("/gateway/gemini/v1beta/models/gem:streamGenerateContent?alt=sse", &request()).await;
        assert_eq!((status, ct.as_str()), (200, "text/event-stream; charset=utf-8"));
        assert_eq!(text, stream, "split {seed}");
        let sent = upstream.last();
        assert_eq!(sent.target, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    }
    let line = last_audit(&audit).await;
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(30), Some(3)));
    // Without alt=sse the client gets Google's default: the same events as one JSON array.
    upstream.push(Reply::sse(split_points(stream.as_bytes(), 7, 6), Duration::from_millis(1)));
    let (status, ct, text) = gw.post_text("/gateway/gemini/v1beta/models/gem:streamGenerateContent", &request()).await;
    assert_eq!((status, ct.as_str()), (200, "application/json; charset=utf-8"));
    let array: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let expected: Vec<Value> = stream
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(array, Value::Array(expected));
    assert_eq!(upstream.last().target, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
}

#[tokio::test]
async fn geminis_errors_keep_googles_shape_and_a_cut_stream_ends_with_an_error() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream, json!({})).await;
    let quota =
        json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}});
    upstream.push(Reply::Json(429, quota.clone()));
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/gem:generateContent", &request()).await;
    assert_eq!(status, 429);
    assert_eq!(error, quota, "Gemini's own error, in its own shape");
    let bad =
        json!({"error": {"code": 400, "message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"}});
    upstream.push(Reply::Json(400, bad.clone()));
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/gem:generateContent", &request()).await;
    assert_eq!((status, error), (400, bad));
    // The upstream stream stops before any finishReason: the relayed events, then the error.
    let cut = event_stream().split("\r\n\r\n").next().unwrap().to_owned() + "\r\n\r\n";
    upstream.push(Reply::sse(vec![cut.clone().into_bytes()], Duration::from_millis(1)));
    let (status, _, text) =
        gw.post_text("/gateway/gemini/v1beta/models/gem:streamGenerateContent?alt=sse", &request()).await;
    assert_eq!(status, 200);
    let (first, rest) = text.split_at(cut.len());
    assert_eq!(first, cut);
    let error: Value = serde_json::from_str(rest.trim().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!((&error["error"]["code"], &error["error"]["status"]), (&json!(502), &json!("UNAVAILABLE")), "{text}");
    // An embeddings endpoint cannot serve generateContent.
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/emb:generateContent", &request()).await;
    assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")), "{error}");
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/gem:countTokens", &request()).await;
    assert_eq!((status, &error["error"]["status"]), (404, &json!("NOT_FOUND")), "{error}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_in_googles_shape() {
    let upstream = MockUpstream::start().await;
    let (gw, _audit) = start(&upstream, json!({"max_request_body": "64KiB"})).await;
    let big = json!({"contents": [{"role": "user", "parts": [{"text": "x".repeat(100_000)}]}]});
    let (status, error) = gw.post("/gateway/gemini/v1beta/models/gem:generateContent", &big).await;
    assert_eq!((status, &error["error"]["code"]), (413, &json!(413)), "{error}");
    assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn gateway_keys_from_x_goog_api_key_the_query_or_a_bearer_token() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|_| Reply::Json(200, answer()));
    let keys = json!({"auth": {"keys": [{"name": "app", "key": CLIENT_KEY},
                                        {"name": "other", "key": "aigw-other-key-0123456789", "endpoints": ["emb"]}]}});
    let (gw, _audit) = start(&upstream, keys).await;
    let url = gw.url("/gateway/gemini/v1beta/models/gem:generateContent");
    let send = |r: reqwest::RequestBuilder| async move {
        let r = r.json(&request()).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    let (status, error) = send(gw.client.post(&url)).await;
    assert_eq!(status, 401);
    assert_eq!((&error["error"]["code"], &error["error"]["status"]), (&json!(401), &json!("UNAUTHENTICATED")));
    let (status, _) = send(gw.client.post(&url).header("x-goog-api-key", "wrong-key-0123456789")).await;
    assert_eq!(status, 401);
    assert_eq!(send(gw.client.post(&url).header("x-goog-api-key", CLIENT_KEY)).await.0, 200);
    assert_eq!(send(gw.client.post(format!("{url}?key={CLIENT_KEY}"))).await.0, 200);
    assert_eq!(send(gw.client.post(&url).bearer_auth(CLIENT_KEY)).await.0, 200);
    let (status, error) = send(gw.client.post(&url).header("x-goog-api-key", "aigw-other-key-0123456789")).await;
    assert_eq!((status, &error["error"]["status"]), (403, &json!("PERMISSION_DENIED")), "{error}");
    assert_eq!(upstream.requests().len(), 3, "only the allowed requests went upstream");
    for r in upstream.requests() {
        assert_eq!(r.header("x-goog-api-key"), Some(KEY));
        assert!(!r.target.contains("key="), "the client's key never goes upstream: {}", r.target);
    }
    // `?key=` is read on Gemini's routes only.
    let (status, _) = gw.post(&format!("/v1/chat/completions?key={CLIENT_KEY}"), &json!({"model": "gem"})).await;
    assert_eq!(status, 401);
    assert!(!gw.logs().contains(CLIENT_KEY), "the key is never logged");
}
