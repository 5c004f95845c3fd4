//! A unified chat answer → an Anthropic `message` object, and the mappings the stream shares
//! (stop reasons, usage, ids).

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::api::call_id;
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
    Thinking { thinking: &'a str, signature: &'a str },
    Text { text: &'a str },
    ToolUse { id: Cow<'a, str>, name: &'a str, input: Input<'a> },
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

/// A whole unified chat answer as an Anthropic `message` (docs/client-apis.md#messages-answers):
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
            // Claude's signature when its thinking came signed (the client gives it back);
            // otherwise there is nothing to sign it with.
            content.push(Block::Thinking { thinking, signature: m.thinking_signature.as_deref().unwrap_or_default() });
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
            let id = call_id::join(&call.id, call.thought_signature.as_deref());
            content.push(Block::ToolUse { id, name: &call.function.name, input });
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::schema::{
        ChatChoice, ChatResponse, CompletionsResponse, FunctionCall, ResponseMessage, ToolCall, object,
    };

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: "function",
            function: FunctionCall { name: name.into(), arguments: arguments.into() },
            thought_signature: None,
        }
    }

    fn chat(content: Option<&str>, calls: Vec<ToolCall>, finish: Option<&str>) -> ChatResponse {
        ChatResponse {
            id: Some("chatcmpl-abc123".into()),
            object: object::CHAT,
            created: 1,
            model: Some("gpt-4o-2024-08-06".into()),
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: content.map(str::to_owned),
                    tool_calls: (!calls.is_empty()).then_some(calls),
                    refusal: None,
                    reasoning_content: None,
                    thinking_signature: None,
                },
                finish_reason: finish.map(str::to_owned),
            }],
            usage: Usage {
                prompt_tokens: Some(12),
                completion_tokens: Some(5),
                total_tokens: Some(17),
                ..Usage::default()
            },
            provider: "openai",
        }
    }

    fn meta() -> AnswerMeta {
        AnswerMeta {
            model: Some("gpt-4o".into()),
            request_id: "req-1".into(),
            created: 1,
            echo: Map::new(),
            array_stream: false,
        }
    }

    fn encode(c: ChatResponse, meta: &AnswerMeta) -> Value {
        match answer(&Answer::Chat(c), meta) {
            Ok(body) => match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => panic!("not JSON: {e}"),
            },
            Err(e) => panic!("refused: {e}"),
        }
    }

    #[test]
    fn a_text_answer() {
        let body = answer(&Answer::Chat(chat(Some("Hello!"), vec![], Some("stop"))), &meta()).ok();
        assert_eq!(
            body.as_deref(),
            Some(
                &br#"{"id":"msg_abc123","type":"message","role":"assistant","model":"gpt-4o","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5}}"#[..]
            )
        );
    }

    #[test]
    fn thinking_text_and_tool_calls_in_order() {
        let mut c = chat(
            Some("Let me look."),
            vec![call("call_1", "get_weather", "{\"city\": \"Paris\"}"), call("call_2", "now", "")],
            Some("tool_calls"),
        );
        c.choices[0].message.reasoning_content = Some("Weather needs a tool.".into());
        let v = encode(c, &meta());
        assert_eq!(
            v["content"],
            json!([
                {"type": "thinking", "thinking": "Weather needs a tool.", "signature": ""},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            ])
        );
        assert_eq!(v["stop_reason"], json!("tool_use"));
        // An empty text beside tool calls is left out; alone it stays.
        let v = encode(chat(Some(""), vec![call("c", "f", "{}")], Some("tool_calls")), &meta());
        assert_eq!(v["content"], json!([{"type": "tool_use", "id": "c", "name": "f", "input": {}}]));
        let v = encode(chat(Some(""), vec![], Some("stop")), &meta());
        assert_eq!(v["content"], json!([{"type": "text", "text": ""}]));
        let v = encode(chat(None, vec![], Some("stop")), &meta());
        assert_eq!(v["content"], json!([]));
    }

    /// A Gemini thought signature travels in the `tool_use` id (api::call_id).
    #[test]
    fn thought_signatures_ride_in_tool_use_ids() {
        let signed = call("call_1", "f", "{}").with_thought_signature(Some("sig==".into()));
        let v = encode(chat(None, vec![signed, call("call_2", "g", "{}")], Some("tool_calls")), &meta());
        assert_eq!(v["content"][0]["id"], json!(call_id::join("call_1", Some("sig=="))));
        assert_eq!(v["content"][1]["id"], json!("call_2"));
    }

    #[test]
    fn a_signed_thinking_keeps_its_signature() {
        let mut c = chat(Some("4"), vec![], Some("stop"));
        c.choices[0].message.reasoning_content = Some("2+2".into());
        c.choices[0].message.thinking_signature = Some("sig".into());
        let v = encode(c, &meta());
        assert_eq!(v["content"][0], json!({"type": "thinking", "thinking": "2+2", "signature": "sig"}));
    }

    #[test]
    fn arguments_that_are_not_an_object_are_a_bad_gateway() {
        for arguments in ["[1, 2]", "{\"a\": ", "\"text\"", "null"] {
            let err = answer(&Answer::Chat(chat(None, vec![call("c", "lookup", arguments)], None)), &meta()).err();
            let err = err.map(|e| (e.status, e.message()));
            assert!(matches!(&err, Some((502, m)) if m.contains("'lookup'")), "{arguments}: {err:?}");
        }
    }

    #[test]
    fn every_stop_reason() {
        for (finish, stop) in [
            (Some("stop"), "end_turn"),
            (None, "end_turn"),
            (Some("length"), "max_tokens"),
            (Some("tool_calls"), "tool_use"),
            (Some("function_call"), "tool_use"),
            (Some("content_filter"), "refusal"),
            (Some("COMPLETE"), "end_turn"),
        ] {
            let v = encode(chat(Some("x"), vec![], finish), &meta());
            assert_eq!(v["stop_reason"], json!(stop), "{finish:?}");
            assert_eq!(v["stop_sequence"], Value::Null);
        }
    }

    #[test]
    fn usage_with_cache_reads_and_writes() {
        let mut c = chat(Some("x"), vec![], Some("stop"));
        let mut extra = Map::new();
        extra.insert("cache_creation_input_tokens".into(), json!(300));
        c.usage = Usage {
            prompt_tokens: Some(1_500),
            completion_tokens: Some(40),
            total_tokens: Some(1_540),
            prompt_tokens_details: Some(json!({"cached_tokens": 1_000})),
            extra,
        };
        let v = encode(c.clone(), &meta());
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 200, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1_000, "output_tokens": 40})
        );
        // Inconsistent counts never give a negative input count; unknown counts are 0.
        c.usage.prompt_tokens = Some(100);
        assert_eq!(encode(c.clone(), &meta())["usage"]["input_tokens"], json!(0));
        c.usage = Usage::default();
        assert_eq!(
            encode(c, &meta())["usage"],
            json!({"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0})
        );
    }

    #[test]
    fn ids_and_model() {
        assert_eq!(message_id(Some("chatcmpl-xyz"), "r"), "msg_xyz");
        assert_eq!(message_id(Some("msg_01ABC"), "r"), "msg_01ABC");
        assert_eq!(message_id(Some("gen-42"), "r"), "msg_gen-42");
        assert_eq!(message_id(Some(""), "req-9"), "msg_req-9");
        assert_eq!(message_id(None, "req-9"), "msg_req-9");
        assert_eq!(message_id(None, ""), "msg_aigw");
        let mut c = chat(Some("x"), vec![], None);
        c.id = None;
        let no_model = AnswerMeta { model: None, ..meta() };
        let v = encode(c, &no_model);
        assert_eq!((v["id"].clone(), v["model"].clone()), (json!("msg_req-1"), json!("gpt-4o-2024-08-06")));
    }

    #[test]
    fn only_chat_answers() {
        let completions = Answer::Completions(CompletionsResponse {
            id: None,
            object: object::COMPLETION,
            created: 1,
            model: None,
            choices: Vec::new(),
            usage: Usage::default(),
        });
        assert_eq!(answer(&completions, &meta()).err().map(|e| e.status), Some(500));
    }
}
