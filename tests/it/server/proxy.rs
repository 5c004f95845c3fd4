//! MLflow 3's raw proxy route, `/gateway/proxy/{endpoint}/{path}`, through Pingora's proxy
//! pipeline (`src/server/proxy.rs`): the rest of the path and the query go to the endpoint's
//! provider with its credentials (the client's removed), bodies stream through untouched both
//! ways at any size, usage is read on the way, limits and keys apply, a client that leaves
//! mid-stream closes the upstream connection, and upstream failures are JSON errors.

use std::time::Duration;

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const KEY: &str = "sk-proxy-provider-key-0123456789";
const GATEWAY_KEY: &str = "gw-proxy-test-key-0123456789";

async fn start(upstream: &MockUpstream, extra: Value) -> (Gateway, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let audit = dir.join("audit.log");
    let mut chat = json!({"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini",
                  "config": {"openai_api_key": KEY, "openai_api_base": format!("{}/v1", upstream.url())}}});
    if let (Value::Object(c), Value::Object(x)) = (&mut chat, extra) {
        c.extend(x);
    }
    let config = json!({"endpoints": [chat,
        {"name": "bedrock", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "bedrock", "name": "anthropic.claude-3-haiku",
                   "config": {"aws_config": {"aws_region": "us-east-1", "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret-example-key-0123"}}}}],
        "aigw": {"audit": {"path": audit}}});
    (Gateway::start(&yaml(&config)).await, audit)
}

async fn audit_line(path: &std::path::Path, wanted: &str) -> Value {
    let mut line = Value::Null;
    crate::common::wait_until(Duration::from_secs(10), "the audit line", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        match text.lines().rev().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["path"] == wanted) {
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
async fn path_query_and_credentials_reach_the_provider() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Raw {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into()), ("x-upstream".into(), "yes".into())],
        pieces: vec![(
            br#"{"id":"file-1","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#.to_vec(),
            Duration::ZERO,
        )],
        chunked: false,
    });
    let (gw, audit) = start(&upstream, json!({})).await;
    let r = gw
        .client
        .post(gw.url("/gateway/proxy/chat/files/upload?purpose=batch&x=1"))
        .header("authorization", "Bearer client-credential-not-forwarded")
        .header("x-api-key", "also-not-forwarded")
        .header("content-type", "application/json; charset=utf-8")
        .body("raw body, not JSON")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-upstream"], "yes", "the provider's headers come through");
    assert!(r.headers().get("x-request-id").is_some());
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"id":"file-1","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#
    );
    let sent = upstream.last();
    assert_eq!((sent.method.as_str(), sent.target.as_str()), ("POST", "/v1/files/upload?purpose=batch&x=1"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}").as_str()), "the provider's key");
    assert!(sent.header("x-api-key").is_none());
    assert_eq!(sent.header("content-type"), Some("application/json; charset=utf-8"), "the client's content type");
    assert_eq!(sent.body, b"raw body, not JSON", "the body untouched");
    let line = audit_line(&audit, "/gateway/proxy/chat/files/upload").await;
    assert_eq!((line["status"].as_u64(), line["endpoint"].as_str()), (Some(201), Some("chat")));
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(3), Some(2)), "{line}");
    // Other methods too.
    upstream.push(Reply::Json(200, json!({"deleted": true})));
    let r = gw.client.delete(gw.url("/gateway/proxy/chat/files/file-1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last().method, "DELETE");
}

#[tokio::test]
async fn a_50_mib_body_streams_through() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"ok": true}));
    let (gw, _audit) = start(&upstream, json!({})).await;
    let body: Vec<u8> = (0..50 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let r = gw
        .client
        .put(gw.url("/gateway/proxy/chat/blobs/big"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "no size limit from buffering (max_request_body is 16 MiB)");
    let sent = upstream.last();
    assert_eq!(sent.body.len(), body.len());
    assert!(sent.body == body, "every byte arrived in order");
}

fn sse_piece(i: usize) -> Vec<u8> {
    format!("data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{i} \"}}}}]}}\n\n").into_bytes()
}

#[tokio::test]
async fn a_long_stream_is_relayed_as_it_comes_with_its_usage() {
    let upstream = MockUpstream::start().await;
    let mut pieces: Vec<Vec<u8>> = (0..20).map(sse_piece).collect();
    pieces.push(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":20,\"total_tokens\":31}}\n\ndata: [DONE]\n\n".to_vec());
    let expected: Vec<u8> = pieces.concat();
    upstream.push(Reply::sse(pieces, Duration::from_millis(50)));
    let (gw, audit) = start(&upstream, json!({})).await;
    let mut r = gw
        .client
        .post(gw.url("/gateway/proxy/chat/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The first event arrives before the upstream has finished.
    let first = r.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    assert!(upstream.requests().len() == 1);
    let mut got = first.to_vec();
    while let Some(c) = r.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, expected, "the stream byte for byte");
    let line = audit_line(&audit, "/gateway/proxy/chat/chat/completions").await;
    assert_eq!(
        (line["tokens_in"].as_u64(), line["tokens_out"].as_u64(), line["stream"].as_bool()),
        (Some(11), Some(20), Some(true))
    );
}

#[tokio::test]
async fn a_client_leaving_mid_stream_closes_the_upstream_connection() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::sse(vec![sse_piece(0), sse_piece(1)], Duration::from_secs(60)));
    let (gw, _audit) = start(&upstream, json!({})).await;
    let client = reqwest::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    let r = client.post(gw.url("/gateway/proxy/chat/chat/completions")).json(&json!({"stream": true})).send().await;
    if let Ok(r) = r {
        let _ = r.bytes().await;
    }
    crate::common::wait_until(Duration::from_secs(15), "the upstream seeing its connection closed", || {
        upstream.peer_closed() == 1
    })
    .await;
    gw.assert_alive().await;
}

