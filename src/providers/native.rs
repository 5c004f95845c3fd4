//! A client API spoken by the provider itself: an Anthropic Messages request to Anthropic (or
//! Claude on Vertex AI), a Responses request to OpenAI, a Gemini generateContent request to
//! Gemini (or Gemini on Vertex AI). Nothing is translated: the client's body goes upstream with
//! only `model` replaced (Gemini's names the model in the URL: its body goes as sent) and
//! credentials added, and the answer comes
//! back unchanged, whole or event by event. On the way, the answer's token usage is read (for
//! the audit line, the metrics and token limits), an upstream stream is checked for its end
//! (a stream cut short ends with the client API's error event, never as a whole answer), and an
//! upstream error event ends the stream with the gateway's error event in the client's shape.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Decoder;
use crate::error::{ErrorKind, GatewayError};
use crate::framing::sse::{SseStream, SseTranslate};
use crate::schema::{Answer, Chunk, NativeAnswer, Usage};

/// A client API a provider may speak itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeApi {
    /// Anthropic's `POST /v1/messages`.
    AnthropicMessages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    AnthropicCountTokens,
    /// OpenAI's `POST /v1/responses`.
    OpenAiResponses,
    /// OpenAI's `POST /v1/chat/completions` (MLflow 3's `/gateway/openai/v1/chat/completions`).
    OpenAiChat,
    /// OpenAI's `POST /v1/embeddings` (MLflow 3's `/gateway/openai/v1/embeddings`).
    OpenAiEmbeddings,
    /// Gemini's `models/{model}:generateContent` and `:streamGenerateContent` (MLflow 3's
    /// `/gateway/gemini/v1beta/models/{endpoint}:…`).
    GeminiGenerateContent,
}

/// A request in a client API, for a provider to forward as it is.
#[derive(Debug, Clone)]
pub struct NativeRequest<'a> {
    /// Which API.
    pub api: NativeApi,
    /// The client's body.
    pub body: &'a Map<String, Value>,
    /// The client's headers that the API defines and the upstream should see
    /// (`anthropic-version`, `anthropic-beta`, `openai-beta`).
    pub headers: &'a [(http::HeaderName, http::HeaderValue)],
    /// Whether the client asked for a stream.
    pub stream: bool,
}

impl NativeRequest<'_> {
    /// The body with `model` set to the endpoint's model (kept as the client sent it when the
    /// endpoint names none), serialised.
    pub fn body_for(&self, model: Option<&str>) -> Result<Vec<u8>, GatewayError> {
        let mut body = self.body.clone();
        if let Some(m) = model {
            body.insert("model".into(), Value::from(m));
        }
        super::to_json(&body)
    }

    /// The body as the client sent it, serialised (an API whose URL names the model).
    pub fn body_as_sent(&self) -> Result<Vec<u8>, GatewayError> {
        super::to_json(self.body)
    }

    /// The body without `model` (Azure OpenAI routes by deployment), serialised.
    pub fn body_without_model(&self) -> Result<Vec<u8>, GatewayError> {
        let mut body = self.body.clone();
        body.remove("model");
        super::to_json(&body)
    }

    /// The client's value of header `name`, if it sent one.
    pub fn header(&self, name: &str) -> Option<&http::HeaderValue> {
        self.headers.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v)
    }
}

/// Headers a client of `api` may send that its upstream must see.
pub fn forwarded_headers(api: NativeApi) -> &'static [&'static str] {
    match api {
        NativeApi::AnthropicMessages | NativeApi::AnthropicCountTokens => &["anthropic-version", "anthropic-beta"],
        NativeApi::OpenAiResponses | NativeApi::OpenAiChat | NativeApi::OpenAiEmbeddings => &["openai-beta"],
        NativeApi::GeminiGenerateContent => &[],
    }
}

