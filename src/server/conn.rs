//! The connection guard: what happens on a client connection before a request reaches
//! [`super::Gateway`].
//!
//! Pingora reads an HTTP/1 request header with a timeout per `read()` (60 s), not per header,
//! so a client that trickles one byte every few seconds holds a connection forever; and what
//! Pingora refuses itself (a malformed request line, over 256 headers, a header block over
//! 1 MiB) it answers with an empty `400`. [`Guarded`] wraps Pingora's HTTP application and
//! each HTTP/1 connection's stream ([`GuardedStream`]) to fix both, and caps open connections:
//!
//! * `aigw.limits.header_read_timeout_s` (default 10 s): once the first byte of a request
//!   has arrived, its whole header must arrive within this time; otherwise the client gets a
//!   JSON `408` and the connection is closed.
//! * `aigw.limits.idle_timeout_s` (default 60 s): a connection with no request in progress is
//!   closed quietly after this long, before its first request and between requests alike
//!   (Pingora itself waits 60 s before the first request and forever between later ones).
//! * An answer Pingora writes itself before the request reached the gateway (its empty error
//!   answers) is replaced by the same status with a JSON body in the client API's shape
//!   (OpenAI's when the request line named a `/v1/` path, MLflow's otherwise).
//! * `aigw.limits.max_connections`: a connection over the cap gets a JSON `503` and is closed.
//!   Connections to the health-only and metrics-only listeners are counted but never refused:
//!   a full gateway must still answer its load balancer and its scraper.
//!
//! Each refusal is counted in `aigw_rejected_total{reason}` (`header_timeout`,
//! `bad_request`, `refused_request` for Pingora's other refusals such as `CONNECT`'s 405,
//! `too_many_connections`); `aigw_connections` is the number of open client
//! connections. HTTP/2 connections (TLS with ALPN `h2`) are counted and capped but not
//! wrapped: their framing is the `h2` crate's, and idle ones close after Pingora's
//! `h2_idle_timeout`.
//!
//! The gateway tells the stream where a request is through a task-local phase:
//! [`request_started`] when the header was parsed (`request_filter`), [`request_finished`] when
//! the answer is done (`logging`). Pingora serves an HTTP/1 connection's requests one after the
//! other in the connection's task, inside the scope this module sets.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    ALPN, GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

use super::State;
use crate::error::{ErrorKind, Family, GatewayError};

/// Between requests: no header deadline.
const IDLE: u8 = 0;
/// The first bytes of a request arrived; its header is being read.
const HEADER: u8 = 1;
/// The header was parsed; the gateway has the request.
const BUSY: u8 = 2;

/// Where the connection's current request is; shared by the stream and the request handler.
#[derive(Debug, Default)]
pub struct Phase(AtomicU8);

tokio::task_local! {
    static PHASE: Arc<Phase>;
}

/// The request's header has been parsed and the gateway handles it: the header deadline no
/// longer applies. A no-op outside a guarded HTTP/1 connection.
pub fn request_started() {
    let _ = PHASE.try_with(|p| p.0.store(BUSY, Ordering::Release));
}

/// The request's answer is complete: the next bytes on the connection start a new request.
pub fn request_finished() {
    let _ = PHASE.try_with(|p| p.0.store(IDLE, Ordering::Release));
}

/// Pingora's HTTP application behind the connection guard.
pub struct Guarded<A> {
    inner: Arc<A>,
    state: Arc<State>,
}

impl<A> Guarded<A> {
    /// Guard `inner`'s connections with `state`'s settings and metrics.
    pub fn new(inner: A, state: Arc<State>) -> Self {
        Guarded { inner: Arc::new(inner), state }
    }
}

