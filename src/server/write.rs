//! The one place that writes answers to the client, success or error, whole or streamed.
//!
//! Every request ends in one [`Response`] handed to [`respond`]: local REST answers, errors in
//! the client API's shape, decoded provider answers, and provider streams relayed as they
//! arrive. It sets the answer's status, `x-request-id` and `x-ratelimit-*` headers, records
//! what the audit line and the metrics need (status, bytes, error kind, rejections), and for a
//! stream translates whatever the upstream has delivered before each write (one write per
//! burst), watches for the client leaving between events, and ends the stream with the
//! family's end marker or its error event.

use std::task::Poll;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::invoke::execute::LiveStream;
use super::invoke::scrub::Scrubber;
use super::{RequestCtx, State, body, downstream};
use crate::api::Reply;
use crate::api::encode::{self, AnswerMeta, StreamEncoder};
use crate::error::{ErrorKind, Family, GatewayError};
use crate::framing::no_data;
use crate::schema::{Answer, Chunk};
use crate::snapshot::Snapshot;

/// Result of a write to the client; an error means the client is gone.
pub type WriteResult = pingora::Result<()>;

/// What to answer.
// A whole answer is moved once per request; boxing it would cost an allocation instead.
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// A complete local answer (REST, health, docs, metrics, redirects).
    Reply(Reply),
    /// An error, in the family's shape. [`ErrorKind::ClientClosed`] writes nothing.
    Error(GatewayError),
    /// An error answered before (all of) the request body was read, after which the
    /// connection closes; what the client still sends is drained for a while, so it reads the
    /// answer instead of a reset (413, 403 on a native route).
    Refusal(GatewayError),
    /// An error answered while the body was being read (408, a failed read): the connection
    /// closes; nothing is drained.
    Unread(GatewayError),
    /// A provider's whole answer, and what its encoding needs.
    Answer(Answer, Box<AnswerMeta>),
    /// A provider's stream.
    Stream(Box<LiveStream>),
    /// Nothing is written here: the raw proxy route carries the request on through Pingora's
    /// proxy pipeline (`server::proxy`).
    Proxy(Box<super::proxy::ProxyPlan>),
}

/// Write `response` for a request of `family`.
pub async fn respond(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    family: Family,
    response: Response,
) -> WriteResult {
    match response {
        Response::Reply(reply) => reply_whole(session, reply, ctx).await,
        Response::Error(e) => error(session, state, ctx, family, e).await,
        Response::Refusal(e) => {
            session.set_keepalive(None);
            error(session, state, ctx, family, e).await?;
            body::drain_after_refusal(session).await;
            Ok(())
        }
        Response::Unread(e) => {
            session.set_keepalive(None);
            error(session, state, ctx, family, e).await
        }
        Response::Answer(answer, meta) => {
            ctx.usage = answer.usage();
            match encode::answer(family, &answer, &meta) {
                Ok(body) => {
                    let reply =
                        Reply { status: 200, content_type: Some("application/json"), body, headers: Vec::new() };
                    reply_whole(session, reply, ctx).await
                }
                Err(e) => error(session, state, ctx, family, e).await,
            }
        }
        // Boxed, like an invocation (docs/architecture.md, "Future sizes").
        Response::Stream(stream) => Box::pin(relay(session, state, snapshot, ctx, family, *stream)).await,
        Response::Proxy(_) => {
            error(session, state, ctx, family, GatewayError::internal("a proxied request reached the writer")).await
        }
    }
}

/// Count a refusal once, where it is answered.
fn count_rejection(state: &State, e: &GatewayError) {
    if let Some(reason) = e.reject {
        state.metrics.rejected.with_label_values(&[reason.as_str()]).inc();
    }
}

async fn error(
    session: &mut Session,
    state: &State,
    ctx: &mut RequestCtx,
    family: Family,
    e: GatewayError,
) -> WriteResult {
    count_rejection(state, &e);
    ctx.error = Some(e.kind);
    if e.kind == ErrorKind::ClientClosed {
        log::debug!("request {}: the client closed the connection", ctx.request_id);
        state.metrics.client_closed.inc();
        ctx.status = e.status;
        session.set_keepalive(None);
        return Ok(());
    }
    if e.status_for(family) >= 500 {
        log::warn!("request {}: {e}", ctx.request_id);
    }
    reply_whole(session, Reply::error(&e, family), ctx).await
}

