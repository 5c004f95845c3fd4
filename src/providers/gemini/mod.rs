//! Google Gemini API (`provider: gemini`): chat, completions (both streamed too) and
//! embeddings over `generativelanguage.googleapis.com`.
//!
//! Config: `gemini_api_key` (required secret, sent as `x-goog-api-key`), `gemini_api_base`
//! (default [`DEFAULT_BASE`], normalised into a models base by [`models_base`], as MLflow 3.18
//! does). URLs: `{base}/{model}:generateContent`,
//! `{base}/{model}:streamGenerateContent?<base query>&alt=sse`, `{base}/{model}:embedContent`,
//! `{base}/{model}:batchEmbedContents`; the base's own query is kept on each.
//!
//! The translation lives in `request` (unified request → `generateContent` body) and
//! `response` (answers and SSE streams → unified answers); both are `pub(crate)` so that
//! `vertex_ai` can serve Gemini models with the same body (ids stripped) and decoders.

pub(crate) mod request;
pub(crate) mod response;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::native::{self, NativeApi, NativeRequest};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{Extension, Request};
use crate::upstream::{UpstreamRequest, secret_header};

use request::{BodyOptions, Thinking};

/// Default Gemini API base URL.
pub const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com/v1beta/models";

const DISPLAY: &str = "Gemini";

/// The `gemini` provider.
pub struct Gemini {
    base: BaseUrl,
    key: http::HeaderValue,
    /// `model.name`, escaped for use as a path segment.
    model_path: String,
    /// `model.name` as configured (batch embedding requests name it).
    model: String,
    /// How the model takes thinking settings (from its name).
    thinking: Thinking,
}

impl Gemini {
    /// Build from `model.config` (MLflow's `GeminiConfig`: `gemini_api_key`), plus the
    /// `gemini_api_base` override.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Gemini, FieldError> {
        let key = cfg.required_secret("gemini_api_key")?;
        let key = secret_header(key.expose())
            .ok_or_else(|| cfg.error("gemini_api_key", "the key contains characters not allowed in an HTTP header"))?;
        let base = match cfg.url("gemini_api_base")? {
            Some(b) => models_base(b).map_err(|m| cfg.error("gemini_api_base", m))?,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("gemini_api_base", m))?,
        };
        let model = model_name(spec)?;
        Ok(Gemini { base, key, model_path: path_segment(&model), thinking: Thinking::of(&model), model })
    }

    fn request(
        &self,
        method: &str,
        body: &impl serde::Serialize,
        stream: bool,
    ) -> Result<UpstreamRequest, GatewayError> {
        let suffix = format!("{}{method}", self.model_path);
        let body = super::to_json(body)?;
        let mut req = UpstreamRequest::post_json(&self.base, &suffix, body)
            .header_value(http::HeaderName::from_static("x-goog-api-key"), self.key.clone());
        if stream {
            req.target = self.base.target_with_query(&suffix, Some("alt=sse"));
        }
        Ok(req)
    }

    fn generate(&self, body: serde_json::Value, stream: bool) -> Result<UpstreamRequest, GatewayError> {
        let method = if stream { ":streamGenerateContent" } else { ":generateContent" };
        self.request(method, &body, stream)
    }
}

/// The API versions a `gemini_api_base` may name.
const API_VERSIONS: [&str; 3] = ["v1", "v1beta", "v1alpha"];

/// The models base a configured `gemini_api_base` stands for (MLflow 3.18's rule,
/// docs/mlflow-compat.md#mlflow-318): a path ending in `/{version}/models` is used as is, one
/// ending in `/{version}` gets `/models`, any other (a bare origin, a relay's prefix) gets
/// `/v1beta/models`; a path ending in `/models` without a known version before it is refused.
/// The query is kept (trailing `/`s are already gone from the parsed path).
fn models_base(base: BaseUrl) -> Result<BaseUrl, String> {
    let path = base.path.as_str();
    let last_is = |p: &str| API_VERSIONS.iter().any(|v| p.strip_suffix(v).is_some_and(|rest| rest.ends_with('/')));
    if let Some(rest) = path.strip_suffix("/models") {
        return if last_is(rest) {
            Ok(base)
        } else {
            Err("gemini_api_base ending in /models must include a supported API version \
                 (/v1, /v1beta, or /v1alpha) immediately before /models."
                .to_owned())
        };
    }
    Ok(if last_is(path) { base.join("models") } else { base.join("v1beta/models") })
}

