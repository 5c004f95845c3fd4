//! MosaicML (`provider: mosaicml`, deprecated in MLflow; a warning is logged when an endpoint
//! using it is loaded).
//!
//! Config: `mosaicml_api_key` (required secret, sent as `Authorization: <key>` without
//! `Bearer`), `mosaicml_api_base` (default `https://models.hosted-on.mosaicml.hosting`). Every
//! call is `POST {base}/{model.name}/v1/predict`. A chat endpoint needs a Llama-2 model (the
//! name starts with `llama2`, checked when the configuration loads).
//!
//! * Completions: `{"inputs": [prompt], "parameters": {…request, max_tokens → max_new_tokens}}`.
//! * Chat: the messages are rendered as one Llama-2 prompt (`<s>[INST] <<SYS>> … <</SYS>> …
//!   [/INST] … </s><s>…`); roles other than system/user/assistant are a 422.
//! * Embeddings: `{"inputs": [texts…], …request}`.
//! * Answers come from `outputs`; no streaming (501). An upstream 500 whose message says the
//!   token allowance was exceeded is the client's fault and becomes a 422 (as MLflow).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::{Detail, GatewayError};
use crate::schema::{
    Answer, ChatChoice, ChatResponse, CompletionChoice, CompletionsResponse, Embedding, EmbeddingsResponse,
    EmbeddingsUsage, EndpointType, Request, ResponseMessage, Usage,
};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default MosaicML base URL.
pub const DEFAULT_BASE: &str = "https://models.hosted-on.mosaicml.hosting";

const DISPLAY: &str = "MosaicML";

/// Model name prefixes a chat endpoint accepts (compared case-insensitively).
const CHAT_MODEL_PREFIXES: &[&str] = &["llama2"];

/// The `mosaicml` provider.
pub struct MosaicMl {
    /// `{base}/{model}`.
    model_base: BaseUrl,
    auth: http::HeaderValue,
}

impl MosaicMl {
    /// Build from `model.config`.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<MosaicMl, FieldError> {
        let key = cfg.required_secret("mosaicml_api_key")?;
        let base = match cfg.url("mosaicml_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("mosaicml_api_base", m))?,
        };
        let name = spec.model_name.unwrap_or_default();
        if spec.endpoint_type == EndpointType::Chat
            && !CHAT_MODEL_PREFIXES.iter().any(|p| name.to_ascii_lowercase().starts_with(p))
        {
            return Err(FieldError::new(
                "model.name",
                format!(
                    "An invalid model has been specified for the chat route. '{}'. Ensure the model selected \
                     starts with one of: ['llama2']",
                    spec.model_name.unwrap_or("None")
                ),
            ));
        }
        if name.is_empty() {
            return Err(FieldError::new("model.name", "MosaicML needs model.name: it is part of the request URL"));
        }
        let auth = secret_header(key.expose()).ok_or_else(|| {
            cfg.error("mosaicml_api_key", "the key contains characters not allowed in an HTTP header")
        })?;
        log::warn!("endpoint '{}': the mosaicml provider is deprecated in MLflow", spec.name);
        Ok(MosaicMl { model_base: base.join(name), auth })
    }

    fn request(&self, body: Vec<u8>) -> UpstreamRequest {
        UpstreamRequest::post_json(&self.model_base, "v1/predict", body)
            .header_value(http::header::AUTHORIZATION, self.auth.clone())
    }
}

/// 422 when the client sends MosaicML's own name for a unified parameter.
fn refuse_native(body: &Map<String, Value>, ours: &str, theirs: &str) -> Result<(), GatewayError> {
    if body.contains_key(theirs) {
        return Err(GatewayError::invalid(format!("Invalid parameter {theirs}. Use {ours} instead.")));
    }
    Ok(())
}

/// The `parameters` object: the request minus `skip`, with `max_tokens` → `max_new_tokens`.
fn parameters(body: Map<String, Value>, skip: &str) -> Result<Map<String, Value>, GatewayError> {
    refuse_native(&body, "max_tokens", "max_new_tokens")?;
    let mut out = Map::with_capacity(body.len());
    for (k, v) in body {
        match k.as_str() {
            "max_tokens" => {
                out.insert("max_new_tokens".into(), v);
            }
            "model" => {}
            _ if k == skip => {}
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

fn invalid_structure(why: &str) -> GatewayError {
    GatewayError::invalid(format!("An invalid request structure was submitted. {why}"))
}

/// Message content as prompt text: a string, or the text parts of a list joined with `\n`
/// (null is empty).
fn text_of(content: Option<&Value>) -> Result<String, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for p in parts {
                if p.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(invalid_structure("Only text content can be rendered into a Llama-2 prompt."));
                }
                texts.push(p.get("text").and_then(Value::as_str).unwrap_or_default());
            }
            Ok(texts.join("\n"))
        }
        Some(other) => Ok(other.to_string()),
    }
}

