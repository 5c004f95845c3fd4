//! What web browsers may do with the gateway (`src/browser.rs`, docs/security.md):
//!
//! * invocation bodies must be declared JSON (MLflow's 422 on MLflow's routes, 415 in the
//!   client API's shape elsewhere, nothing upstream); the raw proxy route's POST, PUT and
//!   PATCH too, unless the endpoint opts out;
//! * `aigw.cors`: preflights per the Fetch standard, the CORS headers on every answer
//!   (errors and streams included), `*` with credentials refused at load, hot reload; without
//!   it no CORS header and `OPTIONS` is 405;
//! * without gateway keys, only loopback hosts (or `aigw.allowed_hosts`) are served, on every
//!   listener, over HTTP/1.1 (`Host`) and HTTP/2 (`:authority`);
//! * and in a real headless Chromium: a page of a listed origin reads the answers (streams,
//!   401, 429 and the exposed headers included), a page of another origin cannot, and a page
//!   cannot make an unauthenticated gateway call its provider with "simple" requests.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::chromium::PageServer;
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{self, Gateway, free_port, yaml};
use serde_json::{Value, json};

const KEY: &str = "gw-browser-test-key-0123456789";

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": "hello from the gateway"}}})
}

/// An endpoint of `endpoint_type` served by `upstream` (an OpenAI-style mock that records
/// every call it gets).
fn paid(name: &str, endpoint_type: &str, upstream: &MockUpstream) -> Value {
    json!({"name": name, "endpoint_type": endpoint_type,
           "model": {"provider": "openai", "name": "gpt-4o-mini",
                     "config": {"openai_api_key": "sk-provider-key-browser", "openai_api_base": format!("{}/v1", upstream.url())}}})
}

fn openai_upstream(upstream: &MockUpstream) {
    upstream.handle(|r| Reply::Json(200, common::upstream::openai_answer(&r.target)));
}

/// The value of a Prometheus counter line, 0 when absent (read with the test's key when the
/// gateway has keys).
async fn counter(gw: &Gateway, line: &str) -> u64 {
    let mut r = gw.client.get(gw.url("/metrics")).send().await.unwrap();
    if r.status().as_u16() == 401 {
        r = gw.client.get(gw.url("/metrics")).bearer_auth(KEY).send().await.unwrap();
    }
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(line)?.trim().parse().ok()).unwrap_or(0)
}

