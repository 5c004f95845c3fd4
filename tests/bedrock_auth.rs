//! Bedrock credentials end to end: STS AssumeRole (cached, single flight, refreshed before
//! expiry), the default credential chain resolved at first use, `$VAR` secrets, bearer tokens
//! for every call type, endpoint overrides from the environment, partial `aws_config`
//! rejected at load, and a 2 MiB body signed correctly.

use common::bedrock as bedrock_util;
#[path = "it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aigw::config::GatewayConfig;
use bedrock_util::{
    chat, config, converse_ok, endpoint, env_with, event_frame, event_stream_reply, parse_authorization, start,
    sts_answer, verify_sigv4,
};
use common::upstream::{MockUpstream, Recorded, Reply};
use common::{free_port, sse_data};
use serde_json::{Value, json};

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
        let msg = GatewayConfig::load(&path).err().unwrap_or_else(|| panic!("{aws} must be rejected")).to_string();
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
        if let Err(e) = GatewayConfig::load(&path) {
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
    let events = sse_data(&text);
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
