//! An invocation, as a pipeline of named stages, each a function in its own module with typed
//! inputs and outputs. Read [`run`] top to bottom:
//!
//! 1. **read** the whole body ([`crate::server::body`]);
//! 2. **parse** it in the client's API into the unified request and its target's name
//!    ([`parse`]);
//! 3. **resolve** the target once, and the caller's permission for it once ([`resolve`]);
//! 4. **plan** the endpoints to try, each with its provider ([`plan`]);
//! 5. **attempt** them in order, with retries and fallback ([`attempt`]): for each, **admit**
//!    against its limits ([`admit`]), prepare the provider's exchange, and **execute** it
//!    ([`execute`]);
//! 6. the result goes to the one **writer** ([`crate::server::write`]) as a [`Response`].
//!
//! No stage writes to the client. Errors are [`GatewayError`]s whose internal facts (retryable
//! or not, the rejection counted) are typed fields, never text sent to the client.

mod admit;
mod attempt;
pub mod execute;
mod parse;
mod plan;
pub mod scrub;

use pingora::proxy::Session;
use serde_json::{Map, Value};

use super::write::Response;
use super::{RequestCtx, State, body};
use crate::api::encode::AnswerMeta;
use crate::api::{self, Reply};
use crate::config::{ApiKey, Target};
use crate::error::{ErrorKind, GatewayError, Reject};
use crate::providers::native::{self, NativeApi};
use crate::schema::{EndpointType, Request};
use crate::snapshot::Snapshot;

/// Which invocation route was called, and what its URL already says.
#[derive(Clone, Copy)]
pub enum Invocation<'s> {
    /// `/endpoints/{name}/invocations`, `/gateway/{name}/invocations`: the target is in the URL
    /// (resolved, and the caller allowed to use it, before the body is read).
    Native(Target<'s>),
    /// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`: the target is the body's
    /// `model`.
    OpenAi(EndpointType),
    /// `/v1/messages` (Anthropic's Messages API): the target is the body's `model`.
    Messages,
    /// `/v1/messages/count_tokens`: counted by a provider that speaks Messages, else estimated.
    CountTokens,
    /// `/v1/responses` (OpenAI's Responses API): the target is the body's `model`.
    Responses,
    /// MLflow 3's `/gateway/openai/v1/chat/completions` and `/gateway/openai/v1/embeddings`:
    /// OpenAI's body, forwarded as sent to an OpenAI endpoint, translated like `/v1` for others.
    OpenAiPassthrough(EndpointType),
    /// MLflow 3's `/gateway/gemini/v1beta/models/{endpoint}:generateContent` (and
    /// `:streamGenerateContent`): the target is in the URL (resolved, and the caller allowed to
    /// use it, before the body is read); Gemini's body, forwarded as sent to a provider that
    /// speaks it, translated for others.
    Gemini {
        /// The endpoint or traffic route.
        target: Target<'s>,
        /// `:streamGenerateContent`.
        stream: bool,
        /// The stream goes out as one JSON array (no `alt=sse`).
        array: bool,
    },
}

/// A request ready to be attempted: its target, its unified form, and its body in the client's
/// own API when that API is not MLflow's (for providers that speak it).
pub struct Planned<'s> {
    /// The endpoint or route it names.
    pub target: Target<'s>,
    /// The request in MLflow's unified schema.
    pub request: Request,
    /// The client's own body (Anthropic Messages, OpenAI Responses, Gemini generateContent).
    pub native: Option<NativeBody>,
    /// Request fields the answer repeats.
    pub echo: Map<String, Value>,
}

/// A request body in a client API a provider may speak itself.
pub struct NativeBody {
    /// Which API.
    pub api: NativeApi,
    /// The body as the client sent it.
    pub body: Map<String, Value>,
    /// The client's headers that API defines.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A field only a provider speaking the API itself can serve.
    pub native_only: Option<&'static str>,
    /// An unknown top-level field (`api::Parsed::unknown`): forwarded natively, refused by a
    /// translation.
    pub unknown: Option<String>,
}

