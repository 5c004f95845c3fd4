//! One upstream call: connect (pooled), send the request, read the answer, give the
//! connection back to the pool.
//!
//! Every step runs against one deadline (`MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`, default 300 s,
//! streams included). Failures map to the gateway's errors: no answer in time → 504; refused,
//! reset, TLS or protocol failures → 502.
//!
//! A request is never sent twice by this client (a POST that reached the upstream may have been
//! billed):
//! * a pooled connection is checked before it is used: Pingora's `TransportConnector` polls one
//!   read on it without waiting (`test_reusable_stream`, run by `get_stream` for every reused
//!   stream, TLS included: rustls may consume post-handshake records and report "pending",
//!   which counts as alive) and discards it when the read says closed, failed, or returns
//!   unexpected data, connecting afresh instead; while a connection is idle in the pool, a
//!   watcher drops it as soon as the server closes it;
//! * if writing the request to a reused connection fails, the upstream cannot have received a
//!   whole request, and it is written once more on a fresh connection;
//! * once the request is written, a closed or reset connection is a 502, never a resend (the
//!   server may have read and acted on it). Retrying is the endpoint's `retry` policy's
//!   decision, made in the open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::HttpSession;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::{HttpPeer, Peer};
use pingora::{Error as PError, ErrorType};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout_at};

use super::{Resolver, UpstreamRequest, egress};
use crate::config::{Egress, Origin};
use crate::error::GatewayError;

/// `timeout_at($deadline, $future).await`, with the future pinned where it is built: handing a
/// large future to `timeout_at` by value moves it whole (Pingora's connect and session futures
/// are kilobytes, measured as a few thousand instructions of copying per call).
macro_rules! within {
    ($deadline:expr, $future:expr) => {{
        let future = $future;
        tokio::pin!(future);
        timeout_at($deadline, future).await
    }};
}

/// Default total time for one upstream call (MLflow's `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`).
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(300);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The shared upstream client: connection pool, TLS, resolver, timeouts. A clone shares the
/// pool and the DNS cache (what a client that outlives one call, such as the AWS credential
/// chain's, holds).
#[derive(Clone)]
pub struct Upstreams {
    connector: Arc<TransportConnector>,
    resolver: Arc<Resolver>,
    /// Total time allowed for one upstream call, streams included.
    pub route_timeout: Duration,
    /// The forward proxy and the egress guard (`aigw.egress` and the environment), when either
    /// is configured; `egress_on` says so without loading it. Shared by clones, so a reload
    /// reaches the clients that hold one.
    egress: Arc<ArcSwapOption<Egress>>,
    egress_on: Arc<AtomicBool>,
}

