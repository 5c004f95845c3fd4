//! Invocations: read the body, resolve the endpoint, translate, call the provider, translate the
//! answer back (JSON or stream).
//!
//! Errors found before the first byte of the answer is sent become a proper HTTP error in the
//! route family's shape (a failing stream request gets a JSON error with the right status, not
//! an empty 200). Once a stream has started, an error is sent as one
//! `data: {"error": {...}}` event and the stream ends (docs/mlflow-compat.md#fix-1).
//!
//! A stream request never ends as an empty success: a 2xx JSON answer to it (an upstream or
//! proxy that ignored `stream: true`) is a 502 JSON error (the upstream's own error message when
//! the body carries one), and a stream that ends without any translated event, or before the
//! provider's end of stream, or with one event larger than `aigw.max_response_body`, ends with
//! the error event.

use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use rand::Rng;
use serde_json::Value;
use tokio::time::Instant;

use super::{RequestCtx, State, body, fail, respond};
use crate::api::Reply;
use crate::api::error::{Detail, ErrorKind, Family, GatewayError};
use crate::config::{ApiKey, Endpoint, GatewayConfig, Limit, LimitScope, RetryPolicy, Target};
use crate::limits::{Quota, Verdict};
use crate::providers::{self, Call, Decoder, Exchange, Provider, Source, mock::MockAnswer};
use crate::routing;
use crate::schema::{self, EndpointType, Request};
use crate::sse;
use crate::upstream::{UpstreamRequest, UpstreamResponse};

/// How the endpoint was named.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// In the URL: `/endpoints/{name}/invocations`, `/gateway/{name}/invocations`.
    Native(&'a str),
    /// In the body's `model`: `/v1/...`.
    OpenAi(EndpointType),
}

impl Via<'_> {
    fn family(&self) -> Family {
        match self {
            Via::Native(_) => Family::Native,
            Via::OpenAi(_) => Family::OpenAi,
        }
    }
}

/// Serve one invocation. `Err` only when writing to the client failed.
pub async fn run(
    session: &mut Session,
    state: &State,
    config: &GatewayConfig,
    ctx: &mut RequestCtx,
    key: Option<&ApiKey>,
    via: Via<'_>,
) -> respond::WriteResult {
    let family = via.family();
    let limits = &config.settings.limits;
    // A native route names its target in the URL: refuse a key that may not use it before
    // reading (up to max_request_body of) a body that would be thrown away.
    if let (Via::Native(name), Some(k)) = (via, key)
        && !k.allows(name)
    {
        session.set_keepalive(None);
        state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
        fail(session, ctx, family, crate::auth::forbidden(&k.name, name)).await?;
        body::drain_after_refusal(session).await;
        return Ok(());
    }
    let body = match body::read(session, config.settings.max_request_body, limits.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => {
            // The rest of the body is unread: close after answering, and drain a little so the
            // client gets to read the answer.
            session.set_keepalive(None);
            let too_large = e.kind == ErrorKind::TooLarge;
            let reason = if too_large { "body_too_large" } else { "read_timeout" };
            if too_large || e.status == 408 {
                state.metrics.rejected.with_label_values(&[reason]).inc();
            }
            fail(session, ctx, family, e).await?;
            if too_large {
                body::drain_after_refusal(session).await;
            }
            return Ok(());
        }
    };
    ctx.bytes_in = body.len();
    let (target, request) = match resolve(config, via, &body, ctx) {
        Ok(r) => r,
        Err(e) => return fail(session, ctx, family, e).await,
    };
    if let Some(k) = key {
        let name = target.name();
        if !k.allows(name) {
            state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
            return fail(session, ctx, family, crate::auth::forbidden(&k.name, name)).await;
        }
    }
    let candidates = routing::candidates(target);
    let last = candidates.len().saturating_sub(1);
    let mut request = Some(request);
    let mut last_error = None;
    for (i, endpoint) in candidates.into_iter().enumerate() {
        ctx.endpoint = Some(endpoint.name.clone());
        ctx.provider = Some(endpoint.provider_name.as_str());
        ctx.model.clone_from(&endpoint.model_name);
        if let Err(e) = admit(session, state, endpoint, ctx) {
            last_error = Some(e);
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
            let exchange = match providers::prepare(&*endpoint.provider, req, &call) {
                Ok(x) => x,
                Err(e) => return fail(session, ctx, family, e).await,
            };
            let timeout = endpoint.timeout.unwrap_or(state.upstreams.route_timeout);
            // The request as sent, kept for its credentials: an error that echoes one obtained
            // at run time (an OAuth or STS token, not in the configuration) is scrubbed of it.
            let mut sent = None;
            match execute(session, state, config, ctx, family, &*endpoint.provider, exchange, timeout, &mut sent)
                .await
                .map_err(|e| scrub_sent(scrub(config, e), sent.as_deref()))
            {
                Ok(written) => return written,
                Err(e) if !final_try && retryable(&e) => {
                    log::warn!(
                        "request {}: endpoint '{}' attempt {attempt} failed ({e}); {}",
                        ctx.request_id,
                        endpoint.name,
                        if attempt < policy.max_attempts { "retrying" } else { "falling back" }
                    );
                    last_error = Some(e);
                    if attempt < policy.max_attempts {
                        tokio::time::sleep(backoff(&policy, attempt)).await;
                    } else {
                        break;
                    }
                }
                Err(e) => return fail(session, ctx, family, e).await,
            }
        }
    }
    let err = last_error.unwrap_or_else(|| GatewayError::internal("no endpoint could serve the request"));
    fail(session, ctx, family, err).await
}

