//! Inbound TLS (`aigw.tls`): rustls through Pingora's listener, HTTP/2 offered via ALPN, and
//! the certificate and key re-read when their files change (checked every 2 s), without a
//! restart. A new pair that does not load, or whose key does not match its certificate (a
//! renewal caught between writing the two files), is logged and the current one keeps serving
//! until the files are consistent again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The serving certificate, swapped when its files change.
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let (cs, ks) = (cert.display().to_string(), key.display().to_string());
    let (certs, key_der) = match pingora::tls::load_certs_and_key_files(&cs, &ks) {
        Ok(Some(pair)) => pair,
        Ok(None) => return Err(format!("no certificate in {cs} or no key in {ks}")),
        Err(e) => return Err(format!("cannot load {cs} / {ks}: {}", e.etype.as_str())),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("unsupported private key in {ks}: {e}"))?;
    let pair = CertifiedKey::new(certs, signing);
    // A renewal that writes the two files one after the other passes through a state where
    // they do not belong together; serving that would fail every handshake.
    match pair.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!("the key in {ks} does not belong to the certificate in {cs}"))
        }
        // `Unknown`: this key type cannot tell its public key; nothing to compare.
        _ => Ok(pair),
    }
}

impl CertStore {
    /// Load the pair; an error names the files (never their content).
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<CertStore>, String> {
        let loaded = load(cert, key)?;
        Ok(Arc::new(CertStore {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(loaded),
            stamp: Mutex::new((modified(cert), modified(key))),
        }))
    }

    /// Reload when either file changed; true when a new pair was installed.
    pub fn refresh(&self) -> bool {
        let now = (modified(&self.cert), modified(&self.key));
        {
            let mut stamp = match self.stamp.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if *stamp == now {
                return false;
            }
            *stamp = now;
        }
        match load(&self.cert, &self.key) {
            Ok(pair) => {
                self.current.store(Arc::new(pair));
                log::info!("TLS certificate {} reloaded", self.cert.display());
                true
            }
            Err(e) => {
                log::error!("TLS certificate reload failed ({e}); the current certificate keeps serving");
                false
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The service that checks the files.
pub struct CertWatcher(pub Arc<CertStore>);

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {
                    let store = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || store.refresh()).await;
                }
            }
        }
    }
}