impl Upstreams {
    /// A client using Pingora's `ServerConf` for pool size and TLS roots (`ca_file`; when unset
    /// the system store, which honours `SSL_CERT_FILE`).
    pub fn new(server_conf: &ServerConf, route_timeout: Duration) -> Self {
        Upstreams {
            connector: Arc::new(TransportConnector::new(Some(ConnectorOptions::from_server_conf(server_conf)))),
            resolver: Arc::new(Resolver::default()),
            route_timeout,
            egress: Arc::new(ArcSwapOption::empty()),
            egress_on: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Use `egress` (the proxy and the guard) for the calls that start from now on; set at
    /// start and by every configuration reload.
    pub fn set_egress(&self, egress: &Egress) {
        if egress.is_active() {
            self.egress.store(Some(Arc::new(egress.clone())));
            self.egress_on.store(true, Ordering::Release);
        } else {
            self.egress_on.store(false, Ordering::Release);
            self.egress.store(None);
        }
    }

    /// The route timeout from `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`, or the default.
    pub fn route_timeout_from_env() -> Duration {
        std::env::var("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_ROUTE_TIMEOUT)
    }

    /// Send `req` and read the response header, all of it (the body too, read from the
    /// returned response) within `timeout` from now.
    pub async fn send(
        &self,
        req: &UpstreamRequest,
        request_id: Option<&str>,
        timeout: Duration,
    ) -> Result<Box<UpstreamResponse>, GatewayError> {
        let deadline = Instant::now() + timeout;
        let origin = &req.origin;
        // The plain path written out here, not behind another async fn: one layer of future
        // less on every call.
        let peer = match self.active_egress() {
            Some(egress) => Box::pin(self.egress_peer(&egress, origin, deadline, timeout)).await?,
            None => {
                let addr = within!(deadline, self.resolver.resolve(&origin.host, origin.port))
                    .map_err(|_| timed_out(&origin.authority, timeout))?
                    .map_err(|e| unresolved(origin, &e))?;
                peer(origin, addr)
            }
        };

        // The head and a body up to MERGED_BODY leave in one write; a larger body follows in
        // a second write rather than being copied.
        let merged = req.body.len() <= MERGED_BODY;
        let mut wire = req
            .head(request_id, if merged { req.body.len() } else { 0 })
            .map_err(|why| GatewayError::internal(format!("cannot build the upstream request: {why}")))?;
        let rest: &[u8] = if merged {
            wire.extend_from_slice(&req.body);
            &[]
        } else {
            &req.body
        };
        // `get_stream` hands out a pooled connection only after checking it is still open.
        let (stream, reused) = within!(deadline, self.connector.get_stream(&peer))
            .map_err(|_| timed_out(&req.origin.authority, timeout))?
            .map_err(|e| failed(req, &e, timeout))?;
        // One future for writing and reading (each timeout-wrapped future is moved whole, and
        // the reading half holds Pingora's ~1.5 KB session).
        let (session, status) = match within!(deadline, round_trip(stream, &peer, &wire, rest)) {
            Err(_) => return Err(timed_out(&req.origin.authority, timeout)),
            Ok(Ok(answer)) => answer,
            Ok(Err(Failed::Write(e))) if reused => {
                // The write failed: the server has not received a whole request, so it cannot
                // have acted on it. Once more, on a new connection.
                log::debug!("pooled connection to {} failed on write ({e}); retrying on a new one", origin.authority);
                let stream = within!(deadline, self.connector.new_stream(&peer))
                    .map_err(|_| timed_out(&req.origin.authority, timeout))?
                    .map_err(|e| failed(req, &e, timeout))?;
                match within!(deadline, round_trip(stream, &peer, &wire, rest)) {
                    Err(_) => return Err(timed_out(&req.origin.authority, timeout)),
                    Ok(Ok(answer)) => answer,
                    Ok(Err(Failed::Write(e) | Failed::Read(e))) => return Err(failed(req, &e, timeout)),
                }
            }
            // Once the request is written, whatever happens, it is not sent again.
            Ok(Err(Failed::Write(e) | Failed::Read(e))) => return Err(failed(req, &e, timeout)),
        };
        // Boxed: the session is large (~1.5 KB) and the response moves through several frames
        // before it is released.
        Ok(Box::new(UpstreamResponse {
            session,
            peer,
            deadline,
            status,
            route_timeout: timeout,
            authority: origin.authority.clone(),
            decoder: None,
            encoding_checked: false,
        }))
    }

    /// A complete side call (token endpoints and the like): status and body, within `timeout`,
    /// the body capped at 1 MiB. The connection goes back to the pool.
    pub async fn fetch(&self, req: &UpstreamRequest, timeout: Duration) -> Result<(u16, Bytes), GatewayError> {
        let mut resp = self.send(req, None, timeout).await?;
        let body = resp.body(1 << 20).await?;
        let status = resp.status;
        self.release(resp).await;
        Ok((status, body))
    }

    /// The peer to connect to for `origin` (the raw proxy route's), within `timeout`: the
    /// address from the DNS cache, or a tunnel through the forward proxy; a 502 when the egress
    /// guard refuses the address. [`Upstreams::send`] does the same.
    pub async fn peer_for(&self, origin: &Origin, timeout: Duration) -> Result<HttpPeer, GatewayError> {
        let deadline = Instant::now() + timeout;
        match self.active_egress() {
            Some(egress) => Box::pin(self.egress_peer(&egress, origin, deadline, timeout)).await,
            None => {
                let addr = within!(deadline, self.resolver.resolve(&origin.host, origin.port))
                    .map_err(|_| timed_out(&origin.authority, timeout))?
                    .map_err(|e| unresolved(origin, &e))?;
                Ok(peer(origin, addr))
            }
        }
    }

    /// The egress settings when a proxy or the guard is configured: one atomic load otherwise.
    /// (Boxed by the callers, so that the plain path's future stays the size it was.)
    #[inline]
    fn active_egress(&self) -> Option<Arc<Egress>> {
        if self.egress_on.load(Ordering::Acquire) { self.egress.load_full() } else { None }
    }

    /// The peer for `origin` with a proxy or the guard configured.
    ///
    /// Without a proxy (or for an upstream `NO_PROXY` exempts), the address about to be
    /// connected to is checked: every call resolves (through the cache) and checks, and a
    /// pooled connection is keyed by that address, so a name that starts resolving to a
    /// private address is refused from then on. Through a proxy, the proxy resolves the name
    /// and connects; the guard checks what aigw can see: an IP literal, or the name as aigw's
    /// resolver answers it (refused when that is private). A name aigw cannot resolve is left
    /// to the proxy, whose own rules then decide.
    async fn egress_peer(
        &self,
        egress: &Egress,
        origin: &Origin,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<HttpPeer, GatewayError> {
        match egress.proxy_for(origin.tls, &origin.host, origin.port) {
            None => {
                let addr = self
                    .lookup(&origin.host, origin.port, deadline, timeout, origin)
                    .await?
                    .map_err(|e| unresolved(origin, &e))?;
                egress::check(egress, origin, addr.ip())?;
                Ok(peer(origin, addr))
            }
            Some(proxy) => {
                if egress.deny_private {
                    let seen = match origin.host.parse::<std::net::IpAddr>() {
                        Ok(ip) => Some(ip),
                        Err(_) => self
                            .lookup(&origin.host, origin.port, deadline, timeout, origin)
                            .await?
                            .ok()
                            .map(|a| a.ip()),
                    };
                    if let Some(ip) = seen {
                        egress::check(egress, origin, ip)?;
                    }
                }
                let proxy_addr =
                    self.lookup(&proxy.host, proxy.port, deadline, timeout, origin).await?.map_err(|e| {
                        GatewayError::bad_gateway(format!(
                            "upstream {}: proxy {}: {e}",
                            origin.authority, proxy.display
                        ))
                    })?;
                Ok(egress::tunnel_peer(origin, proxy, proxy_addr))
            }
        }
    }

    /// `host:port` from the DNS cache; the outer error when `deadline` passes first (a 504 for
    /// `origin`), the inner one when the name does not resolve.
    async fn lookup(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
        timeout: Duration,
        origin: &Origin,
    ) -> Result<Result<std::net::SocketAddr, String>, GatewayError> {
        within!(deadline, self.resolver.resolve(host, port)).map_err(|_| timed_out(&origin.authority, timeout))
    }

    /// Return a fully read response's connection to the pool.
    pub async fn release(&self, response: Box<UpstreamResponse>) {
        let UpstreamResponse { mut session, peer, .. } = *response;
        if session.is_body_done() {
            session.respect_keepalive();
            if let Some(stream) = session.reuse().await {
                self.connector.release_stream(stream, peer.reuse_hash(), Some(POOL_IDLE_TIMEOUT));
            }
        } else {
            session.shutdown().await;
        }
    }
}

/// The peer of `origin` at `addr`: TLS with SNI = the host, aigw's connect and idle timeouts,
/// connections pooled per worker thread (a socket is registered with the reactor of the runtime
/// that opened it, and using it from another thread costs a cross-thread wakeup on every read).
pub fn peer(origin: &Origin, addr: std::net::SocketAddr) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, origin.tls, origin.host.clone());
    peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
    peer.options.total_connection_timeout = Some(CONNECT_TIMEOUT);
    peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);
    peer.group_key = worker_key();
    peer
}

fn unresolved(origin: &Origin, e: &str) -> GatewayError {
    GatewayError::bad_gateway(format!("upstream {}: {e}", origin.authority))
}

fn timed_out(authority: &str, timeout: Duration) -> GatewayError {
    GatewayError::timeout(format!("upstream {authority} did not answer within {} s", timeout.as_secs_f64()))
}

fn failed(req: &UpstreamRequest, e: &PError, timeout: Duration) -> GatewayError {
    transport_error(&req.origin.authority, e, timeout)
}

/// A key for the current worker thread.
fn worker_key() -> u64 {
    thread_local! {
        static KEY: u64 = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::thread::current().id().hash(&mut h);
            h.finish()
        };
    }
    KEY.with(|k| *k)
}

