//! The `response` object: a unified chat answer's output items, status and usage, with the
//! request fields the answer echoes. Whole answers and the stream's lifecycle events
//! (`response.created`, `response.completed`, …) serialise the same [`ResponseObject`], so a
//! stream's final object is exactly the whole answer's.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde_json::{Map, Value};

use crate::api::call_id;
use crate::api::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Answer, Usage};

/// A whole unified answer as a `response` object. Only a chat answer is valid: the
/// Responses API serves chat endpoints.
pub fn answer(answer: &Answer, meta: &AnswerMeta) -> Result<Bytes, GatewayError> {
    let Answer::Chat(chat) = answer else {
        return Err(GatewayError::internal("the Responses API answers with chat answers only"));
    };
    let rid = meta.request_id.as_str();
    let mut items = Vec::new();
    let mut status = Status::Completed;
    // The Responses API has no `n`: the first choice is the answer.
    if let Some(choice) = chat.choices.iter().find(|c| c.index == 0).or_else(|| chat.choices.first()) {
        let m = &choice.message;
        if let Some(text) = m.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            let mut item = Item::new(rid, items.len(), Kind::Reasoning, Cow::Borrowed(text));
            item.signature = m.thinking_signature.as_deref().map(Cow::Borrowed);
            items.push(item);
        }
        if let Some(text) = m.content.as_deref().filter(|t| !t.is_empty()) {
            items.push(Item::new(rid, items.len(), Kind::Message, Cow::Borrowed(text)));
        }
        for call in m.tool_calls.iter().flatten() {
            let kind = Kind::Call {
                call_id: call_id::join(&call.id, call.thought_signature.as_deref()),
                name: Cow::Borrowed(call.function.name.as_str()),
            };
            items.push(Item::new(rid, items.len(), kind, Cow::Borrowed(call.function.arguments.as_str())));
        }
        status = Status::of_finish(choice.finish_reason.as_deref());
    }
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter_mut().enumerate() {
        item.status = if i == last && status.is_incomplete() { ItemStatus::Incomplete } else { ItemStatus::Completed };
    }
    let id = response_id(rid);
    let object = ResponseObject {
        id: &id,
        created_at: meta.created,
        status,
        error: None,
        model: meta.model.as_deref().or(chat.model.as_deref()).unwrap_or_default(),
        output: &items,
        usage: Some(&chat.usage),
        echo: &meta.echo,
    };
    serde_json::to_vec(&object)
        .map(Bytes::from)
        .map_err(|e| GatewayError::internal(format!("cannot serialise the response: {e}")))
}

/// The response's id: `resp_` and the gateway's request id (the stream's events and its
/// final object agree on it).
pub(super) fn response_id(request_id: &str) -> String {
    format!("resp_{request_id}")
}

/// What an output item is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind<'a> {
    /// `reasoning`: the provider's reasoning text as its summary.
    Reasoning,
    /// `message`: the assistant's text.
    Message,
    /// `function_call`: one tool call.
    Call {
        /// The tool call's id, which the `function_call_output` answering it names.
        call_id: Cow<'a, str>,
        /// The function.
        name: Cow<'a, str>,
    },
}

/// An output item's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ItemStatus {
    /// Still being streamed.
    InProgress,
    /// Done.
    Completed,
    /// Cut short (the answer's token limit or a content filter, or a failed stream).
    Incomplete,
}

impl ItemStatus {
    fn as_str(self) -> &'static str {
        match self {
            ItemStatus::InProgress => "in_progress",
            ItemStatus::Completed => "completed",
            ItemStatus::Incomplete => "incomplete",
        }
    }
}

/// One output item.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Item<'a> {
    /// `rs_…`, `msg_…` or `fc_…`: derived from the request id and the item's output index.
    pub id: String,
    /// What it is.
    pub kind: Kind<'a>,
    /// The reasoning text, the message text or the call's JSON arguments.
    pub text: Cow<'a, str>,
    /// Its status.
    pub status: ItemStatus,
    /// A reasoning item's signature (Claude's), written into its `encrypted_content` so that
    /// the client gives it back (see [`super::THINKING_SIGNATURE_PREFIX`]).
    pub signature: Option<Cow<'a, str>>,
}

impl<'a> Item<'a> {
    /// Item number `index` of the answer to request `request_id`, in progress.
    pub fn new(request_id: &str, index: usize, kind: Kind<'a>, text: Cow<'a, str>) -> Self {
        let prefix = match kind {
            Kind::Reasoning => "rs",
            Kind::Message => "msg",
            Kind::Call { .. } => "fc",
        };
        Item {
            id: format!("{prefix}_{request_id}_{index}"),
            kind,
            text,
            status: ItemStatus::InProgress,
            signature: None,
        }
    }

