//! Reading a request body whole, up to the configured maximum.
//!
//! Pingora can replay a pre-read body to its proxy pipeline only from a 64 KiB retry buffer,
//! which is why the gateway reads the body itself and drives the upstream exchange (see
//! `docs/architecture.md`). A body over the limit is refused with 413 as soon as that is known
//! (from `Content-Length`, before reading, so `Expect: 100-continue` clients send nothing),
//! and what the client still sends is drained, bounded in time, so it reads the 413 instead of
//! a connection reset. Compressed bodies (`Content-Encoding: gzip`, `zstd`) are decompressed
//! with the same limit on their decompressed size.

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
/// A body sent with `Content-Encoding: gzip` or `zstd` is decompressed, and the decompressed
/// size is held to `max` too (413 beyond: a small compressed body cannot expand without
/// bound); other encodings are refused with 415.
pub async fn read(session: &mut Session, max: usize, deadline: std::time::Duration) -> Result<Bytes, GatewayError> {
    let encoding = Encoding::of(session)?;
    let raw = match tokio::time::timeout(deadline, read_inner(session, max)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(GatewayError::new(
                408,
                ErrorKind::InvalidRequest,
                format!("The request body did not arrive within {} s", deadline.as_secs_f64()),
            ));
        }
    };
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => decompress(flate2::read::MultiGzDecoder::new(&raw[..]), max, "gzip"),
        Encoding::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(&raw[..]).map_err(|e| bad_encoding("zstd", &e))?;
            decompress(decoder, max, "zstd")
        }
    }
}

/// A request body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    fn of(session: &Session) -> Result<Encoding, GatewayError> {
        let Some(value) = session.req_header().headers.get(http::header::CONTENT_ENCODING) else {
            return Ok(Encoding::Identity);
        };
        let value = value.to_str().unwrap_or("").trim();
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Ok(Encoding::Identity)
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Ok(Encoding::Gzip)
        } else if value.eq_ignore_ascii_case("zstd") {
            Ok(Encoding::Zstd)
        } else {
            Err(GatewayError::new(
                415,
                ErrorKind::InvalidRequest,
                format!("Content-Encoding '{value}' is not supported for request bodies (gzip and zstd are)"),
            ))
        }
    }
}

/// Decompress `reader` whole, refusing more than `max` bytes of output.
fn decompress(reader: impl std::io::Read, max: usize, name: &str) -> Result<Bytes, GatewayError> {
    use std::io::Read;
    let mut out = Vec::new();
    // One byte past the limit tells "exactly max" from "more".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(&mut out).map_err(|e| bad_encoding(name, &e))?;
    if out.len() > max {
        return Err(GatewayError::new(
            413,
            ErrorKind::TooLarge,
            format!("Request body too large: it exceeds the limit of {max} bytes once decompressed ({name})"),
        ));
    }
    Ok(Bytes::from(out))
}

fn bad_encoding(name: &str, e: &std::io::Error) -> GatewayError {
    GatewayError::bad_request(format!("The request body is not valid {name} data: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_is_bounded() {
        use std::io::Write;
        let body = br#"{"messages":[{"role":"user","content":"hi"}]}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(body).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(&decompress(flate2::read::MultiGzDecoder::new(&gz[..]), 1024, "gzip").unwrap()[..], body);
        let zst = zstd::stream::encode_all(&body[..], 3).unwrap();
        let d = zstd::stream::read::Decoder::with_buffer(&zst[..]).unwrap();
        assert_eq!(&decompress(d, body.len(), "zstd").unwrap()[..], body, "exactly at the limit");
        // A bomb: 64 MiB of zeros in a few kilobytes stops at the limit.
        let zeros = vec![0u8; 64 << 20];
        let bomb = zstd::stream::encode_all(&zeros[..], 19).unwrap();
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let d = zstd::stream::read::Decoder::with_buffer(&bomb[..]).unwrap();
        let e = decompress(d, 1 << 20, "zstd").unwrap_err();
        assert_eq!((e.status, e.kind), (413, ErrorKind::TooLarge));
        let e = decompress(flate2::read::MultiGzDecoder::new(&b"not gzip"[..]), 1024, "gzip").unwrap_err();
        assert_eq!(e.status, 400);
    }
}