/// Counts a connection as open until dropped.
struct Open(Arc<State>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let open = self.state.connections.fetch_add(1, Ordering::AcqRel) + 1;
        self.state.metrics.connections.inc();
        let _open = Open(self.state.clone());
        let (max_connections, header_timeout, idle_timeout) = {
            let limits = &self.state.config.load().config.settings.limits;
            (limits.max_connections, limits.header_read_timeout, limits.idle_timeout)
        };
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        // Asked only over the cap (it costs a getsockname): the side listeners are never refused.
        let side_listener = |stream: &Stream| {
            let local =
                stream.get_socket_digest().and_then(|d| d.local_addr().and_then(|a| a.as_inet()).map(|a| a.port()));
            local.is_some_and(|port| {
                [self.state.health_addr, self.state.metrics_addr].iter().flatten().any(|a| a.port() == port)
            })
        };
        if max_connections.is_some_and(|max| open > max) && !side_listener(&stream) {
            self.state.metrics.rejected.with_label_values(&["too_many_connections"]).inc();
            if !h2 {
                let e = GatewayError::new(503, ErrorKind::Unavailable, "The gateway has too many open connections")
                    .with_header("retry-after", "1");
                let answer = raw_answer(&e, Family::Native);
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&answer)).await;
            }
            Shutdown::shutdown(&mut *stream).await;
            return None;
        }
        if h2 {
            return self.inner.process_new(stream, shutdown).await;
        }
        let phase = Arc::new(Phase::default());
        let guarded = GuardedStream::new(stream, phase.clone(), header_timeout, idle_timeout, self.state.clone());
        PHASE.scope(phase, self.inner.process_new(Box::new(guarded), shutdown)).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// A complete HTTP/1.1 answer for `e`, closing the connection.
fn raw_answer(e: &GatewayError, family: Family) -> Vec<u8> {
    let status = e.status_for(family);
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let body = e.body(family);
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nx-request-id: {:032x}\r\n",
        body.len(),
        rand::random::<u128>()
    )
    .into_bytes();
    for (name, value) in &e.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The family of a request from its first bytes (`POST /v1/chat/completions HTTP/1.1`).
fn family_of(start: &[u8]) -> Family {
    let path = start.split(|b| *b == b' ').nth(1).unwrap_or_default();
    Family::of_path(std::str::from_utf8(path).unwrap_or_default())
}