/// Remove configured secrets from an error's text (upstream messages could echo a credential).
fn scrub(config: &GatewayConfig, e: GatewayError) -> GatewayError {
    rewrite_detail(e, |text| config.redact(text))
}

/// Headers whose values are credentials (after an auth scheme such as `Bearer`).
const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-portkey-api-key", "x-amz-security-token"];

/// A header of the request as it was sent upstream.
type SentHeader = (http::HeaderName, http::HeaderValue);

/// Remove the credentials `sent` carried from an error's text: they may have been obtained at
/// run time (OAuth access tokens, STS session tokens), so the configuration does not know them.
fn scrub_sent(e: GatewayError, sent: Option<&[SentHeader]>) -> GatewayError {
    let Some(headers) = sent else { return e };
    let secrets: Vec<&str> = headers
        .iter()
        .filter(|(name, _)| CREDENTIAL_HEADERS.contains(&name.as_str()))
        .filter_map(|(_, value)| value.to_str().ok())
        // SigV4's Authorization is a signature, not a credential; its key id is configuration.
        .filter(|v| !v.starts_with("AWS4-"))
        .map(|v| v.split_once(' ').map_or(v, |(_, token)| token).trim())
        .filter(|token| token.len() >= 8)
        .collect();
    if secrets.is_empty() {
        return e;
    }
    rewrite_detail(e, |text| {
        secrets
            .iter()
            .any(|s| text.contains(s))
            .then(|| secrets.iter().fold(text.to_owned(), |t, s| t.replace(s, "***")))
    })
}

/// Apply `clean` (which returns the cleaned text, or `None` when nothing changed) to an error's
/// message or JSON detail.
fn rewrite_detail(mut e: GatewayError, clean: impl Fn(&str) -> Option<String>) -> GatewayError {
    match &mut e.detail {
        Detail::Text(t) => {
            if let Some(c) = clean(t) {
                *t = c;
            }
        }
        Detail::Json(v) | Detail::Body(v) => {
            let text = v.to_string();
            if let Some(c) = clean(&text) {
                **v = serde_json::from_str(&c).unwrap_or(Value::String(c));
            }
        }
    }
    e
}

