//! Anthropic's Messages API (`POST /v1/messages`) as a client API: requests translated into
//! MLflow's unified chat schema (OpenAI's chat-completions format), and unified answers and
//! stream chunks written as Anthropic's `message` objects and stream events, so that Claude
//! Code and the Anthropic SDKs can use any provider. `docs/client-apis.md` has the mapping
//! tables.
//!
//! * [`parse`] (`request.rs`): a Messages body → [`Parsed`](super::Parsed): the target (`model`), the unified
//!   request, and the body as sent (`native`) for a provider that speaks the Messages API
//!   itself. Features only Anthropic's own API can serve (`service_tier`, server tools,
//!   `document` blocks, …) do not fail the parse: they set [`Parsed::native_only`](super::Parsed::native_only), which the
//!   pipeline refuses with a 400 for any provider that needs the translation.
//! * [`answer`] (`response.rs`): a unified chat answer → a `message` object.
//! * [`MessagesStream`] (`stream.rs`): unified chunks → `message_start`, `ping`,
//!   `content_block_*`, `message_delta`, `message_stop` (or one `error` event).
//! * [`count_tokens_estimate`] (`tokens.rs`): an estimate of a request's input tokens for
//!   `/v1/messages/count_tokens` when the provider cannot count.
//!
//! **The one deliberate omission:** `thinking` and `redacted_thinking` blocks of earlier
//! assistant turns are not translated. They are the model's own reasoning (signed or
//! encrypted for Claude), meaningless to another model; a provider that speaks the Messages API
//! gets them in `native`.
//!
//! **The one stream that cannot be expressed:** Anthropic's events carry one content block at a
//! time, so an upstream that sends arguments for a tool call whose block was already closed
//! (true interleaving of parallel calls, which OpenAI, Mistral, Gemini, Bedrock and Anthropic
//! do not do) ends the stream with the `error` event.

mod request;
mod response;
mod stream;
mod tokens;

pub use request::parse;
pub use response::answer;
pub use stream::MessagesStream;
pub use tokens::{IMAGE_TOKENS, count_tokens_estimate};
