//! Databricks Model Serving (`provider: databricks`, alias `databricks-model-serving`):
//! Databricks' OpenAI-compatible serving endpoints.
//!
//! Config (each may instead come from the environment, as the Databricks SDK does):
//! * `host` — the workspace URL (`DATABRICKS_HOST`; `$NAME` reads another variable);
//!   `https://` is assumed without a scheme;
//! * `token` — a personal access token (secret; `DATABRICKS_TOKEN`), sent as a bearer token;
//! * `client_id` + `client_secret` (secret) — OAuth machine-to-machine for a service principal
//!   (`DATABRICKS_CLIENT_ID`, `DATABRICKS_CLIENT_SECRET`): an access token is obtained from
//!   `POST {host}/oidc/v1/token` (client credentials, scope `all-apis`) and kept in a
//!   [`TokenCache`] (renewed before it expires, by one request at a time);
//! * `databricks_api_base` — overrides the serving base URL.
//!
//! Configuration keys win over the environment; a token and a client id together are an error.
//! The serving base is `{host}/serving-endpoints`, or `{host}/ai-gateway/mlflow/v1` for a Unity
//! Catalog model (a name with at least two dots, `catalog.schema.model`).
//!
//! Chat, chat streaming and embeddings work exactly as for OpenAI (`model` set, usage requested
//! on streams); list-typed message content is flattened to its text parts (`reasoning` parts
//! are dropped), joined with `\n` in answers and concatenated in stream deltas
//! (docs/mlflow-compat.md#mlflow-318-provider-translations). Completions are not served (501).

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::openai_wire::{OPENAI, chat_decoder, embeddings_decoder, passthrough_body, put_reasoning_effort};
use super::token_cache::{Fresh, TokenCache};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, Secret};
use crate::error::{ErrorKind, GatewayError};
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, Upstreams, secret_header};

const DISPLAY: &str = "Databricks";

/// Path of the workspace's OAuth token endpoint.
const TOKEN_PATH: &str = "oidc/v1/token";

/// Lifetime assumed when the token answer has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The `databricks` / `databricks-model-serving` provider.
pub struct Databricks {
    base: BaseUrl,
    auth: Auth,
}

enum Auth {
    /// A bearer header built once (personal access token).
    Static(http::HeaderValue),
    /// OAuth M2M: tokens fetched and cached at request time.
    OAuth(Box<OAuth>),
}

/// One workspace's OAuth client-credentials token source.
struct OAuth {
    /// The prebuilt token request (form body, HTTP Basic client credentials).
    request: UpstreamRequest,
    /// The current `Bearer` header.
    tokens: TokenCache<http::HeaderValue>,
}

/// A string setting from the configuration, else from the environment (empty counts as unset).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_secret(name: &str) -> Option<Secret> {
    env_var(name).map(Secret::new)
}

/// Whether `name` is a Unity Catalog model name (`catalog.schema.model`).
fn is_unity_catalog(name: Option<&str>) -> bool {
    name.is_some_and(|n| n.matches('.').count() >= 2)
}

fn parse_host(cfg: &ConfigMap<'_>, raw: &str) -> Result<BaseUrl, FieldError> {
    // `$NAME` / `${NAME}` read the environment, as secrets do.
    let resolved;
    let raw = if raw.trim().starts_with('$') {
        resolved = crate::config::secret::resolve(raw.trim()).map_err(|m| cfg.error("host", m))?;
        resolved.expose().trim()
    } else {
        raw.trim()
    };
    let url = if raw.contains("://") { raw.to_owned() } else { format!("https://{raw}") };
    BaseUrl::parse(&url).map_err(|m| cfg.error("host", m))
}