/// The status of an HTTP/1 answer head, if `buf` starts with one.
fn answer_status(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// How many bytes of a request's start are kept to tell its family.
const START: usize = 16;

/// An HTTP/1 client connection's stream under the guard (see the module documentation).
pub struct GuardedStream {
    inner: Stream,
    phase: Arc<Phase>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// The one timer of the connection, reset for each wait it bounds.
    deadline: Pin<Box<Sleep>>,
    /// What `deadline` is set for: the phase it was armed in (`BUSY`: not armed).
    armed: u8,
    state: Arc<State>,
    /// The first bytes of the current request.
    start: [u8; START],
    start_len: usize,
    /// The JSON answer replacing one Pingora wrote itself, and how much of it is written.
    replacement: Option<(Bytes, usize)>,
    /// A replacement was sent: what Pingora still writes of its own answer is dropped.
    replaced: bool,
}

impl std::fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStream").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl GuardedStream {
    fn new(
        inner: Stream,
        phase: Arc<Phase>,
        header_timeout: Duration,
        idle_timeout: Duration,
        state: Arc<State>,
    ) -> Self {
        GuardedStream {
            inner,
            phase,
            header_timeout,
            idle_timeout,
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
            armed: IDLE,
            state,
            start: [0; START],
            start_len: 0,
            replacement: None,
            replaced: false,
        }
    }

    fn phase(&self) -> u8 {
        self.phase.0.load(Ordering::Acquire)
    }

    fn family(&self) -> Family {
        family_of(&self.start[..self.start_len])
    }

    /// The header did not arrive in time: count it, try once to tell the client, fail the read.
    fn header_timed_out(&mut self, cx: &mut Context<'_>) -> io::Error {
        self.state.metrics.rejected.with_label_values(&["header_timeout"]).inc();
        let peer = self.inner.get_socket_digest().and_then(|d| d.peer_addr().map(|a| a.to_string()));
        // Pingora logs the failed read too; this line (debug) adds who and why.
        log::debug!(
            "client {}: request header incomplete after {} s; closing the connection",
            peer.as_deref().unwrap_or("?"),
            self.header_timeout.as_secs_f64()
        );
        let e = GatewayError::new(
            408,
            ErrorKind::InvalidRequest,
            format!("The request header did not arrive within {} s", self.header_timeout.as_secs_f64()),
        );
        let answer = raw_answer(&e, self.family());
        // Best effort: a client this slow may not read either.
        let _ = Pin::new(&mut self.inner).poll_write(cx, &answer);
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        self.replaced = true;
        io::Error::new(io::ErrorKind::TimedOut, "request header timeout")
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let phase = this.phase();
        if phase != this.armed {
            // A new wait begins: between requests (IDLE), or for the rest of a header
            // (HEADER, armed below when its first bytes arrive); none while the gateway has
            // the request (BUSY: its body has its own timeout).
            if phase == IDLE {
                this.deadline.as_mut().reset(tokio::time::Instant::now() + this.idle_timeout);
            }
            this.armed = phase;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() && phase == IDLE {
                    this.phase.0.store(HEADER, Ordering::Release);
                    this.deadline.as_mut().reset(tokio::time::Instant::now() + this.header_timeout);
                    this.armed = HEADER;
                    this.start_len = 0;
                    this.replaced = false;
                }
                if this.phase() == HEADER && this.start_len < START {
                    let take = (START - this.start_len).min(got.len());
                    this.start[this.start_len..this.start_len + take].copy_from_slice(&got[..take]);
                    this.start_len += take;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.armed != BUSY && this.deadline.as_mut().poll(cx).is_ready() {
                    let waited = this.armed;
                    this.armed = BUSY;
                    if waited == HEADER {
                        return Poll::Ready(Err(this.header_timed_out(cx)));
                    }
                    // Idle too long: end the connection as if the client had closed it.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() && this.phase() == HEADER {
            if this.replaced {
                // The rest of Pingora's own answer, already replaced.
                return Poll::Ready(Ok(buf.len()));
            }
            if let Some(status) = answer_status(buf).filter(|s| *s >= 400) {
                let (reason, message) = match status {
                    400 => (
                        "bad_request",
                        "The request could not be read: a malformed request line or header, more than 256 \
                         headers, or a header block over 1 MiB",
                    ),
                    405 => ("refused_request", "Method Not Allowed (CONNECT is not served)"),
                    _ => ("refused_request", "The request was refused before it could be handled"),
                };
                this.state.metrics.rejected.with_label_values(&[reason]).inc();
                let e = GatewayError::new(status, ErrorKind::InvalidRequest, message);
                this.replacement = Some((Bytes::from(raw_answer(&e, this.family())), 0));
            }
        }
        if let Some((answer, written)) = this.replacement.as_mut() {
            while *written < answer.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
            this.replacement = None;
            this.replaced = true;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.phase() == HEADER || self.replacement.is_some() {
            // Rare (Pingora's own answers): go through poll_write, which may replace them.
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut *self.inner).await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_from_the_request_line() {
        assert_eq!(family_of(b"POST /v1/chat/com"), Family::OpenAi);
        assert_eq!(family_of(b"POST /endpoints/c"), Family::Native);
        assert_eq!(family_of(b"GARBAGE"), Family::Native);
        assert_eq!(family_of(b""), Family::Native);
    }

    #[test]
    fn status_of_an_answer_head() {
        assert_eq!(answer_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(answer_status(b"HTTP/1.0 405 x"), Some(405));
        assert_eq!(answer_status(b"data: {}"), None);
        assert_eq!(answer_status(b"HTTP/1.1 4"), None);
    }

    #[test]
    fn raw_answers_are_complete_json_answers() {
        let e = GatewayError::new(408, ErrorKind::InvalidRequest, "slow").with_header("retry-after", "1");
        let text = String::from_utf8(raw_answer(&e, Family::OpenAi)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{head}");
        assert!(head.contains("connection: close") && head.contains("retry-after: 1"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["message"], "slow");
    }
}