/// Count the call against the endpoint's quota and concurrency cap.
fn admit(session: &Session, state: &State, endpoint: &Endpoint, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
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
    // The concurrency cap first: a request refused for it has not used up a call of the quota.
    let guard = match state.limits.enter(endpoint, scope) {
        Ok(guard) => guard,
        Err(max) => {
            ctx.quota = state.limits.peek(endpoint, scope);
            state.metrics.rejected.with_label_values(&["concurrency_limit"]).inc();
            return Err(GatewayError::new(
                429,
                ErrorKind::RateLimited,
                format!("Too many concurrent requests to endpoint '{}': at most {max} at a time", endpoint.name),
            )
            .with_code("concurrency_limit_exceeded")
            .with_header("retry-after", "1"));
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

/// Whether another attempt (or the next fallback destination) may succeed where this failed:
/// connection failures, timeouts, 429 and 5xx other than 501.
fn retryable(e: &GatewayError) -> bool {
    if e.code == Some(ANSWERED) {
        return false;
    }
    matches!(e.kind, ErrorKind::BadGateway | ErrorKind::Timeout | ErrorKind::RateLimited)
        || (e.kind == ErrorKind::Upstream && (e.status == 429 || (e.status >= 500 && e.status != 501)))
}

/// The code of an error made from an answer the upstream did give (not retried).
const ANSWERED: &str = "upstream_answered";

/// Exponential backoff with ±20 % jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy.backoff_ms.saturating_mul(1u64 << (attempt - 1).min(16)).min(policy.max_backoff_ms);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// Find the target and validate the request for it.
fn resolve<'c>(
    config: &'c GatewayConfig,
    via: Via<'_>,
    body: &[u8],
    ctx: &mut RequestCtx,
) -> Result<(Target<'c>, Request), GatewayError> {
    let (target, request) = match via {
        Via::Native(name) => {
            let target = config.target(name).ok_or_else(GatewayError::not_found)?;
            let request = schema::parse_request(target.endpoint_type(), body).map_err(GatewayError::validation)?;
            if request.body.contains_key("model") {
                return Err(GatewayError::invalid(
                    "The parameter 'model' is not permitted to be passed. The route being queried \
                     already defines a model instance.",
                )
                .with_param("model"));
            }
            (target, request)
        }
        Via::OpenAi(endpoint_type) => {
            let mut value: Value = serde_json::from_slice(body)
                .map_err(|e| GatewayError::bad_request(format!("The request body is not valid JSON: {e}")))?;
            let model = match value.get_mut("model").map(Value::take) {
                Some(Value::String(m)) => m,
                Some(Value::Null) | None => {
                    return Err(GatewayError::bad_request("you must provide a model parameter").with_param("model"));
                }
                Some(_) => {
                    return Err(GatewayError::bad_request("'model' must be a string naming an endpoint or route")
                        .with_param("model"));
                }
            };
            if let Value::Object(o) = &mut value {
                o.remove("model");
            }
            let target = config.target(&model).ok_or_else(|| {
                GatewayError::new(404, ErrorKind::NotFound, format!("The model '{model}' does not exist"))
                    .with_param("model")
                    .with_code("model_not_found")
            })?;
            if target.endpoint_type() != endpoint_type {
                let article = if endpoint_type == EndpointType::Embeddings { "an" } else { "a" };
                return Err(GatewayError::bad_request(format!(
                    "Endpoint '{model}' is not {article} {} endpoint.",
                    endpoint_type.noun()
                ))
                .with_param("model"));
            }
            let request = schema::request_from_value(endpoint_type, value).map_err(GatewayError::validation)?;
            (target, request)
        }
    };
    ctx.target = Some(match target {
        Target::Endpoint(e) => e.name.clone(),
        Target::Route(r) => r.name.clone(),
    });
    Ok((target, request))
}

/// Where the answer is read from.
enum Answer {
    Upstream(Box<UpstreamResponse>),
    Mock(MockAnswer),
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Upstream(r) => r.status,
            Answer::Mock(_) => 200,
        }
    }

    fn content_type(&self) -> (String, String) {
        match self {
            Answer::Upstream(r) => (r.content_type(), r.raw_content_type().to_owned()),
            Answer::Mock(m) => (m.content_type.to_owned(), m.content_type.to_owned()),
        }
    }

    /// The `Content-Type` header as sent (no copy).
    fn raw_content_type(&self) -> &str {
        match self {
            Answer::Upstream(r) => r.raw_content_type(),
            Answer::Mock(m) => m.content_type,
        }
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, GatewayError> {
        match self {
            Answer::Upstream(r) => r.chunk().await,
            Answer::Mock(m) => Ok(m.chunk().await),
        }
    }

    async fn body(&mut self, cap: usize) -> Result<Bytes, GatewayError> {
        match self {
            Answer::Upstream(r) => r.body(cap).await,
            Answer::Mock(m) => {
                let mut out = BytesMut::new();
                while let Some(c) = m.chunk().await {
                    out.extend_from_slice(&c);
                }
                Ok(out.freeze())
            }
        }
    }

    async fn release(self, state: &State) {
        if let Answer::Upstream(r) = self {
            state.upstreams.release(r).await;
        }
    }
}

/// Run the exchange and write the answer. The outer `Err` is an error to send as the answer
/// (nothing written yet); the inner result is the outcome of writing.
/// `sent` receives the upstream request's headers once it was sent (for [`scrub_sent`]).
#[allow(clippy::too_many_arguments)]
async fn execute(
    session: &mut Session,
    state: &State,
    config: &GatewayConfig,
    ctx: &mut RequestCtx,
    family: Family,
    provider: &dyn Provider,
    exchange: Exchange,
    timeout: Duration,
    sent: &mut Option<Vec<SentHeader>>,
) -> Result<respond::WriteResult, GatewayError> {
    let started = Instant::now();
    let mut answer = match exchange.source {
        Source::Http(mut req) => {
            provider.authorize(&mut req, &state.upstreams).await?;
            let response = state.upstreams.send(&req, Some(&ctx.request_id), timeout).await;
            ctx.upstream_time = Some(started.elapsed());
            // Only the headers are kept (the body may be megabytes, and a stream runs long).
            *sent = Some(req.headers);
            Answer::Upstream(response?)
        }
        Source::HttpMany(requests) => {
            let bodies = fan_out(state, config, ctx, provider, requests, timeout).await?;
            ctx.upstream_time = Some(started.elapsed());
            let Decoder::JsonMany(decode) = exchange.decoder else {
                return Err(GatewayError::internal("a fan-out needs a JsonMany decoder"));
            };
            let out = decode(bodies)?;
            ctx.usage = crate::schema::answer_usage(&out);
            let reply = Reply {
                status: 200,
                content_type: Some("application/json"),
                body: Bytes::from(out),
                headers: Vec::new(),
            };
            return Ok(respond::reply(session, reply, ctx).await);
        }
        Source::Mock(m) => Answer::Mock(m),
    };
    let status = answer.status();
    if !(200..300).contains(&status) {
        let body = answer.body(config.settings.max_response_body).await.unwrap_or_default();
        let (ct, _) = answer.content_type();
        answer.release(state).await;
        return Err(provider.upstream_error(status, &ct, &body));
    }
    match exchange.decoder {
        Decoder::JsonMany(_) => Err(GatewayError::internal("a JsonMany decoder needs a fan-out source")),
        Decoder::Json(decode) => {
            let (ct, raw_ct) = answer.content_type();
            if !ct.is_empty() && !providers::is_json(&ct) {
                return Err(GatewayError::bad_gateway(format!(
                    "The returned data type from the route service is not supported. Received content type: {raw_ct}"
                )));
            }
            let body =
                answer.body(config.settings.max_response_body).await.inspect_err(|e| count_too_large(state, e))?;
            answer.release(state).await;
            let out = decode(&body)?;
            ctx.usage = crate::schema::answer_usage(&out);
            Ok(respond::reply(
                session,
                Reply {
                    status: 200,
                    content_type: Some("application/json"),
                    body: Bytes::from(out),
                    headers: Vec::new(),
                },
                ctx,
            )
            .await)
        }
        Decoder::Stream(mut decoder) => {
            if decoder.is_whole_json(answer.raw_content_type()) {
                // Nothing is sent yet: a proper error answer, not a stream.
                let body =
                    answer.body(config.settings.max_response_body).await.inspect_err(|e| count_too_large(state, e))?;
                let (ct, _) = answer.content_type();
                answer.release(state).await;
                return Err(whole_json_answer(provider, &ct, &body));
            }
            decoder.set_max_event(config.settings.max_response_body);
            if let Err(e) = respond::stream_start(session, ctx).await {
                return Ok(Err(e));
            }
            let mut out = BytesMut::new();
            // Whether any event was translated (a stream of nothing is not a success).
            let mut produced = false;
            let outcome: Result<(), GatewayError> = loop {
                // Translate everything the upstream has already delivered before writing: a
                // burst of events costs one write to the client, not one per event. The
                // translated output goes out as soon as the next read would have to wait.
                let next = {
                    let read = answer.chunk();
                    tokio::pin!(read);
                    match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                        Poll::Ready(next) => next,
                        Poll::Pending => {
                            if let Err(e) = flush_stream(session, &mut out, ctx).await {
                                // The client left: stop reading the upstream (the connection
                                // is dropped, not pooled).
                                ctx.usage = decoder.usage().cloned();
                                return Ok(Err(e));
                            }
                            read.await
                        }
                    }
                };
                match next {
                    Ok(Some(chunk)) => {
                        if let Err(e) = decoder.feed(&chunk, &mut out) {
                            break Err(e);
                        }
                        produced |= !out.is_empty();
                        if out.len() >= STREAM_FLUSH_BYTES
                            && let Err(e) = flush_stream(session, &mut out, ctx).await
                        {
                            ctx.usage = decoder.usage().cloned();
                            return Ok(Err(e));
                        }
                    }
                    Ok(None) => {
                        let end = decoder.finish(&mut out);
                        break if produced || !out.is_empty() { end } else { Err(sse::no_data()) };
                    }
                    Err(e) => break Err(e),
                }
            };
            ctx.usage = decoder.usage().cloned();
            match outcome {
                Ok(()) => {
                    answer.release(state).await;
                    if family == Family::OpenAi {
                        out.extend_from_slice(sse::DONE);
                    }
                }
                Err(e) => {
                    count_too_large(state, &e);
                    let e = scrub_sent(scrub(config, e), sent.as_deref());
                    log::warn!("request {}: stream ended with an error: {e}", ctx.request_id);
                    ctx.error = Some(e.kind);
                    out.extend_from_slice(&e.stream_event());
                }
            }
            if ctx.first_byte.is_none() {
                ctx.first_byte = ctx.started.map(|s| s.elapsed());
            }
            Ok(respond::stream_end(session, out.freeze(), ctx).await)
        }
    }
}

