//! Gemini's generateContent API (MLflow 3's `POST /gateway/gemini/v1beta/models/{endpoint}:generateContent`
//! and `:streamGenerateContent`) as a client API, so that the google-genai SDKs can use any chat
//! endpoint. `docs/client-apis.md#gemini-generatecontent` has the mapping tables.
//!
//! * [`parse`] (`request.rs`): a `GenerateContentRequest` body → [`Parsed`](super::Parsed): the
//!   unified request, and the body as sent (`native`) for a provider that speaks Gemini's API
//!   itself (`gemini`, Gemini models on `vertex_ai`), which gets it unchanged. Features only
//!   Google's API serves (`cachedContent`, Google's built-in tools, non-default safety
//!   thresholds, file references, …) set [`Parsed::native_only`](super::Parsed::native_only): any
//!   other provider refuses the request with a 400 naming the feature.
//! * [`answer`] (`response.rs`): a unified chat answer → a `GenerateContentResponse`.
//! * [`GenerateContentStream`] (`stream.rs`): unified chunks → `GenerateContentResponse`
//!   events, as server-sent events (`?alt=sse`, what the SDKs ask for) or as one JSON array
//!   (Google's default without `alt=sse`); a relayed native stream is framed the same way.
//!
//! The endpoint is named in the URL, and the method says whether the answer streams; the body
//! has neither.

mod request;
mod response;
mod stream;

pub use request::parse;
pub use response::answer;
pub use stream::GenerateContentStream;

/// The key under which [`parse`] notes in [`Parsed::echo`](super::Parsed::echo) that the request
/// asked for thoughts (`generationConfig.thinkingConfig.includeThoughts`): only then does an
/// answer carry the model's reasoning as thought parts, as Gemini's own answers do.
pub(crate) const INCLUDE_THOUGHTS: &str = "includeThoughts";
