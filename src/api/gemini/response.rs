//! A unified chat answer → a Gemini `GenerateContentResponse`, and the pieces the stream shares
//! (parts, finish reasons, usage metadata).

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::INCLUDE_THOUGHTS;
use crate::api::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Answer, Usage};

/// Gemini's finish reasons that a unified answer may carry lower-cased (an answer translated
/// from Gemini through a traffic route's other destination): upper-cased again.
const GEMINI_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
];

/// Unified `finish_reason` → Gemini's `finishReason`: `stop`, `tool_calls` (Gemini says `STOP`
/// when the model called functions) or none → `STOP`, `length` → `MAX_TOKENS`,
/// `content_filter` → `SAFETY`, one of Gemini's own reasons (lower-cased) → itself, anything
/// else → `OTHER`.
pub(super) fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        None | Some("stop" | "tool_calls" | "function_call" | "end_turn" | "complete" | "COMPLETE") => "STOP",
        Some("length" | "max_tokens") => "MAX_TOKENS",
        Some("content_filter") => "SAFETY",
        Some(other) => GEMINI_REASONS.iter().find(|r| r.eq_ignore_ascii_case(other)).copied().unwrap_or("OTHER"),
    }
}

/// `usageMetadata`. Gemini counts thoughts apart from the answer: `candidatesTokenCount`
/// excludes `thoughtsTokenCount`, whereas a unified `completion_tokens` includes the reasoning
/// tokens (`completion_tokens_details.reasoning_tokens`), except in answers from Gemini, which
/// report `thoughtsTokenCount` themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Gemini's counts for a unified usage.
    pub(super) fn of(u: &Usage) -> UsageMetadata {
        let gemini_thoughts = u.extra.get("thoughtsTokenCount").and_then(Value::as_u64);
        let reasoning = u
            .extra
            .get("completion_tokens_details")
            .and_then(|d| d.get("reasoning_tokens"))
            .and_then(Value::as_u64)
            .filter(|n| *n > 0);
        let (candidates, thoughts) = match (gemini_thoughts, reasoning) {
            (Some(t), _) => (u.completion_tokens, Some(t)),
            (None, Some(r)) => (u.completion_tokens.map(|c| c.saturating_sub(r)), Some(r)),
            (None, None) => (u.completion_tokens, None),
        };
        let cached = u.prompt_tokens_details.as_ref().and_then(|d| d.get("cached_tokens")).and_then(Value::as_u64);
        let total = u.total_tokens.or_else(|| u.prompt_tokens.zip(u.completion_tokens).map(|(p, c)| p + c));
        UsageMetadata {
            prompt_token_count: u.prompt_tokens,
            candidates_token_count: candidates,
            total_token_count: total,
            thoughts_token_count: thoughts.filter(|t| *t > 0),
            cached_content_token_count: cached.filter(|c| *c > 0),
        }
    }
}

/// One `GenerateContentResponse` (a whole answer, or one stream event).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse<'a> {
    pub candidates: Vec<Candidate<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<&'a str>,
    pub response_id: &'a str,
}

/// One candidate.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    pub content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
    pub index: u32,
}

/// A candidate's content: always the model's.
#[derive(Serialize)]
pub(super) struct Content<'a> {
    pub parts: Vec<Part<'a>>,
    pub role: &'static str,
}

impl<'a> Content<'a> {
    /// The model's content with `parts`.
    pub(super) fn model(parts: Vec<Part<'a>>) -> Content<'a> {
        Content { parts, role: "model" }
    }
}

/// A part of the model's content.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Part<'a> {
    /// Text, or a thought (`thought: true`, with Claude's signature when it has one).
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        thought: Option<bool>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    },
    /// A function call, with Gemini's thought signature when the call has one.
    Call {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'a str>,
    },
}

impl<'a> Part<'a> {
    /// A text part.
    pub(super) fn text(text: &'a str) -> Part<'a> {
        Part::Text { text, thought: None, thought_signature: None }
    }

    /// A thought part.
    pub(super) fn thought(text: &'a str, signature: Option<&'a str>) -> Part<'a> {
        Part::Text { text, thought: Some(true), thought_signature: signature }
    }