fn transport_error(authority: &str, e: &PError, route_timeout: Duration) -> GatewayError {
    match e.etype {
        // A failure at the forward proxy: the tunnel's own words, which name the proxy.
        ErrorType::ConnectProxyFailure => GatewayError::bad_gateway(format!(
            "upstream {authority}: {}",
            e.context.as_ref().map_or("the forward proxy failed", |c| c.as_str())
        )),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => GatewayError::timeout(
            format!("upstream {authority} did not answer within {} s", route_timeout.as_secs_f64()),
        ),
        _ => GatewayError::bad_gateway(format!("upstream {authority}: {}", describe(e))),
    }
}

/// A short description of a Pingora error without its context chain (which may carry peer
/// details we do not want in client-facing messages).
fn describe(e: &PError) -> String {
    let what = match e.etype {
        ErrorType::ConnectRefused => "connection refused",
        ErrorType::ConnectNoRoute => "no route to host",
        ErrorType::TLSHandshakeFailure | ErrorType::TLSHandshakeTimedout => "TLS handshake failed",
        ErrorType::InvalidCert | ErrorType::HandshakeError => "TLS certificate not accepted",
        ErrorType::ConnectionClosed => "connection closed before a complete answer",
        ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectError => "connection reset or failed",
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => "invalid HTTP answer",
        _ => return e.etype.as_str().to_owned(),
    };
    what.to_owned()
}

