//! The built-in `mock` provider (an aigw extension): deterministic answers without any
//! network, for trying the gateway, testing applications offline, and benchmarks.
//!
//! It answers in OpenAI's wire format and goes through the same decoders as the `openai`
//! provider, so what a client sees is exactly what a real OpenAI-format upstream would give.
//!
//! ```yaml
//! - name: chat
//!   endpoint_type: llm/v1/chat
//!   model:
//!     provider: mock
//!     name: mock-1
//!     config:                 # all optional
//!       reply: "Hello!"       # default: echoes the last user message
//!       latency_ms: 20        # before the answer (or the first chunk)
//!       chunk_delay_ms: 5     # between streamed chunks
//!       dimensions: 8         # embedding size
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use super::openai_wire::{OPENAI, chat_decoder, completions_decoder, embeddings_decoder};
use super::{Call, EndpointSpec, Exchange, Provider};
use crate::config::{ConfigMap, FieldError};
use crate::error::GatewayError;
use crate::schema::{EndpointType, Request};

/// Longest piece of the user's message echoed back.
const ECHO_LIMIT: usize = 200;

/// The `mock` provider.
pub struct Mock {
    reply: Option<String>,
    latency: Duration,
    chunk_delay: Duration,
    dimensions: usize,
}

impl Mock {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Mock, FieldError> {
        let ms = |v: Option<u64>| Duration::from_millis(v.unwrap_or(0));
        let dimensions = cfg.u64("dimensions")?.unwrap_or(8);
        if dimensions == 0 || dimensions > 65_536 {
            return Err(cfg.error("dimensions", "must be between 1 and 65536"));
        }
        Ok(Mock {
            reply: cfg.string("reply")?,
            latency: ms(cfg.u64("latency_ms")?),
            chunk_delay: ms(cfg.u64("chunk_delay_ms")?),
            dimensions: dimensions as usize,
        })
    }

    fn answer(&self, chunks: Vec<Bytes>, stream: bool) -> MockAnswer {
        MockAnswer {
            content_type: if stream { "text/event-stream" } else { "application/json" },
            first_delay: self.latency,
            chunk_delay: if stream { self.chunk_delay } else { Duration::ZERO },
            chunks: chunks.into(),
            started: false,
        }
    }

    fn reply_text(&self, req: &Request) -> String {
        if let Some(r) = &self.reply {
            return r.clone();
        }
        let asked = match req.endpoint_type {
            EndpointType::Chat => req
                .messages()
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .map(message_text)
                .unwrap_or_default(),
            _ => req.str("prompt").unwrap_or_default().to_owned(),
        };
        let mut echo: String = asked.chars().take(ECHO_LIMIT).collect();
        if echo.len() < asked.len() {
            echo.push('…');
        }
        format!("This is a mock response to: {echo}")
    }
}

fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

fn count_words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn prompt_tokens(req: &Request) -> u64 {
    match req.endpoint_type {
        EndpointType::Chat => req.messages().iter().map(|m| count_words(&message_text(m))).sum(),
        _ => count_words(req.str("prompt").unwrap_or_default()),
    }
}