/// Serve one invocation; the answer (or error) is returned for the writer.
pub async fn run(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    key: Option<&ApiKey>,
    invocation: Invocation<'_>,
) -> Response {
    let config = &snapshot.config;
    let limits = &config.settings.limits;

    // 1. read
    let body = match body::read(session, config.settings.max_request_body, limits.body_read_timeout).await {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::TooLarge => return Response::Refusal(e.rejected(Reject::BodyTooLarge)),
        Err(e) if e.status == 408 => return Response::Unread(e.rejected(Reject::ReadTimeout)),
        Err(e) => return Response::Unread(e),
    };
    ctx.bytes_in = body.len();
    // A body not declared JSON is what a web page may send to any origin without a preflight:
    // refused, whatever it holds (docs/security.md, "Content types"). An empty body is left to
    // the parser's own error.
    if !body.is_empty() && !crate::browser::declares_json(session.req_header()) {
        let content_type = session.req_header().headers.get(http::header::CONTENT_TYPE);
        let family = ctx.family.unwrap_or(crate::error::Family::Native);
        return Response::Error(crate::browser::invocation_refusal(family, content_type, &body));
    }

    // 2. parse, 3. resolve
    let planned = match parse_and_resolve(session, state, config, key, invocation, &body) {
        Ok(p) => p,
        Err(e) => return Response::Error(e),
    };
    ctx.target = Some(planned.target.name().to_owned());

    // 4. plan
    let candidates = match plan::candidates(snapshot, planned.target) {
        Ok(c) => c,
        Err(e) => return Response::Error(e),
    };
    if let Invocation::CountTokens = invocation {
        return count_tokens(session, state, snapshot, ctx, &candidates, &planned).await;
    }

    // 5. attempt (admit, execute)
    let Planned { request, native, echo, .. } = planned;
    let outcome = attempt::run(session, state, snapshot, ctx, candidates, request, native.as_ref()).await;
    // 6. to the writer, with what the answer's encoding needs
    let mut meta = answer_meta(ctx, echo);
    meta.array_stream = matches!(invocation, Invocation::Gemini { array: true, .. });
    match outcome {
        Ok(execute::Outcome::Answer(answer)) => Response::Answer(answer, Box::new(meta)),
        Ok(execute::Outcome::Stream(mut stream)) => {
            stream.meta = meta;
            Response::Stream(stream)
        }
        Err(e) => Response::Error(e),
    }
}

/// Stages "parse" and "resolve" for each client API.
fn parse_and_resolve<'s>(
    session: &Session,
    state: &State,
    config: &'s crate::config::GatewayConfig,
    key: Option<&ApiKey>,
    invocation: Invocation<'s>,
    body: &[u8],
) -> Result<Planned<'s>, GatewayError> {
    let (parsed, api) = match invocation {
        Invocation::Native(target) => {
            let request = parse::native(target, body)?;
            return Ok(Planned { target, request, native: None, echo: Map::new() });
        }
        Invocation::OpenAi(endpoint_type) => {
            let (target, request) = parse::openai(config, endpoint_type, body)?;
            resolve(state, key, target)?;
            return Ok(Planned { target, request, native: None, echo: Map::new() });
        }
        Invocation::OpenAiPassthrough(endpoint_type) => {
            let (target, request) = parse::openai(config, endpoint_type, body)?;
            resolve(state, key, target)?;
            let api = if endpoint_type == EndpointType::Embeddings {
                NativeApi::OpenAiEmbeddings
            } else {
                NativeApi::OpenAiChat
            };
            let sent = match serde_json::from_slice(body) {
                Ok(Value::Object(o)) => o,
                _ => return Err(GatewayError::bad_request("The request body must be a JSON object")),
            };
            let headers = client_headers(session, api);
            let native = NativeBody { api, body: sent, headers, native_only: None, unknown: None };
            return Ok(Planned { target, request, native: Some(native), echo: Map::new() });
        }
        Invocation::Gemini { target, stream, .. } => {
            if target.endpoint_type() != EndpointType::Chat {
                return Err(GatewayError::bad_request(format!(
                    "Endpoint '{}' is not a chat endpoint: Gemini's generateContent needs one.",
                    target.name()
                )));
            }
            let parsed = api::gemini::parse(target.name(), body, stream)?;
            let api = NativeApi::GeminiGenerateContent;
            let native = NativeBody {
                api,
                body: parsed.native,
                headers: Vec::new(),
                native_only: parsed.native_only,
                unknown: None,
            };
            return Ok(Planned { target, request: parsed.request, native: Some(native), echo: parsed.echo });
        }
        Invocation::Messages => (api::anthropic::parse(body)?, NativeApi::AnthropicMessages),
        Invocation::CountTokens => (parse::count_tokens(body)?, NativeApi::AnthropicCountTokens),
        Invocation::Responses => (api::responses::parse(body)?, NativeApi::OpenAiResponses),
    };
    let target = parse::chat_target(config, &parsed.model)?;
    resolve(state, key, target)?;
    let headers = client_headers(session, api);
    let native =
        NativeBody { api, body: parsed.native, headers, native_only: parsed.native_only, unknown: parsed.unknown };
    Ok(Planned { target, request: parsed.request, native: Some(native), echo: parsed.echo })
}

