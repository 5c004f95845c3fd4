//! OpenAI's wire format, shared by every provider that speaks it: `openai` (and Azure), the
//! OpenAI-compatible family (`groq`, `deepseek`, `xai`, `openrouter`, `ollama`, `portkey`),
//! `databricks`, Vertex AI's OpenAI-compatible models, the built-in `mock`, `mistral` and
//! `togetherai`.
//!
//! One set of upstream types (the `Wire*` structs below), one JSON decoder per endpoint
//! type ([`decode_chat`], [`decode_completions`], [`decode_embeddings`]), one stream translation
//! ([`WireStream`]) and the request bodies ([`passthrough_body`], [`model_first`]). What differs
//! between providers is data: a [`Dialect`] (how usage is shaped, which model answers carry,
//! how choices are indexed, what a stream error looks like, …). [`OPENAI`] is OpenAI's own;
//! `mistral` and `togetherai` define theirs beside their configuration, and the MLflow rules
//! behind each field are documented there.
//!
//! The decoders take the upstream body apart once: strings the answer keeps are moved, not
//! copied; `model` is borrowed from the body until an answer keeps it, `usage` is read straight
//! into the unified [`Usage`], and Mistral's error fields are read only from chunks whose text
//! could hold them. The stream decoder is on the hot path of every OpenAI stream; measure a
//! change with `scripts/instructions.sh stream`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Call, Decoder};
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, CompletionChoice, CompletionChunkChoice,
    CompletionsChunk, CompletionsResponse, Delta, Embedding, EmbeddingsResponse, EmbeddingsUsage, FunctionCallDelta,
    Request, ResponseMessage, ToolCall, ToolCallDelta, Usage,
};

// ---- dialects ----

/// One provider's reading of the OpenAI wire format: everything that distinguishes it, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// The provider's name in "cannot read" and stream error messages; `None`: the endpoint's
    /// provider label (`openai`, `groq`, …).
    pub name: Option<&'static str>,
    /// Streams ask for usage (`stream_options.include_usage: true` added by
    /// [`passthrough_body`]).
    pub stream_options: bool,
    /// Which `model` chat and completions answers and chunks carry.
    pub model: ModelSource,
    /// Which `model` embeddings answers carry.
    pub embeddings_model: ModelSource,
    /// What whole answers keep of the upstream's `usage`.
    pub answer_usage: UsageKeys,
    /// What the usage a stream reports (for the audit log and metrics) keeps.
    pub stream_usage: UsageKeys,
    /// Which stream chunks pass the upstream's `usage` on to the client.
    pub usage_on_chunks: ChunkUsage,
    /// Which parts of list-typed message content are text.
    pub text_parts: TextParts,
    /// What joins the text parts of list-typed content in whole answers (a stream delta's
    /// parts are always concatenated: each delta is a piece of one text).
    pub text_separator: &'static str,
    /// How tool-call arguments are read.
    pub arguments: Arguments,
    /// How stream choices (and their tool calls) are indexed.
    pub chunk_index: Index,
    /// How embedding vectors are indexed.
    pub embedding_index: Index,
    /// Only the text of each choice is read (MLflow's TogetherAI mapping): chat answers have
    /// role `assistant` and no tool calls, chat chunks no role and no tool calls and take their
    /// text from `choices[].text` first, completions answers take `choices[].text` only.
    pub text_only: bool,
    /// Whole answers keep the upstream's `finish_reason` (else it is null).
    pub answer_finish_reasons: bool,
    /// Completions are served by the chat API: the answer has `id` null, the request's time as
    /// `created`, the configured model, and the text of `choices[].message.content`.
    pub completions_via_chat: bool,
    /// SSE data is trimmed, and nothing after `[DONE]` is read (else events after `[DONE]` are
    /// still translated).
    pub stop_at_done: bool,
    /// Stream errors also come as `{"object": "error", "message": …}`, and an error without a
    /// message reads `<name> reported an error in the stream` (else it reads as its JSON text).
    pub error_object: bool,
    /// Embeddings answers carry the upstream's prompt and total token counts (else null).
    pub embeddings_usage: bool,
}

/// Where an answer's `model` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The upstream answer's `model`.
    Upstream,
    /// The endpoint's configured `model.name`.
    Configured,
}

/// What is kept of an upstream `usage` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageKeys {
    /// The counts, `prompt_tokens_details` and every other upstream key.
    All,
    /// The three counts only.
    Counts,
}

/// Which stream chunks carry the upstream's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkUsage {
    /// Chat and completions chunks.
    All,
    /// Chat chunks only.
    Chat,
    /// None (usage is still recorded for the audit log and metrics).
    Never,
}

/// Which parts of list-typed content count as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextParts {
    /// Parts of type `text`, and parts without a type.
    TypedOrUntyped,
    /// Parts of type `text` only.
    Typed,
}

/// How tool-call `arguments` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arguments {
    /// A JSON string, as OpenAI sends it; anything else makes the answer unreadable.
    Text,
    /// A string, or any JSON value, which is passed on as its compact JSON text.
    Json,
}

/// How a choice's (or vector's, or tool call's) index is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The upstream's `index`, 0 when absent.
    Sent,
    /// The upstream's `index`, the position when absent.
    SentOrPosition,
    /// The position in the list, whatever the upstream says.
    Position,
}

