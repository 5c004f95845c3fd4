//! One request, from its parsed header to its [`Response`]: protective limits, the listener's
//! role, the operation the path names ([`crate::api::operations`]), authentication, then a local
//! answer ([`crate::api::rest`]) or an invocation ([`super::invoke`]). Whatever the outcome, it
//! is written once, by [`super::write::respond`].

use pingora::proxy::Session;

use super::invoke::{self, Invocation};
use super::proxy;
use super::write::{self, Response, WriteResult};
use super::{RequestCtx, State};
use crate::api::operations::{Match, Operation, match_path};
use crate::api::{Reply, rest};
use crate::auth;
use crate::browser;
use crate::config::ApiKey;
use crate::error::{ErrorKind, Family, GatewayError, Reject};
use crate::snapshot::Snapshot;

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

/// Answer one request. `Err` only when writing to the client failed.
pub async fn handle(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    inflight: usize,
) -> WriteResult {
    let family = Family::of_path(session.req_header().uri.path());
    ctx.family = Some(family);
    if let Some(cors) = &snapshot.config.settings.cors {
        ctx.cors_origin = browser::allowed_origin(cors, &session.req_header().headers);
    }
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
    let response = route(session, state, snapshot, ctx, inflight).await;
    if let Response::Proxy(plan) = response {
        // Not answered here: Pingora's proxy pipeline carries the request on.
        ctx.proxy = Some(plan);
        return Ok(());
    }
    write::respond(session, state, snapshot, ctx, family, response).await
}

