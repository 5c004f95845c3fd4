//! `bedrock` / `amazon-bedrock` end to end (helpers: tests/it/common/bedrock.rs).
//!
//! MLflow's fixtures replayed (tests/fixtures/mlflow/bedrock-*.json). The fixtures record
//! MLflow's boto3 calls as their REST equivalent; aigw makes those REST calls itself, signed with
//! SigV4 (verified here from scratch, independently of the signing crate) or with
//! `Authorization: Bearer`. Differences from the recording:
//! * the model id is percent-encoded in the path (`…-v1%3A0/converse`), as boto3 and every AWS
//!   SDK send it on the wire (the fixtures show the decoded REST path);
//! * ConverseStream answers are real event-stream frames built from the recorded events and
//!   replayed split at random byte positions.
//!
//! Credentials: STS AssumeRole (cached, single flight, refreshed before expiry), the default
//! credential chain (aws-config's, resolved at first use through aigw's upstream client) against
//! local mocks of every source it reads: environment keys, the bearer token, profiles in the
//! shared files, `credential_process`, SSO (the cached token at a mock portal),
//! `source_profile`/`role_arn` chains, web identity (IRSA) at a mock STS, the ECS/EKS container
//! endpoint with its token file, and IMDSv2; renewal before expiry in the background, no request
//! waiting for it; `$VAR` secrets, bearer tokens for every call type, endpoint overrides from
//! the environment, partial `aws_config` rejected at load, and a 2 MiB body signed correctly.
//!
//! Error paths: upstream errors in Bedrock's shape (`{"message"}` with `x-amzn-errortype`)
//! relayed with their status and message, exceptions and damaged frames inside a ConverseStream
//! answer, 501 for streamed completions, 422 for provider rules, all before or without hanging
//! the client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::common;
use crate::common::bedrock::{
    chat, check_fixture_sigv4, config, converse_ok, endpoint, env_with, event_frame, event_stream_reply,
    exception_frame, form_field, parse_authorization, rfc3339, start, stream_fixture_reply, sts_answer, sts_answer_for,
    verify_sigv4, wire_path,
};
use crate::common::replay::{Case, point_at, replay_tests};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, free_port, sse_data, yaml};
use aigw::snapshot::Snapshot;
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

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

// ---- credentials ----

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const CHAT: &str = "/endpoints/chat/invocations";
const ROLE: &str = "arn:aws:iam::123456789012:role/bedrock";

fn is_sts(r: &Recorded) -> bool {
    r.target == "/" && String::from_utf8_lossy(&r.body).contains("Action=AssumeRole")
}

/// A mock playing STS (answers from `sts`, numbered credentials) and Bedrock.
fn role_upstream(upstream: &MockUpstream, expires_in: Duration) -> Arc<AtomicUsize> {
    let sts_calls = Arc::new(AtomicUsize::new(0));
    let counter = sts_calls.clone();
    upstream.handle(move |r| {
        if is_sts(r) {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            sts_answer(
                &format!("ASIAROLE{n}"),
                &format!("rolesecret{n}"),
                &format!("token{n}"),
                SystemTime::now() + expires_in,
            )
        } else if r.target.ends_with("/invoke") {
            Reply::Json(200, json!({"embedding": [0.5], "inputTextTokenCount": 1}))
        } else {
            Reply::Json(200, converse_ok("ok"))
        }
    });
    sts_calls
}

fn role_config(base: &str, session: u64) -> String {
    config(&[
        endpoint(
            "chat",
            "llm/v1/chat",
            MODEL,
            json!({"aws_config": {"aws_role_arn": ROLE, "aws_region": "us-east-1", "session_length_seconds": session},
                   "bedrock_api_base": base}),
        ),
        endpoint(
            "emb",
            "llm/v1/embeddings",
            "amazon.titan-embed-text-v1",
            json!({"aws_config": {"aws_role_arn": ROLE, "aws_region": "us-east-1"}, "bedrock_api_base": base}),
        ),
    ])
}

fn bedrock_requests(upstream: &MockUpstream) -> Vec<Recorded> {
    upstream.requests().into_iter().filter(|r| !is_sts(r)).collect()
}

/// Check a Bedrock request is signed with the n-th role credentials.
#[track_caller]
fn signed_with_role(r: &Recorded, n: usize) {
    let auth = verify_sigv4(r, &format!("rolesecret{n}"), "us-east-1", "bedrock");
    assert_eq!(auth.akid, format!("ASIAROLE{n}"));
    assert_eq!(r.header("x-amz-security-token"), Some(format!("token{n}").as_str()));
}

#[tokio::test]
async fn role_credentials_are_assumed_once_and_shared() {
    let upstream = MockUpstream::start().await;
    let sts_calls = role_upstream(&upstream, Duration::from_secs(3600));
    let env = env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "basesecret"),
        ("AWS_ENDPOINT_URL_STS", &upstream.url()),
    ]);
    let gw = start(&role_config(&upstream.url(), 1800), &env).await;
    // Nothing is fetched at load.
    assert_eq!(sts_calls.load(Ordering::SeqCst), 0);

    // Concurrent first requests: one STS call between them (single flight).
    let bodies: Vec<Value> = (0..6).map(|i| chat(&format!("hi {i}"))).collect();
    let calls = bodies.iter().map(|b| gw.post(CHAT, b));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    // Sequential requests and a fan-out reuse the same credentials.
    for _ in 0..3 {
        assert_eq!(gw.post(CHAT, &chat("again")).await.0, 200);
    }
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": ["a", "b", "c", "d"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["prompt_tokens"], 4);

    // Each endpoint has its own role provider: the embeddings endpoint assumed the role once too.
    assert_eq!(sts_calls.load(Ordering::SeqCst), 2);
    let requests = upstream.requests();
    let sts: Vec<&Recorded> = requests.iter().filter(|r| is_sts(r)).collect();
    let chat_sts = sts[0];
    assert_eq!(chat_sts.method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&chat_sts.body),
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbedrock\
         &RoleSessionName=ai-gateway-bedrock&DurationSeconds=1800"
    );
    assert_eq!(chat_sts.header("content-type"), Some("application/x-www-form-urlencoded; charset=utf-8"));
    // STS calls are signed with the default chain's keys, for service `sts`.
    for r in &sts {
        let auth = verify_sigv4(r, "basesecret", "us-east-1", "sts");
        assert_eq!(auth.akid, "AKIDBASE");
    }
    assert!(String::from_utf8_lossy(&sts[1].body).ends_with("DurationSeconds=900"), "default session length");

    let bedrock = bedrock_requests(&upstream);
    assert_eq!(bedrock.len(), 6 + 3 + 4);
    for r in &bedrock {
        let auth = parse_authorization(r.header("authorization").unwrap());
        let n: usize = auth.akid.trim_start_matches("ASIAROLE").parse().unwrap();
        signed_with_role(r, n);
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn role_credentials_are_refreshed_before_they_expire() {
    let upstream = MockUpstream::start().await;
    // Credentials valid for 4 s: used until half their life is left, then replaced.
    let sts_calls = role_upstream(&upstream, Duration::from_secs(4));
    let env = env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "basesecret"),
        ("AWS_ENDPOINT_URL", &upstream.url()),
    ]);
    let gw = start(&role_config(&upstream.url(), 900), &env).await;
    assert_eq!(gw.post(CHAT, &chat("one")).await.0, 200);
    assert_eq!(gw.post(CHAT, &chat("two")).await.0, 200);
    assert_eq!(sts_calls.load(Ordering::SeqCst), 1, "fresh credentials are reused");
    // The subject: real time passing (the credential cache reads the system clock) until the
    // credentials are past half their life.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(gw.post(CHAT, &chat("three")).await.0, 200);
    assert_eq!(sts_calls.load(Ordering::SeqCst), 2, "near expiry, the role is assumed again");
    let bedrock = bedrock_requests(&upstream);
    signed_with_role(&bedrock[0], 1);
    signed_with_role(&bedrock[1], 1);
    signed_with_role(&bedrock[2], 2);
}

