//! Anthropic (`provider: anthropic`): chat and completions through the Messages API
//! (`POST {anthropic_api_base}/messages`), whole or streamed. Embeddings answer 501.
//!
//! Config: `anthropic_api_key` (required secret), `anthropic_version` (default `2023-06-01`,
//! sent as the `anthropic-version` header), `anthropic_api_base` (default
//! `https://api.anthropic.com/v1`).
//!
//! The translation follows MLflow's (docs/mlflow-compat.md#provider-translations) with aigw's
//! fixes (docs/mlflow-compat.md#fix-6, #fix-9): thinking text goes to
//! `reasoning_content` instead of `content`, an upstream `error` event ends the stream with an
//! error event, tool parameter schemas are forwarded whole. Completions use the Messages API
//! too (MLflow calls the legacy `/v1/complete`, which no current model serves): the prompt is
//! one user message.
//!
//! Building blocks for Claude on other hosts (Vertex AI sends the same body minus `model`, plus
//! `anthropic_version` in the body, to `:rawPredict` / `:streamRawPredict`, and gets the same
//! answers): [`messages_body`] builds the body as a JSON object; [`chat_decoder`],
//! [`completions_decoder`], [`decode_chat`], [`decode_completions`] and [`MessagesStream`] read
//! the answers.

mod request;
mod response;

#[allow(unused_imports)] // part of the crate-internal API for Claude on Vertex AI
pub(crate) use request::{
    BodyOptions, DEFAULT_MAX_TOKENS, JSON_OBJECT_INSTRUCTION, MAXIMUM_MAX_TOKENS, effort_thinking, messages_body,
};
#[allow(unused_imports)]
pub(crate) use response::{
    MessagesStream, chat_decoder, completions_decoder, decode_chat, decode_completions, finish_reason,
    single_signature, stream_error, usage_from,
};

use super::native::{self, NativeApi, NativeRequest};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default Anthropic base URL.
pub const DEFAULT_BASE: &str = "https://api.anthropic.com/v1";

/// Default `anthropic-version` header value.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The `anthropic` provider.
pub struct Anthropic {
    base: BaseUrl,
    api_key: http::HeaderValue,
    version: http::HeaderValue,
}

impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic").field("base", &self.base.target("")).field("version", &self.version).finish()
    }
}

impl Anthropic {
    /// Build from `model.config` (MLflow's `AnthropicConfig`).
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Anthropic, FieldError> {
        let key = cfg.required_secret("anthropic_api_key")?;
        let version = cfg.string("anthropic_version")?.unwrap_or_else(|| DEFAULT_VERSION.to_owned());
        let base = match cfg.url("anthropic_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("anthropic_api_base", m))?,
        };
        let api_key = secret_header(key.expose()).ok_or_else(|| {
            cfg.error("anthropic_api_key", "the key contains characters not allowed in an HTTP header")
        })?;
        let version = http::HeaderValue::from_str(&version)
            .map_err(|_| cfg.error("anthropic_version", "not a valid HTTP header value"))?;
        Ok(Anthropic { base, api_key, version })
    }

    fn request(&self, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest::post_json(&self.base, "messages", body)
            .header_value(http::HeaderName::from_static("x-api-key"), self.api_key.clone())
            .header_value(http::HeaderName::from_static("anthropic-version"), self.version.clone())
    }

    fn exchange(
        &self,
        req: Request,
        call: &Call<'_>,
        decoder: fn(bool, &Call<'_>) -> super::Decoder,
    ) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = messages_body(req, &BodyOptions { model: call.model(), url_images: true })?;
        Ok(Exchange::call(self.request(super::to_json(&body)?), decoder(stream, call)))
    }
}

