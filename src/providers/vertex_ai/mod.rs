//! Google Vertex AI (`provider: vertex_ai`), with an OAuth 2.0 access token per endpoint
//! (see [`auth`]: service-account JSON, `authorized_user` JSON or Application Default
//! Credentials; cached and renewed before it expires).
//!
//! `model.name` picks the API (docs/mlflow-compat.md#provider-translations):
//!
//! | model name | API | URL under `https://{host}/v1/projects/{p}/locations/{l}` |
//! |---|---|---|
//! | `claude*` | Anthropic Messages | `/publishers/anthropic/models/{m}:rawPredict` (`:streamRawPredict`) |
//! | contains `/`, starts with `mistral`, `codestral` or `jamba`, or ends with `-maas` | OpenAI chat | `/endpoints/openapi/chat/completions` |
//! | anything else | Gemini | `/publishers/google/models/{m}:generateContent` (`:streamGenerateContent?alt=sse`, `:embedContent`) |
//!
//! * Gemini: chat, completions (both streamed too) and embeddings; the body is the `gemini`
//!   provider's with the `id` of `functionCall` / `functionResponse` parts left out (Vertex
//!   refuses them); answers through the `gemini` decoders. Vertex has no
//!   `:batchEmbedContents`, so several inputs become one `:embedContent` call each, made
//!   concurrently (MLflow sends `:batchEmbedContents`, which Vertex does not serve).
//! * Claude: chat (streamed too); the `anthropic` provider's Messages body without `model`
//!   and with `anthropic_version: "vertex-2023-10-16"`; `vertex_anthropic_betas` is sent as the
//!   `anthropic-beta` header. Completions and embeddings answer 501.
//! * OpenAI-compatible partner models (Model-as-a-Service): chat (streamed too) with the
//!   OpenAI wire body ([`super::openai_wire`]; `model` = `model.name` as configured). Completions and
//!   embeddings answer 501.
//!
//! Host: `aiplatform.googleapis.com` for location `global`, `aiplatform.{eu|us}.rep.googleapis.com`
//! for the multi-regions `eu` and `us`, `{location}-aiplatform.googleapis.com` otherwise;
//! `vertex_api_base` replaces `https://{host}` (proxies, tests).
//!
//! Config: `vertex_project` (required), `vertex_location` (lower-case letters, digits and
//! hyphens; unset or empty: `global`, `us-central1` for OpenAI-compatible models),
//! `vertex_credentials` (service-account JSON or the path of a JSON
//! file, `$VAR` / `${VAR}` resolved; default: Application Default Credentials),
//! `vertex_anthropic_betas` (list, or comma-separated string), `vertex_api_base`.

mod auth;
mod external_account;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::native::{self, NativeApi, NativeRequest};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{Answer, Embedding, EmbeddingsResponse, EmbeddingsUsage, Extension, Request};
use crate::upstream::{UpstreamRequest, Upstreams};

use super::openai_wire::{self, OPENAI};
use super::{anthropic, gemini};

const DISPLAY: &str = "Vertex AI";

/// The `anthropic_version` body field Claude on Vertex AI requires.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Location when `vertex_location` is not set.
pub const DEFAULT_LOCATION: &str = "global";

/// Location for OpenAI-compatible (Model-as-a-Service) models when `vertex_location` is not set.
pub const DEFAULT_MAAS_LOCATION: &str = "us-central1";

/// Which API serves a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelClass {
    /// Google's models through the Gemini `generateContent` API.
    Gemini,
    /// Anthropic's Claude through the Messages API (`rawPredict`).
    Claude,
    /// Partner models through the OpenAI-compatible chat completions endpoint.
    OpenAiCompatible,
}

impl ModelClass {
    /// The class of a model name (docs/mlflow-compat.md#provider-translations).
    pub fn of(model: &str) -> ModelClass {
        let lower = model.to_ascii_lowercase();
        if lower.starts_with("claude") {
            ModelClass::Claude
        } else if lower.contains('/')
            || ["mistral", "codestral", "jamba"].iter().any(|p| lower.starts_with(p))
            || lower.ends_with("-maas")
        {
            ModelClass::OpenAiCompatible
        } else {
            ModelClass::Gemini
        }
    }

    /// The display name in this class's 501 messages.
    fn display(self) -> &'static str {
        match self {
            ModelClass::Gemini => DISPLAY,
            ModelClass::Claude => "Vertex AI Claude",
            ModelClass::OpenAiCompatible => "Vertex AI partner (OpenAI-compatible)",
        }
    }
}