#[tokio::test]
async fn credentials_arriving_expired_are_replaced_on_the_next_request() {
    let upstream = MockUpstream::start().await;
    let sts_calls = Arc::new(AtomicUsize::new(0));
    let counter = sts_calls.clone();
    upstream.handle(move |r| {
        if is_sts(r) {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            // Already expired when it arrives.
            sts_answer(
                &format!("ASIAROLE{n}"),
                &format!("rolesecret{n}"),
                &format!("token{n}"),
                SystemTime::now() - Duration::from_secs(60),
            )
        } else {
            Reply::Json(200, converse_ok("ok"))
        }
    });
    let env = env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "basesecret"),
        ("AWS_ENDPOINT_URL_STS", &upstream.url()),
    ]);
    let gw = start(&role_config(&upstream.url(), 900), &env).await;
    assert_eq!(gw.post(CHAT, &chat("one")).await.0, 200);
    assert_eq!(gw.post(CHAT, &chat("two")).await.0, 200);
    assert_eq!(sts_calls.load(Ordering::SeqCst), 2);
    let bedrock = bedrock_requests(&upstream);
    signed_with_role(&bedrock[1], 2);
}

#[tokio::test]
async fn sts_failures_are_502_with_the_sts_message() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|r| {
        if is_sts(r) {
            Reply::body(
                403,
                "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>\
                 <Message>User is not authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>",
            )
        } else {
            Reply::Json(200, converse_ok("never"))
        }
    });
    let env = env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "basesecret"),
        ("AWS_ENDPOINT_URL_STS", &upstream.url()),
    ]);
    let gw = start(&role_config(&upstream.url(), 900), &env).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 502, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("AccessDenied") && detail.contains("not authorized to perform: sts:AssumeRole"),
        "{detail}"
    );
    assert!(!detail.contains("basesecret"));
    assert!(bedrock_requests(&upstream).is_empty());

    // The role needs keys to call STS: with no credentials at all, a clear error.
    let gw = start(&role_config(&upstream.url(), 900), &env_with(&[("AWS_ENDPOINT_URL_STS", &upstream.url())])).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("no AWS credentials found"), "{body}");
}

#[tokio::test]
async fn default_chain_environment_keys() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("ok"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_region": "eu-central-1"}, "bedrock_api_base": upstream.url()}),
    )]);
    let env = env_with(&[
        ("AWS_ACCESS_KEY_ID", "AKIDENV"),
        ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ("AWS_SESSION_TOKEN", "envtoken"),
        ("AWS_BEARER_TOKEN_BEDROCK", "ignored-when-keys-exist"),
    ]);
    let gw = start(&yaml, &env).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    let r = upstream.last();
    let auth = verify_sigv4(&r, "envsecret", "eu-central-1", "bedrock");
    assert_eq!(auth.akid, "AKIDENV");
    assert_eq!(r.header("x-amz-security-token"), Some("envtoken"));
}

#[tokio::test]
async fn default_chain_bearer_token_and_credentials_file() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("ok"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_region": "us-east-1"}, "bedrock_api_base": upstream.url()}),
    )]);
    let gw = start(&yaml, &env_with(&[("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key")])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    let r = upstream.last();
    assert_eq!(r.header("authorization"), Some("Bearer bedrock-api-key"));
    assert_eq!(r.header("x-amz-date"), None);
    drop(gw);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = defaultsecret\n\n\
         [work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = worksecret\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let gw = start(&yaml, &env_with(&[("AWS_SHARED_CREDENTIALS_FILE", path), ("AWS_PROFILE", "work")])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    assert_eq!(verify_sigv4(&upstream.last(), "worksecret", "us-east-1", "bedrock").akid, "AKIDWORK");
    drop(gw);
    // HOME/.aws/credentials, default profile.
    let aws = dir.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::copy(&file, aws.join("credentials")).unwrap();
    let home = dir.path().to_str().unwrap();
    let gw = start(&yaml, &env_with(&[("AWS_SHARED_CREDENTIALS_FILE", ""), ("HOME", home)])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    assert_eq!(verify_sigv4(&upstream.last(), "defaultsecret", "us-east-1", "bedrock").akid, "AKIDDEFAULT");
}

#[tokio::test]
async fn region_only_config_loads_without_credentials() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("never"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_region": "us-east-1"}, "bedrock_api_base": upstream.url()}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&yaml, &env_with(&[("HOME", dir.path().to_str().unwrap())])).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("no AWS credentials found"), "{body}");
    assert!(upstream.requests().is_empty());
    gw.assert_alive().await;
}

#[tokio::test]
async fn missing_region_is_400() {
    let upstream = MockUpstream::start().await;
    // Bearer token, no region, no endpoint override: the URL cannot be built.
    let yaml = config(&[endpoint("chat", "llm/v1/chat", MODEL, json!({"aws_config": {"aws_bearer_token": "t"}}))]);
    let gw = start(&yaml, &env_with(&[])).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("aws_region_name is required"), "{body}");
    // Keys with an endpoint override but no region: SigV4 needs the region.
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_access_key_id": "A", "aws_secret_access_key": "S"}, "bedrock_api_base": upstream.url()}),
    )]);
    let gw = start(&yaml, &env_with(&[])).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 400, "{body}");
    assert!(upstream.requests().is_empty());
    // AWS_REGION fills in.
    upstream.always_json(200, converse_ok("ok"));
    let gw = start(&yaml, &env_with(&[("AWS_REGION", "ap-northeast-1")])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    verify_sigv4(&upstream.last(), "S", "ap-northeast-1", "bedrock");
}