impl Databricks {
    /// Build from `model.config` (and the `DATABRICKS_*` environment).
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Databricks, FieldError> {
        let host = match cfg.string("host")? {
            Some(h) => Some(parse_host(cfg, &h)?),
            None => match env_var("DATABRICKS_HOST") {
                Some(h) => Some(parse_host(cfg, &h)?),
                None => None,
            },
        };
        let api_base = cfg.url("databricks_api_base")?;
        let token = cfg.secret("token")?;
        let client_id = cfg.secret("client_id")?;
        let client_secret = cfg.secret("client_secret")?;

        let base = match (api_base, &host) {
            (Some(b), _) => b,
            (None, Some(h)) => {
                h.join(if is_unity_catalog(spec.model_name) { "ai-gateway/mlflow/v1" } else { "serving-endpoints" })
            }
            (None, None) => {
                return Err(cfg.error("host", "Field required: set host (or DATABRICKS_HOST) to the workspace URL"));
            }
        };

        let credentials = match (token, client_id, client_secret) {
            (Some(_), Some(_), _) => {
                return Err(cfg.error("client_id", "set either token or client_id and client_secret, not both"));
            }
            (Some(t), None, _) => Credentials::Token(t),
            (None, Some(id), Some(secret)) => Credentials::Client(id, secret),
            (None, Some(_), None) => return Err(cfg.error("client_secret", "Field required with client_id")),
            (None, None, Some(_)) => return Err(cfg.error("client_id", "Field required with client_secret")),
            (None, None, None) => match (
                env_secret("DATABRICKS_TOKEN"),
                env_secret("DATABRICKS_CLIENT_ID"),
                env_secret("DATABRICKS_CLIENT_SECRET"),
            ) {
                (Some(t), _, _) => Credentials::Token(t),
                (None, Some(id), Some(secret)) => Credentials::Client(id, secret),
                _ => {
                    return Err(cfg.error(
                        "token",
                        "Field required: set token, or client_id and client_secret (or DATABRICKS_TOKEN, or \
                         DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET in the environment)",
                    ));
                }
            },
        };

        let auth = match credentials {
            Credentials::Token(t) => Auth::Static(
                secret_header(&format!("Bearer {}", t.expose()))
                    .ok_or_else(|| cfg.error("token", "the token contains characters not allowed in an HTTP header"))?,
            ),
            Credentials::Client(id, secret) => {
                let Some(host) = host else {
                    return Err(cfg.error("host", "Field required: OAuth (client_id) needs the workspace host"));
                };
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", id.expose(), secret.expose()));
                let basic = secret_header(&format!("Basic {basic}")).ok_or_else(|| {
                    cfg.error("client_id", "the client credentials contain characters not allowed in an HTTP header")
                })?;
                let mut request = UpstreamRequest::post_json(
                    &host,
                    TOKEN_PATH,
                    b"grant_type=client_credentials&scope=all-apis".to_vec(),
                );
                request.headers = vec![
                    (http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded")),
                    (http::header::AUTHORIZATION, basic),
                ];
                Auth::OAuth(Box::new(OAuth { request, tokens: TokenCache::new(DISPLAY, "OAuth token") }))
            }
        };
        Ok(Databricks { base, auth })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        let r = UpstreamRequest::post_json(&self.base, suffix, body);
        match &self.auth {
            Auth::Static(h) => r.header_value(http::header::AUTHORIZATION, h.clone()),
            Auth::OAuth(_) => r,
        }
    }
}

enum Credentials {
    Token(Secret),
    Client(Secret, Secret),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<Value>,
}

/// Read a token endpoint's answer: the bearer header and its lifetime.
fn read_token(status: u16, body: &[u8]) -> Result<Fresh<http::HeaderValue>, GatewayError> {
    if !(200..300).contains(&status) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let what = ["error_description", "message", "error"]
            .iter()
            .find_map(|k| v.get(k).and_then(Value::as_str))
            .unwrap_or("no details");
        return Err(GatewayError::new(
            502,
            ErrorKind::BadGateway,
            format!("Databricks OAuth token request failed with HTTP {status}: {what}"),
        ));
    }
    let answer: TokenAnswer = super::parse_upstream_json(body, "Databricks OAuth")?;
    let lifetime = answer
        .expires_in
        .as_ref()
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
        .map_or(DEFAULT_LIFETIME, Duration::from_secs);
    let header = secret_header(&format!("Bearer {}", answer.access_token))
        .ok_or_else(|| GatewayError::bad_gateway("Databricks OAuth returned an access token unusable in a header"))?;
    Ok(Fresh { value: header, lifetime })
}

impl OAuth {
    /// The current access token, fetched when missing or due (the cache's rules).
    async fn token(&self, http: &Upstreams) -> Result<http::HeaderValue, GatewayError> {
        self.tokens
            .get(http.route_timeout, |timeout| async move {
                let (status, body) = http.fetch(&self.request, timeout).await?;
                read_token(status, &body)
            })
            .await
    }
}