/// POST `body` with `content_type` (none when `None`): status and JSON answer.
async fn post_as(gw: &Gateway, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut r = gw.client.post(gw.url(path)).body(body.to_owned());
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One HTTP/1.1 request on a fresh connection, written as given: status, lower-cased header
/// block and JSON body.
fn raw(port: u16, request: &str) -> (u16, String, Value) {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    sock.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn get_with_host(port: u16, path: &str, host: &str) -> (u16, String, Value) {
    raw(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

const CHAT: &str = r#"{"messages": [{"role": "user", "content": "hi"}]}"#;

// ---------------------------------------------------------------------------------------------
// Content types

/// Every invocation route refuses a body not declared JSON before any upstream call: MLflow's
/// routes with FastAPI's 422 (the body as `input`), the other client APIs with 415 in their
/// shape; JSON content types with parameters, in any case, and `+json` are served.
#[tokio::test]
async fn invocation_bodies_must_be_declared_json() {
    let upstream = MockUpstream::start().await;
    openai_upstream(&upstream);
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        paid("chat", "llm/v1/chat", &upstream), paid("emb", "llm/v1/embeddings", &upstream),
        paid("cmp", "llm/v1/completions", &upstream)]})))
    .await;

    let simple = [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/json"),
        Some("application/jsonx"),
        None,
    ];
    // MLflow's routes: FastAPI's 422, the exact body MLflow answers.
    for path in ["/endpoints/chat/invocations", "/gateway/chat/invocations", "/gateway/chat/mlflow/invocations"] {
        for ct in simple {
            let (status, body) = post_as(&gw, path, ct, CHAT).await;
            assert_eq!(status, 422, "{path} {ct:?}: {body}");
            assert_eq!(
                body,
                json!({"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                   "msg": "Input should be a valid dictionary or object to extract fields from",
                                   "input": CHAT}]}),
                "{path} {ct:?}"
            );
        }
    }
    // OpenAI-style routes: 415, OpenAI's shape.
    let model_chat = r#"{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}"#;
    let openai = [
        ("/v1/chat/completions", model_chat),
        ("/v1/completions", r#"{"model": "cmp", "prompt": "hi"}"#),
        ("/v1/embeddings", r#"{"model": "emb", "input": "hi"}"#),
        ("/gateway/mlflow/v1/chat/completions", model_chat),
        ("/gateway/openai/v1/chat/completions", model_chat),
        ("/gateway/openai/v1/embeddings", r#"{"model": "emb", "input": "hi"}"#),
        ("/v1/responses", r#"{"model": "chat", "input": "hi"}"#),
        ("/gateway/openai/v1/responses", r#"{"model": "chat", "input": "hi"}"#),
    ];
    for (path, body_text) in openai {
        for ct in simple {
            let (status, body) = post_as(&gw, path, ct, body_text).await;
            assert_eq!(status, 415, "{path} {ct:?}: {body}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{path}: {body}");
            assert_eq!(body["error"]["code"], "unsupported_media_type", "{path}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            match ct {
                Some(ct) => assert!(message.contains(&format!("'{ct}'")), "{message}"),
                None => assert!(message.contains("no Content-Type"), "{message}"),
            }
        }
    }
    // Anthropic's Messages API (count_tokens too): 415, Anthropic's shape.
    let messages = r#"{"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}"#;
    for path in ["/v1/messages", "/v1/messages/count_tokens", "/gateway/anthropic/v1/messages"] {
        for ct in simple {
            let (status, body) = post_as(&gw, path, ct, messages).await;
            assert_eq!(status, 415, "{path} {ct:?}: {body}");
            assert_eq!(body["type"], "error", "{path}: {body}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{path}: {body}");
        }
    }
    assert!(upstream.requests().is_empty(), "nothing reached the upstream: {:?}", upstream.requests());
    let refused = 3 * simple.len() + openai.len() * simple.len() + 3 * simple.len();
    assert_eq!(counter(&gw, "aigw_rejected_total{reason=\"content_type\"}").await, refused as u64);

    // An empty body is not about its content type: the usual JSON error.
    let (status, body) = post_as(&gw, "/endpoints/chat/invocations", Some("text/plain"), "").await;
    assert_eq!((status, body["detail"][0]["type"].as_str()), (422, Some("json_invalid")), "{body}");

    // Declared JSON: served, whatever the parameters and the case, and `+json`.
    let json_types = [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;Charset=UTF-8",
        "application/vnd.aigw+json",
    ];
    for ct in json_types {
        let (status, body) = post_as(&gw, "/endpoints/chat/invocations", Some(ct), CHAT).await;
        assert_eq!(status, 200, "{ct}: {body}");
        let (status, body) = post_as(&gw, "/v1/chat/completions", Some(ct), model_chat).await;
        assert_eq!(status, 200, "{ct}: {body}");
        let (status, body) = post_as(&gw, "/v1/messages", Some(ct), messages).await;
        assert_eq!(status, 200, "{ct}: {body}");
    }
    assert_eq!(upstream.requests().len(), 3 * json_types.len());
}

/// The raw proxy route never reads bodies, so its POST, PUT and PATCH must be declared JSON
/// whatever their body (415, MLflow's shape, nothing forwarded); GET and DELETE are not
/// concerned; an endpoint with `proxy_any_content_type: true` forwards any content type.
#[tokio::test]
async fn the_raw_proxy_forwards_only_json_unless_the_endpoint_opts_out() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"ok": true}));
    let mut open = paid("uploads", "llm/v1/chat", &upstream);
    open["proxy_any_content_type"] = json!(true);
    let gw = Gateway::start(&yaml(&json!({"endpoints": [paid("chat", "llm/v1/chat", &upstream), open]}))).await;
    let send = |method: reqwest::Method, endpoint: &str, ct: Option<&str>, body: &str| {
        let mut r =
            gw.client.request(method, gw.url(&format!("/gateway/proxy/{endpoint}/files"))).body(body.to_owned());
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (method, ct, body) in [
        (reqwest::Method::POST, Some("text/plain"), "{}"),
        (reqwest::Method::POST, Some("multipart/form-data; boundary=x"), "--x--"),
        (reqwest::Method::POST, None, "{}"),
        (reqwest::Method::POST, None, ""),
        (reqwest::Method::PUT, Some("application/octet-stream"), "raw"),
        (reqwest::Method::PATCH, Some("application/x-www-form-urlencoded"), "a=b"),
    ] {
        let (status, answer) = send(method.clone(), "chat", ct, body).await;
        assert_eq!(status, 415, "{method} {ct:?}: {answer}");
        assert!(answer["detail"].as_str().unwrap().contains("proxy_any_content_type"), "{answer}");
    }
    assert!(upstream.requests().is_empty(), "nothing was forwarded");
    assert_eq!(counter(&gw, "aigw_rejected_total{reason=\"content_type\"}").await, 6);
    // JSON, and the methods without a body.
    assert_eq!(send(reqwest::Method::POST, "chat", Some("application/json; charset=utf-8"), "{}").await.0, 200);
    assert_eq!(send(reqwest::Method::GET, "chat", None, "").await.0, 200);
    assert_eq!(send(reqwest::Method::DELETE, "chat", None, "").await.0, 200);
    assert_eq!(upstream.requests().len(), 3);
    // The endpoint that opted out forwards a multipart upload untouched.
    let (status, _) = send(reqwest::Method::POST, "uploads", Some("multipart/form-data; boundary=x"), "--x--").await;
    assert_eq!(status, 200);
    let sent = upstream.last();
    assert_eq!(
        (sent.header("content-type"), sent.body.as_slice()),
        (Some("multipart/form-data; boundary=x"), &b"--x--"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Hosts

/// Without gateway keys, only loopback hosts are served (any port, any case, `*.localhost`,
/// IPv4 `127/8`, `[::1]`) plus `aigw.allowed_hosts`; anything else is 421 in the client API's
/// shape and counted, on the main listener and on the health and metrics listeners.
#[tokio::test]
async fn without_keys_only_loopback_hosts_are_served() {
    let (health, metrics) = (free_port(), free_port());
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")], "aigw": {
        "allowed_hosts": ["gateway.internal", "*.corp.example"],
        "health_listen": format!("127.0.0.1:{health}"), "metrics": {"listen": format!("127.0.0.1:{metrics}")}}})))
    .await;
    let p = gw.port;
    for host in [
        "localhost".to_owned(),
        format!("localhost:{p}"),
        format!("LocalHost:{p}"),
        format!("app.localhost:{p}"),
        format!("127.0.0.1:{p}"),
        "127.0.0.2".to_owned(),
        format!("[::1]:{p}"),
        format!("gateway.internal:{p}"),
        "ci.corp.example".to_owned(),
    ] {
        let (status, _, body) = get_with_host(p, "/health", &host);
        assert_eq!(status, 200, "{host}: {body}");
    }
    for host in [
        "evil.test".to_owned(),
        format!("evil.test:{p}"),
        format!("localhost.evil.test:{p}"),
        format!("127.0.0.1.evil.test:{p}"),
        "10.1.2.3".to_owned(),
        "corp.example".to_owned(),
    ] {
        let (status, head, body) = get_with_host(p, "/health", &host);
        assert_eq!(status, 421, "{host}: {body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(body["detail"].as_str().unwrap().contains("aigw.allowed_hosts"), "{body}");
    }
    // In the client API's shape, before the body is read or anything is invoked.
    let (status, _, body) = raw(
        p,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: evil.test:{p}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{}",
            r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#.len(),
            r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#
        ),
    );
    assert_eq!(status, 421, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    // The health and metrics listeners too.
    assert_eq!(get_with_host(health, "/health", "evil.test").0, 421);
    assert_eq!(get_with_host(health, "/health", &format!("localhost:{health}")).0, 200);
    assert_eq!(get_with_host(metrics, "/metrics", "evil.test").0, 421);
    assert_eq!(get_with_host(metrics, "/metrics", &format!("127.0.0.1:{metrics}")).0, 200);
    assert_eq!(counter(&gw, "aigw_rejected_total{reason=\"host_not_allowed\"}").await, 9);
}