/// The host serving a location.
pub fn host(location: &str) -> String {
    match location {
        "global" => "aiplatform.googleapis.com".to_owned(),
        "eu" | "us" => format!("aiplatform.{location}.rep.googleapis.com"),
        regional => format!("{regional}-aiplatform.googleapis.com"),
    }
}

/// The `vertex_ai` provider.
pub struct VertexAi {
    class: ModelClass,
    /// `…/publishers/google/models`, `…/publishers/anthropic/models` or `…/endpoints/openapi`.
    base: BaseUrl,
    /// `model.name`, escaped for a URL path.
    model_path: String,
    /// `model.name` as configured.
    model: String,
    /// `anthropic-beta` for Claude models.
    betas: Option<http::HeaderValue>,
    tokens: auth::TokenSource,
}

impl std::fmt::Debug for VertexAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VertexAi")
            .field("class", &self.class)
            .field("base", &self.base.to_string())
            .field("model", &self.model)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl VertexAi {
    /// Build from `model.config` (MLflow's `VertexAIConfig`), plus the `vertex_api_base`
    /// override. Credentials are read and checked here.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<VertexAi, FieldError> {
        let model = gemini::model_name(spec)?;
        let class = ModelClass::of(&model);
        let project = cfg.required_string("vertex_project")?;
        check_path_value(cfg, "vertex_project", &project, |c| c.is_ascii_alphanumeric() || "-_.:".contains(c))?;
        // MLflow 3.18 (docs/mlflow-compat.md#mlflow-318): lower-case letters, digits and
        // hyphens only; an empty value means the default, as an unset one does.
        let location = match cfg.string("vertex_location")?.filter(|l| !l.is_empty()) {
            Some(l) => {
                if !l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
                    return Err(cfg.error(
                        "vertex_location",
                        format!(
                            "vertex_location must contain only lowercase letters, digits, and hyphens; got {}",
                            python_str_repr(&l)
                        ),
                    ));
                }
                l
            }
            None if class == ModelClass::OpenAiCompatible => DEFAULT_MAAS_LOCATION.to_owned(),
            None => DEFAULT_LOCATION.to_owned(),
        };
        let credentials = match cfg.secret("vertex_credentials")? {
            Some(value) => credentials_from(value.expose()).map_err(|m| cfg.error("vertex_credentials", m))?,
            None => auth::Credentials::application_default(|k| std::env::var(k).ok())
                .map_err(|m| cfg.error("vertex_credentials", m))?,
        };
        let betas = match cfg.string_list("vertex_anthropic_betas")? {
            Some(list) if !list.is_empty() => Some(
                http::HeaderValue::from_str(&list.join(","))
                    .map_err(|_| cfg.error("vertex_anthropic_betas", "not valid HTTP header text"))?,
            ),
            _ => None,
        };
        let root = match cfg.url("vertex_api_base")? {
            Some(b) => b,
            None => {
                BaseUrl::parse(&format!("https://{}", host(&location))).map_err(|m| cfg.error("vertex_location", m))?
            }
        };
        let scope = format!("v1/projects/{project}/locations/{location}");
        let base = root.join(&match class {
            ModelClass::Gemini => format!("{scope}/publishers/google/models"),
            ModelClass::Claude => format!("{scope}/publishers/anthropic/models"),
            ModelClass::OpenAiCompatible => format!("{scope}/endpoints/openapi"),
        });
        log::debug!("vertex_ai endpoint '{}': {class:?} model at {base}, {}", spec.name, credentials.describe());
        Ok(VertexAi {
            class,
            base,
            model_path: gemini::path_segment(&model),
            model,
            betas,
            tokens: auth::TokenSource::new(credentials),
        })
    }

    fn post(
        &self,
        suffix: &str,
        body: &impl serde::Serialize,
        query: Option<&str>,
    ) -> Result<UpstreamRequest, GatewayError> {
        let mut req = UpstreamRequest::post_json(&self.base, suffix, super::to_json(body)?);
        if query.is_some() {
            req.target = self.base.target_with_query(suffix, query);
        }
        Ok(req)
    }

    /// A Gemini method of this model (`:generateContent`, …).
    fn gemini(&self, method: &str, body: &Value, stream: bool) -> Result<UpstreamRequest, GatewayError> {
        self.post(&format!("{}{method}", self.model_path), body, stream.then_some("alt=sse"))
    }

    /// Gemini's body, without the ids Vertex refuses.
    fn gemini_options(&self) -> gemini::request::BodyOptions {
        gemini::request::BodyOptions { strip_ids: true, thinking: gemini::request::Thinking::of(&self.model) }
    }

    fn not_implemented(&self, noun: &str) -> GatewayError {
        GatewayError::not_implemented(noun, self.class.display())
    }

    fn gemini_embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let (body, method) = gemini::request::embeddings_body(req, &self.model)?;
        if method == gemini::request::EmbedMethod::Single {
            return Ok(Exchange::call(
                self.gemini(":embedContent", &body, false)?,
                gemini::response::embeddings_decoder(call, DISPLAY),
            ));
        }
        let Value::Object(mut body) = body else {
            return Err(GatewayError::internal("Vertex AI: unexpected embeddings body"));
        };
        let items = match body.remove("requests") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let requests = items
            .into_iter()
            .map(|mut item| self.gemini(":embedContent", &json!({"content": item["content"].take()}), false))
            .collect::<Result<Vec<_>, _>>()?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::fan_out(requests, Box::new(move |bodies| decode_embeddings_many(&bodies, model))))
    }
}

