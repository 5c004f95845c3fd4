//! The Pingora side: the `ProxyHttp` implementation that answers every request.
//!
//! Pingora owns the listeners, HTTP/1.1 and HTTP/2, keep-alive, TLS, graceful upgrade and the
//! `logging` hook. Each request is handled in `request_filter`: protective limits and
//! authentication first, then local routes are answered there, and invocations read the body,
//! resolve the endpoint, translate the request and drive the upstream exchange over Pingora's
//! pooled connector (see `docs/architecture.md` for why the upstream call is not left to the
//! proxy pipeline). `logging` writes the audit line and updates the metrics.

mod body;
pub mod conn;
mod dispatch;
mod downstream;
mod invoke;
mod lifecycle;
mod proxy;
mod write;

pub use lifecycle::Lifecycle;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use futures::FutureExt;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::audit::{AuditSink, RateLimitRecord, Record};
use crate::error::{ErrorKind, Family, GatewayError};
use crate::limits::{Limits, Quota, Reservation, Spent};
use crate::metrics::{Metrics, status_label};
use crate::schema::Usage;
use crate::snapshot::Snapshot;
use crate::upstream::Upstreams;
use write::Response;

/// Everything requests share: the current configuration and long-lived runtime state.
pub struct State {
    /// The configuration snapshot; a reload swaps it, requests keep the one they started with.
    pub config: ArcSwap<Snapshot>,
    /// Upstream connections, name resolution and timeouts.
    pub upstreams: Upstreams,
    /// Requests being served right now (graceful shutdown waits for zero).
    pub inflight: AtomicUsize,
    /// Open client connections (`aigw.limits.max_connections`).
    pub connections: AtomicUsize,
    /// Quota counters, budgets and concurrency caps (kept across reloads; in Redis with
    /// `aigw.shared_state`).
    pub limits: Limits,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Where audit lines go (the writer service drains it).
    pub audit: Option<AuditSink>,
    /// Set when the process is handing over or stopping: answers close their connections.
    pub draining: AtomicBool,
    /// Listening on a non-loopback address (a reload must keep authentication then).
    pub public: bool,
    /// The plain listener that serves `/health` only.
    pub health_addr: Option<SocketAddr>,
    /// The separate listener that serves `/metrics` only.
    pub metrics_addr: Option<SocketAddr>,
}

impl State {
    /// State serving `config`; an error if the metrics cannot be built or the shared state's
    /// URL cannot be used (the message names neither it nor its credentials).
    pub fn new(config: Snapshot, upstreams: Upstreams) -> Result<State, String> {
        let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
        let limits = Limits::new(config.config.settings.shared_state.as_ref(), metrics.shared_state_errors.clone())?;
        upstreams.set_egress(&config.config.settings.egress);
        Ok(State {
            config: ArcSwap::from_pointee(config),
            upstreams,
            inflight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            limits,
            metrics,
            audit: None,
            draining: AtomicBool::new(false),
            public: false,
            health_addr: None,
            metrics_addr: None,
        })
    }
}

/// Counts a request as in flight until dropped.
pub struct InflightGuard(Arc<State>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.inflight.dec();
    }
}

