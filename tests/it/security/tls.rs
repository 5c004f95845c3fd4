//! Inbound TLS (`src/tls.rs`): HTTPS with HTTP/2 through ALPN and HTTP/1.1, the per-connection
//! HTTP/2 stream cap announced, certificate files reloaded without a restart (a broken file or
//! a certificate caught without its key is refused and the current pair keeps serving), and the
//! plain health-only listener.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{free_port, yaml};
use serde_json::{Value, json};

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
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
    let logs = || std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    // A broken one is refused (once the reloader has looked at it) and the current one keeps
    // serving.
    let failed = |logs: String| logs.matches("TLS certificate reload failed").count();
    let before = failed(logs());
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    common::wait_until(Duration::from_secs(15), "the broken certificate is refused", || failed(logs()) > before).await;
    assert_eq!(presented_cert(port).await, second);
    // A renewal caught half-way: a new certificate beside the old key is refused (handshakes
    // keep working with the current pair); once the key follows, the new pair serves.
    let third = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let mismatched = |logs: String| logs.matches("does not belong to the certificate").count();
    let before = mismatched(logs());
    std::fs::write(certs.path().join("cert.pem"), third.cert.pem()).unwrap();
    common::wait_until(Duration::from_secs(15), "the certificate without its key is refused", || {
        mismatched(logs()) > before
    })
    .await;
    assert_eq!(presented_cert(port).await, second);
    std::fs::write(certs.path().join("key.pem"), third.key_pair.serialize_pem()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while presented_cert(port).await != third.cert.der().to_vec() {
        assert!(Instant::now() < deadline, "the completed renewal was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