#[tokio::test]
async fn endpoint_url_environment_overrides() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("ok"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret", "aws_region": "us-west-2"}}),
    )]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw =
        start(&yaml, &env_with(&[("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", &upstream.url()), ("AWS_ENDPOINT_URL", &dead)]))
            .await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    let r = upstream.last();
    assert_eq!(r.target, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse");
    verify_sigv4(&r, "secret", "us-west-2", "bedrock");
    drop(gw);
    let gw = start(&yaml, &env_with(&[("AWS_ENDPOINT_URL", &upstream.url())])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn aws_config_secrets_resolve_from_the_environment() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("ok"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_access_key_id": "$MY_AKID", "aws_secret_access_key": "${MY_SECRET}",
                              "aws_session_token": "$MY_TOKEN", "aws_region": "us-east-1"},
               "bedrock_api_base": upstream.url()}),
    )]);
    let gw =
        start(&yaml, &env_with(&[("MY_AKID", "AKIDVAR"), ("MY_SECRET", "varsecret"), ("MY_TOKEN", "vartoken")])).await;
    assert_eq!(gw.post(CHAT, &chat("hi")).await.0, 200);
    let r = upstream.last();
    assert_eq!(verify_sigv4(&r, "varsecret", "us-east-1", "bedrock").akid, "AKIDVAR");
    assert_eq!(r.header("x-amz-security-token"), Some("vartoken"));
    // Nothing of the secret in the log.
    assert!(!gw.logs().contains("varsecret"));
}

#[test]
fn partial_aws_config_is_rejected_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(Value, &str)] = &[
        (json!({"aws_secret_access_key": "S3CR3T"}), "aws_access_key_id"),
        (json!({"aws_access_key_id": "AKID", "aws_region": "us-east-1"}), "aws_secret_access_key"),
        (json!({"aws_session_token": "T0K3N"}), "aws_access_key_id"),
        (json!({"session_length_seconds": 900}), "aws_role_arn"),
        (json!({"aws_region": "us-east-1", "aws_secert_access_key": "S3CR3T"}), "aws_secert_access_key"),
        (json!({"aws_bearer_token": "B", "aws_role_arn": ROLE}), "aws_role_arn"),
    ];
    for (i, (aws, field)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, config(&[endpoint("x", "llm/v1/chat", MODEL, json!({ "aws_config": aws }))])).unwrap();
        let msg = Snapshot::load(&path).err().unwrap_or_else(|| panic!("{aws} must be rejected")).to_string();
        assert!(msg.contains("aws_config") && msg.contains(field), "{aws}: {msg}");
        assert!(!msg.contains("S3CR3T") && !msg.contains("T0K3N"), "secret in {msg}");
    }
    // Complete shapes load, without any I/O.
    for aws in [
        json!({"aws_region": "us-east-1"}),
        json!({}),
        json!({"aws_role_arn": ROLE}),
        json!({"aws_bearer_token": "t"}),
        json!({"aws_access_key_id": "A", "aws_secret_access_key": "S", "aws_session_token": "T"}),
    ] {
        let path = dir.path().join("ok.yaml");
        std::fs::write(&path, config(&[endpoint("x", "llm/v1/chat", MODEL, json!({ "aws_config": aws }))])).unwrap();
        if let Err(e) = Snapshot::load(&path) {
            panic!("{aws} must load: {e}");
        }
    }
}

#[tokio::test]
async fn two_mib_chat_body_is_signed_over_the_whole_body() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, converse_ok("long"));
    let yaml = config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret",
                              "aws_session_token": "sess", "aws_region": "us-east-1"},
               "bedrock_api_base": upstream.url()}),
    )]);
    let gw = start(&yaml, &env_with(&[])).await;
    let text: String = "All work and no play makes Jack a dull boy. ".repeat(2 * 1024 * 1024 / 44 + 1);
    let (status, body) = gw.post(CHAT, &chat(&text)).await;
    assert_eq!(status, 200, "{body}");
    let r = upstream.last();
    assert!(r.body.len() > 2 * 1024 * 1024);
    assert_eq!(r.json()["messages"][0]["content"][0]["text"].as_str(), Some(text.as_str()));
    verify_sigv4(&r, "secret", "us-east-1", "bedrock");
    assert_eq!(r.header("x-amz-security-token"), Some("sess"));
}

#[tokio::test]
async fn bearer_tokens_serve_streams_and_embeddings() {
    let upstream = MockUpstream::start().await;
    let aws = json!({"aws_bearer_token": "$BEDROCK_KEY", "aws_region": "us-east-1"});
    let yaml = config(&[
        endpoint("chat", "llm/v1/chat", MODEL, json!({"aws_config": aws, "bedrock_api_base": upstream.url()})),
        endpoint(
            "emb",
            "llm/v1/embeddings",
            "amazon.titan-embed-text-v2:0",
            json!({"aws_config": aws, "bedrock_api_base": upstream.url()}),
        ),
    ]);
    let gw = start(&yaml, &env_with(&[("BEDROCK_KEY", "key-from-env")])).await;
    let frames: Vec<u8> = [
        json!({"messageStart": {"role": "assistant"}}),
        json!({"contentBlockDelta": {"delta": {"text": "streamed"}, "contentBlockIndex": 0}}),
        json!({"messageStop": {"stopReason": "max_tokens"}}),
    ]
    .iter()
    .flat_map(event_frame)
    .collect();
    upstream.push(event_stream_reply(vec![frames]));
    let mut req = chat("hi");
    req["stream"] = json!(true);
    let (status, _, text) = gw.post_text(CHAT, &req).await;
    assert_eq!(status, 200, "{text}");
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
    assert_eq!(events.len(), 2, "{text}");
    let last: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    let r = upstream.last();
    assert_eq!(r.target, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream");
    assert_eq!(r.header("authorization"), Some("Bearer key-from-env"));

    upstream.always_json(200, json!({"embedding": [1.0, 2.0], "inputTextTokenCount": 2}));
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": "one"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"], json!([1.0, 2.0]));
    let r = upstream.last();
    assert_eq!(r.target, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(r.header("authorization"), Some("Bearer key-from-env"));
    assert_eq!(r.json(), json!({"inputText": "one"}));
}

// ---- the default chain: aws-config's providers against local mocks ----

/// An endpoint using the default chain (`aws_config` with only the region).
fn chain_config(base: &str) -> String {
    config(&[endpoint(
        "chat",
        "llm/v1/chat",
        MODEL,
        json!({"aws_config": {"aws_region": "us-east-1"}, "bedrock_api_base": base}),
    )])
}

/// Check a Bedrock request is signed with these temporary credentials.
#[track_caller]
fn signed_with(r: &Recorded, akid: &str, secret: &str, token: &str) {
    let auth = verify_sigv4(r, secret, "us-east-1", "bedrock");
    assert_eq!(auth.akid, akid);
    assert_eq!(r.header("x-amz-security-token"), Some(token));
}

/// Nothing secret in the gateway's log or answers: none of `secrets` appears.
#[track_caller]
fn log_is_clean(gw: &Gateway, secrets: &[&str]) {
    let logs = gw.logs();
    for s in secrets {
        assert!(!logs.contains(s), "{s} in the log:\n{logs}");
    }
}

