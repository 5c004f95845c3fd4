//! Workload identity federation for Vertex AI: `external_account` credentials (what
//! `gcloud iam workload-identity-pools create-cred-config` writes).
//!
//! An access token is made in up to three steps, all within the one time limit the token
//! cache gives the fetch:
//! 1. the **subject token** (the workload's own identity: a Kubernetes service-account token,
//!    an OIDC or SAML token from another cloud) is read from a file (`credential_source.file`)
//!    or fetched with a GET from a URL (`credential_source.url` with its `headers`), as text or
//!    from a field of a JSON document (`credential_source.format`);
//! 2. it is exchanged at Google's STS (`token_url`, RFC 8693 token exchange) for a federated
//!    access token with the cloud-platform scope;
//! 3. with `service_account_impersonation_url`, the federated token buys a service account's
//!    token (IAM Credentials `generateAccessToken`, `lifetime` from
//!    `service_account_impersonation.token_lifetime_seconds`, default 3600 s).
//!
//! Subject tokens from a program (`executable`) and from AWS (`environment_id`) are refused at
//! load. Written here rather than taken from a crate (docs/credentials.md):
//! every call goes through aigw's upstream client like the other Vertex token calls.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

use super::auth::{SCOPE, refusal_detail};
use crate::config::BaseUrl;
use crate::config::url::encode_unreserved;
use crate::error::{ErrorKind, GatewayError};
use crate::providers::token_cache::Fresh;
use crate::upstream::{UpstreamRequest, Upstreams, secret_header};

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime asked of an impersonated token unless the document names one.
const DEFAULT_IMPERSONATION_SECS: u64 = 3600;

/// Parsed `external_account` credentials.
pub(crate) struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: BaseUrl,
    source: Source,
    impersonation: Option<BaseUrl>,
    impersonation_secs: u64,
}

/// Where the subject token comes from.
enum Source {
    File { path: String, format: Format },
    Url { url: BaseUrl, headers: Vec<(http::HeaderName, http::HeaderValue)>, format: Format },
}

/// How the subject token is written.
enum Format {
    Text,
    /// A JSON object; the token is this field.
    Json(String),
}

impl std::fmt::Debug for ExternalAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccount")
            .field("audience", &self.audience)
            .field("token_url", &self.token_url.to_string())
            .field("impersonation", &self.impersonation.as_ref().map(ToString::to_string))
            .finish_non_exhaustive()
    }
}

fn text<'a>(doc: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("'{name}' is not a string")),
    }
}

fn url(value: &str, name: &str) -> Result<BaseUrl, String> {
    BaseUrl::parse(value).map_err(|_| format!("'{name}' is not an http(s) URL"))
}