    /// The item as `response.output_item.added` shows it: nothing generated yet.
    pub fn added(&self) -> ItemView<'_, 'a> {
        ItemView { item: self, added: true }
    }

    /// The item with its content so far.
    pub fn whole(&self) -> ItemView<'_, 'a> {
        ItemView { item: self, added: false }
    }
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.whole().serialize(s)
    }
}

/// An [`Item`] as serialised: whole, or as just added (no content, `in_progress`).
pub(super) struct ItemView<'i, 'a> {
    item: &'i Item<'a>,
    added: bool,
}

impl Serialize for ItemView<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let item = self.item;
        let (status, text) = if self.added { (ItemStatus::InProgress, "") } else { (item.status, &*item.text) };
        match &item.kind {
            Kind::Reasoning => {
                let mut m = s.serialize_struct("ResponseReasoningItem", 4)?;
                m.serialize_field("type", "reasoning")?;
                m.serialize_field("id", &item.id)?;
                m.serialize_field("summary", &Summary(text))?;
                if let Some(signature) = item.signature.as_deref().filter(|_| !self.added) {
                    m.serialize_field(
                        "encrypted_content",
                        &format!("{}{signature}", super::THINKING_SIGNATURE_PREFIX),
                    )?;
                }
                m.end()
            }
            Kind::Message => {
                let mut m = s.serialize_struct("ResponseOutputMessage", 5)?;
                m.serialize_field("type", "message")?;
                m.serialize_field("id", &item.id)?;
                m.serialize_field("status", status.as_str())?;
                m.serialize_field("role", "assistant")?;
                if self.added {
                    m.serialize_field("content", &[(); 0])?;
                } else {
                    m.serialize_field("content", &[OutputText::new(text)])?;
                }
                m.end()
            }
            Kind::Call { call_id, name } => {
                let mut m = s.serialize_struct("ResponseFunctionToolCall", 6)?;
                m.serialize_field("type", "function_call")?;
                m.serialize_field("id", &item.id)?;
                m.serialize_field("call_id", call_id)?;
                m.serialize_field("name", name)?;
                m.serialize_field("arguments", text)?;
                m.serialize_field("status", status.as_str())?;
                m.end()
            }
        }
    }
}

/// A reasoning item's `summary`: one `summary_text` part, none while empty.
struct Summary<'a>(&'a str);

impl Serialize for Summary<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_empty() { [(); 0].serialize(s) } else { [SummaryText::new(self.0)].serialize(s) }
    }
}

/// A `summary_text` part.
#[derive(Serialize)]
pub(super) struct SummaryText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> SummaryText<'a> {
    /// A part with `text`.
    pub fn new(text: &'a str) -> Self {
        SummaryText { kind: "summary_text", text }
    }
}

/// An `output_text` content part (no annotations or log probabilities: no provider behind the
/// translation reports them).
#[derive(Serialize)]
pub(super) struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl<'a> OutputText<'a> {
    /// A part with `text`.
    pub fn new(text: &'a str) -> Self {
        OutputText { kind: "output_text", text, annotations: [], logprobs: [] }
    }
}

/// The response's `status` (and `incomplete_details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Streaming.
    InProgress,
    /// Done.
    Completed,
    /// Cut short; the reason is `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    /// A stream that failed after it started.
    Failed,
}

impl Status {
    /// The status a unified `finish_reason` gives: `length` and `content_filter` leave the
    /// response incomplete.
    pub fn of_finish(reason: Option<&str>) -> Status {
        match reason {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    /// Whether the response was cut short.
    pub fn is_incomplete(self) -> bool {
        matches!(self, Status::Incomplete(_))
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed => "failed",
        }
    }
}

/// A failed response's `error`.
#[derive(Debug, Serialize)]
pub(super) struct Failure<'a> {
    /// A Responses error code (`server_error`, `rate_limit_exceeded`, …) or the gateway's.
    pub code: &'a str,
    /// What went wrong.
    pub message: &'a str,
}

/// The `response` object.
pub(super) struct ResponseObject<'r, 'a> {
    /// `resp_…`.
    pub id: &'r str,
    /// Unix seconds at the start of the request.
    pub created_at: u64,
    /// Its status.
    pub status: Status,
    /// Set when the status is failed.
    pub error: Option<Failure<'r>>,
    /// The model that answered.
    pub model: &'r str,
    /// The output items.
    pub output: &'r [Item<'a>],
    /// Token usage, when the upstream reported any count.
    pub usage: Option<&'r Usage>,
    /// The request's echoed fields ([`crate::api::Parsed::echo`]).
    pub echo: &'r Map<String, Value>,
}