/// The JSON credentials document of IMDS and the container endpoints.
fn json_credentials(akid: &str, secret: &str, token: &str, expires: SystemTime) -> Value {
    json!({"Code": "Success", "LastUpdated": rfc3339(SystemTime::now()), "Type": "AWS-HMAC",
           "AccessKeyId": akid, "SecretAccessKey": secret, "Token": token, "Expiration": rfc3339(expires)})
}

const IMDS_TOKEN: &str = "imds-session-token-0123";

/// A mock EC2 instance metadata service (IMDSv2): `PUT /latest/api/token` with a TTL header
/// gives a session token (TTL echoed); every GET must carry it (401 otherwise). The role is
/// `bedrock-role`; its n-th credentials are `ASIAIMDS<n>` / `imdssecret<n>` / `imdstoken<n>`,
/// valid for `valid`; `slow` delays credentials after the first.
fn imds_mock(mock: &MockUpstream, valid: Duration, slow: Duration) -> Arc<AtomicUsize> {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    mock.handle(move |r| {
        if r.method == "PUT" && r.target == "/latest/api/token" {
            let Some(ttl) = r.header("x-aws-ec2-metadata-token-ttl-seconds") else {
                return Reply::body(400, "text/plain", "missing TTL");
            };
            return Reply::Raw {
                status: 200,
                headers: vec![
                    ("content-type".into(), "text/plain".into()),
                    ("x-aws-ec2-metadata-token-ttl-seconds".into(), ttl.to_owned()),
                ],
                pieces: vec![(IMDS_TOKEN.as_bytes().to_vec(), Duration::ZERO)],
                chunked: false,
            };
        }
        if r.header("x-aws-ec2-metadata-token") != Some(IMDS_TOKEN) {
            return Reply::body(401, "text/plain", "Unauthorized");
        }
        match (r.method.as_str(), r.target.as_str()) {
            ("GET", "/latest/meta-data/iam/security-credentials/") => Reply::body(200, "text/plain", "bedrock-role"),
            ("GET", "/latest/meta-data/iam/security-credentials/bedrock-role") => {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let creds = json_credentials(
                    &format!("ASIAIMDS{n}"),
                    &format!("imdssecret{n}"),
                    &format!("imdstoken{n}"),
                    SystemTime::now() + valid,
                );
                let reply = Reply::Json(200, creds);
                if n > 1 && !slow.is_zero() { Reply::Delay(slow, Box::new(reply)) } else { reply }
            }
            _ => Reply::body(404, "text/plain", "Not Found"),
        }
    });
    issued
}

fn imds_env(imds: &MockUpstream) -> Vec<(String, String)> {
    env_with(&[("AWS_EC2_METADATA_DISABLED", "false"), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())])
}

/// EC2 instance metadata (IMDSv2): a session token first, then the role's credentials with
/// the token; Bedrock is signed with them; they are fetched once for many calls.
#[tokio::test]
async fn default_chain_ec2_instance_metadata() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let imds = MockUpstream::start().await;
    let issued = imds_mock(&imds, Duration::from_secs(6 * 3600), Duration::ZERO);
    let gw = start(&chain_config(&bedrock.url()), &imds_env(&imds)).await;
    assert!(imds.requests().is_empty(), "nothing is fetched at load");

    let bodies: Vec<Value> = (0..6).map(|i| chat(&format!("hi {i}"))).collect();
    let calls = bodies.iter().map(|b| gw.post(CHAT, b));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(gw.post(CHAT, &chat("again")).await.0, 200);
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one fetch for concurrent and later calls");
    for r in bedrock.requests() {
        signed_with(&r, "ASIAIMDS1", "imdssecret1", "imdstoken1");
    }
    let requests = imds.requests();
    assert_eq!(requests[0].method, "PUT", "the session token comes first");
    assert_eq!(requests[0].target, "/latest/api/token");
    let ttl: u64 = requests[0].header("x-aws-ec2-metadata-token-ttl-seconds").unwrap().parse().unwrap();
    assert!(ttl > 0);
    for r in &requests[1..] {
        assert_eq!((r.method.as_str(), r.header("x-aws-ec2-metadata-token")), ("GET", Some(IMDS_TOKEN)), "{r:?}");
    }
    log_is_clean(&gw, &["imdssecret1", "imdstoken1", IMDS_TOKEN]);
    gw.assert_alive().await;
}

/// Credentials are renewed before they expire (at half their life when it is short), off the
/// request path: the request that finds them due and every request while the renewal is held
/// up at the metadata service are served the current credentials (none waits for the new
/// ones); one renewal runs, and later requests get its credentials.
#[tokio::test]
async fn default_chain_credentials_are_renewed_before_they_expire() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let imds = MockUpstream::start().await;
    // Valid 6 s (whole seconds: 5 to 6 s when they arrive), so due after about 3 s; the
    // renewal is held up 1.8 s at the metadata service (the SDK gives IMDS 1 s to connect and
    // 1 s to answer).
    let issued = imds_mock(&imds, Duration::from_secs(6), Duration::from_millis(1800));
    let gw = start(&chain_config(&bedrock.url()), &imds_env(&imds)).await;
    assert_eq!(gw.post(CHAT, &chat("first")).await.0, 200);
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    // The subject: real time passing (the credential cache reads the system clock).
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(gw.post(CHAT, &chat("due")).await.0, 200);
    common::wait_until(Duration::from_secs(5), "the renewal to start", || issued.load(Ordering::SeqCst) == 2).await;
    let meanwhile = chat("meanwhile");
    for (status, body) in futures_util::future::join_all((0..3).map(|_| gw.post(CHAT, &meanwhile))).await {
        assert_eq!(status, 200, "{body}");
    }
    let akids = || -> Vec<String> {
        bedrock.requests().iter().map(|r| parse_authorization(r.header("authorization").unwrap()).akid).collect()
    };
    assert_eq!(akids(), ["ASIAIMDS1"; 5], "served the current credentials, none waited for the renewal");
    // Then the renewed ones (polled: the renewal ends when the metadata service answers).
    for _ in 0..100 {
        assert_eq!(gw.post(CHAT, &chat("after")).await.0, 200);
        if akids().last().map(String::as_str) == Some("ASIAIMDS2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(akids().last().map(String::as_str), Some("ASIAIMDS2"));
    assert_eq!(issued.load(Ordering::SeqCst), 2, "one renewal");
}

/// ECS and EKS Pod Identity: the container credentials endpoint
/// (AWS_CONTAINER_CREDENTIALS_FULL_URI) with the authorization token read from
/// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE at each fetch.
#[tokio::test]
async fn default_chain_container_credentials_endpoint() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let agent = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, "pod-identity-token-1").unwrap();
    agent.handle(|r| {
        if r.target != "/v1/credentials" {
            return Reply::Json(404, json!({"message": "not found"}));
        }
        if r.header("authorization") != Some("pod-identity-token-1") {
            return Reply::Json(401, json!({"message": "invalid token"}));
        }
        Reply::Json(
            200,
            json_credentials("ASIAPOD1", "podsecret1", "podtoken1", SystemTime::now() + Duration::from_secs(3600)),
        )
    });
    let env = env_with(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}/v1/credentials", agent.url())),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.to_str().unwrap()),
    ]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    signed_with(&bedrock.last(), "ASIAPOD1", "podsecret1", "podtoken1");
    let r = agent.last();
    assert_eq!((r.method.as_str(), r.header("authorization")), ("GET", Some("pod-identity-token-1")));
    log_is_clean(&gw, &["podsecret1", "podtoken1", "pod-identity-token-1"]);
}

