//! Stage "attempt": try the planned endpoints in order, each with its retry policy, until one
//! gives an outcome to write or an error that is not worth another attempt.
//!
//! For each candidate: admit (its limits), prepare (the provider turns the unified request
//! into an [`Exchange`](crate::providers::Exchange)), execute. A retryable failure (see
//! [`GatewayError::retryable`]) is retried after a backoff, up to the endpoint's
//! `retry.max_attempts`; then the next candidate (a `FALLBACK` route's next destination) is
//! tried. A candidate whose limits refuse the call is skipped. The last error is the answer when
//! every candidate failed. The backoff is abandoned when the client leaves.

use std::time::Duration;

use pingora::proxy::Session;
use rand::Rng;
use serde_json::{Map, Value};

use super::NativeBody;
use super::admit::admit;
use super::execute::{self, Outcome};
use super::plan::Candidate;
use crate::config::RetryPolicy;
use crate::error::GatewayError;
use crate::providers::native::{NativeApi, NativeRequest};
use crate::providers::{self, Call, Exchange};
use crate::schema::{self, Extension, Request};
use crate::server::{RequestCtx, State, downstream};
use crate::snapshot::Snapshot;

/// Try `candidates` in order for `request` (and its body in the client's own API, for a
/// provider that speaks it).
pub async fn run(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    candidates: Vec<Candidate<'_>>,
    request: Request,
    native: Option<&NativeBody>,
) -> Result<Outcome, GatewayError> {
    let last = candidates.len().saturating_sub(1);
    let mut request = Some(request);
    let mut last_error: Option<GatewayError> = None;
    for (i, candidate) in candidates.into_iter().enumerate() {
        let endpoint = candidate.endpoint;
        ctx.endpoint = Some(endpoint.name.clone());
        ctx.provider = Some(endpoint.provider_name.as_str());
        ctx.model.clone_from(&endpoint.model_name);
        ctx.pricing = endpoint.pricing;
        let Some(unified) = request.as_ref() else { break };
        if let Err(e) = admit(session, state, snapshot, endpoint, unified, ctx).await {
            leave_behind(state, last_error.replace(e));
            continue;
        }
        let policy = endpoint.retry;
        for attempt in 1..=policy.max_attempts {
            let final_try = i == last && attempt == policy.max_attempts;
            let next = if final_try { request.take() } else { request.clone() };
            let Some(mut req) = next else { break };
            schema::apply_defaults(&mut req, &endpoint.defaults);
            let call = Call { endpoint, created: providers::now_secs() };
            ctx.streamed = req.stream();
            // A request the provider cannot take is the client's problem: no other attempt.
            let exchange = prepare(&candidate, req, native, &call)?;
            let timeout = endpoint.timeout.unwrap_or(state.upstreams.route_timeout);
            // Boxed: a future holding another is laid out with room for it twice, so unboxed
            // each stage of the pipeline would be twice the size of the one below it, and be
            // copied whole when it is built (docs/architecture.md, "Future sizes").
            let execute = Box::pin(execute::run(session, state, snapshot, ctx, candidate.provider, exchange, timeout));
            match execute.await {
                Ok(outcome) => return Ok(outcome),
                Err(e) if !final_try && e.retryable() => {
                    log::warn!(
                        "request {}: endpoint '{}' attempt {attempt} failed ({e}); {}",
                        ctx.request_id,
                        endpoint.name,
                        if attempt < policy.max_attempts { "retrying" } else { "falling back" }
                    );
                    leave_behind(state, last_error.replace(e));
                    if attempt == policy.max_attempts {
                        break;
                    }
                    downstream::unless_gone!(session, tokio::time::sleep(backoff(&policy, attempt)))?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(last_error.unwrap_or_else(|| GatewayError::internal("no endpoint could serve the request")))
}

/// Let the candidate's provider turn the request into an exchange: in the client's own API when
/// the provider speaks it, else translated through the unified schema, which is refused (400,
/// naming the field) when the request uses a feature the provider's translation cannot honour.
fn prepare(
    candidate: &Candidate<'_>,
    req: Request,
    native: Option<&NativeBody>,
    call: &Call<'_>,
) -> Result<Exchange, GatewayError> {
    let provider = candidate.provider;
    let endpoint = &candidate.endpoint.name;
    if let Some(n) = native {
        let mut body = n.body.clone();
        native_defaults(n.api, &mut body, &candidate.endpoint.defaults);
        let request = NativeRequest { api: n.api, body: &body, headers: &n.headers, stream: req.stream() };
        if let Some(exchange) = provider.native(&request, call) {
            return exchange;
        }
        if let Some(field) = n.native_only {
            let api = match n.api {
                NativeApi::OpenAiResponses => "OpenAI's Responses API",
                NativeApi::OpenAiChat | NativeApi::OpenAiEmbeddings => "OpenAI's API",
                NativeApi::AnthropicMessages | NativeApi::AnthropicCountTokens => "Anthropic's Messages API",
                NativeApi::GeminiGenerateContent => "Gemini's generateContent API",
            };
            return Err(GatewayError::bad_request(format!(
                "'{field}' needs a provider that serves {api} itself; endpoint '{endpoint}' uses {}",
                provider.display_name()
            ))
            .with_param(field));
        }
        if let Some(field) = &n.unknown {
            return Err(crate::api::responses::unknown_parameter(field.clone()));
        }
    }
    if let Some(ext) = req.extensions.used().find(|e| !provider.accepts(*e)) {
        let field = extension_field(native.map(|n| n.api), ext);
        return Err(GatewayError::bad_request(format!(
            "'{field}' is not supported by {} (endpoint '{endpoint}'); leave it out",
            provider.display_name()
        ))
        .with_param(field));
    }
    providers::prepare(provider, req, call)
}

/// The request field an extension came from, as the client's API spells it.
fn extension_field(api: Option<NativeApi>, ext: Extension) -> &'static str {
    match (api, ext) {
        (Some(NativeApi::GeminiGenerateContent), Extension::TopK) => "generationConfig.topK",
        (Some(NativeApi::GeminiGenerateContent), Extension::Thinking) => {
            "generationConfig.thinkingConfig.thinkingBudget"
        }
        (Some(NativeApi::GeminiGenerateContent), Extension::ReasoningEffort) => {
            "generationConfig.thinkingConfig.thinkingLevel"
        }
        (_, ext) => ext.field(),
    }
}

/// An endpoint's model defaults (`model.config` request parameters) put into a body of a
/// client API when it leaves them unset, under that API's names and scales: they are unified
/// (OpenAI-scale) values, so Anthropic's temperature is halved, as MLflow's translation does
/// (docs/client-apis.md).
fn native_defaults(api: NativeApi, body: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    if api == NativeApi::GeminiGenerateContent {
        return gemini_defaults(body, defaults);
    }
    let names: &[(&str, &str)] = match api {
        NativeApi::AnthropicMessages => &[
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
            ("max_tokens", "max_tokens"),
            ("stop", "stop_sequences"),
        ],
        NativeApi::OpenAiResponses => {
            &[("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "max_output_tokens")]
        }
        // Chat and embeddings bodies are OpenAI's, whose names the unified schema shares.
        NativeApi::OpenAiChat | NativeApi::OpenAiEmbeddings => &[
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("max_tokens", "max_tokens"),
            ("stop", "stop"),
            ("dimensions", "dimensions"),
            ("encoding_format", "encoding_format"),
        ],
        NativeApi::AnthropicCountTokens | NativeApi::GeminiGenerateContent => &[],
    };
    for (unified, native) in names {
        if let Some(v) = defaults.get(*unified)
            && !body.contains_key(*native)
        {
            let v = match (api, *native, v) {
                // Anthropic's stop sequences are a list.
                (_, "stop_sequences", Value::String(s)) => Value::Array(vec![Value::String(s.clone())]),
                (NativeApi::AnthropicMessages, "temperature", Value::Number(t)) => {
                    t.as_f64().and_then(|t| serde_json::Number::from_f64(t * 0.5)).map_or(Value::Null, Value::Number)
                }
                _ => v.clone(),
            };
            body.insert((*native).to_owned(), v);
        }
    }
}

/// Model defaults in a Gemini body: under `generationConfig` (either spelling counts as set), on
/// the unified scales, which Gemini shares (`stop` becomes a list).
fn gemini_defaults(body: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    const NAMES: &[(&str, &str, &str)] = &[
        ("temperature", "temperature", "temperature"),
        ("top_p", "topP", "top_p"),
        ("top_k", "topK", "top_k"),
        ("max_tokens", "maxOutputTokens", "max_output_tokens"),
        ("stop", "stopSequences", "stop_sequences"),
    ];
    if !NAMES.iter().any(|(unified, _, _)| defaults.contains_key(*unified)) {
        return;
    }
    let key = if body.contains_key("generation_config") { "generation_config" } else { "generationConfig" };
    let config = body.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if config.is_null() {
        *config = Value::Object(Map::new());
    }
    let Value::Object(config) = config else { return };
    for (unified, camel, snake) in NAMES {
        if let Some(v) = defaults.get(*unified)
            && !config.contains_key(*camel)
            && !config.contains_key(*snake)
        {
            let v = match v {
                Value::String(s) => Value::Array(vec![Value::String(s.clone())]),
                other => other.clone(),
            };
            config.insert((*camel).to_owned(), v);
        }
    }
}

/// An error superseded by a later attempt still counts as the refusal it was.
fn leave_behind(state: &State, e: Option<GatewayError>) {
    if let Some(reason) = e.and_then(|e| e.reject) {
        state.metrics.rejected.with_label_values(&[reason.as_str()]).inc();
    }
}

/// Exponential backoff with ±20 % jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy.backoff_ms.saturating_mul(1u64 << (attempt - 1).min(16)).min(policy.max_backoff_ms);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    Duration::from_millis((base as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_bodies_get_model_defaults_under_generation_config() {
        let defaults: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"temperature": 0.2, "max_tokens": 50, "stop": "END", "n": 2}))
                .unwrap();
        let mut body: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"contents": [], "generationConfig": {"temperature": 1.0}}))
                .unwrap();
        native_defaults(NativeApi::GeminiGenerateContent, &mut body, &defaults);
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"contents": [], "generationConfig": {"temperature": 1.0, "maxOutputTokens": 50, "stopSequences": ["END"]}})
        );
        let mut body: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"generation_config": {"max_output_tokens": 9}})).unwrap();
        native_defaults(NativeApi::GeminiGenerateContent, &mut body, &defaults);
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"generation_config": {"max_output_tokens": 9, "temperature": 0.2, "stopSequences": ["END"]}})
        );
        let mut body = Map::new();
        native_defaults(NativeApi::GeminiGenerateContent, &mut body, &Map::new());
        assert!(body.is_empty(), "nothing added without defaults");
        assert_eq!(extension_field(Some(NativeApi::GeminiGenerateContent), Extension::TopK), "generationConfig.topK");
        assert_eq!(extension_field(None, Extension::TopK), "top_k");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy { max_attempts: 5, backoff_ms: 100, max_backoff_ms: 300 };
        let ms = |a| backoff(&policy, a).as_millis();
        assert!((80..=120).contains(&ms(1)), "{}", ms(1));
        assert!((160..=240).contains(&ms(2)), "{}", ms(2));
        assert!((240..=360).contains(&ms(5)), "capped at 300 ±20 %: {}", ms(5));
    }
}