/// The Host rule is for gateways without keys: with keys, a request naming any host reaches
/// authentication (401 without a key, served with one).
#[tokio::test]
async fn with_keys_any_host_reaches_authentication() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")],
        "aigw": {"auth": {"keys": [{"name": "a", "key": KEY}]}}})))
    .await;
    let (status, _, _) = get_with_host(gw.port, "/v1/models", "gateway.example.com");
    assert_eq!(status, 401);
    let (status, _, body) = raw(
        gw.port,
        &format!(
            "GET /v1/models HTTP/1.1\r\nHost: gateway.example.com\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{body}");
}

/// A public listener without keys (`allow_unauthenticated`) checks hosts only when
/// `aigw.allowed_hosts` names them.
#[tokio::test]
async fn a_public_unauthenticated_listener_checks_hosts_when_they_are_listed() {
    let open = Gateway::start_with(
        &yaml(&json!({"endpoints": [mock("chat")], "aigw": {"auth": {"allow_unauthenticated": true}}})),
        &[],
        &["--host", "0.0.0.0"],
    )
    .await;
    assert_eq!(get_with_host(open.port, "/health", "10.1.2.3:5000").0, 200);
    let listed = Gateway::start_with(
        &yaml(&json!({"endpoints": [mock("chat")],
            "aigw": {"auth": {"allow_unauthenticated": true}, "allowed_hosts": ["gateway.internal", "10.1.2.3"]}})),
        &[],
        &["--host", "0.0.0.0"],
    )
    .await;
    assert_eq!(get_with_host(listed.port, "/health", "10.1.2.3:5000").0, 200);
    assert_eq!(get_with_host(listed.port, "/health", "gateway.internal").0, 200);
    assert_eq!(get_with_host(listed.port, "/health", "evil.test").0, 421);
    assert_eq!(get_with_host(listed.port, "/health", "localhost").0, 200);
}

