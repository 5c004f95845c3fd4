//! Fixture replay for `bedrock` / `amazon-bedrock` (tests/fixtures/mlflow/bedrock-*.json).
//!
//! The fixtures record MLflow's boto3 calls as their REST equivalent; aigw makes those REST
//! calls itself, signed with SigV4 (verified here from scratch, independently of the signing
//! crate) or with `Authorization: Bearer`. Differences from the recording:
//! * the model id is percent-encoded in the path (`…-v1%3A0/converse`), as boto3 and every AWS
//!   SDK send it on the wire (the fixtures show the decoded REST path);
//! * ConverseStream answers are real event-stream frames built from the recorded events and
//!   replayed split at random byte positions.

use common::bedrock as bedrock_util;
#[path = "it/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};

use bedrock_util::{check_fixture_sigv4, stream_fixture_reply, wire_path};
use common::replay::{Case, point_at, replay};
use common::upstream::{MockUpstream, Reply};
use common::{Gateway, assert_json_eq, fixture, yaml};
use serde_json::{Value, json};

const BEDROCK: (&str, &str) = ("bedrock_api_base", "https://bedrock-runtime.us-east-1.amazonaws.com");

/// A Bedrock case: the recorded REST path with the model id percent-encoded, as sent on the wire.
fn bedrock(name: &'static str) -> Case {
    Case { expect_path: wire_path, ..Case::new(name, BEDROCK) }
}

fn bearer_check(requests: &[common::upstream::Recorded]) {
    let r = &requests[0];
    assert_eq!(r.header("authorization"), Some("Bearer token"));
    assert_eq!(r.header("x-amz-date"), None, "no SigV4 with a bearer token");
    assert_eq!(r.header("content-type"), Some("application/json"));
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
    bedrock_chat => Case { check_upstream: check_fixture_sigv4, ..bedrock("bedrock-chat") };
    bedrock_chat_bearer => Case { check_upstream: bearer_check, ..bedrock("bedrock-chat-bearer") };
    bedrock_chat_stream => Case {
        reply: Some(stream_fixture_reply),
        check_upstream: check_fixture_sigv4,
        ..bedrock("bedrock-chat-stream")
    };
    bedrock_completions_titan => Case { check_upstream: check_fixture_sigv4, ..bedrock("bedrock-completions-titan") };
    bedrock_completions_anthropic => Case { check_upstream: check_fixture_sigv4, ..bedrock("bedrock-completions-anthropic") };
    bedrock_completions_ai21 => Case { check_upstream: check_fixture_sigv4, ..bedrock("bedrock-completions-ai21") };
    bedrock_completions_cohere => Case { check_upstream: check_fixture_sigv4, ..bedrock("bedrock-completions-cohere") };
}

/// The same fixture under the `amazon-bedrock` alias: `provider` in the answer is the name as
/// configured.
#[tokio::test]
async fn amazon_bedrock_alias_chat() {
    let fx = fixture("bedrock-chat.json");
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    endpoint["model"]["provider"] = json!("amazon-bedrock");
    point_at(&mut endpoint, &Case::new("bedrock-chat", BEDROCK), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;
    upstream.push(Reply::Json(200, fx["upstream_response"].clone()));
    let (status, body) = gw.post("/endpoints/bedrock-chat/invocations", &fx["client_request"]).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = fx["expected_client_response"].clone();
    expected["provider"] = json!("amazon-bedrock");
    assert_json_eq(&body, &expected, &["created"]);
    check_fixture_sigv4(&upstream.requests());
}

/// The stream fixture through `/v1/chat/completions`: same events, then `[DONE]`.
#[tokio::test]
async fn bedrock_chat_stream_v1() {
    let fx = fixture("bedrock-chat-stream.json");
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new("bedrock-chat-stream", BEDROCK), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;
    upstream.push(stream_fixture_reply(&fx, Some(7)));
    let mut request = fx["client_request"].clone();
    request["model"] = json!("bedrock-chat");
    let (status, _, text) = gw.post_text("/v1/chat/completions", &request).await;
    assert_eq!(status, 200, "{text}");
    let mut events = common::sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
    let expected = common::replay::expected_events(&fx);
    assert_eq!(events.len(), expected.len(), "{text}");
    for (g, e) in events.iter().zip(&expected) {
        assert_json_eq(&serde_json::from_str(g).unwrap(), e, &["created"]);
    }
    check_fixture_sigv4(&upstream.requests());
}

/// `bedrock-embeddings.json`: one signed InvokeModel call per input, made concurrently (so the
/// mock answers by request body, not by arrival order); usage sums `inputTextTokenCount`.
#[tokio::test]
async fn bedrock_embeddings() {
    let fx = fixture("bedrock-embeddings.json");
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new("bedrock-embeddings", BEDROCK), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;

    let calls = fx["expected_upstream_calls"].as_array().unwrap().clone();
    let answers = fx["upstream_response"].as_array().unwrap().clone();
    let pairs: Arc<Mutex<Vec<(Value, Value)>>> =
        Arc::new(Mutex::new(calls.iter().map(|c| c["payload"].clone()).zip(answers).collect()));
    let table = pairs.clone();
    upstream.handle(move |r| {
        let body = r.json();
        let table = table.lock().unwrap();
        match table.iter().find(|(payload, _)| *payload == body) {
            Some((_, answer)) => Reply::Json(200, answer.clone()),
            None => Reply::Json(400, json!({"message": format!("unexpected body {body}")})),
        }
    });

    let (status, body) = gw.post(fx["client_path"].as_str().unwrap(), &fx["client_request"]).await;
    assert_eq!(status, 200, "{body}");
    assert_json_eq(&body, &fx["expected_client_response"], &[]);

    let mut requests = upstream.requests();
    assert_eq!(requests.len(), calls.len());
    requests.sort_by_key(|r| r.json()["inputText"].as_str().map(str::to_owned));
    let mut calls = calls;
    calls.sort_by_key(|c| c["payload"]["inputText"].as_str().map(str::to_owned));
    for (r, c) in requests.iter().zip(&calls) {
        assert_eq!(r.method, c["method"].as_str().unwrap());
        assert_eq!(r.target, wire_path(&fx, c["path"].as_str().unwrap()));
        assert_eq!(r.json(), c["payload"]);
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    check_fixture_sigv4(&requests);
}
