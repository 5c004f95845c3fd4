//! AI21 Labs (`provider: ai21labs`), Jurassic-2 models only.
//!
//! Config: `ai21labs_api_key` (required secret), `ai21labs_api_base` (default
//! `https://api.ai21.com/studio/v1`); `Authorization: Bearer <key>`. `model.name` must be one
//! of `j2-ultra`, `j2-mid`, `j2-light` (checked when the configuration loads).
//!
//! Completions only: `POST {base}/{model}/complete` with the request renamed (`stop` →
//! `stopSequences`, `n` → `numResults`, `max_tokens` → `maxTokens`; sending AI21's own names
//! is a 422). The answer: `completions[].data.text`, finish reason
//! `completions[].finishReason.reason`, usage null. Streaming is not served (501).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Call, Decoder, EndpointSpec, Exchange, Provider};
use crate::config::BaseUrl;
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{Answer, CompletionChoice, CompletionsResponse, Request, Usage};
use crate::upstream::{UpstreamRequest, secret_header};

/// Default AI21 Labs base URL.
pub const DEFAULT_BASE: &str = "https://api.ai21.com/studio/v1";

/// MLflow's provider name for AI21 Labs (used in its messages).
const DISPLAY: &str = "AI21Labs";

/// The models MLflow accepts.
const MODELS: &[&str] = &["j2-ultra", "j2-mid", "j2-light"];

/// Unified name → AI21 name.
const RENAMES: &[(&str, &str)] = &[("stop", "stopSequences"), ("n", "numResults"), ("max_tokens", "maxTokens")];

/// The `ai21labs` provider.
pub struct Ai21Labs {
    /// `{base}/{model}`.
    model_base: BaseUrl,
    auth: http::HeaderValue,
}

impl Ai21Labs {
    /// Build from `model.config`.
    pub fn from_config(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Ai21Labs, FieldError> {
        let key = cfg.required_secret("ai21labs_api_key")?;
        let base = match cfg.url("ai21labs_api_base")? {
            Some(b) => b,
            None => BaseUrl::parse(DEFAULT_BASE).map_err(|m| cfg.error("ai21labs_api_base", m))?,
        };
        let model = match spec.model_name {
            Some(m) if MODELS.contains(&m) => m,
            other => {
                return Err(FieldError::new(
                    "model.name",
                    format!(
                        "An Unsupported AI21Labs model has been specified: '{}'. Please see documentation for \
                         supported models.",
                        other.unwrap_or("None")
                    ),
                ));
            }
        };
        let auth = secret_header(&format!("Bearer {}", key.expose())).ok_or_else(|| {
            cfg.error("ai21labs_api_key", "the key contains characters not allowed in an HTTP header")
        })?;
        Ok(Ai21Labs { model_base: base.join(model), auth })
    }
}

fn complete_body(req: Request) -> Result<Map<String, Value>, GatewayError> {
    for (ours, theirs) in RENAMES {
        if req.body.contains_key(*theirs) {
            return Err(GatewayError::invalid(format!("Invalid parameter {theirs}. Use {ours} instead.")));
        }
    }
    let mut out = Map::with_capacity(req.body.len());
    for (k, v) in req.body {
        if k == "model" {
            continue;
        }
        let name = RENAMES.iter().find(|(ours, _)| *ours == k).map_or(k, |(_, theirs)| (*theirs).to_owned());
        out.insert(name, v);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct WireComplete {
    #[serde(default)]
    completions: Vec<WireCompletion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCompletion {
    data: Option<WireData>,
    finish_reason: Option<WireFinish>,
}

#[derive(Deserialize)]
struct WireData {
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireFinish {
    reason: Option<String>,
}

fn decode(body: &[u8], model: Option<String>, created: u64) -> Result<Answer, GatewayError> {
    let wire: WireComplete = super::parse_upstream_json(body, DISPLAY)?;
    let choices = wire
        .completions
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let text = Some(c.data.and_then(|d| d.text).unwrap_or_default());
            CompletionChoice::new(i as u32, text, c.finish_reason.and_then(|f| f.reason))
        })
        .collect();
    Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
}

impl Provider for Ai21Labs {
    fn display_name(&self) -> &'static str {
        DISPLAY
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        if req.stream() {
            // MLflow routes a stream request to its (missing) streaming method: not served.
            return Err(super::streaming_not_implemented("completions", DISPLAY));
        }
        let body = super::to_json(&complete_body(req)?)?;
        let (model, created) = (call.model().map(str::to_owned), call.created);
        Ok(Exchange::call(
            UpstreamRequest::post_json(&self.model_base, "complete", body)
                .header_value(http::header::AUTHORIZATION, self.auth.clone()),
            Decoder::Json(Box::new(move |b| decode(b, model, created))),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderName;
    use crate::schema::{EndpointType, parse_request};
    use serde_json::json;

    fn spec(name: Option<&'static str>) -> EndpointSpec<'static> {
        EndpointSpec {
            index: 0,
            name: "a",
            endpoint_type: EndpointType::Completions,
            model_name: name,
            provider_name: ProviderName::Ai21Labs,
        }
    }

    #[test]
    fn only_j2_models() {
        let cfg = json!({"ai21labs_api_key": "k"});
        let map = cfg.as_object().unwrap();
        let err = Ai21Labs::from_config(&spec(Some("j2-foo")), &mut ConfigMap::new(map, "model.config")).err().unwrap();
        assert_eq!(err.field, "model.name");
        assert_eq!(
            err.message,
            "An Unsupported AI21Labs model has been specified: 'j2-foo'. Please see documentation for supported models."
        );
        let p = Ai21Labs::from_config(&spec(Some("j2-mid")), &mut ConfigMap::new(map, "model.config")).unwrap();
        assert_eq!(
            UpstreamRequest::post_json(&p.model_base, "complete", vec![]).url(),
            "https://api.ai21.com/studio/v1/j2-mid/complete"
        );
        let err = Ai21Labs::from_config(&spec(None), &mut ConfigMap::new(map, "model.config")).err().unwrap();
        assert!(err.message.contains("'None'"));
        let empty = Map::new();
        let err =
            Ai21Labs::from_config(&spec(Some("j2-mid")), &mut ConfigMap::new(&empty, "model.config")).err().unwrap();
        assert_eq!(err.field, "model.config.ai21labs_api_key");
    }

    #[test]
    fn renames_and_rules() {
        let r = parse_request(EndpointType::Completions, br#"{"prompt":"p","stop":["x"],"max_tokens":3,"topP":0.5}"#)
            .unwrap();
        assert_eq!(
            Value::Object(complete_body(r).unwrap()),
            json!({"prompt": "p", "stopSequences": ["x"], "maxTokens": 3, "numResults": 1, "topP": 0.5})
        );
        let r = parse_request(EndpointType::Completions, br#"{"prompt":"p","numResults":2}"#).unwrap();
        let e = complete_body(r).unwrap_err();
        assert_eq!((e.status, e.message()), (422, "Invalid parameter numResults. Use n instead.".into()));
    }

    #[test]
    fn answer() {
        let body =
            json!({"id": "x", "completions": [{"data": {"text": " a"}, "finishReason": {"reason": "endoftext"}}]});
        let v: Value =
            serde_json::to_value(decode(body.to_string().as_bytes(), Some("j2-ultra".into()), 4).unwrap()).unwrap();
        assert_eq!(v["choices"], json!([{"index": 0, "text": " a", "finish_reason": "endoftext"}]));
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["model"], json!("j2-ultra"));
    }
}
