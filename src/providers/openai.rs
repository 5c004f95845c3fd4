//! OpenAI and Azure OpenAI (`provider: openai` or `azure`, `openai_api_type: openai | azure |
//! azuread`): configuration, URLs and credentials. The wire format (request bodies, answers,
//! streams) is [`super::openai_wire`]'s, in its [`OPENAI`] dialect.
//!
//! Requests pass through: the unified schema is OpenAI's, so the body is the client's (nulls
//! removed, `n` defaulted) with `model` set for type `openai`, and `stream_options.include_usage`
//! injected for streams so the final chunk carries usage.

use super::native::{self, NativeApi, NativeRequest};
use super::openai_wire::{
    OPENAI, chat_decoder, completions_decoder, embeddings_decoder, passthrough_body, put_reasoning_effort,
};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, Secret};
use crate::error::GatewayError;
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default OpenAI base URL.
pub const DEFAULT_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiType {
    OpenAi,
    Azure,
    AzureAd,
}

/// The `openai` provider.
pub struct OpenAi {
    api_type: ApiType,
    base: BaseUrl,
    /// Where OpenAI's own Responses API is: the base for type `openai`; Azure's v1 API
    /// (`{resource}/openai/v1`) for the Azure types, where `model` names the deployment.
    responses_base: BaseUrl,
    /// Azure's deployment name (the `model` of a Responses request to Azure).
    deployment: Option<String>,
    auth: (http::HeaderName, http::HeaderValue),
    organization: Option<http::HeaderValue>,
}

const AZURE_TYPES: &str = "'OpenAIAPIType.AZURE' or 'OpenAIAPIType.AZUREAD'";

impl OpenAi {
    /// Build from `model.config` (MLflow's `OpenAIConfig` rules).
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<OpenAi, FieldError> {
        let key: Secret = cfg.required_secret("openai_api_key")?;
        let api_type = match cfg.string("openai_api_type")? {
            None => ApiType::OpenAi,
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "openai" => ApiType::OpenAi,
                "azure" => ApiType::Azure,
                "azuread" => ApiType::AzureAd,
                _ => return Err(cfg.error("openai_api_type", format!("Invalid OpenAI API type '{t}'"))),
            },
        };
        let base = cfg.url("openai_api_base")?;
        let version = cfg.string("openai_api_version")?;
        let deployment = cfg.string("openai_deployment_name")?;
        let organization = cfg.string("openai_organization")?;

        let kept_deployment = deployment.clone();
        let (base, responses_base) = match api_type {
            ApiType::OpenAi => {
                if deployment.is_some() {
                    return Err(cfg.error(
                        "openai_deployment_name",
                        format!(
                            "OpenAI route configuration can only specify a value for \
                             'openai_deployment_name' if 'openai_api_type' is {AZURE_TYPES}. Found type: 'openai'"
                        ),
                    ));
                }
                let base = match base {
                    Some(b) => b,
                    None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("openai_api_base", m))?,
                };
                let base = match &version {
                    Some(v) => base.with_query_param("api-version", v),
                    None => base,
                };
                (base.clone(), base)
            }
            ApiType::Azure | ApiType::AzureAd => {
                if organization.is_some() {
                    return Err(cfg.error(
                        "openai_organization",
                        "OpenAI route configuration can only specify a value for 'openai_organization' \
                         if 'openai_api_type' is 'OpenAIAPIType.OPENAI'",
                    ));
                }
                let (Some(base), Some(deployment), Some(version)) = (base, deployment, version) else {
                    return Err(cfg.error(
                        "openai_api_type",
                        format!(
                            "OpenAI route configuration must specify 'openai_api_base', \
                             'openai_deployment_name', and 'openai_api_version' if 'openai_api_type' is \
                             {AZURE_TYPES}."
                        ),
                    ));
                };
                let responses = base.join("openai/v1");
                (
                    base.join(&format!("openai/deployments/{deployment}")).with_query_param("api-version", &version),
                    responses,
                )
            }
        };
        let auth = match api_type {
            ApiType::Azure => (http::HeaderName::from_static("api-key"), key.expose().to_owned()),
            _ => (http::header::AUTHORIZATION, format!("Bearer {}", key.expose())),
        };
        let auth_value = secret_header(&auth.1)
            .ok_or_else(|| cfg.error("openai_api_key", "the key contains characters not allowed in an HTTP header"))?;
        let organization = match organization {
            Some(o) => Some(
                http::HeaderValue::from_str(&o)
                    .map_err(|_| cfg.error("openai_organization", "not a valid HTTP header value"))?,
            ),
            None => None,
        };
        Ok(OpenAi {
            api_type,
            base,
            responses_base,
            deployment: kept_deployment,
            auth: (auth.0, auth_value),
            organization,
        })
    }

    fn request(&self, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        self.request_at(&self.base, suffix, body)
    }

    fn request_at(&self, base: &BaseUrl, suffix: &str, body: Vec<u8>) -> UpstreamRequest {
        let mut r =
            UpstreamRequest::post_json(base, suffix, body).header_value(self.auth.0.clone(), self.auth.1.clone());
        if let Some(org) = &self.organization {
            r = r.header_value(http::HeaderName::from_static("openai-organization"), org.clone());
        }
        r
    }

    fn model<'a>(&self, call: &'a Call<'_>) -> Option<Option<&'a str>> {
        // Azure routes by deployment and takes no `model`.
        (self.api_type == ApiType::OpenAi).then(|| call.model())
    }
}

