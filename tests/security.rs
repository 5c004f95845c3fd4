//! Security and operations: gateway API keys (authentication, authorization, listing filters,
//! hot reload, the loopback rule), inbound TLS with HTTP/2 and certificate reload, the
//! health-only listener, the audit log with rotation, metrics, protective limits, contained
//! panics.

#[path = "it/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::upstream::MockUpstream;
use common::{Gateway, free_port, yaml};
use serde_json::{Value, json};

const KEY_A: &str = "gw-key-team-a-0123456789";
const KEY_CI: &str = "gw-key-ci-abcdefghijkl";

fn sha256_hex(s: &str) -> String {
    aigw::config::settings::sha256(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn keyed_config(extra: Value) -> Value {
    let mut c = json!({
        "endpoints": [mock("chat"), mock("other"),
                      {"name": "emb", "endpoint_type": "llm/v1/embeddings", "model": {"provider": "mock"}}],
        "aigw": {"auth": {"keys": [
            {"name": "team-a", "key": "$AIGW_TEST_KEY_A", "endpoints": ["chat"]},
            {"name": "ci", "sha256": sha256_hex(KEY_CI)}
        ]}}
    });
    if let Value::Object(o) = extra {
        for (k, v) in o {
            c["aigw"][k] = v;
        }
    }
    c
}

async fn keyed(extra: Value) -> Gateway {
    Gateway::start_with(&yaml(&keyed_config(extra)), &[("AIGW_TEST_KEY_A", KEY_A)], &[]).await
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

async fn status_with(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = gw.client.post(gw.url(path)).json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn api_keys_authenticate_and_authorize() {
    let gw = keyed(Value::Null).await;
    // /health is open.
    let (status, _) = gw.get("/health").await;
    assert_eq!(status, 200);

    // No key: 401 in each family's shape.
    let (status, body, headers) = status_with(&gw, "/endpoints/chat/invocations", &ask(), &[]).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("Missing API key"));
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"aigw\"");
    let v1 = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = status_with(&gw, "/v1/chat/completions", &v1, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // Wrong key.
    let (status, body, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", "Bearer nope-nope-nope")]).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Incorrect API key provided")));
    // Listing needs a key too.
    assert_eq!(gw.get("/api/2.0/endpoints/").await.0, 401);

    // Every header form.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mlflow:{KEY_A}"));
    for h in [
        ("authorization", format!("Bearer {KEY_A}")),
        ("x-api-key", KEY_A.to_owned()),
        ("api-key", KEY_A.to_owned()),
        ("authorization", format!("Basic {basic}")),
    ] {
        let (status, body, _) = status_with(&gw, "/endpoints/chat/invocations", &ask(), &[(h.0, &h.1)]).await;
        assert_eq!(status, 200, "{h:?}: {body}");
    }

    // team-a may use chat only: 403 elsewhere, in both shapes.
    let bearer_a = format!("Bearer {KEY_A}");
    let (status, body, _) =
        status_with(&gw, "/endpoints/other/invocations", &ask(), &[("authorization", &bearer_a)]).await;
    assert_eq!(status, 403);
    assert_eq!(body["detail"], "API key 'team-a' may not use 'other'");
    // On a native route that is decided before the body is read: a body over the size limit
    // still gets the 403, not a 413.
    let big = gw
        .client
        .post(gw.url("/endpoints/other/invocations"))
        .header("authorization", &bearer_a)
        .header("content-type", "application/json")
        .body(vec![b' '; 17 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 403);
    let v1_other = json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = status_with(&gw, "/v1/chat/completions", &v1_other, &[("authorization", &bearer_a)]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "permission_error");
    // ci may use everything.
    let bearer_ci = format!("Bearer {KEY_CI}");
    let (status, _, _) = status_with(&gw, "/v1/chat/completions", &v1_other, &[("authorization", &bearer_ci)]).await;
    assert_eq!(status, 200);

    // Listings show a key only what it may use.
    let list = |auth: String| {
        let gw = &gw;
        async move {
            let v: Value = gw
                .client
                .get(gw.url("/v1/models"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(bearer_a.clone()).await, ["chat"]);
    assert_eq!(list(bearer_ci.clone()).await, ["chat", "other", "emb"]);
    let v: Value = gw
        .client
        .get(gw.url("/api/2.0/endpoints/"))
        .header("authorization", &bearer_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(
        gw.client
            .get(gw.url("/api/2.0/endpoints/other"))
            .header("authorization", &bearer_a)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Metrics count the rejections (and need a key on the main listener, one not restricted
    // to some endpoints: the metrics name them all).
    assert_eq!(gw.get("/metrics").await.0, 401);
    let r = gw.client.get(gw.url("/metrics")).header("authorization", &bearer_a).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .header("authorization", &bearer_ci)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Three requests above without a key, and the /metrics request without one.
    assert!(text.contains("aigw_auth_rejected_total{reason=\"missing_key\"} 4"), "{text}");
    assert!(text.contains("aigw_auth_rejected_total{reason=\"invalid_key\"} 1"));
    assert!(text.contains("aigw_auth_rejected_total{reason=\"forbidden\"} 4"), "{text}");
    assert!(!text.contains(KEY_A) && !text.contains(KEY_CI));
}

#[tokio::test]
async fn keys_hot_reload_and_counters_per_key() {
    let gw = keyed(Value::Null).await;
    let bearer_ci = format!("Bearer {KEY_CI}");
    // Add a key and a per-key limit.
    let mut c = keyed_config(Value::Null);
    c["aigw"]["auth"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "new", "sha256": sha256_hex("gw-key-new-zyxwvutsrq")}));
    c["endpoints"][0]["limit"] = json!({"calls": 1, "renewal_period": "day", "key": "api_key"});
    std::fs::write(&gw.config_path, yaml(&c)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = status_with(
            &gw,
            "/endpoints/chat/invocations",
            &ask(),
            &[("authorization", "Bearer gw-key-new-zyxwvutsrq")],
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Counted per key: "new" used its one call; ci has its own.
    let (status, _, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", "Bearer gw-key-new-zyxwvutsrq")])
            .await;
    assert_eq!(status, 429);
    let (status, _, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", &bearer_ci)]).await;
    assert_eq!(status, 200);
    // Remove it again.
    std::fs::write(&gw.config_path, yaml(&keyed_config(Value::Null))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = status_with(
            &gw,
            "/endpoints/chat/invocations",
            &ask(),
            &[("authorization", "Bearer gw-key-new-zyxwvutsrq")],
        )
        .await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the removed key kept working");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_credentials_never_travel_upstream() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    );
    let cfg = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "m", "config": {"openai_api_key": "sk-provider-secret-0001", "openai_api_base": upstream.url()}}}],
        "aigw": {"auth": {"keys": [{"name": "app", "key": KEY_A}]}}});
    let gw = Gateway::start(&yaml(&cfg)).await;
    let (status, _, _) = status_with(
        &gw,
        "/endpoints/chat/invocations",
        &ask(),
        &[
            ("authorization", &format!("Bearer {KEY_A}")),
            ("x-api-key", "client-x-api-key"),
            ("api-key", "client-api-key"),
            ("cookie", "session=1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let req = upstream.last();
    assert_eq!(req.header("authorization"), Some("Bearer sk-provider-secret-0001"));
    for (k, v) in &req.headers {
        assert!(!v.contains(KEY_A) && !v.contains("client-"), "client header leaked upstream: {k}: {v}");
        assert_ne!(k, "cookie");
    }
}

#[tokio::test]
async fn no_keys_means_loopback_only_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, yaml(&json!({"endpoints": [mock("chat")]}))).unwrap();
    let out = Command::new(common::binary())
        .args(["--host", "0.0.0.0", "--port", &free_port().to_string(), "--config-path"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen") && err.contains("allow_unauthenticated"), "{err}");

    // Explicitly allowed: it serves, and says so.
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [mock("chat")], "aigw": {"auth": {"allow_unauthenticated": true}}})),
        &[],
        &["--host", "0.0.0.0"],
    )
    .await;
    assert!(gw.logs().contains("no API keys configured and aigw.auth.allow_unauthenticated is set"));
    // A reload may not take the keys away from a public listener.
    let gw =
        Gateway::start_with(&yaml(&keyed_config(Value::Null)), &[("AIGW_TEST_KEY_A", KEY_A)], &["--host", "0.0.0.0"])
            .await;
    std::fs::write(&gw.config_path, yaml(&json!({"endpoints": [mock("chat")]}))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.logs().contains("reload rejected") {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 401, "still protected");
}

/// A self-signed certificate for localhost, written as cert.pem / key.pem.
fn write_cert(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), name.to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem.tmp"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem.tmp"), cert.key_pair.serialize_pem()).unwrap();
    std::fs::rename(dir.join("key.pem.tmp"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).unwrap();
    cert.cert.der().to_vec()
}

/// The certificate a TLS server presents.
async fn presented_cert(port: u16) -> Vec<u8> {
    let tls = tls_connect(port, &[]).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A TLS connection to `port` that accepts any certificate, offering the `alpn` protocols.
async fn tls_connect(port: u16, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio_rustls::rustls;
    #[derive(Debug)]
    struct AcceptAny;
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// The SETTINGS_MAX_CONCURRENT_STREAMS value the server announces in its first HTTP/2 SETTINGS frame.
async fn announced_h2_stream_limit(port: u16) -> Option<u32> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(port, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Client preface, then an empty SETTINGS frame.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await.unwrap();
    tls.flush().await.unwrap();
    let mut header = [0u8; 9];
    tls.read_exact(&mut header).await.unwrap();
    assert_eq!(header[3], 4, "the server's first frame is SETTINGS");
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).await.unwrap();
    payload
        .chunks_exact(6)
        .find(|p| u16::from_be_bytes([p[0], p[1]]) == 3)
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]))
}

#[tokio::test]
async fn tls_with_http2_certificate_reload_and_a_health_only_listener() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path(), "first.test");
    let health_port = free_port();
    let cfg = json!({"endpoints": [mock("chat")], "aigw": {
        "tls": {"cert": certs.path().join("cert.pem"), "key": certs.path().join("key.pem")},
        "limits": {"h2_max_streams": 7},
        "health_listen": format!("127.0.0.1:{health_port}")}});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, yaml(&cfg)).unwrap();
    let port = free_port();
    let log = dir.path().join("log");
    let _child = common::KillOnDrop(
        Command::new(common::binary())
            .args(["--port", &port.to_string(), "--config-path"])
            .arg(&file)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let plain = common::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while plain.get(format!("http://127.0.0.1:{health_port}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The health-only listener answers /health and nothing else.
    let r = plain.get(format!("http://127.0.0.1:{health_port}/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = plain.get(format!("http://127.0.0.1:{health_port}/api/2.0/endpoints/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = plain
        .post(format!("http://127.0.0.1:{health_port}/endpoints/chat/invocations"))
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // TLS: HTTP/2 through ALPN, HTTP/1.1 too.
    let root = reqwest::Certificate::from_der(&first).unwrap();
    let h2 = reqwest::Client::builder().no_proxy().add_root_certificate(root.clone()).build().unwrap();
    let r = h2
        .post(format!("https://localhost:{port}/v1/chat/completions"))
        .json(&json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let text = r.text().await.unwrap();
    assert!(text.contains("from chat") || text.contains("from") && text.ends_with("data: [DONE]\n\n"), "{text}");
    let h1 = reqwest::Client::builder().no_proxy().add_root_certificate(root).http1_only().build().unwrap();
    let r = h1.post(format!("https://localhost:{port}/endpoints/chat/invocations")).json(&ask()).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.json::<Value>().await.unwrap()["choices"][0]["message"]["content"], "from chat");
    assert_eq!(presented_cert(port).await, first);
    // The per-connection HTTP/2 stream cap is announced to the client.
    assert_eq!(announced_h2_stream_limit(port).await, Some(7));

    // A new certificate on disk is served without a restart.
    let second = write_cert(certs.path(), "second.test");
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented_cert(port).await != second {
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken one is refused and the current one keeps serving.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(presented_cert(port).await, second);
    let mut logs = String::new();
    std::fs::File::open(dir.path().join("err")).unwrap().read_to_string(&mut logs).unwrap();
    assert!(logs.contains("TLS certificate reload failed"), "{logs}");
    // A renewal caught half-way: a new certificate beside the old key is refused (handshakes
    // keep working with the current pair); once the key follows, the new pair serves.
    let third = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(certs.path().join("cert.pem"), third.cert.pem()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(presented_cert(port).await, second);
    let mut logs = String::new();
    std::fs::File::open(dir.path().join("err")).unwrap().read_to_string(&mut logs).unwrap();
    assert!(logs.contains("does not belong to the certificate"), "{logs}");
    std::fs::write(certs.path().join("key.pem"), third.key_pair.serialize_pem()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented_cert(port).await != third.cert.der().to_vec() {
        assert!(Instant::now() < deadline, "the completed renewal was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn audit_lines_with_rotation() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}),
    );
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.log");
    let cfg = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-x", "config": {"openai_api_key": "sk-audit-provider-key", "openai_api_base": upstream.url()}},
        "limit": {"calls": 100, "renewal_period": "day"}}],
        "routes": [{"name": "r", "task_type": "llm/v1/chat", "destinations": [{"name": "chat", "traffic_percentage": 100}]}],
        "aigw": {"audit": {"path": audit}, "auth": {"keys": [{"name": "team-a", "key": KEY_A}]}}});
    let gw = Gateway::start(&yaml(&cfg)).await;
    let auth = format!("Bearer {KEY_A}");
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", &auth)
        .header("x-request-id", "req-audit-1")
        .json(&json!({"model": "r", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = gw
        .client
        .post(gw.url("/endpoints/chat/invocations"))
        .header("authorization", "Bearer wrong-key-000000000")
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let read_lines = |path: &std::path::Path, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "audit lines missing: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The harness's readiness probe (GET /health) wrote the first line.
    let lines: Vec<Value> = read_lines(&audit, 3).into_iter().filter(|l| l["path"] != "/health").collect();
    let ok = &lines[0];
    assert_eq!(ok["request_id"], "req-audit-1");
    // The same id went upstream.
    assert_eq!(upstream.requests()[0].header("x-request-id"), Some("req-audit-1"));
    assert_eq!(ok["key"], "team-a");
    assert_eq!(ok["family"], "openai");
    assert_eq!(ok["target"], "r");
    assert_eq!(ok["endpoint"], "chat");
    assert_eq!(ok["provider"], "openai");
    assert_eq!(ok["model"], "gpt-x");
    assert_eq!(ok["status"], 200);
    assert_eq!((ok["tokens_in"].as_u64(), ok["tokens_out"].as_u64()), (Some(11), Some(7)));
    assert_eq!(ok["rate_limit"]["limit"], 100);
    assert_eq!(ok["rate_limit"]["limited"], false);
    assert!(ok["duration_ms"].as_f64().unwrap() > 0.0 && ok["upstream_ms"].as_f64().is_some());
    assert!(ok["bytes_in"].as_u64().unwrap() > 0 && ok["bytes_out"].as_u64().unwrap() > 0);
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    let denied = &lines[1];
    assert_eq!(
        (denied["status"].as_u64(), denied["error"].as_str(), denied["key"].as_str()),
        (Some(401), Some("unauthorized"), None)
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(KEY_A) && !text.contains("wrong-key") && !text.contains("sk-audit-provider-key"));

    // logrotate-style rotation: the file is moved away; a new one is started.
    std::fs::rename(&audit, logs.path().join("audit.log.1")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = gw
        .client
        .post(gw.url("/endpoints/chat/invocations"))
        .header("authorization", &auth)
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let lines = read_lines(&audit, 1);
    assert_eq!(lines[0]["path"], "/endpoints/chat/invocations");
    assert_eq!(read_lines(&logs.path().join("audit.log.1"), 3).len(), 3);
}

#[tokio::test]
async fn metrics_on_a_separate_listener() {
    let metrics_port = free_port();
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    );
    let config = json!({"endpoints": [
        mock("chat"), {"name": "limited", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}, "limit": {"calls": 1, "renewal_period": "day"}},
        {"name": "remote", "endpoint_type": "llm/v1/chat", "model": {"provider": "openai", "name": "m",
            "config": {"openai_api_key": "sk-metrics-0000000", "openai_api_base": upstream.url()}}}],
        "aigw": {"metrics": {"listen": format!("127.0.0.1:{metrics_port}")}}});
    let gw = Gateway::start(&yaml(&config)).await;
    assert!(gw.logs().contains("no API keys configured: serving unauthenticated, on loopback only"), "{}", gw.logs());
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 200);
    assert_eq!(gw.post("/endpoints/remote/invocations", &ask()).await.0, 200);
    // One accepted and one rejected reload.
    let mut changed = config.clone();
    changed["endpoints"].as_array_mut().unwrap().push(mock("added"));
    std::fs::write(&gw.config_path, yaml(&changed)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.post("/endpoints/added/invocations", &ask()).await.0 != 200 {
        assert!(Instant::now() < deadline, "the reload was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&gw.config_path, "endpoints: [{name: broken}]").unwrap();
    while !gw.logs().contains("reload rejected") {
        assert!(Instant::now() < deadline, "the invalid reload was never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = gw
        .post_text(
            "/v1/chat/completions",
            &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}),
        )
        .await;
    assert_eq!(stream.0, 200);
    gw.post("/endpoints/limited/invocations", &ask()).await;
    assert_eq!(gw.post("/endpoints/limited/invocations", &ask()).await.0, 429);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = common::client()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "aigw_requests_total{endpoint=\"chat\",family=\"mlflow\",provider=\"mock\",status=\"200\"} 1",
        "aigw_requests_total{endpoint=\"limited\",family=\"mlflow\",provider=\"mock\",status=\"429\"} 1",
        "aigw_rate_limited_total{endpoint=\"limited\"} 1",
        "aigw_tokens_total{endpoint=\"chat\",kind=\"completion\"}",
        "aigw_stream_first_byte_seconds_count{endpoint=\"chat\"} 1",
        "aigw_request_duration_seconds_bucket",
        "aigw_upstream_duration_seconds_count{provider=\"openai\"} 1",
        "aigw_config_reloads_total{outcome=\"ok\"} 1",
        "aigw_config_reloads_total{outcome=\"rejected\"} 1",
        "aigw_config_generation 2",
        // The scrape itself is in flight.
        "aigw_inflight_requests 1",
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    // The separate listener serves /metrics only; the main one serves it too (no keys here).
    assert_eq!(
        common::client().get(format!("http://127.0.0.1:{metrics_port}/health")).send().await.unwrap().status(),
        404
    );
    assert_eq!(gw.get("/metrics").await.0, 200);
}

#[tokio::test]
async fn protective_limits() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x".repeat(4000)}, "finish_reason": "stop"}]}));
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        {"name": "slow", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"latency_ms": 1500}}},
        {"name": "big", "endpoint_type": "llm/v1/chat", "model": {"provider": "openai", "name": "m",
            "config": {"openai_api_key": "sk-x-0000000000", "openai_api_base": upstream.url()}}}],
        "aigw": {"max_request_body": "64KiB", "max_response_body": "1KiB",
                 "limits": {"max_header_bytes": "8KiB", "max_inflight": 2, "body_read_timeout_s": 1}}})))
    .await;
    // Body too large: 413 JSON.
    let big = json!({"messages": [{"role": "user", "content": "x".repeat(100_000)}]});
    let (status, body) = gw.post("/endpoints/slow/invocations", &big).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("exceeds the limit of 65536 bytes"), "{body}");
    // Header too large: 431 JSON.
    let r = gw
        .client
        .post(gw.url("/endpoints/slow/invocations"))
        .header("x-junk", "a".repeat(9000))
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("too large"));
    // Upstream answer over max_response_body: 502 naming the setting.
    let (status, body) = gw.post("/endpoints/big/invocations", &ask()).await;
    assert_eq!(status, 502);
    assert!(body["detail"].as_str().unwrap().contains("max_response_body"));
    // Slow body (slowloris): 408 after body_read_timeout.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.write_all(b"POST /endpoints/slow/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within 1 s"));
    // Too many in flight: 503 beyond max_inflight.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (common::client(), gw.url("/endpoints/slow/invocations"));
            tokio::spawn(async move { c.post(url).json(&ask()).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort_unstable();
    assert_eq!(codes, [200, 200, 503, 503]);
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["body_too_large", "header_too_large", "response_too_large", "read_timeout", "too_many_inflight"] {
        assert!(text.contains(&format!("aigw_rejected_total{{reason=\"{reason}\"}}")), "{reason}\n{text}");
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn panics_are_contained() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")]}))).await;
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("x-aigw-test-panic", "1")
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    gw.assert_alive().await;
    let (status, _) = gw.post("/endpoints/chat/invocations", &ask()).await;
    assert_eq!(status, 200);
    let logs = gw.logs();
    assert!(logs.contains("panic in thread") && logs.contains("message not logged"), "{logs}");
    assert!(!logs.contains("sk-test-panic-secret-value"), "the panic payload reached the log");
}

/// Send `request` on a fresh connection and read the answer until the server closes (or 10 s).
fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(request).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn raw_body(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Before a request reaches the gateway: a header trickled in too slowly gets a JSON 408 and
/// the connection closes (an idle kept-alive connection does not); what Pingora refuses itself
/// (malformed request line, too many headers) gets its status with a JSON body in the route
/// family's shape; each is counted.
#[tokio::test]
async fn header_deadline_and_json_for_unreadable_requests() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")],
        "aigw": {"limits": {"header_read_timeout_s": 1}}})))
    .await;
    // Slowloris: one header byte every 200 ms keeps each read under Pingora's per-read timeout.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut trickle = sock.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle().take(100) {
            std::thread::sleep(Duration::from_millis(200));
            if trickle.write_all(&[*b]).is_err() {
                return true;
            }
        }
        false
    });
    sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
    assert!(raw_body(&answer)["error"]["message"].as_str().unwrap().contains("did not arrive within 1 s"), "{answer}");
    assert!(writer.join().unwrap(), "the connection was closed on the slow client");

    // A kept-alive connection may sit idle between requests longer than the header deadline.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = [0u8; 4096];
    for round in 0..2 {
        if round == 1 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        sock.write_all(get).unwrap();
        let n = sock.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
    }

    // Pingora's own refusals, now JSON: a malformed request line (MLflow's shape) ...
    let answer = raw_exchange(gw.port, b"GARBAGE\x01 LINE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(raw_body(&answer)["detail"].as_str().unwrap().contains("could not be read"), "{answer}");
    // ... and more than 256 headers on a /v1 path (OpenAI's shape).
    let mut many = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..300 {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answer = raw_exchange(gw.port, &many);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(raw_body(&answer)["error"]["type"], "invalid_request_error", "{answer}");

    gw.assert_alive().await;
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("aigw_rejected_total{reason=\"header_timeout\"} 1"), "{text}");
    assert!(text.contains("aigw_rejected_total{reason=\"bad_request\"} 2"), "{text}");
}

