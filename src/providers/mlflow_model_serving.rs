//! MLflow Model Serving (`provider: mlflow-model-serving`): a model served by `mlflow models
//! serve` (or any server speaking its `/invocations` protocol).
//!
//! Config: `model_server_url` (required: the server's base URL). Every call is
//! `POST {model_server_url}/invocations` with `{"inputs": […], "params": {…}}` (`params` holds
//! the rest of the request and is left out when empty):
//! * completions: `inputs` = `[prompt]`;
//! * chat: exactly one message is accepted (422 otherwise); `inputs` = `[its content]`;
//! * embeddings: `inputs` = the input list (a single string becomes a one-element list).
//!
//! Answers come from `predictions`: for text, a list of strings, a dict with one key whose value
//! is that list, or a dict with `choices`; for embeddings, a list of vectors or one flat vector.
//! A missing or unusable `predictions` is a 502. No streaming (501).

use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError, fields::FIELD_REQUIRED};
use crate::error::GatewayError;
use crate::schema::{
    Answer, ChatChoice, ChatResponse, CompletionChoice, CompletionsResponse, Embedding, EmbeddingsResponse,
    EmbeddingsUsage, Request, ResponseMessage, Usage,
};
use crate::upstream::UpstreamRequest;

const DISPLAY: &str = "MLflow Model Serving";

/// The key of a model server's answer.
const PREDICTIONS: &str = "predictions";

/// The `mlflow-model-serving` provider.
pub struct MlflowModelServing {
    base: BaseUrl,
}

impl MlflowModelServing {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<MlflowModelServing, FieldError> {
        let base = cfg.url("model_server_url")?.ok_or_else(|| cfg.error("model_server_url", FIELD_REQUIRED))?;
        Ok(MlflowModelServing { base })
    }

    fn request(&self, body: &Value) -> Result<UpstreamRequest, GatewayError> {
        Ok(UpstreamRequest::post_json(&self.base, "invocations", super::to_json(body)?))
    }
}

/// `{"inputs": inputs, "params": rest}` (`params` only when non-empty).
fn invocation(inputs: Vec<Value>, rest: Map<String, Value>) -> Value {
    let mut out = Map::with_capacity(2);
    out.insert("inputs".into(), Value::Array(inputs));
    let params: Map<String, Value> = rest.into_iter().filter(|(k, _)| k != "model").collect();
    if !params.is_empty() {
        out.insert("params".into(), Value::Object(params));
    }
    Value::Object(out)
}

fn as_inputs(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => vec![other],
    }
}

fn bad(message: impl Into<String>) -> GatewayError {
    GatewayError::bad_gateway(message)
}

/// `predictions` of a model server's answer (502 when absent).
fn predictions(body: &[u8]) -> Result<Value, GatewayError> {
    let mut answer: Map<String, Value> = super::parse_upstream_json(body, DISPLAY)?;
    answer.remove(PREDICTIONS).ok_or_else(|| bad(format!("The response is missing the required key: {PREDICTIONS}.")))
}

/// Text predictions: a list of strings, `{"<any key>": [...]}`, or `{"choices": [...], …}`.
fn text_predictions(body: &[u8]) -> Result<Vec<String>, GatewayError> {
    const EMPTY: &str = "The input list is empty";
    let list = match predictions(body)? {
        Value::Array(items) if items.is_empty() => return Err(bad(EMPTY)),
        Value::Array(items) => items,
        Value::Object(mut map) => {
            let inner = if map.len() == 1 { map.into_iter().next().map(|(_, v)| v) } else { map.remove("choices") };
            match inner {
                None => {
                    return Err(bad(
                        "The dict format is invalid for this route type. Ensure the served model returns a dict \
                         key containing 'choices'",
                    ));
                }
                Some(Value::Array(items)) if !items.is_empty() => items,
                Some(Value::Array(_)) | Some(Value::Null) => return Err(bad(EMPTY)),
                Some(_) => return Err(bad("The served model's predictions are not a list of strings")),
            }
        }
        _ => return Err(bad("The served model's predictions are not a list of strings")),
    };
    list.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(bad("The served model's predictions are not a list of strings")),
        })
        .collect()
}

/// Embedding predictions: a list of vectors, or one flat vector.
fn vector_predictions(body: &[u8]) -> Result<Vec<Value>, GatewayError> {
    let Value::Array(items) = predictions(body)? else {
        return Err(bad("The served model's predictions are not a list of embeddings"));
    };
    if items.is_empty() {
        return Err(bad("The input list is empty"));
    }
    if items.iter().all(Value::is_number) {
        return Ok(vec![Value::Array(items)]);
    }
    for item in &items {
        match item {
            Value::Array(v) if v.is_empty() => {
                return Err(bad("One or more lists in the returned prediction response are empty"));
            }
            Value::Array(v) if v.iter().all(Value::is_number) => {}
            _ => return Err(bad("The served model's predictions are not a list of embeddings")),
        }
    }
    Ok(items)
}