/// Bodies up to this size are sent in the same write as the request head.
const MERGED_BODY: usize = 64 * 1024;

/// Where a round trip failed: writing the request (the server has no whole request) or after.
enum Failed {
    Write(Box<PError>),
    Read(Box<PError>),
}

/// Write the request, then read the answer's head.
async fn round_trip(
    mut stream: Stream,
    peer: &HttpPeer,
    wire: &[u8],
    rest: &[u8],
) -> Result<(HttpSession, u16), Failed> {
    write_request(&mut stream, wire, rest).await.map_err(Failed::Write)?;
    read_head(stream, peer).await.map_err(Failed::Read)
}

/// Write the request: `wire`, then `rest` when the body did not fit in it.
async fn write_request(stream: &mut Stream, wire: &[u8], rest: &[u8]) -> pingora::Result<()> {
    use pingora::OrErr;
    stream.write_all(wire).await.or_err(ErrorType::WriteError, "while writing the request")?;
    if !rest.is_empty() {
        stream.write_all(rest).await.or_err(ErrorType::WriteError, "while writing the request body")?;
    }
    stream.flush().await.or_err(ErrorType::WriteError, "while flushing the request")
}

/// Read the answer's head, skipping informational (1xx) answers.
async fn read_head(stream: Stream, peer: &HttpPeer) -> pingora::Result<(HttpSession, u16)> {
    let mut session = HttpSession::new_with_options(stream, peer);
    loop {
        session.read_response().await?;
        let status = session.resp_header().map(|h| h.status.as_u16()).unwrap_or(0);
        if status >= 200 || status == 0 {
            return Ok((session, status));
        }
    }
}

/// An upstream answer whose header has arrived; read the body from it.
pub struct UpstreamResponse {
    session: HttpSession,
    peer: HttpPeer,
    deadline: Instant,
    route_timeout: Duration,
    authority: String,
    decoder: Option<flate2::write::GzDecoder<Vec<u8>>>,
    encoding_checked: bool,
    /// HTTP status.
    pub status: u16,
}