impl Index {
    fn of(self, sent: Option<u32>, position: usize) -> u32 {
        match self {
            Index::Sent => sent.unwrap_or(0),
            Index::SentOrPosition => sent.unwrap_or(position as u32),
            Index::Position => position as u32,
        }
    }
}

impl UsageKeys {
    fn keep(self, usage: Usage) -> Usage {
        match self {
            UsageKeys::All => usage,
            UsageKeys::Counts => usage.only_counts(),
        }
    }
}

/// OpenAI's own dialect (also the OpenAI-compatible family's, Databricks', Vertex AI's
/// OpenAI-compatible models' and the mock's): everything as sent, usage requested on streams.
pub const OPENAI: Dialect = Dialect {
    name: None,
    stream_options: true,
    model: ModelSource::Upstream,
    embeddings_model: ModelSource::Upstream,
    answer_usage: UsageKeys::All,
    stream_usage: UsageKeys::All,
    usage_on_chunks: ChunkUsage::All,
    text_parts: TextParts::TypedOrUntyped,
    text_separator: "\n",
    arguments: Arguments::Text,
    chunk_index: Index::Sent,
    embedding_index: Index::Position,
    text_only: false,
    answer_finish_reasons: true,
    completions_via_chat: false,
    stop_at_done: false,
    error_object: false,
    embeddings_usage: true,
};

impl Dialect {
    /// The name errors give the upstream.
    fn who(&self, provider: &'static str) -> &'static str {
        self.name.unwrap_or(provider)
    }

    /// Whether decoding answers of `kind` needs the configured model.
    fn needs_model(&self, kind: Kind) -> bool {
        match kind {
            Kind::Chat => self.model == ModelSource::Configured,
            Kind::Completions => self.model == ModelSource::Configured || self.completions_via_chat,
            Kind::Embeddings => self.embeddings_model == ModelSource::Configured,
        }
    }
}

/// What a decoder needs to know about the request besides the upstream body.
#[derive(Debug, Clone)]
pub struct Context {
    provider: &'static str,
    created: u64,
    model: Option<String>,
}

impl Context {
    /// `provider` is the `provider` of chat answers (and the name in errors when the dialect
    /// has none), `created` the request's time for answers without one, `model` the
    /// configured model for dialects whose answers carry it.
    pub fn new(provider: &'static str, created: u64, model: Option<String>) -> Context {
        Context { provider, created, model }
    }

    fn of(call: &Call<'_>, d: &Dialect, kind: Kind) -> Context {
        let model = if d.needs_model(kind) { call.model().map(str::to_owned) } else { None };
        Context::new(call.provider_label(), call.created, model)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completions,
    Embeddings,
}

// ---- request bodies ----

/// The Responses API's `reasoning.effort` (a request extension) as chat completions'
/// `reasoning_effort`, for providers whose chat API documents that field (a value the request
/// body already has wins).
pub fn put_reasoning_effort(req: &mut Request) {
    if let Some(effort) = req.extensions.reasoning_effort.take() {
        req.body.entry("reasoning_effort").or_insert(Value::String(effort));
    }
}

/// Removes the `thought_signature` aigw adds to Gemini's tool calls in its own answers
/// (docs/client-apis.md, "Gemini thought signatures") from the assistant turns a client sends
/// back: only Gemini reads it, and a strict OpenAI-format API refuses an unknown field.
fn drop_thought_signatures(body: &mut Map<String, Value>) {
    let Some(Value::Array(messages)) = body.get_mut("messages") else { return };
    for message in messages {
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            for call in calls {
                if let Value::Object(call) = call {
                    call.remove("thought_signature");
                }
            }
        }
    }
}

/// The upstream body for an OpenAI-format provider: the client's request with `model` set
/// (`Some(name)`, null when the endpoint has no `model.name`) or left out (`None`, Azure), and
/// `stream_options.include_usage: true` added to streams when `stream_options` is set (the
/// dialect's [`Dialect::stream_options`]).
pub fn passthrough_body(
    req: Request,
    model: Option<Option<&str>>,
    stream_options: bool,
) -> Result<Vec<u8>, GatewayError> {
    let stream = req.stream();
    let mut body: Map<String, Value> = req.body;
    body.remove("model");
    drop_thought_signatures(&mut body);
    if let Some(model) = model {
        body.insert("model".into(), model.map_or(Value::Null, Value::from));
    }
    if stream && stream_options {
        match body.get_mut("stream_options") {
            Some(Value::Object(opts)) => {
                opts.entry("include_usage").or_insert(Value::Bool(true));
            }
            _ => {
                let mut opts = Map::new();
                opts.insert("include_usage".into(), Value::Bool(true));
                body.insert("stream_options".into(), Value::Object(opts));
            }
        }
    }
    super::to_json(&body)
}

/// `{"model": <name>, …body}`: MLflow's `{"model": …, **payload}`, the configured model first
/// (null without `model.name`); a client `model` never overrides it.
pub fn model_first(model: Option<&str>, mut body: Map<String, Value>) -> Map<String, Value> {
    drop_thought_signatures(&mut body);
    let mut out = Map::with_capacity(body.len() + 1);
    out.insert("model".into(), model.map_or(Value::Null, Value::from));
    for (k, v) in body {
        if k != "model" {
            out.insert(k, v);
        }
    }
    out
}

// ---- upstream wire types ----

/// A chat or completions answer.
#[derive(Deserialize)]
struct WireChat<'a> {
    id: Option<String>,
    created: Option<u64>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireChoice {
    message: Option<WireMessage>,
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Option<String>,
    /// A string, or a list of typed parts.
    content: Option<Value>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    index: Option<u32>,
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<IgnoredAny>,
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    name: Option<String>,
    /// A string (OpenAI), or a JSON value (Mistral).
    arguments: Option<Value>,
}

/// A stream chunk.
#[derive(Deserialize)]
struct WireChunk<'a> {
    id: Option<String>,
    created: Option<u64>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: WireUsage,
    /// Kept as its JSON text, read only when the chunk is an error.
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// The fields of Mistral's stream errors (`{"object": "error", "message": …}`), read from a
/// chunk only by dialects with [`Dialect::error_object`], and only when its text could hold
/// one: every other chunk is read once, by [`WireChunk`], which skips these keys.
#[derive(Deserialize)]
struct ErrorFields {
    #[serde(default)]
    object: Lenient<IsError>,
    #[serde(default)]
    message: Lenient<Option<String>>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    index: Option<u32>,
    finish_reason: Option<String>,
    delta: Option<WireDelta>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    role: Option<String>,
    /// A string, or (Databricks and Mistral reasoning models) a list of typed parts.
    content: Option<Value>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireEmbeddings<'a> {
    #[serde(default)]
    data: Vec<WireEmbedding>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireEmbedding {
    embedding: Box<RawValue>,
    index: Option<u32>,
}

/// An upstream `usage`: `Some` when it is an object, read straight into the unified usage
/// (counts that are not unsigned integers are unknown; `prompt_tokens_details` kept unless
/// null; every other key passed through); `None` when absent, null or not an object. Boxed:
/// most chunks have none, and a small chunk struct is cheap to move.
#[derive(Default)]
struct WireUsage(Option<Box<Usage>>);

impl<'de> Deserialize<'de> for WireUsage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UsageVisitor;

