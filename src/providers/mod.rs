//! Providers: one module per provider, each with its configuration, its request and response
//! translation, and its tests side by side.
//!
//! A provider is built once per endpoint from `model.config` (credentials resolved, URLs and
//! headers prepared) and then turns each unified [`Request`] into an [`Exchange`]: the upstream
//! HTTP request plus the decoder for its answer. The [`Provider`] trait's default methods answer
//! MLflow's 501 "not implemented", so a provider overrides only what it serves.

pub mod ai21labs;
pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod databricks;
pub mod gemini;
pub mod huggingface;
pub mod mistral;
pub mod mlflow_model_serving;
pub mod mock;
pub mod mosaicml;
pub mod native;
pub mod openai;
pub mod openai_compatible;
pub mod openai_wire;
pub mod palm;
pub mod togetherai;
pub mod token_cache;
pub mod unsupported;
pub mod vertex_ai;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

pub use crate::config::EndpointSpec;
use crate::config::{ConfigMap, Endpoint, FieldError, ProviderName};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::StreamDecoder;
pub use crate::framing::{is_json, media_type};
use crate::schema::{Answer, EndpointType, Extension, Request};
use crate::upstream::{UpstreamRequest, Upstreams};

/// Per-request context for a provider.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The endpoint being called (for a traffic route: the chosen destination).
    pub endpoint: &'a Endpoint,
    /// Unix seconds at the start of the request, for `created` fields the gateway fills in.
    pub created: u64,
}

impl Call<'_> {
    /// The `provider` value of chat answers: the provider name as configured.
    pub fn provider_label(&self) -> &'static str {
        self.endpoint.provider_name.as_str()
    }

    /// `model.name`, if configured.
    pub fn model(&self) -> Option<&str> {
        self.endpoint.model_name.as_deref()
    }
}

/// Decodes a complete (non-streamed) 2xx upstream body into the unified answer.
pub type JsonDecoder = Box<dyn FnOnce(&[u8]) -> Result<Answer, GatewayError> + Send>;

/// Decodes the 2xx bodies of several upstream calls (in request order) into one answer.
pub type ManyDecoder = Box<dyn FnOnce(Vec<bytes::Bytes>) -> Result<Answer, GatewayError> + Send>;

/// How the answer of one call is decoded.
pub enum Decoder {
    /// One JSON body.
    Json(JsonDecoder),
    /// A stream.
    Stream(Box<dyn StreamDecoder>),
}

/// One provider call, ready to run. Only valid shapes can be built: a call and the decoder of
/// its answer, a fan-out and the decoder of all its answers, or an answer made in process.
pub enum Exchange {
    /// One upstream HTTP call.
    Call {
        /// What to send.
        request: UpstreamRequest,
        /// How to read its answer.
        decoder: Decoder,
    },
    /// Several independent upstream calls made concurrently, all of which must succeed (e.g.
    /// Bedrock Titan embeddings: one call per input).
    FanOut {
        /// What to send, in order.
        requests: Vec<UpstreamRequest>,
        /// How to read their 2xx JSON answers, in the same order.
        decode: ManyDecoder,
    },
    /// An answer made in process by the built-in mock provider, in OpenAI's wire format.
    Local {
        /// The wire bytes, delivered with the configured delays.
        answer: mock::MockAnswer,
        /// How to read them (the OpenAI wire decoders).
        decoder: Decoder,
    },
}

impl Exchange {
    /// One upstream call.
    pub fn call(request: UpstreamRequest, decoder: Decoder) -> Exchange {
        Exchange::Call { request, decoder }
    }

    /// Concurrent upstream calls decoded together.
    pub fn fan_out(requests: Vec<UpstreamRequest>, decode: ManyDecoder) -> Exchange {
        Exchange::FanOut { requests, decode }
    }
}

/// A configuration for provider tests, validated with every endpoint's provider settings.
#[cfg(test)]
pub(crate) fn test_config(yaml: &str) -> crate::config::GatewayConfig {
    crate::config::GatewayConfig::parse(yaml, std::path::Path::new("test.yaml"), &mut |spec, cfg| {
        build(spec, cfg).map(drop)
    })
    .expect("a valid test configuration")
}

