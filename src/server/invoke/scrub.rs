//! Secrets out of error messages. An upstream error may echo a credential (a key in a URL, a
//! token in a message): before an error is sent, every configured secret and every credential
//! the request carried upstream is replaced with `***`.

use serde_json::Value;

use crate::config::GatewayConfig;
use crate::error::{Detail, GatewayError};

/// Headers whose values are credentials (after an auth scheme such as `Bearer`).
const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "x-api-key", "api-key", "x-goog-api-key", "x-portkey-api-key", "x-amz-security-token"];

/// A header of the request as it was sent upstream.
pub type SentHeader = (http::HeaderName, http::HeaderValue);

/// What an error must not contain: the configuration's secrets and the credentials one
/// upstream request carried (obtained at run time, such as OAuth access tokens and STS session
/// tokens, so the configuration does not know them).
pub struct Scrubber<'a> {
    config: &'a GatewayConfig,
    /// Headers of the request as sent (only the headers: the body may be megabytes).
    sent: Vec<SentHeader>,
}

impl<'a> Scrubber<'a> {
    /// Scrub the configuration's secrets only (nothing was sent yet).
    pub fn new(config: &'a GatewayConfig) -> Self {
        Scrubber { config, sent: Vec::new() }
    }

    /// Also scrub the credentials of a request that was sent with `headers`.
    pub fn with_sent(config: &'a GatewayConfig, headers: Vec<SentHeader>) -> Self {
        Scrubber { config, sent: headers }
    }

    /// The headers of the request as sent.
    pub fn into_sent(self) -> Vec<SentHeader> {
        self.sent
    }

    /// `e` without any secret in its message or detail.
    pub fn clean(&self, e: GatewayError) -> GatewayError {
        let e = rewrite_detail(e, |text| self.config.redact(text));
        scrub_sent(e, &self.sent)
    }
}

/// Remove the credentials `sent` carried from an error's text.
pub fn scrub_sent(e: GatewayError, sent: &[SentHeader]) -> GatewayError {
    let secrets: Vec<&str> = sent
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn credentials_sent_upstream_are_scrubbed() {
        let sent = vec![
            (http::header::AUTHORIZATION, http::HeaderValue::from_static("Bearer ya29.secret-token-value")),
            (http::HeaderName::from_static("x-other"), http::HeaderValue::from_static("visible-value-1234")),
        ];
        let e = GatewayError::new(401, ErrorKind::Upstream, "bad token ya29.secret-token-value, visible-value-1234");
        let e = scrub_sent(e, &sent);
        assert_eq!(e.message(), "bad token ***, visible-value-1234");
        let sigv4 =
            vec![(http::header::AUTHORIZATION, http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"))];
        let e = scrub_sent(GatewayError::bad_gateway("AWS4-HMAC-SHA256 Credential=x"), &sigv4);
        assert_eq!(e.message(), "AWS4-HMAC-SHA256 Credential=x", "a signature is not a secret");
    }
}