/// Count an answer refused for its size (`aigw_rejected_total{reason="response_too_large"}`).
fn count_too_large(state: &State, e: &GatewayError) {
    if e.code == Some("response_too_large") {
        state.metrics.rejected.with_label_values(&["response_too_large"]).inc();
    }
}

/// The error for a 2xx JSON body answering a stream request: the upstream's error relayed
/// through the provider's mapping (with status 502) when the body carries an `error` (also
/// Gemini's one-element list of one), else a plain 502.
fn whole_json_answer(provider: &dyn Provider, content_type: &str, body: &[u8]) -> GatewayError {
    let has_error = |v: &Value| v.get("error").is_some_and(|e| !e.is_null());
    let carries_error = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => matches!(items.as_slice(), [one] if has_error(one)),
        Ok(v) => has_error(&v),
        Err(_) => false,
    };
    let e = if carries_error {
        provider.upstream_error(502, content_type, body)
    } else {
        GatewayError::bad_gateway("upstream answered a streaming request with a non-streaming JSON body")
    };
    // The upstream did answer (and may have billed the call): not worth repeating.
    e.with_code(ANSWERED)
}

/// Translated stream output is written once this much is pending, even while more upstream
/// data is ready.
const STREAM_FLUSH_BYTES: usize = 64 * 1024;