#[async_trait]
impl Provider for Databricks {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(self.request("", Vec::new()))
    }
    fn chat(&self, mut req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        put_reasoning_effort(&mut req);
        let body = passthrough_body(req, Some(call.model()), OPENAI.stream_options)?;
        Ok(Exchange::call(self.request("chat/completions", body), chat_decoder(&OPENAI, stream, call)))
    }

    /// `reasoning.effort` as `reasoning_effort`, which Databricks' chat API documents for its
    /// reasoning models (GPT-5, gpt-oss).
    fn accepts(&self, extension: Extension) -> bool {
        extension == Extension::ReasoningEffort
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = passthrough_body(req, Some(call.model()), false)?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(&OPENAI, call)))
    }

    async fn authorize(&self, req: &mut UpstreamRequest, http: &Upstreams) -> Result<(), GatewayError> {
        if let Auth::OAuth(oauth) = &self.auth {
            let header = oauth.token(http).await?;
            req.headers.retain(|(n, _)| n != http::header::AUTHORIZATION);
            req.headers.push((http::header::AUTHORIZATION, header));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::EndpointType;
    use serde_json::json;

    fn build(model: Option<&'static str>, cfg: Value) -> Result<Databricks, FieldError> {
        let spec = EndpointSpec {
            index: 0,
            name: "d",
            endpoint_type: EndpointType::Chat,
            model_name: model,
            provider_name: ProviderName::Databricks,
        };
        Databricks::from_config(&spec, &mut ConfigMap::new(cfg.as_object().unwrap(), "model.config"))
    }

    fn auth_header(r: &UpstreamRequest) -> Option<&str> {
        r.headers.iter().find(|(n, _)| n == http::header::AUTHORIZATION).and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn token_auth_and_base_paths() {
        let p = build(
            Some("databricks-meta-llama"),
            json!({"host": "https://adb-1.azuredatabricks.net/", "token": "dapi1"}),
        )
        .unwrap();
        let r = p.request("chat/completions", vec![]);
        assert_eq!(r.url(), "https://adb-1.azuredatabricks.net/serving-endpoints/chat/completions");
        assert_eq!(auth_header(&r), Some("Bearer dapi1"));

        // Unity Catalog models go through the AI gateway path; a bare host gets https://.
        let p =
            build(Some("main.default.my_model"), json!({"host": "adb-1.azuredatabricks.net", "token": "t"})).unwrap();
        assert_eq!(
            p.request("embeddings", vec![]).url(),
            "https://adb-1.azuredatabricks.net/ai-gateway/mlflow/v1/embeddings"
        );
        let p = build(Some("a.b"), json!({"host": "http://h:1", "token": "t"})).unwrap();
        let e = build(Some("a.b"), json!({"host": "$AIGW_TEST_UNSET_HOST_VAR", "token": "t"})).err().unwrap();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("model.config.host", "Environment variable 'AIGW_TEST_UNSET_HOST_VAR' is not set")
        );
        assert_eq!(p.request("x", vec![]).url(), "http://h:1/serving-endpoints/x");

        let p = build(Some("m"), json!({"databricks_api_base": "http://proxy/v1", "token": "t"})).unwrap();
        assert_eq!(p.request("chat/completions", vec![]).url(), "http://proxy/v1/chat/completions");
    }

    #[test]
    fn config_errors_name_the_field() {
        // Only meaningful when the test environment has no DATABRICKS_* variables.
        if std::env::vars().any(|(k, _)| k.starts_with("DATABRICKS_")) {
            return;
        }
        let e = build(Some("m"), json!({"token": "t"})).err().unwrap();
        assert_eq!(e.field, "model.config.host");
        let e = build(Some("m"), json!({"host": "https://h"})).err().unwrap();
        assert_eq!(e.field, "model.config.token");
        let e = build(Some("m"), json!({"host": "https://h", "token": "t", "client_id": "c"})).err().unwrap();
        assert_eq!(e.field, "model.config.client_id");
        let e = build(Some("m"), json!({"host": "https://h", "client_id": "c"})).err().unwrap();
        assert_eq!(e.field, "model.config.client_secret");
        let e = build(Some("m"), json!({"databricks_api_base": "http://p", "client_id": "c", "client_secret": "s"}))
            .err()
            .unwrap();
        assert_eq!(e.field, "model.config.host");
        let e = build(Some("m"), json!({"host": "ftp://h", "token": "t"})).err().unwrap();
        assert_eq!(e.field, "model.config.host");
    }

    #[test]
    fn oauth_request_is_prebuilt() {
        let p = build(
            Some("m"),
            json!({"host": "https://h.cloud.databricks.com", "client_id": "id", "client_secret": "sec"}),
        )
        .unwrap();
        let Auth::OAuth(o) = &p.auth else { panic!("OAuth expected") };
        assert_eq!(o.request.url(), "https://h.cloud.databricks.com/oidc/v1/token");
        assert_eq!(&o.request.body[..], b"grant_type=client_credentials&scope=all-apis");
        // base64("id:sec")
        assert_eq!(auth_header(&o.request), Some("Basic aWQ6c2Vj"));
        assert!(o.request.headers.iter().all(|(_, v)| v.to_str().is_ok()));
        // No credential on the prebuilt serving request: authorize adds the token.
        assert_eq!(auth_header(&p.request("chat/completions", vec![])), None);
    }

    #[test]
    fn token_answers() {
        let t = read_token(200, br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#).unwrap();
        assert_eq!(t.value, "Bearer abc");
        assert!(t.value.is_sensitive());
        assert_eq!(t.lifetime, Duration::from_secs(3600));
        // A string lifetime is read too; none means an hour. (When to renew is the cache's.)
        let t = read_token(200, br#"{"access_token":"abc","expires_in":"10"}"#).unwrap();
        assert_eq!(t.lifetime, Duration::from_secs(10));
        let t = read_token(200, br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(t.lifetime, DEFAULT_LIFETIME);
        let e = read_token(401, br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#)
            .err()
            .unwrap();
        assert_eq!(e.status, 502);
        assert_eq!(e.message(), "Databricks OAuth token request failed with HTTP 401: Client authentication failed");
        assert_eq!(read_token(200, b"{}").err().unwrap().status, 502);
    }

    #[test]
    fn unity_catalog_names() {
        assert!(is_unity_catalog(Some("cat.schema.model")));
        assert!(!is_unity_catalog(Some("databricks-dbrx-instruct")));
        assert!(!is_unity_catalog(Some("gpt-4.1")));
        assert!(!is_unity_catalog(None));
    }
}