/// The client's headers that `api` defines (forwarded to a provider that speaks it).
fn client_headers(session: &Session, api: NativeApi) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let wanted = native::forwarded_headers(api);
    session
        .req_header()
        .headers
        .iter()
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// What the answer's encoding needs, once the serving endpoint is known.
fn answer_meta(ctx: &RequestCtx, echo: Map<String, Value>) -> AnswerMeta {
    AnswerMeta {
        model: ctx.model.clone(),
        request_id: ctx.request_id.clone(),
        created: ctx.started_at.map_or(0, crate::providers::unix_secs),
        echo,
        array_stream: false,
    }
}

/// `/v1/messages/count_tokens`: the first candidate's provider counts when it speaks Anthropic's
/// API (no quota is used: counting is not a model call); otherwise the estimate of
/// `api::anthropic::count_tokens_estimate` is answered.
async fn count_tokens(
    session: &mut Session,
    state: &State,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    candidates: &[plan::Candidate<'_>],
    planned: &Planned<'_>,
) -> Response {
    let Some(candidate) = candidates.first() else {
        return Response::Error(GatewayError::internal("no endpoint could serve the request"));
    };
    let Some(native) = &planned.native else {
        return Response::Error(GatewayError::internal("token counting needs the client's body"));
    };
    let endpoint = candidate.endpoint;
    ctx.endpoint = Some(endpoint.name.clone());
    ctx.provider = Some(endpoint.provider_name.as_str());
    ctx.model.clone_from(&endpoint.model_name);
    ctx.pricing = endpoint.pricing;
    let call = crate::providers::Call { endpoint, created: crate::providers::now_secs() };
    let request =
        native::NativeRequest { api: native.api, body: &native.body, headers: &native.headers, stream: false };
    match candidate.provider.native(&request, &call) {
        Some(Ok(exchange)) => {
            let timeout = endpoint.timeout.unwrap_or(state.upstreams.route_timeout);
            match execute::run(session, state, snapshot, ctx, candidate.provider, exchange, timeout).await {
                Ok(execute::Outcome::Answer(answer)) => {
                    Response::Answer(answer, Box::new(answer_meta(ctx, Map::new())))
                }
                Ok(execute::Outcome::Stream(_)) => {
                    Response::Error(GatewayError::bad_gateway("the upstream answered token counting with a stream"))
                }
                Err(e) => Response::Error(e),
            }
        }
        Some(Err(e)) => Response::Error(e),
        None => {
            let n = api::anthropic::count_tokens_estimate(&native.body);
            Response::Reply(Reply::json(200, &serde_json::json!({ "input_tokens": n })))
        }
    }
}

/// Stage "resolve": may the caller use `target`? (Native routes check this before reading the
/// body, with [`allowed`].)
fn resolve(state: &State, key: Option<&ApiKey>, target: Target<'_>) -> Result<(), GatewayError> {
    allowed(state, key, target.name())
}

/// Stage "admit" for the raw proxy route, which has no other stage of the pipeline. Its body is
/// never read, so a token reservation is the fallback estimate of an empty request
/// (docs/limits.md); the real usage read from the answer settles it.
pub async fn admit_raw(
    session: &Session,
    state: &State,
    snapshot: &Snapshot,
    endpoint: &crate::config::Endpoint,
    ctx: &mut RequestCtx,
) -> Result<(), GatewayError> {
    let unseen = Request {
        endpoint_type: endpoint.endpoint_type,
        body: Map::new(),
        implicit_n: false,
        extensions: Default::default(),
    };
    admit::admit(session, state, snapshot, endpoint, &unseen, ctx).await
}

/// `Ok` when `key` (if the gateway has keys) may use the endpoint or route `name`; else the 403.
pub fn allowed(state: &State, key: Option<&ApiKey>, name: &str) -> Result<(), GatewayError> {
    match key {
        Some(k) if !k.allows(name) => {
            state.metrics.auth_rejected.with_label_values(&["forbidden"]).inc();
            Err(crate::auth::forbidden(&k.name, name))
        }
        _ => Ok(()),
    }
}
