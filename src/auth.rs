//! Client authentication and authorization with gateway API keys (`aigw.auth.keys`).
//!
//! A client presents its key as `Authorization: Bearer <key>` (the OpenAI SDKs), `x-api-key`
//! (Anthropic style), `api-key` (Azure style), `x-goog-api-key` (the google-genai SDK), or as
//! the password of HTTP Basic; on Gemini's routes also as the URL's `?key=` (how Google's API
//! keys travel in URLs; `server::dispatch` reads it and calls [`authenticate_key`])
//! (`mlflow.deployments` sends `MLFLOW_TRACKING_USERNAME`/`PASSWORD` that way; a
//! `MLFLOW_TRACKING_TOKEN` arrives as a bearer token). The key's SHA-256 is compared, in
//! constant time, with every configured digest; only the matching key's *name* is kept for
//! authorization, limits, audit and metrics.
//!
//! These headers never travel upstream: provider credentials come from the configuration only.

use base64::Engine;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::config::settings::sha256;
use crate::config::{ApiKey, AuthSettings};
use crate::error::{ErrorKind, GatewayError};

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No key was presented.
    Missing,
    /// The key matches no configured key.
    Invalid,
}

impl Rejection {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing_key",
            Rejection::Invalid => "invalid_key",
        }
    }

    /// The 401 answer.
    pub fn error(self) -> GatewayError {
        let message = match self {
            Rejection::Missing => {
                "Missing API key: send it as 'Authorization: Bearer <key>', 'x-api-key', 'api-key' or 'x-goog-api-key'"
            }
            Rejection::Invalid => "Incorrect API key provided",
        };
        GatewayError::new(401, ErrorKind::Unauthorized, message)
            .with_code("invalid_api_key")
            .with_header("www-authenticate", "Bearer realm=\"aigw\"")
    }
}

/// The key the client presented, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let v = v.as_bytes();
        let (scheme, rest) = match v.iter().position(|b| *b == b' ') {
            Some(i) => (&v[..i], trim(&v[i + 1..])),
            None => (v, &b""[..]),
        };
        if scheme.eq_ignore_ascii_case(b"bearer") && !rest.is_empty() {
            return Some(rest.to_vec());
        }
        if scheme.eq_ignore_ascii_case(b"basic") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let (user, pass) = match decoded.iter().position(|b| *b == b':') {
                Some(i) => (decoded[..i].to_vec(), decoded[i + 1..].to_vec()),
                None => (decoded.clone(), Vec::new()),
            };
            return Some(if pass.is_empty() { user } else { pass });
        }
    }
    for name in ["x-api-key", "api-key", "x-goog-api-key"] {
        if let Some(v) = headers.get(name) {
            let v = trim(v.as_bytes());
            if !v.is_empty() {
                return Some(v.to_vec());
            }
        }
    }
    None
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// Equality of two digests in time independent of their content.
fn equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    bool::from(a[..].ct_eq(&b[..]))
}

/// Authenticate a request: `Ok(None)` when authentication is off (no keys configured),
/// `Ok(Some(key))` for a valid key.
pub fn authenticate<'a>(auth: &'a AuthSettings, headers: &HeaderMap) -> Result<Option<&'a ApiKey>, Rejection> {
    authenticate_key(auth, presented_key(headers))
}

/// Authenticate the key a request `presented` (from its headers, [`presented_key`], or, on
/// Gemini's routes, its query): as [`authenticate`].
pub fn authenticate_key(auth: &AuthSettings, presented: Option<Vec<u8>>) -> Result<Option<&ApiKey>, Rejection> {
    if auth.keys.is_empty() {
        return Ok(None);
    }
    let presented = presented.ok_or(Rejection::Missing)?;
    let digest = sha256(&presented);
    // Compare with every key, without stopping at a match.
    let mut found = None;
    for key in &auth.keys {
        if equal(&key.digest, &digest) {
            found = Some(key);
        }
    }
    found.map(Some).ok_or(Rejection::Invalid)
}

/// The 403 for a key that may not use `target`.
pub fn forbidden(key: &str, target: &str) -> GatewayError {
    GatewayError::new(403, ErrorKind::Forbidden, format!("API key '{key}' may not use '{target}'"))
        .with_code("permission_denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AuthSettings {
        AuthSettings {
            keys: vec![
                ApiKey { name: "a".into(), digest: sha256(b"key-a-0123456789"), endpoints: None },
                ApiKey { name: "b".into(), digest: sha256(b"key-b-0123456789"), endpoints: Some(vec!["chat".into()]) },
            ],
            allow_unauthenticated: false,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn every_header_form() {
        let s = settings();
        let name = |h: &HeaderMap| authenticate(&s, h).map(|k| k.map(|k| k.name.clone()));
        assert_eq!(name(&headers(&[("authorization", "Bearer key-a-0123456789")])), Ok(Some("a".into())));
        assert_eq!(name(&headers(&[("authorization", "bearer   key-b-0123456789 ")])), Ok(Some("b".into())));
        assert_eq!(name(&headers(&[("x-api-key", "key-b-0123456789")])), Ok(Some("b".into())));
        assert_eq!(name(&headers(&[("api-key", "key-a-0123456789")])), Ok(Some("a".into())));
        assert_eq!(name(&headers(&[("x-goog-api-key", "key-b-0123456789")])), Ok(Some("b".into())));
        let by_key =
            authenticate_key(&settings(), Some(b"key-a-0123456789".to_vec())).map(|k| k.map(|k| k.name.clone()));
        assert_eq!(by_key, Ok(Some("a".into())));
        assert_eq!(authenticate_key(&settings(), None), Err(Rejection::Missing));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:key-a-0123456789");
        assert_eq!(name(&headers(&[("authorization", &format!("Basic {basic}"))])), Ok(Some("a".into())));
        assert_eq!(name(&headers(&[])), Err(Rejection::Missing));
        assert_eq!(name(&headers(&[("authorization", "Bearer nope")])), Err(Rejection::Invalid));
        assert_eq!(name(&headers(&[("authorization", "Token key-a-0123456789")])), Err(Rejection::Missing));
        // Off when no keys are configured.
        assert_eq!(authenticate(&AuthSettings::default(), &headers(&[])), Ok(None));
    }

    #[test]
    fn digests_compare_by_content() {
        let a = sha256(b"key-a-0123456789");
        assert!(equal(&a, &sha256(b"key-a-0123456789")));
        assert!(!equal(&a, &sha256(b"key-b-0123456789")));
        for i in [0, 15, 31] {
            let mut b = a;
            b[i] ^= 1;
            assert!(!equal(&a, &b), "byte {i}");
        }
    }

    #[test]
    fn errors_never_echo_the_key() {
        let e = Rejection::Invalid.error();
        assert_eq!(e.status, 401);
        assert!(!e.message().contains("nope"));
        assert_eq!(forbidden("b", "emb").status, 403);
    }
}
