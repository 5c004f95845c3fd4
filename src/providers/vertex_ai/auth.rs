//! Google OAuth 2.0 access tokens for Vertex AI: where the credentials come from and how a token
//! is obtained; each endpoint keeps its token in a [`TokenCache`] (renewed ahead of its
//! expiry, one fetch at a time).
//!
//! Credential sources, in order:
//! 1. `vertex_credentials` (a service-account JSON document, or the path of a file holding one;
//!    `$VAR` / `${VAR}` resolved first). An `authorized_user` document (what
//!    `gcloud auth application-default login` writes) is accepted too.
//! 2. Application Default Credentials: the JSON file named by `GOOGLE_APPLICATION_CREDENTIALS`,
//!    else gcloud's well-known file (`$CLOUDSDK_CONFIG/application_default_credentials.json`,
//!    default `~/.config/gcloud/…`), else the metadata server of the Google Cloud machine the
//!    gateway runs on (`GCE_METADATA_HOST`, default `metadata.google.internal`).
//!
//! Token requests:
//! * service account: the OAuth 2.0 JWT bearer grant — an RS256-signed JWT (`iss` = client
//!   email, `scope` = cloud-platform, `aud` = token URI, one hour) POSTed to `token_uri`;
//! * authorized user: the refresh-token grant POSTed to `token_uri`;
//! * metadata server: `GET /computeMetadata/v1/instance/service-accounts/default/token`;
//! * external account (workload identity federation, from either source above): a subject
//!   token exchanged at Google's STS, then optionally a service account impersonated
//!   ([`super::external_account`]).
//!
//! Files are read and keys parsed when the configuration loads, so a broken credential is a
//! configuration error naming `vertex_credentials`; no message ever contains key material.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use serde_json::{Value, json};

use super::external_account::ExternalAccount;
use crate::config::BaseUrl;
use crate::config::Secret;
use crate::config::url::encode_unreserved;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::token_cache::{Fresh, TokenCache};
use crate::upstream::{UpstreamRequest, Upstreams, secret_header};

/// The OAuth scope Vertex AI needs.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Google's token endpoint, for credentials that do not name one.
pub(crate) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Default metadata server host (override: `GCE_METADATA_HOST`).
const METADATA_HOST: &str = "metadata.google.internal";

/// Lifetime asked for in a service-account JWT (Google's maximum).
const JWT_LIFETIME_SECS: u64 = 3600;

/// How the gateway obtains access tokens for one endpoint.
pub(crate) enum Credentials {
    /// A service-account key: self-signed JWT exchanged at `token_uri`.
    ServiceAccount(Box<ServiceAccount>),
    /// A user's OAuth client and refresh token (gcloud application-default login).
    AuthorizedUser(AuthorizedUser),
    /// The metadata server of a Google Cloud machine.
    Metadata(BaseUrl),
    /// Workload identity federation: a subject token exchanged at Google's STS.
    External(Box<ExternalAccount>),
}

/// A parsed service-account key.
pub(crate) struct ServiceAccount {
    client_email: String,
    key_id: Option<String>,
    key: RsaKeyPair,
    token_uri: String,
    token_url: BaseUrl,
}

/// A parsed `authorized_user` document.
pub(crate) struct AuthorizedUser {
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_url: BaseUrl,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("client_email", &sa.client_email)
                .field("token_uri", &sa.token_uri)
                .finish_non_exhaustive(),
            Credentials::AuthorizedUser(u) => f
                .debug_struct("AuthorizedUser")
                .field("client_id", &u.client_id)
                .field("token_uri", &u.token_url.to_string())
                .finish_non_exhaustive(),
            Credentials::Metadata(base) => f.debug_tuple("Metadata").field(&base.to_string()).finish(),
            Credentials::External(a) => a.fmt(f),
        }
    }
}