const IRSA_ROLE: &str = "arn:aws:iam::123456789012:role/irsa-bedrock";
const WEB_IDENTITY_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWk6YWlndyJ9.c2ln";

/// Web identity (EKS IRSA): the token file and AWS_ROLE_ARN, exchanged at STS with
/// AssumeRoleWithWebIdentity (unsigned), at AWS_ENDPOINT_URL_STS.
#[tokio::test]
async fn default_chain_web_identity_irsa() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let sts = MockUpstream::start().await;
    sts.handle(|r| {
        if form_field(&r.body, "Action").as_deref() != Some("AssumeRoleWithWebIdentity") {
            return Reply::body(
                400,
                "text/xml",
                "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>",
            );
        }
        sts_answer_for(
            "AssumeRoleWithWebIdentity",
            "ASIAIRSA1",
            "irsasecret1",
            "irsatoken1",
            SystemTime::now() + Duration::from_secs(3600),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, WEB_IDENTITY_TOKEN).unwrap();
    let env = env_with(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
        ("AWS_ROLE_ARN", IRSA_ROLE),
        ("AWS_ROLE_SESSION_NAME", "aigw-irsa"),
        ("AWS_ENDPOINT_URL_STS", &sts.url()),
    ]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    for _ in 0..2 {
        let (status, body) = gw.post(CHAT, &chat("hi")).await;
        assert_eq!(status, 200, "{body}");
    }
    for r in bedrock.requests() {
        signed_with(&r, "ASIAIRSA1", "irsasecret1", "irsatoken1");
    }
    let calls = sts.requests();
    assert_eq!(calls.len(), 1, "cached");
    let r = &calls[0];
    assert_eq!(r.method, "POST");
    assert_eq!(form_field(&r.body, "RoleArn").as_deref(), Some(IRSA_ROLE));
    assert_eq!(form_field(&r.body, "RoleSessionName").as_deref(), Some("aigw-irsa"));
    assert_eq!(form_field(&r.body, "WebIdentityToken").as_deref(), Some(WEB_IDENTITY_TOKEN));
    assert_eq!(r.header("authorization"), None, "AssumeRoleWithWebIdentity is not signed");
    log_is_clean(&gw, &["irsasecret1", "irsatoken1", WEB_IDENTITY_TOKEN]);
}

/// A profile whose credentials come from `credential_process` (a program aigw runs).
#[tokio::test]
async fn default_chain_credential_process_profile() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("creds.sh");
    let runs = dir.path().join("runs");
    let expires = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\ncat <<'EOF'\n{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROC1\", \
             \"SecretAccessKey\": \"procsecret1\", \"SessionToken\": \"proctoken1\", \"Expiration\": \"{expires}\"}}\nEOF\n",
            runs.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_file = dir.path().join("config");
    std::fs::write(&config_file, format!("[profile tooling]\ncredential_process = {}\n", script.display())).unwrap();
    let env = env_with(&[("AWS_CONFIG_FILE", config_file.to_str().unwrap()), ("AWS_PROFILE", "tooling")]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    for _ in 0..3 {
        let (status, body) = gw.post(CHAT, &chat("hi")).await;
        assert_eq!(status, 200, "{body}");
    }
    for r in bedrock.requests() {
        signed_with(&r, "ASIAPROC1", "procsecret1", "proctoken1");
    }
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1, "run once, then cached");
    log_is_clean(&gw, &["procsecret1", "proctoken1"]);
}

const SSO_START_URL: &str = "https://d-92671207e4.awsapps.com/start";
/// The SSO cache file name of [`SSO_START_URL`]: the SHA-1 of the start URL, hex.
const SSO_CACHE_FILE: &str = "13f9d35043871d073ab260e020f0ffde092cb14b.json";
const SSO_ACCESS_TOKEN: &str = "sso-portal-access-token-0123";

/// An SSO profile (what `aws configure sso` writes): the access token `aws sso login` cached
/// under ~/.aws/sso/cache is traded at the SSO portal (GetRoleCredentials, at
/// AWS_ENDPOINT_URL_SSO) for the role's credentials.
#[tokio::test]
async fn default_chain_sso_cached_token() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let portal = MockUpstream::start().await;
    let expires_ms = (SystemTime::now() + Duration::from_secs(3600)).duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let expires_ms = expires_ms.as_millis() as u64;
    portal.handle(move |r| {
        let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
        let mut q: Vec<&str> = query.split('&').collect();
        q.sort_unstable();
        if r.method != "GET"
            || path != "/federation/credentials"
            || q != ["account_id=123456789012", "role_name=BedrockUser"]
            || r.header("x-amz-sso_bearer_token") != Some(SSO_ACCESS_TOKEN)
        {
            return Reply::Json(401, json!({"message": "Session token not found or invalid"}));
        }
        Reply::Json(
            200,
            json!({"roleCredentials": {"accessKeyId": "ASIASSO1", "secretAccessKey": "ssosecret1",
                                       "sessionToken": "ssotoken1", "expiration": expires_ms}}),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join(".aws").join("sso").join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(SSO_CACHE_FILE),
        json!({"startUrl": SSO_START_URL, "region": "us-east-1", "accessToken": SSO_ACCESS_TOKEN,
               "expiresAt": rfc3339(SystemTime::now() + Duration::from_secs(8 * 3600))})
        .to_string(),
    )
    .unwrap();
    let config_file = home.path().join("config");
    std::fs::write(
        &config_file,
        format!(
            "[profile dev]\nsso_start_url = {SSO_START_URL}\nsso_region = us-east-1\n\
             sso_account_id = 123456789012\nsso_role_name = BedrockUser\n"
        ),
    )
    .unwrap();
    let env = env_with(&[
        ("HOME", home.path().to_str().unwrap()),
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
        ("AWS_PROFILE", "dev"),
        ("AWS_ENDPOINT_URL_SSO", &portal.url()),
    ]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    for _ in 0..2 {
        let (status, body) = gw.post(CHAT, &chat("hi")).await;
        assert_eq!(status, 200, "{body}");
    }
    for r in bedrock.requests() {
        signed_with(&r, "ASIASSO1", "ssosecret1", "ssotoken1");
    }
    assert_eq!(portal.requests().len(), 1, "cached");
    log_is_clean(&gw, &["ssosecret1", "ssotoken1", SSO_ACCESS_TOKEN]);
}

/// A profile that assumes a role (`role_arn`) with the keys of another profile
/// (`source_profile`): STS AssumeRole signed with the source keys, Bedrock with the role's.
#[tokio::test]
async fn default_chain_source_profile_role_chain() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("ok"));
    let sts = MockUpstream::start().await;
    sts.handle(|r| {
        if form_field(&r.body, "Action").as_deref() != Some("AssumeRole") {
            return Reply::body(
                400,
                "text/xml",
                "<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>",
            );
        }
        sts_answer("ASIACHAIN1", "chainsecret1", "chaintoken1", SystemTime::now() + Duration::from_secs(3600))
    });
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = basesecret\n").unwrap();
    let config_file = dir.path().join("config");
    std::fs::write(
        &config_file,
        format!("[profile bedrock]\nrole_arn = {ROLE}\nsource_profile = base\nrole_session_name = aigw-chain\n"),
    )
    .unwrap();
    let env = env_with(&[
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
        ("AWS_PROFILE", "bedrock"),
        ("AWS_ENDPOINT_URL_STS", &sts.url()),
    ]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    signed_with(&bedrock.last(), "ASIACHAIN1", "chainsecret1", "chaintoken1");
    let r = sts.last();
    assert_eq!(form_field(&r.body, "RoleArn").as_deref(), Some(ROLE));
    assert_eq!(form_field(&r.body, "RoleSessionName").as_deref(), Some("aigw-chain"));
    let auth = verify_sigv4(&r, "basesecret", "us-east-1", "sts");
    assert_eq!(auth.akid, "AKIDBASE");
    log_is_clean(&gw, &["basesecret", "chainsecret1", "chaintoken1"]);
}

/// `aws_role_arn` on top of a chain that finds temporary credentials (here IMDS): the
/// AssumeRole call is signed with them, session token included.
#[tokio::test]
async fn role_on_top_of_instance_credentials() {
    let upstream = MockUpstream::start().await;
    let sts_calls = role_upstream(&upstream, Duration::from_secs(3600));
    let imds = MockUpstream::start().await;
    imds_mock(&imds, Duration::from_secs(3600), Duration::ZERO);
    let mut env = imds_env(&imds);
    env.push(("AWS_ENDPOINT_URL_STS".into(), upstream.url()));
    let gw = start(&role_config(&upstream.url(), 900), &env).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sts_calls.load(Ordering::SeqCst), 1);
    let sts = upstream.requests().into_iter().find(is_sts).unwrap();
    assert_eq!(verify_sigv4(&sts, "imdssecret1", "us-east-1", "sts").akid, "ASIAIMDS1");
    assert_eq!(sts.header("x-amz-security-token"), Some("imdstoken1"));
    signed_with_role(&bedrock_requests(&upstream)[0], 1);
}

/// A source that fails (the metadata service refusing its token) is a clean 502 naming the
/// failure, never a secret; no Bedrock call is made.
#[tokio::test]
async fn default_chain_failures_are_clean_errors() {
    let bedrock = MockUpstream::start().await;
    bedrock.always_json(200, converse_ok("never"));
    let agent = MockUpstream::start().await;
    agent.always_json(500, json!({"message": "agent unavailable"}));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "pod-identity-token-secret").unwrap();
    let env = env_with(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}/v1/credentials", agent.url())),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.to_str().unwrap()),
    ]);
    let gw = start(&chain_config(&bedrock.url()), &env).await;
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!(status, 502, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("AWS credentials") && detail.contains("500"), "the source's failure: {detail}");
    assert!(!detail.contains("pod-identity-token-secret"), "{detail}");
    assert!(bedrock.requests().is_empty());
    log_is_clean(&gw, &["pod-identity-token-secret"]);
    gw.assert_alive().await;
}