/// Write the translated stream output gathered so far, noting the time of the first byte.
async fn flush_stream(session: &mut Session, out: &mut BytesMut, ctx: &mut RequestCtx) -> respond::WriteResult {
    if out.is_empty() {
        return Ok(());
    }
    if ctx.first_byte.is_none() {
        ctx.first_byte = ctx.started.map(|s| s.elapsed());
    }
    respond::stream_data(session, out.split().freeze(), ctx).await
}

/// Run several upstream calls concurrently; every one must answer 2xx with JSON.
async fn fan_out(
    state: &State,
    config: &GatewayConfig,
    ctx: &RequestCtx,
    provider: &dyn Provider,
    requests: Vec<UpstreamRequest>,
    timeout: Duration,
) -> Result<Vec<Bytes>, GatewayError> {
    let cap = config.settings.max_response_body;
    let calls = requests.into_iter().map(|mut req| async move {
        provider.authorize(&mut req, &state.upstreams).await?;
        let call = async {
            let mut resp = state.upstreams.send(&req, Some(&ctx.request_id), timeout).await?;
            let body = resp.body(cap).await?;
            let (status, ct) = (resp.status, resp.content_type());
            state.upstreams.release(resp).await;
            if !(200..300).contains(&status) {
                return Err(provider.upstream_error(status, &ct, &body));
            }
            Ok(body)
        };
        call.await.map_err(|e| scrub_sent(e, Some(&req.headers)))
    });
    futures::future::try_join_all(calls).await
}