/// MLflow 3's timing headers.
const DURATION_MS: http::header::HeaderName = http::header::HeaderName::from_static("x-mlflow-gateway-duration-ms");
const OVERHEAD_MS: http::header::HeaderName =
    http::header::HeaderName::from_static("x-mlflow-gateway-overhead-duration-ms");

/// `micros` as milliseconds with three decimals (`1234` → `1.234`).
fn millis(micros: u128) -> String {
    format!("{}.{:03}", micros / 1000, micros % 1000)
}

pub(super) fn base_header(status: u16, extra: usize, ctx: &RequestCtx) -> pingora::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(14 + extra))?;
    h.insert_header("x-request-id", &ctx.request_id)?;
    if let Some(cors) = ctx.snapshot.as_deref().and_then(|s| s.config.settings.cors.as_ref()) {
        // The answer depends on the Origin whenever aigw.cors is set (docs/security.md, "CORS").
        h.insert_header(http::header::VARY, "Origin")?;
        if let Some(origin) = &ctx.cors_origin {
            h.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone())?;
            h.insert_header(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, cors.expose_headers.as_str())?;
            if cors.allow_credentials {
                h.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
            }
        }
    }
    if let Some(q) = &ctx.quota {
        h.insert_header("x-ratelimit-limit", q.limit)?;
        h.insert_header("x-ratelimit-remaining", q.remaining)?;
        h.insert_header("x-ratelimit-reset", q.reset_secs)?;
    }
    if ctx.invocation
        && let Some(started) = ctx.started
    {
        // MLflow 3's timing headers, and the same figures as a standard Server-Timing: the
        // time until this answer's head, and how much of it was the gateway's own (the rest
        // is the wait on the upstream: to its head for a stream, to its whole body otherwise).
        // Milliseconds with three decimals from whole microseconds, the header names as
        // constants: `{:.3}` of an f64 and parsing the names cost about 4,000 instructions per
        // request (scripts/instructions.sh).
        let total = started.elapsed().as_micros();
        let upstream = ctx.upstream_wait.map_or(0, |d| d.as_micros());
        let overhead = total.saturating_sub(upstream);
        let (total, upstream, overhead) = (millis(total), millis(upstream), millis(overhead));
        let timing = format!("total;dur={total}, upstream;dur={upstream}, gateway;dur={overhead}");
        h.insert_header(DURATION_MS, total)?;
        h.insert_header(OVERHEAD_MS, overhead)?;
        h.insert_header(http::header::HeaderName::from_static("server-timing"), timing)?;
    }
    Ok(h)
}

/// Write a complete answer.
async fn reply_whole(session: &mut Session, reply: Reply, ctx: &mut RequestCtx) -> WriteResult {
    let mut h = base_header(reply.status, reply.headers.len() + 2, ctx)?;
    if let Some(ct) = reply.content_type {
        h.insert_header("content-type", ct)?;
    }
    h.insert_header("content-length", reply.body.len())?;
    for (name, value) in &reply.headers {
        h.insert_header(*name, value)?;
    }
    ctx.status = reply.status;
    ctx.bytes_out += reply.body.len();
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(h), false).await?;
    let body = if head_only { None } else { Some(reply.body) };
    session.write_response_body(body, true).await
}

/// Translated stream output is written once this much is pending, even while more upstream
/// data is ready.
const STREAM_FLUSH_BYTES: usize = 64 * 1024;