#[tokio::test]
async fn upstream_failures_are_json_errors() {
    let upstream = MockUpstream::start().await;
    upstream.push(Reply::Close);
    let (gw, _audit) = start(&upstream, json!({})).await;
    let r = gw.client.post(gw.url("/gateway/proxy/chat/anything")).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), 502);
    // aigw closes the connection after a failed proxy call, and says so: a client that sent its
    // next request on it would see a reset.
    assert_eq!(r.headers().get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]));
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].is_string(), "MLflow's shape: {body}");
    // A reset in the middle of the answer: the client's body ends short (a chunked body
    // without its last chunk), and the gateway keeps serving.
    upstream.push(Reply::CutAfter {
        status: 200,
        content_type: "text/event-stream".into(),
        pieces: vec![sse_piece(0)],
    });
    // Pingora may still hold the answer's head in its write buffer when the upstream resets,
    // so the cut shows either as a connection closed before the head or as a short body;
    // never as a whole answer.
    let url = gw.url("/gateway/proxy/chat/chat/completions");
    match gw.client.post(url).header("content-type", "application/json").body("{}").send().await {
        Ok(r) => {
            assert_eq!(r.status(), 200);
            assert!(r.bytes().await.is_err(), "the cut is visible to the client, not passed off as a whole body");
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "a closed connection, not another failure: {e}"),
    }
    // Bedrock signs requests over their body: not proxied.
    let (status, body) = gw.post("/gateway/proxy/bedrock/model/x/invoke", &json!({})).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("not available"), "{body}");
    // An unknown endpoint.
    let (status, _) = gw.post("/gateway/proxy/nope/x", &json!({})).await;
    assert_eq!(status, 404);
    gw.assert_alive().await;
}

#[tokio::test]
async fn keys_and_limits_apply() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"ok": true}));
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini",
                  "config": {"openai_api_key": KEY, "openai_api_base": format!("{}/v1", upstream.url())}},
        "limit": {"calls": 1, "renewal_period": "day"}},
        {"name": "other", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "name": "m"}}],
        "aigw": {"auth": {"keys": [{"name": "team", "key": GATEWAY_KEY, "endpoints": ["other"]},
                                    {"name": "all", "key": format!("{GATEWAY_KEY}-all")}]}}});
    let _ = dir;
    let gw = Gateway::start(&yaml(&config)).await;
    let post = |key: String| {
        let url = gw.url("/gateway/proxy/chat/x");
        let client = gw.client.clone();
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("wrong".into()).await, 401);
    assert_eq!(post(GATEWAY_KEY.into()).await, 403, "a key not allowed on the endpoint");
    assert_eq!(post(format!("{GATEWAY_KEY}-all")).await, 200);
    assert_eq!(post(format!("{GATEWAY_KEY}-all")).await, 429, "the endpoint's quota counts proxied calls");
    assert_eq!(upstream.requests().len(), 1);
    assert!(
        upstream.last().header("authorization").is_some_and(|v| !v.contains(GATEWAY_KEY)),
        "the gateway key stays here"
    );
}