impl Credentials {
    /// Parse a credentials JSON document (`service_account`, `authorized_user` or `external_account`). Errors
    /// name what is missing or malformed, never a value.
    pub(crate) fn from_json(text: &str) -> Result<Credentials, String> {
        let doc: Value = serde_json::from_str(text.trim()).map_err(|e| format!("it is not valid JSON ({e})"))?;
        let Value::Object(doc) = doc else {
            return Err("it is not a JSON object".into());
        };
        let field = |name: &str| -> Result<Option<&str>, String> {
            match doc.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("'{name}' is not a string")),
            }
        };
        let required = |name: &str| -> Result<&str, String> {
            field(name)?.ok_or_else(|| format!("the credentials JSON has no '{name}'"))
        };
        let token_url = |uri: &str| BaseUrl::parse(uri).map_err(|_| "'token_uri' is not an http(s) URL".to_owned());
        let kind = field("type")?;
        match kind {
            Some("service_account") | None => {
                let client_email = required("client_email")?.to_owned();
                let key = parse_private_key(required("private_key")?)?;
                let token_uri = field("token_uri")?.unwrap_or(DEFAULT_TOKEN_URI).to_owned();
                let token_url = token_url(&token_uri)?;
                let key_id = field("private_key_id")?.map(str::to_owned);
                Ok(Credentials::ServiceAccount(Box::new(ServiceAccount {
                    client_email,
                    key_id,
                    key,
                    token_uri,
                    token_url,
                })))
            }
            Some("authorized_user") => {
                let client_id = required("client_id")?.to_owned();
                let client_secret = Secret::new(required("client_secret")?);
                let refresh_token = Secret::new(required("refresh_token")?);
                let token_url = token_url(field("token_uri")?.unwrap_or(DEFAULT_TOKEN_URI))?;
                Ok(Credentials::AuthorizedUser(AuthorizedUser { client_id, client_secret, refresh_token, token_url }))
            }
            Some("external_account") => Ok(Credentials::External(Box::new(ExternalAccount::from_json(&doc)?))),
            Some(other) => Err(format!(
                "credentials of type '{}' are not supported (use a 'service_account', 'authorized_user' or \
                 'external_account' JSON)",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    /// Application Default Credentials, looked up in the environment through `env`:
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, else the metadata server.
    pub(crate) fn application_default(env: impl Fn(&str) -> Option<String>) -> Result<Credentials, String> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("not set, and GOOGLE_APPLICATION_CREDENTIALS names '{path}', which cannot be read: {e}")
            })?;
            return Credentials::from_json(&text).map_err(|m| {
                format!("not set, and the file GOOGLE_APPLICATION_CREDENTIALS names ('{path}') is unusable: {m}")
            });
        }
        let well_known = match var("CLOUDSDK_CONFIG") {
            Some(dir) => Some(std::path::PathBuf::from(dir)),
            None => var("HOME").map(|h| std::path::Path::new(&h).join(".config").join("gcloud")),
        }
        .map(|dir| dir.join("application_default_credentials.json"));
        if let Some(path) = well_known.filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("not set, and gcloud's '{}' cannot be read: {e}", path.display()))?;
            return Credentials::from_json(&text)
                .map_err(|m| format!("not set, and gcloud's '{}' is unusable: {m}", path.display()));
        }
        let host = var("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_owned());
        BaseUrl::parse(&format!("http://{}", host.trim()))
            .map(Credentials::Metadata)
            .map_err(|_| "not set, and GCE_METADATA_HOST is not a usable host[:port]".to_owned())
    }

    /// A short description for logs (no secrets).
    pub(crate) fn describe(&self) -> String {
        match self {
            Credentials::ServiceAccount(sa) => format!("service account {}", sa.client_email),
            Credentials::AuthorizedUser(_) => "authorized user credentials".to_owned(),
            Credentials::Metadata(base) => format!("the metadata server at {}", base.origin.authority),
            Credentials::External(a) => a.describe(),
        }
    }

    /// The HTTP request that asks for a new access token.
    fn token_request(&self) -> Result<UpstreamRequest, GatewayError> {
        match self {
            Credentials::ServiceAccount(sa) => {
                let assertion = sa.assertion(crate::providers::now_secs())?;
                let body =
                    format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
                Ok(form_post(&sa.token_url, body))
            }
            Credentials::AuthorizedUser(u) => {
                let body = format!(
                    "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
                    encode_unreserved(&u.client_id),
                    encode_unreserved(u.client_secret.expose()),
                    encode_unreserved(u.refresh_token.expose()),
                );
                Ok(form_post(&u.token_url, body))
            }
            Credentials::External(_) => {
                Err(GatewayError::internal("Vertex AI: federated credentials make their own token requests"))
            }
            Credentials::Metadata(base) => {
                let target = base.target_with_query(
                    "computeMetadata/v1/instance/service-accounts/default/token",
                    Some(&format!("scopes={}", encode_unreserved(SCOPE))),
                );
                Ok(UpstreamRequest {
                    origin: base.origin.clone(),
                    method: http::Method::GET,
                    target,
                    headers: vec![(
                        http::HeaderName::from_static("metadata-flavor"),
                        http::HeaderValue::from_static("Google"),
                    )],
                    body: bytes::Bytes::new(),
                })
            }
        }
    }
}