/// What is known about one request, for its answer, its audit line and its metrics.
#[derive(Default)]
pub struct RequestCtx {
    /// `x-request-id`: the client's (if sane) or a generated one.
    pub request_id: String,
    /// Route family, once known.
    pub family: Option<Family>,
    /// Endpoint or route name, once known.
    pub target: Option<String>,
    /// The endpoint that served it (differs from `target` for traffic routes).
    pub endpoint: Option<String>,
    /// Provider of that endpoint.
    pub provider: Option<&'static str>,
    /// Model of that endpoint.
    pub model: Option<String>,
    /// Status sent.
    pub status: u16,
    /// Error category, if it failed.
    pub error: Option<ErrorKind>,
    /// When the request started.
    pub started: Option<Instant>,
    /// Wall-clock start, for the audit line.
    pub started_at: Option<SystemTime>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes.
    pub bytes_out: usize,
    /// Token usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Whether the answer was streamed.
    pub streamed: bool,
    /// Upstream time to its answer's header.
    pub upstream_time: Option<Duration>,
    /// Time to the first byte of a streamed answer.
    pub first_byte: Option<Duration>,
    /// Time spent waiting on the upstream for what was answered: to its answer's head for a
    /// stream, to its whole body for a whole answer (for the timing headers).
    pub upstream_wait: Option<Duration>,
    /// The request is an invocation: its answer carries the timing headers.
    pub invocation: bool,
    /// The raw proxy route's planned upstream call (Pingora's proxy pipeline carries it).
    pub proxy: Option<Box<proxy::ProxyPlan>>,
    /// Reads the token usage of a proxied answer on its way through.
    pub usage_tap: Option<proxy::UsageTap>,
    /// The quota of the endpoint that served it, for the `x-ratelimit-*` headers.
    pub quota: Option<Quota>,
    /// Whether the quota refused the request.
    pub rate_limited: bool,
    /// The slot held in the endpoint's concurrency cap.
    pub concurrency: Option<pingora_limits::inflight::Guard>,
    /// Tokens and dollars reserved at admission, settled by `logging` with the real usage.
    pub reservation: Option<Reservation>,
    /// The serving endpoint's prices (`model.pricing`), for the ledger.
    pub pricing: Option<crate::config::Pricing>,
    /// Name of the gateway API key the client authenticated with.
    pub api_key: Option<String>,
    /// The configuration snapshot the request started with (its audit line follows it too).
    pub snapshot: Option<Arc<Snapshot>>,
    /// The `Access-Control-Allow-Origin` of the answer, when `aigw.cors` lets the request's
    /// `Origin` read it.
    pub cors_origin: Option<http::HeaderValue>,
    inflight: Option<InflightGuard>,
}

/// aigw's Pingora application: the [`ProxyHttp`] implementation that answers every request.
pub struct GatewayProxy {
    state: Arc<State>,
}

impl GatewayProxy {
    /// The application serving from `state`.
    pub fn new(state: Arc<State>) -> Self {
        GatewayProxy { state }
    }
}

