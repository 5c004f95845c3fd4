//! Stage "admit": count a call against its endpoint's limits before it is prepared. The
//! concurrency cap is checked first (a request refused for it has not used up a call of the
//! quota), then the call quota. On success the slot is held in the request's context until the
//! answer is complete, and the quota's state goes out in the `x-ratelimit-*` headers.

use pingora::proxy::Session;

use crate::config::{Endpoint, Limit, LimitScope};
use crate::error::{Detail, ErrorKind, GatewayError, Reject};
use crate::limits::{Quota, Verdict};
use crate::server::{RequestCtx, State};

/// Admit one call to `endpoint`, or refuse it with the 429 to answer.
pub fn admit(session: &Session, state: &State, endpoint: &Endpoint, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    ctx.concurrency = None;
    let Some(limit) = &endpoint.limit else {
        ctx.quota = None;
        return Ok(());
    };
    let scope = state.limits.scope(limit, |scope| match scope {
        LimitScope::Endpoint => None,
        LimitScope::ClientIp => {
            session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string().into_bytes())
        }
        LimitScope::Header(name) => session.req_header().headers.get(name).map(|v| v.as_bytes().to_vec()),
        LimitScope::ApiKey => ctx.api_key.as_ref().map(|k| k.as_bytes().to_vec()),
    });
    let guard = match state.limits.enter(endpoint, scope) {
        Ok(guard) => guard,
        Err(max) => {
            ctx.quota = state.limits.peek(endpoint, scope);
            return Err(GatewayError::new(
                429,
                ErrorKind::RateLimited,
                format!("Too many concurrent requests to endpoint '{}': at most {max} at a time", endpoint.name),
            )
            .with_code("concurrency_limit_exceeded")
            .with_header("retry-after", "1")
            .rejected(Reject::ConcurrencyLimit));
        }
    };
    match state.limits.acquire(endpoint, scope) {
        Some(Verdict::Limited(q)) => {
            ctx.quota = Some(q);
            ctx.rate_limited = true;
            return Err(rate_limited(limit, &q));
        }
        Some(Verdict::Allowed(q)) => ctx.quota = Some(q),
        None => ctx.quota = None,
    }
    ctx.concurrency = guard;
    Ok(())
}

/// The 429 of an exhausted quota: slowapi's body on MLflow's routes (`{"error": "Rate limit
/// exceeded: 2 per 1 minute"}`), OpenAI's shape on `/v1`, `Retry-After` in seconds.
fn rate_limited(limit: &Limit, quota: &Quota) -> GatewayError {
    let message = format!("Rate limit exceeded: {}", limit.describe());
    let mut e = GatewayError::new(429, ErrorKind::RateLimited, message.clone())
        .with_code("rate_limit_exceeded")
        .with_header("retry-after", quota.reset_secs.max(1).to_string());
    e.detail = Detail::Body(Box::new(serde_json::json!({ "error": message })));
    e
}