/// Relay a stream: a 200 event stream, then the translated events as they arrive, then the
/// family's end (or one error event). A stream never ends as an empty success: one whose
/// upstream ends without any translated event ends with [`no_data`].
async fn relay(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    family: Family,
    stream: LiveStream,
) -> WriteResult {
    let LiveStream { mut incoming, mut decoder, sent, meta } = stream;
    let scrubber = Scrubber::with_sent(&snapshot.config, sent);
    let mut encoder = StreamEncoder::new(family, meta);
    stream_start(session, ctx, encoder.content_type()).await?;
    let mut out = BytesMut::new();
    let mut chunks: Vec<Chunk> = Vec::new();
    // Whether any event was translated (a stream of nothing is not a success).
    let mut produced = false;
    let outcome: Result<(), GatewayError> = loop {
        // Translate everything the upstream has already delivered before writing: a burst of
        // events costs one write to the client, not one per event. The translated output goes
        // out as soon as the next read would have to wait; while it waits, a client that
        // leaves ends the stream at once.
        let next = {
            let read = incoming.chunk();
            tokio::pin!(read);
            match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
                Poll::Ready(next) => next,
                Poll::Pending => {
                    if let Err(e) = flush(session, &mut out, ctx).await {
                        // The client left: stop reading the upstream (the connection is
                        // dropped, not pooled).
                        ctx.usage = decoder.usage().cloned();
                        return Err(e);
                    }
                    match downstream::unless_gone!(session, read) {
                        Ok(next) => next,
                        Err(gone) => break Err(gone),
                    }
                }
            }
        };
        let fed = match next {
            Ok(Some(bytes)) => decoder.feed(&bytes, &mut chunks),
            Ok(None) => {
                let end = decoder.finish(&mut chunks);
                produced |= !chunks.is_empty();
                encode_all(&mut encoder, &mut chunks, &mut out);
                break if produced { end } else { Err(no_data()) };
            }
            Err(e) => break Err(e),
        };
        produced |= !chunks.is_empty();
        encode_all(&mut encoder, &mut chunks, &mut out);
        if let Err(e) = fed {
            break Err(e);
        }
        if out.len() >= STREAM_FLUSH_BYTES
            && let Err(e) = flush(session, &mut out, ctx).await
        {
            ctx.usage = decoder.usage().cloned();
            return Err(e);
        }
    };
    ctx.usage = decoder.usage().cloned();
    match outcome {
        Ok(()) => {
            incoming.release(state).await;
            encoder.finish(ctx.usage.as_ref(), &mut out);
        }
        Err(e) if e.kind == ErrorKind::ClientClosed => {
            ctx.error = Some(e.kind);
            ctx.status = e.status;
            state.metrics.client_closed.inc();
            session.set_keepalive(None);
            log::debug!("request {}: the client closed the connection during the stream", ctx.request_id);
            return Ok(());
        }
        Err(e) => {
            count_rejection(state, &e);
            let e = scrubber.clean(e);
            log::warn!("request {}: stream ended with an error: {e}", ctx.request_id);
            ctx.error = Some(e.kind);
            encoder.error(&e, &mut out);
        }
    }
    if ctx.first_byte.is_none() {
        ctx.first_byte = ctx.started.map(|s| s.elapsed());
    }
    ctx.bytes_out += out.len();
    let data = (!out.is_empty()).then(|| out.freeze());
    session.write_response_body(data, true).await
}

/// Encode the chunks a decoder produced.
fn encode_all(encoder: &mut StreamEncoder, chunks: &mut Vec<Chunk>, out: &mut BytesMut) {
    for chunk in chunks.drain(..) {
        encoder.chunk(&chunk, out);
    }
}

/// Start a 200 stream (an event stream, or Gemini's JSON array).
async fn stream_start(session: &mut Session, ctx: &mut RequestCtx, content_type: &'static str) -> WriteResult {
    let mut h = base_header(200, 4, ctx)?;
    h.insert_header("content-type", content_type)?;
    h.insert_header("cache-control", "no-cache")?;
    h.insert_header("x-accel-buffering", "no")?;
    if session.req_header().version == http::Version::HTTP_11 {
        // Without a length or chunked framing HTTP/1.1 falls back to close-delimited bodies;
        // Pingora's HTTP/2 writer drops this header itself.
        h.insert_header("transfer-encoding", "chunked")?;
    }
    ctx.status = 200;
    session.write_response_header(Box::new(h), false).await
}

/// Write the translated stream output gathered so far, noting the time of the first byte.
async fn flush(session: &mut Session, out: &mut BytesMut, ctx: &mut RequestCtx) -> WriteResult {
    if out.is_empty() {
        return Ok(());
    }
    if ctx.first_byte.is_none() {
        ctx.first_byte = ctx.started.map(|s| s.elapsed());
    }
    let data: Bytes = out.split().freeze();
    ctx.bytes_out += data.len();
    session.write_response_body(Some(data), false).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn millis_have_three_decimals() {
        assert_eq!(super::millis(0), "0.000");
        assert_eq!(super::millis(7), "0.007");
        assert_eq!(super::millis(1_234), "1.234");
        assert_eq!(super::millis(120_050_000), "120050.000");
    }
}