    /// A function call whose `arguments` (a unified call's JSON text) must be a JSON object;
    /// empty arguments are `{}`. Anything else is a 502 naming the function.
    pub(super) fn call(
        id: &'a str,
        name: &'a str,
        arguments: &'a str,
        signature: Option<&'a str>,
    ) -> Result<Part<'a>, GatewayError> {
        let arguments = arguments.trim();
        let args = if arguments.is_empty() {
            None
        } else {
            match serde_json::from_str::<&RawValue>(arguments) {
                Ok(raw) if raw.get().starts_with('{') => Some(raw),
                _ => {
                    return Err(GatewayError::bad_gateway(format!(
                        "the upstream's arguments for function '{name}' are not a JSON object"
                    )));
                }
            }
        };
        Ok(Part::Call { function_call: FunctionCall { id, name, args: Args(args) }, thought_signature: signature })
    }
}

/// A `functionCall`: the unified call's id (so that a client may answer it by id), its name
/// and its arguments as an object.
#[derive(Serialize)]
pub(super) struct FunctionCall<'a> {
    id: &'a str,
    name: &'a str,
    args: Args<'a>,
}

/// A call's `args`: the upstream's arguments as they are (a JSON object), or `{}`.
struct Args<'a>(Option<&'a RawValue>);

impl Serialize for Args<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Some(raw) => raw.serialize(s),
            None => s.serialize_map(Some(0))?.end(),
        }
    }
}

/// Whether the request asked for thoughts (see [`INCLUDE_THOUGHTS`]).
pub(super) fn include_thoughts(meta: &AnswerMeta) -> bool {
    meta.echo.get(INCLUDE_THOUGHTS).and_then(Value::as_bool) == Some(true)
}

/// The `responseId`: the upstream's id, else the gateway's request id.
pub(super) fn response_id<'a>(upstream: Option<&'a str>, meta: &'a AnswerMeta) -> &'a str {
    upstream.filter(|id| !id.is_empty()).unwrap_or(&meta.request_id)
}

/// Serialise one response.
pub(super) fn to_bytes(response: &GenerateContentResponse<'_>) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(response).map_err(|e| GatewayError::internal(format!("cannot serialise the answer: {e}")))
}

