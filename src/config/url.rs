//! Provider base URLs as configured (`openai_api_base`, `api_base`, …): parsed once at load,
//! split into an origin (what a connection is made to) and a path prefix (what requests are
//! joined onto).

use std::fmt;
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;

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