/// Over HTTP/2 the host is the `:authority` pseudo-header.
#[tokio::test]
async fn http2_authority_is_checked() {
    let certs = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "evil.test".to_owned()]).unwrap();
    std::fs::write(certs.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(certs.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    // Started by hand: the harness waits for plain HTTP, and this listener speaks TLS only
    // (readiness is read on a plain health-only listener).
    let (port, health) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(
        &file,
        yaml(&json!({"endpoints": [mock("chat")], "aigw": {
            "tls": {"cert": certs.path().join("cert.pem"), "key": certs.path().join("key.pem")},
            "health_listen": format!("127.0.0.1:{health}")}})),
    )
    .unwrap();
    let _gw = common::KillOnDrop(
        std::process::Command::new(common::binary())
            .args(["--port", &port.to_string(), "--config-path"])
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    common::wait_until_async(Duration::from_secs(20), "the gateway started", || async {
        common::client().get(format!("http://127.0.0.1:{health}/health")).send().await.is_ok()
    })
    .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .resolve("evil.test", addr)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let r = client.get(format!("https://evil.test:{port}/health")).send().await.unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 421));
    let r = client.get(format!("https://localhost:{port}/health")).send().await.unwrap();
    assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 200));
}

// ---------------------------------------------------------------------------------------------
// CORS without a browser

fn cors_config(upstream: &MockUpstream, cors: Value) -> Value {
    json!({"endpoints": [mock("chat"), paid("paid", "llm/v1/chat", upstream),
        {"name": "limited", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"},
         "limit": {"calls": 1, "renewal_period": "day"}}],
        "aigw": {"auth": {"keys": [{"name": "app", "key": KEY}]}, "cors": cors}})
}