impl ServiceAccount {
    /// The signed JWT for the bearer grant, issued at `iat` (Unix seconds).
    fn assertion(&self, iat: u64) -> Result<String, GatewayError> {
        let header = match &self.key_id {
            Some(kid) => json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            None => json!({"alg": "RS256", "typ": "JWT"}),
        };
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + JWT_LIFETIME_SECS,
        });
        let mut jwt = String::with_capacity(1024);
        jwt.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), jwt.as_bytes(), &mut signature)
            .map_err(|_| GatewayError::internal("Vertex AI: cannot sign the service-account token request"))?;
        jwt.push('.');
        jwt.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        Ok(jwt)
    }
}

fn form_post(url: &BaseUrl, body: String) -> UpstreamRequest {
    UpstreamRequest {
        origin: url.origin.clone(),
        method: http::Method::POST,
        target: url.target(""),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        )],
        body: bytes::Bytes::from(body),
    }
}

/// An RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`). Literal `\n` sequences (a key pasted through one more layer of
/// escaping) count as line breaks.
fn parse_private_key(pem: &str) -> Result<RsaKeyPair, String> {
    let pem = pem.replace("\\n", "\n");
    let bad = |why: &str| format!("'private_key' is not a usable RSA private key: {why}");
    for (label, pkcs8) in [("PRIVATE KEY", true), ("RSA PRIVATE KEY", false)] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = pem.find(&begin) else { continue };
        let body = &pem[start + begin.len()..];
        let Some(stop) = body.find(&end) else {
            return Err(bad("the PEM block has no END line"));
        };
        let b64: String = body[..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD.decode(b64.as_bytes()).map_err(|_| bad("the PEM block is not valid base64"))?;
        let key = if pkcs8 { RsaKeyPair::from_pkcs8(&der) } else { RsaKeyPair::from_der(&der) };
        return key.map_err(|e| bad(&e.to_string()));
    }
    Err(bad("no '-----BEGIN PRIVATE KEY-----' block"))
}

// ---- tokens ----

/// Access tokens for one endpoint, kept in a [`TokenCache`] (its rules: served without a lock
/// while fresh, renewed early by one call at a time, the current token served while still
/// usable when a renewal fails).
pub(crate) struct TokenSource {
    credentials: Credentials,
    tokens: TokenCache<http::HeaderValue>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource").field("credentials", &self.credentials).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<Value>,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<Value>,
    error_description: Option<String>,
}

