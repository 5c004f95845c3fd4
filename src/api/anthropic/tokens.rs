//! An estimate of a Messages request's input tokens, for `POST /v1/messages/count_tokens`
//! when the provider cannot count (every provider but Anthropic).

use serde_json::{Map, Value};

/// The tokens counted for one image: about what Anthropic charges for an image at its
/// ~1.15-megapixel size limit (its rule is width × height / 750, and larger images are scaled
/// down to about that size first). The estimate cannot decode images, so every image costs
/// the most an image costs.
pub const IMAGE_TOKENS: u64 = 1_600;

/// Tokens for each message (role and turn markers).
const PER_MESSAGE: u64 = 4;

/// Tokens for every request (the framing of the conversation).
const PER_REQUEST: u64 = 8;

/// An estimate of the input tokens of a Messages request body (docs/client-apis.md#count-tokens):
/// each text counts ceil(characters / 4) tokens — the text of `system`, of every `text` and
/// `thinking` block and of `tool_result` contents; each tool's `name`, `description` and
/// `input_schema` (as JSON); each `tool_use` block's `input` (as JSON) — plus 4 per message,
/// 8 per request and [`IMAGE_TOKENS`] per image. Characters are Unicode scalar values; parts
/// of the body that are not of the expected shape count nothing.
pub fn count_tokens_estimate(native: &Map<String, Value>) -> u64 {
    let mut tokens = PER_REQUEST;
    match native.get("system") {
        Some(Value::String(s)) => tokens += text(s),
        Some(Value::Array(blocks)) => tokens += blocks.iter().map(block).sum::<u64>(),
        _ => {}
    }
    if let Some(Value::Array(messages)) = native.get("messages") {
        for m in messages {
            tokens += PER_MESSAGE;
            match m.get("content") {
                Some(Value::String(s)) => tokens += text(s),
                Some(Value::Array(blocks)) => tokens += blocks.iter().map(block).sum::<u64>(),
                _ => {}
            }
        }
    }
    if let Some(Value::Array(tools)) = native.get("tools") {
        for tool in tools {
            if let Some(Value::String(name)) = tool.get("name") {
                tokens += text(name);
            }
            if let Some(Value::String(description)) = tool.get("description") {
                tokens += text(description);
            }
            if let Some(schema) = tool.get("input_schema") {
                tokens += json(schema);
            }
        }
    }
    tokens
}

/// One content block.
fn block(b: &Value) -> u64 {
    let field = |key: &str| match b.get(key) {
        Some(Value::String(s)) => text(s),
        _ => 0,
    };
    match b.get("type").and_then(Value::as_str) {
        Some("text") => field("text"),
        Some("thinking") => field("thinking"),
        Some("image") => IMAGE_TOKENS,
        Some("tool_use") => b.get("input").map_or(0, json),
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => text(s),
            Some(Value::Array(blocks)) => blocks.iter().map(block).sum(),
            _ => 0,
        },
        _ => 0,
    }
}

/// ceil(characters / 4).
fn text(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4)
}

/// ceil(characters / 4) of `v` as compact JSON (counted as it is written, not kept).
fn json(v: &Value) -> u64 {
    let mut count = CharCount(0);
    if serde_json::to_writer(&mut count, v).is_err() {
        return 0;
    }
    count.0.div_ceil(4)
}

/// Counts the characters of UTF-8 text written to it (the bytes that start a character).
struct CharCount(u64);

impl std::io::Write for CharCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.iter().filter(|b| (**b & 0xC0) != 0x80).count() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
