//! The audit log: one JSON line per request (`aigw.audit`: `stderr` by default, a file, or
//! `off`).
//!
//! ```json
//! {"time":"2026-11-24T10:00:00.123Z","request_id":"4bf9…","client":"10.0.0.7:53122","key":"team-a",
//!  "family":"openai","method":"POST","path":"/v1/chat/completions","target":"chat-route",
//!  "endpoint":"chat","provider":"openai","model":"gpt-4o-mini","status":200,"error":null,
//!  "bytes_in":182,"bytes_out":1024,"tokens_in":12,"tokens_out":40,"cached_tokens":0,
//!  "reasoning_tokens":null,"cost_usd":0.0000258,"duration_ms":812.4,
//!  "upstream_ms":640.2,"first_byte_ms":null,"stream":false,
//!  "rate_limit":{"limit":100,"remaining":57,"limited":false}}
//! ```
//!
//! `key` is the key's *name*, never the key. Lines go through a bounded channel to a writer
//! service, so a slow disk never stalls requests (a full channel drops the line and counts it in
//! `aigw_audit_dropped_total`). The writer writes what is queued in one call, then rests
//! [`FLUSH_PAUSE`] so that a busy gateway wakes it a few times a second instead of once per
//! request; a stopping process waits until every queued line is written ([`AuditSink::flushed`]). A file is checked every second and reopened when it was rotated
//! away (renamed or deleted, as logrotate does) or when the configuration names another one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use tokio::sync::{Mutex, mpsc};

use crate::config::AuditSettings;

/// Lines waiting to be written before new ones are dropped.
pub const QUEUE: usize = 65_536;

/// Room for a typical line, so it is written without reallocating.
const LINE_CAPACITY: usize = 640;

/// The most the writer writes in one call.
const BATCH: usize = 256 * 1024;

/// How long the writer rests after a write (lines queued meanwhile go in the next write).
pub const FLUSH_PAUSE: Duration = Duration::from_millis(50);

/// A rate-limit decision, as logged.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RateLimitRecord {
    /// Calls per window.
    pub limit: u64,
    /// Calls left.
    pub remaining: u64,
    /// Whether this request was refused.
    pub limited: bool,
}

/// One audit line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// When the request started (UTC, RFC 3339, milliseconds).
    pub time: String,
    /// Request id (also in the `x-request-id` answer header and sent upstream).
    pub request_id: &'a str,
    /// Client address.
    pub client: Option<String>,
    /// Name of the gateway key used.
    pub key: Option<&'a str>,
    /// `mlflow` or `openai`.
    pub family: &'static str,
    /// HTTP method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Endpoint or route named by the request.
    pub target: Option<&'a str>,
    /// Endpoint that served it (the chosen destination of a route).
    pub endpoint: Option<&'a str>,
    /// Its provider.
    pub provider: Option<&'a str>,
    /// Its model.
    pub model: Option<&'a str>,
    /// Status sent.
    pub status: u16,
    /// Error category.
    pub error: Option<&'static str>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Answer body bytes.
    pub bytes_out: usize,
    /// Prompt tokens reported by the provider.
    pub tokens_in: Option<u64>,
    /// Completion tokens reported by the provider.
    pub tokens_out: Option<u64>,
    /// Prompt tokens read from the provider's cache (part of `tokens_in`).
    pub cached_tokens: Option<u64>,
    /// Reasoning tokens (part of `tokens_out`).
    pub reasoning_tokens: Option<u64>,
    /// What the tokens cost in US dollars, from the serving endpoint's `model.pricing` (null
    /// when it has none or the usage is unknown).
    pub cost_usd: Option<f64>,
    /// Total time.
    pub duration_ms: f64,
    /// Upstream time to its answer's header.
    pub upstream_ms: Option<f64>,
    /// Time to the first byte of a streamed answer.
    pub first_byte_ms: Option<f64>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The quota decision, for limited endpoints.
    pub rate_limit: Option<RateLimitRecord>,
}

/// The sending side, held by the gateway state.
pub struct AuditSink {
    tx: mpsc::Sender<Vec<u8>>,
    counts: Arc<Counts>,
}

/// Lines queued and lines written (or discarded by `audit: off`), for [`AuditSink::flushed`].
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    written: AtomicU64,
}

/// The receiving side, taken by [`AuditWriter`].
pub struct AuditQueue {
    rx: mpsc::Receiver<Vec<u8>>,
    counts: Arc<Counts>,
}

/// Make a sink and the queue the writer service drains.
pub fn channel() -> (AuditSink, Mutex<Option<AuditQueue>>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let counts = Arc::new(Counts::default());
    (AuditSink { tx, counts: Arc::clone(&counts) }, Mutex::new(Some(AuditQueue { rx, counts })))
}