fn access_control(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

async fn preflight(gw: &Gateway, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    let mut r = gw
        .client
        .request(reqwest::Method::OPTIONS, gw.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        r = r.header("access-control-request-headers", headers);
    }
    r.send().await.unwrap()
}

/// Without `aigw.cors`: no CORS header anywhere, and `OPTIONS` is answered as before: 405
/// (after authentication, when the gateway has keys: 401 without one), preflight or not.
#[tokio::test]
async fn without_cors_there_are_no_cors_headers() {
    let upstream = MockUpstream::start().await;
    let open = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")]}))).await;
    let r = preflight(&open, "/v1/chat/completions", "http://127.0.0.1:3000", "POST", "content-type").await;
    assert_eq!(r.status().as_u16(), 405);
    assert!(access_control(r.headers()).is_empty() && r.headers().get("vary").is_none(), "{:?}", r.headers());
    let mut config = cors_config(&upstream, Value::Null);
    config["aigw"].as_object_mut().unwrap().remove("cors");
    let gw = Gateway::start(&yaml(&config)).await;
    let r = preflight(&gw, "/v1/chat/completions", "http://127.0.0.1:3000", "POST", "authorization,content-type").await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(access_control(r.headers()).is_empty(), "{:?}", r.headers());
    let r = gw
        .client
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", "http://127.0.0.1:3000")
        .header("access-control-request-method", "POST")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(access_control(r.headers()).is_empty(), "{:?}", r.headers());
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "http://127.0.0.1:3000")
        .bearer_auth(KEY)
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(access_control(r.headers()).is_empty() && r.headers().get("vary").is_none(), "{:?}", r.headers());
}

/// Preflights per the Fetch standard: a listed origin, an accepted method and allowed headers
/// get 204 with the methods, the requested headers and the cache time (no credentials header
/// unless configured); anything else gets 403 without any `Access-Control-Allow-*` header.
/// Actual answers — errors (401, 429) and streams included — carry the origin and expose the
/// request id and rate-limit headers; another origin's answers carry no CORS header.
#[tokio::test]
async fn cors_preflights_and_answers() {
    let upstream = MockUpstream::start().await;
    openai_upstream(&upstream);
    let app = "https://app.example.com";
    let gw =
        Gateway::start(&yaml(&cors_config(&upstream, json!({"allow_origins": [app, "http://localhost:3000"]})))).await;

    let r = preflight(&gw, "/v1/chat/completions", app, "POST", "authorization,content-type").await;
    assert_eq!(r.status().as_u16(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], app);
    assert_eq!(h["access-control-allow-methods"], "POST");
    assert_eq!(h["access-control-allow-headers"], "authorization,content-type");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.get("access-control-allow-credentials").is_none());
    assert!(h["vary"].to_str().unwrap().contains("Origin"), "{h:?}");
    assert!(h.get("content-length").is_none_or(|v| v == "0"));
    // A GET operation (listings need the key's Authorization header, so they are preflighted).
    let r = preflight(&gw, "/v1/models", "http://localhost:3000", "GET", "authorization").await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-methods"], "GET, HEAD");
    // Refused: another origin, a method the path does not take, a header not allowed.
    for (origin, method, headers, why) in [
        ("https://evil.example", "POST", "content-type", "origin"),
        ("http://localhost:3001", "POST", "content-type", "origin"),
        ("https://app.example.com.evil.example", "POST", "", "origin"),
        (app, "GET", "", "does not accept GET"),
        (app, "POST", "content-type,x-custom", "'x-custom'"),
    ] {
        let r = preflight(&gw, "/v1/chat/completions", origin, method, headers).await;
        assert_eq!(r.status().as_u16(), 403, "{origin} {method} {headers}");
        let allow: Vec<_> =
            access_control(r.headers()).into_iter().filter(|k| k.starts_with("access-control-allow")).collect();
        assert!(allow.is_empty(), "{origin} {method} {headers}: {allow:?}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{body}");
    }
    // OPTIONS that is not a preflight stays 405.
    let r = gw
        .client
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", app)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(counter(&gw, "aigw_rejected_total{reason=\"cors_preflight\"}").await, 5);

    // Actual answers carry the origin and the exposed headers.
    let exposed = |h: &reqwest::header::HeaderMap| h["access-control-expose-headers"].to_str().unwrap().to_owned();
    let ask = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", app)
        .bearer_auth(KEY)
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], app);
    for name in ["x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"] {
        assert!(exposed(r.headers()).contains(name), "{name}: {:?}", r.headers());
    }
    assert!(r.headers()["vary"].to_str().unwrap().contains("Origin"));
    // 401.
    let r = gw.client.post(gw.url("/v1/chat/completions")).header("origin", app).json(&ask).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["access-control-allow-origin"].to_str().unwrap()), (401, app));
    // 429 (the second call of a limit of one), with its headers exposed.
    let limited = json!({"model": "limited", "messages": [{"role": "user", "content": "hi"}]});
    for expected in [200, 429] {
        let r = gw
            .client
            .post(gw.url("/v1/chat/completions"))
            .header("origin", app)
            .bearer_auth(KEY)
            .json(&limited)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected);
        assert_eq!(r.headers()["access-control-allow-origin"], app);
        assert!(r.headers().contains_key("x-ratelimit-remaining"));
    }
    // A stream.
    let stream = json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", app)
        .bearer_auth(KEY)
        .json(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], app);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert!(r.text().await.unwrap().contains("[DONE]"));
    // The raw proxy: ours, never the upstream's own CORS headers.
    upstream.push(Reply::Raw {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("access-control-allow-origin".into(), "*".into()),
            ("access-control-allow-credentials".into(), "true".into()),
        ],
        pieces: vec![(b"{}".to_vec(), Duration::ZERO)],
        chunked: false,
    });
    let r = gw
        .client
        .get(gw.url("/gateway/proxy/paid/models"))
        .header("origin", "https://evil.example")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(access_control(r.headers()).is_empty(), "the upstream's '*' is not relayed: {:?}", r.headers());
    // Another origin: no CORS header, only Vary.
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "https://evil.example")
        .bearer_auth(KEY)
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(access_control(r.headers()).is_empty(), "{:?}", r.headers());
    assert!(r.headers()["vary"].to_str().unwrap().contains("Origin"));
}

