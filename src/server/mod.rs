//! The Pingora side: the `ProxyHttp` implementation that answers every request.
//!
//! Pingora owns the listeners, HTTP/1.1 and HTTP/2, keep-alive, TLS, graceful upgrade and the
//! `logging` hook. Each request is handled in `request_filter`: local routes are answered
//! there, and invocations read the body, resolve the endpoint, translate the request and drive
//! the upstream exchange over Pingora's pooled connector (see `docs/architecture.md` for why
//! the upstream call is not left to the proxy pipeline).

mod body;
mod invoke;
mod lifecycle;
mod respond;

pub use lifecycle::Lifecycle;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::api::error::{ErrorKind, Family, GatewayError};
use crate::api::routes::{Match, Route, match_path};
use crate::api::{Reply, rest};
use crate::config::GatewayConfig;
use crate::limits::{Limits, Quota};
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
    /// Quota counters and concurrency caps (kept across reloads).
    pub limits: Limits,
    /// Configuration generation: 1 at start, +1 per accepted reload.
    pub generation: AtomicU64,
    /// Accepted reloads.
    pub reloads_ok: AtomicU64,
    /// Rejected reloads.
    pub reloads_failed: AtomicU64,
    /// Set when the process is handing over or stopping: answers close their connections.
    pub draining: AtomicBool,
}

impl State {
    /// State serving `config`.
    pub fn new(config: GatewayConfig, upstreams: Upstreams) -> Arc<State> {
        Arc::new(State {
            config: ArcSwap::from_pointee(config),
            upstreams,
            inflight: AtomicUsize::new(0),
            limits: Limits::default(),
            generation: AtomicU64::new(1),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        })
    }
}

/// Counts a request as in flight until dropped.
pub struct InflightGuard(Arc<State>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What is known about one request, for its answer and its log line.
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
    /// Status sent.
    pub status: u16,
    /// Error category, if it failed.
    pub error: Option<ErrorKind>,
    /// When the request started.
    pub started: Option<Instant>,
    /// Request body bytes.
    pub bytes_in: usize,
    /// Response body bytes.
    pub bytes_out: usize,
    /// Token usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Whether the answer was streamed.
    pub streamed: bool,
    /// The quota of the endpoint that served it, for the `x-ratelimit-*` headers.
    pub quota: Option<Quota>,
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

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.state.inflight.fetch_add(1, Ordering::AcqRel);
        ctx.inflight = Some(InflightGuard(self.state.clone()));
        ctx.started = Some(Instant::now());
        ctx.request_id = request_id(session);
        if self.state.draining.load(Ordering::Acquire) {
            // Handing over or stopping: let the client reconnect (to the new process) next time.
            session.set_keepalive(None);
        }
        let config = self.state.config.load_full();
        if let Err(e) = handle(session, &self.state, &config, ctx).await {
            // The client went away mid-answer; nothing more can be sent.
            log::debug!("request {}: writing the answer failed: {e}", ctx.request_id);
            session.set_keepalive(None);
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
        let took = ctx.started.map(|s| s.elapsed().as_secs_f64() * 1000.0).unwrap_or(0.0);
        log::info!(
            "{} {} {} {} {:.2}ms id={} target={} endpoint={} provider={} in={} out={}{}",
            session.client_addr().map(|a| a.to_string()).unwrap_or_default(),
            session.req_header().method,
            session.req_header().uri.path(),
            ctx.status,
            took,
            ctx.request_id,
            ctx.target.as_deref().unwrap_or("-"),
            ctx.endpoint.as_deref().unwrap_or("-"),
            ctx.provider.unwrap_or("-"),
            ctx.bytes_in,
            ctx.bytes_out,
            ctx.error.map(|k| format!(" error={}", k.as_str())).unwrap_or_default(),
        );
        ctx.inflight = None;
    }
}

/// Answer one request. `Err` only when writing to the client failed.
async fn handle(
    session: &mut Session,
    state: &State,
    config: &GatewayConfig,
    ctx: &mut RequestCtx,
) -> respond::WriteResult {
    let method = session.req_header().method.as_str().to_owned();
    let path = session.req_header().uri.path().to_owned();
    let family = if path.starts_with("/v1/") { Family::OpenAi } else { Family::Native };
    ctx.family = Some(family);
    let route = match match_path(&path) {
        Match::Found(r) => r,
        Match::Redirect(to) => {
            let location = match session.req_header().uri.query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            return respond::reply(session, Reply::redirect(location), ctx).await;
        }
        Match::NotFound => return fail(session, ctx, family, GatewayError::not_found()).await,
    };
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
        Route::ListEndpoints => rest::list_endpoints(config, query.as_deref()),
        Route::GetEndpoint(name) => rest::get_endpoint(config, name),
        Route::ListLegacyRoutes => rest::list_legacy_routes(config, query.as_deref()),
        Route::GetLegacyRoute(name) => rest::get_legacy_route(config, name),
        Route::GetTrafficRoute(name) => rest::get_traffic_route(config, name),
        Route::GetLimits => Err(rest::limits(false)),
        Route::SetLimits => Err(rest::limits(true)),
        Route::Models => Ok(rest::models(config)),
        Route::Model(id) => rest::model(config, id),
        Route::Invoke(name) => {
            let name = name.to_owned();
            return invoke::run(session, state, config, ctx, invoke::Via::Native(&name)).await;
        }
        Route::OpenAi(endpoint_type) => {
            return invoke::run(session, state, config, ctx, invoke::Via::OpenAi(endpoint_type)).await;
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
