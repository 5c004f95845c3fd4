//! Talking to providers: base URLs, name resolution, and the HTTP exchange itself over
//! Pingora's pooled connector (HTTP/1.1 keep-alive, rustls with the system roots, SNI = host).

mod client;
mod dns;

pub use client::{UpstreamResponse, Upstreams};
pub use dns::Resolver;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Where a provider lives: scheme, host and port. Shared by every request to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https` or not.
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The `Host` header value: `host` or `host:port` for a non-default port.
    pub authority: String,
}

/// A provider base URL such as `https://api.openai.com/v1`, split for cheap joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Scheme, host and port.
    pub origin: Arc<Origin>,
    /// Path prefix without a trailing slash (may be empty).
    pub path: String,
    /// Query string of the base, kept when joining (MLflow's `append_to_uri_path`).
    pub query: Option<String>,
}

impl BaseUrl {
    /// Parse an absolute `http(s)://` URL.
    pub fn parse(s: &str) -> Result<BaseUrl, String> {
        let bad = |why: &str| format!("'{s}' is not a usable base URL: {why}");
        let uri: http::Uri = s.trim().parse().map_err(|e| bad(&format!("{e}")))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("it must start with http:// or https://")),
        };
        let host = uri.host().ok_or_else(|| bad("it has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let host_for_header = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let authority = if port == default_port { host_for_header } else { format!("{host_for_header}:{port}") };
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(BaseUrl {
            origin: Arc::new(Origin { tls, host, port, authority }),
            path,
            query: uri.query().map(str::to_owned),
        })
    }

    /// This base with more path segments appended (the query is kept).
    pub fn join(&self, segments: &str) -> BaseUrl {
        BaseUrl {
            origin: self.origin.clone(),
            path: format!("{}/{}", self.path, segments.trim_matches('/')),
            query: self.query.clone(),
        }
    }

    /// This base with a query parameter added.
    pub fn with_query_param(&self, key: &str, value: &str) -> BaseUrl {
        let pair = format!("{key}={}", encode_unreserved(value));
        BaseUrl {
            origin: self.origin.clone(),
            path: self.path.clone(),
            query: Some(match &self.query {
                Some(q) if !q.is_empty() => format!("{q}&{pair}"),
                _ => pair,
            }),
        }
    }

    /// The request target for `suffix` under this base: `/<path>/<suffix>?<query>`.
    pub fn target(&self, suffix: &str) -> String {
        self.target_with_query(suffix, None)
    }

    /// Like [`Self::target`] with an extra query string appended (e.g. `alt=sse`).
    pub fn target_with_query(&self, suffix: &str, extra_query: Option<&str>) -> String {
        let suffix = suffix.trim_start_matches('/');
        let mut t = String::with_capacity(self.path.len() + suffix.len() + 32);
        t.push_str(&self.path);
        if !suffix.is_empty() {
            t.push('/');
            t.push_str(suffix);
        }
        if t.is_empty() {
            t.push('/');
        }
        let mut sep = '?';
        for q in [self.query.as_deref(), extra_query].into_iter().flatten() {
            if !q.is_empty() {
                t.push(sep);
                t.push_str(q);
                sep = '&';
            }
        }
        t
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.origin.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.origin.authority, self.path)?;
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `v` with every byte but RFC 3986's unreserved characters percent-encoded (`%XX`, UTF-8):
/// safe as a query value, an `application/x-www-form-urlencoded` value (a space is `%20`) or
/// one URI path segment (`/` and `:` are encoded too).
pub fn encode_unreserved(v: &str) -> String {
    utf8_percent_encode(v, NOT_UNRESERVED).to_string()
}

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

    #[test]
    fn parse_and_join() {
        let b = BaseUrl::parse("https://api.openai.com/v1/").unwrap();
        assert_eq!(b.origin.port, 443);
        assert_eq!(b.origin.authority, "api.openai.com");
        assert_eq!(b.target("chat/completions"), "/v1/chat/completions");

        let a = BaseUrl::parse("https://x.openai.azure.com/")
            .unwrap()
            .join("openai/deployments/dep")
            .with_query_param("api-version", "2023-05-15");
        assert_eq!(a.target("embeddings"), "/openai/deployments/dep/embeddings?api-version=2023-05-15");

        let l = BaseUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(l.origin.authority, "127.0.0.1:8080");
        assert_eq!(l.target("x"), "/x");
        assert_eq!(l.target(""), "/");
        assert_eq!(l.target_with_query("m:streamGenerateContent", Some("alt=sse")), "/m:streamGenerateContent?alt=sse");

        let q = BaseUrl::parse("http://h/v1?key=1").unwrap();
        assert_eq!(q.target("chat"), "/v1/chat?key=1");

        let v6 = BaseUrl::parse("http://[::1]:9000/v1").unwrap();
        assert_eq!(v6.origin.host, "::1");
        assert_eq!(v6.origin.authority, "[::1]:9000");

        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());

        let q = BaseUrl::parse("http://h/v1?a=1").unwrap().with_query_param("v", "2024-01-01 preview/x&y");
        assert_eq!(q.target("chat"), "/v1/chat?a=1&v=2024-01-01%20preview%2Fx%26y");
    }

    #[test]
    fn unreserved_encoding() {
        assert_eq!(encode_unreserved("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode_unreserved("a b+c/d:e?f&g=h%i*j'k"), "a%20b%2Bc%2Fd%3Ae%3Ff%26g%3Dh%25i%2Aj%27k");
        assert_eq!(encode_unreserved("é€\n"), "%C3%A9%E2%82%AC%0A");
        assert_eq!(encode_unreserved("\0\u{7f}"), "%00%7F");
        assert_eq!(encode_unreserved(""), "");
    }
}