/// `aigw.limits.max_connections`: a connection over the cap gets a JSON 503 and is closed;
/// once connections close, new ones are served again.
#[tokio::test]
async fn connection_cap() {
    let health_port = free_port();
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")], "aigw": {
        "health_listen": format!("127.0.0.1:{health_port}"), "limits": {"max_connections": 3}}})))
    .await;
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 1024];
        match sock.read(&mut buf) {
            Ok(n) if n > 0 => {
                refused = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
            _ => open.push(sock),
        }
    }
    let refused = refused.expect("a connection over the cap was refused");
    assert!(open.len() <= 3 && !open.is_empty(), "{} connections were kept", open.len());
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(raw_body(&refused)["detail"].as_str().unwrap().contains("too many open connections"), "{refused}");
    // The health-only listener still answers while the main one is full.
    let health = common::client().get(format!("http://127.0.0.1:{health_port}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Ok(r) = common::client().get(gw.url("/metrics")).send().await
            && r.status().is_success()
        {
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "never served again after the connections closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("aigw_rejected_total{reason=\"too_many_connections\"}"), "{text}");
    assert!(text.contains("aigw_connections "), "{text}");
}

/// `aigw.limits.idle_timeout_s`: a connection with no request in progress is closed, before
/// its first request and after one alike; a request in progress longer than that is not cut.
#[tokio::test]
async fn idle_connections_are_closed() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        {"name": "slow", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"latency_ms": 2000}}}],
        "aigw": {"limits": {"idle_timeout_s": 1}}})))
    .await;
    let closed_within = |sock: &mut std::net::TcpStream| {
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        matches!(sock.read(&mut buf), Ok(0))
    };
    // Never sent anything.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    assert!(closed_within(&mut silent), "an idle new connection was closed");
    // Idle after a request (Pingora alone would keep it forever).
    let mut used = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    used.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    used.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = used.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut used), "an idle kept-alive connection was closed");
    // A request that takes longer than the idle timeout is answered (a fresh client: the
    // harness's pooled connection was closed while this test blocked the runtime).
    let r = common::client().post(gw.url("/endpoints/slow/invocations")).json(&ask()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
