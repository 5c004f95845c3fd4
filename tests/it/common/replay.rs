//! The fixture replay engine: MLflow's recorded request/response pairs (tests/fixtures/mlflow:
//! 3.17.2's recordings, streams updated to 3.18.0's answers) run end to end: client → real aigw binary → real HTTP mock upstream
//! → back. It checks the exact upstream request (method, path and query, the gateway's headers,
//! JSON payload) and the exact client answer (apart from time-derived fields), for JSON and
//! streamed answers, with streams also replayed split at arbitrary byte positions.
//!
//! Each provider's module (`tests/it/providers/<provider>.rs`) lists its fixtures as [`Case`]s
//! in a [`replay_tests!`] block, with deliberate differences from MLflow (docs/mlflow-compat.md#fixes) applied
//! to the expectations and named where they are.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use super::upstream::{MockUpstream, Recorded, Reply};
use super::{Gateway, assert_json_eq, fixture, split_points, sse_data, yaml};

/// One fixture and how to replay it.
pub struct Case {
    /// Fixture file name without `.json`.
    pub name: &'static str,
    /// The provider config key holding the base URL, and the provider's default base URL.
    /// The replay points it at the mock upstream (keeping the path).
    pub base: (&'static str, &'static str),
    /// Adjust the expected upstream payload (aigw's decisions, each named at the call).
    pub expect_payload: fn(&mut Value),
    /// Adjust the expected client answer (each JSON answer, or each stream event).
    pub expect_answer: fn(&mut Value),
    /// Keys ignored anywhere when comparing client answers (time-derived values).
    pub ignore: &'static [&'static str],
    /// Upstream headers from the fixture not to compare (e.g. replaced by signing).
    pub skip_headers: &'static [&'static str],
    /// Build the mock upstream's reply from the fixture instead of the default (JSON body,
    /// or for a list of lines an SSE body). Receives the fixture and the split seed.
    pub reply: Option<fn(&Value, Option<u64>) -> Reply>,
    /// Extra environment for the gateway process (credentials, endpoints).
    pub env: &'static [(&'static str, &'static str)],
    /// Extra checks on the recorded upstream request(s).
    pub check_upstream: fn(&[Recorded]),
    /// The expected upstream path, from the fixture and its recorded path (Bedrock
    /// percent-encodes the model id where MLflow's recording shows it raw).
    pub expect_path: fn(&Value, &str) -> String,
    /// Send the fixture's request through the OpenAI-compatible route of its endpoint type
    /// (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`) with `model` = the
    /// endpoint's name, instead of the recorded native path. Everything upstream and the
    /// answer must be the same (streams end with `data: [DONE]` on both routes).
    pub via_v1: bool,
}

/// One `#[tokio::test]` per `test_name => case;` line, replaying the case with [`replay`].
macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            $crate::common::replay::replay($case).await;
        }
    )*};
}
pub(crate) use replay_tests;

fn nothing(_: &mut Value) {}
fn no_check(_: &[Recorded]) {}

impl Case {
    /// A case with no adjustments.
    pub fn new(name: &'static str, base: (&'static str, &'static str)) -> Case {
        Case {
            name,
            base,
            expect_payload: nothing,
            expect_answer: nothing,
            ignore: &["created"],
            skip_headers: &[],
            reply: None,
            env: &[],
            check_upstream: no_check,
            expect_path: |_, p| p.to_owned(),
            via_v1: false,
        }
    }
}

/// `https://host/path` → `http://127.0.0.1:port/path`.
pub fn rebase(url: &str, mock: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    format!("{mock}{path}")
}

/// Point an endpoint's provider at the mock upstream.
pub fn point_at(endpoint: &mut Value, case: &Case, mock: &str) {
    let (key, default) = case.base;
    let config = endpoint["model"]["config"].as_object_mut().expect("model.config");
    let current = config.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
    config.insert(key.into(), Value::from(rebase(&current, mock)));
}

/// Replay a case: once as recorded, and for streams also split at several random points.
pub async fn replay(case: Case) {
    let fx = fixture(&format!("{}.json", case.name));
    // A stream fixture: upstream lines, or (binary framings such as Bedrock's event stream) a
    // custom reply whose expected answer is a list of events.
    let streamed =
        fx["upstream_response"].is_array() || (case.reply.is_some() && fx["expected_client_response"].is_array());
    let splits: Vec<Option<u64>> = if streamed { vec![None, Some(1), Some(2), Some(3)] } else { vec![None] };
    for split in splits {
        replay_once(&fx, &case, split).await;
    }
}

/// The default mock reply for a fixture.
pub fn default_reply(fx: &Value, split: Option<u64>) -> Reply {
    let status = fx["upstream_status"].as_u64().unwrap_or(200) as u16;
    match &fx["upstream_response"] {
        Value::Array(lines) => {
            let bytes: Vec<u8> = lines.iter().flat_map(|l| l.as_str().unwrap().bytes()).collect();
            let pieces = match split {
                // As MLflow's recording: one piece per line.
                None => lines.iter().map(|l| l.as_str().unwrap().as_bytes().to_vec()).collect(),
                Some(seed) => split_points(&bytes, seed, 12),
            };
            Reply::sse(pieces, Duration::from_millis(1))
        }
        body => Reply::Json(status, body.clone()),
    }
}

