//! The OpenAI-compatible family: `groq`, `deepseek`, `xai`, `openrouter`, `ollama`, `portkey`.
//!
//! Config: `api_key` (required except for `ollama`), `api_base` (overrides the default base).
//! Chat, chat streaming and embeddings exactly as OpenAI (the [`OPENAI`] dialect: model set,
//! usage requested on streams); completions are not served (MLflow's 501).
//!
//! Portkey also takes `provider` (`x-portkey-provider`), `config` (`x-portkey-config`),
//! `virtual_key` (`x-portkey-virtual-key`) and `provider_api_key` (sent as the bearer token).

use super::openai_wire::{OPENAI, chat_decoder, embeddings_decoder, passthrough_body, put_reasoning_effort};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, ProviderName};
use crate::error::GatewayError;
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, secret_header};

/// One OpenAI-compatible provider.
pub struct OpenAiCompatible {
    display: &'static str,
    /// Whether the provider's chat API documents `reasoning_effort` (docs/client-apis.md).
    reasoning_effort: bool,
    base: BaseUrl,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// Default base URL and display name of each family member.
fn defaults(name: ProviderName) -> (&'static str, &'static str) {
    match name {
        ProviderName::Groq => ("https://api.groq.com/openai/v1", "Groq"),
        ProviderName::DeepSeek => ("https://api.deepseek.com/v1", "DeepSeek"),
        ProviderName::Xai => ("https://api.x.ai/v1", "xAI"),
        ProviderName::OpenRouter => ("https://openrouter.ai/api/v1", "OpenRouter"),
        ProviderName::Ollama => ("http://localhost:11434/v1", "Ollama"),
        _ => ("https://api.portkey.ai/v1", "Portkey"),
    }
}

/// Ollama's placeholder key: no `Authorization` header is sent for it.
const OLLAMA_DEFAULT_KEY: &str = "ollama";

/// Build a family member from `model.config`.
pub fn build(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<OpenAiCompatible, FieldError> {
    let name = spec.provider_name;
    let (default_base, display) = defaults(name);
    let key = if name == ProviderName::Ollama { cfg.secret("api_key")? } else { Some(cfg.required_secret("api_key")?) };
    let base = match cfg.url("api_base")? {
        Some(b) => b,
        None => BaseUrl::parse(default_base).map_err(|m| cfg.error("api_base", m))?,
    };
    let mut headers = Vec::new();
    let bearer = |cfg: &ConfigMap<'_>, field: &str, token: &str| {
        secret_header(&format!("Bearer {token}"))
            .ok_or_else(|| cfg.error(field, "contains characters not allowed in an HTTP header"))
    };
    if name == ProviderName::Portkey {
        if let Some(key) = &key {
            let v = secret_header(key.expose())
                .ok_or_else(|| cfg.error("api_key", "contains characters not allowed in an HTTP header"))?;
            headers.push((http::HeaderName::from_static("x-portkey-api-key"), v));
        }
        for (field, header) in [
            ("provider", "x-portkey-provider"),
            ("config", "x-portkey-config"),
            ("virtual_key", "x-portkey-virtual-key"),
        ] {
            if let Some(v) = cfg.string(field)? {
                let v =
                    http::HeaderValue::from_str(&v).map_err(|_| cfg.error(field, "not a valid HTTP header value"))?;
                headers.push((http::HeaderName::from_static(header), v));
            }
        }
        if let Some(pk) = cfg.secret("provider_api_key")? {
            headers.push((http::header::AUTHORIZATION, bearer(cfg, "provider_api_key", pk.expose())?));
        }
    } else if let Some(key) = key.filter(|k| !(name == ProviderName::Ollama && k.expose() == OLLAMA_DEFAULT_KEY)) {
        headers.push((http::header::AUTHORIZATION, bearer(cfg, "api_key", key.expose())?));
    }
    // Portkey's chat request schema has no `reasoning_effort`; the others document it.
    let reasoning_effort = name != ProviderName::Portkey;
    Ok(OpenAiCompatible { display, reasoning_effort, base, headers })
}

impl OpenAiCompatible {
    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        let mut r = UpstreamRequest::post_json(&self.base, suffix, body);
        r.headers.extend(self.headers.iter().cloned());
        r
    }
}

impl Provider for OpenAiCompatible {
    fn display_name(&self) -> &'static str {
        self.display
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

    /// `reasoning.effort` as `reasoning_effort` where the provider documents it: Groq, DeepSeek,
    /// xAI, OpenRouter and Ollama; not Portkey (its chat request schema has no such field).
    fn accepts(&self, extension: Extension) -> bool {
        extension == Extension::ReasoningEffort && self.reasoning_effort
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = passthrough_body(req, Some(call.model()), false)?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(&OPENAI, call)))
    }
}