// ---- error paths ----

fn aws(base: &str) -> Value {
    json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"},
           "bedrock_api_base": base})
}

fn bedrock_error(status: u16, error_type: &str, message: &str) -> Reply {
    Reply::Raw {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-amzn-errortype".into(), format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")),
            ("x-amzn-requestid".into(), "3f1c2e4a-0000-4000-8000-000000000000".into()),
        ],
        pieces: vec![(json!({ "message": message }).to_string().into_bytes(), Duration::ZERO)],
        chunked: false,
    }
}

async fn gateway(upstream: &MockUpstream) -> common::Gateway {
    let base = upstream.url();
    start(
        &config(&[
            endpoint("chat", "llm/v1/chat", MODEL, aws(&base)),
            endpoint("titan", "llm/v1/completions", "amazon.titan-text-express-v1", aws(&base)),
            endpoint("llama", "llm/v1/completions", "meta.llama3-8b-instruct-v1:0", aws(&base)),
            endpoint("llama-chat", "llm/v1/chat", "meta.llama3-8b-instruct-v1:0", aws(&base)),
            endpoint("emb", "llm/v1/embeddings", "amazon.titan-embed-text-v1", aws(&base)),
        ]),
        &env_with(&[]),
    )
    .await
}

fn stream_request() -> Value {
    let mut r = chat("hi");
    r["stream"] = json!(true);
    r
}

#[tokio::test]
async fn validation_exception_is_400_with_the_message() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let message =
        "Malformed input request: #: extraneous key [foo] is not permitted, please reformat your input and try again.";
    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!((status, body), (400, json!({ "detail": message })));

    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], message);

    // Streams: an error before the first byte is a proper HTTP error, not an empty 200.
    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({ "detail": message }));
    gw.assert_alive().await;
}

#[tokio::test]
async fn throttling_exception_is_429_on_every_call_type() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let message = "Too many requests, please wait before trying again.";

    upstream.push(bedrock_error(429, "ThrottlingException", message));
    assert_eq!(gw.post(CHAT, &chat("hi")).await, (429, json!({ "detail": message })));

    upstream.push(bedrock_error(429, "ThrottlingException", message));
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (429, json!({ "detail": message })));

    // A fan-out fails as a whole when one call fails.
    upstream.handle(move |r| {
        if r.json()["inputText"] == "b" {
            bedrock_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        } else {
            Reply::Json(200, json!({"embedding": [0.1], "inputTextTokenCount": 1}))
        }
    });
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": ["a", "b", "c"]})).await;
    assert_eq!((status, body), (429, json!({ "detail": message })));
    gw.assert_alive().await;
}