/// Render chat messages as one Llama-2 prompt
/// (`<s>[INST] <<SYS>> {system} <</SYS>> {user} [/INST] {assistant} </s><s>[INST] …`):
/// consecutive system/user messages share one `[INST]` block.
fn llama2_prompt(messages: &[Value]) -> Result<String, GatewayError> {
    const CLOSE: &str = " [/INST]";
    let mut prompt = String::from("<s>");
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = text_of(m.get("content"))?;
        match role {
            "system" | "user" => {
                let inst = if role == "system" { format!("<<SYS>> {content} <</SYS>>") } else { content };
                if prompt.ends_with("[/INST]") {
                    // Continue the open instruction block: drop its "[/INST]" (keeping the space).
                    prompt.truncate(prompt.len() - "[/INST]".len());
                } else {
                    prompt.push_str("[INST] ");
                }
                prompt.push_str(&inst);
                prompt.push_str(CLOSE);
            }
            "assistant" => {
                prompt.push(' ');
                prompt.push_str(&content);
                prompt.push_str(" </s><s>");
            }
            other => {
                return Err(invalid_structure(&format!(
                    "Invalid role {other} inputted. Must be one of 'system', 'user', or 'assistant'."
                )));
            }
        }
    }
    // Leave the prompt open for the assistant's completion.
    if prompt.ends_with("</s><s>") {
        prompt.truncate(prompt.len() - "</s><s>".len());
    }
    Ok(prompt)
}

fn chat_body(req: Request) -> Result<Value, GatewayError> {
    let prompt = llama2_prompt(req.messages())?;
    let params = parameters(req.body, "messages")?;
    Ok(serde_json::json!({"inputs": [prompt], "parameters": params}))
}

fn completions_body(mut req: Request) -> Result<Value, GatewayError> {
    let prompt = req.body.remove("prompt").unwrap_or(Value::Null);
    let params = parameters(req.body, "prompt")?;
    Ok(serde_json::json!({"inputs": [prompt], "parameters": params}))
}

fn embeddings_body(req: Request) -> Result<Value, GatewayError> {
    refuse_native(&req.body, "input", "inputs")?;
    let mut out = Map::with_capacity(req.body.len());
    for (k, v) in req.body {
        match k.as_str() {
            "input" => {
                let inputs = match v {
                    Value::String(s) => Value::Array(vec![Value::String(s)]),
                    other => other,
                };
                out.insert("inputs".into(), inputs);
            }
            "model" => {}
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(Value::Object(out))
}

impl Provider for MosaicMl {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("chat", DISPLAY));
        }
        let body = super::to_json(&chat_body(req)?)?;
        let (provider, model, created) = (call.provider_label(), call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            self.request(body),
            Decoder::Json(Box::new(move |b| {
                let choices = outputs(b)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| ChatChoice::new(i as u32, ResponseMessage::assistant(Some(output_text(o))), None))
                    .collect();
                Ok(Answer::Chat(ChatResponse::new(None, created, model, choices, Usage::default(), provider)))
            })),
        ))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let body = super::to_json(&completions_body(req)?)?;
        let (model, created) = (call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            self.request(body),
            Decoder::Json(Box::new(move |b| {
                let choices = outputs(b)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, o)| CompletionChoice::new(i as u32, Some(output_text(o)), None))
                    .collect();
                Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
            })),
        ))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let body = super::to_json(&embeddings_body(req)?)?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(
            self.request(body),
            Decoder::Json(Box::new(move |b| {
                let data = outputs(b)?.into_iter().enumerate().map(|(i, e)| Embedding::new(i as u32, e)).collect();
                Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
            })),
        ))
    }

    fn error_answer(&self, status: u16, content_type: &str, body: &[u8]) -> GatewayError {
        let mut err = super::default_error_answer(status, content_type, body);
        if status == 500 && is_token_allowance_error(&err.detail) {
            // MosaicML reports these request problems as server errors; MLflow maps them to 422.
            err.status = 422;
            err.kind = crate::error::ErrorKind::InvalidRequest;
        }
        err
    }
}

/// Whether a relayed error detail is MosaicML's "too many tokens" complaint.
fn is_token_allowance_error(detail: &Detail) -> bool {
    let message = match detail {
        Detail::Json(v) => v.get("message").and_then(Value::as_str),
        _ => None,
    };
    message.is_some_and(|m| {
        ["Error: max output tokens is limited to", "Error: prompt token count"].iter().any(|p| m.starts_with(p))
    })
}

#[derive(Deserialize)]
struct WireOutputs {
    outputs: Vec<Value>,
}

fn outputs(body: &[u8]) -> Result<Vec<Value>, GatewayError> {
    Ok(super::parse_upstream_json::<WireOutputs>(body, DISPLAY)?.outputs)
}