        impl<'de> Visitor<'de> for UsageVisitor {
            type Value = WireUsage;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a usage object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireUsage, A::Error> {
                let mut usage = Usage::default();
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    match &*key {
                        "prompt_tokens" => usage.prompt_tokens = map.next_value::<Value>()?.as_u64(),
                        "completion_tokens" => usage.completion_tokens = map.next_value::<Value>()?.as_u64(),
                        "total_tokens" => usage.total_tokens = map.next_value::<Value>()?.as_u64(),
                        "prompt_tokens_details" => {
                            let v: Value = map.next_value()?;
                            usage.prompt_tokens_details = (!v.is_null()).then_some(v);
                        }
                        _ => {
                            let v: Value = map.next_value()?;
                            usage.extra.insert(key.into_owned(), v);
                        }
                    }
                }
                Ok(WireUsage(Some(Box::new(usage))))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<WireUsage, D::Error> {
                d.deserialize_any(self)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WireUsage, A::Error> {
                drain_seq(seq).map(|()| WireUsage(None))
            }

            fn visit_unit<E: de::Error>(self) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_none<E: de::Error>(self) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<WireUsage, E> {
                Ok(WireUsage(None))
            }
        }

        deserializer.deserialize_any(UsageVisitor)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// What a string field reads as; any other JSON value reads as the default.
trait FromText: Default {
    fn from_text(text: &str) -> Self;
}

/// Whether a chunk's `object` is `error` (compared in place: no allocation per chunk).
#[derive(Default)]
struct IsError(bool);

impl FromText for IsError {
    fn from_text(text: &str) -> Self {
        IsError(text == "error")
    }
}

impl FromText for Option<String> {
    fn from_text(text: &str) -> Self {
        Some(text.to_owned())
    }
}

/// A field read from a JSON string, and read as the default when it is any other value.
#[derive(Default)]
struct Lenient<T>(T);

impl<'de, T: FromText> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: FromText> Visitor<'de> for TextVisitor<T> {
            type Value = Lenient<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::from_text(v)))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Lenient(T::default()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<T>, A::Error> {
                drain_seq(seq).map(|()| Lenient(T::default()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }

            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }

            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }

            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }

            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
        }

        deserializer.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

// ---- reading the parts ----

/// Message content as text: a string, or the text parts of a list joined with `\n` (which
/// parts count: [`TextParts`]; Databricks' `reasoning` and Mistral's `thinking` parts never do).
fn content_text(v: Option<Value>, parts: TextParts, separator: &str) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Array(list) => {
            let texts: Vec<&str> = list
                .iter()
                .filter(|p| match (p.get("type").and_then(Value::as_str), parts) {
                    (Some(t), _) => t == "text",
                    (None, TextParts::TypedOrUntyped) => true,
                    (None, TextParts::Typed) => false,
                })
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            // No text (say, only reasoning parts) is no content.
            let text = texts.join(separator);
            (!text.is_empty()).then_some(text)
        }
        _ => None,
    }
}