#[cfg(test)]
impl Exchange {
    /// The request of a single call (panics on other shapes: for tests).
    pub(crate) fn http(&self) -> &UpstreamRequest {
        match self {
            Exchange::Call { request, .. } => request,
            _ => panic!("a single upstream call was expected"),
        }
    }

    /// The requests of a fan-out (panics on other shapes: for tests).
    pub(crate) fn fan_out_requests(&self) -> &[UpstreamRequest] {
        match self {
            Exchange::FanOut { requests, .. } => requests,
            _ => panic!("a fan-out was expected"),
        }
    }

    /// Whether the answer is decoded as a stream.
    pub(crate) fn streams(&self) -> bool {
        matches!(
            self,
            Exchange::Call { decoder: Decoder::Stream(_), .. } | Exchange::Local { decoder: Decoder::Stream(_), .. }
        )
    }
}

/// A provider serving one endpoint.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The name MLflow uses in messages (`OpenAI`, `Anthropic`, `Amazon Bedrock`, …).
    fn display_name(&self) -> &'static str;

    /// Translate a chat request.
    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let _ = (req, call);
        Err(GatewayError::not_implemented("chat", self.display_name()))
    }

    /// Translate a completions request.
    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let _ = (req, call);
        Err(GatewayError::not_implemented("completions", self.display_name()))
    }

    /// Translate an embeddings request.
    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let _ = (req, call);
        Err(GatewayError::not_implemented("embeddings", self.display_name()))
    }

    /// Serve a request of a client API this provider speaks itself (Anthropic's Messages API,
    /// OpenAI's Responses API) without translating it: the client's body goes upstream with
    /// only `model` replaced, and the answer is relayed ([`native`]). `None` (the default): not
    /// spoken here, so the request is translated through the unified schema instead.
    fn native(&self, request: &native::NativeRequest<'_>, call: &Call<'_>) -> Option<Result<Exchange, GatewayError>> {
        let _ = (request, call);
        None
    }

    /// The upstream of MLflow 3's raw proxy route (`/gateway/proxy/{endpoint}/{path}`): a
    /// template with the provider's origin, its base path as `target`, and the headers its API
    /// wants (credentials, versions); [`Provider::authorize`] still runs on it for credentials
    /// that need I/O (OAuth tokens). The default refuses with a 400: a provider whose requests
    /// must be signed over their body (SigV4) cannot be proxied without reading the body.
    fn raw_upstream(&self) -> Result<UpstreamRequest, GatewayError> {
        Err(GatewayError::bad_request(format!(
            "The raw proxy route is not available for {} endpoints (their requests need a translation or a \
             signature over the body)",
            self.display_name()
        )))
    }

    /// Whether this provider's translation honours `extension` (a request feature outside
    /// MLflow's unified schema, from the Anthropic Messages or OpenAI Responses APIs). The
    /// default: none; a request using one is refused with a 400 naming the field.
    fn accepts(&self, extension: Extension) -> bool {
        let _ = extension;
        false
    }

    /// Add credentials that need I/O or the final body (OAuth tokens, SigV4). Runs right
    /// before each request is sent; `http` can fetch tokens (see [`Upstreams::fetch`]).
    async fn authorize(&self, req: &mut UpstreamRequest, http: &Upstreams) -> Result<(), GatewayError> {
        let _ = (req, http);
        Ok(())
    }

    /// Map an upstream's error answer (status ≥ 300) to the client's error. The default is
    /// MLflow's mapping, [`default_error_answer`].
    fn error_answer(&self, status: u16, content_type: &str, body: &[u8]) -> GatewayError {
        default_error_answer(status, content_type, body)
    }
}

/// Dispatch a request to the provider method for its endpoint type.
pub fn prepare(provider: &dyn Provider, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
    match req.endpoint_type {
        EndpointType::Chat => provider.chat(req, call),
        EndpointType::Completions => provider.completions(req, call),
        EndpointType::Embeddings => provider.embeddings(req, call),
    }
}

