//! Hugging Face Text Generation Inference (`provider: huggingface-text-generation-inference`).
//!
//! Config: `hf_server_url` (required: the TGI server's base URL). Completions only:
//! `POST {hf_server_url}/generate` with `{"inputs": prompt, "parameters": {…request,
//! max_tokens → max_new_tokens, temperature ×50 (at least 0.001), details: true,
//! decoder_input_details: true}}`; `n` must be 1 (422). The answer: text `generated_text`,
//! finish reason `details.finish_reason`, usage from the prefill length and
//! `details.generated_tokens`. Streaming is not served (501).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, fields::FIELD_REQUIRED};
use crate::error::GatewayError;
use crate::schema::{Answer, CompletionChoice, CompletionsResponse, Request, Usage};
use crate::upstream::UpstreamRequest;

const DISPLAY: &str = "Hugging Face Text Generation Inference";

/// The `huggingface-text-generation-inference` provider.
pub struct HuggingFaceTgi {
    base: BaseUrl,
}

impl HuggingFaceTgi {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<HuggingFaceTgi, FieldError> {
        let base = cfg.url("hf_server_url")?.ok_or_else(|| cfg.error("hf_server_url", FIELD_REQUIRED))?;
        Ok(HuggingFaceTgi { base })
    }
}

/// TGI's temperature: ×50 (TGI's range is 0–100, the unified one 0–2), never below 0.001
/// (TGI refuses 0). An integer stays an integer, as in Python.
fn scale_temperature(v: &Value) -> Value {
    if let Some(i) = v.as_u64() {
        return if i == 0 { Value::from(1e-3) } else { Value::from(50 * i) };
    }
    match v.as_f64() {
        Some(t) => Value::from((50.0 * t).max(1e-3)),
        None => v.clone(),
    }
}

/// The `/generate` body.
fn generate_body(req: Request) -> Result<Value, GatewayError> {
    let mut body = req.body;
    if body.contains_key("max_new_tokens") {
        return Err(GatewayError::invalid("Invalid parameter max_new_tokens. Use max_tokens instead."));
    }
    let n = body.remove("n").unwrap_or(Value::from(1));
    if n.as_u64() != Some(1) {
        let shown = match &n {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(GatewayError::invalid(format!(
            "'n' must be '1' for the Text Generation Inference provider.Received value: '{shown}'."
        )));
    }
    let prompt = body.remove("prompt").unwrap_or(Value::Null);
    let mut params = Map::with_capacity(body.len() + 2);
    for (k, v) in body {
        match k.as_str() {
            "max_tokens" => {
                params.insert("max_new_tokens".into(), v);
            }
            "temperature" => {
                params.insert(k, scale_temperature(&v));
            }
            "model" => {}
            _ => {
                params.insert(k, v);
            }
        }
    }
    params.insert("details".into(), Value::Bool(true));
    params.insert("decoder_input_details".into(), Value::Bool(true));
    Ok(serde_json::json!({"inputs": prompt, "parameters": params}))
}

#[derive(Deserialize)]
struct WireGenerate {
    generated_text: Option<String>,
    details: Option<WireDetails>,
}

#[derive(Deserialize)]
struct WireDetails {
    finish_reason: Option<String>,
    generated_tokens: Option<u64>,
    prefill: Option<Vec<Value>>,
}

fn decode(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireGenerate = super::parse_upstream_json(body, DISPLAY)?;
    let (finish_reason, prompt_tokens, completion_tokens) = match wire.details {
        Some(d) => (d.finish_reason, d.prefill.map(|p| p.len() as u64), d.generated_tokens),
        None => (None, None, None),
    };
    let choice = CompletionChoice::new(0, Some(wire.generated_text.unwrap_or_default()), finish_reason);
    Ok(Answer::Completions(CompletionsResponse::new(
        None,
        created,
        model,
        vec![choice],
        Usage::new(prompt_tokens, completion_tokens),
    )))
}

impl Provider for HuggingFaceTgi {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let body = super::to_json(&generate_body(req)?)?;
        let (model, created) = (call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            UpstreamRequest::post_json(&self.base, "generate", body),
            Decoder::Json(Box::new(move |b| decode(b, model, created))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EndpointType, parse_request};
    use serde_json::json;

    fn req(body: Value) -> Request {
        parse_request(EndpointType::Completions, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn config_needs_the_server_url() {
        let spec = EndpointSpec {
            index: 0,
            name: "t",
            endpoint_type: EndpointType::Completions,
            model_name: None,
            provider_name: crate::config::ProviderName::HuggingFaceTgi,
        };
        let empty = Map::new();
        let err = HuggingFaceTgi::from_config(&spec, &mut ConfigMap::new(&empty, "model.config")).err().unwrap();
        assert_eq!((err.field.as_str(), err.message.as_str()), ("model.config.hf_server_url", FIELD_REQUIRED));
        let cfg = json!({"hf_server_url": "http://tgi:8080/base/"});
        let p =
            HuggingFaceTgi::from_config(&spec, &mut ConfigMap::new(cfg.as_object().unwrap(), "model.config")).unwrap();
        assert_eq!(UpstreamRequest::post_json(&p.base, "generate", vec![]).url(), "http://tgi:8080/base/generate");
    }

    #[test]
    fn body_translation() {
        let b = generate_body(req(json!({"prompt": "p", "max_tokens": 5, "temperature": 0.5, "top_p": 0.9}))).unwrap();
        assert_eq!(
            b,
            json!({"inputs": "p", "parameters": {"max_new_tokens": 5, "temperature": 25.0, "top_p": 0.9,
                   "details": true, "decoder_input_details": true}})
        );
        let b = generate_body(req(json!({"prompt": "p", "temperature": 0.0}))).unwrap();
        assert_eq!(b["parameters"]["temperature"], json!(0.001));
        // Without a temperature none is sent (MLflow fails with a KeyError).
        let b = generate_body(req(json!({"prompt": "p"}))).unwrap();
        assert!(b["parameters"].get("temperature").is_none());
        assert_eq!(scale_temperature(&json!(1)), json!(50));
    }

    #[test]
    fn rules() {
        let e = generate_body(req(json!({"prompt": "p", "n": 2}))).unwrap_err();
        assert_eq!(
            (e.status, e.message()),
            (422, "'n' must be '1' for the Text Generation Inference provider.Received value: '2'.".into())
        );
        let e = generate_body(req(json!({"prompt": "p", "max_new_tokens": 2}))).unwrap_err();
        assert_eq!(e.message(), "Invalid parameter max_new_tokens. Use max_tokens instead.");
    }

    #[test]
    fn answer() {
        let body = json!({"generated_text": "x", "details": {"finish_reason": "eos_token", "generated_tokens": 3,
            "prefill": [{"id": 1}, {"id": 2}]}});
        let v: Value = serde_json::to_value(decode(body.to_string().as_bytes(), Some("m".into()), 5).unwrap()).unwrap();
        assert_eq!(v["usage"], json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
        assert_eq!(v["choices"][0]["finish_reason"], json!("eos_token"));
        assert_eq!(decode(b"[1]", None, 0).unwrap_err().status, 502);
    }
}