/// Tool-call arguments as the JSON text clients expect.
fn arguments(v: Option<Value>, how: Arguments, who: &str) -> Result<Option<String>, GatewayError> {
    match (v, how) {
        (None | Some(Value::Null), _) => Ok(None),
        (Some(Value::String(s)), _) => Ok(Some(s)),
        (Some(other), Arguments::Json) => Ok(Some(other.to_string())),
        (Some(_), Arguments::Text) => Err(GatewayError::bad_gateway(format!(
            "{who} returned a response the gateway cannot read: tool-call arguments are not a string"
        ))),
    }
}

fn model(source: ModelSource, upstream: Option<Cow<'_, str>>, configured: Option<String>) -> Option<String> {
    match source {
        ModelSource::Upstream => upstream.map(Cow::into_owned),
        ModelSource::Configured => configured,
    }
}

/// Fails with the error an upstream reported inside a stream, if the chunk is one (`data` is
/// the chunk's text, read again for Mistral's error fields only when it could hold them).
fn stream_error(d: &Dialect, who: &str, data: &str, chunk: &WireChunk<'_>) -> Result<(), GatewayError> {
    let fields = if d.error_object && (data.contains("error") || data.contains("\\u")) {
        Some(serde_json::from_str::<ErrorFields>(data).map_err(|e| unreadable(who, &e))?)
    } else {
        None
    };
    let error = chunk.error;
    if error.is_none() && !fields.as_ref().is_some_and(|f| f.object.0.0) {
        return Ok(());
    }
    let error: Option<Value> = error.and_then(|e| serde_json::from_str(e.get()).ok());
    let text = match &error {
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_owned),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let message = match text {
        Some(t) => t,
        None if d.error_object => {
            let message = fields.and_then(|f| f.message.0);
            match (&error, message) {
                (Some(Value::Object(_)), _) | (_, None) => format!("{who} reported an error in the stream"),
                (_, Some(m)) => m,
            }
        }
        None => error.map(|e| e.to_string()).unwrap_or_default(),
    };
    Err(GatewayError::new(502, ErrorKind::Upstream, message))
}

fn unreadable(who: &str, e: &serde_json::Error) -> GatewayError {
    GatewayError::bad_gateway(format!("{who} sent an unreadable stream chunk: {e}"))
}

// ---- whole answers ----

/// Decoder for chat answers of dialect `d`: whole, or streamed (`stream`).
pub fn chat_decoder(d: &'static Dialect, stream: bool, call: &Call<'_>) -> Decoder {
    let cx = Context::of(call, d, Kind::Chat);
    if stream {
        return Decoder::Stream(Box::new(WireStream::chat(d, cx)));
    }
    Decoder::Json(Box::new(move |body| decode_chat(d, body, cx)))
}

/// Decoder for completions answers of dialect `d`: whole, or streamed (`stream`).
pub fn completions_decoder(d: &'static Dialect, stream: bool, call: &Call<'_>) -> Decoder {
    let cx = Context::of(call, d, Kind::Completions);
    if stream {
        return Decoder::Stream(Box::new(WireStream::completions(d, cx)));
    }
    Decoder::Json(Box::new(move |body| decode_completions(d, body, cx)))
}

/// Decoder for embeddings answers of dialect `d`.
pub fn embeddings_decoder(d: &'static Dialect, call: &Call<'_>) -> Decoder {
    let cx = Context::of(call, d, Kind::Embeddings);
    Decoder::Json(Box::new(move |body| decode_embeddings(d, body, cx)))
}

/// Decode a chat answer.
pub fn decode_chat(d: &Dialect, body: &[u8], cx: Context) -> Result<Answer, GatewayError> {
    let who = d.who(cx.provider);
    let wire: WireChat<'_> = super::parse_upstream_json(body, who)?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let message = match c.message {
                Some(m) if d.text_only => {
                    ResponseMessage::assistant(content_text(m.content, d.text_parts, d.text_separator))
                }
                Some(m) => {
                    let calls = match m.tool_calls.filter(|t| !t.is_empty()) {
                        Some(calls) => Some(
                            calls
                                .into_iter()
                                .map(|t| {
                                    let (name, args) = t.function.map_or((None, None), |f| (f.name, f.arguments));
                                    let args = arguments(args, d.arguments, who)?.unwrap_or_default();
                                    Ok(ToolCall::function(t.id.unwrap_or_default(), name.unwrap_or_default(), args))
                                })
                                .collect::<Result<Vec<_>, GatewayError>>()?,
                        ),
                        None => None,
                    };
                    let role = m.role.unwrap_or_else(|| "assistant".into());
                    ResponseMessage::new(role, content_text(m.content, d.text_parts, d.text_separator), calls)
                }
                None => ResponseMessage::assistant(None),
            };
            let finish = if d.answer_finish_reasons { c.finish_reason } else { None };
            Ok(ChatChoice::new(i as u32, message, finish))
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    let usage = wire.usage.0.map(|u| d.answer_usage.keep(*u)).unwrap_or_default();
    let model = model(d.model, wire.model, cx.model);
    Ok(Answer::Chat(ChatResponse::new(wire.id, wire.created.unwrap_or(cx.created), model, choices, usage, cx.provider)))
}