/// Split a reply into word-sized pieces that concatenate back to it.
fn pieces(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

impl Provider for Mock {
    fn display_name(&self) -> &'static str {
        "Mock"
    }

    fn chat(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let text = self.reply_text(&req);
        let model = call.model().unwrap_or("mock");
        let (prompt, completion) = (prompt_tokens(&req), count_words(&text));
        let usage =
            json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
        let id = format!("chatcmpl-mock-{}", call.created);
        let stream = req.stream();
        let chunks = if stream {
            let head = |delta: Value, finish: Value| {
                json!({"id": id, "object": "chat.completion.chunk", "created": call.created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            };
            let mut c = vec![sse(&head(json!({"role": "assistant", "content": ""}), Value::Null))];
            c.extend(pieces(&text).into_iter().map(|p| sse(&head(json!({"content": p}), Value::Null))));
            c.push(sse(&head(json!({}), json!("stop"))));
            c.push(sse(&json!({"id": id, "object": "chat.completion.chunk", "created": call.created, "model": model,
                               "choices": [], "usage": usage})));
            c.push(Bytes::from_static(b"data: [DONE]\n\n"));
            c
        } else {
            vec![Bytes::from(
                json!({"id": id, "object": "chat.completion", "created": call.created, "model": model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                       "usage": usage})
                .to_string(),
            )]
        };
        Ok(Exchange::Local { answer: self.answer(chunks, stream), decoder: chat_decoder(&OPENAI, stream, call) })
    }

    fn completions(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let text = self.reply_text(&req);
        let model = call.model().unwrap_or("mock");
        let (prompt, completion) = (prompt_tokens(&req), count_words(&text));
        let usage =
            json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
        let id = format!("cmpl-mock-{}", call.created);
        let stream = req.stream();
        let chunks = if stream {
            let head = |t: &str, finish: Value| {
                json!({"id": id, "object": "text_completion", "created": call.created, "model": model,
                       "choices": [{"index": 0, "text": t, "finish_reason": finish}]})
            };
            let mut c: Vec<Bytes> = pieces(&text).into_iter().map(|p| sse(&head(p, Value::Null))).collect();
            c.push(sse(&head("", json!("stop"))));
            c.push(sse(&json!({"id": id, "object": "text_completion", "created": call.created, "model": model,
                               "choices": [], "usage": usage})));
            c.push(Bytes::from_static(b"data: [DONE]\n\n"));
            c
        } else {
            vec![Bytes::from(
                json!({"id": id, "object": "text_completion", "created": call.created, "model": model,
                       "choices": [{"index": 0, "text": text, "finish_reason": "stop"}], "usage": usage})
                .to_string(),
            )]
        };
        Ok(Exchange::Local { answer: self.answer(chunks, stream), decoder: completions_decoder(&OPENAI, stream, call) })
    }

    fn embeddings(&self, req: Request, call: &Call<'_>) -> Result<Exchange, GatewayError> {
        let inputs: Vec<String> = match req.body.get("input") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_array) => {
                items.iter().map(Value::to_string).collect()
            }
            Some(other) => vec![other.to_string()],
            None => Vec::new(),
        };
        let base64 = req.str("encoding_format") == Some("base64");
        let dims = req.u64("dimensions").map_or(self.dimensions, |d| (d as usize).clamp(1, 65_536));
        let tokens: u64 = inputs.iter().map(|s| count_words(s).max(1)).sum();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let v = embed(text, dims);
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    Value::from(v.iter().map(|f| f64::from(*f)).collect::<Vec<_>>())
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        let body = json!({"object": "list", "data": data, "model": call.model().unwrap_or("mock"),
                          "usage": {"prompt_tokens": tokens, "total_tokens": tokens}});
        Ok(Exchange::Local {
            answer: self.answer(vec![Bytes::from(body.to_string())], false),
            decoder: embeddings_decoder(&OPENAI, call),
        })
    }
}

/// A deterministic unit vector for `text` (FNV-1a seeded xorshift; the same text always gives
/// the same vector, different texts almost surely different ones).
fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    for x in &mut v {
        *x /= norm;
    }
    v
}

/// The mock's answer: OpenAI wire bytes, delivered with the configured delays.
pub struct MockAnswer {
    /// `application/json` or `text/event-stream`.
    pub content_type: &'static str,
    first_delay: Duration,
    chunk_delay: Duration,
    chunks: VecDeque<Bytes>,
    started: bool,
}

impl MockAnswer {
    /// The next piece of the answer, `None` at the end.
    pub async fn chunk(&mut self) -> Option<Bytes> {
        let delay = if self.started { self.chunk_delay } else { self.first_delay };
        self.started = true;
        let next = self.chunks.pop_front()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate() {
        let t = "This is a mock  response";
        assert_eq!(pieces(t).concat(), t);
        assert_eq!(pieces("one two three").len(), 3);
        assert!(pieces("").is_empty());
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello", 16);
        assert_eq!(a, embed("hello", 16));
        assert_ne!(a, embed("hellp", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