impl Provider for Anthropic {
    fn display_name(&self) -> &'static str {
        "Anthropic"
    }

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest::post_json(&self.base, "", Vec::new())
            .header_value(http::HeaderName::from_static("x-api-key"), self.api_key.clone())
            .header_value(http::HeaderName::from_static("anthropic-version"), self.version.clone()))
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        self.exchange(req, call, chat_decoder)
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        self.exchange(req, call, completions_decoder)
    }

    /// `top_k` and `thinking` go as sent, `reasoning.effort` as a thinking budget (see
    /// `request::apply_effort` and docs/client-apis.md).
    fn accepts(&self, extension: Extension) -> bool {
        let _ = extension;
        true
    }

    /// Messages and token counting go to Anthropic as the client sent them. The client's
    /// `anthropic-version` wins over the configured one (it knows what it parses); its
    /// `anthropic-beta` is forwarded.
    fn native(&self, request: &NativeRequest<'_>, call: &Call<'_>) -> Option<Result<Exchange, GatewayError>> {
        let path = match request.api {
            NativeApi::AnthropicMessages => "messages",
            NativeApi::AnthropicCountTokens => "messages/count_tokens",
            NativeApi::OpenAiResponses
            | NativeApi::OpenAiChat
            | NativeApi::OpenAiEmbeddings
            | NativeApi::GeminiGenerateContent => return None,
        };
        Some(request.body_for(call.model()).map(|body| {
            let version = request.header("anthropic-version").unwrap_or(&self.version).clone();
            let mut upstream = UpstreamRequest::post_json(&self.base, path, body)
                .header_value(http::HeaderName::from_static("x-api-key"), self.api_key.clone())
                .header_value(http::HeaderName::from_static("anthropic-version"), version);
            if let Some(beta) = request.header("anthropic-beta") {
                upstream = upstream.header_value(http::HeaderName::from_static("anthropic-beta"), beta.clone());
            }
            Exchange::call(upstream, native::relay(request.api, request.stream, call.provider_label()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::EndpointType;
    use serde_json::{Map, Value, json};

    fn spec() -> EndpointSpec<'static> {
        EndpointSpec {
            index: 0,
            name: "claude",
            endpoint_type: EndpointType::Chat,
            model_name: Some("claude-x"),
            provider_name: ProviderName::Anthropic,
        }
    }

    fn build(config: Value) -> Result<Anthropic, FieldError> {
        let map: Map<String, Value> = config.as_object().unwrap().clone();
        let mut cfg = ConfigMap::new(&map, "model.config");
        Anthropic::from_config(&spec(), &mut cfg)
    }

    #[test]
    fn config_defaults_and_headers() {
        let a = build(json!({"anthropic_api_key": "sk-ant-secret"})).unwrap();
        let r = a.request(b"{}".to_vec());
        assert_eq!(r.url(), "https://api.anthropic.com/v1/messages");
        let header = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(header("x-api-key").as_deref(), Some("sk-ant-secret"));
        assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert!(r.headers.iter().any(|(k, v)| k == "x-api-key" && v.is_sensitive()));
        assert!(!format!("{a:?}").contains("sk-ant-secret"));

        let a = build(json!({"anthropic_api_key": "k", "anthropic_version": "2024-01-01",
                             "anthropic_api_base": "http://127.0.0.1:9/proxy/v1"}))
        .unwrap();
        let r = a.request(Vec::new());
        assert_eq!(r.url(), "http://127.0.0.1:9/proxy/v1/messages");
        assert!(r.headers.iter().any(|(k, v)| k == "anthropic-version" && v == "2024-01-01"));
    }

    #[test]
    fn config_errors_name_the_field() {
        let e = build(json!({})).unwrap_err();
        assert_eq!(e.field, "model.config.anthropic_api_key");
        let e = build(json!({"anthropic_api_key": "k", "anthropic_api_base": "ftp://x"})).unwrap_err();
        assert_eq!(e.field, "model.config.anthropic_api_base");
        let e = build(json!({"anthropic_api_key": "k", "anthropic_version": "bad\nvalue"})).unwrap_err();
        assert_eq!(e.field, "model.config.anthropic_version");
        let e = build(json!({"anthropic_api_key": "k\u{7f}ey"})).unwrap_err();
        assert_eq!(e.field, "model.config.anthropic_api_key");
        assert!(!e.message.contains("k\u{7f}ey"));
    }
}