impl UpstreamResponse {
    /// A response header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.session.resp_header().and_then(|h| h.headers.get(name)).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type` without parameters, lower-cased; empty when absent.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Every response header, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&http::HeaderName, &http::HeaderValue)> {
        self.session.resp_header().into_iter().flat_map(|h| h.headers.iter())
    }

    /// The full `Content-Type` header, for messages.
    pub fn raw_content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// When this call must be finished by.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The next piece of the body, `None` at the end. Gzip-encoded bodies (sent although we ask
    /// for `identity`) are decoded transparently.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        if !self.encoding_checked {
            self.encoding_checked = true;
            match self.header("content-encoding").map(str::to_ascii_lowercase) {
                None => {}
                Some(enc) if enc == "identity" || enc.is_empty() => {}
                Some(enc) if enc == "gzip" || enc == "x-gzip" => {
                    self.decoder = Some(flate2::write::GzDecoder::new(Vec::new()));
                }
                Some(enc) => {
                    return Err(GatewayError::bad_gateway(format!(
                        "upstream {} answered with unsupported content-encoding '{enc}'",
                        self.authority
                    )));
                }
            }
        }
        loop {
            let next = within!(self.deadline, self.session.read_body_bytes())
                .map_err(|_| {
                    GatewayError::timeout(format!(
                        "upstream {} did not finish within {} s",
                        self.authority,
                        self.route_timeout.as_secs_f64()
                    ))
                })?
                .map_err(|e| transport_error(&self.authority, &e, self.route_timeout))?;
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(next);
            };
            use std::io::Write;
            match next {
                Some(data) => {
                    decoder.write_all(&data).map_err(|e| Self::bad_encoding(&self.authority, &e))?;
                    let out = std::mem::take(decoder.get_mut());
                    if !out.is_empty() {
                        return Ok(Some(Bytes::from(out)));
                    }
                }
                None => {
                    decoder.try_finish().map_err(|e| Self::bad_encoding(&self.authority, &e))?;
                    let out = std::mem::take(decoder.get_mut());
                    self.decoder = None;
                    return Ok((!out.is_empty()).then(|| Bytes::from(out)));
                }
            }
        }
    }

    fn bad_encoding(authority: &str, e: &std::io::Error) -> GatewayError {
        GatewayError::bad_gateway(format!("upstream {authority} sent a malformed gzip body: {e}"))
    }

    /// The whole body, failing with 502 past `cap` bytes.
    pub async fn body(&mut self, cap: usize) -> Result<Bytes, GatewayError> {
        let mut first: Option<Bytes> = None;
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            let len = first.as_ref().map_or(0, Bytes::len) + buf.len() + chunk.len();
            if len > cap {
                return Err(GatewayError::bad_gateway(format!(
                    "upstream {} answered with more than {cap} bytes (aigw.max_response_body)",
                    self.authority
                ))
                .with_code("response_too_large")
                .rejected(crate::error::Reject::ResponseTooLarge));
            }
            match (&first, buf.is_empty()) {
                (None, true) => first = Some(chunk),
                (Some(f), true) => {
                    buf.reserve(f.len() + chunk.len());
                    buf.extend_from_slice(f);
                    buf.extend_from_slice(&chunk);
                    first = None;
                }
                _ => buf.extend_from_slice(&chunk),
            }
        }
        Ok(match first {
            Some(f) => f,
            None => Bytes::from(buf),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BaseUrl;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    /// Upstreams whose resolver answers `answers` in turn (expiring at once: every call looks
    /// the name up again, as one whose TTL ran out).
    fn with_answers(answers: Vec<SocketAddr>) -> Upstreams {
        let answers = Arc::new(Mutex::new(std::collections::VecDeque::from(answers)));
        let lookup: super::super::dns::Lookup = Box::new(move |_, _| {
            let next = answers.lock().unwrap().pop_front();
            Box::pin(async move { next.map(|a| vec![a]).ok_or_else(|| std::io::Error::other("no more answers")) })
        });
        Upstreams {
            connector: Arc::new(TransportConnector::new(None)),
            resolver: Arc::new(Resolver::with_lookup(Duration::ZERO, lookup)),
            route_timeout: DEFAULT_ROUTE_TIMEOUT,
            egress: Arc::new(ArcSwapOption::empty()),
            egress_on: Arc::new(AtomicBool::new(false)),
        }
    }

    fn guard(allow: &[&str]) -> Egress {
        let map = serde_json::json!({"deny_private": true, "allow": allow});
        Egress::parse(map.as_object().unwrap()).unwrap()
    }

    /// DNS rebinding: a name that answered a public address, then a private one, is refused on
    /// the call that would connect to the private one; the check is made on every call.
    #[tokio::test]
    async fn a_name_rebinding_to_a_private_address_is_refused_on_the_next_call() {
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let up = with_answers(vec![
            public,
            "127.0.0.1:443".parse().unwrap(),
            "[::ffff:169.254.169.254]:443".parse().unwrap(),
            "10.20.0.5:443".parse().unwrap(),
        ]);
        up.set_egress(&guard(&["10.20.0.0/16"]));
        let origin = BaseUrl::parse("https://api.rebind.example/v1").unwrap().origin;
        let first = up.peer_for(&origin, Duration::from_secs(5)).await.unwrap();
        assert_eq!(first.address().as_inet(), Some(&public));
        for class in ["loopback", "link-local"] {
            let e = up.peer_for(&origin, Duration::from_secs(5)).await.unwrap_err();
            assert_eq!(e.status, 502);
            let message = e.message();
            assert!(message.contains("api.rebind.example resolves to") && message.contains(class), "{message}");
        }
        // An allowed network passes.
        assert!(up.peer_for(&origin, Duration::from_secs(5)).await.is_ok());
        // Off: nothing is checked.
        let up = with_answers(vec!["127.0.0.1:443".parse().unwrap()]);
        assert!(up.peer_for(&origin, Duration::from_secs(5)).await.is_ok());
    }
}