/// A whole unified chat answer as a `GenerateContentResponse`
/// (docs/client-apis.md#gemini-generatecontent): each choice a candidate whose parts are its
/// reasoning as a thought (when the request asked for thoughts), its text, and its tool calls as
/// `functionCall` parts with their arguments as an object (else 502). Only chat answers can be
/// written (anything else is a gateway bug: 500).
pub fn answer(answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    let Answer::Chat(chat) = answer else {
        return Err(GatewayError::internal("Gemini's generateContent can only answer with a chat answer"));
    };
    let thoughts = include_thoughts(meta);
    let mut candidates = Vec::with_capacity(chat.choices.len());
    for choice in &chat.choices {
        let m = &choice.message;
        let calls = m.tool_calls.as_deref().unwrap_or_default();
        let mut parts = Vec::with_capacity(2 + calls.len());
        if thoughts && let Some(r) = m.reasoning_content.as_deref() {
            parts.push(Part::thought(r, m.thinking_signature.as_deref()));
        }
        if let Some(text) = m.content.as_deref()
            && (!text.is_empty() || calls.is_empty())
        {
            parts.push(Part::text(text));
        }
        for call in calls {
            let (f, signature) = (&call.function, call.thought_signature.as_deref());
            parts.push(Part::call(&call.id, &f.name, &f.arguments, signature)?);
        }
        candidates.push(Candidate {
            content: Content::model(parts),
            finish_reason: Some(finish_reason(choice.finish_reason.as_deref())),
            index: choice.index,
        });
    }
    let response = GenerateContentResponse {
        candidates,
        usage_metadata: Some(UsageMetadata::of(&chat.usage)),
        model_version: meta.model.as_deref().or(chat.model.as_deref()),
        response_id: response_id(chat.id.as_deref(), meta),
    };
    to_bytes(&response).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::schema::{ChatChoice, ChatResponse, CompletionsResponse, ResponseMessage, ToolCall};

    fn meta(thoughts: bool) -> AnswerMeta {
        let mut echo = Map::new();
        if thoughts {
            echo.insert(INCLUDE_THOUGHTS.into(), json!(true));
        }
        AnswerMeta {
            model: Some("gpt-4o-mini".into()),
            request_id: "req1".into(),
            created: 1,
            echo,
            array_stream: false,
        }
    }

    fn usage(prompt: u64, completion: u64, reasoning: Option<u64>) -> Usage {
        let mut u = Usage::new(Some(prompt), Some(completion));
        if let Some(r) = reasoning {
            u.extra.insert("completion_tokens_details".into(), json!({"reasoning_tokens": r}));
        }
        u
    }

    fn encode(chat: ChatResponse, thoughts: bool) -> Value {
        serde_json::from_slice(&answer(&Answer::Chat(chat), &meta(thoughts)).unwrap()).unwrap()
    }

    #[test]
    fn text_tool_calls_and_usage() {
        let message = ResponseMessage::new(
            "assistant".into(),
            Some("Checking.".into()),
            Some(vec![
                ToolCall::function("call_1".into(), "get_weather".into(), "{\"city\": \"Paris\"}".into())
                    .with_thought_signature(Some("sig".into())),
                ToolCall::function("call_2".into(), "ping".into(), String::new()),
            ]),
        )
        .with_reasoning(Some("Let me think.".into()));
        let chat = ChatResponse::new(
            Some("chatcmpl-1".into()),
            1,
            Some("gpt-4o-mini-2024".into()),
            vec![ChatChoice::new(0, message, Some("tool_calls".into()))],
            usage(10, 30, Some(12)),
            "openai",
        );
        assert_eq!(
            encode(chat.clone(), false),
            json!({"candidates": [{"content": {"parts": [
                        {"text": "Checking."},
                        {"functionCall": {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig"},
                        {"functionCall": {"id": "call_2", "name": "ping", "args": {}}}], "role": "model"},
                    "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 18, "totalTokenCount": 40, "thoughtsTokenCount": 12},
                   "modelVersion": "gpt-4o-mini", "responseId": "chatcmpl-1"})
        );
        let with_thoughts = encode(chat, true);
        assert_eq!(
            with_thoughts["candidates"][0]["content"]["parts"][0],
            json!({"text": "Let me think.", "thought": true})
        );
    }

    #[test]
    fn finish_reasons_and_choices() {
        assert_eq!(
            [None, Some("stop"), Some("length"), Some("content_filter"), Some("recitation"), Some("weird")]
                .map(finish_reason),
            ["STOP", "STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "OTHER"]
        );
        let choice =
            |i, text: &str| ChatChoice::new(i, ResponseMessage::assistant(Some(text.into())), Some("length".into()));
        let chat = ChatResponse::new(None, 1, None, vec![choice(0, "a"), choice(1, "")], Usage::default(), "anthropic");
        let v = encode(chat, false);
        assert_eq!(
            v["candidates"][1],
            json!({"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "MAX_TOKENS", "index": 1})
        );
        assert_eq!((&v["responseId"], &v["usageMetadata"]), (&json!("req1"), &json!({})));
    }

    #[test]
    fn arguments_that_are_not_an_object_are_a_502() {
        let message = ResponseMessage::new(
            "assistant".into(),
            None,
            Some(vec![ToolCall::function("c".into(), "f".into(), "[1]".into())]),
        );
        let chat = ChatResponse::new(None, 1, None, vec![ChatChoice::new(0, message, None)], Usage::default(), "x");
        assert_eq!(answer(&Answer::Chat(chat), &meta(false)).unwrap_err().status, 502);
        let completions = CompletionsResponse::new(None, 1, None, Vec::new(), Usage::default());
        assert_eq!(answer(&Answer::Completions(completions), &meta(false)).unwrap_err().status, 500);
    }

    #[test]
    fn gemini_usage_keeps_its_own_thought_count() {
        let mut u = usage(3, 4, Some(5));
        u.extra.insert("thoughtsTokenCount".into(), json!(5));
        u.prompt_tokens_details = Some(json!({"cached_tokens": 2}));
        assert_eq!(
            serde_json::to_value(UsageMetadata::of(&u)).unwrap(),
            json!({"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7, "thoughtsTokenCount": 5, "cachedContentTokenCount": 2})
        );
    }
}