impl TokenSource {
    /// A cache with no token yet.
    pub(crate) fn new(credentials: Credentials) -> Self {
        TokenSource { credentials, tokens: TokenCache::new("vertex_ai", "token") }
    }

    /// `Authorization` header value with a valid token, fetching one when needed.
    pub(crate) async fn bearer(&self, http: &Upstreams) -> Result<http::HeaderValue, GatewayError> {
        self.tokens.get(http.route_timeout, |timeout| self.fetch(http, timeout)).await
    }

    async fn fetch(&self, http: &Upstreams, timeout: Duration) -> Result<Fresh<http::HeaderValue>, GatewayError> {
        if let Credentials::External(account) = &self.credentials {
            let fresh = account.fetch(http, timeout).await?;
            log::debug!("vertex_ai: new access token for {}, valid {} s", account.describe(), fresh.lifetime.as_secs());
            return Ok(fresh);
        }
        let req = self.credentials.token_request()?;
        let (status, body) = http.fetch(&req, timeout).await.map_err(|e| {
            let mut err = GatewayError::new(
                e.status,
                e.kind,
                format!("Vertex AI: cannot get an access token from {}: {}", req.origin.authority, e.message()),
            );
            err.code = e.code;
            err
        })?;
        if !(200..300).contains(&status) {
            return Err(token_refused(&self.credentials, &req, status, &body));
        }
        let unusable = |why: &str| {
            GatewayError::bad_gateway(format!(
                "Vertex AI: the token endpoint {} answered without a usable access token ({why})",
                req.origin.authority
            ))
        };
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| unusable("not JSON"))?;
        let token = answer.access_token.filter(|t| !t.is_empty()).ok_or_else(|| unusable("no access_token"))?;
        let header = secret_header(&format!("Bearer {token}")).ok_or_else(|| unusable("not header text"))?;
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(crate::config::fields::as_u64)
            .map_or(Duration::from_secs(JWT_LIFETIME_SECS), Duration::from_secs);
        log::debug!("vertex_ai: new access token for {}, valid {} s", self.credentials.describe(), lifetime.as_secs());
        Ok(Fresh { value: header, lifetime })
    }
}

/// A token endpoint's refusal as a 502 whose message carries the OAuth error code and
/// description (never the request, which holds the signed assertion or the refresh token).
fn token_refused(credentials: &Credentials, req: &UpstreamRequest, status: u16, body: &[u8]) -> GatewayError {
    let detail = refusal_detail(body);
    log::warn!(
        "vertex_ai: the token endpoint {} refused {} with HTTP {status}: {detail}",
        req.origin.authority,
        credentials.describe()
    );
    let mut message =
        format!("Vertex AI: the token endpoint {} refused the credentials (HTTP {status}", req.origin.authority);
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    message.push(')');
    GatewayError::new(502, ErrorKind::BadGateway, message)
}

