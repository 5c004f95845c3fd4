//! Stage "parse": the request body, in the client's API, to the unified request and the name
//! of its target.
//!
//! * MLflow's routes name the target in the URL; the body is MLflow's unified schema, and may
//!   not carry a `model` (MLflow's 422).
//! * The OpenAI-compatible `/v1` routes name it in the body's `model`, which must be an
//!   endpoint or traffic route of the route's type; schema errors are 400 there.

use serde_json::Value;

use crate::config::{GatewayConfig, Target};
use crate::error::{ErrorKind, GatewayError};
use crate::schema::{self, EndpointType, Request};

/// A native invocation's body for `target`.
pub fn native(target: Target<'_>, body: &[u8]) -> Result<Request, GatewayError> {
    let request = schema::parse_request(target.endpoint_type(), body).map_err(GatewayError::validation)?;
    if request.body.contains_key("model") {
        return Err(GatewayError::invalid(
            "The parameter 'model' is not permitted to be passed. The route being queried already defines a \
             model instance.",
        )
        .with_param("model"));
    }
    Ok(request)
}

/// The chat endpoint or route a client API's `model` names (Anthropic Messages, OpenAI
/// Responses).
pub fn chat_target<'c>(config: &'c GatewayConfig, model: &str) -> Result<Target<'c>, GatewayError> {
    let target = config.target(model).ok_or_else(|| model_not_found(model))?;
    if target.endpoint_type() != EndpointType::Chat {
        return Err(
            GatewayError::bad_request(format!("Endpoint '{model}' is not a chat endpoint.")).with_param("model")
        );
    }
    Ok(target)
}

fn model_not_found(model: &str) -> GatewayError {
    GatewayError::new(404, ErrorKind::NotFound, format!("The model '{model}' does not exist"))
        .with_param("model")
        .with_code("model_not_found")
}

/// An OpenAI-compatible body for a `/v1` route of `endpoint_type`: its target (from `model`)
/// and the unified request (without `model`).
pub fn openai<'c>(
    config: &'c GatewayConfig,
    endpoint_type: EndpointType,
    body: &[u8],
) -> Result<(Target<'c>, Request), GatewayError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let model = match value.get_mut("model").map(Value::take) {
        Some(Value::String(m)) => m,
        Some(Value::Null) | None => {
            return Err(GatewayError::bad_request("you must provide a model parameter").with_param("model"));
        }
        Some(_) => {
            return Err(
                GatewayError::bad_request("'model' must be a string naming an endpoint or route").with_param("model")
            );
        }
    };
    if let Value::Object(o) = &mut value {
        o.remove("model");
    }
    let target = config.target(&model).ok_or_else(|| model_not_found(&model))?;
    if target.endpoint_type() != endpoint_type {
        let article = if endpoint_type == EndpointType::Embeddings { "an" } else { "a" };
        return Err(GatewayError::bad_request(format!(
            "Endpoint '{model}' is not {article} {} endpoint.",
            endpoint_type.noun()
        ))
        .with_param("model"));
    }
    let request = schema::request_from_value(endpoint_type, value).map_err(GatewayError::validation)?;
    Ok((target, request))
}

/// A `/v1/messages/count_tokens` body: a Messages request without `max_tokens` (counting needs
/// none; one is assumed for the translation's checks).
pub fn count_tokens(body: &[u8]) -> Result<crate::api::Parsed, GatewayError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(object) = &mut value else {
        return Err(GatewayError::bad_request("The request body must be a JSON object"));
    };
    let assumed = !object.contains_key("max_tokens");
    if assumed {
        object.insert("max_tokens".into(), Value::from(1));
    }
    object.remove("stream");
    let bytes = serde_json::to_vec(&value).map_err(|e| GatewayError::internal(e.to_string()))?;
    let mut parsed = crate::api::anthropic::parse(&bytes)?;
    if assumed {
        parsed.native.remove("max_tokens");
    }
    Ok(parsed)
}