/// Decode a completions answer: the text of `choices[].message.content` (servers that answer
/// chat-style) or of `choices[].text`, as the dialect says.
pub fn decode_completions(d: &Dialect, body: &[u8], cx: Context) -> Result<Answer, GatewayError> {
    let wire: WireChat<'_> = super::parse_upstream_json(body, d.who(cx.provider))?;
    let choices = wire
        .choices
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let text = if d.text_only {
                c.text
            } else {
                let message = c.message.and_then(|m| content_text(m.content, d.text_parts, d.text_separator));
                if d.completions_via_chat { message } else { message.or(c.text) }
            };
            let finish = if d.answer_finish_reasons { c.finish_reason } else { None };
            CompletionChoice::new(i as u32, Some(text.unwrap_or_default()), finish)
        })
        .collect();
    let usage = wire.usage.0.map(|u| d.answer_usage.keep(*u)).unwrap_or_default();
    let (id, created, model) = if d.completions_via_chat {
        (None, cx.created, cx.model)
    } else {
        (wire.id, wire.created.unwrap_or(cx.created), model(d.model, wire.model, cx.model))
    };
    Ok(Answer::Completions(CompletionsResponse::new(id, created, model, choices, usage)))
}

/// Decode an embeddings answer. The vectors are copied as the upstream wrote them, not parsed.
pub fn decode_embeddings(d: &Dialect, body: &[u8], cx: Context) -> Result<Answer, GatewayError> {
    let wire: WireEmbeddings<'_> = super::parse_upstream_json(body, d.who(cx.provider))?;
    let data = wire
        .data
        .into_iter()
        .enumerate()
        .map(|(i, e)| Embedding::new(d.embedding_index.of(e.index, i), e.embedding))
        .collect();
    let usage = match wire.usage.0 {
        Some(u) if d.embeddings_usage => EmbeddingsUsage::new(u.prompt_tokens, u.total_tokens),
        _ => EmbeddingsUsage::default(),
    };
    let model = model(d.embeddings_model, wire.model, cx.model);
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, usage)))
}

// ---- streams ----

/// Which choices of an OpenAI-style stream have started and which have a `finish_reason`
/// (choice indices 0..63; higher ones share the last slot): with `n > 1`, a stream cut after
/// the first choice finished is not complete.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChoiceEnds {
    started: u64,
    finished: u64,
}

impl ChoiceEnds {
    /// A chunk carried choice `index`, finished or not.
    pub fn choice(&mut self, index: u32, finished: bool) {
        let bit = 1u64 << index.min(63);
        self.started |= bit;
        if finished {
            self.finished |= bit;
        }
    }

    /// At least one choice started and every one that did has finished.
    pub fn all_finished(&self) -> bool {
        self.started != 0 && self.started & !self.finished == 0
    }
}

/// An OpenAI-format SSE stream (chat or completions chunks) as unified chunks. `[DONE]` is
/// consumed; the stream is complete once `[DONE]` arrived or every choice it started has a
/// `finish_reason`. Completions chunks are read in both shapes: real `/v1/completions` chunks
/// (`choices[].text`) and chat-style ones (`choices[].delta.content`)
/// (docs/mlflow-compat.md#fix-7).
pub struct WireStream {
    dialect: &'static Dialect,
    completions: bool,
    cx: Context,
    usage: Option<Usage>,
    done: bool,
    ends: ChoiceEnds,
}

impl WireStream {
    /// The decoder of a chat stream.
    pub fn chat(dialect: &'static Dialect, cx: Context) -> SseStream<WireStream> {
        SseStream::new(WireStream::new(dialect, false, cx))
    }

    /// The decoder of a completions stream.
    pub fn completions(dialect: &'static Dialect, cx: Context) -> SseStream<WireStream> {
        SseStream::new(WireStream::new(dialect, true, cx))
    }

    fn new(dialect: &'static Dialect, completions: bool, cx: Context) -> WireStream {
        WireStream { dialect, completions, cx, usage: None, done: false, ends: ChoiceEnds::default() }
    }

    /// Record a chunk's usage and return what the chunk passes on.
    fn take_usage(&mut self, usage: Usage) -> Option<Usage> {
        let usage = self.dialect.stream_usage.keep(usage);
        let forward = match self.dialect.usage_on_chunks {
            ChunkUsage::All => true,
            ChunkUsage::Chat => !self.completions,
            ChunkUsage::Never => false,
        };
        if forward {
            self.usage = Some(usage.clone());
            Some(usage)
        } else {
            self.usage = Some(usage);
            None
        }
    }

    /// One choice of a chat chunk; an unreadable tool call leaves its error in `failed`.
    #[inline(always)]
    fn chat_choice(&self, position: usize, c: WireChunkChoice, failed: &mut Option<GatewayError>) -> ChunkChoice {
        let d = self.dialect;
        let index = d.chunk_index.of(c.index, position);
        let delta = if d.text_only {
            Delta::text(c.text.or_else(|| c.delta.and_then(|dl| content_text(dl.content, d.text_parts, ""))))
        } else {
            match c.delta {
                Some(dl) => {
                    let calls = match dl.tool_calls.filter(|t| !t.is_empty()) {
                        Some(calls) => self.tool_call_deltas(calls).map_err(|e| *failed = Some(e)).ok(),
                        None => None,
                    };
                    Delta::new(dl.role, content_text(dl.content, d.text_parts, ""), calls)
                }
                None => Delta::default(),
            }
        };
        ChunkChoice::new(index, delta, c.finish_reason)
    }