impl AuditSink {
    /// Queue a line; false when it had to be dropped.
    pub fn send(&self, record: &Record<'_>) -> bool {
        let mut line = Vec::with_capacity(LINE_CAPACITY);
        if serde_json::to_writer(&mut line, record).is_err() {
            return false;
        }
        line.push(b'\n');
        let queued = self.tx.try_send(line).is_ok();
        if queued {
            self.counts.queued.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Whether every line queued so far has been written.
    pub fn flushed(&self) -> bool {
        self.counts.written.load(Ordering::Acquire) >= self.counts.queued.load(Ordering::Acquire)
    }
}

/// The audit time: RFC 3339, UTC, always three fraction digits (`2023-11-14T22:13:20.123Z`).
const AUDIT_TIME: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// RFC 3339 UTC with milliseconds. A time before the epoch (a clock set wrong) is written as
/// the epoch: the line is still worth writing.
pub fn rfc3339(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = i128::try_from(since_epoch.as_nanos())
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Formatting fails only for years past 9999, which from_unix_timestamp_nanos refuses.
    at.format(AUDIT_TIME).unwrap_or_default()
}

enum Output {
    None,
    Stderr,
    File { path: PathBuf, file: File, id: (u64, u64) },
}

fn open(path: &Path) -> std::io::Result<(File, (u64, u64))> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let m = file.metadata()?;
    Ok((file, (m.dev(), m.ino())))
}

impl Output {
    fn for_settings(settings: &AuditSettings) -> Output {
        match settings {
            AuditSettings::Off => Output::None,
            AuditSettings::Stderr => Output::Stderr,
            AuditSettings::File(path) => match open(path) {
                Ok((file, id)) => Output::File { path: path.clone(), file, id },
                Err(e) => {
                    log::error!("cannot open the audit log {}: {e}; writing audit lines to stderr", path.display());
                    Output::Stderr
                }
            },
        }
    }

    fn matches(&self, settings: &AuditSettings) -> bool {
        match (self, settings) {
            (Output::None, AuditSettings::Off) | (Output::Stderr, AuditSettings::Stderr) => true,
            (Output::File { path, .. }, AuditSettings::File(p)) => path == p,
            _ => false,
        }
    }

    /// Reopen a file that was rotated away.
    fn check_rotation(&mut self) {
        if let Output::File { path, file, id } = self {
            let current = std::fs::metadata(&*path).map(|m| (m.dev(), m.ino())).ok();
            if current != Some(*id) {
                match open(path) {
                    Ok((f, new_id)) => {
                        let _ = file.flush();
                        *file = f;
                        *id = new_id;
                        log::info!("audit log {} reopened", path.display());
                    }
                    Err(e) => log::error!("cannot reopen the audit log {}: {e}", path.display()),
                }
            }
        }
    }

    fn write(&mut self, data: &[u8]) {
        let result = match self {
            Output::None => Ok(()),
            Output::Stderr => std::io::stderr().lock().write_all(data),
            Output::File { file, .. } => file.write_all(data),
        };
        if let Err(e) = result {
            log::error!("writing the audit log failed: {e}");
        }
    }
}

/// The current audit settings (they follow configuration reloads).
pub type SettingsSource = Box<dyn Fn() -> AuditSettings + Send + Sync>;

/// Whether the process is draining to stop (the writer then writes without resting).
pub type DrainingSource = Box<dyn Fn() -> bool + Send + Sync>;

/// The writer service.
pub struct AuditWriter {
    queue: Mutex<Option<AuditQueue>>,
    settings: SettingsSource,
    draining: DrainingSource,
}

impl AuditWriter {
    /// A writer draining `queue`, writing where `settings` says (checked every second).
    pub fn new(queue: Mutex<Option<AuditQueue>>, settings: SettingsSource, draining: DrainingSource) -> Self {
        AuditWriter { queue, settings, draining }
    }
}

#[async_trait]
impl BackgroundService for AuditWriter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // Keeps running through a graceful shutdown so the last requests are logged.
        let Some(AuditQueue { mut rx, counts }) = self.queue.lock().await.take() else { return };
        let mut output = Output::for_settings(&(self.settings)());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                line = rx.recv() => {
                    let Some(line) = line else { break };
                    batch.extend_from_slice(&line);
                    let mut lines = 1;
                    // Take everything queued without waiting, writing every 256 KiB.
                    while let Ok(l) = rx.try_recv() {
                        if batch.len() + l.len() > BATCH {
                            output.write(&batch);
                            batch.clear();
                        }
                        batch.extend_from_slice(&l);
                        lines += 1;
                    }
                    output.write(&batch);
                    batch.clear();
                    counts.written.fetch_add(lines, Ordering::Release);
                    // Rest while lines collect (a send to a writer that is not waiting on the
                    // queue wakes nothing); not while the process drains to stop.
                    if !(self.draining)() {
                        tokio::time::sleep(FLUSH_PAUSE).await;
                    }
                }
                _ = tick.tick() => {
                    let settings = (self.settings)();
                    if !output.matches(&settings) {
                        output = Output::for_settings(&settings);
                    }
                    output.check_rotation();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_nanos(1_999_999_999)), "1970-01-01T00:00:01.999Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(253_402_300_799)), "9999-12-31T23:59:59.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(1)), "1970-01-01T00:00:00.000Z");
    }
}
