//! A unified chat answer → an Anthropic `message` object, and the mappings the stream shares
//! (stop reasons, usage, ids).

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Answer, Usage};

/// Unified `finish_reason` → Anthropic `stop_reason`: `stop` or none → `end_turn`, `length` →
/// `max_tokens`, `tool_calls` / `function_call` → `tool_use`, `content_filter` → `refusal`,
/// anything else → `end_turn`. (A stop sequence is reported as `end_turn` too: a unified
/// answer does not say which one matched.)
pub(super) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's token counts. `input_tokens` excludes the cache reads and writes (Anthropic's
/// total input is the sum of the three); field order as Anthropic sends them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(super) struct Counts {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

/// Token counts as they arrive: each count is the last one reported (providers report them
/// cumulatively, some spread over several chunks).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    prompt: Option<u64>,
    completion: Option<u64>,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
}

impl Tally {
    /// Take the counts `u` reports. Unified `prompt_tokens` includes the cached tokens
    /// (`prompt_tokens_details.cached_tokens`, the reads) and, from Anthropic, the extra
    /// `cache_creation_input_tokens` (the writes).
    pub(super) fn add(&mut self, u: &Usage) {
        let cache_read = u.prompt_tokens_details.as_ref().and_then(|d| d.get("cached_tokens")).and_then(Value::as_u64);
        let cache_creation = u.extra.get("cache_creation_input_tokens").and_then(Value::as_u64);
        self.prompt = u.prompt_tokens.or(self.prompt);
        self.completion = u.completion_tokens.or(self.completion);
        self.cache_read = cache_read.or(self.cache_read);
        self.cache_creation = cache_creation.or(self.cache_creation);
    }

    /// Anthropic's counts (an unknown count is 0; input never below 0).
    pub(super) fn counts(&self) -> Counts {
        let (cache_read, cache_creation) = (self.cache_read.unwrap_or(0), self.cache_creation.unwrap_or(0));
        Counts {
            input_tokens: self.prompt.unwrap_or(0).saturating_sub(cache_read).saturating_sub(cache_creation),
            cache_creation_input_tokens: cache_creation,
            cache_read_input_tokens: cache_read,
            output_tokens: self.completion.unwrap_or(0),
        }
    }
}

/// The message id: `msg_` and the upstream's id (without OpenAI's `chatcmpl-`; an id that is
/// already `msg_…` is kept), else `msg_` and the gateway's request id.
pub(super) fn message_id(upstream: Option<&str>, request_id: &str) -> String {
    match upstream.filter(|id| !id.is_empty()) {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) => format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id)),
        None if request_id.is_empty() => "msg_aigw".to_owned(),
        None => format!("msg_{request_id}"),
    }
}

#[derive(Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    usage: Counts,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking { thinking: &'a str, signature: &'static str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Input<'a> },
}

/// A tool call's `input`: the upstream's arguments as they are (a JSON object), or `{}` for
/// empty arguments.
struct Input<'a>(Option<&'a RawValue>);

impl Serialize for Input<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Some(raw) => raw.serialize(s),
            None => s.serialize_map(Some(0))?.end(),
        }
    }
}

/// A whole unified chat answer as an Anthropic `message` (docs/client-apis.md#anthropic-messages):
/// its first choice's reasoning as a `thinking` block, its text as a `text` block (left out
/// when empty and the model called tools), each tool call as a `tool_use` block whose `input`
/// is the arguments, which must be a JSON object (else 502). Only chat answers can be written
/// (anything else is a gateway bug: 500).
pub fn answer(answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    let Answer::Chat(chat) = answer else {
        return Err(GatewayError::internal("the Messages API can only answer with a chat answer"));
    };
    let choice = chat.choices.first();
    let mut content = Vec::new();
    if let Some(m) = choice.map(|c| &c.message) {
        let calls = m.tool_calls.as_deref().unwrap_or_default();
        if let Some(thinking) = m.reasoning_content.as_deref() {
            content.push(Block::Thinking { thinking, signature: "" });
        }
        if let Some(text) = m.content.as_deref()
            && (!text.is_empty() || calls.is_empty())
        {
            content.push(Block::Text { text });
        }
        for call in calls {
            let arguments = call.function.arguments.trim();
            let input = if arguments.is_empty() {
                Input(None)
            } else {
                match serde_json::from_str::<&RawValue>(arguments) {
                    Ok(raw) if raw.get().starts_with('{') => Input(Some(raw)),
                    _ => {
                        return Err(GatewayError::bad_gateway(format!(
                            "the upstream's arguments for tool '{}' are not a JSON object",
                            call.function.name
                        )));
                    }
                }
            };
            content.push(Block::ToolUse { id: &call.id, name: &call.function.name, input });
        }
    }
    let message = Message {
        id: message_id(chat.id.as_deref(), &meta.request_id),
        kind: "message",
        role: "assistant",
        model: meta.model.as_deref().or(chat.model.as_deref()).unwrap_or_default(),
        content,
        stop_reason: stop_reason(choice.and_then(|c| c.finish_reason.as_deref())),
        stop_sequence: None,
        usage: {
            let mut tally = Tally::default();
            tally.add(&chat.usage);
            tally.counts()
        },
    };
    serde_json::to_vec(&message)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(format!("cannot serialise the message: {e}")))
}
