//! Writing answers to the client through Pingora's session.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::RequestCtx;
use crate::api::Reply;

/// Result of a write to the client; an error means the client is gone.
pub type WriteResult = pingora::Result<()>;

fn base_header(status: u16, extra: usize, ctx: &RequestCtx) -> pingora::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(7 + extra))?;
    h.insert_header("x-request-id", &ctx.request_id)?;
    if let Some(q) = &ctx.quota {
        h.insert_header("x-ratelimit-limit", q.limit)?;
        h.insert_header("x-ratelimit-remaining", q.remaining)?;
        h.insert_header("x-ratelimit-reset", q.reset_secs)?;
    }
    Ok(h)
}

/// Write a complete local answer.
pub async fn reply(session: &mut Session, reply: Reply, ctx: &mut RequestCtx) -> WriteResult {
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

/// Start a 200 event stream.
pub async fn stream_start(session: &mut Session, ctx: &mut RequestCtx) -> WriteResult {
    let mut h = base_header(200, 4, ctx)?;
    h.insert_header("content-type", "text/event-stream; charset=utf-8")?;
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

/// Send part of a stream.
pub async fn stream_data(session: &mut Session, data: Bytes, ctx: &mut RequestCtx) -> WriteResult {
    if data.is_empty() {
        return Ok(());
    }
    ctx.bytes_out += data.len();
    session.write_response_body(Some(data), false).await
}

/// End a stream, with a last piece of data.
pub async fn stream_end(session: &mut Session, data: Bytes, ctx: &mut RequestCtx) -> WriteResult {
    ctx.bytes_out += data.len();
    let data = (!data.is_empty()).then_some(data);
    session.write_response_body(data, true).await
}