/// What an echoed field is when the request did not send it.
#[derive(Clone, Copy)]
enum Default {
    Null,
    Bool(bool),
    EmptyObject,
    EmptyArray,
    Str(&'static str),
    /// `{"format": {"type": "text"}}`.
    TextFormat,
}

impl Serialize for Default {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Default::Null => s.serialize_none(),
            Default::Bool(b) => s.serialize_bool(b),
            Default::EmptyObject => s.serialize_map(Some(0))?.end(),
            Default::EmptyArray => [(); 0].serialize(s),
            Default::Str(v) => s.serialize_str(v),
            Default::TextFormat => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("format", &TextFormat { kind: "text" })?;
                m.end()
            }
        }
    }
}

#[derive(Serialize)]
struct TextFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The echoed fields that precede `model`, and those between `output` and `usage`, with
/// their defaults (`store` is always false and `user` and `metadata` end the object).
const ECHO_BEFORE_MODEL: &[(&str, Default)] =
    &[("instructions", Default::Null), ("max_output_tokens", Default::Null), ("max_tool_calls", Default::Null)];
const ECHO_AFTER_OUTPUT: &[(&str, Default)] = &[
    ("parallel_tool_calls", Default::Bool(true)),
    ("previous_response_id", Default::Null),
    ("prompt_cache_key", Default::Null),
    ("prompt_cache_retention", Default::Null),
    ("reasoning", Default::Null),
    ("safety_identifier", Default::Null),
    ("temperature", Default::Null),
    ("text", Default::TextFormat),
    ("tool_choice", Default::Str("auto")),
    ("tools", Default::EmptyArray),
    ("top_logprobs", Default::Null),
    ("top_p", Default::Null),
    ("truncation", Default::Str("disabled")),
];

impl Serialize for ResponseObject<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let echo = |m: &mut S::SerializeMap, fields: &[(&str, Default)]| -> Result<(), S::Error> {
            for (key, default) in fields {
                match self.echo.get(*key) {
                    Some(v) => m.serialize_entry(key, v)?,
                    None => m.serialize_entry(key, default)?,
                }
            }
            Ok(())
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", self.id)?;
        m.serialize_entry("object", "response")?;
        m.serialize_entry("created_at", &self.created_at)?;
        m.serialize_entry("status", self.status.as_str())?;
        echo(&mut m, &[("background", Default::Bool(false))])?;
        m.serialize_entry("error", &self.error)?;
        match self.status {
            Status::Incomplete(reason) => m.serialize_entry("incomplete_details", &IncompleteDetails { reason })?,
            _ => m.serialize_entry("incomplete_details", &None::<()>)?,
        }
        echo(&mut m, ECHO_BEFORE_MODEL)?;
        m.serialize_entry("model", self.model)?;
        m.serialize_entry("output", self.output)?;
        echo(&mut m, ECHO_AFTER_OUTPUT)?;
        // Nothing is stored, whatever the request's `store` said.
        m.serialize_entry("store", &false)?;
        m.serialize_entry("usage", &self.usage.filter(|u| u.is_known()).map(ResponseUsage))?;
        echo(&mut m, &[("user", Default::Null), ("metadata", Default::EmptyObject)])?;
        m.end()
    }
}

#[derive(Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// Unified usage as the Responses API's: input and output tokens, cached and cache-write
/// input tokens, reasoning tokens (0 when the upstream does not say).
struct ResponseUsage<'u>(&'u Usage);