/// The decoder relaying an answer of `api`.
pub fn relay(api: NativeApi, stream: bool, provider: &'static str) -> Decoder {
    match (api, stream) {
        (NativeApi::AnthropicMessages, true) => {
            Decoder::Stream(Box::new(SseStream::new(AnthropicEvents::new(provider))))
        }
        (NativeApi::OpenAiResponses, true) => Decoder::Stream(Box::new(SseStream::new(ResponsesEvents::new(provider)))),
        (NativeApi::OpenAiChat, true) => Decoder::Stream(Box::new(SseStream::new(ChatEvents::new(provider)))),
        (NativeApi::GeminiGenerateContent, true) => {
            Decoder::Stream(Box::new(SseStream::new(GeminiEvents::new(provider))))
        }
        (api, _) => Decoder::Json(Box::new(move |body| whole(api, body, provider))),
    }
}

/// A whole answer: relayed as it is, its usage read.
fn whole(api: NativeApi, body: &[u8], provider: &'static str) -> Result<Answer, GatewayError> {
    #[derive(Deserialize)]
    struct WithUsage {
        usage: Option<Map<String, Value>>,
        #[serde(rename = "usageMetadata")]
        usage_metadata: Option<Map<String, Value>>,
    }
    let parsed: WithUsage = super::parse_upstream_json(body, provider)?;
    let usage = match api {
        NativeApi::GeminiGenerateContent => parsed.usage_metadata.as_ref().map(super::gemini::response::chat_usage),
        NativeApi::OpenAiResponses => parsed.usage.as_ref().map(responses_usage),
        NativeApi::OpenAiChat | NativeApi::OpenAiEmbeddings => {
            parsed.usage.as_ref().map(|u| Usage::from_openai(&Value::Object(u.clone())))
        }
        NativeApi::AnthropicMessages | NativeApi::AnthropicCountTokens => {
            parsed.usage.as_ref().map(super::anthropic::usage_from)
        }
    };
    Ok(Answer::Native(NativeAnswer { body: Bytes::copy_from_slice(body), usage }))
}

/// The Responses API's usage in unified terms.
fn responses_usage(u: &Map<String, Value>) -> Usage {
    let count = |k: &str| u.get(k).and_then(Value::as_u64);
    let cached = u.get("input_tokens_details").and_then(|d| d.get("cached_tokens")).and_then(Value::as_u64);
    let mut extra = Map::new();
    if let Some(d) = u.get("output_tokens_details").filter(|d| !d.is_null()) {
        extra.insert("completion_tokens_details".into(), d.clone());
    }
    Usage {
        prompt_tokens: count("input_tokens"),
        completion_tokens: count("output_tokens"),
        total_tokens: count("total_tokens"),
        prompt_tokens_details: cached.map(|c| json!({ "cached_tokens": c })),
        extra,
    }
}

