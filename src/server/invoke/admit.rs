//! Stage "admit": count a call against its endpoint's limits and the budgets it is charged to,
//! before it is prepared. The concurrency cap (in this process) is checked first (a request
//! refused for it has not used up anything), then every counter at once, all or nothing
//! ([`crate::limits::Limits::admit`]): calls, the request's token reservation, and each
//! matching budget's estimated cost. On success the slot and the reservation are held in the
//! request's context until the answer is complete (the reservation is settled in `logging`),
//! and the call quota's state goes out in the `x-ratelimit-*` headers.

use pingora::proxy::Session;

use crate::config::{Budget, Endpoint, Limit, LimitScope};
use crate::error::{Detail, ErrorKind, GatewayError, Reject};
use crate::limits::{Ask, Decision, Estimate, Fault, Refused, Spent, estimate};
use crate::schema::Request;
use crate::server::{RequestCtx, State};
use crate::snapshot::Snapshot;

/// Admit one call to `endpoint` for `request`, or refuse it with the error to answer.
pub async fn admit(
    session: &Session,
    state: &State,
    snapshot: &Snapshot,
    endpoint: &Endpoint,
    request: &Request,
    ctx: &mut RequestCtx,
) -> Result<(), GatewayError> {
    ctx.concurrency = None;
    // A reservation of an earlier candidate (that failed, or whose limits refused): released.
    if let Some(r) = ctx.reservation.take() {
        state.limits.settle(r, Spent::default());
    }
    let budgets: Vec<&Budget> = snapshot
        .config
        .settings
        .budgets
        .iter()
        .filter(|b| b.applies(ctx.api_key.as_deref(), ctx.target.as_deref(), &endpoint.name))
        .collect();
    let limit = endpoint.limit.as_ref();
    if limit.is_none() && budgets.is_empty() {
        ctx.quota = None;
        return Ok(());
    }
    let scope = limit.map_or(0, |limit| {
        state.limits.scope(limit, |scope| match scope {
            LimitScope::Endpoint => None,
            LimitScope::ClientIp => {
                session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip().to_string().into_bytes())
            }
            LimitScope::Header(name) => session.req_header().headers.get(name).map(|v| v.as_bytes().to_vec()),
            LimitScope::ApiKey => ctx.api_key.as_ref().map(|k| k.as_bytes().to_vec()),
        })
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
    let needs_estimate = !budgets.is_empty() || limit.is_some_and(|l| l.tokens.is_some());
    let estimate = if needs_estimate {
        estimate::estimate(endpoint.endpoint_type, &request.body, &endpoint.defaults)
    } else {
        Estimate::default()
    };
    let ask = Ask { endpoint, scope, budgets, estimate };
    if !ask.counts() {
        ctx.quota = None;
        ctx.concurrency = guard;
        return Ok(());
    }
    match state.limits.admit(&ask).await {
        Decision::Admitted(quota, reservation) => {
            ctx.quota = quota;
            ctx.reservation = reservation;
            ctx.concurrency = guard;
            Ok(())
        }
        Decision::Refused(refused, quota, reset_secs) => {
            ctx.quota = quota;
            ctx.rate_limited = true;
            Err(refusal(endpoint, limit, &ask.budgets, refused, reset_secs))
        }
        Decision::Unavailable(fault) => {
            ctx.quota = None;
            Err(unavailable(fault))
        }
    }
}

/// The 429 for what refused the request, with `Retry-After` (seconds until that counter
/// renews, at least 1).
fn refusal(
    endpoint: &Endpoint,
    limit: Option<&Limit>,
    budgets: &[&Budget],
    refused: Refused,
    reset_secs: u64,
) -> GatewayError {
    let retry_after = reset_secs.max(1).to_string();
    match (refused, limit) {
        (Refused::Calls, Some(limit)) => rate_limited(limit, &retry_after),
        (Refused::Tokens { limit: max, used, asked }, Some(limit)) => GatewayError::new(
            429,
            ErrorKind::RateLimited,
            format!(
                "Token limit exceeded for endpoint '{}': {} tokens; this request reserves {asked} \
                 (its estimated prompt and its max_tokens), {} are left",
                endpoint.name,
                limit.describe_amount(max),
                max.saturating_sub(used)
            ),
        )
        .with_code("token_limit_exceeded")
        .with_header("retry-after", retry_after),
        (Refused::Budget(i), _) => {
            let (name, describe) = budgets.get(i).map_or(("", String::new()), |b| (b.name.as_str(), b.describe()));
            GatewayError::new(429, ErrorKind::RateLimited, format!("Budget '{name}' exhausted: {describe}"))
                .with_code("budget_exceeded")
                .with_header("retry-after", retry_after)
        }
        _ => GatewayError::new(429, ErrorKind::RateLimited, "Rate limit exceeded")
            .with_code("rate_limit_exceeded")
            .with_header("retry-after", retry_after),
    }
}

/// The 429 of an exhausted call quota: slowapi's body on MLflow's routes (`{"error": "Rate
/// limit exceeded: 2 per 1 minute"}`), OpenAI's shape on `/v1`, `Retry-After` in seconds.
fn rate_limited(limit: &Limit, retry_after: &str) -> GatewayError {
    let message = format!("Rate limit exceeded: {}", limit.describe());
    let mut e = GatewayError::new(429, ErrorKind::RateLimited, message.clone())
        .with_code("rate_limit_exceeded")
        .with_header("retry-after", retry_after);
    e.detail = Detail::Body(Box::new(serde_json::json!({ "error": message })));
    e
}

/// The 503 when the shared state cannot decide and `on_unavailable` is `deny`.
fn unavailable(fault: Fault) -> GatewayError {
    let why = match fault {
        Fault::Timeout => "did not answer in time",
        _ => "cannot be reached",
    };
    GatewayError::new(
        503,
        ErrorKind::Unavailable,
        format!("Rate limits and budgets cannot be checked: the shared state {why}; retry shortly"),
    )
    .with_code("shared_state_unavailable")
    .with_header("retry-after", "1")
    .rejected(Reject::SharedStateUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Family;
    use serde_json::{Value, json};

    fn endpoint(limit: &str) -> std::sync::Arc<Endpoint> {
        let text = format!(
            "endpoints: [{{name: chat, endpoint_type: llm/v1/chat, model: {{provider: mock}}, limit: {limit}}}]"
        );
        let c = crate::config::GatewayConfig::parse(&text, std::path::Path::new("a.yaml"), &mut |_, _| Ok(())).unwrap();
        c.endpoint("chat").unwrap().clone()
    }

    fn body(e: &GatewayError, family: Family) -> Value {
        serde_json::from_slice(&e.body(family)).unwrap()
    }

    #[test]
    fn each_refusal_in_each_family() {
        let ep = endpoint("{calls: 2, tokens: 1000, renewal_period: minute}");
        let limit = ep.limit.as_ref();
        // Calls: slowapi's body on MLflow's routes, as before.
        let e = refusal(&ep, limit, &[], Refused::Calls, 30);
        assert_eq!(body(&e, Family::Native), json!({"error": "Rate limit exceeded: 2 per 1 minute"}));
        assert_eq!(body(&e, Family::OpenAi)["error"]["code"], "rate_limit_exceeded");
        assert_eq!(e.headers, vec![("retry-after", "30".to_owned())]);
        // Tokens: {"detail": …} on MLflow's routes, token_limit_exceeded on OpenAI's.
        let e = refusal(&ep, limit, &[], Refused::Tokens { limit: 1000, used: 900, asked: 300 }, 0);
        let native = body(&e, Family::Native);
        assert!(native["detail"].as_str().unwrap().contains("1000 per 1 minute tokens"), "{native}");
        assert!(native["detail"].as_str().unwrap().contains("reserves 300"), "{native}");
        assert_eq!(body(&e, Family::OpenAi)["error"]["code"], "token_limit_exceeded");
        assert_eq!(body(&e, Family::OpenAi)["error"]["type"], "rate_limit_error");
        assert_eq!(body(&e, Family::Anthropic)["error"]["type"], "rate_limit_error");
        assert_eq!(e.headers, vec![("retry-after", "1".to_owned())], "at least 1 second");
        // Budgets: named, never their keys.
        let b = Budget {
            name: "team-a".into(),
            usd: 500.0,
            nanos: 500_000_000_000,
            renewal_period: "month".into(),
            period_count: 1,
            period_unit: "month",
            period_secs: 2_592_000,
            keys: Some(vec!["team-a-key".into()]),
            endpoints: None,
        };
        let e = refusal(&ep, limit, &[&b], Refused::Budget(0), 100);
        assert_eq!(body(&e, Family::Native), json!({"detail": "Budget 'team-a' exhausted: 500 USD per 1 month"}));
        let v = body(&e, Family::OpenAi);
        assert_eq!((v["error"]["code"].as_str(), e.status), (Some("budget_exceeded"), 429));
        assert!(!v.to_string().contains("team-a-key"));
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let e = unavailable(Fault::Timeout);
        assert_eq!((e.status, e.headers.clone()), (503, vec![("retry-after", "1".to_owned())]));
        assert_eq!(body(&e, Family::Anthropic)["error"]["type"], "overloaded_error");
        assert!(body(&e, Family::Native)["detail"].as_str().unwrap().contains("shared state"));
        assert_eq!(e.reject, Some(Reject::SharedStateUnavailable));
    }
}