impl Provider for MlflowModelServing {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("chat", DISPLAY));
        }
        let mut rest = req.body;
        let messages = as_inputs(rest.remove("messages").unwrap_or(Value::Null));
        if messages.len() > 1 {
            return Err(GatewayError::invalid(format!(
                "MLflow chat models are only capable of processing a single query at a time. The request \
                 submitted consists of {} queries.",
                messages.len()
            )));
        }
        let content = messages.into_iter().next().and_then(|m| m.get("content").cloned()).unwrap_or(Value::Null);
        let source = self.request(&invocation(vec![content], rest))?;
        let (provider, model, created) = (call.provider_label(), call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            source,
            Decoder::Json(Box::new(move |b| {
                let choices = text_predictions(b)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, text)| ChatChoice::new(i as u32, ResponseMessage::assistant(Some(text)), None))
                    .collect();
                Ok(Answer::Chat(ChatResponse::new(None, created, model, choices, Usage::default(), provider)))
            })),
        ))
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let mut rest = req.body;
        let prompt = rest.remove("prompt").unwrap_or(Value::Null);
        let source = self.request(&invocation(as_inputs(prompt), rest))?;
        let (model, created) = (call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            source,
            Decoder::Json(Box::new(move |b| {
                let choices = text_predictions(b)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, text)| CompletionChoice::new(i as u32, Some(text), None))
                    .collect();
                Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
            })),
        ))
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let mut rest = req.body;
        let input = rest.remove("input").unwrap_or(Value::Null);
        let source = self.request(&invocation(as_inputs(input), rest))?;
        let model = call.model().map(str::to_owned);
        Ok(Exchange::call(
            source,
            Decoder::Json(Box::new(move |b| {
                let data =
                    vector_predictions(b)?.into_iter().enumerate().map(|(i, e)| Embedding::new(i as u32, e)).collect();
                Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::default())))
            })),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: Value) -> Result<Vec<String>, GatewayError> {
        text_predictions(v.to_string().as_bytes())
    }

    fn vectors(v: Value) -> Result<Vec<Value>, GatewayError> {
        vector_predictions(v.to_string().as_bytes())
    }

    #[test]
    fn invocation_bodies() {
        let mut rest = Map::new();
        assert_eq!(invocation(vec![json!("a")], rest.clone()), json!({"inputs": ["a"]}));
        rest.insert("n".into(), json!(1));
        assert_eq!(invocation(as_inputs(json!("a")), rest), json!({"inputs": ["a"], "params": {"n": 1}}));
        assert_eq!(as_inputs(json!(["x", "y"])), vec![json!("x"), json!("y")]);
    }

    #[test]
    fn text_prediction_shapes() {
        assert_eq!(text(json!({"predictions": ["a", "b"]})).unwrap(), ["a", "b"]);
        assert_eq!(text(json!({"predictions": {"candidates": ["a"]}})).unwrap(), ["a"]);
        assert_eq!(text(json!({"predictions": {"choices": ["c"], "other": 1}})).unwrap(), ["c"]);
        let e = text(json!({"predictions": {"a": ["x"], "b": ["y"]}})).unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.message().contains("containing 'choices'"));
        assert_eq!(text(json!({"predictions": []})).unwrap_err().message(), "The input list is empty");
        assert_eq!(text(json!({"predictions": [1]})).unwrap_err().status, 502);
        assert_eq!(
            text(json!({"outputs": ["a"]})).unwrap_err().message(),
            "The response is missing the required key: predictions."
        );
    }

    #[test]
    fn vector_prediction_shapes() {
        assert_eq!(vectors(json!({"predictions": [[0.1], [0.2]]})).unwrap().len(), 2);
        assert_eq!(vectors(json!({"predictions": [0.1, 0.2]})).unwrap(), vec![json!([0.1, 0.2])]);
        assert_eq!(
            vectors(json!({"predictions": [[], []]})).unwrap_err().message(),
            "One or more lists in the returned prediction response are empty"
        );
        assert_eq!(vectors(json!({"predictions": [["x"]]})).unwrap_err().status, 502);
        assert_eq!(vectors(json!({"predictions": "x"})).unwrap_err().status, 502);
    }
}