/// One relayed event, framed again (`event:` line when it has a type).
fn frame(event: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(event.len() + data.len() + 16);
    if !event.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

fn unreadable(provider: &str, e: &serde_json::Error) -> GatewayError {
    GatewayError::bad_gateway(format!("{provider} sent an unreadable stream event: {e}"))
}

/// Anthropic's Messages stream, relayed: usage from `message_start` and `message_delta`
/// (cumulative), complete at `message_stop`, an `error` event ends the stream.
struct AnthropicEvents {
    provider: &'static str,
    usage: Map<String, Value>,
    unified: Option<Usage>,
    done: bool,
}

impl AnthropicEvents {
    fn new(provider: &'static str) -> Self {
        AnthropicEvents { provider, usage: Map::new(), unified: None, done: false }
    }

    fn take_usage(&mut self, usage: Option<&Value>) {
        if let Some(Value::Object(u)) = usage {
            for (k, v) in u {
                if !v.is_null() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
            self.unified = Some(super::anthropic::usage_from(&self.usage));
        }
    }
}

impl SseTranslate for AnthropicEvents {
    fn event(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type")]
            kind: Option<String>,
            message: Option<Value>,
            usage: Option<Value>,
            error: Option<Value>,
        }
        let e: Event = serde_json::from_str(data).map_err(|e| unreadable(self.provider, &e))?;
        let kind = e.kind.as_deref().unwrap_or(event);
        match kind {
            "error" => return Err(super::anthropic::stream_error(e.error.as_ref())),
            "message_start" => self.take_usage(e.message.as_ref().and_then(|m| m.get("usage"))),
            "message_delta" => self.take_usage(e.usage.as_ref()),
            "message_stop" => self.done = true,
            _ => {}
        }
        out.push(Chunk::Native(frame(event, data)));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<&Usage> {
        self.unified.as_ref()
    }
}

/// The Responses API's stream, relayed: usage and completion from `response.completed` (or
/// `response.incomplete`); `response.failed` and `error` end the stream with an error.
struct ResponsesEvents {
    provider: &'static str,
    usage: Option<Usage>,
    done: bool,
}

impl ResponsesEvents {
    fn new(provider: &'static str) -> Self {
        ResponsesEvents { provider, usage: None, done: false }
    }
}

impl SseTranslate for ResponsesEvents {
    fn event(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if data == "[DONE]" {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type")]
            kind: Option<String>,
            response: Option<Value>,
            message: Option<String>,
        }
        let e: Event = serde_json::from_str(data).map_err(|e| unreadable(self.provider, &e))?;
        let kind = e.kind.as_deref().unwrap_or(event);
        match kind {
            "error" => {
                let message = e.message.unwrap_or_else(|| "the upstream stream reported an error".into());
                return Err(GatewayError::new(502, ErrorKind::Upstream, message));
            }
            "response.failed" => {
                let message = e
                    .response
                    .as_ref()
                    .and_then(|r| r.get("error"))
                    .and_then(|err| err.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream response failed");
                return Err(GatewayError::new(502, ErrorKind::Upstream, message));
            }
            "response.completed" | "response.incomplete" => {
                self.done = true;
                if let Some(Value::Object(u)) = e.response.as_ref().and_then(|r| r.get("usage")) {
                    self.usage = Some(responses_usage(u));
                }
            }
            _ => {}
        }
        out.push(Chunk::Native(frame(event, data)));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

/// OpenAI's chat-completions stream, relayed (its `[DONE]` included): usage from the chunk that
/// carries it, complete at `[DONE]`; an `error` chunk ends the stream with an error.
struct ChatEvents {
    provider: &'static str,
    usage: Option<Usage>,
    done: bool,
}

impl ChatEvents {
    fn new(provider: &'static str) -> Self {
        ChatEvents { provider, usage: None, done: false }
    }
}

impl SseTranslate for ChatEvents {
    fn event(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        if data == "[DONE]" {
            self.done = true;
        } else {
            #[derive(Deserialize)]
            struct Chunk {
                usage: Option<Value>,
                error: Option<Value>,
            }
            let c: Chunk = serde_json::from_str(data).map_err(|e| unreadable(self.provider, &e))?;
            if let Some(error) = c.error.filter(|e| !e.is_null()) {
                let message =
                    error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
                return Err(GatewayError::new(502, ErrorKind::Upstream, message));
            }
            if let Some(u) = c.usage.filter(Value::is_object) {
                self.usage = Some(Usage::from_openai(&u));
            }
        }
        out.push(crate::schema::Chunk::Native(frame(event, data)));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

/// Gemini's stream (`alt=sse`), relayed: each event's JSON goes to the client API's encoder,
/// which frames it as the client asked (SSE, or the elements of a JSON array); usage from the
/// last `usageMetadata` (Gemini's counts are cumulative); complete once a candidate has a
/// `finishReason` or the prompt was blocked (`promptFeedback.blockReason`, which ends the stream
/// without candidates); an `error` event ends the stream with that error (its `code` as the
/// status).
struct GeminiEvents {
    provider: &'static str,
    usage: Option<Usage>,
    done: bool,
}

impl GeminiEvents {
    fn new(provider: &'static str) -> Self {
        GeminiEvents { provider, usage: None, done: false }
    }
}

impl SseTranslate for GeminiEvents {
    fn event(&mut self, _event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Event {
            candidates: Option<Vec<Candidate>>,
            usage_metadata: Option<Map<String, Value>>,
            prompt_feedback: Option<Feedback>,
            error: Option<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Candidate {
            finish_reason: Option<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Feedback {
            block_reason: Option<Value>,
        }
        if data == "[DONE]" {
            return Ok(());
        }
        let e: Event = serde_json::from_str(data).map_err(|e| unreadable(self.provider, &e))?;
        if let Some(error) = e.error.filter(|e| !e.is_null()) {
            let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            let status = error.get("code").and_then(Value::as_u64).filter(|c| (400..=599).contains(c)).unwrap_or(502);
            return Err(GatewayError::new(status as u16, ErrorKind::Upstream, message));
        }
        if let Some(u) = &e.usage_metadata {
            self.usage = Some(super::gemini::response::chat_usage(u));
        }
        let finished = e.candidates.iter().flatten().any(|c| c.finish_reason.as_ref().is_some_and(|f| !f.is_null()));
        let blocked = e.prompt_feedback.is_some_and(|f| f.block_reason.is_some_and(|b| !b.is_null()));
        self.done |= finished || blocked;
        out.push(Chunk::Native(Bytes::copy_from_slice(data.as_bytes())));
        Ok(())
    }

    fn complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(decoder: Decoder, pieces: &[&str]) -> (String, Option<GatewayError>, Option<Usage>) {
        let Decoder::Stream(mut d) = decoder else { panic!("a stream decoder") };
        let mut out = Vec::new();
        let mut err = None;
        for p in pieces {
            if let Err(e) = d.feed(p.as_bytes(), &mut out) {
                err = Some(e);
                break;
            }
        }
        if err.is_none() {
            err = d.finish(&mut out).err();
        }
        let text = out
            .iter()
            .map(|c| match c {
                Chunk::Native(b) => String::from_utf8(b.to_vec()).unwrap(),
                _ => panic!("only relayed events"),
            })
            .collect();
        (text, err, d.usage().cloned())
    }

    #[test]
    fn anthropic_events_pass_through_with_their_usage() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let (half_a, half_b) = stream.split_at(137);
        let (text, err, usage) = run(relay(NativeApi::AnthropicMessages, true, "anthropic"), &[half_a, half_b]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(text, stream, "every event relayed as it came");
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (Some(15), Some(7)));
    }

    #[test]
    fn anthropic_streams_cut_short_or_failing_are_errors() {
        let start =
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\n";
        let (_, err, _) = run(relay(NativeApi::AnthropicMessages, true, "anthropic"), &[start]);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        let failed = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (text, err, _) = run(relay(NativeApi::AnthropicMessages, true, "anthropic"), &[start, failed]);
        let err = err.unwrap();
        assert_eq!((err.status, err.message()), (529, "Overloaded".to_owned()));
        assert!(!text.contains("overloaded_error"), "the error event is the gateway's, not relayed twice");
    }

    #[test]
    fn responses_events_pass_through_and_complete() {
        let created = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n";
        let done = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":1},\"output_tokens\":4,\"output_tokens_details\":{\"reasoning_tokens\":2},\"total_tokens\":7}}}\n\n";
        let (text, err, usage) = run(relay(NativeApi::OpenAiResponses, true, "openai"), &[created, done]);
        assert!(err.is_none());
        assert_eq!(text, format!("{created}{done}"));
        let usage = usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens), (Some(3), Some(4), Some(7)));
        assert_eq!(usage.prompt_tokens_details, Some(json!({"cached_tokens": 1})));
        let (_, err, _) = run(relay(NativeApi::OpenAiResponses, true, "openai"), &[created]);
        assert_eq!(err.unwrap().status, 502);
        let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"message\":\"boom\"}}}\n\n";
        let (_, err, _) = run(relay(NativeApi::OpenAiResponses, true, "openai"), &[created, failed]);
        assert_eq!(err.unwrap().message(), "boom");
    }

    #[test]
    fn openai_chat_streams_pass_through_with_done() {
        let stream = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\ndata: [DONE]\n\n";
        let (text, err, usage) = run(relay(NativeApi::OpenAiChat, true, "openai"), &[stream]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(text, stream);
        assert_eq!(usage.unwrap().total_tokens, Some(5));
        let (_, err, _) =
            run(relay(NativeApi::OpenAiChat, true, "openai"), &[&stream[..stream.find("data: [DONE]").unwrap()]]);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
    }

    #[test]
    fn gemini_events_are_relayed_as_their_json_with_usage() {
        let first = r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4,"totalTokenCount":4},"modelVersion":"gemini-2.5-flash"}"#;
        let last = r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":2,"thoughtsTokenCount":3,"totalTokenCount":9}}"#;
        let stream = format!("data: {first}\r\n\r\ndata: {last}\r\n\r\n");
        let (half_a, half_b) = stream.split_at(61);
        let (text, err, usage) = run(relay(NativeApi::GeminiGenerateContent, true, "gemini"), &[half_a, half_b]);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(text, format!("{first}{last}"), "each event's JSON, for the client API's encoder to frame");
        let usage = usage.unwrap();
        // Output counts the thoughts too (candidates 2 + thoughts 3), as MLflow 3.18 does.
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.total_tokens), (Some(4), Some(5), Some(9)));

        let (_, err, _) =
            run(relay(NativeApi::GeminiGenerateContent, true, "gemini"), &[&format!("data: {first}\n\n")]);
        assert_eq!(err.unwrap().message(), "upstream stream ended before it was complete");
        let blocked =
            "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":4}}\n\n";
        let (_, err, _) = run(relay(NativeApi::GeminiGenerateContent, true, "gemini"), &[blocked]);
        assert!(err.is_none(), "a blocked prompt ends the stream: {err:?}");
        let failed =
            "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n";
        let (text, err, _) =
            run(relay(NativeApi::GeminiGenerateContent, true, "gemini"), &[&format!("data: {first}\n\n"), failed]);
        let err = err.unwrap();
        assert_eq!((err.status, err.message()), (503, "The model is overloaded.".to_owned()));
        assert!(!text.contains("UNAVAILABLE"), "the error event is the gateway's, not relayed twice");

        let Decoder::Json(decode) = relay(NativeApi::GeminiGenerateContent, false, "gemini") else { panic!() };
        let Answer::Native(a) = decode(last.as_bytes()).unwrap() else { panic!("relayed") };
        assert_eq!((&a.body[..], a.usage.unwrap().total_tokens), (last.as_bytes(), Some(9)));
    }

    #[test]
    fn whole_answers_are_relayed_with_usage() {
        let Decoder::Json(decode) = relay(NativeApi::AnthropicMessages, false, "anthropic") else { panic!() };
        let body = br#"{"id":"m","type":"message","usage":{"input_tokens":2,"output_tokens":3}}"#;
        let Answer::Native(a) = decode(body).unwrap() else { panic!("relayed") };
        assert_eq!(&a.body[..], &body[..]);
        assert_eq!(a.usage.unwrap().total_tokens, Some(5));
        let Decoder::Json(decode) = relay(NativeApi::AnthropicCountTokens, false, "anthropic") else { panic!() };
        let Answer::Native(a) = decode(br#"{"input_tokens":12}"#).unwrap() else { panic!("relayed") };
        assert!(a.usage.is_none());
        let Decoder::Json(decode) = relay(NativeApi::OpenAiResponses, false, "openai") else { panic!() };
        assert_eq!(decode(b"not json").unwrap_err().status, 502);
    }

    #[test]
    fn the_body_gets_the_endpoints_model() {
        let body: Map<String, Value> = serde_json::from_str(r#"{"model":"claude-x","max_tokens":5}"#).unwrap();
        let req = NativeRequest { api: NativeApi::AnthropicMessages, body: &body, headers: &[], stream: false };
        let out: Value = serde_json::from_slice(&req.body_for(Some("claude-3-5-haiku-latest")).unwrap()).unwrap();
        assert_eq!(out, json!({"model": "claude-3-5-haiku-latest", "max_tokens": 5}));
        let out: Value = serde_json::from_slice(&req.body_for(None).unwrap()).unwrap();
        assert_eq!(out["model"], json!("claude-x"));
    }
}