/// `model.name`, which Gemini-style providers need for their URLs.
pub(crate) fn model_name(spec: &EndpointSpec<'_>) -> Result<String, FieldError> {
    match spec.model_name {
        Some(m) if !m.trim().is_empty() => Ok(m.to_owned()),
        _ => Err(FieldError::new(
            "model.name",
            format!("Field required: the {} provider puts the model name in its URLs", spec.provider_name),
        )),
    }
}

/// Everything but RFC 3986's path characters (unreserved, sub-delims, `:`, `@`) and `/`.
const NOT_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/');

/// A model name as URL path text: bytes outside RFC 3986's path characters are
/// percent-encoded (`/` is kept, for names like `tunedModels/x`).
pub(crate) fn path_segment(name: &str) -> String {
    utf8_percent_encode(name, NOT_PATH).to_string()
}

impl Provider for Gemini {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest::post_json(&self.base, "", Vec::new())
            .header_value(http::HeaderName::from_static("x-goog-api-key"), self.key.clone()))
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = request::chat_body(req, BodyOptions { strip_ids: false, thinking: self.thinking })?;
        Ok(Exchange::call(self.generate(body, stream)?, response::chat_decoder(stream, call, DISPLAY)))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let stream = req.stream();
        let body = request::completions_body(req, BodyOptions { strip_ids: false, thinking: self.thinking })?;
        Ok(Exchange::call(self.generate(body, stream)?, response::completions_decoder(stream, call, DISPLAY)))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let (body, method) = request::embeddings_body(req, &self.model)?;
        Ok(Exchange::call(self.request(method.suffix(), &body, false)?, response::embeddings_decoder(call, DISPLAY)))
    }

    /// `top_k` (`topK`), `thinking` and `reasoning.effort` (`thinkingConfig`): see
    /// [`request`] and docs/client-apis.md.
    fn accepts(&self, extension: Extension) -> bool {
        let _ = extension;
        true
    }

    fn error_answer(&self, status: u16, content_type: &str, body: &[u8]) -> GatewayError {
        error_answer(status, content_type, body)
    }

    /// Gemini's generateContent requests go to the endpoint's model as the client sent them.
    fn native(&self, request: &NativeRequest<'_>, call: &Call<'_>) -> Option<Result<Exchange, GatewayError>> {
        if request.api != NativeApi::GeminiGenerateContent {
            return None;
        }
        let method = if request.stream { ":streamGenerateContent" } else { ":generateContent" };
        let relay = native::relay(request.api, request.stream, call.provider_label());
        Some(self.request(method, request.body, request.stream).map(|upstream| Exchange::call(upstream, relay)))
    }
}

