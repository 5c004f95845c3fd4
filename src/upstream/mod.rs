//! Talking to providers: base URLs, name resolution, and the HTTP exchange itself over
//! Pingora's pooled connector (HTTP/1.1 keep-alive, rustls with the system roots, SNI = host),
//! directly or through a forward proxy's CONNECT tunnel, behind the egress guard (`egress`).

mod client;
mod dns;
mod egress;

pub use client::{UpstreamResponse, Upstreams, peer};
pub use dns::Resolver;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{BaseUrl, Origin};

/// One HTTP request to a provider, fully built: the gateway adds only `Host`,
/// `Content-Length`, `Accept-Encoding: identity` and `x-request-id`.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Server to send it to.
    pub origin: Arc<Origin>,
    /// HTTP method (providers use `POST`).
    pub method: http::Method,
    /// Path and query.
    pub target: String,
    /// Provider headers (authentication, versions, content type).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl UpstreamRequest {
    /// A JSON `POST` to `base`/`suffix`.
    pub fn post_json(base: &BaseUrl, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest {
            origin: base.origin.clone(),
            method: http::Method::POST,
            target: base.target(suffix),
            headers: vec![(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"))],
            body: Bytes::from(body),
        }
    }

    /// Add a header. Values that are not valid header text are skipped (and reported once at
    /// config load time by the provider that builds them).
    pub fn header(mut self, name: &'static str, value: &str) -> UpstreamRequest {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            self.headers.push((http::HeaderName::from_static(name), v));
        }
        self
    }

    /// Add a prebuilt header (credentials are built once per endpoint and marked sensitive).
    pub fn header_value(mut self, name: http::HeaderName, value: http::HeaderValue) -> UpstreamRequest {
        self.headers.push((name, value));
        self
    }

    /// The full URL, for logs (never includes credentials: they travel in headers).
    pub fn url(&self) -> String {
        let scheme = if self.origin.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.origin.authority, self.target)
    }

    /// The request head on the wire (request line, headers, blank line), with room for
    /// `extra` more bytes so the caller can append the body without reallocating.
    ///
    /// Written by hand rather than through Pingora's `RequestHeader`: the head and a small body
    /// then leave in one write (one TCP segment), and no header map is built per request.
    /// Header names and values are `http` types (already validated); the target, authority and
    /// request id are checked here, so no input can split the request.
    pub(crate) fn head(&self, request_id: Option<&str>, extra: usize) -> Result<Vec<u8>, &'static str> {
        use http::header::{ACCEPT_ENCODING, CONTENT_LENGTH, HOST};
        if !is_token_text(self.target.as_bytes()) {
            return Err("the request target contains a space or control character");
        }
        if !is_token_text(self.origin.authority.as_bytes()) {
            return Err("the host contains a space or control character");
        }
        if request_id.is_some_and(|id| !is_field_text(id.as_bytes())) {
            return Err("the request id contains a control character");
        }
        let headers_len: usize = self.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        let mut head = Vec::with_capacity(
            self.method.as_str().len() + self.target.len() + self.origin.authority.len() + headers_len + 128 + extra,
        );
        head.extend_from_slice(self.method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(self.target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut line = |name: &[u8], value: &[u8]| {
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        };
        line(HOST.as_str().as_bytes(), self.origin.authority.as_bytes());
        for (name, value) in &self.headers {
            let replaced = *name == HOST
                || *name == CONTENT_LENGTH
                || *name == ACCEPT_ENCODING
                || (request_id.is_some() && name.as_str() == "x-request-id");
            if !replaced {
                line(name.as_str().as_bytes(), value.as_bytes());
            }
        }
        line(CONTENT_LENGTH.as_str().as_bytes(), itoa::Buffer::new().format(self.body.len()).as_bytes());
        line(ACCEPT_ENCODING.as_str().as_bytes(), b"identity");
        if let Some(id) = request_id {
            line(b"x-request-id", id.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        Ok(head)
    }
}

/// Visible ASCII only: what a request target or `Host` value may hold.
fn is_token_text(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| (0x21..0x7f).contains(c))
}

/// What a header value may hold: no control characters other than tab.
fn is_field_text(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

/// A header value holding a credential: marked sensitive so HTTP libraries never log it.
pub fn secret_header(value: &str) -> Option<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_on_the_wire() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/v1").unwrap();
        let req = UpstreamRequest::post_json(&base, "chat/completions", b"{}".to_vec())
            .header("x-request-id", "from-provider")
            .header("accept-encoding", "gzip")
            .header("authorization", "Bearer k");
        let head = req.head(Some("abc"), 2).unwrap();
        assert!(head.capacity() >= head.len() + 2);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:8080\r\ncontent-type: application/json\r\n\
             authorization: Bearer k\r\ncontent-length: 2\r\naccept-encoding: identity\r\nx-request-id: abc\r\n\r\n"
        );
        // Without a gateway request id the provider's own header stays.
        let head = String::from_utf8(req.head(None, 0).unwrap()).unwrap();
        assert!(head.contains("x-request-id: from-provider\r\n"), "{head}");
    }

    #[test]
    fn request_head_cannot_be_split() {
        let base = BaseUrl::parse("http://127.0.0.1:8080/v1").unwrap();
        let mut req = UpstreamRequest::post_json(&base, "chat", Vec::new());
        assert!(req.head(Some("id\r\nx-evil: 1"), 0).is_err());
        req.target = "/v1/chat HTTP/1.1\r\nx-evil: 1".into();
        assert!(req.head(None, 0).is_err());
    }
}