impl ExternalAccount {
    /// Parse the document (its `type` already checked). Errors name the field, never a value.
    pub(crate) fn from_json(doc: &Map<String, Value>) -> Result<ExternalAccount, String> {
        let required =
            |name: &str| text(doc, name)?.ok_or_else(|| format!("the external_account JSON has no '{name}'"));
        let audience = required("audience")?.to_owned();
        let subject_token_type = required("subject_token_type")?.to_owned();
        let Some(Value::Object(source)) = doc.get("credential_source") else {
            return Err("the external_account JSON has no 'credential_source' object".into());
        };
        if source.contains_key("executable") {
            return Err("'executable' (subject tokens from a program) is not supported; use a 'file' or 'url' \
                        credential_source"
                .into());
        }
        if source.contains_key("environment_id") {
            return Err("'environment_id' (subject tokens from AWS) is not supported; use a 'file' or 'url' \
                        credential_source"
                .into());
        }
        if text(doc, "workforce_pool_user_project")?.is_some() {
            return Err("'workforce_pool_user_project' (workforce identity federation, for people signing \
                        in) is not supported; use a workload identity pool"
                .into());
        }
        let token_url = url(required("token_url")?, "token_url")?;
        let format = match source.get("format") {
            None | Some(Value::Null) => Format::Text,
            Some(Value::Object(f)) => match text(f, "type")? {
                None | Some("text") => Format::Text,
                Some("json") => Format::Json(
                    text(f, "subject_token_field_name")?
                        .ok_or("credential_source.format of type 'json' has no 'subject_token_field_name'")?
                        .to_owned(),
                ),
                Some(_) => return Err("credential_source.format.type must be 'text' or 'json'".into()),
            },
            Some(_) => return Err("credential_source.format is not an object".into()),
        };
        let source = match (text(source, "file")?, text(source, "url")?) {
            (Some(path), None) => Source::File { path: path.to_owned(), format },
            (None, Some(u)) => {
                let mut headers = Vec::new();
                match source.get("headers") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(h)) => {
                        for (name, value) in h {
                            let (Ok(name), Some(value)) =
                                (http::HeaderName::from_bytes(name.as_bytes()), value.as_str().and_then(secret_header))
                            else {
                                return Err(format!("credential_source.headers: '{name}' is not a usable header"));
                            };
                            headers.push((name, value));
                        }
                    }
                    Some(_) => return Err("credential_source.headers is not an object".into()),
                }
                Source::Url { url: url(u, "credential_source.url")?, headers, format }
            }
            (Some(_), Some(_)) => return Err("credential_source has both 'file' and 'url'; give one".into()),
            (None, None) => return Err("credential_source has no 'file' or 'url'".into()),
        };
        let impersonation = text(doc, "service_account_impersonation_url")?
            .map(|u| url(u, "service_account_impersonation_url"))
            .transpose()?;
        let impersonation_secs = match doc.get("service_account_impersonation") {
            Some(Value::Object(o)) => match o.get("token_lifetime_seconds") {
                None | Some(Value::Null) => DEFAULT_IMPERSONATION_SECS,
                Some(v) => crate::config::fields::as_u64(v)
                    .filter(|s| (600..=43_200).contains(s))
                    .ok_or("service_account_impersonation.token_lifetime_seconds must be 600 to 43200")?,
            },
            _ => DEFAULT_IMPERSONATION_SECS,
        };
        Ok(ExternalAccount { audience, subject_token_type, token_url, source, impersonation, impersonation_secs })
    }

    /// For logs (no secrets).
    pub(crate) fn describe(&self) -> String {
        match &self.impersonation {
            Some(_) => format!("workload identity federation ({}) with impersonation", self.audience),
            None => format!("workload identity federation ({})", self.audience),
        }
    }

    /// A new access token: subject token, exchange, impersonation when configured.
    pub(crate) async fn fetch(
        &self,
        http: &Upstreams,
        timeout: Duration,
    ) -> Result<Fresh<http::HeaderValue>, GatewayError> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let subject = self.subject_token(http, left()).await?;
        let (federated, lifetime) = self.exchange(http, &subject, left()).await?;
        let (token, lifetime) = match &self.impersonation {
            None => (federated, lifetime),
            Some(url) => self.impersonate(http, url, &federated, left()).await?,
        };
        let header = secret_header(&format!("Bearer {token}"))
            .ok_or_else(|| GatewayError::bad_gateway("Vertex AI: the access token is not header text"))?;
        Ok(Fresh { value: header, lifetime })
    }

    async fn subject_token(&self, http: &Upstreams, timeout: Duration) -> Result<String, GatewayError> {
        let (raw, format, from) = match &self.source {
            Source::File { path, format } => {
                let raw = tokio::fs::read_to_string(path).await.map_err(|e| {
                    GatewayError::internal(format!("Vertex AI: cannot read the subject token file '{path}': {e}"))
                })?;
                (raw, format, format!("the subject token file '{path}'"))
            }
            Source::Url { url, headers, format } => {
                let req = UpstreamRequest {
                    origin: url.origin.clone(),
                    method: http::Method::GET,
                    target: url.target(""),
                    headers: headers.clone(),
                    body: bytes::Bytes::new(),
                };
                let from = format!("the subject token URL {}", url.origin.authority);
                let (status, body) = http.fetch(&req, timeout).await.map_err(|e| step_failed(&from, e))?;
                if !(200..300).contains(&status) {
                    return Err(GatewayError::bad_gateway(format!("Vertex AI: {from} answered HTTP {status}")));
                }
                (String::from_utf8_lossy(&body).into_owned(), format, from)
            }
        };
        let token = match format {
            Format::Text => raw.trim().to_owned(),
            Format::Json(field) => serde_json::from_str::<Value>(&raw)
                .ok()
                .and_then(|v| v.get(field).and_then(Value::as_str).map(|s| s.trim().to_owned()))
                .ok_or_else(|| {
                    GatewayError::bad_gateway(format!("Vertex AI: {from} holds no JSON string field '{field}'"))
                })?,
        };
        if token.is_empty() {
            return Err(GatewayError::bad_gateway(format!("Vertex AI: {from} holds an empty subject token")));
        }
        Ok(token)
    }

    /// RFC 8693 token exchange at `token_url`: the federated token and its lifetime.
    async fn exchange(
        &self,
        http: &Upstreams,
        subject: &str,
        timeout: Duration,
    ) -> Result<(String, Duration), GatewayError> {
        let body = format!(
            "grant_type={}&audience={}&scope={}&requested_token_type={}&subject_token_type={}&subject_token={}",
            encode_unreserved(TOKEN_EXCHANGE_GRANT),
            encode_unreserved(&self.audience),
            encode_unreserved(SCOPE),
            encode_unreserved(ACCESS_TOKEN_TYPE),
            encode_unreserved(&self.subject_token_type),
            encode_unreserved(subject),
        );
        let req = UpstreamRequest {
            origin: self.token_url.origin.clone(),
            method: http::Method::POST,
            target: self.token_url.target(""),
            headers: vec![(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-www-form-urlencoded"),
            )],
            body: bytes::Bytes::from(body),
        };
        let who = format!("the token endpoint {}", req.origin.authority);
        let (status, body) = http.fetch(&req, timeout).await.map_err(|e| step_failed(&who, e))?;
        if !(200..300).contains(&status) {
            return Err(refused(&who, "the subject token", status, &body));
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|_| unusable(&who, "not JSON"))?;
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unusable(&who, "no access_token"))?;
        let lifetime = answer
            .get("expires_in")
            .and_then(crate::config::fields::as_u64)
            .map_or(Duration::from_secs(DEFAULT_IMPERSONATION_SECS), Duration::from_secs);
        Ok((token.to_owned(), lifetime))
    }

    /// IAM Credentials `generateAccessToken` with the federated token.
    async fn impersonate(
        &self,
        http: &Upstreams,
        url: &BaseUrl,
        federated: &str,
        timeout: Duration,
    ) -> Result<(String, Duration), GatewayError> {
        let body = json!({"scope": [SCOPE], "lifetime": format!("{}s", self.impersonation_secs)});
        let bearer = secret_header(&format!("Bearer {federated}"))
            .ok_or_else(|| GatewayError::bad_gateway("Vertex AI: the federated token is not header text"))?;
        let req = UpstreamRequest::post_json(url, "", body.to_string().into_bytes())
            .header_value(http::header::AUTHORIZATION, bearer);
        let who = format!("the service account impersonation endpoint {}", req.origin.authority);
        let started = SystemTime::now();
        let (status, body) = http.fetch(&req, timeout).await.map_err(|e| step_failed(&who, e))?;
        if !(200..300).contains(&status) {
            return Err(refused(&who, "the federated token", status, &body));
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|_| unusable(&who, "not JSON"))?;
        let token = answer
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unusable(&who, "no accessToken"))?;
        let expires = answer
            .get("expireTime")
            .and_then(Value::as_str)
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| unusable(&who, "no readable expireTime"))?;
        let lifetime = SystemTime::from(expires).duration_since(started).unwrap_or_default();
        Ok((token.to_owned(), lifetime))
    }
}

