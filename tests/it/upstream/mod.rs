//! The upstream client (`src/upstream/`): `client` its faults, TLS and pool, `egress` the
//! forward proxy (a real tinyproxy) and the egress guard.

use std::sync::Arc;

use crate::common::yaml;
use serde_json::{Value, json};

mod client;
mod egress;

fn chat_ok() -> Value {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

fn config(base: &str) -> String {
    yaml(&json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": "sk-test", "openai_api_base": base}}}]}))
}

fn chat(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn v1_chat(stream: bool) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

const NATIVE: &str = "/endpoints/chat/invocations";
const V1: &str = "/v1/chat/completions";

/// The server names (SNI) TLS clients asked for, in order.
type SniLog = Arc<std::sync::Mutex<Vec<Option<String>>>>;

/// Serves one certificate and records each handshake's SNI.
#[derive(Debug)]
struct RecordSni {
    key: Arc<tokio_rustls::rustls::sign::CertifiedKey>,
    seen: SniLog,
}

impl tokio_rustls::rustls::server::ResolvesServerCert for RecordSni {
    fn resolve(
        &self,
        hello: tokio_rustls::rustls::server::ClientHello<'_>,
    ) -> Option<Arc<tokio_rustls::rustls::sign::CertifiedKey>> {
        self.seen.lock().unwrap().push(hello.server_name().map(str::to_owned));
        Some(self.key.clone())
    }
}

/// A TLS acceptor for `names` (its certificate, which is its own CA, written into `dir`) that
/// records SNI.
fn tls_acceptor(dir: &std::path::Path, names: &[&str]) -> (tokio_rustls::TlsAcceptor, std::path::PathBuf, SniLog) {
    let cert = rcgen::generate_simple_self_signed(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, cert.cert.pem()).unwrap();
    let certs = vec![cert.cert.der().clone()];
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let signing = tokio_rustls::rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    let seen = SniLog::default();
    let resolver =
        RecordSni { key: Arc::new(tokio_rustls::rustls::sign::CertifiedKey::new(certs, signing)), seen: seen.clone() };
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca_path, seen)
}

/// A Pingora configuration with one worker thread (written into `dir`): upstream connections
/// are pooled per worker, and a test of the pool needs every request to see the same one.
fn one_worker(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("pingora.yaml");
    std::fs::write(&path, "---\nversion: 1\nthreads: 1\n").unwrap();
    path
}