#[tokio::test]
async fn stream_exception_after_the_first_event_is_one_error_event() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let mut wire = event_frame(&json!({"messageStart": {"role": "assistant"}}));
    wire.extend(event_frame(&json!({"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}})));
    wire.extend(exception_frame("modelStreamErrorException", "The model stopped unexpectedly."));
    // Split inside the exception frame too.
    let cut = wire.len() - 20;
    upstream.push(event_stream_reply(vec![wire[..cut].to_vec(), wire[cut..].to_vec()]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "Hel");
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(err["error"]["message"], "The model stopped unexpectedly. (modelStreamErrorException)");

    // On /v1 the same, without [DONE] after the error.
    upstream.push(event_stream_reply(vec![wire.clone()]));
    let mut req = stream_request();
    req["model"] = json!("chat");
    let (status, _, text) = gw.post_text("/v1/chat/completions", &req).await;
    assert_eq!(status, 200);
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.contains("modelStreamErrorException"), "{text}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn damaged_or_truncated_streams_end_with_an_error_event() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let good = event_frame(&json!({"contentBlockDelta": {"delta": {"text": "ok"}, "contentBlockIndex": 0}}));
    let stop = event_frame(&json!({"messageStop": {"stopReason": "end_turn"}}));

    // A flipped payload bit: the message checksum fails.
    let mut bad = stop.clone();
    let n = bad.len();
    bad[n - 8] ^= 0x01;
    upstream.push(event_stream_reply(vec![good.clone(), bad]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("checksum"), "{text}");

    // The body ends inside a frame.
    upstream.push(event_stream_reply(vec![good.clone(), stop[..stop.len() - 5].to_vec()]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("ended inside a message"), "{text}");

    // Not event-stream at all (an HTML error page from a proxy, say).
    upstream.push(Reply::body(200, "text/html", "<html><body>oops</body></html>"));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 1, "{text}");
    assert!(events[0].contains("\"error\""), "{text}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn completions_streaming_is_501_without_an_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p", "stream": true})).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["detail"], "The completions streaming route is not implemented for Amazon Bedrock models.");
    let (status, _) = gw.post("/v1/completions", &json!({"model": "titan", "prompt": "p", "stream": true})).await;
    assert_eq!(status, 501);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn provider_rules_are_422_without_an_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let (status, body) = gw.post("/endpoints/llama/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (422, json!({"detail": "Unknown Amazon Bedrock model type None"})));
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p", "n": 2})).await;
    assert_eq!((status, body), (422, json!({"detail": "'n' must be '1' for AWS Titan models. Received value: '2'."})));
    let bad_args = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    ]});
    let (status, body) = gw.post(CHAT, &bad_args).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": [1, 2, 3]})).await;
    assert_eq!(status, 422, "{body}");
    assert!(upstream.requests().is_empty());

    // Chat goes through Converse for any model family.
    upstream.push(Reply::Json(200, converse_ok("llama says hi")));
    let (status, body) = gw.post("/endpoints/llama-chat/invocations", &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "llama says hi");
    assert_eq!(upstream.last().target, "/model/meta.llama3-8b-instruct-v1%3A0/converse");
}

/// The client APIs' extensions on Claude models go in Converse's
/// `additionalModelRequestFields` as Anthropic's fields (`/v1/messages` `top_k` and `thinking`,
/// streamed: the reasoning comes back as a thinking block); other model families refuse them
/// with a 400 naming the field, before any call.
#[tokio::test]
async fn claude_extensions_and_other_families_refusing_them() {
    use crate::common::fake::Fake;
    let upstream = Fake::Bedrock.start().await;
    let claude = Fake::Bedrock.endpoint("claude", &upstream);
    let mut nova = Fake::Bedrock.endpoint("nova", &upstream);
    nova["model"]["name"] = json!("amazon.nova-pro-v1:0");
    let gw =
        Gateway::start_with(&yaml(&json!({"endpoints": [claude, nova]})), common::bedrock::NO_AMBIENT_AWS, &[]).await;
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 4096, "top_k": 40, "stream": true,
               "thinking": {"type": "enabled", "budget_tokens": 2048},
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    let (status, _, text) = gw.post_text("/v1/messages", &request("claude")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        upstream.last().json()["additionalModelRequestFields"],
        json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    assert!(text.contains(r#""content_block":{"type":"thinking""#), "{text}");
    assert!(text.contains(r#""type":"thinking_delta""#), "{text}");

    let calls = upstream.requests().len();
    let (status, body) = gw.post("/v1/messages", &request("nova")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], json!("invalid_request_error"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'top_k'"), "{body}");
    assert_eq!(upstream.requests().len(), calls);
}

/// Thinking with tools through `/v1/messages` on Claude: Claude wants its signed thinking back
/// with the turn that called tools. The answer's thinking block carries Converse's signature
/// (whole, and as a `signature_delta` streamed), and the client's thinking block goes back
/// first in that assistant message, as `reasoningContent`.
#[tokio::test]
async fn claude_thinking_with_tools_round_trip() {
    use crate::common::fake::{self, Fake};
    let upstream = Fake::Bedrock.start().await;
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [Fake::Bedrock.endpoint("claude", &upstream)]})),
        common::bedrock::NO_AMBIENT_AWS,
        &[],
    )
    .await;
    let tool =
        json!({"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let mut messages = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let request = |messages: &[Value], stream: bool| {
        json!({"model": "claude", "max_tokens": 4096, "stream": stream, "tools": [tool],
               "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": messages})
    };
    let (status, _, text) = gw.post_text("/v1/messages", &request(&messages, true)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&format!(r#""type":"signature_delta","signature":"{}""#, fake::SIGNATURE)), "{text}");

    let (status, answer) = gw.post("/v1/messages", &request(&messages, false)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["content"][0]["type"], json!("thinking"), "{answer}");
    assert_eq!(answer["content"][0]["signature"], json!(fake::SIGNATURE), "{answer}");
    let call = answer["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap().clone();
    messages.push(json!({"role": "assistant", "content": answer["content"]}));
    messages.push(
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "Sunny"}]}),
    );
    let (status, answer) = gw.post("/v1/messages", &request(&messages, false)).await;
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.last().json();
    let assistant = &sent["messages"][1];
    assert_eq!(assistant["role"], json!("assistant"), "{sent}");
    assert_eq!(
        assistant["content"][0]["reasoningContent"]["reasoningText"]["signature"],
        json!(fake::SIGNATURE),
        "{sent}"
    );
    assert!(
        assistant["content"][0]["reasoningContent"]["reasoningText"]["text"]
            .as_str()
            .unwrap()
            .starts_with("The user wrote")
    );
    assert!(assistant["content"].as_array().unwrap().iter().any(|b| b.get("toolUse").is_some()), "{sent}");
}

// ---- MLflow 3.18 (docs/mlflow-compat.md#mlflow-318-provider-translations) ----

/// A tool whose `parameters` is `{}`, `{"type": "object"}` or absent is valid (MLflow 3.17
/// answered 422) and reaches Converse as an object schema in `toolSpec.inputSchema.json`; a
/// nested schema keeps every keyword. The request is signed over that body.
#[tokio::test]
async fn parameterless_tools_reach_converse_as_object_schemas() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    upstream.push(Reply::Json(200, converse_ok("ok")));
    let nested = json!({"type": "object", "properties": {"where": {"type": "object",
        "properties": {"city": {"type": "string", "minLength": 1}}, "required": ["city"],
        "additionalProperties": false}}});
    let mut req = chat("hi");
    req["tools"] = json!([
        {"type": "function", "function": {"name": "now", "parameters": {}}},
        {"type": "function", "function": {"name": "tick", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "noop", "description": "Nothing"}},
        {"type": "function", "function": {"name": "weather", "parameters": nested}},
    ]);
    let (status, body) = gw.post(CHAT, &req).await;
    assert_eq!(status, 200, "{body}");
    let r = upstream.last();
    verify_sigv4(&r, "secret", "us-east-1", "bedrock");
    let schemas: Vec<Value> = r.json()["toolConfig"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toolSpec"]["inputSchema"]["json"].clone())
        .collect();
    let empty = json!({"type": "object", "properties": {}});
    assert_eq!(schemas, vec![empty.clone(), empty.clone(), empty, nested]);
}

/// A Converse answer with this stop reason and usage.
fn converse_answer(stop: &str, usage: Value) -> Value {
    json!({"output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}, "stopReason": stop,
           "usage": usage})
}

/// The event-stream answer of ConverseStream: some text, a stop reason, then `usage`.
fn converse_stream_answer(stop: &str, usage: Value) -> Reply {
    let frames: Vec<u8> = [
        json!({"messageStart": {"role": "assistant"}}),
        json!({"contentBlockDelta": {"delta": {"text": "ok"}, "contentBlockIndex": 0}}),
        json!({"messageStop": {"stopReason": stop}}),
        json!({"metadata": {"usage": usage, "metrics": {"latencyMs": 1}}}),
    ]
    .iter()
    .flat_map(event_frame)
    .collect();
    event_stream_reply(vec![frames])
}

/// Converse's usage with prompt caching (MLflow 3.18's example).
fn cached_usage() -> Value {
    json!({"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, "cacheReadInputTokens": 100,
           "cacheWriteInputTokens": 20})
}

/// MLflow 3.18: cache reads and writes count as prompt tokens, with the reads in
/// `prompt_tokens_details.cached_tokens` and the writes as `cache_creation_input_tokens`
/// (MLflow 3.17: prompt 10, total 15, no details), in whole answers and in the stream's usage
/// chunk; `guardrail_intervened` is `content_filter` and `model_context_window_exceeded`
/// `length` (MLflow 3.17: `stop`).
#[tokio::test]
async fn prompt_cache_usage_and_new_stop_reasons() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let want = json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                      "prompt_tokens_details": {"cached_tokens": 100}, "cache_creation_input_tokens": 20});
    for (stop, finish) in [("guardrail_intervened", "content_filter"), ("model_context_window_exceeded", "length")] {
        upstream.push(Reply::Json(200, converse_answer(stop, cached_usage())));
        let (status, body) = gw.post(CHAT, &chat("hi")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["finish_reason"], json!(finish), "{stop}");
        assert_eq!(body["usage"], want, "{stop}");

        upstream.push(converse_stream_answer(stop, cached_usage()));
        let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
        assert_eq!(status, 200, "{text}");
        let data = sse_data(&text);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "3.18: the stream ends with [DONE]");
        let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finishes, vec![&json!(finish)], "{text}");
        assert_eq!(chunks.last().unwrap()["usage"], want, "{text}");
    }
}