fn request_id(session: &Session) -> String {
    let given = session.req_header().headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    match given {
        Some(v) => v.to_owned(),
        None => format!("{:032x}", rand::random::<u128>()),
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        conn::request_started();
        let inflight = self.state.inflight.fetch_add(1, Ordering::AcqRel) + 1;
        self.state.metrics.inflight.inc();
        ctx.inflight = Some(InflightGuard(self.state.clone()));
        ctx.started = Some(Instant::now());
        ctx.started_at = Some(SystemTime::now());
        ctx.request_id = request_id(session);
        if self.state.draining.load(Ordering::Acquire) {
            // Handing over or stopping: let the client reconnect (to the new process) next time.
            session.set_keepalive(None);
        }
        let snapshot = self.state.config.load_full();
        ctx.snapshot = Some(snapshot.clone());
        let handled =
            AssertUnwindSafe(dispatch::handle(session, &self.state, &snapshot, ctx, inflight)).catch_unwind().await;
        match handled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // The client went away mid-answer; nothing more can be sent.
                log::debug!("request {}: writing the answer failed: {}", ctx.request_id, e.etype.as_str());
                session.set_keepalive(None);
            }
            Err(_) => {
                // The panic hook logged where; the payload is not logged (it could hold data).
                log::error!("request {}: internal error (panic) while handling the request", ctx.request_id);
                session.set_keepalive(None);
                ctx.error = Some(ErrorKind::Internal);
                ctx.proxy = None;
                if session.response_written().is_none() {
                    let family = ctx.family.unwrap_or(Family::Native);
                    let err = GatewayError::internal("Internal error while handling the request");
                    let _ = write::respond(session, &self.state, &snapshot, ctx, family, Response::Error(err)).await;
                }
            }
        }
        // `false` only for the raw proxy route: Pingora's pipeline carries it on.
        Ok(ctx.proxy.is_none())
    }

    /// Only the raw proxy route reaches Pingora's pipeline (`server::proxy`).
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        match &ctx.proxy {
            Some(plan) => Ok(Box::new(proxy::peer(plan))),
            None => Error::e_explain(ErrorType::InternalError, "no upstream planned for this request"),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match &ctx.proxy {
            Some(plan) => proxy::upstream_request(plan, &ctx.request_id, upstream_request),
            None => Ok(()),
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.proxy.is_none() {
            return Ok(());
        }
        ctx.status = upstream_response.status.as_u16();
        ctx.upstream_time = ctx.started.map(|s| s.elapsed());
        ctx.upstream_wait = ctx.upstream_time;
        let content_type = upstream_response.headers.get(http::header::CONTENT_TYPE);
        ctx.streamed = content_type.is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        ctx.usage_tap =
            Some(proxy::UsageTap::for_content_type(content_type.and_then(|v| v.to_str().ok()).unwrap_or("")));
        // The gateway's own CORS rules, never the upstream's (docs/security.md, "CORS").
        let foreign = |h: &pingora::http::ResponseHeader| {
            h.headers.keys().find(|k| k.as_str().starts_with("access-control-")).cloned()
        };
        while let Some(name) = foreign(upstream_response) {
            upstream_response.remove_header(&name);
        }
        let ours = write::base_header(ctx.status, 0, ctx)?;
        for (name, value) in ours.headers.iter() {
            if name == http::header::VARY {
                upstream_response.append_header(name.clone(), value.clone())?;
            } else {
                upstream_response.insert_header(name.clone(), value.clone())?;
            }
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if ctx.proxy.is_some() {
            proxy::tap_body(ctx, body, end_of_stream);
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        // Failures outside our handler (e.g. a malformed request line), and the raw proxy
        // route's upstream failures.
        let family = ctx.family.unwrap_or(Family::Native);
        let (code, kind, message) = match e.etype {
            ErrorType::HTTPStatus(c) if c >= 400 => (c, ErrorKind::Internal, "The request could not be processed"),
            _ if ctx.proxy.is_none() => (500, ErrorKind::Internal, "The request could not be processed"),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                (504, ErrorKind::Timeout, "The upstream did not answer in time")
            }
            _ if e.esource == pingora::ErrorSource::Downstream => {
                (499, ErrorKind::ClientClosed, "the client closed the connection")
            }
            _ => (502, ErrorKind::BadGateway, "The upstream could not be reached or failed mid-answer"),
        };
        ctx.error = Some(kind);
        ctx.status = code;
        if kind == ErrorKind::ClientClosed {
            self.state.metrics.client_closed.inc();
        }
        if session.response_written().is_none() && kind != ErrorKind::ClientClosed {
            // A forward proxy's failure names the proxy (never its credentials).
            let err = match (&e.etype, &e.context) {
                (ErrorType::ConnectProxyFailure, Some(why)) if ctx.proxy.is_some() => {
                    GatewayError::new(code, kind, format!("The upstream could not be reached: {}", why.as_str()))
                }
                _ => GatewayError::new(code, kind, message),
            };
            let snapshot = ctx.snapshot.clone().unwrap_or_else(|| self.state.config.load_full());
            // The connection is not reused after this (below): the answer says so
            // (`Connection: close`), or a client would send its next request on it and see a reset.
            session.set_keepalive(None);
            let _ = write::respond(session, &self.state, &snapshot, ctx, family, Response::Error(err)).await;
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let took = ctx.started.map(|s| s.elapsed()).unwrap_or_default();
        let family = ctx.family.unwrap_or(Family::Native);
        let family_label = family.label();
        let endpoint = ctx.endpoint.as_deref().unwrap_or("");
        let provider = ctx.provider.unwrap_or("");
        let m = &self.state.metrics;
        m.requests.with_label_values(&[family_label, endpoint, provider, status_label(ctx.status)]).inc();
        m.duration.with_label_values(&[family_label, endpoint]).observe(took.as_secs_f64());
        if let Some(t) = ctx.upstream_time {
            m.upstream_duration.with_label_values(&[provider]).observe(t.as_secs_f64());
        }
        if let Some(t) = ctx.first_byte {
            m.first_byte.with_label_values(&[endpoint]).observe(t.as_secs_f64());
        }
        let ledger = Ledger::of(ctx);
        let key = ctx.api_key.as_deref().unwrap_or("");
        for (kind, n) in [
            ("prompt", ledger.tokens_in),
            ("completion", ledger.tokens_out),
            ("cached", ledger.cached),
            ("reasoning", ledger.reasoning),
        ] {
            if let Some(n) = n {
                m.tokens.with_label_values(&[endpoint, key, kind]).inc_by(n);
            }
        }
        if let Some(nanos) = ledger.cost_nanos.filter(|n| *n > 0) {
            m.cost.with_label_values(&[endpoint, key]).inc_by(nanos as f64 / 1e9);
        }
        if let Some(r) = ctx.reservation.take()
            && let Some(spent) = ledger.spent(ctx)
        {
            self.state.limits.settle(r, spent);
        }
        if ctx.rate_limited {
            m.rate_limited.with_label_values(&[endpoint]).inc();
        }

        let audit_on = match &ctx.snapshot {
            Some(s) => !matches!(s.config.settings.audit, crate::config::AuditSettings::Off),
            None => !matches!(self.state.config.load().config.settings.audit, crate::config::AuditSettings::Off),
        };
        if let Some(sink) = &self.state.audit
            && audit_on
        {
            let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
            let record = Record {
                time: crate::audit::rfc3339(ctx.started_at.unwrap_or_else(SystemTime::now)),
                request_id: &ctx.request_id,
                client: session.client_addr().map(|a| a.to_string()),
                key: ctx.api_key.as_deref(),
                family: family_label,
                method: session.req_header().method.as_str(),
                path: session.req_header().uri.path(),
                target: ctx.target.as_deref(),
                endpoint: ctx.endpoint.as_deref(),
                provider: ctx.provider,
                model: ctx.model.as_deref(),
                status: ctx.status,
                error: ctx.error.map(ErrorKind::as_str),
                bytes_in: ctx.bytes_in,
                bytes_out: ctx.bytes_out,
                tokens_in: ledger.tokens_in,
                tokens_out: ledger.tokens_out,
                cached_tokens: ledger.cached,
                reasoning_tokens: ledger.reasoning,
                cost_usd: ledger.cost_nanos.filter(|_| ledger.priced).map(|n| n as f64 / 1e9),
                duration_ms: ms(took),
                upstream_ms: ctx.upstream_time.map(ms),
                first_byte_ms: ctx.first_byte.map(ms),
                stream: ctx.streamed,
                rate_limit: ctx.quota.map(|q| RateLimitRecord {
                    limit: q.limit,
                    remaining: q.remaining,
                    limited: ctx.rate_limited,
                }),
            };
            if !sink.send(&record) {
                m.audit_dropped.inc();
            }
        }
        ctx.inflight = None;
        ctx.snapshot = None;
        conn::request_finished();
    }
}

/// What one request used and cost, for its audit line, the metrics and its reservation.
#[derive(Debug, Default, PartialEq)]
struct Ledger {
    /// Prompt tokens (cache reads and writes included).
    tokens_in: Option<u64>,
    /// Completion tokens (reasoning included).
    tokens_out: Option<u64>,
    /// Prompt tokens read from the cache.
    cached: Option<u64>,
    /// Reasoning tokens.
    reasoning: Option<u64>,
    /// Cost in nano-dollars (zero prices where the endpoint has none); `None` when the usage is
    /// unknown.
    cost_nanos: Option<u64>,
    /// Whether the serving endpoint has a `model.pricing`.
    priced: bool,
}

impl Ledger {
    fn of(ctx: &RequestCtx) -> Ledger {
        let Some(u) = ctx.usage.as_ref().filter(|u| u.is_known()) else { return Ledger::default() };
        let detail = |v: Option<&serde_json::Value>, key: &str| v.and_then(|d| d.get(key)).and_then(|n| n.as_u64());
        let cached = detail(u.prompt_tokens_details.as_ref(), "cached_tokens");
        let reasoning = detail(u.extra.get("completion_tokens_details"), "reasoning_tokens")
            .or_else(|| detail(u.extra.get("output_tokens_details"), "reasoning_tokens"));
        let pricing = ctx.pricing;
        let (prompt, completion) = (u.prompt_tokens.unwrap_or(0), u.completion_tokens.unwrap_or(0));
        Ledger {
            tokens_in: u.prompt_tokens,
            tokens_out: u.completion_tokens,
            cached,
            reasoning,
            cost_nanos: Some(pricing.unwrap_or_default().cost_nanos(prompt, cached.unwrap_or(0), completion)),
            priced: pricing.is_some(),
        }
    }

    /// What to settle a reservation with: the real usage when the provider reported it;
    /// nothing (the reservation stands) when an answer was served or cut short after the
    /// upstream started without a usage report (the upstream may well have billed it); zero
    /// when the request failed before or at the upstream.
    fn spent(&self, ctx: &RequestCtx) -> Option<Spent> {
        if let Some(cost) = self.cost_nanos {
            let tokens = self.tokens_in.unwrap_or(0).saturating_add(self.tokens_out.unwrap_or(0));
            return Some(Spent { tokens, cost_nanos: cost });
        }
        let served = ctx.status < 300 || (ctx.status == 499 && ctx.upstream_time.is_some());
        (!served).then(Spent::default)
    }
}