/// A transport failure of one step, naming the step.
fn step_failed(who: &str, e: GatewayError) -> GatewayError {
    let mut err = GatewayError::new(e.status, e.kind, format!("Vertex AI: cannot reach {who}: {}", e.message()));
    err.code = e.code;
    err
}

/// A refusal: 502 naming the endpoint, what it refused, the status and Google's message.
fn refused(who: &str, what: &str, status: u16, body: &[u8]) -> GatewayError {
    let detail = refusal_detail(body);
    log::warn!("vertex_ai: {who} refused {what} with HTTP {status}: {detail}");
    let mut message = format!("Vertex AI: {who} refused {what} (HTTP {status}");
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    message.push(')');
    GatewayError::new(502, ErrorKind::BadGateway, message)
}

fn unusable(who: &str, why: &str) -> GatewayError {
    GatewayError::bad_gateway(format!("Vertex AI: {who} answered without a usable access token ({why})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<ExternalAccount, String> {
        ExternalAccount::from_json(v.as_object().unwrap())
    }

    fn doc(source: Value) -> Value {
        json!({"type": "external_account", "audience": "//iam.googleapis.com/x", "subject_token_type":
               "urn:ietf:params:oauth:token-type:jwt", "token_url": "https://sts.googleapis.com/v1/token",
               "credential_source": source})
    }

    #[test]
    fn sources_and_formats() {
        let a = parse(doc(json!({"file": "/var/run/token"}))).unwrap();
        assert!(matches!(a.source, Source::File { format: Format::Text, .. }));
        assert!(a.impersonation.is_none());
        assert_eq!(a.impersonation_secs, 3600);
        let a = parse(doc(json!({"url": "http://127.0.0.1:1/t", "headers": {"Metadata": "True"},
                                  "format": {"type": "json", "subject_token_field_name": "access_token"}})))
        .unwrap();
        let Source::Url { headers, format: Format::Json(field), .. } = a.source else { panic!() };
        assert_eq!(field, "access_token");
        assert_eq!(headers[0].0, "metadata");
        assert!(headers[0].1.is_sensitive());
        let mut d = doc(json!({"file": "/t"}));
        d["service_account_impersonation_url"] = json!("https://iam/x:generateAccessToken");
        d["service_account_impersonation"] = json!({"token_lifetime_seconds": 1200});
        let a = parse(d).unwrap();
        assert!(a.impersonation.is_some());
        assert_eq!(a.impersonation_secs, 1200);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = |v: Value| parse(v).unwrap_err();
        assert!(e(doc(json!({"executable": {"command": "x"}}))).contains("'executable'"));
        assert!(e(doc(json!({"environment_id": "aws1"}))).contains("'environment_id'"));
        assert!(e(doc(json!({}))).contains("no 'file' or 'url'"));
        assert!(e(doc(json!({"file": "/a", "url": "http://b"}))).contains("both"));
        assert!(e(doc(json!({"file": "/a", "format": {"type": "json"}}))).contains("subject_token_field_name"));
        assert!(e(doc(json!({"url": "ftp://x"}))).contains("credential_source.url"));
        let mut d = doc(json!({"file": "/a"}));
        d.as_object_mut().unwrap().remove("audience");
        assert!(e(d).contains("'audience'"));
        let mut d = doc(json!({"file": "/a"}));
        d["workforce_pool_user_project"] = json!("p");
        assert!(e(d).contains("'workforce_pool_user_project'"));
        let mut d = doc(json!({"file": "/a"}));
        d["service_account_impersonation"] = json!({"token_lifetime_seconds": 5});
        assert!(e(d).contains("token_lifetime_seconds"));
    }
}
