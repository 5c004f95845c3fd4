//! Replays MLflow 3.17.2's recorded request/response pairs (tests/fixtures/mlflow) end to end:
//! client → real aigw binary → real HTTP mock upstream → back. Checks the exact upstream
//! request (method, path and query, the gateway's headers, JSON payload) and the exact client
//! answer (apart from time-derived fields), for JSON and streamed answers, with streams also
//! replayed split at arbitrary byte positions.
//!
//! Deliberate differences from MLflow (product.md §4) are applied to the expectations and
//! named where they are.

mod common;

use std::time::Duration;

use common::upstream::{MockUpstream, Reply};
use common::{Gateway, assert_json_eq, fixture, split_points, sse_data, yaml};
use serde_json::{Map, Value, json};

/// Where a provider's base URL is configured, and its default.
fn base_key(provider: &str) -> (&'static str, &'static str) {
    match provider {
        "openai" | "azure" => ("openai_api_base", "https://api.openai.com/v1"),
        "groq" => ("api_base", "https://api.groq.com/openai/v1"),
        "deepseek" => ("api_base", "https://api.deepseek.com/v1"),
        "xai" => ("api_base", "https://api.x.ai/v1"),
        "openrouter" => ("api_base", "https://openrouter.ai/api/v1"),
        "ollama" => ("api_base", "http://localhost:11434/v1"),
        other => panic!("no base key known for provider {other}"),
    }
}

/// `https://host/path` → `http://127.0.0.1:port/path`.
fn rebase(url: &str, mock: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    format!("{mock}{path}")
}

/// Point an endpoint's provider at the mock upstream.
fn point_at(endpoint: &mut Value, mock: &str) {
    let provider = endpoint["model"]["provider"].as_str().unwrap().to_owned();
    let (key, default) = base_key(&provider);
    let config = endpoint["model"]["config"].as_object_mut().unwrap();
    let current = config.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
    config.insert(key.into(), Value::from(rebase(&current, mock)));
}

struct Case {
    name: &'static str,
    /// Changes to the expected upstream payload (product decisions).
    payload_patch: Map<String, Value>,
}

fn case(name: &'static str) -> Case {
    Case { name, payload_patch: Map::new() }
}

async fn replay(case: Case) {
    let fx = fixture(&format!("{}.json", case.name));
    let streamed = fx["upstream_response"].is_array();
    let splits: Vec<Option<u64>> = if streamed { vec![None, Some(1), Some(2), Some(3)] } else { vec![None] };
    for split in splits {
        replay_once(&fx, &case, split).await;
    }
}

async fn replay_once(fx: &Value, case: &Case, split: Option<u64>) {
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;

    let status = fx["upstream_status"].as_u64().unwrap_or(200) as u16;
    match &fx["upstream_response"] {
        Value::Array(lines) => {
            let bytes: Vec<u8> = lines.iter().flat_map(|l| l.as_str().unwrap().bytes()).collect();
            let pieces = match split {
                // As MLflow's recording: one piece per line.
                None => lines.iter().map(|l| l.as_str().unwrap().as_bytes().to_vec()).collect(),
                Some(seed) => split_points(&bytes, seed, 12),
            };
            upstream.push(Reply::sse(pieces, Duration::from_millis(1)));
        }
        body => upstream.push(Reply::Json(status, body.clone())),
    }

    let path = fx["client_path"].as_str().unwrap();
    let (got_status, content_type, text) = gw.post_text(path, &fx["client_request"]).await;
    let ctx = format!("{} (split {split:?})", case.name);

    // The upstream request.
    let req = upstream.last();
    assert_eq!(req.method, fx["expected_upstream_method"].as_str().unwrap_or("POST"), "{ctx}");
    assert_eq!(req.target, fx["expected_upstream_path"].as_str().unwrap(), "{ctx}: upstream path");
    for (name, value) in fx["expected_upstream_headers"].as_object().unwrap() {
        if name.eq_ignore_ascii_case("accept-encoding") {
            // aigw asks for identity so it can translate bodies without decompressing.
            assert_eq!(req.header(name), Some("identity"), "{ctx}");
            continue;
        }
        assert_eq!(req.header(name), value.as_str(), "{ctx}: upstream header {name}");
    }
    assert_eq!(req.header("content-type"), Some("application/json"), "{ctx}");
    let mut expected_payload = fx["expected_upstream_payload"].clone();
    for (k, v) in &case.payload_patch {
        expected_payload[k] = v.clone();
    }
    assert_json_eq(&req.json(), &expected_payload, &[]);

    // The client answer.
    let expected_status = fx["expected_client_status"].as_u64().unwrap() as u16;
    assert_eq!(got_status, expected_status, "{ctx}: status; body: {text}");
    match &fx["expected_client_response"] {
        Value::Array(events) => {
            assert!(content_type.starts_with("text/event-stream"), "{ctx}: {content_type}");
            let mut got = sse_data(&text);
            if path.starts_with("/v1/") {
                assert_eq!(got.pop().as_deref(), Some("[DONE]"), "{ctx}: /v1 streams end with [DONE]");
            } else {
                assert!(!text.contains("[DONE]"), "{ctx}: native streams have no [DONE]");
            }
            let expected: Vec<Value> = events
                .iter()
                .map(|e| serde_json::from_str(e.as_str().unwrap().trim().strip_prefix("data: ").unwrap()).unwrap())
                .collect();
            let got: Vec<Value> = got.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            assert_eq!(got.len(), expected.len(), "{ctx}: events\n{text}");
            for (g, e) in got.iter().zip(&expected) {
                assert_json_eq(g, e, &["created"]);
            }
        }
        expected => {
            assert!(content_type.starts_with("application/json"), "{ctx}: {content_type}");
            let got: Value = serde_json::from_str(&text).unwrap();
            assert_json_eq(&got, expected, &["created", "total_tokens"]);
        }
    }
    gw.assert_alive().await;
}

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

replay_tests! {
    openai_chat => case("openai-chat");
    openai_chat_tools => case("openai-chat-tools");
    openai_chat_stream => case("openai-chat-stream");
    openai_completions => case("openai-completions");
    openai_completions_stream => case("openai-completions-stream");
    openai_embeddings => case("openai-embeddings");
    openai_compat_v1_chat => case("openai-compat-v1-chat");
    openai_upstream_error => case("openai-upstream-error");
    // Product fix 5: model.config parameters are defaults, sent when the request leaves them unset.
    openai_model_params_are_defaults => Case {
        name: "openai-model-params-in-config-ignored",
        payload_patch: json!({"temperature": 0.7, "max_tokens": 1000, "top_p": 0.9}).as_object().unwrap().clone(),
    };
    azure_chat => case("azure-chat");
    azure_completions => case("azure-completions");
    azure_embeddings => case("azure-embeddings");
    groq_chat => case("groq-chat");
    deepseek_chat => case("deepseek-chat");
    xai_chat => case("xai-chat");
    openrouter_chat => case("openrouter-chat");
    ollama_chat => case("ollama-chat");
}