/// A `vertex_project` / `vertex_location` value goes into URL paths: only the characters
/// Google allows there.
fn check_path_value(cfg: &ConfigMap<'_>, key: &str, value: &str, ok: impl Fn(char) -> bool) -> Result<(), FieldError> {
    if value.is_empty() || !value.chars().all(ok) {
        return Err(cfg.error(key, format!("'{value}' is not a valid Google Cloud {}", &key["vertex_".len()..])));
    }
    Ok(())
}

/// `value` as Python's `repr()` writes a string (how MLflow quotes a refused value): in single
/// quotes, or double quotes when it holds a `'` and no `"`; backslashes, the quote and control
/// characters escaped.
fn python_str_repr(value: &str) -> String {
    let quote = if value.contains('\'') && !value.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(quote);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `vertex_credentials` after secret resolution: a JSON document, or the path of a file
/// holding one (secret resolution already read files named directly; this covers a `$VAR`
/// holding a path).
fn credentials_from(value: &str) -> Result<auth::Credentials, String> {
    let value = value.trim();
    if value.starts_with('{') {
        return auth::Credentials::from_json(value).map_err(|m| format!("unusable service-account JSON: {m}"));
    }
    let path = std::path::Path::new(value);
    if value.len() < 4096 && path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the credentials file: {e}"))?;
        return auth::Credentials::from_json(&text).map_err(|m| format!("unusable service-account JSON file: {m}"));
    }
    Err("must be a service-account JSON document or the path of a file holding one \
         (the value is not JSON and names no file)"
        .to_owned())
}

#[derive(Deserialize)]
struct WireEmbedContent {
    embedding: Option<WireValues>,
}

#[derive(Deserialize)]
struct WireValues {
    values: Option<Value>,
}

/// Several `:embedContent` answers (in input order) as one unified answer; usage is unknown
/// (nulls), as for the single-input answer.
fn decode_embeddings_many(bodies: &[bytes::Bytes], model: Option<String>) -> Result<Answer, GatewayError> {
    let mut data = Vec::with_capacity(bodies.len());
    for (i, body) in bodies.iter().enumerate() {
        let wire: WireEmbedContent = super::parse_upstream_json(body, DISPLAY)?;
        let values = wire.embedding.and_then(|e| e.values).ok_or_else(|| {
            GatewayError::bad_gateway(format!("{DISPLAY} returned an embedding answer without embedding.values"))
        })?;
        data.push(Embedding::new(i as u32, values));
    }
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
}