/// Decide the answer.
async fn route(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    inflight: usize,
) -> Response {
    let config = &snapshot.config;
    // DNS rebinding: a gateway without keys on loopback serves only requests naming a
    // loopback host (or one of aigw.allowed_hosts); docs/security.md, "Hosts".
    let settings = &config.settings;
    if (!settings.allowed_hosts.is_empty() || (settings.auth.keys.is_empty() && !state.public))
        && let Err(e) = browser::check_host(session.req_header(), &settings.allowed_hosts)
    {
        ctx.cors_origin = None;
        return Response::Refusal(e);
    }
    // Protective limits first: they cost nothing to check.
    let limits = &config.settings.limits;
    if let Some(max) = limits.max_inflight
        && inflight > max
    {
        let e = GatewayError::new(503, ErrorKind::Unavailable, "The gateway is at capacity; retry shortly")
            .with_header("retry-after", "1")
            .rejected(Reject::TooManyInflight);
        return Response::Error(e);
    }
    if header_bytes(session) > limits.max_header_bytes {
        let e = GatewayError::new(
            431,
            ErrorKind::TooLarge,
            format!("Request header fields too large (limit {} bytes)", limits.max_header_bytes),
        )
        .rejected(Reject::HeaderTooLarge);
        return Response::Unread(e);
    }

    let path = session.req_header().uri.path().to_owned();
    let role = listener(state, session);
    let operation = match match_path(&path) {
        Match::Found(op) => op,
        Match::Redirect(_) | Match::NotFound if role != Listener::Main => {
            return Response::Error(GatewayError::not_found());
        }
        Match::Redirect(to) => {
            let location = match session.req_header().uri.query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            return Response::Reply(Reply::redirect(location));
        }
        Match::NotFound => return Response::Error(GatewayError::not_found()),
    };
    // A CORS preflight carries no credentials: answered before authentication, when
    // aigw.cors is set (without it, OPTIONS goes on like any request: 401 without a key where
    // keys are configured, then 405).
    if let Some(cors) = &config.settings.cors
        && role == Listener::Main
        && browser::is_preflight(&session.req_header().method, &session.req_header().headers)
    {
        return match browser::preflight(cors, &session.req_header().headers, operation.allow()) {
            Ok(reply) => Response::Reply(reply),
            Err(e) => {
                // A refused preflight carries no Access-Control-Allow-* header: the browser stops.
                ctx.cors_origin = None;
                Response::Error(e)
            }
        };
    }
    let open = match (role, operation) {
        (Listener::HealthOnly, Operation::Health) | (Listener::MetricsOnly, Operation::Metrics | Operation::Usage) => {
            true
        }
        (Listener::HealthOnly | Listener::MetricsOnly, _) => return Response::Error(GatewayError::not_found()),
        (Listener::Main, Operation::Health) => true,
        (Listener::Main, _) => false,
    };
    // Authentication, before anything is revealed about the configuration.
    let key: Option<&ApiKey> = if open {
        None
    } else {
        let header = session.req_header();
        let mut presented = auth::presented_key(&header.headers);
        if presented.is_none() && matches!(operation, Operation::Gemini { .. }) {
            // Google's SDKs and REST examples may carry the key in the URL (`?key=`).
            presented = rest::query_param(header.uri.query(), "key")
                .map(|k| k.trim().as_bytes().to_vec())
                .filter(|k| !k.is_empty());
        }
        match auth::authenticate_key(&config.settings.auth, presented) {
            Ok(k) => k,
            Err(rejection) => {
                state.metrics.auth_rejected.with_label_values(&[rejection.as_str()]).inc();
                return Response::Error(rejection.error());
            }
        }
    };
    ctx.api_key = key.map(|k| k.name.clone());

    // An invocation of an unknown name is a plain 404 whatever the method (MLflow registers
    // those routes per configured name).
    let native_target = match operation {
        Operation::Invoke(name) => match config.target(name) {
            Some(t) => Some(t),
            None => return Response::Error(GatewayError::not_found()),
        },
        _ => None,
    };
    let method = session.req_header().method.as_str();
    if !operation.accepts(method) {
        return Response::Error(GatewayError::method_not_allowed(operation.allow()));
    }
    let query = session.req_header().uri.query().map(str::to_owned);
    let local = match operation {
        Operation::Index => Ok(Reply::redirect("/docs".into())),
        Operation::Docs => Ok(rest::docs_page(false)),
        Operation::Redoc => Ok(rest::docs_page(true)),
        Operation::OpenApi => Ok(rest::openapi(config)),
        Operation::Favicon => Err(rest::favicon()),
        Operation::Health => Ok(rest::health()),
        // Metrics name every endpoint: a key restricted to some of them may not read them.
        Operation::Metrics if key.is_some_and(|k| !k.unrestricted()) => {
            state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
            Err(crate::auth::forbidden(key.map_or("", |k| k.name.as_str()), "/metrics"))
        }
        Operation::Metrics if config.settings.metrics.enabled => Ok(Reply {
            status: 200,
            content_type: Some("text/plain; version=0.0.4; charset=utf-8"),
            body: bytes::Bytes::from(state.metrics.render()),
            headers: Vec::new(),
        }),
        Operation::Metrics => Err(GatewayError::not_found()),
        // Usage names every endpoint and budget: the same rule as the metrics.
        Operation::Usage if key.is_some_and(|k| !k.unrestricted()) => {
            state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
            Err(crate::auth::forbidden(key.map_or("", |k| k.name.as_str()), "/aigw/usage"))
        }
        Operation::Usage => match state.limits.usage(config).await {
            Ok(report) => Ok(Reply::json(200, &report)),
            Err(_) => Err(GatewayError::new(
                503,
                ErrorKind::Unavailable,
                "Usage cannot be read: the shared state is unavailable; retry shortly",
            )
            .with_header("retry-after", "1")),
        },
        Operation::ListEndpoints => rest::list_endpoints(config, query.as_deref(), key),
        Operation::GetEndpoint(name) => rest::get_endpoint(config, name, key),
        Operation::ListLegacyRoutes => rest::list_legacy_routes(config, query.as_deref(), key),
        Operation::GetLegacyRoute(name) => rest::get_legacy_route(config, name, key),
        Operation::GetTrafficRoute(name) => rest::get_traffic_route(config, name, key),
        Operation::GetLimits => Err(rest::limits(false)),
        Operation::SetLimits => Err(rest::limits(true)),
        Operation::Models => Ok(rest::models(config, key)),
        Operation::Model(id) => rest::model(config, id, key),
        Operation::Invoke(_) => {
            let Some(target) = native_target else { return Response::Error(GatewayError::not_found()) };
            // The target is in the URL: refuse a key that may not use it before reading (up to
            // max_request_body of) a body that would be thrown away.
            if let Err(e) = invoke::allowed(state, key, target.name()) {
                return Response::Refusal(e);
            }
            return invocation(session, state, snapshot, ctx, key, Invocation::Native(target)).await;
        }
        Operation::OpenAi(endpoint_type) => {
            return invocation(session, state, snapshot, ctx, key, Invocation::OpenAi(endpoint_type)).await;
        }
        Operation::Messages => return invocation(session, state, snapshot, ctx, key, Invocation::Messages).await,
        Operation::CountTokens => {
            return invocation(session, state, snapshot, ctx, key, Invocation::CountTokens).await;
        }
        Operation::Responses => return invocation(session, state, snapshot, ctx, key, Invocation::Responses).await,
        Operation::Proxy { endpoint, rest } => {
            ctx.invocation = true;
            return match proxy::plan(session, state, snapshot, ctx, key, endpoint, rest).await {
                Ok(plan) => Response::Proxy(Box::new(plan)),
                // The body is unread: refuse before it is sent on.
                Err(e) => Response::Refusal(e),
            };
        }
        Operation::OpenAiPassthrough(endpoint_type) => {
            let passthrough = Invocation::OpenAiPassthrough(endpoint_type);
            return invocation(session, state, snapshot, ctx, key, passthrough).await;
        }
        Operation::Gemini { endpoint, stream } => {
            let Some(target) = config.target(endpoint) else {
                let message = format!("Endpoint '{endpoint}' is not found: name an endpoint or traffic route");
                return Response::Error(GatewayError::new(404, ErrorKind::NotFound, message));
            };
            // The target is in the URL: as for native invocations, refuse before reading.
            if let Err(e) = invoke::allowed(state, key, target.name()) {
                return Response::Refusal(e);
            }
            // Google streams one JSON array unless `alt=sse` asks for server-sent events.
            let array = stream && !query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
            let gemini = Invocation::Gemini { target, stream, array };
            return invocation(session, state, snapshot, ctx, key, gemini).await;
        }
    };
    match local {
        Ok(reply) => Response::Reply(reply),
        Err(e) => Response::Error(e),
    }
}

/// Run an invocation, boxed: a future that holds another is laid out with room for it twice,
/// so each unboxed stage would double the size of everything above it, and each is copied whole
/// when built (docs/architecture.md, "Future sizes").
async fn invocation(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    key: Option<&ApiKey>,
    invocation: Invocation<'_>,
) -> Response {
    ctx.invocation = true;
    Box::pin(invoke::run(session, state, snapshot, ctx, key, invocation)).await
}