fn output_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use serde_json::json;

    use crate::schema::testing::req;

    fn spec(t: EndpointType, name: Option<&'static str>) -> EndpointSpec<'static> {
        EndpointSpec { index: 0, name: "m", endpoint_type: t, model_name: name, provider_name: ProviderName::MosaicMl }
    }

    #[test]
    fn chat_model_must_be_llama2() {
        let cfg = json!({"mosaicml_api_key": "k"});
        let map = cfg.as_object().unwrap();
        let err =
            MosaicMl::from_config(&spec(EndpointType::Chat, Some("mpt-7b")), &mut ConfigMap::new(map, "model.config"))
                .err()
                .unwrap();
        assert_eq!(err.field, "model.name");
        assert_eq!(
            err.message,
            "An invalid model has been specified for the chat route. 'mpt-7b'. Ensure the model selected starts with one of: ['llama2']"
        );
        assert!(
            MosaicMl::from_config(
                &spec(EndpointType::Chat, Some("LLaMa2-70b")),
                &mut ConfigMap::new(map, "model.config")
            )
            .is_ok()
        );
        assert!(
            MosaicMl::from_config(
                &spec(EndpointType::Completions, Some("mpt-7b")),
                &mut ConfigMap::new(map, "model.config")
            )
            .is_ok()
        );
        let p = MosaicMl::from_config(
            &spec(EndpointType::Embeddings, Some("instructor")),
            &mut ConfigMap::new(map, "model.config"),
        )
        .unwrap();
        let r = p.request(vec![]);
        assert_eq!(r.url(), "https://models.hosted-on.mosaicml.hosting/instructor/v1/predict");
        assert_eq!(r.headers.iter().find(|(n, _)| n == http::header::AUTHORIZATION).unwrap().1, "k");
        let err =
            MosaicMl::from_config(&spec(EndpointType::Completions, None), &mut ConfigMap::new(map, "model.config"))
                .err()
                .unwrap();
        assert_eq!(err.field, "model.name");
    }

    #[test]
    fn llama2_prompt_rendering() {
        let msgs = json!([
            {"role": "system", "content": "Be nice"}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Joke?"}]);
        assert_eq!(
            llama2_prompt(msgs.as_array().unwrap()).unwrap(),
            "<s>[INST] <<SYS>> Be nice <</SYS>> Hi [/INST] Hello </s><s>[INST] Joke? [/INST]"
        );
        // An assistant turn last leaves the prompt open for completion.
        let msgs = json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]);
        assert_eq!(llama2_prompt(msgs.as_array().unwrap()).unwrap(), "<s>[INST] Hi [/INST] Hel ");
        let msgs = json!([{"role": "tool", "content": "x"}]);
        let e = llama2_prompt(msgs.as_array().unwrap()).unwrap_err();
        assert_eq!(
            (e.status, e.message()),
            (
                422,
                "An invalid request structure was submitted. Invalid role tool inputted. Must be one of 'system', 'user', or 'assistant'."
                    .into()
            )
        );
    }

    #[test]
    fn bodies() {
        let b = completions_body(req(
            EndpointType::Completions,
            json!({"prompt": "p", "max_tokens": 3, "temperature": 0.2}),
        ))
        .unwrap();
        assert_eq!(b, json!({"inputs": ["p"], "parameters": {"n": 1, "max_new_tokens": 3, "temperature": 0.2}}));
        let e =
            completions_body(req(EndpointType::Completions, json!({"prompt": "p", "max_new_tokens": 3}))).unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Invalid parameter max_new_tokens. Use max_tokens instead.".into()));
        let b = chat_body(req(
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "q"}], "max_tokens": 5}),
        ))
        .unwrap();
        assert_eq!(b, json!({"inputs": ["<s>[INST] q [/INST]"], "parameters": {"n": 1, "max_new_tokens": 5}}));
        let b = embeddings_body(req(EndpointType::Embeddings, json!({"input": "one"}))).unwrap();
        assert_eq!(b, json!({"inputs": ["one"]}));
        let e = embeddings_body(req(EndpointType::Embeddings, json!({"input": "one", "inputs": ["x"]}))).unwrap_err();
        assert_eq!(e.message(), "Invalid parameter inputs. Use input instead.");
    }

    #[test]
    fn token_allowance_errors_are_422() {
        let cfg = json!({"mosaicml_api_key": "k"});
        let p = MosaicMl::from_config(
            &spec(EndpointType::Completions, Some("mpt-7b")),
            &mut ConfigMap::new(cfg.as_object().unwrap(), "model.config"),
        )
        .unwrap();
        let e =
            p.error_answer(500, "application/json", br#"{"message":"Error: prompt token count (5000) exceeds 4096"}"#);
        assert_eq!(e.status, 422);
        assert_eq!(e.message(), "Error: prompt token count (5000) exceeds 4096");
        let e = p.error_answer(500, "application/json", br#"{"message":"Error: out of memory"}"#);
        assert_eq!(e.status, 500);
        let e = p.error_answer(400, "application/json", br#"{"message":"Error: max output tokens is limited to 10"}"#);
        assert_eq!(e.status, 400);
    }

    #[test]
    fn outputs_are_required() {
        assert_eq!(outputs(br#"{"nope": 1}"#).unwrap_err().status, 502);
        assert_eq!(outputs(br#"{"outputs": ["a", "b"]}"#).unwrap().len(), 2);
    }
}
