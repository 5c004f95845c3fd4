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

/// An estimate of the input tokens of a Messages request body (docs/client-apis.md#messages-token-count-estimate):
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn estimate(v: Value) -> u64 {
        match v {
            Value::Object(o) => count_tokens_estimate(&o),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn the_rule() {
        // 8 per request.
        assert_eq!(estimate(json!({})), 8);
        // 4 per message; "Hello" is ceil(5 / 4) = 2.
        assert_eq!(estimate(json!({"messages": [{"role": "user", "content": "Hello"}]})), 8 + 4 + 2);
        // Each piece is rounded up on its own: 1 + 1 + 2 (system blocks), 3 (a string system).
        assert_eq!(
            estimate(
                json!({"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "12345"}]})
            ),
            8 + 1 + 1 + 2
        );
        assert_eq!(estimate(json!({"system": "123456789"})), 8 + 3);
        // Characters, not bytes: four 3-byte characters are one token.
        assert_eq!(estimate(json!({"system": "€€€€"})), 8 + 1);
    }

    #[test]
    fn every_counted_part() {
        let body = json!({
            "model": "claude",
            "max_tokens": 1000,
            "system": "You are terse.",                                   // 14 chars → 4
            "tools": [{
                "name": "get_weather",                                      // 11 → 3
                "description": "Weather for a city",                        // 18 → 5
                "input_schema": {"type": "object"},                         // {"type":"object"} 17 → 5
            }],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},              // 13 → 4
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Look it up", "signature": "s"}, // 10 → 3
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Oslo"}}, // {"city":"Oslo"} 15 → 4
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t", "content": "-3°C"}, // 4 → 1
                    {"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "text", "text": "cloudy"},                  // 6 → 2
                        {"type": "image", "source": {"type": "url", "url": "https://x"}},
                    ]},
                ]},
            ],
        });
        let expected = 8 + 4 + (3 + 5 + 5) + 3 * 4 + 4 + IMAGE_TOKENS + 3 + 4 + 1 + 2 + IMAGE_TOKENS;
        assert_eq!(estimate(body), expected);
    }

    #[test]
    fn odd_shapes_count_nothing() {
        assert_eq!(estimate(json!({"messages": "x", "system": 5, "tools": {"name": "f"}})), 8);
        assert_eq!(estimate(json!({"messages": [5, {"content": [7, {"type": "video"}]}]})), 8 + 4 + 4);
    }
}
