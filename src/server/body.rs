//! Reading a request body whole, up to the configured maximum.
//!
//! Pingora can replay a pre-read body to its proxy pipeline only from a 64 KiB retry buffer,
//! which is why the gateway reads the body itself and drives the upstream exchange (see
//! `docs/architecture.md`). A body over the limit is refused with 413 as soon as that is known
//! (from `Content-Length`, before reading, so `Expect: 100-continue` clients send nothing),
//! and what the client still sends is drained, bounded in time, so it reads the 413 instead of
//! a connection reset.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use crate::error::{ErrorKind, GatewayError};

/// How long the gateway waits for the next piece of a request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the gateway keeps reading (and discarding) a refused body so the client sees the 413.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The 413 error.
pub fn too_large(size: Option<usize>, max: usize) -> GatewayError {
    let msg = match size {
        Some(n) => format!("Request body too large: {n} bytes exceeds the limit of {max} bytes"),
        None => format!("Request body too large: it exceeds the limit of {max} bytes"),
    };
    GatewayError::new(413, ErrorKind::TooLarge, msg)
}

/// Read the whole body within `deadline` (408 after). Zero-copy when it arrives in one piece.
pub async fn read(session: &mut Session, max: usize, deadline: std::time::Duration) -> Result<Bytes, GatewayError> {
    match tokio::time::timeout(deadline, read_inner(session, max)).await {
        Ok(result) => result,
        Err(_) => Err(GatewayError::new(
            408,
            ErrorKind::InvalidRequest,
            format!("The request body did not arrive within {} s", deadline.as_secs_f64()),
        )),
    }
}

async fn read_inner(session: &mut Session, max: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > max) {
        return Err(too_large(Some(n), max));
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session.write_continue_response().await.map_err(|e| read_failed(&e))?;
    }
    session.set_read_timeout(Some(BODY_READ_TIMEOUT));
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut total = 0usize;
    while let Some(chunk) = session.read_request_body().await.map_err(|e| read_failed(&e))? {
        total += chunk.len();
        if total > max {
            return Err(too_large(None, max));
        }
        match first.take() {
            None if buf.is_empty() => first = Some(chunk),
            None => buf.extend_from_slice(&chunk),
            Some(f) => {
                buf.reserve(declared.unwrap_or(f.len() + chunk.len()).max(f.len() + chunk.len()));
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

fn read_failed(e: &pingora::Error) -> GatewayError {
    let kind = if e.etype == pingora::ErrorType::ReadTimedout { "timed out" } else { "failed" };
    GatewayError::new(400, ErrorKind::InvalidRequest, format!("Reading the request body {kind}"))
}

/// After the refusal was written (with keep-alive off): discard what the client still sends,
/// bounded in time, so it reads the error instead of a connection reset.
pub async fn drain_after_refusal(session: &mut Session) {
    let drain = async { while let Ok(Some(_)) = session.read_request_body().await {} };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
}