    fn tool_call_deltas(&self, calls: Vec<WireToolCall>) -> Result<Vec<ToolCallDelta>, GatewayError> {
        let d = self.dialect;
        calls
            .into_iter()
            .enumerate()
            .map(|(j, t)| {
                let function = match t.function {
                    Some(f) => {
                        FunctionCallDelta { name: f.name, arguments: arguments(f.arguments, d.arguments, self.who())? }
                    }
                    None => FunctionCallDelta::default(),
                };
                Ok(ToolCallDelta {
                    index: d.chunk_index.of(t.index, j),
                    id: t.id,
                    kind: t.kind.map(|_| "function"),
                    function,
                    thought_signature: None,
                })
            })
            .collect()
    }

    fn who(&self) -> &'static str {
        self.dialect.who(self.cx.provider)
    }
}

impl SseTranslate for WireStream {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let d = self.dialect;
        let data = if d.stop_at_done {
            if self.done {
                return Ok(());
            }
            data.trim()
        } else {
            data
        };
        if data.is_empty() || data == "[DONE]" {
            self.done |= !data.is_empty();
            return Ok(());
        }
        let chunk: WireChunk<'_> = serde_json::from_str(data).map_err(|e| unreadable(self.who(), &e))?;
        stream_error(d, self.who(), data, &chunk)?;
        for (i, c) in chunk.choices.iter().enumerate() {
            self.ends.choice(d.chunk_index.of(c.index, i), c.finish_reason.is_some());
        }
        let usage = match chunk.usage.0 {
            Some(u) => self.take_usage(*u),
            None => None,
        };
        let created = chunk.created.unwrap_or(self.cx.created);
        let model = model(d.model, chunk.model, self.cx.model.clone());
        if self.completions {
            let choices = chunk
                .choices
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let text = c.text.or_else(|| c.delta.and_then(|dl| content_text(dl.content, d.text_parts, "")));
                    CompletionChunkChoice::new(d.chunk_index.of(c.index, i), text, c.finish_reason)
                })
                .collect();
            out.push(Chunk::Completions(CompletionsChunk::new(chunk.id, created, model, choices, usage)));
        } else {
            let mut failed = None;
            let choices =
                chunk.choices.into_iter().enumerate().map(|(i, c)| self.chat_choice(i, c, &mut failed)).collect();
            if let Some(e) = failed {
                return Err(e);
            }
            out.push(Chunk::Chat(ChatChunk::new(chunk.id, created, model, choices, usage, self.cx.provider)));
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done || self.ends.all_finished()
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stream(chunks: &[&str]) -> (Vec<Value>, Option<GatewayError>) {
        let mut d = WireStream::chat(&OPENAI, Context::new("openai", 1, None));
        crate::framing::testing::run(&mut d, chunks)
    }

    /// OpenAI's embeddings decoder, as the provider calls it.
    fn decode_embeddings(body: &[u8], provider: &'static str) -> Result<Answer, GatewayError> {
        super::decode_embeddings(&OPENAI, body, Context::new(provider, 0, None))
    }

    /// OpenAI's completions decoder, as the provider calls it.
    fn decode_completions(body: &[u8], provider: &'static str, created: u64) -> Result<Answer, GatewayError> {
        super::decode_completions(&OPENAI, body, Context::new(provider, created, None))
    }

    #[test]
    fn embedding_vectors_pass_through_as_sent() {
        // The vectors are copied, not parsed and printed again: the upstream's number text stays.
        let body = br#"{"object":"list","data":[{"object":"embedding","index":5,"embedding":[0.10000000000000001,-2.5E-7,3]},{"object":"embedding","index":0,"embedding":"AACAPw=="}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let out = serde_json::to_string(&decode_embeddings(body, "openai").unwrap()).unwrap();
        assert!(out.contains(r#""embedding":[0.10000000000000001,-2.5E-7,3],"index":0"#), "{out}");
        assert!(out.contains(r#""embedding":"AACAPw==","index":1"#), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
        assert!(decode_embeddings(br#"{"data":[{"embedding":[1,"#, "openai").is_err());
    }

    #[test]
    fn chat_chunks_keep_nulls_and_usage() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n",
        ]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["delta"], json!({"role": "assistant", "content": null, "tool_calls": null}));
        assert_eq!(events[0]["usage"], Value::Null);
        assert_eq!(events[1]["usage"]["total_tokens"], json!(3));
        assert_eq!(events[1]["provider"], json!("openai"));
    }

    #[test]
    fn list_typed_delta_content_keeps_text_parts_only() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"think\"}]}]}}]}\n\n",
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}}]}\n\n",
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"reasoning\",\"summary\":[]},{\"type\":\"text\",\"text\":\" the\"},{\"type\":\"text\",\"text\":\"re\"}]}}]}\n\n",
            "data: [DONE]\n\n",
        ]);
        assert!(err.is_none());
        assert_eq!(events[0]["choices"][0]["delta"]["content"], Value::Null);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], json!("Hi"));
        // A delta's text parts are pieces of one text: concatenated, no separator (MLflow 3.18).
        assert_eq!(events[2]["choices"][0]["delta"]["content"], json!(" there"));
    }

    #[test]
    fn error_event_mid_stream_is_an_error() {
        let (events, err) = stream(&[
            "data: {\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        ]);
        assert_eq!(events.len(), 1);
        assert_eq!(err.unwrap().message(), "overloaded");
    }

    #[test]
    fn a_stream_is_complete_at_done_or_a_finish_reason() {
        let chunk = |finish: &str| {
            format!(
                "data: {{\"id\":\"x\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"a\"}},\"finish_reason\":{finish}}}]}}\n\n"
            )
        };
        let (events, err) = stream(&[&chunk("null"), &chunk("null")]);
        assert_eq!(events.len(), 2);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        assert!(stream(&[&chunk("null"), &chunk("\"stop\"")]).1.is_none(), "a finish_reason without [DONE]");
        assert!(stream(&[&chunk("null"), "data: [DONE]\n\n"]).1.is_none(), "[DONE] without a finish_reason");
        // n = 2: cut after the first choice finished is not complete; both finished is.
        let second = |finish: &str| chunk(finish).replace("\"index\":0", "\"index\":1");
        let (_, err) = stream(&[&chunk("null"), &second("null"), &chunk("\"stop\"")]);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        assert!(stream(&[&chunk("null"), &second("null"), &chunk("\"stop\""), &second("\"length\"")]).1.is_none());

        let mut d = WireStream::completions(&OPENAI, Context::new("openai", 1, None));
        let text = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"a\",\"finish_reason\":null}]}\n\n";
        let (_, err) = crate::framing::testing::run(&mut d, [text]);
        assert_eq!(err.unwrap().status, 502);
        let mut d = WireStream::completions(&OPENAI, Context::new("openai", 1, None));
        let (_, err) = crate::framing::testing::run(&mut d, [text, "data: [DONE]\n\n"]);
        assert!(err.is_none());
    }

    #[test]
    fn garbage_chunk_is_a_502() {
        let (_, err) = stream(&["data: {not json}\n\n"]);
        assert_eq!(err.unwrap().status, 502);
    }

    #[test]
    fn completions_text_from_either_shape() {
        let body = br#"{"id":"c","created":5,"model":"m","choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"},{"text":"yo","finish_reason":"length"}]}"#;
        let v: Value = serde_json::to_value(decode_completions(body, "openai", 9).unwrap()).unwrap();
        assert_eq!(v["choices"][0]["text"], json!("hi"));
        assert_eq!(v["choices"][1]["text"], json!("yo"));
        assert_eq!(v["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
    }

    #[test]
    fn passthrough_injects_model_and_usage() {
        let req = crate::schema::parse_request(
            crate::schema::EndpointType::Chat,
            br#"{"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"foo":1}}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&passthrough_body(req, Some(Some("gpt")), true).unwrap()).unwrap();
        assert_eq!(body["model"], json!("gpt"));
        assert_eq!(body["stream_options"], json!({"foo": 1, "include_usage": true}));
        assert_eq!(body["n"], json!(1));
    }

    #[test]
    fn gemini_thought_signatures_stay_behind() {
        let sent = br#"{"messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"},"thought_signature":"sig"}]},{"role":"tool","tool_call_id":"c1","content":"ok"}]}"#;
        let req = crate::schema::parse_request(crate::schema::EndpointType::Chat, sent).unwrap();
        let body: Value = serde_json::from_slice(&passthrough_body(req, Some(Some("gpt")), false).unwrap()).unwrap();
        assert_eq!(
            body["messages"][1]["tool_calls"][0],
            json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}})
        );
        let req = crate::schema::parse_request(crate::schema::EndpointType::Chat, sent).unwrap();
        let body = model_first(Some("m"), req.body);
        assert!(body["messages"][1]["tool_calls"][0].get("thought_signature").is_none());
    }
}

#[cfg(test)]
mod dialect_tests {
    use super::*;
    use serde_json::json;

    fn chunk_events(d: &'static Dialect, chunks: &[&str]) -> (Vec<Value>, Option<GatewayError>, Option<Usage>) {
        let mut s = WireStream::chat(d, Context::new("p", 1, Some("cfg".into())));
        let (events, err) = crate::framing::testing::run(&mut s, chunks);
        let usage = crate::framing::StreamDecoder::usage(&s).cloned();
        (events, err, usage)
    }

    const MISTRALISH: Dialect = Dialect {
        name: Some("M"),
        usage_on_chunks: ChunkUsage::Never,
        stream_usage: UsageKeys::Counts,
        arguments: Arguments::Json,
        chunk_index: Index::SentOrPosition,
        stop_at_done: true,
        error_object: true,
        ..OPENAI
    };

    #[test]
    fn usage_is_read_in_place_as_from_openai_reads_it() {
        for body in [
            json!({"prompt_tokens": 1, "completion_tokens": 2.5, "total_tokens": "3",
                   "prompt_tokens_details": {"cached_tokens": 1}, "completion_tokens_details": {"reasoning_tokens": 0}, "x": null}),
            json!({"prompt_tokens": 1, "prompt_tokens_details": null, "prompt_tokens": 4}),
            json!({}),
        ] {
            let read: WireUsage = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(read.0.map(|u| *u), Some(Usage::from_openai(&body)), "{body}");
        }
        for not_an_object in [json!(null), json!(5), json!("u"), json!([1, {"a": 2}]), json!(true)] {
            let read: WireUsage = serde_json::from_value(not_an_object).unwrap();
            assert!(read.0.is_none());
        }
        let keys: WireUsage = serde_json::from_str(r#"{"pr\u006fmpt_tokens": 7}"#).unwrap();
        assert_eq!(keys.0.and_then(|u| u.prompt_tokens), Some(7), "escaped keys are read too");
    }

    #[test]
    fn fields_a_dialect_does_not_use_never_make_a_chunk_unreadable() {
        let (events, err, _) = chunk_events(
            &OPENAI,
            &[
                "data: {\"id\":\"x\",\"object\":{\"weird\":[1]},\"message\":[2],\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n",
            ],
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("a"));
        // A dialect that reads them: odd types are not errors, and "error" in a chunk's text
        // alone does not make it one.
        let (events, err, _) = chunk_events(
            &MISTRALISH,
            &[
                "data: {\"id\":\"x\",\"object\":{\"weird\":\"error\"},\"message\":[2],\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"error\\\" \\u00e9\"},\"finish_reason\":\"stop\"}]}\n\n",
            ],
        );
        assert!(err.is_none(), "{err:?}");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], json!("\"error\" é"));
        let escaped = chunk_events(&MISTRALISH, &["data: {\"object\":\"\\u0065rror\",\"message\":\"m\"}\n\n"]).1;
        assert_eq!(escaped.map(|e| e.message()), Some("m".to_owned()));
    }

    #[test]
    fn tool_call_arguments_by_dialect() {
        let chunk = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]},\"finish_reason\":\"tool_calls\"}]}\n\n";
        let (_, err, _) = chunk_events(&OPENAI, &[chunk]);
        let err = err.unwrap();
        assert_eq!(err.status, 502);
        assert!(err.message().contains("tool-call arguments are not a string"), "{}", err.message());
        let (events, err, _) = chunk_events(&MISTRALISH, &[chunk]);
        assert!(err.is_none());
        assert_eq!(
            events[0]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}])
        );
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","function":{"name":"f","arguments":{"a":1}}}]}}]}"#;
        assert_eq!(decode_chat(&OPENAI, body, Context::new("openai", 0, None)).unwrap_err().status, 502);
        let v =
            serde_json::to_value(decode_chat(&MISTRALISH, body, Context::new("mistral", 0, None)).unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], json!("{\"a\":1}"));
    }

    #[test]
    fn after_done_and_usage_by_dialect() {
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2,\"extra\":3}}\n\n";
        // OpenAI reads on after [DONE], forwards usage whole.
        let (events, err, recorded) = chunk_events(&OPENAI, &["data: [DONE]\n\n", usage]);
        assert!(err.is_none());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["usage"]["extra"], json!(3));
        assert_eq!(recorded.and_then(|u| u.total_tokens), Some(2));
        // This dialect stops at [DONE], records counts only and forwards nothing.
        let (events, _, recorded) = chunk_events(&MISTRALISH, &[usage, "data:  [DONE] \n\n", usage]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["usage"], Value::Null);
        assert_eq!(recorded, Some(Usage::counts(Some(1), Some(1), Some(2))));
    }

    #[test]
    fn stream_error_shapes() {
        let error = |d: &'static Dialect, body: &str| {
            chunk_events(d, &[&format!("data: {body}\n\n")]).1.map(|e| (e.status, e.message()))
        };
        let e = |m: &str| Some((502, m.to_owned()));
        assert_eq!(error(&OPENAI, r#"{"error":{"message":"m"}}"#), e("m"));
        assert_eq!(error(&OPENAI, r#"{"error":"s"}"#), e("s"));
        assert_eq!(error(&OPENAI, r#"{"error":{"code":1}}"#), e(r#"{"code":1}"#));
        // Not an error for OpenAI: a chunk without choices (the stream then lacks its end).
        assert_eq!(
            error(&OPENAI, r#"{"object":"error","message":"x","choices":[]}"#),
            e("upstream stream ended before it was complete")
        );
        assert_eq!(error(&MISTRALISH, r#"{"object":"error","message":"x"}"#), e("x"));
        assert_eq!(error(&MISTRALISH, r#"{"error":{"code":1},"message":"x"}"#), e("M reported an error in the stream"));
        assert_eq!(error(&MISTRALISH, r#"{"error":5,"message":"x"}"#), e("x"));
        assert_eq!(error(&MISTRALISH, r#"{"object":"error"}"#), e("M reported an error in the stream"));
    }
}

#[cfg(test)]
mod choice_ends_tests {
    use super::ChoiceEnds;

    #[test]
    fn every_started_choice_must_finish() {
        let mut e = ChoiceEnds::default();
        assert!(!e.all_finished());
        e.choice(0, false);
        e.choice(1, false);
        e.choice(0, true);
        assert!(!e.all_finished(), "choice 1 has not finished");
        e.choice(1, true);
        assert!(e.all_finished());
        e.choice(200, false);
        assert!(!e.all_finished());
        e.choice(90, true);
        assert!(e.all_finished(), "indices past 63 share one slot");
    }
}