/// `*` answers `*` (no credentials); credentials are sent with listed origins only, and `*`
/// with `allow_credentials: true` is refused at load with a clear message.
#[tokio::test]
async fn any_origin_and_credentials() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&yaml(&cors_config(
        &upstream,
        json!({"allow_origins": ["*"], "allow_headers": ["*"], "max_age_s": 60}),
    )))
    .await;
    let r = preflight(
        &gw,
        "/v1/messages",
        "https://anything.example",
        "POST",
        "x-api-key,anthropic-version,x-stainless-os",
    )
    .await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.headers()["access-control-allow-headers"], "x-api-key,anthropic-version,x-stainless-os");
    assert_eq!(r.headers()["access-control-max-age"], "60");

    let with_credentials = json!({"allow_origins": ["https://app.example.com"], "allow_credentials": true,
                                  "expose_headers": ["x-request-id", "server-timing"]});
    let gw = Gateway::start(&yaml(&cors_config(&upstream, with_credentials))).await;
    let r = preflight(&gw, "/v1/chat/completions", "https://app.example.com", "POST", "content-type").await;
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = gw
        .client
        .get(gw.url("/v1/models"))
        .header("origin", "https://app.example.com")
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers()["access-control-expose-headers"],
        "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after, server-timing",
        "the configured headers come after the ones always exposed, without repeats"
    );

    // Refused at load.
    let dir = tempfile::tempdir().unwrap();
    for (cors, field, says) in [
        (
            json!({"allow_origins": ["*"], "allow_credentials": true}),
            "aigw.cors.allow_credentials",
            "cannot be combined",
        ),
        (json!({"allow_origins": ["https://app.example.com/"]}), "aigw.cors.allow_origins", "without a path"),
        (json!({"allow_origins": ["null"]}), "aigw.cors.allow_origins", "null"),
        (json!({"allow_origins": []}), "aigw.cors.allow_origins", "at least one"),
        (json!({"allow_origins": ["*", "https://a.example"]}), "aigw.cors.allow_origins", "alone"),
        (
            json!({"allow_origins": ["https://a.example"], "allow_headers": ["bad header"]}),
            "aigw.cors.allow_headers",
            "header name",
        ),
        (json!({"allow_origins": ["https://a.example"], "max_age": 5}), "aigw.cors.max_age", "unknown setting"),
    ] {
        let file = dir.path().join("g.yaml");
        std::fs::write(&file, yaml(&json!({"endpoints": [mock("chat")], "aigw": {"cors": cors}}))).unwrap();
        let out =
            std::process::Command::new(common::binary()).arg("-t").arg("--config-path").arg(&file).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{cors}: {err}");
        assert!(err.contains(field) && err.contains(says), "{cors}: {err}");
    }
}