/// The Responses client API reports Bedrock's cache reads as OpenAI does: inside
/// `input_tokens`, and as `input_tokens_details.cached_tokens` (cache writes as
/// `cache_write_tokens`), whole and in `response.completed`.
#[tokio::test]
async fn responses_api_reports_bedrock_cache_reads() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let want = json!({"input_tokens": 130, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 20},
                      "output_tokens": 5});
    upstream.push(Reply::Json(200, converse_answer("end_turn", cached_usage())));
    let (status, body) = gw.post("/v1/responses", &json!({"model": "chat", "input": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&body["usage"][k], v, "{k}: {body}");
    }
    assert_eq!(body["usage"]["total_tokens"], json!(135), "{body}");

    upstream.push(converse_stream_answer("end_turn", cached_usage()));
    let (status, _, text) =
        gw.post_text("/v1/responses", &json!({"model": "chat", "input": "hi", "stream": true})).await;
    assert_eq!(status, 200, "{text}");
    let completed = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .expect("response.completed");
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&completed["response"]["usage"][k], v, "{k}: {text}");
    }
}

/// A `json_schema` response format (`response_format` on chat, `text.format` on the Responses
/// API) reaches Converse as `outputConfig.textFormat`, the schema as a JSON string; before, it
/// was dropped without a word.
#[tokio::test]
async fn json_schema_reaches_converse_as_structured_output() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let schema = json!({"type": "object", "properties": {"said": {"type": "string"}}, "required": ["said"]});
    let requests = [
        (
            "/v1/chat/completions",
            json!({"model": "chat", "messages": [{"role": "user", "content": "Hello"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "echo", "schema": schema}}}),
        ),
        (
            "/v1/responses",
            json!({"model": "chat", "input": "Hello",
            "text": {"format": {"type": "json_schema", "name": "echo", "schema": schema}}}),
        ),
    ];
    for (path, request) in requests {
        upstream.push(Reply::Json(200, converse_ok("{\"said\": \"Hello\"}")));
        let (status, body) = gw.post(path, &request).await;
        assert_eq!(status, 200, "{path}: {body}");
        let r = upstream.last();
        verify_sigv4(&r, "secret", "us-east-1", "bedrock");
        let format = &r.json()["outputConfig"]["textFormat"];
        assert_eq!(format["type"], json!("json_schema"), "{path}: {}", r.json());
        assert_eq!(format["structure"]["jsonSchema"]["name"], json!("echo"), "{path}");
        let sent: Value = serde_json::from_str(format["structure"]["jsonSchema"]["schema"].as_str().unwrap()).unwrap();
        assert_eq!(sent, schema, "{path}");
    }
}

/// An image given by URL (Converse takes only inline bytes) is refused with a 400 before any
/// upstream call, on MLflow's route and on /v1, and the gateway keeps serving.
#[tokio::test]
async fn image_urls_are_400() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let content = json!([{"type": "text", "text": "what is it?"},
                         {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]);
    let (status, body) = gw.post(CHAT, &json!({"messages": [{"role": "user", "content": content}]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("base64 data URLs"), "{body}");
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": content}]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("base64 data URLs"), "{body}");
    assert!(upstream.requests().is_empty());
    upstream.push(Reply::Json(200, converse_ok("still here")));
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!((status, &body["choices"][0]["message"]["content"]), (200, &json!("still here")), "{body}");
}

/// An inference-profile ARN as model id, with a bearer token, is one path segment: `/` is sent
/// as `%2F` (MLflow 3.17 sent it unescaped, so the URL named another path).
#[tokio::test]
async fn inference_profile_arn_is_one_path_segment_with_a_bearer_token() {
    let upstream = MockUpstream::start().await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let aws = json!({"aws_bearer_token": "token", "aws_region": "us-east-1"});
    let yaml =
        config(&[endpoint("arn", "llm/v1/chat", arn, json!({"aws_config": aws, "bedrock_api_base": upstream.url()}))]);
    let gw = start(&yaml, &env_with(&[])).await;
    upstream.push(Reply::Json(200, converse_ok("ok")));
    let (status, body) = gw.post("/endpoints/arn/invocations", &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    let r = upstream.last();
    assert_eq!(
        r.target,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    );
    assert_eq!(r.header("authorization"), Some("Bearer token"));
}