/// MLflow's answer when a provider can serve a type but not stream it (sent before any
/// upstream call, as JSON, instead of MLflow's empty 200 stream).
pub fn streaming_not_implemented(noun: &str, display: &str) -> GatewayError {
    GatewayError::new(
        501,
        ErrorKind::NotImplemented,
        format!("The {noun} streaming route is not implemented for {display} models."),
    )
}

/// Build the provider for an endpoint from its `model.config`.
pub fn build(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Arc<dyn Provider>, FieldError> {
    use ProviderName as P;
    Ok(match spec.provider_name {
        P::OpenAi | P::Azure => Arc::new(openai::OpenAi::from_config(spec, cfg)?),
        P::Groq | P::DeepSeek | P::Xai | P::OpenRouter | P::Ollama | P::Portkey => {
            Arc::new(openai_compatible::build(spec, cfg)?)
        }
        P::Anthropic => Arc::new(anthropic::Anthropic::from_config(spec, cfg)?),
        P::Gemini => Arc::new(gemini::Gemini::from_config(spec, cfg)?),
        P::Palm => Arc::new(palm::Palm::from_config(spec, cfg)?),
        P::Bedrock | P::AmazonBedrock => Arc::new(bedrock::Bedrock::from_config(spec, cfg)?),
        P::Mistral => Arc::new(mistral::Mistral::from_config(spec, cfg)?),
        P::TogetherAi => Arc::new(togetherai::TogetherAi::from_config(spec, cfg)?),
        P::Cohere => Arc::new(cohere::Cohere::from_config(spec, cfg)?),
        P::MosaicMl => Arc::new(mosaicml::MosaicMl::from_config(spec, cfg)?),
        P::HuggingFaceTgi => Arc::new(huggingface::HuggingFaceTgi::from_config(spec, cfg)?),
        P::Ai21Labs => Arc::new(ai21labs::Ai21Labs::from_config(spec, cfg)?),
        P::MlflowModelServing => Arc::new(mlflow_model_serving::MlflowModelServing::from_config(spec, cfg)?),
        P::Databricks | P::DatabricksModelServing => Arc::new(databricks::Databricks::from_config(spec, cfg)?),
        P::VertexAi => Arc::new(vertex_ai::VertexAi::from_config(spec, cfg)?),
        P::Mock => Arc::new(mock::Mock::from_config(spec, cfg)?),
        P::LiteLlm | P::SapAiCore | P::Typesafe => return Err(unsupported::rejection(spec.provider_name)),
    })
}

/// MLflow's mapping of an upstream error answer (`send_request` in its providers/utils.py),
/// with its crash on `{"error": "<string>"}` fixed:
/// * JSON with an `error` object → its `message` (or the status reason when it has none), and
///   its `code` and `param` relayed as sent (OpenAI's `context_length_exceeded` and the like);
/// * JSON with an `error` string → that string;
/// * other JSON → the whole object as the detail;
/// * anything else → `{"message": "<text>"}`.
pub fn default_error_answer(status: u16, content_type: &str, body: &[u8]) -> GatewayError {
    let status = if (400..=599).contains(&status) { status } else { 502 };
    let mut err = GatewayError::new(status, ErrorKind::Upstream, String::new());
    let json = if is_json(content_type) || content_type.is_empty() {
        serde_json::from_slice::<Value>(body).ok()
    } else {
        None
    };
    err.detail = match json {
        Some(Value::Object(mut o)) => match o.remove("error") {
            Some(Value::Object(e)) => {
                match e.get("code") {
                    Some(Value::String(c)) => err.code = Some(c.clone().into()),
                    Some(Value::Number(n)) => err.code = Some(n.to_string().into()),
                    _ => {}
                }
                if let Some(Value::String(p)) = e.get("param") {
                    err.param = Some(p.clone());
                }
                match e.get("message").and_then(Value::as_str) {
                    Some(m) => crate::error::Detail::Text(m.to_owned()),
                    None => crate::error::Detail::Text(reason(status).to_owned()),
                }
            }
            Some(Value::String(s)) => crate::error::Detail::Text(s),
            Some(other) => {
                o.insert("error".into(), other);
                crate::error::Detail::Json(Box::new(Value::Object(o)))
            }
            None => crate::error::Detail::Json(Box::new(Value::Object(o))),
        },
        Some(other) => crate::error::Detail::Json(Box::new(other)),
        None => {
            let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned();
            crate::error::Detail::Json(Box::new(serde_json::json!({ "message": text })))
        }
    };
    err
}

/// The reason phrase of a status.
pub fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error")
}