/// The cors block hot-reloads: added, changed and removed without a restart.
#[tokio::test]
async fn cors_hot_reloads() {
    let upstream = MockUpstream::start().await;
    let mut config = cors_config(&upstream, Value::Null);
    config["aigw"].as_object_mut().unwrap().remove("cors");
    let gw = Gateway::start(&yaml(&config)).await;
    let status = |origin: &'static str| {
        let gw = &gw;
        async move { preflight(gw, "/v1/chat/completions", origin, "POST", "content-type").await.status().as_u16() }
    };
    // Without aigw.cors a preflight is an unauthenticated OPTIONS: 401 on this gateway with keys.
    assert_eq!(status("https://a.example").await, 401);
    let write = |cors: Value| {
        let mut c = config.clone();
        c["aigw"]["cors"] = cors;
        std::fs::write(&gw.config_path, yaml(&c)).unwrap();
    };
    write(json!({"allow_origins": ["https://a.example"]}));
    common::wait_until_async(Duration::from_secs(20), "cors added", || async {
        status("https://a.example").await == 204
    })
    .await;
    assert_eq!(status("https://b.example").await, 403);
    write(json!({"allow_origins": ["https://b.example"]}));
    common::wait_until_async(Duration::from_secs(20), "cors changed", || async {
        status("https://b.example").await == 204
    })
    .await;
    assert_eq!(status("https://a.example").await, 403);
    std::fs::write(&gw.config_path, yaml(&config)).unwrap();
    common::wait_until_async(Duration::from_secs(20), "cors removed", || async {
        status("https://b.example").await == 401
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// In a real browser

/// A page calls the gateway with `fetch` from a listed origin: it reads the answer, the
/// exposed headers, a stream, and the 401 and 429 errors. The same calls from a page of
/// another origin fail in the browser (the preflight is refused), and never reach the
/// provider.
#[tokio::test]
async fn chromium_reads_answers_only_from_a_listed_origin() {
    let upstream = MockUpstream::start().await;
    openai_upstream(&upstream);
    let (listed, other) = (PageServer::start().await, PageServer::start().await);
    let gw = Gateway::start(&yaml(&cors_config(&upstream, json!({"allow_origins": [listed.origin()]})))).await;
    let script = format!(
        r#"
const gw = "http://127.0.0.1:{port}";
const json = (model, extra) => JSON.stringify(Object.assign({{model, messages: [{{role: "user", content: "hi"}}]}}, extra || {{}}));
const auth = {{"content-type": "application/json", "authorization": "Bearer {KEY}"}};
return {{
  chat: await call(gw + "/v1/chat/completions", {{method: "POST", headers: auth, body: json("chat")}}),
  stream: await call(gw + "/v1/chat/completions", {{method: "POST", headers: auth, body: json("chat", {{stream: true}})}}),
  paid: await call(gw + "/v1/chat/completions", {{method: "POST", headers: auth, body: json("paid")}}),
  models: await call(gw + "/v1/models", {{headers: {{"authorization": "Bearer {KEY}"}}}}),
  no_key: await call(gw + "/v1/chat/completions", {{method: "POST", headers: {{"content-type": "application/json"}}, body: json("chat")}}),
  limited: [await call(gw + "/v1/chat/completions", {{method: "POST", headers: auth, body: json("limited")}}),
            await call(gw + "/v1/chat/completions", {{method: "POST", headers: auth, body: json("limited")}})],
}};
"#,
        port = gw.port
    );

    let seen = listed.run(&script).await;
    let chat = &seen["chat"];
    assert_eq!(
        (chat["ok"].as_bool(), chat["status"].as_u64(), chat["type"].as_str()),
        (Some(true), Some(200), Some("cors")),
        "{seen}"
    );
    let answer: Value = serde_json::from_str(chat["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "hello from the gateway", "{answer}");
    assert_eq!(chat["headers"]["x-request-id"].as_str().map(str::len), Some(32), "the request id is exposed: {chat}");
    assert!(seen["stream"]["body"].as_str().unwrap().contains("data: [DONE]"), "{seen}");
    assert_eq!(seen["paid"]["status"], 200, "{seen}");
    assert_eq!(seen["models"]["status"], 200, "{seen}");
    let no_key = &seen["no_key"];
    assert_eq!(no_key["status"], 401, "the 401 is readable: {seen}");
    assert_eq!(
        serde_json::from_str::<Value>(no_key["body"].as_str().unwrap()).unwrap()["error"]["type"],
        "authentication_error"
    );
    let (first, second) = (&seen["limited"][0], &seen["limited"][1]);
    assert_eq!((first["status"].as_u64(), second["status"].as_u64()), (Some(200), Some(429)), "{seen}");
    assert_eq!(first["headers"]["x-ratelimit-remaining"], "0", "the rate-limit headers are exposed: {first}");
    assert_eq!(second["headers"]["x-ratelimit-limit"], "1", "{second}");
    assert!(second["headers"]["retry-after"].is_string(), "{second}");
    assert_eq!(upstream.requests().len(), 1, "the listed origin's call to the provider");

    // The same page from another origin: every fetch fails in the browser.
    let seen = other.run(&script).await;
    for name in ["chat", "stream", "paid", "models", "no_key"] {
        assert_eq!(seen[name]["ok"], false, "{name}: {seen}");
        assert!(seen[name]["error"].as_str().unwrap().contains("TypeError"), "{name}: {seen}");
    }
    assert_eq!(upstream.requests().len(), 1, "nothing more reached the provider");
    assert!(
        counter(&gw, "aigw_rejected_total{reason=\"cors_preflight\"}").await >= 5,
        "the preflights arrived and were refused"
    );
}

/// A page cannot make an unauthenticated gateway on loopback call its provider: the requests
/// it may send without a preflight ("simple" content types: text/plain, a form, none) arrive
/// and are refused before any upstream call; a JSON request needs a preflight, which fails
/// without `aigw.cors`.
#[tokio::test]
async fn chromium_cannot_spend_an_unauthenticated_gateway() {
    let upstream = MockUpstream::start().await;
    openai_upstream(&upstream);
    let page = PageServer::start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [paid("chat", "llm/v1/chat", &upstream)]}))).await;
    let script = format!(
        r#"
const gw = "http://127.0.0.1:{port}";
const chat = JSON.stringify({{model: "chat", messages: [{{role: "user", content: "spend it"}}]}});
const native = JSON.stringify({{messages: [{{role: "user", content: "spend it"}}]}});
return {{
  text_plain: await call(gw + "/endpoints/chat/invocations", {{method: "POST", mode: "no-cors", body: native}}),
  no_type: await call(gw + "/v1/chat/completions", {{method: "POST", mode: "no-cors", body: new Blob([chat])}}),
  form: await call(gw + "/v1/messages", {{method: "POST", mode: "no-cors", headers: {{"content-type": "application/x-www-form-urlencoded"}}, body: chat}}),
  proxy: await call(gw + "/gateway/proxy/chat/chat/completions", {{method: "POST", mode: "no-cors", headers: {{"content-type": "text/plain"}}, body: chat}}),
  json: await call(gw + "/v1/chat/completions", {{method: "POST", headers: {{"content-type": "application/json"}}, body: chat}}),
}};
"#,
        port = gw.port
    );
    let seen = page.run(&script).await;
    for name in ["text_plain", "no_type", "form", "proxy"] {
        assert_eq!(
            (seen[name]["ok"].as_bool(), seen[name]["type"].as_str()),
            (Some(true), Some("opaque")),
            "{name} was sent: {seen}"
        );
    }
    assert_eq!(seen["json"]["ok"], false, "{seen}");
    assert!(upstream.requests().is_empty(), "the page reached the provider: {:?}", upstream.requests());
    assert_eq!(
        counter(&gw, "aigw_rejected_total{reason=\"content_type\"}").await,
        4,
        "the four simple requests arrived and were refused"
    );
    // The same call as JSON from a program is served: the refusals above are about the browser's request.
    let (status, _) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(upstream.requests().len(), 1);
}
