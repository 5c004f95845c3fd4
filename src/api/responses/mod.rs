//! OpenAI's Responses API (`POST /v1/responses`, stateless): requests translated into MLflow's
//! unified chat schema, and unified answers and stream chunks written as Responses objects and
//! events, so that Responses clients (Codex, the OpenAI Agents SDK, `client.responses.create`)
//! work with any chat provider.
//!
//! * [`parse`] ([`request`](self)): the request body → [`super::Parsed`]. Fields only OpenAI's
//!   own Responses API can serve (stored state such as `previous_response_id`, built-in tools,
//!   file ids, …) are named in [`super::Parsed::native_only`]; the request's `reasoning`
//!   input items (the provider's own opaque reasoning) are left out of the translation.
//! * [`answer`]: a unified chat answer → the `response` object.
//! * [`ResponsesStream`]: unified chunks → the Responses event sequence.
//!
//! The mapping, what is accepted without effect and the stream's limits are documented in
//! `docs/client-apis.md#openai-responses-api`.

mod request;
mod response;
mod stream;

pub use request::{parse, unknown_parameter};
pub use response::answer;
pub use stream::ResponsesStream;

/// What a reasoning item's `encrypted_content` starts with when the gateway wrote it: the rest
/// is the signature of Claude's thinking (the item's summary text), which a client gives back
/// with the item so that Claude gets its signed thinking again (docs/client-apis.md, "Thinking
/// history"). Other `encrypted_content` (OpenAI's own) is opaque and left out.
pub(crate) const THINKING_SIGNATURE_PREFIX: &str = "aigw-claude-thinking-signature:";