#[async_trait::async_trait]
impl Provider for VertexAi {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    /// The raw route goes under the model's publisher path (`…/publishers/google/models`,
    /// `…/publishers/anthropic/models`, `…/endpoints/openapi`), with the OAuth token
    /// `authorize` adds.
    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest::post_json(&self.base, "", Vec::new()))
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        match self.class {
            ModelClass::Gemini => {
                let body = gemini::request::chat_body(req, self.gemini_options())?;
                let method = if stream { ":streamGenerateContent" } else { ":generateContent" };
                Ok(Exchange::call(
                    self.gemini(method, &body, stream)?,
                    gemini::response::chat_decoder(stream, call, DISPLAY),
                ))
            }
            ModelClass::Claude => {
                let mut body: Map<String, Value> =
                    anthropic::messages_body(req, &anthropic::BodyOptions { model: None, url_images: false })?;
                body.insert("anthropic_version".into(), Value::from(ANTHROPIC_VERSION));
                let method = if stream { ":streamRawPredict" } else { ":rawPredict" };
                let mut upstream = self.post(&format!("{}{method}", self.model_path), &body, None)?;
                if let Some(betas) = &self.betas {
                    upstream = upstream.header_value(http::HeaderName::from_static("anthropic-beta"), betas.clone());
                }
                Ok(Exchange::call(upstream, anthropic::chat_decoder(stream, call)))
            }
            ModelClass::OpenAiCompatible => {
                let body = openai_wire::passthrough_body(req, Some(Some(&self.model)), OPENAI.stream_options)?;
                Ok(Exchange::call(
                    UpstreamRequest::post_json(&self.base, "chat/completions", body),
                    openai_wire::chat_decoder(&OPENAI, stream, call),
                ))
            }
        }
    }

    /// Claude models speak Anthropic's Messages API on Vertex AI (`rawPredict`): a
    /// `/v1/messages` request goes as the client sent it, minus `model` (it is in the URL) and
    /// with Vertex's `anthropic_version` in the body; the client's `anthropic-beta` joins the
    /// configured betas. Vertex's token counting for Claude is not used: the gateway estimates.
    /// Gemini models take Gemini's generateContent requests as the client sent them.
    fn native(&self, request: &NativeRequest<'_>, call: &Call<'_>) -> Option<Result<Exchange, GatewayError>> {
        if self.class == ModelClass::Gemini && request.api == NativeApi::GeminiGenerateContent {
            // Vertex AI's generateContent takes Gemini's body: it goes as the client sent it.
            let method = if request.stream { ":streamGenerateContent" } else { ":generateContent" };
            let query = request.stream.then_some("alt=sse");
            let relay = native::relay(request.api, request.stream, call.provider_label());
            let upstream = self.post(&format!("{}{method}", self.model_path), request.body, query);
            return Some(upstream.map(|u| Exchange::call(u, relay)));
        }
        if self.class != ModelClass::Claude || request.api != NativeApi::AnthropicMessages {
            return None;
        }
        let mut body = request.body.clone();
        body.remove("model");
        body.insert("anthropic_version".into(), Value::from(ANTHROPIC_VERSION));
        let method = if request.stream { ":streamRawPredict" } else { ":rawPredict" };
        let upstream = self.post(&format!("{}{method}", self.model_path), &body, None).map(|mut upstream| {
            let betas = match (&self.betas, request.header("anthropic-beta")) {
                (Some(configured), Some(client)) => {
                    let joined =
                        format!("{},{}", configured.to_str().unwrap_or_default(), client.to_str().unwrap_or_default());
                    http::HeaderValue::from_str(&joined).ok()
                }
                (Some(b), None) | (None, Some(b)) => Some(b.clone()),
                (None, None) => None,
            };
            if let Some(betas) = betas {
                upstream = upstream.header_value(http::HeaderName::from_static("anthropic-beta"), betas);
            }
            Exchange::call(upstream, native::relay(request.api, request.stream, call.provider_label()))
        });
        Some(upstream)
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if self.class != ModelClass::Gemini {
            return Err(self.not_implemented("completions"));
        }
        let stream = req.stream();
        let body = gemini::request::completions_body(req, self.gemini_options())?;
        let method = if stream { ":streamGenerateContent" } else { ":generateContent" };
        Ok(Exchange::call(
            self.gemini(method, &body, stream)?,
            gemini::response::completions_decoder(stream, call, DISPLAY),
        ))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if self.class != ModelClass::Gemini {
            return Err(self.not_implemented("embeddings"));
        }
        self.gemini_embeddings(req, call)
    }

    /// Gemini models: as the `gemini` provider (`topK`, `thinkingConfig`); Claude models: as the
    /// `anthropic` provider (`top_k`, `thinking`, `reasoning.effort` as a thinking budget);
    /// partner models: none.
    fn accepts(&self, extension: Extension) -> bool {
        let _ = extension;
        self.class != ModelClass::OpenAiCompatible
    }

    async fn authorize(&self, req: &mut UpstreamRequest, http: &Upstreams) -> Result<(), GatewayError> {
        let token = self.tokens.bearer(http).await?;
        req.headers.push((http::header::AUTHORIZATION, token));
        Ok(())
    }

    /// Google's error shape (also for Claude and partner models, whose errors Vertex wraps
    /// the same way, or relays in their own shape, which the generic mapping reads).
    fn error_answer(&self, status: u16, content_type: &str, body: &[u8]) -> GatewayError {
        gemini::error_answer(status, content_type, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::{EndpointType, parse_request};
    use auth::tests::service_account_json;

    fn spec(model: &str) -> EndpointSpec<'_> {
        EndpointSpec {
            index: 0,
            name: "v",
            endpoint_type: EndpointType::Chat,
            model_name: Some(model),
            provider_name: ProviderName::VertexAi,
        }
    }

    fn build(model: &str, config: Value) -> Result<VertexAi, FieldError> {
        let map: Map<String, Value> = serde_json::from_value(config).unwrap();
        let mut cfg = ConfigMap::new(&map, "model.config");
        VertexAi::from_config(&spec(model), &mut cfg)
    }

    fn config(extra: Value) -> Value {
        let mut c = json!({"vertex_project": "my-proj", "vertex_credentials": service_account_json(None)});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn endpoint() -> std::sync::Arc<crate::config::Endpoint> {
        let yaml = json!({"endpoints": [{"name": "v", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "vertex_ai", "name": "gemini-2.0-flash", "config": config(json!({}))}}]});
        crate::providers::test_config(&yaml.to_string()).endpoints[0].clone()
    }

    fn request(ty: EndpointType, body: Value) -> Request {
        parse_request(ty, body.to_string().as_bytes()).unwrap()
    }

    fn chat(stream: bool) -> Request {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        if stream {
            body["stream"] = json!(true);
        }
        request(EndpointType::Chat, body)
    }

    fn http(x: &Exchange) -> &UpstreamRequest {
        x.http()
    }

    fn body(r: &UpstreamRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn model_classes() {
        for m in ["claude-sonnet-4-5@20251101", "claude-3-haiku", "Claude-opus-4"] {
            assert_eq!(ModelClass::of(m), ModelClass::Claude, "{m}");
        }
        for m in [
            "meta/llama-3.1-405b-instruct-maas",
            "mistral-large-2411",
            "codestral-2501",
            "jamba-1.5",
            "deepseek-ai/deepseek-r1-0528-maas",
            "xai/grok-4.1-fast-reasoning",
            "llama-4-maverick-17b-128e-instruct-maas",
        ] {
            assert_eq!(ModelClass::of(m), ModelClass::OpenAiCompatible, "{m}");
        }
        for m in ["gemini-2.0-flash", "gemini-3-pro-preview", "text-embedding-005", "gemini-embedding-001"] {
            assert_eq!(ModelClass::of(m), ModelClass::Gemini, "{m}");
        }
    }

    #[test]
    fn hosts_per_location() {
        assert_eq!(host("global"), "aiplatform.googleapis.com");
        assert_eq!(host("eu"), "aiplatform.eu.rep.googleapis.com");
        assert_eq!(host("us"), "aiplatform.us.rep.googleapis.com");
        assert_eq!(host("europe-west1"), "europe-west1-aiplatform.googleapis.com");
        assert_eq!(host("us-east5"), "us-east5-aiplatform.googleapis.com");
    }

    #[test]
    fn base_urls_per_class_and_location() {
        let cases = [
            (
                "gemini-2.0-flash",
                json!({}),
                "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/google/models",
            ),
            (
                "gemini-2.0-flash",
                json!({"vertex_location": "us-central1"}),
                "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/google/models",
            ),
            (
                "gemini-3-pro-preview",
                json!({"vertex_location": "eu"}),
                "https://aiplatform.eu.rep.googleapis.com/v1/projects/my-proj/locations/eu/publishers/google/models",
            ),
            (
                "claude-sonnet-4-5@20251101",
                json!({"vertex_location": "us-east5"}),
                "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models",
            ),
            (
                "claude-opus-4-5@20251101",
                json!({}),
                "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/anthropic/models",
            ),
            (
                "meta/llama-3.1-405b-instruct-maas",
                json!({}),
                "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/endpoints/openapi",
            ),
            (
                "meta/llama-3.1-405b-instruct-maas",
                json!({"vertex_location": "us"}),
                "https://aiplatform.us.rep.googleapis.com/v1/projects/my-proj/locations/us/endpoints/openapi",
            ),
            (
                "gemini-2.0-flash",
                json!({"vertex_api_base": "http://127.0.0.1:9/proxy/"}),
                "http://127.0.0.1:9/proxy/v1/projects/my-proj/locations/global/publishers/google/models",
            ),
        ];
        for (model, extra, want) in cases {
            let v = build(model, config(extra)).unwrap();
            assert_eq!(v.base.to_string(), want, "{model}");
        }
    }

    #[test]
    fn locations_are_validated_as_mlflow_does() {
        for bad in ["US-central1", "europe-west4.evil.com", "us_central1", "us central1", "é"] {
            let err = build("gemini-2.0-flash", config(json!({"vertex_location": bad}))).unwrap_err();
            assert_eq!(err.field, "model.config.vertex_location", "{bad}");
            assert_eq!(
                err.message,
                format!("vertex_location must contain only lowercase letters, digits, and hyphens; got '{bad}'")
            );
        }
        // Empty is the default location, as unset is (global; us-central1 for MaaS models).
        let v = build("gemini-2.0-flash", config(json!({"vertex_location": ""}))).unwrap();
        assert!(
            v.base.to_string().starts_with("https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/")
        );
        let v = build("meta/llama-3.1-405b-instruct-maas", config(json!({"vertex_location": ""}))).unwrap();
        assert!(v.base.to_string().contains("/locations/us-central1/"), "{}", v.base);
        let v = build("gemini-2.0-flash", config(json!({"vertex_location": "europe-west4"}))).unwrap();
        assert!(v.base.to_string().starts_with("https://europe-west4-aiplatform.googleapis.com/"));
    }

    #[test]
    fn python_string_reprs() {
        assert_eq!(python_str_repr("US-central1"), "'US-central1'");
        assert_eq!(python_str_repr("it's"), "\"it's\"");
        assert_eq!(python_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_str_repr("a\\b\nc\u{1}"), "'a\\\\b\\nc\\x01'");
    }

    #[test]
    fn config_errors_name_the_field_and_hide_secrets() {
        let err = build("gemini-2.0-flash", json!({"vertex_credentials": service_account_json(None)})).unwrap_err();
        assert_eq!((err.field.as_str(), err.message.as_str()), ("model.config.vertex_project", "Field required"));
        let err = build("gemini-2.0-flash", config(json!({"vertex_project": "a/b"}))).unwrap_err();
        assert_eq!(err.field, "model.config.vertex_project");
        let err = build("gemini-2.0-flash", config(json!({"vertex_location": "us-central1/../x"}))).unwrap_err();
        assert_eq!(err.field, "model.config.vertex_location");
        assert_eq!(
            err.message,
            "vertex_location must contain only lowercase letters, digits, and hyphens; got 'us-central1/../x'"
        );
        let err = build("gemini-2.0-flash", config(json!({"vertex_api_base": "ftp://x"}))).unwrap_err();
        assert_eq!(err.field, "model.config.vertex_api_base");
        let err = build("claude-x", config(json!({"vertex_anthropic_betas": 5}))).unwrap_err();
        assert_eq!(err.field, "model.config.vertex_anthropic_betas");
        let map = Map::new();
        let err = VertexAi::from_config(
            &EndpointSpec { index: 0, model_name: None, ..spec("x") },
            &mut ConfigMap::new(&map, "model.config"),
        )
        .unwrap_err();
        assert_eq!(err.field, "model.name");

        let err = build("gemini-2.0-flash", config(json!({"vertex_credentials": "{\"type\": \"service_account\"}"})))
            .unwrap_err();
        assert_eq!(err.field, "model.config.vertex_credentials");
        assert!(err.message.contains("no 'client_email'"), "{}", err.message);
        let err = build("gemini-2.0-flash", config(json!({"vertex_credentials": "/no/such/sa.json"}))).unwrap_err();
        assert!(err.message.contains("not JSON and names no file"), "{}", err.message);
        assert!(!err.message.contains("/no/such"), "{}", err.message);
        // A broken key: the message says what is wrong, never what the key is.
        let broken = service_account_json(None).replace("MII", "!!!");
        let err = build("gemini-2.0-flash", config(json!({"vertex_credentials": broken}))).unwrap_err();
        assert!(err.message.contains("'private_key'") && !err.message.contains("!!!"), "{}", err.message);
    }

    #[test]
    fn credentials_from_files_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sa.json");
        std::fs::write(&path, service_account_json(None)).unwrap();
        let v = build("gemini-2.0-flash", config(json!({"vertex_credentials": path.to_str().unwrap()}))).unwrap();
        assert!(format!("{v:?}").contains("gw@test-project.iam.gserviceaccount.com"));
        assert!(!format!("{v:?}").contains("PRIVATE KEY"));
        // A value that resolves to a path (as `$VAR` holding a path does) is read too.
        assert!(credentials_from(path.to_str().unwrap()).is_ok());
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{not json").unwrap();
        let err = build("gemini-2.0-flash", config(json!({"vertex_credentials": bad.to_str().unwrap()}))).unwrap_err();
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
    }

    #[test]
    fn gemini_exchanges() {
        let v = build("gemini-2.0-flash", config(json!({}))).unwrap();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let x = v.chat(chat(false), &call).unwrap();
        assert_eq!(
            http(&x).target,
            "/v1/projects/my-proj/locations/global/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            body(http(&x)),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"candidateCount": 1}})
        );
        let x = v.chat(chat(true), &call).unwrap();
        assert!(http(&x).target.ends_with("/gemini-2.0-flash:streamGenerateContent?alt=sse"), "{}", http(&x).target);
        assert!(x.streams());

        // functionCall / functionResponse ids are left out.
        let req = request(
            EndpointType::Chat,
            json!({"messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"t\": 20}"}]}),
        );
        let b = body(http(&v.chat(req, &call).unwrap()));
        assert_eq!(
            b["contents"][1]["parts"][0]["functionCall"],
            json!({"name": "get_weather", "args": {"city": "Paris"}})
        );
        assert_eq!(
            b["contents"][2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"t": 20}})
        );

        let x =
            v.completions(request(EndpointType::Completions, json!({"prompt": "p", "stream": true})), &call).unwrap();
        assert!(http(&x).target.ends_with(":streamGenerateContent?alt=sse"));
        assert_eq!(body(http(&x))["contents"], json!([{"role": "user", "parts": [{"text": "p"}]}]));

        let x = v.embeddings(request(EndpointType::Embeddings, json!({"input": "a"})), &call).unwrap();
        assert!(http(&x).target.ends_with("/gemini-2.0-flash:embedContent"));
        assert_eq!(body(http(&x)), json!({"content": {"parts": [{"text": "a"}]}}));
        // Several inputs: one :embedContent call each.
        let x = v.embeddings(request(EndpointType::Embeddings, json!({"input": ["a", "b"]})), &call).unwrap();
        let reqs = x.fan_out_requests();
        assert_eq!(reqs.len(), 2);
        for (r, text) in reqs.iter().zip(["a", "b"]) {
            assert!(r.target.ends_with("/gemini-2.0-flash:embedContent"));
            assert_eq!(body(r), json!({"content": {"parts": [{"text": text}]}}));
        }
        let Exchange::FanOut { decode, .. } = x else { panic!("fan-out expected") };
        let out: Value = serde_json::to_value(
            decode(vec![
                bytes::Bytes::from_static(br#"{"embedding":{"values":[0.1,0.2]}}"#),
                bytes::Bytes::from_static(br#"{"embedding":{"values":[0.3]},"usageMetadata":{"promptTokenCount":1}}"#),
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "data": [{"object": "embedding", "embedding": [0.1, 0.2], "index": 0},
                                             {"object": "embedding", "embedding": [0.3], "index": 1}],
                   "model": "gemini-2.0-flash", "usage": {"prompt_tokens": null, "total_tokens": null}})
        );
        assert_eq!(decode_embeddings_many(&[bytes::Bytes::from_static(b"{}")], None).unwrap_err().status, 502);
    }

    #[test]
    fn claude_exchanges() {
        let v = build(
            "claude-sonnet-4-5@20251101",
            config(json!({"vertex_location": "us-east5",
                          "vertex_anthropic_betas": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]})),
        )
        .unwrap();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let x = v.chat(chat(false), &call).unwrap();
        let r = http(&x);
        assert_eq!(
            r.url(),
            "https://us-east5-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20251101:rawPredict"
        );
        assert_eq!(
            body(r),
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8192, "anthropic_version": "vertex-2023-10-16"})
        );
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "anthropic-beta" && v == "interleaved-thinking-2025-05-14,context-1m-2025-08-07")
        );
        let x = v.chat(chat(true), &call).unwrap();
        assert!(http(&x).target.ends_with("/claude-sonnet-4-5@20251101:streamRawPredict"));
        assert_eq!(body(http(&x))["stream"], json!(true));
        assert!(body(http(&x)).get("model").is_none());

        let err = v.completions(request(EndpointType::Completions, json!({"prompt": "p"})), &call).err().unwrap();
        assert_eq!(
            (err.status, err.message()),
            (501, "The completions route is not implemented for Vertex AI Claude models.".to_owned())
        );
        let err = v.embeddings(request(EndpointType::Embeddings, json!({"input": "a"})), &call).err().unwrap();
        assert_eq!(err.status, 501);
        // Anthropic's rules apply.
        let err = v
            .chat(request(EndpointType::Chat, json!({"messages": [{"role": "user", "content": "hi"}], "n": 2})), &call)
            .err()
            .unwrap();
        assert_eq!(err.status, 422);

        // No betas configured (or an empty list): no header.
        let v = build("claude-x", config(json!({"vertex_anthropic_betas": ""}))).unwrap();
        assert!(!http(&v.chat(chat(false), &call).unwrap()).headers.iter().any(|(k, _)| k == "anthropic-beta"));
    }

    #[test]
    fn claude_speaks_messages_natively() {
        use crate::providers::native::{NativeApi, NativeRequest};
        let v = build(
            "claude-sonnet-4-5@20251101",
            config(json!({"vertex_location": "us-east5", "vertex_anthropic_betas": ["context-1m-2025-08-07"]})),
        )
        .unwrap();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let sent = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
                          "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
                          "thinking": {"type": "enabled", "budget_tokens": 2048}});
        let client_body = sent.as_object().unwrap().clone();
        let beta = [(
            http::HeaderName::from_static("anthropic-beta"),
            http::HeaderValue::from_static("interleaved-thinking-2025-05-14"),
        )];
        let request =
            NativeRequest { api: NativeApi::AnthropicMessages, body: &client_body, headers: &beta, stream: true };
        let x = v.native(&request, &call).expect("Claude speaks Messages").unwrap();
        let r = http(&x);
        assert!(
            r.target.ends_with("/publishers/anthropic/models/claude-sonnet-4-5@20251101:streamRawPredict"),
            "{}",
            r.target
        );
        let mut expected = sent.clone();
        expected.as_object_mut().unwrap().remove("model");
        expected["anthropic_version"] = json!("vertex-2023-10-16");
        assert_eq!(body(r), expected, "the client's body, cache hints and thinking included");
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "anthropic-beta" && v == "context-1m-2025-08-07,interleaved-thinking-2025-05-14"),
            "configured and client betas joined"
        );
        assert!(x.streams());
        // Token counting and other models are not native here.
        let count =
            NativeRequest { api: NativeApi::AnthropicCountTokens, body: &client_body, headers: &[], stream: false };
        assert!(v.native(&count, &call).is_none());
        let gemini = build("gemini-2.0-flash", config(json!({}))).unwrap();
        assert!(gemini.native(&request, &call).is_none());
    }

    #[test]
    fn openai_compatible_exchanges() {
        let v = build("meta/llama-3.1-405b-instruct-maas", config(json!({}))).unwrap();
        let ep = endpoint();
        let call = Call { endpoint: &ep, created: 1 };
        let x = v.chat(chat(false), &call).unwrap();
        let r = http(&x);
        assert_eq!(
            r.url(),
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/endpoints/openapi/chat/completions"
        );
        assert_eq!(
            body(r),
            json!({"model": "meta/llama-3.1-405b-instruct-maas", "n": 1,
                   "messages": [{"role": "user", "content": "hi"}]})
        );
        let x = v.chat(chat(true), &call).unwrap();
        assert_eq!(body(http(&x))["stream_options"], json!({"include_usage": true}));
        let err = v.completions(request(EndpointType::Completions, json!({"prompt": "p"})), &call).err().unwrap();
        assert_eq!(
            err.message(),
            "The completions route is not implemented for Vertex AI partner (OpenAI-compatible) models."
        );
        assert_eq!(
            v.embeddings(request(EndpointType::Embeddings, json!({"input": "a"})), &call).err().unwrap().status,
            501
        );
    }
}