/// Parse an upstream JSON body, or fail with 502.
pub fn parse_upstream_json<'a, T: serde::Deserialize<'a>>(body: &'a [u8], provider: &str) -> Result<T, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_gateway(format!("{provider} returned a response the gateway cannot read: {e}")))
}

/// Serialise an upstream request body.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(value).map_err(|e| GatewayError::internal(format!("cannot serialise the answer: {e}")))
}

/// Python's `json.dumps(value)` with its defaults (`", "` and `": "` separators, non-ASCII
/// escaped as `\uXXXX`, keys in their given order). MLflow encodes tool-call arguments this way,
/// and clients compare them byte for byte.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_str(k, out);
                out.push_str(": ");
                write_python_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_python_str(s, out),
        Value::Number(n) => match n.as_f64() {
            // Python prints integral floats with ".0", integers without.
            Some(f) if !n.is_i64() && !n.is_u64() && f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => {
                out.push_str(&format!("{f:.1}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

fn write_python_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Split a `data:<mime>;base64,<data>` URL into its media type and base64 payload.
pub fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, data))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    unix_secs(std::time::SystemTime::now())
}

/// Seconds from the Unix epoch to `t` (0 before it).
pub fn unix_secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Detail, Family};
    use serde_json::json;

    #[test]
    fn python_json_matches_json_dumps() {
        let v: Value = serde_json::from_str(
            r#"{"location": "Singapore", "n": [1, 2.5, 3.0], "ok": true, "z": null, "s": "caf\u00e9 \"q\"\n"}"#,
        )
        .unwrap();
        assert_eq!(
            python_json(&v),
            r#"{"location": "Singapore", "n": [1, 2.5, 3.0], "ok": true, "z": null, "s": "caf\u00e9 \"q\"\n"}"#
        );
        assert_eq!(python_json(&json!({"e": "😀"})), r#"{"e": "\ud83d\ude00"}"#);
        assert_eq!(python_json(&json!({})), "{}");
    }

    #[test]
    fn data_urls() {
        assert_eq!(parse_data_url("data:image/png;base64,iVBO"), Some(("image/png", "iVBO")));
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:image/png,raw"), None);
    }

    #[test]
    fn upstream_error_shapes() {
        let e = default_error_answer(
            400,
            "application/json",
            br#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
        );
        assert_eq!(e.status, 400);
        assert_eq!(e.detail, Detail::Text("Invalid value for 'temperature'".into()));
        assert_eq!((e.code.as_deref(), e.param.as_deref()), (Some("invalid_value"), Some("temperature")));
        let v: Value = serde_json::from_slice(&e.body(Family::OpenAi)).unwrap();
        assert_eq!(v["error"]["code"], json!("invalid_value"), "the upstream's own code reaches the client");

        let e = default_error_answer(429, "application/json", br#"{"error":{"type":"x"}}"#);
        assert_eq!(e.detail, Detail::Text("Too Many Requests".into()));

        let e = default_error_answer(500, "application/json", br#"{"error":"boom"}"#);
        assert_eq!(e.detail, Detail::Text("boom".into()));

        let e = default_error_answer(503, "application/json", br#"{"message":"overloaded"}"#);
        assert_eq!(e.detail, Detail::Json(Box::new(json!({"message": "overloaded"}))));
        assert_eq!(e.message(), "overloaded");

        let e = default_error_answer(502, "text/plain", b"bad gateway");
        assert_eq!(e.body(Family::Native), bytes::Bytes::from(r#"{"detail":{"message":"bad gateway"}}"#));
    }
}