/// Gemini's error answers are `{"error": {"code", "message", "status"}}`, which the generic
/// mapping reads; the non-SSE stream method wraps them in a one-element list, unwrapped here.
pub(crate) fn error_answer(status: u16, content_type: &str, body: &[u8]) -> GatewayError {
    if let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(body)
        && let [first] = items.as_slice()
        && first.get("error").is_some()
    {
        let inner = serde_json::to_vec(first).unwrap_or_default();
        return super::default_error_answer(status, "application/json", &inner);
    }
    super::default_error_answer(status, content_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::error::Detail;
    use crate::schema::EndpointType;
    use serde_json::{Map, Value, json};

    fn spec(model: Option<&str>) -> EndpointSpec<'_> {
        EndpointSpec {
            index: 0,
            name: "g",
            endpoint_type: EndpointType::Chat,
            model_name: model,
            provider_name: ProviderName::Gemini,
        }
    }

    fn build(config: Value, model: Option<&str>) -> Result<Gemini, FieldError> {
        let map: Map<String, Value> = serde_json::from_value(config).unwrap();
        let mut cfg = ConfigMap::new(&map, "model.config");
        Gemini::from_config(&spec(model), &mut cfg)
    }

    #[test]
    fn model_names_as_path_text() {
        assert_eq!(path_segment("tunedModels/my-model_1.2~x"), "tunedModels/my-model_1.2~x");
        assert_eq!(path_segment("a!$&'()*+,;=:@b"), "a!$&'()*+,;=:@b");
        assert_eq!(path_segment("m x?y#z%\"é"), "m%20x%3Fy%23z%25%22%C3%A9");
    }

    #[test]
    fn config_defaults_and_errors() {
        let g = build(json!({"gemini_api_key": "k"}), Some("gemini-2.0-flash")).unwrap();
        assert_eq!(g.base.to_string(), DEFAULT_BASE);
        let req = g.generate(json!({}), true).unwrap();
        assert_eq!(req.target, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
        assert!(req.headers.iter().any(|(n, v)| n == "x-goog-api-key" && v == "k" && v.is_sensitive()));
        let req = g.generate(json!({}), false).unwrap();
        assert_eq!(req.target, "/v1beta/models/gemini-2.0-flash:generateContent");

        let g = build(json!({"gemini_api_key": "k", "gemini_api_base": "http://127.0.0.1:9/v1"}), Some("m x")).unwrap();
        assert_eq!(g.request(":embedContent", &json!({}), false).unwrap().target, "/v1/models/m%20x:embedContent");

        let err = build(json!({}), Some("m")).err().unwrap();
        assert_eq!((err.field.as_str(), err.message.as_str()), ("model.config.gemini_api_key", "Field required"));
        let err = build(json!({"gemini_api_key": "k", "gemini_api_base": "ftp://x"}), Some("m")).err().unwrap();
        assert_eq!(err.field, "model.config.gemini_api_base");
        let err = build(json!({"gemini_api_key": "k"}), None).err().unwrap();
        assert_eq!(err.field, "model.name");
        let err = build(json!({"gemini_api_key": "bad\nkey"}), Some("m")).err().unwrap();
        assert!(!err.message.contains("bad"), "no secret in messages: {}", err.message);
    }

    #[test]
    fn api_bases_are_normalised_into_models_bases() {
        let base = |value: &str| {
            build(json!({"gemini_api_key": "k", "gemini_api_base": value}), Some("m")).map(|g| g.base.to_string())
        };
        for (value, want) in [
            ("https://relay.example.com", "https://relay.example.com/v1beta/models"),
            ("https://relay.example.com/", "https://relay.example.com/v1beta/models"),
            ("https://relay.example.com/gemini/", "https://relay.example.com/gemini/v1beta/models"),
            ("https://h/proxy/x", "https://h/proxy/x/v1beta/models"),
            ("https://h/v1", "https://h/v1/models"),
            ("https://h/v1beta", "https://h/v1beta/models"),
            ("https://h/v1alpha/", "https://h/v1alpha/models"),
            ("https://h/gemini/v1", "https://h/gemini/v1/models"),
            ("https://h/v1/models", "https://h/v1/models"),
            ("https://h/v1beta/models/", "https://h/v1beta/models"),
            ("https://h/v1alpha/models", "https://h/v1alpha/models"),
            ("https://h/xv1", "https://h/xv1/v1beta/models"),
            ("https://h/v1beta?key=abc&flag=", "https://h/v1beta/models?key=abc&flag="),
        ] {
            assert_eq!(base(value).as_deref(), Ok(want), "{value}");
        }
        for value in ["https://h/models", "https://h/v2/models", "https://h/models/", "https://h/xv1/models"] {
            let err = base(value).unwrap_err();
            assert_eq!(err.field, "model.config.gemini_api_base", "{value}");
            assert_eq!(
                err.message,
                "gemini_api_base ending in /models must include a supported API version \
                 (/v1, /v1beta, or /v1alpha) immediately before /models.",
                "{value}"
            );
        }
        // The stream's `alt=sse` goes after the base's own query.
        let g = build(json!({"gemini_api_key": "k", "gemini_api_base": "https://h/v1beta?key=abc&flag="}), Some("m"))
            .unwrap();
        assert_eq!(
            g.generate(json!({}), true).unwrap().target,
            "/v1beta/models/m:streamGenerateContent?key=abc&flag=&alt=sse"
        );
    }

    #[test]
    fn error_shapes() {
        let body = br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#;
        let e = error_answer(400, "application/json; charset=UTF-8", body);
        assert_eq!((e.status, e.detail), (400, Detail::Text("API key not valid.".into())));
        let body = br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}]"#;
        let e = error_answer(429, "application/json", body);
        assert_eq!((e.status, e.detail), (429, Detail::Text("Quota exceeded".into())));
    }
}