impl Provider for OpenAi {
    fn display_name(&self) -> &'static str {
        "OpenAI"
    }

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(self.request("", Vec::new()))
    }

    fn chat(&self, mut req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        // The Responses API's `reasoning.effort` is chat completions' `reasoning_effort`.
        put_reasoning_effort(&mut req);
        let body = passthrough_body(req, self.model(call), OPENAI.stream_options)?;
        Ok(Exchange::call(self.request("chat/completions", body), chat_decoder(&OPENAI, stream, call)))
    }

    fn accepts(&self, extension: Extension) -> bool {
        extension == Extension::ReasoningEffort
    }

    /// The Responses API goes to OpenAI's own (`{base}/responses`; Azure's v1 API with the
    /// deployment as `model`), and OpenAI-shaped chat and embeddings bodies of MLflow 3's
    /// passthrough routes to chat completions and embeddings; the client's `openai-beta`
    /// header is forwarded.
    fn native(&self, request: &NativeRequest<'_>, call: &Call<'_>) -> Option<Result<Exchange, GatewayError>> {
        let azure = self.api_type != ApiType::OpenAi;
        let (base, suffix, body) = match request.api {
            NativeApi::OpenAiResponses => {
                let model = if azure { self.deployment.as_deref() } else { call.model() };
                (&self.responses_base, "responses", request.body_for(model))
            }
            // MLflow 3's OpenAI passthrough: the body as sent, `model` set (Azure: removed, the
            // deployment is in the URL).
            NativeApi::OpenAiChat | NativeApi::OpenAiEmbeddings => {
                let suffix = if request.api == NativeApi::OpenAiChat { "chat/completions" } else { "embeddings" };
                let body = if azure { request.body_without_model() } else { request.body_for(call.model()) };
                (&self.base, suffix, body)
            }
            NativeApi::AnthropicMessages | NativeApi::AnthropicCountTokens | NativeApi::GeminiGenerateContent => {
                return None;
            }
        };
        Some(body.map(|body| {
            let mut upstream = self.request_at(base, suffix, body);
            if let Some(beta) = request.header("openai-beta") {
                upstream = upstream.header_value(http::HeaderName::from_static("openai-beta"), beta.clone());
            }
            Exchange::call(upstream, native::relay(request.api, request.stream, call.provider_label()))
        }))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = passthrough_body(req, self.model(call), OPENAI.stream_options)?;
        Ok(Exchange::call(self.request("completions", body), completions_decoder(&OPENAI, stream, call)))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = passthrough_body(req, self.model(call), false)?;
        Ok(Exchange::call(self.request("embeddings", body), embeddings_decoder(&OPENAI, call)))
    }
}
