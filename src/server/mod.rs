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
mod invoke;
mod lifecycle;
mod respond;

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

use crate::api::error::{ErrorKind, Family, GatewayError};
use crate::api::routes::{Match, Route, match_path};
use crate::api::{Reply, rest};
use crate::audit::{AuditSink, RateLimitRecord, Record};
use crate::auth;
use crate::config::{ApiKey, GatewayConfig};
use crate::limits::{Limits, Quota};
use crate::metrics::{Metrics, status_label};
use crate::schema::Usage;
use crate::upstream::Upstreams;

/// Everything requests share: the current configuration and long-lived runtime state.
pub struct State {
    /// The configuration snapshot; a reload swaps it, requests keep the one they started with.
    pub config: ArcSwap<GatewayConfig>,
    /// Upstream connections, name resolution and timeouts.
    pub upstreams: Upstreams,
    /// Requests being served right now (graceful shutdown waits for zero).
    pub inflight: AtomicUsize,
    /// Open client connections (`aigw.limits.max_connections`).
    pub connections: AtomicUsize,
    /// Quota counters and concurrency caps (kept across reloads).
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
    /// State serving `config`; an error only if the metrics cannot be built.
    pub fn new(config: GatewayConfig, upstreams: Upstreams) -> prometheus::Result<State> {
        Ok(State {
            config: ArcSwap::from_pointee(config),
            upstreams,
            inflight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            limits: Limits::default(),
            metrics: Metrics::new()?,
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
    /// The quota of the endpoint that served it, for the `x-ratelimit-*` headers.
    pub quota: Option<Quota>,
    /// Whether the quota refused the request.
    pub rate_limited: bool,
    /// The slot held in the endpoint's concurrency cap.
    pub concurrency: Option<pingora_limits::inflight::Guard>,
    /// Name of the gateway API key the client authenticated with.
    pub api_key: Option<String>,
    inflight: Option<InflightGuard>,
}

/// The gateway service.
pub struct Gateway {
    state: Arc<State>,
}

impl Gateway {
    /// A gateway serving from `state`.
    pub fn new(state: Arc<State>) -> Self {
        Gateway { state }
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

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Main,
    HealthOnly,
    MetricsOnly,
}

fn listener(state: &State, session: &Session) -> Listener {
    let local = session.server_addr().and_then(|a| a.as_inet()).copied();
    match local {
        Some(a) if state.health_addr.is_some_and(|h| h.port() == a.port()) => Listener::HealthOnly,
        Some(a) if state.metrics_addr.is_some_and(|m| m.port() == a.port()) => Listener::MetricsOnly,
        _ => Listener::Main,
    }
}

fn header_bytes(session: &Session) -> usize {
    let h = session.req_header();
    let line = h.method.as_str().len() + h.uri.path().len() + h.uri.query().map_or(0, str::len) + 12;
    line + h.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>()
}

#[async_trait]
impl ProxyHttp for Gateway {
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
        let config = self.state.config.load_full();
        let handled = AssertUnwindSafe(handle(session, &self.state, &config, ctx, inflight)).catch_unwind().await;
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
                if session.response_written().is_none() {
                    let family = ctx.family.unwrap_or(Family::Native);
                    let err = GatewayError::internal("Internal error while handling the request");
                    let _ = respond::reply(session, Reply::error(&err, family), ctx).await;
                }
            }
        }
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        // Every request is answered in `request_filter`; the proxy pipeline is never entered.
        Error::e_explain(ErrorType::InternalError, "aigw answers every request in request_filter")
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        // Reached only for failures outside our handler (e.g. a malformed request line).
        let family = ctx.family.unwrap_or(Family::Native);
        let code = match e.etype {
            ErrorType::HTTPStatus(c) if c >= 400 => c,
            _ => 500,
        };
        if session.response_written().is_none() {
            let err = GatewayError::new(code, ErrorKind::Internal, "The request could not be processed");
            let _ = respond::reply(session, Reply::error(&err, family), ctx).await;
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let took = ctx.started.map(|s| s.elapsed()).unwrap_or_default();
        let family = ctx.family.unwrap_or(Family::Native);
        let family_label = match family {
            Family::Native => "mlflow",
            Family::OpenAi => "openai",
        };
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
        let (tokens_in, tokens_out) =
            ctx.usage.as_ref().map_or((None, None), |u| (u.prompt_tokens, u.completion_tokens));
        if let Some(n) = tokens_in {
            m.tokens.with_label_values(&[endpoint, "prompt"]).inc_by(n);
        }
        if let Some(n) = tokens_out {
            m.tokens.with_label_values(&[endpoint, "completion"]).inc_by(n);
        }
        if ctx.rate_limited {
            m.rate_limited.with_label_values(&[endpoint]).inc();
        }

        if let Some(sink) = &self.state.audit
            && !matches!(self.state.config.load().settings.audit, crate::config::AuditSettings::Off)
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
                tokens_in,
                tokens_out,
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
        conn::request_finished();
    }
}

/// Answer one request. `Err` only when writing to the client failed.
async fn handle(
    session: &mut Session,
    state: &State,
    config: &GatewayConfig,
    ctx: &mut RequestCtx,
    inflight: usize,
) -> respond::WriteResult {
    let method = session.req_header().method.as_str().to_owned();
    let path = session.req_header().uri.path().to_owned();
    let family = if path.starts_with("/v1/") { Family::OpenAi } else { Family::Native };
    ctx.family = Some(family);
    #[cfg(debug_assertions)]
    if session.req_header().headers.contains_key("x-aigw-test-panic") {
        // Test builds only: proves panics are contained and their payload is not logged. The
        // panic is the point, and release builds do not have it.
        #[allow(clippy::panic)]
        fn test_panic() -> ! {
            panic!("test panic carrying sk-test-panic-secret-value")
        }
        test_panic();
    }

    // Protective limits first: they cost nothing to check.
    let limits = &config.settings.limits;
    if let Some(max) = limits.max_inflight
        && inflight > max
    {
        state.metrics.rejected.with_label_values(&["too_many_inflight"]).inc();
        let e = GatewayError::new(503, ErrorKind::Unavailable, "The gateway is at capacity; retry shortly")
            .with_header("retry-after", "1");
        return fail(session, ctx, family, e).await;
    }
    if header_bytes(session) > limits.max_header_bytes {
        state.metrics.rejected.with_label_values(&["header_too_large"]).inc();
        session.set_keepalive(None);
        let e = GatewayError::new(
            431,
            ErrorKind::TooLarge,
            format!("Request header fields too large (limit {} bytes)", limits.max_header_bytes),
        );
        return fail(session, ctx, family, e).await;
    }

    let role = listener(state, session);
    let route = match match_path(&path) {
        Match::Found(r) => r,
        Match::Redirect(_) | Match::NotFound if role != Listener::Main => {
            return fail(session, ctx, family, GatewayError::not_found()).await;
        }
        Match::Redirect(to) => {
            let location = match session.req_header().uri.query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            return respond::reply(session, Reply::redirect(location), ctx).await;
        }
        Match::NotFound => return fail(session, ctx, family, GatewayError::not_found()).await,
    };
    let open = match (role, route) {
        (Listener::HealthOnly, Route::Health) | (Listener::MetricsOnly, Route::Metrics) => true,
        (Listener::HealthOnly | Listener::MetricsOnly, _) => {
            return fail(session, ctx, family, GatewayError::not_found()).await;
        }
        (Listener::Main, Route::Health) => true,
        (Listener::Main, _) => false,
    };
    // Authentication, before anything is revealed about the configuration.
    let key: Option<&ApiKey> = if open {
        None
    } else {
        match auth::authenticate(&config.settings.auth, &session.req_header().headers) {
            Ok(k) => k,
            Err(rejection) => {
                state.metrics.auth_rejected.with_label_values(&[rejection.as_str()]).inc();
                return fail(session, ctx, family, rejection.error()).await;
            }
        }
    };
    ctx.api_key = key.map(|k| k.name.clone());

    // An invocation of an unknown name is a plain 404 whatever the method (MLflow registers
    // those routes per configured name).
    if let Route::Invoke(name) = route
        && config.target(name).is_none()
    {
        return fail(session, ctx, family, GatewayError::not_found()).await;
    }
    if !route.accepts(&method) {
        return fail(session, ctx, family, GatewayError::method_not_allowed(route.allow())).await;
    }
    let query = session.req_header().uri.query().map(str::to_owned);
    let local = match route {
        Route::Index => Ok(Reply::redirect("/docs".into())),
        Route::Docs => Ok(rest::docs_page(false)),
        Route::Redoc => Ok(rest::docs_page(true)),
        Route::OpenApi => Ok(rest::openapi(config)),
        Route::Favicon => Err(rest::favicon()),
        Route::Health => Ok(rest::health()),
        // Metrics name every endpoint: a key restricted to some of them may not read them.
        Route::Metrics if key.is_some_and(|k| !k.unrestricted()) => {
            state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
            Err(crate::auth::forbidden(key.map_or("", |k| k.name.as_str()), "/metrics"))
        }
        Route::Metrics if config.settings.metrics.enabled => Ok(Reply {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            body: bytes::Bytes::from(state.metrics.render()),
            headers: Vec::new(),
        }),
        Route::Metrics => Err(GatewayError::not_found()),
        Route::ListEndpoints => rest::list_endpoints(config, query.as_deref(), key),
        Route::GetEndpoint(name) => rest::get_endpoint(config, name, key),
        Route::ListLegacyRoutes => rest::list_legacy_routes(config, query.as_deref(), key),
        Route::GetLegacyRoute(name) => rest::get_legacy_route(config, name, key),
        Route::GetTrafficRoute(name) => rest::get_traffic_route(config, name, key),
        Route::GetLimits => Err(rest::limits(false)),
        Route::SetLimits => Err(rest::limits(true)),
        Route::Models => Ok(rest::models(config, key)),
        Route::Model(id) => rest::model(config, id, key),
        Route::Invoke(name) => {
            let name = name.to_owned();
            return invoke::run(session, state, config, ctx, key, invoke::Via::Native(&name)).await;
        }
        Route::OpenAi(endpoint_type) => {
            return invoke::run(session, state, config, ctx, key, invoke::Via::OpenAi(endpoint_type)).await;
        }
    };
    match local {
        Ok(reply) => respond::reply(session, reply, ctx).await,
        Err(e) => fail(session, ctx, family, e).await,
    }
}

/// Answer with an error in the family's shape.
async fn fail(session: &mut Session, ctx: &mut RequestCtx, family: Family, err: GatewayError) -> respond::WriteResult {
    ctx.error = Some(err.kind);
    if err.status_for(family) >= 500 {
        log::warn!("request {}: {err}", ctx.request_id);
    }
    respond::reply(session, Reply::error(&err, family), ctx).await
}