/// The error code and description of a token endpoint's refusal (OAuth's `error` and
/// `error_description`, or Google's API error `{"error": {"message"}}`), at most 300
/// characters; empty when the body says neither.
pub(super) fn refusal_detail(body: &[u8]) -> String {
    let detail = serde_json::from_slice::<TokenError>(body)
        .ok()
        .map(|e| {
            let code = match e.error {
                Some(Value::String(s)) => Some(s),
                // The metadata server and some proxies answer Google's API error shape.
                Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            };
            match (code, e.error_description) {
                (Some(c), Some(d)) => format!("{c}: {d}"),
                (Some(c), None) => c,
                (None, Some(d)) => d,
                (None, None) => String::new(),
            }
        })
        .unwrap_or_default();
    detail.chars().take(300).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The test-only private key (PKCS#8 PEM), generated with openssl for these tests.
    pub(crate) const TEST_KEY: &str = include_str!("testdata/test-only-rsa-key.pem");
    const TEST_PUBLIC_KEY: &str = include_str!("testdata/test-only-rsa-key.pub.pem");

    pub(crate) fn service_account_json(token_uri: Option<&str>) -> String {
        let mut doc = json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "kid-123",
            "private_key": TEST_KEY,
            "client_email": "gw@test-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
        });
        if let Some(uri) = token_uri {
            doc["token_uri"] = json!(uri);
        }
        doc.to_string()
    }

    fn public_key_der() -> Vec<u8> {
        let b64: String = TEST_PUBLIC_KEY
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        STANDARD.decode(b64).unwrap()
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn service_account_jwt_is_signed_rs256() {
        let Credentials::ServiceAccount(sa) = Credentials::from_json(&service_account_json(None)).unwrap() else {
            panic!("service account expected");
        };
        let jwt = sa.assertion(1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(decode_part(parts[0]), json!({"alg": "RS256", "typ": "JWT", "kid": "kid-123"}));
        assert_eq!(
            decode_part(parts[1]),
            json!({"iss": "gw@test-project.iam.gserviceaccount.com", "scope": SCOPE,
                   "aud": DEFAULT_TOKEN_URI, "iat": 1_700_000_000u64, "exp": 1_700_003_600u64})
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public_key_der());
        public.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).expect("valid signature");
        // A tampered payload fails verification.
        assert!(public.verify(format!("{}.{}x", parts[0], parts[1]).as_bytes(), &signature).is_err());
    }

    #[test]
    fn token_requests() {
        let creds = Credentials::from_json(&service_account_json(Some("http://127.0.0.1:9/oauth/token"))).unwrap();
        let req = creds.token_request().unwrap();
        assert_eq!(req.url(), "http://127.0.0.1:9/oauth/token");
        assert_eq!(req.method, http::Method::POST);
        let body = std::str::from_utf8(&req.body).unwrap();
        let assertion = body
            .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
            .expect("jwt-bearer grant");
        assert_eq!(decode_part(assertion.split('.').nth(1).unwrap())["aud"], json!("http://127.0.0.1:9/oauth/token"));
        assert!(req.headers.iter().any(|(k, v)| k == "content-type" && v == "application/x-www-form-urlencoded"));

        let user = json!({"type": "authorized_user", "client_id": "cid.apps", "client_secret": "s/ecret",
                          "refresh_token": "1//rt+x"});
        let req = Credentials::from_json(&user.to_string()).unwrap().token_request().unwrap();
        assert_eq!(req.url(), DEFAULT_TOKEN_URI);
        assert_eq!(
            std::str::from_utf8(&req.body).unwrap(),
            "grant_type=refresh_token&client_id=cid.apps&client_secret=s%2Fecret&refresh_token=1%2F%2Frt%2Bx"
        );

        let md =
            Credentials::application_default(|k| (k == "GCE_METADATA_HOST").then(|| "127.0.0.1:8999".into())).unwrap();
        let req = md.token_request().unwrap();
        assert_eq!(req.method, http::Method::GET);
        assert_eq!(
            req.url(),
            "http://127.0.0.1:8999/computeMetadata/v1/instance/service-accounts/default/token\
             ?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
        );
        assert!(req.headers.iter().any(|(k, v)| k == "metadata-flavor" && v == "Google"));
    }

    #[test]
    fn credential_errors_never_show_key_material() {
        let cases = [
            ("not json", "not valid JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"type":"service_account","private_key":"x"}"#, "no 'client_email'"),
            (r#"{"type":"service_account","client_email":"a@b"}"#, "no 'private_key'"),
            (r#"{"type":"external_account"}"#, "the external_account JSON has no 'audience'"),
            (r#"{"type":"identity_pool_user"}"#, "'identity_pool_user' are not supported"),
            (r#"{"type":"authorized_user","client_id":"c","client_secret":"s"}"#, "no 'refresh_token'"),
        ];
        for (doc, want) in cases {
            let err = Credentials::from_json(doc).unwrap_err();
            assert!(err.contains(want), "{doc}: {err}");
        }
        let secret_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAAS";
        let doc = json!({"type": "service_account", "client_email": "a@b",
                         "private_key": format!("-----BEGIN PRIVATE KEY-----\n{secret_body}\n-----END PRIVATE KEY-----\n")});
        let err = Credentials::from_json(&doc.to_string()).unwrap_err();
        assert!(err.starts_with("'private_key' is not a usable RSA private key"), "{err}");
        assert!(!err.contains(secret_body), "{err}");
        let doc = json!({"client_email": "a@b", "private_key": "sk-not-a-pem"});
        let err = Credentials::from_json(&doc.to_string()).unwrap_err();
        assert!(err.contains("no '-----BEGIN PRIVATE KEY-----' block") && !err.contains("sk-not-a-pem"), "{err}");
        let mut doc: Value = serde_json::from_str(&service_account_json(Some("ftp://x"))).unwrap();
        let err = Credentials::from_json(&doc.to_string()).unwrap_err();
        assert!(err.contains("'token_uri'"), "{err}");
        // A key pasted with escaped line breaks still parses; no `type` means service account.
        doc["token_uri"] = Value::Null;
        doc["private_key"] = json!(TEST_KEY.replace('\n', "\\n"));
        doc.as_object_mut().unwrap().remove("type");
        assert!(matches!(Credentials::from_json(&doc.to_string()), Ok(Credentials::ServiceAccount(_))));
        // Debug output names the account, not the key.
        let creds = Credentials::from_json(&service_account_json(None)).unwrap();
        let shown = format!("{creds:?}");
        assert!(shown.contains("gw@test-project") && !shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn application_default_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa.json");
        std::fs::write(&sa, service_account_json(None)).unwrap();
        let sa_path = sa.to_str().unwrap().to_owned();
        let env = |k: &str| (k == "GOOGLE_APPLICATION_CREDENTIALS").then(|| sa_path.clone());
        assert!(matches!(Credentials::application_default(env), Ok(Credentials::ServiceAccount(_))));

        let err = Credentials::application_default(|k| {
            (k == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/no/such/file.json".into())
        })
        .unwrap_err();
        assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS names '/no/such/file.json'"), "{err}");

        // gcloud's well-known file under CLOUDSDK_CONFIG (or ~/.config/gcloud).
        let gcloud = dir.path().join("gcloud");
        std::fs::create_dir(&gcloud).unwrap();
        std::fs::write(
            gcloud.join("application_default_credentials.json"),
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
        )
        .unwrap();
        let cfg = gcloud.to_str().unwrap().to_owned();
        let found = Credentials::application_default(|k| (k == "CLOUDSDK_CONFIG").then(|| cfg.clone())).unwrap();
        assert!(matches!(found, Credentials::AuthorizedUser(_)));
        let home = dir.path().to_str().unwrap().to_owned();
        let found = Credentials::application_default(|k| (k == "HOME").then(|| home.clone())).unwrap();
        assert!(matches!(found, Credentials::Metadata(_)), "no ~/.config/gcloud file there");

        let none = Credentials::application_default(|_| None).unwrap();
        assert_eq!(none.describe(), "the metadata server at metadata.google.internal");
    }

    #[test]
    fn refusals_carry_the_oauth_error_only() {
        let creds = Credentials::from_json(&service_account_json(None)).unwrap();
        let req = creds.token_request().unwrap();
        let e = token_refused(
            &creds,
            &req,
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        assert_eq!(e.status, 502);
        assert_eq!(
            e.message(),
            "Vertex AI: the token endpoint oauth2.googleapis.com refused the credentials \
             (HTTP 400: invalid_grant: Invalid JWT Signature.)"
        );
        let e = token_refused(&creds, &req, 503, b"<html>down</html>");
        assert_eq!(
            e.message(),
            "Vertex AI: the token endpoint oauth2.googleapis.com refused the credentials (HTTP 503)"
        );
    }
}