/// The stream terminator every successful stream ends with (MLflow 3.18,
/// docs/mlflow-compat.md#mlflow-318).
pub const DONE_EVENT: &str = "data: [DONE]\n\n";

/// The expected chunks of a stream fixture: its JSON events, without the final
/// `data: [DONE]` (which the fixture must have: MLflow 3.18 sends it on every route).
pub fn expected_events(fx: &Value) -> Vec<Value> {
    let events = fx["expected_client_response"].as_array().unwrap();
    let (last, chunks) = events.split_last().expect("a stream fixture has events");
    assert_eq!(last.as_str(), Some(DONE_EVENT), "a stream fixture ends with [DONE]");
    chunks
        .iter()
        .map(|e| serde_json::from_str(e.as_str().unwrap().trim().strip_prefix("data: ").unwrap()).unwrap())
        .collect()
}

async fn replay_once(fx: &Value, case: &Case, split: Option<u64>) {
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, case, &upstream.url());
    let gw = Gateway::start_with(&yaml(&json!({ "endpoints": [endpoint] })), case.env, &[]).await;
    upstream.push(match case.reply {
        Some(f) => f(fx, split),
        None => default_reply(fx, split),
    });

    let (path, request) = if case.via_v1 {
        let route = match fx["endpoint_config"]["endpoint_type"].as_str().unwrap() {
            "llm/v1/chat" => "/v1/chat/completions",
            "llm/v1/completions" => "/v1/completions",
            _ => "/v1/embeddings",
        };
        let mut request = fx["client_request"].clone();
        request["model"] = fx["endpoint_config"]["name"].clone();
        (route, request)
    } else {
        (fx["client_path"].as_str().unwrap(), fx["client_request"].clone())
    };
    let (got_status, content_type, text) = gw.post_text(path, &request).await;
    let ctx = format!("{} via {path} (split {split:?})", case.name);

    // The upstream request.
    let requests = upstream.requests();
    if fx["expected_upstream_path"].is_string() {
        assert_eq!(requests.len(), 1, "{ctx}: one upstream call");
        let req = &requests[0];
        assert_eq!(req.method, fx["expected_upstream_method"].as_str().unwrap_or("POST"), "{ctx}");
        let want = (case.expect_path)(fx, fx["expected_upstream_path"].as_str().unwrap());
        assert_eq!(req.target, want, "{ctx}: upstream path");
        for (name, value) in fx["expected_upstream_headers"].as_object().into_iter().flatten() {
            if case.skip_headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                continue;
            }
            if name.eq_ignore_ascii_case("accept-encoding") {
                // aigw asks for identity so it can translate bodies without decompressing.
                assert_eq!(req.header(name), Some("identity"), "{ctx}");
                continue;
            }
            assert_eq!(req.header(name), value.as_str(), "{ctx}: upstream header {name}");
        }
        let mut expected_payload = fx["expected_upstream_payload"].clone();
        (case.expect_payload)(&mut expected_payload);
        assert_json_eq(&req.json(), &expected_payload, &[]);
    }
    (case.check_upstream)(&requests);

    // The client answer.
    let expected_status = fx["expected_client_status"].as_u64().unwrap() as u16;
    assert_eq!(got_status, expected_status, "{ctx}: status; body: {text}");
    match &fx["expected_client_response"] {
        Value::Array(_) => {
            assert!(content_type.starts_with("text/event-stream"), "{ctx}: {content_type}");
            let mut got = sse_data(&text);
            // Every route ends a stream with exactly one `[DONE]` (MLflow 3.18).
            assert!(text.ends_with(DONE_EVENT), "{ctx}: streams end with [DONE]\n{text}");
            assert_eq!(got.pop().as_deref(), Some("[DONE]"), "{ctx}");
            assert!(!got.iter().any(|e| e == "[DONE]"), "{ctx}: one [DONE]\n{text}");
            let mut expected = expected_events(fx);
            for e in &mut expected {
                (case.expect_answer)(e);
            }
            let got: Vec<Value> = got.iter().map(|d| serde_json::from_str(d).unwrap()).collect();
            assert_eq!(got.len(), expected.len(), "{ctx}: events\n{text}");
            for (g, e) in got.iter().zip(&expected) {
                assert_json_eq(g, e, case.ignore);
            }
        }
        expected => {
            assert!(content_type.starts_with("application/json"), "{ctx}: {content_type}");
            let got: Value = serde_json::from_str(&text).unwrap();
            let mut expected = expected.clone();
            (case.expect_answer)(&mut expected);
            assert_json_eq(&got, &expected, case.ignore);
        }
    }
    gw.assert_alive().await;
}
