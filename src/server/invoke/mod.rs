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

use super::write::Response;
use super::{RequestCtx, State, body};
use crate::api::encode::AnswerMeta;
use crate::config::{ApiKey, Target};
use crate::error::{ErrorKind, GatewayError, Reject};
use crate::schema::EndpointType;
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

    // 2. parse, 3. resolve
    let parsed = match invocation {
        Invocation::Native(target) => parse::native(target, &body).map(|request| (target, request)),
        Invocation::OpenAi(endpoint_type) => parse::openai(config, endpoint_type, &body)
            .and_then(|(target, request)| resolve(state, key, target).map(|()| (target, request))),
    };
    let (target, request) = match parsed {
        Ok(p) => p,
        Err(e) => return Response::Error(e),
    };
    ctx.target = Some(target.name().to_owned());

    // 4. plan
    let candidates = match plan::candidates(snapshot, target) {
        Ok(c) => c,
        Err(e) => return Response::Error(e),
    };

    // 5. attempt (admit, execute)
    let outcome = attempt::run(session, state, snapshot, ctx, candidates, request).await;
    // 6. to the writer, with what the answer's encoding needs
    let meta = AnswerMeta {
        model: ctx.model.clone(),
        request_id: ctx.request_id.clone(),
        created: ctx.started_at.map_or(0, crate::providers::unix_secs),
        echo: Default::default(),
    };
    match outcome {
        Ok(execute::Outcome::Answer(answer)) => Response::Answer(answer, Box::new(meta)),
        Ok(execute::Outcome::Stream(mut stream)) => {
            stream.meta = meta;
            Response::Stream(stream)
        }
        Err(e) => Response::Error(e),
    }
}

/// Stage "resolve": may the caller use `target`? (Native routes check this before reading the
/// body, with [`allowed`].)
fn resolve(state: &State, key: Option<&ApiKey>, target: Target<'_>) -> Result<(), GatewayError> {
    allowed(state, key, target.name())
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
