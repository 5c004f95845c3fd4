//! Stage "attempt": try the planned endpoints in order, each with its retry policy, until one
//! gives an outcome to write or an error that is not worth another attempt.
//!
//! For each candidate: admit (its limits), prepare (the provider turns the unified request
//! into an [`Exchange`](crate::providers::Exchange)), execute. A retryable failure (see
//! [`GatewayError::retryable`]) is retried after a backoff, up to the endpoint's
//! `retry.max_attempts`; then the next candidate (a `FALLBACK` route's next destination) is
//! tried. A candidate whose limits refuse the call is skipped. The last error is the answer when
//! every candidate failed. The backoff is abandoned when the client leaves.

use std::time::Duration;

use pingora::proxy::Session;
use rand::Rng;

use super::admit::admit;
use super::execute::{self, Outcome};
use super::plan::Candidate;
use crate::config::RetryPolicy;
use crate::error::GatewayError;
use crate::providers::{self, Call};
use crate::schema::{self, Request};
use crate::server::{RequestCtx, State, downstream};
use crate::snapshot::Snapshot;

/// Try `candidates` in order for `request`.
pub async fn run(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    candidates: Vec<Candidate<'_>>,
    request: Request,
) -> Result<Outcome, GatewayError> {
    let last = candidates.len().saturating_sub(1);
    let mut request = Some(request);
    let mut last_error: Option<GatewayError> = None;
    for (i, candidate) in candidates.into_iter().enumerate() {
        let endpoint = candidate.endpoint;
        ctx.endpoint = Some(endpoint.name.clone());
        ctx.provider = Some(endpoint.provider_name.as_str());
        ctx.model.clone_from(&endpoint.model_name);
        if let Err(e) = admit(session, state, endpoint, ctx) {
            leave_behind(state, last_error.replace(e));
            continue;
        }
        let policy = endpoint.retry;
        for attempt in 1..=policy.max_attempts {
            let final_try = i == last && attempt == policy.max_attempts;
            let next = if final_try { request.take() } else { request.clone() };
            let Some(mut req) = next else { break };
            schema::apply_defaults(&mut req, &endpoint.defaults);
            let call = Call { endpoint, created: providers::now_secs() };
            ctx.streamed = req.stream();
            // A request the provider cannot take is the client's problem: no other attempt.
            let exchange = providers::prepare(candidate.provider, req, &call)?;
            let timeout = endpoint.timeout.unwrap_or(state.upstreams.route_timeout);
            match execute::run(session, state, snapshot, ctx, candidate.provider, exchange, timeout).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) if !final_try && e.retryable() => {
                    log::warn!(
                        "request {}: endpoint '{}' attempt {attempt} failed ({e}); {}",
                        ctx.request_id,
                        endpoint.name,
                        if attempt < policy.max_attempts { "retrying" } else { "falling back" }
                    );
                    leave_behind(state, last_error.replace(e));
                    if attempt == policy.max_attempts {
                        break;
                    }
                    downstream::unless_gone(session, tokio::time::sleep(backoff(&policy, attempt))).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(last_error.unwrap_or_else(|| GatewayError::internal("no endpoint could serve the request")))
}

/// An error superseded by a later attempt still counts as the refusal it was.
fn leave_behind(state: &State, e: Option<GatewayError>) {
    if let Some(reason) = e.and_then(|e| e.reject) {
        state.metrics.rejected.with_label_values(&[reason.as_str()]).inc();
    }
}

/// Exponential backoff with ±20 % jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy.backoff_ms.saturating_mul(1u64 << (attempt - 1).min(16)).min(policy.max_backoff_ms);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy { max_attempts: 5, backoff_ms: 100, max_backoff_ms: 300 };
        let ms = |a| backoff(&policy, a).as_millis();
        assert!((80..=120).contains(&ms(1)), "{}", ms(1));
        assert!((160..=240).contains(&ms(2)), "{}", ms(2));
        assert!((240..=360).contains(&ms(5)), "capped at 300 ±20 %: {}", ms(5));
    }
}