#[derive(Serialize)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl Serialize for ResponseUsage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let count = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_u64);
        let input = u.prompt_tokens.unwrap_or(0);
        let output = u.completion_tokens.unwrap_or(0);
        let details = u.prompt_tokens_details.as_ref();
        let cached = count(details, "cached_tokens").unwrap_or(0);
        // OpenAI reports cache writes in the details; Anthropic as `cache_creation_input_tokens`.
        let cache_write = count(details, "cache_write_tokens")
            .or_else(|| u.extra.get("cache_creation_input_tokens").and_then(Value::as_u64))
            .unwrap_or(0);
        // OpenAI's `completion_tokens_details.reasoning_tokens`; Gemini's `thoughtsTokenCount`.
        let reasoning = count(u.extra.get("completion_tokens_details"), "reasoning_tokens")
            .or_else(|| u.extra.get("thoughtsTokenCount").and_then(Value::as_u64))
            .unwrap_or(0);
        let mut m = s.serialize_struct("ResponseUsage", 5)?;
        m.serialize_field("input_tokens", &input)?;
        m.serialize_field(
            "input_tokens_details",
            &InputDetails { cached_tokens: cached, cache_write_tokens: cache_write },
        )?;
        m.serialize_field("output_tokens", &output)?;
        m.serialize_field("output_tokens_details", &OutputDetails { reasoning_tokens: reasoning })?;
        m.serialize_field("total_tokens", &u.total_tokens.unwrap_or(input.saturating_add(output)))?;
        m.end()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{
        ChatChoice, ChatResponse, CompletionsResponse, FunctionCall, ResponseMessage, ToolCall, object,
    };

    pub(crate) fn meta(echo: Value) -> AnswerMeta {
        let Value::Object(echo) = echo else { panic!("echo is an object") };
        AnswerMeta {
            model: Some("gpt-test".into()),
            request_id: "req1".into(),
            created: 1_700_000_000,
            echo,
            array_stream: false,
        }
    }

    fn chat(message: ResponseMessage, finish: Option<&str>, usage: Usage) -> Answer {
        Answer::Chat(ChatResponse {
            id: Some("chatcmpl-1".into()),
            object: object::CHAT,
            created: 1,
            model: Some("upstream-model".into()),
            choices: vec![ChatChoice { index: 0, message, finish_reason: finish.map(str::to_owned) }],
            usage,
            provider: "anthropic",
        })
    }

    fn text(content: &str) -> ResponseMessage {
        ResponseMessage {
            role: "assistant".into(),
            content: Some(content.into()),
            tool_calls: None,
            refusal: None,
            reasoning_content: None,
            thinking_signature: None,
        }
    }

    fn usage(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
            ..Usage::default()
        }
    }

    fn body(answer: &Answer, meta: &AnswerMeta) -> Value {
        serde_json::from_slice(&super::answer(answer, meta).unwrap()).unwrap()
    }

    /// The whole object of a completed answer with `output` and `usage`, every echoed field at
    /// its default.
    pub(crate) fn expected(status: &str, output: Value, usage: Value) -> Value {
        json!({
            "id": "resp_req1", "object": "response", "created_at": 1_700_000_000, "status": status,
            "background": false, "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "max_tool_calls": null, "model": "gpt-test", "output": output,
            "parallel_tool_calls": true, "previous_response_id": null, "prompt_cache_key": null,
            "prompt_cache_retention": null, "reasoning": null, "safety_identifier": null, "temperature": null,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_logprobs": null,
            "top_p": null, "truncation": "disabled", "store": false, "usage": usage, "user": null, "metadata": {}
        })
    }

    pub(crate) fn usage_json(input: u64, output: u64) -> Value {
        json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": input + output})
    }

    #[test]
    fn a_text_answer() {
        let answer = chat(text("Hello!"), Some("stop"), usage(5, 2));
        let got = body(&answer, &meta(json!({})));
        let output = json!([{"type": "message", "id": "msg_req1_0", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}]}]);
        assert_eq!(got, expected("completed", output, usage_json(5, 2)));
        // The key order is the one written down (OpenAI's, roughly).
        let raw = super::answer(&answer, &meta(json!({}))).unwrap();
        assert!(
            raw.starts_with(br#"{"id":"resp_req1","object":"response","created_at":1700000000,"status":"completed""#)
        );
    }

    #[test]
    fn tool_calls() {
        let message = ResponseMessage {
            content: None,
            tool_calls: Some(vec![
                ToolCall {
                    id: "call_1".into(),
                    kind: "function",
                    function: FunctionCall { name: "weather".into(), arguments: "{\"city\":\"Paris\"}".into() },
                    thought_signature: None,
                },
                ToolCall {
                    id: "call_2".into(),
                    kind: "function",
                    function: FunctionCall { name: "time".into(), arguments: "{}".into() },
                    thought_signature: None,
                },
            ]),
            ..text("")
        };
        let got = body(&chat(message, Some("tool_calls"), usage(9, 4)), &meta(json!({})));
        let output = json!([
            {"type": "function_call", "id": "fc_req1_0", "call_id": "call_1", "name": "weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_req1_1", "call_id": "call_2", "name": "time",
             "arguments": "{}", "status": "completed"}
        ]);
        assert_eq!(got, expected("completed", output, usage_json(9, 4)));
    }

    /// A Gemini thought signature travels in the `call_id` (api::call_id).
    #[test]
    fn thought_signatures_ride_in_call_ids() {
        let signed =
            ToolCall::function("call_1".into(), "f".into(), "{}".into()).with_thought_signature(Some("sig==".into()));
        let message = ResponseMessage { content: None, tool_calls: Some(vec![signed]), ..text("") };
        let got = body(&chat(message, Some("tool_calls"), usage(1, 1)), &meta(json!({})));
        assert_eq!(got["output"][0]["call_id"], json!(call_id::join("call_1", Some("sig=="))));
    }

    /// Claude's signature of its reasoning goes into the reasoning item's `encrypted_content`.
    #[test]
    fn signed_reasoning_has_encrypted_content() {
        let message = ResponseMessage { reasoning_content: Some("Think.".into()), ..text("Answer.") }
            .with_thinking_signature(Some("sig".into()));
        let got = body(&chat(message, Some("stop"), usage(1, 2)), &meta(json!({})));
        assert_eq!(
            got["output"][0]["encrypted_content"],
            json!(format!("{}sig", super::super::THINKING_SIGNATURE_PREFIX))
        );
    }

    #[test]
    fn reasoning_then_text() {
        let message = ResponseMessage { reasoning_content: Some("Think.".into()), ..text("Answer.") };
        let got = body(&chat(message, Some("stop"), usage(1, 2)), &meta(json!({})));
        assert_eq!(
            got["output"],
            json!([
                {"type": "reasoning", "id": "rs_req1_0", "summary": [{"type": "summary_text", "text": "Think."}]},
                {"type": "message", "id": "msg_req1_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Answer.", "annotations": [], "logprobs": []}]}
            ])
        );
    }

    #[test]
    fn length_and_content_filter_leave_it_incomplete() {
        let got = body(&chat(text("Once upon"), Some("length"), usage(3, 2)), &meta(json!({})));
        let output = json!([{"type": "message", "id": "msg_req1_0", "status": "incomplete", "role": "assistant",
            "content": [{"type": "output_text", "text": "Once upon", "annotations": [], "logprobs": []}]}]);
        let mut want = expected("incomplete", output, usage_json(3, 2));
        want["incomplete_details"] = json!({"reason": "max_output_tokens"});
        assert_eq!(got, want);
        let got = body(&chat(text(""), Some("content_filter"), Usage::default()), &meta(json!({})));
        assert_eq!(
            (&got["status"], &got["incomplete_details"], &got["output"], &got["usage"]),
            (&json!("incomplete"), &json!({"reason": "content_filter"}), &json!([]), &Value::Null)
        );
    }

    #[test]
    fn echoed_fields_replace_the_defaults() {
        let echo = json!({"instructions": "Be brief.", "temperature": 0.2, "top_p": 0.5, "max_output_tokens": 10,
            "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": true}],
            "tool_choice": "required", "parallel_tool_calls": false, "metadata": {"k": "v"}, "user": "u",
            "reasoning": {"effort": "low", "summary": null}, "text": {"format": {"type": "json_object"}},
            "truncation": "disabled", "prompt_cache_key": "pk"});
        let got = body(&chat(text("x"), Some("stop"), usage(1, 1)), &meta(echo.clone()));
        for (key, value) in echo.as_object().unwrap() {
            assert_eq!(&got[key], value, "{key}");
        }
        assert_eq!(got["store"], json!(false));
    }

    #[test]
    fn usage_details_and_model() {
        let u = Usage {
            prompt_tokens: Some(100),
            completion_tokens: Some(30),
            total_tokens: None,
            prompt_tokens_details: Some(json!({"cached_tokens": 40})),
            extra: json!({"completion_tokens_details": {"reasoning_tokens": 12}, "cache_creation_input_tokens": 7})
                .as_object()
                .unwrap()
                .clone(),
        };
        let mut m = meta(json!({}));
        m.model = None;
        let got = body(&chat(text("x"), None, u), &m);
        assert_eq!(
            got["usage"],
            json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 7},
                   "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 130})
        );
        assert_eq!(got["model"], "upstream-model");
        assert_eq!(got["status"], "completed");
    }

    #[test]
    fn only_chat_answers() {
        let answer = Answer::Completions(CompletionsResponse {
            id: None,
            object: object::COMPLETION,
            created: 1,
            model: None,
            choices: Vec::new(),
            usage: Usage::default(),
        });
        assert_eq!(super::answer(&answer, &meta(json!({}))).unwrap_err().status, 500);
        // No choice at all: an empty completed response.
        let Answer::Chat(mut c) = chat(text("x"), None, Usage::default()) else { unreachable!() };
        c.choices.clear();
        let got = body(&Answer::Chat(c), &meta(json!({})));
        assert_eq!((&got["status"], &got["output"]), (&json!("completed"), &json!([])));
    }
}
