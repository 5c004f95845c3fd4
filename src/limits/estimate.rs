//! What a request reserves at admission, before its real usage is known (docs/limits.md,
//! "Reserve, then settle"): an estimate of its prompt from the request's text, and its output
//! cap.
//!
//! * **Input**: the bytes of every string in the request body below its top level (message text,
//!   tool definitions, a schema, a prompt, embedding inputs), inline files (`data:` URLs) left
//!   out, divided by [`BYTES_PER_TOKEN`] and rounded up, plus [`TOKENS_PER_MESSAGE`] per chat
//!   message. Four bytes per token is the usual average for English text with the BPE tokenizers
//!   of OpenAI, Anthropic and Gemini; it is cheap (no tokenizer, one walk over the parsed body)
//!   and under-estimates only text that tokenizes worse than that (code, other scripts, digits).
//! * **Output**: the request's `max_tokens` (or `max_completion_tokens`), else the endpoint's
//!   default `max_tokens`, else [`FALLBACK_OUTPUT_TOKENS`]; times `n`. Embeddings have none.

use serde_json::{Map, Value};

use crate::schema::EndpointType;

/// Average bytes of text per token assumed by the estimate.
pub const BYTES_PER_TOKEN: u64 = 4;
/// Tokens added per chat message (role and separators).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Output tokens reserved for a request that sets no `max_tokens` when its endpoint has no
/// default either.
pub const FALLBACK_OUTPUT_TOKENS: u64 = 4096;

/// A request's reservation, in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    /// Prompt tokens, estimated from the text.
    pub input: u64,
    /// Completion tokens: the request's cap.
    pub output: u64,
}

impl Estimate {
    /// Prompt and completion together.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// The estimate for a unified request `body` of `endpoint_type`, with the endpoint's model
/// `defaults`.
pub fn estimate(endpoint_type: EndpointType, body: &Map<String, Value>, defaults: &Map<String, Value>) -> Estimate {
    let mut bytes = 0u64;
    for (key, value) in body {
        if !matches!(key.as_str(), "model" | "user") {
            bytes += text_bytes(value);
        }
    }
    let messages = body.get("messages").and_then(Value::as_array).map_or(0, |m| m.len() as u64);
    let input = bytes.div_ceil(BYTES_PER_TOKEN) + messages * TOKENS_PER_MESSAGE;
    let output = match endpoint_type {
        EndpointType::Embeddings => 0,
        _ => {
            let cap = ["max_tokens", "max_completion_tokens"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_u64))
                .or_else(|| defaults.get("max_tokens").and_then(Value::as_u64))
                .unwrap_or(FALLBACK_OUTPUT_TOKENS);
            let n = body.get("n").or_else(|| defaults.get("n")).and_then(Value::as_u64).unwrap_or(1).max(1);
            cap.saturating_mul(n)
        }
    };
    Estimate { input, output }
}

/// Bytes of text in a JSON value: strings (but inline `data:` files) and the keys of the
/// objects inside it (a tool's parameter names are prompt tokens too).
fn text_bytes(value: &Value) -> u64 {
    match value {
        Value::String(s) if s.starts_with("data:") => 0,
        Value::String(s) => s.len() as u64,
        Value::Array(items) => items.iter().map(text_bytes).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() as u64 + text_bytes(v)).sum(),
        Value::Number(_) | Value::Bool(_) | Value::Null => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn input_is_text_bytes_over_four_plus_four_per_message() {
        // 'role' + 'user' + 'content' + 12 bytes = 27 bytes -> 7 tokens, + 4 for the message.
        let b =
            body(json!({"model": "chat", "messages": [{"role": "user", "content": "Hello, world"}], "max_tokens": 10}));
        assert_eq!(estimate(EndpointType::Chat, &b, &Map::new()), Estimate { input: 11, output: 10 });
        // Inline images count nothing (their cost is settled from the real usage).
        let b = body(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}));
        let e = estimate(EndpointType::Chat, &b, &Map::new());
        assert_eq!(e.input, (4 + 4 + 7 + 4 + 9 + 9 + 3u64).div_ceil(4) + 4);
    }

    #[test]
    fn output_is_the_cap_the_default_or_the_fallback_times_n() {
        let d = body(json!({"max_tokens": 300}));
        let b = body(json!({"messages": [], "max_completion_tokens": 50, "n": 2}));
        assert_eq!(estimate(EndpointType::Chat, &b, &d).output, 100);
        let b = body(json!({"messages": []}));
        assert_eq!(estimate(EndpointType::Chat, &b, &d).output, 300);
        assert_eq!(estimate(EndpointType::Chat, &b, &Map::new()).output, FALLBACK_OUTPUT_TOKENS);
        let b = body(json!({"input": ["abcd", "efgh"]}));
        assert_eq!(estimate(EndpointType::Embeddings, &b, &d), Estimate { input: 2, output: 0 });
        assert_eq!(
            estimate(EndpointType::Completions, &body(json!({"prompt": "abcdefgh", "max_tokens": 1})), &d).total(),
            3
        );
    }
}
