//! Unified chat chunks as the Responses API's stream events.
//!
//! Every event is `event: <type>\ndata: <json>\n\n`, its JSON carrying `type` first and an
//! increasing `sequence_number` (from 0) last:
//!
//! * `response.created`, `response.in_progress`: the response, `in_progress`, no output yet
//!   (written before the first chunk's events, or by `finish` / `error` when no chunk came);
//! * text: `response.output_item.added` (a `message`, `in_progress`, no content),
//!   `response.content_part.added` (an empty `output_text`), one `response.output_text.delta`
//!   per fragment, and when the item ends `response.output_text.done`,
//!   `response.content_part.done`, `response.output_item.done`;
//! * reasoning: a `reasoning` item whose one summary part gets the text
//!   (`response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`,
//!   `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`);
//! * a tool call: a `function_call` item (`arguments` empty), one
//!   `response.function_call_arguments.delta` per fragment, then
//!   `response.function_call_arguments.done` and `response.output_item.done`;
//! * the end: `response.completed`, or `response.incomplete` when the finish reason was
//!   `length` or `content_filter`, with the whole response exactly as
//!   [`super::answer`] builds it (usage from the chunk that carried it).
//!
//! An item ends when another starts. A unified stream may interleave tool calls (arguments
//! of call 0 after call 1 started); Responses items cannot be reopened, so arguments for a
//! call whose item has ended end the stream with the error events below.
//!
//! An error after the start is `response.failed` (the response so far, `status: "failed"`,
//! its `error` set; what Codex reads) and then an `error` event with the documented flat
//! fields (`code`, `message`, `param`) and the same nested `error` object OpenAI's servers
//! send, on which the official Python SDK raises an `APIError` from the stream (it does not
//! on the flat fields alone). Nothing follows.
//!
//! When the events so far were OpenAI's own (a relayed native stream), an error is the `error`
//! event alone, numbered after the last relayed event: a `response.created` or
//! `response.failed` of the gateway's would name another response than the one under way (the
//! Python SDK's stream helper raises on that, not on the error).

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::response::{
    Failure, Item, ItemStatus, ItemView, Kind, OutputText, ResponseObject, Status, SummaryText, response_id,
};
use crate::api::call_id;
use crate::api::encode::AnswerMeta;
use crate::error::{Family, GatewayError};
use crate::schema::{Chunk, ToolCallDelta, Usage};

/// Writes unified chunks as the Responses API's stream events.
#[derive(Debug)]
pub struct ResponsesStream {
    meta: AnswerMeta,
    /// `resp_…`.
    id: String,
    /// The next event's `sequence_number`.
    seq: u64,
    phase: Phase,
    /// The model reported: the endpoint's, else the first chunk's.
    model: String,
    /// The output items so far; the last one may be open.
    items: Vec<Item<'static>>,
    /// Whether the last item is still receiving fragments.
    open: bool,
    /// The open item's fragment event up to its `delta` value (`event: …\ndata: {"type": …,
    /// "item_id": …, …, "delta":`), written once per item rather than once per fragment.
    delta_head: Vec<u8>,
    /// Unified tool call index → position of its item.
    calls: Vec<(u32, usize)>,
    /// From the finish reason.
    status: Status,
    usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing written yet.
    Fresh,
    /// `response.created` written.
    Started,
    /// The final events are written; nothing more is.
    Ended,
}

impl ResponsesStream {
    /// An encoder for one stream.
    pub fn new(meta: AnswerMeta) -> Self {
        let id = response_id(&meta.request_id);
        ResponsesStream {
            meta,
            id,
            seq: 0,
            phase: Phase::Fresh,
            model: String::new(),
            items: Vec::new(),
            open: false,
            delta_head: Vec::new(),
            calls: Vec::new(),
            status: Status::Completed,
            usage: None,
        }
    }

    /// Append the events for one chunk. Only chat chunks carry anything for this API; only
    /// the first choice is the answer (the Responses API has no `n`).
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        let Chunk::Chat(chunk) = chunk else { return };
        if self.phase == Phase::Ended {
            return;
        }
        self.start(chunk.model.as_deref(), out);
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.clone());
        }
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let delta = &choice.delta;
            if let Some(text) = delta.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
                self.text(false, text, out);
            }
            // Claude's signature of the reasoning streamed so far: the open reasoning item's.
            if let Some(signature) = &delta.thinking_signature
                && self.open
                && let Some(item) = self.items.last_mut().filter(|i| i.kind == Kind::Reasoning)
            {
                item.signature = Some(Cow::Owned(signature.clone()));
            }
            if let Some(text) = delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text(true, text, out);
            }
            for call in delta.tool_calls.iter().flatten() {
                self.call(call, out);
                if self.phase == Phase::Ended {
                    return;
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.status = Status::of_finish(Some(reason));
            }
        }
    }

    /// Append the end of a stream that completed: the open item's end, then
    /// `response.completed` (or `response.incomplete`).
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        self.start(None, out);
        let incomplete = self.status.is_incomplete();
        self.close(if incomplete { ItemStatus::Incomplete } else { ItemStatus::Completed }, out);
        let name = if incomplete { "response.incomplete" } else { "response.completed" };
        self.lifecycle(name, self.status, None, out);
        self.phase = Phase::Ended;
    }

    /// Append the events of an error after the stream started (`response.failed`, then
    /// `error`); nothing follows them.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        self.start(None, out);
        if self.open {
            self.open = false;
            if let Some(last) = self.items.last_mut() {
                last.status = ItemStatus::Incomplete;
            }
        }
        let message = error.message();
        let code = error.code.as_deref();
        let failure_code = code.unwrap_or(if error.status_for(Family::Responses) == 429 {
            "rate_limit_exceeded"
        } else {
            "server_error"
        });
        self.lifecycle("response.failed", Status::Failed, Some(Failure { code: failure_code, message: &message }), out);
        self.error_event(error, out);
    }

    /// Append the `error` event ending a relayed stream of OpenAI's own events, whose last
    /// relayed event (`last`, framed) gives the sequence number to follow; nothing follows it.
    pub fn relayed_error(&mut self, error: &GatewayError, last: &[u8], out: &mut BytesMut) {
        if self.phase == Phase::Ended {
            return;
        }
        self.seq = relayed_sequence(last).map_or(0, |n| n + 1);
        self.error_event(error, out);
    }

    /// The `error` event; the stream ends.
    fn error_event(&mut self, error: &GatewayError, out: &mut BytesMut) {
        let message = error.message();
        let code = error.code.as_deref();
        let param = error.param.as_deref();
        let event = ErrorEvent {
            kind: "error",
            code,
            message: &message,
            param,
            error: ErrorBody { kind: error.kind.openai_type(), code, message: &message, param },
            sequence_number: bump(&mut self.seq),
        };
        write(out, "error", &event);
        self.phase = Phase::Ended;
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, model: Option<&str>, out: &mut BytesMut) {
        if self.phase != Phase::Fresh {
            return;
        }
        self.phase = Phase::Started;
        self.model = self.meta.model.as_deref().or(model).unwrap_or_default().to_owned();
        self.lifecycle("response.created", Status::InProgress, None, out);
        self.lifecycle("response.in_progress", Status::InProgress, None, out);
    }

    fn lifecycle(&mut self, name: &'static str, status: Status, error: Option<Failure<'_>>, out: &mut BytesMut) {
        let response = ResponseObject {
            id: &self.id,
            created_at: self.meta.created,
            status,
            error,
            model: &self.model,
            output: &self.items,
            usage: self.usage.as_ref(),
            echo: &self.meta.echo,
        };
        write(out, name, &Lifecycle { kind: name, response, sequence_number: bump(&mut self.seq) });
    }

    /// A fragment of the message's text (`message`) or of the reasoning.
    fn text(&mut self, message: bool, delta: &str, out: &mut BytesMut) {
        let continues = self.open
            && matches!(
                (self.items.last().map(|i| &i.kind), message),
                (Some(Kind::Message), true) | (Some(Kind::Reasoning), false)
            );
        if !continues {
            self.close(ItemStatus::Completed, out);
            self.open_item(if message { Kind::Message } else { Kind::Reasoning }, out);
        }
        let Some(item) = self.items.last_mut() else { return };
        item.text.to_mut().push_str(delta);
        let tail: &[u8] = if message { b",\"logprobs\":[],\"sequence_number\":" } else { b",\"sequence_number\":" };
        self.write_delta(delta, tail, out);
    }

    /// A fragment event of the open item: its head, `delta`, then `tail` and the sequence
    /// number.
    fn write_delta(&mut self, delta: &str, tail: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(&self.delta_head);
        if serde_json::to_writer((&mut *out).writer(), delta).is_err() {
            log::error!("failed to serialise a Responses stream fragment");
        }
        out.extend_from_slice(tail);
        out.extend_from_slice(itoa::Buffer::new().format(bump(&mut self.seq)).as_bytes());
        out.extend_from_slice(b"}\n\n");
    }

    /// A fragment of a tool call.
    fn call(&mut self, delta: &ToolCallDelta, out: &mut BytesMut) {
        let arguments = delta.function.arguments.as_deref().unwrap_or_default();
        let name = delta.function.name.as_deref().filter(|n| !n.is_empty());
        let output_index = match self.calls.iter().find(|(i, _)| *i == delta.index) {
            Some(&(_, at)) if self.open && at + 1 == self.items.len() => at,
            Some(_) if arguments.is_empty() => return,
            Some(_) => {
                let error = GatewayError::bad_gateway(format!(
                    "the provider sent arguments for tool call {} after a later output item had started; a \
                     Responses stream cannot reopen an item",
                    delta.index
                ));
                self.error(&error, out);
                return;
            }
            None => {
                self.close(ItemStatus::Completed, out);
                let call_id = match &delta.id {
                    Some(id) => call_id::join(id, delta.thought_signature.as_deref()).into_owned(),
                    None => format!("call_{}_{}", self.meta.request_id, delta.index),
                };
                let kind =
                    Kind::Call { call_id: Cow::Owned(call_id), name: Cow::Owned(name.unwrap_or_default().to_owned()) };
                self.open_item(kind, out);
                self.calls.push((delta.index, self.items.len() - 1));
                self.items.len() - 1
            }
        };
        let Some(item) = self.items.get_mut(output_index) else { return };
        // A later fragment may name the function when the first did not.
        if let (Kind::Call { name: current, .. }, Some(name)) = (&mut item.kind, name)
            && current.is_empty()
        {
            *current = Cow::Owned(name.to_owned());
        }
        if arguments.is_empty() {
            return;
        }
        item.text.to_mut().push_str(arguments);
        self.write_delta(arguments, b",\"sequence_number\":", out);
    }

    /// Start a new item (the open one is closed already).
    fn open_item(&mut self, kind: Kind<'static>, out: &mut BytesMut) {
        let output_index = self.items.len();
        self.items.push(Item::new(&self.meta.request_id, output_index, kind, Cow::Owned(String::new())));
        self.open = true;
        let Some(item) = self.items.last() else { return };
        let event = ItemEvent {
            kind: "response.output_item.added",
            output_index,
            item: item.added(),
            sequence_number: bump(&mut self.seq),
        };
        write(out, event.kind, &event);
        let item_id = item.id.as_str();
        self.delta_head.clear();
        match item.kind {
            Kind::Message => delta_head(
                &mut self.delta_head,
                &TextDeltaHead { kind: "response.output_text.delta", item_id, output_index, content_index: 0 },
            ),
            Kind::Reasoning => delta_head(
                &mut self.delta_head,
                &SummaryDeltaHead {
                    kind: "response.reasoning_summary_text.delta",
                    item_id,
                    output_index,
                    summary_index: 0,
                },
            ),
            Kind::Call { .. } => delta_head(
                &mut self.delta_head,
                &ArgsDeltaHead { kind: "response.function_call_arguments.delta", item_id, output_index },
            ),
        }
        match item.kind {
            Kind::Message => {
                let event = ContentPart {
                    kind: "response.content_part.added",
                    item_id,
                    output_index,
                    content_index: 0,
                    part: OutputText::new(""),
                    sequence_number: bump(&mut self.seq),
                };
                write(out, event.kind, &event);
            }
            Kind::Reasoning => {
                let event = SummaryPart {
                    kind: "response.reasoning_summary_part.added",
                    item_id,
                    output_index,
                    summary_index: 0,
                    part: SummaryText::new(""),
                    sequence_number: bump(&mut self.seq),
                };
                write(out, event.kind, &event);
            }
            Kind::Call { .. } => {}
        }
    }

    /// End the open item, if any, with `status`.
    fn close(&mut self, status: ItemStatus, out: &mut BytesMut) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let output_index = self.items.len() - 1;
        let Some(item) = self.items.last_mut() else { return };
        item.status = status;
        let item = &*item;
        let (item_id, text) = (item.id.as_str(), &*item.text);
        let seq = &mut self.seq;
        match &item.kind {
            Kind::Message => {
                let done = TextDone {
                    kind: "response.output_text.done",
                    item_id,
                    output_index,
                    content_index: 0,
                    text,
                    logprobs: [],
                    sequence_number: bump(seq),
                };
                write(out, done.kind, &done);
                let part = ContentPart {
                    kind: "response.content_part.done",
                    item_id,
                    output_index,
                    content_index: 0,
                    part: OutputText::new(text),
                    sequence_number: bump(seq),
                };
                write(out, part.kind, &part);
            }
            Kind::Reasoning => {
                let done = SummaryDone {
                    kind: "response.reasoning_summary_text.done",
                    item_id,
                    output_index,
                    summary_index: 0,
                    text,
                    sequence_number: bump(seq),
                };
                write(out, done.kind, &done);
                let part = SummaryPart {
                    kind: "response.reasoning_summary_part.done",
                    item_id,
                    output_index,
                    summary_index: 0,
                    part: SummaryText::new(text),
                    sequence_number: bump(seq),
                };
                write(out, part.kind, &part);
            }
            Kind::Call { name, .. } => {
                let done = ArgsDone {
                    kind: "response.function_call_arguments.done",
                    item_id,
                    output_index,
                    name,
                    arguments: text,
                    sequence_number: bump(seq),
                };
                write(out, done.kind, &done);
            }
        }
        let done = ItemEvent {
            kind: "response.output_item.done",
            output_index,
            item: item.whole(),
            sequence_number: bump(seq),
        };
        write(out, done.kind, &done);
    }
}

/// The `sequence_number` of a framed event (`event: …\ndata: {…}\n\n`).
fn relayed_sequence(event: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Numbered {
        sequence_number: Option<u64>,
    }
    let text = std::str::from_utf8(event).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data:"))?;
    serde_json::from_str::<Numbered>(data.trim_start()).ok()?.sequence_number
}

/// The current number, and the next one after it.
fn bump(seq: &mut u64) -> u64 {
    let n = *seq;
    *seq += 1;
    n
}

/// One event, serialised straight into `out`.
fn write<T: Serialize>(out: &mut BytesMut, name: &str, event: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Our own event structs always serialise (no maps with non-string keys).
    if serde_json::to_writer((&mut *out).writer(), event).is_err() {
        log::error!("failed to serialise a Responses stream event");
    }
    out.extend_from_slice(b"\n\n");
}

/// `event: <type>\ndata: ` and `head` serialised without its closing brace, then `,"delta":`.
fn delta_head<T: Serialize + DeltaHead>(buf: &mut Vec<u8>, head: &T) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(head.name().as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *buf, head).is_err() {
        log::error!("failed to serialise a Responses stream event");
    }
    // The head is a JSON object: replace its `}`.
    if buf.last() == Some(&b'}') {
        buf.pop();
    }
    buf.extend_from_slice(b",\"delta\":");
}

/// The fixed fields of a fragment event.
trait DeltaHead {
    fn name(&self) -> &'static str;
}

#[derive(Serialize)]
struct Lifecycle<'r, 'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    response: ResponseObject<'r, 'a>,
    sequence_number: u64,
}

#[derive(Serialize)]
struct ItemEvent<'i, 'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    output_index: usize,
    item: ItemView<'i, 'a>,
    sequence_number: u64,
}

#[derive(Serialize)]
struct ContentPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    part: OutputText<'a>,
    sequence_number: u64,
}

/// `response.output_text.delta` up to its `delta`.
#[derive(Serialize)]
struct TextDeltaHead<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
}

impl DeltaHead for TextDeltaHead<'_> {
    fn name(&self) -> &'static str {
        self.kind
    }
}

#[derive(Serialize)]
struct TextDone<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    text: &'a str,
    logprobs: [(); 0],
    sequence_number: u64,
}

#[derive(Serialize)]
struct SummaryPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    part: SummaryText<'a>,
    sequence_number: u64,
}

/// `response.reasoning_summary_text.delta` up to its `delta`.
#[derive(Serialize)]
struct SummaryDeltaHead<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
}

impl DeltaHead for SummaryDeltaHead<'_> {
    fn name(&self) -> &'static str {
        self.kind
    }
}

#[derive(Serialize)]
struct SummaryDone<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    text: &'a str,
    sequence_number: u64,
}

/// `response.function_call_arguments.delta` up to its `delta`.
#[derive(Serialize)]
struct ArgsDeltaHead<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
}

impl DeltaHead for ArgsDeltaHead<'_> {
    fn name(&self) -> &'static str {
        self.kind
    }
}

#[derive(Serialize)]
struct ArgsDone<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
    sequence_number: u64,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: Option<&'a str>,
    message: &'a str,
    param: Option<&'a str>,
    error: ErrorBody<'a>,
    sequence_number: u64,
}

/// The error as OpenAI's servers nest it in the event (and as `{"error": {...}}` bodies
/// carry it).
#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    code: Option<&'a str>,
    message: &'a str,
    param: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::response::tests::{expected, meta, usage_json};
    use super::*;
    use crate::error::ErrorKind;
    use crate::schema::{
        Answer, ChatChoice, ChatChunk, ChatResponse, ChunkChoice, Delta, FunctionCall, FunctionCallDelta,
        ResponseMessage, ToolCall, object,
    };

    fn chunk(delta: Delta, finish: Option<&str>) -> Chunk {
        Chunk::Chat(ChatChunk {
            id: Some("chatcmpl-1".into()),
            object: object::CHAT_CHUNK,
            created: 1,
            model: Some("upstream-model".into()),
            choices: vec![ChunkChoice { index: 0, finish_reason: finish.map(str::to_owned), delta }],
            usage: None,
            provider: "anthropic",
        })
    }

    fn text(t: &str) -> Chunk {
        chunk(Delta { content: Some(t.into()), ..Delta::default() }, None)
    }

    fn thought(t: &str) -> Chunk {
        chunk(Delta { reasoning_content: Some(t.into()), ..Delta::default() }, None)
    }

    fn call(index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) -> Chunk {
        let delta = ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            kind: id.map(|_| "function"),
            function: FunctionCallDelta { name: name.map(str::to_owned), arguments: Some(arguments.into()) },
            thought_signature: None,
        };
        chunk(Delta { tool_calls: Some(vec![delta]), ..Delta::default() }, None)
    }

    fn finish(reason: &str) -> Chunk {
        chunk(Delta::default(), Some(reason))
    }

    fn usage(prompt: u64, completion: u64) -> Chunk {
        Chunk::Chat(ChatChunk {
            id: Some("chatcmpl-1".into()),
            object: object::CHAT_CHUNK,
            created: 1,
            model: Some("upstream-model".into()),
            choices: Vec::new(),
            usage: Some(Usage {
                prompt_tokens: Some(prompt),
                completion_tokens: Some(completion),
                total_tokens: Some(prompt + completion),
                ..Usage::default()
            }),
            provider: "anthropic",
        })
    }

    /// The events of `chunks` then `finish`, each chunk written into its own buffer.
    fn run(chunks: &[Chunk]) -> String {
        let mut s = ResponsesStream::new(meta(json!({})));
        let mut text = String::new();
        for c in chunks {
            let mut out = BytesMut::new();
            s.chunk(c, &mut out);
            text.push_str(std::str::from_utf8(&out).unwrap());
        }
        let mut out = BytesMut::new();
        s.finish(&mut out);
        text + std::str::from_utf8(&out).unwrap()
    }

    /// `event: <type>\ndata: <json>\n\n` events as their JSON, checking the framing, that
    /// `type` is the event's name and that sequence numbers count from 0.
    fn events(text: &str) -> Vec<Value> {
        let Some(body) = text.strip_suffix("\n\n") else { panic!("unterminated: {text}") };
        body.split("\n\n")
            .enumerate()
            .map(|(i, event)| {
                let (name, data) = event
                    .strip_prefix("event: ")
                    .and_then(|e| e.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("malformed event {event:?}"));
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["type"], name, "{event}");
                assert_eq!(v["sequence_number"], json!(i), "{event}");
                v
            })
            .collect()
    }

    fn lifecycle(kind: &str, seq: u64, response: Value) -> Value {
        json!({"type": kind, "response": response, "sequence_number": seq})
    }

    fn in_progress() -> Value {
        expected("in_progress", json!([]), Value::Null)
    }

    fn message(status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(t) => json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}]),
            None => json!([]),
        };
        json!({"type": "message", "id": "msg_req1_0", "status": status, "role": "assistant", "content": content})
    }

    fn function_call(index: u64, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
        json!({"type": "function_call", "id": format!("fc_req1_{index}"), "call_id": call_id, "name": name,
               "arguments": arguments, "status": status})
    }

    fn text_then_two_calls() -> Vec<Chunk> {
        vec![
            chunk(Delta { role: Some("assistant".into()), content: Some(String::new()), ..Delta::default() }, None),
            text("Hel"),
            text("lo"),
            call(0, Some("call_a"), Some("f"), ""),
            call(0, None, None, "{\"a\""),
            call(0, None, None, ":1}"),
            call(1, Some("call_b"), Some("g"), "{}"),
            finish("tool_calls"),
            usage(7, 5),
        ]
    }

    #[test]
    fn text_then_two_function_calls() {
        let got = events(&run(&text_then_two_calls()));
        let done = json!([
            message("completed", Some("Hello")),
            function_call(1, "call_a", "f", "{\"a\":1}", "completed"),
            function_call(2, "call_b", "g", "{}", "completed"),
        ]);
        let want = vec![
            lifecycle("response.created", 0, in_progress()),
            lifecycle("response.in_progress", 1, in_progress()),
            json!({"type": "response.output_item.added", "output_index": 0, "item": message("in_progress", None),
                   "sequence_number": 2}),
            json!({"type": "response.content_part.added", "item_id": "msg_req1_0", "output_index": 0,
                   "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                   "sequence_number": 3}),
            json!({"type": "response.output_text.delta", "item_id": "msg_req1_0", "output_index": 0,
                   "content_index": 0, "delta": "Hel", "logprobs": [], "sequence_number": 4}),
            json!({"type": "response.output_text.delta", "item_id": "msg_req1_0", "output_index": 0,
                   "content_index": 0, "delta": "lo", "logprobs": [], "sequence_number": 5}),
            json!({"type": "response.output_text.done", "item_id": "msg_req1_0", "output_index": 0,
                   "content_index": 0, "text": "Hello", "logprobs": [], "sequence_number": 6}),
            json!({"type": "response.content_part.done", "item_id": "msg_req1_0", "output_index": 0,
                   "content_index": 0,
                   "part": {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []},
                   "sequence_number": 7}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": message("completed", Some("Hello")),
                   "sequence_number": 8}),
            json!({"type": "response.output_item.added", "output_index": 1,
                   "item": function_call(1, "call_a", "f", "", "in_progress"), "sequence_number": 9}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_req1_1", "output_index": 1,
                   "delta": "{\"a\"", "sequence_number": 10}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_req1_1", "output_index": 1,
                   "delta": ":1}", "sequence_number": 11}),
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_req1_1", "output_index": 1,
                   "name": "f", "arguments": "{\"a\":1}", "sequence_number": 12}),
            json!({"type": "response.output_item.done", "output_index": 1,
                   "item": function_call(1, "call_a", "f", "{\"a\":1}", "completed"), "sequence_number": 13}),
            json!({"type": "response.output_item.added", "output_index": 2,
                   "item": function_call(2, "call_b", "g", "", "in_progress"), "sequence_number": 14}),
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_req1_2", "output_index": 2,
                   "delta": "{}", "sequence_number": 15}),
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_req1_2", "output_index": 2,
                   "name": "g", "arguments": "{}", "sequence_number": 16}),
            json!({"type": "response.output_item.done", "output_index": 2,
                   "item": function_call(2, "call_b", "g", "{}", "completed"), "sequence_number": 17}),
            lifecycle("response.completed", 18, expected("completed", done, usage_json(7, 5))),
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "event {i}");
        }
    }

    #[test]
    fn the_final_response_is_the_whole_answer() {
        let got = events(&run(&text_then_two_calls()));
        let calls = [("call_a", "f", "{\"a\":1}"), ("call_b", "g", "{}")];
        let answer = Answer::Chat(ChatResponse {
            id: None,
            object: object::CHAT,
            created: 1,
            model: None,
            choices: vec![ChatChoice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant".into(),
                    content: Some("Hello".into()),
                    tool_calls: Some(
                        calls
                            .iter()
                            .map(|(id, name, args)| ToolCall {
                                id: (*id).into(),
                                kind: "function",
                                function: FunctionCall { name: (*name).into(), arguments: (*args).into() },
                                thought_signature: None,
                            })
                            .collect(),
                    ),
                    refusal: None,
                    reasoning_content: None,
                    thinking_signature: None,
                },
                finish_reason: Some("tool_calls".into()),
            }],
            usage: Usage {
                prompt_tokens: Some(7),
                completion_tokens: Some(5),
                total_tokens: Some(12),
                ..Usage::default()
            },
            provider: "anthropic",
        });
        let whole: Value = serde_json::from_slice(&super::super::answer(&answer, &meta(json!({}))).unwrap()).unwrap();
        assert_eq!(got.last().map(|e| &e["response"]), Some(&whole));
    }

    #[test]
    fn reasoning_then_text() {
        let got = events(&run(&[thought("Let me "), thought("think."), text("Yes."), finish("stop")]));
        let kinds: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(got[2]["item"], json!({"type": "reasoning", "id": "rs_req1_0", "summary": []}));
        assert_eq!(
            got[3],
            json!({"type": "response.reasoning_summary_part.added", "item_id": "rs_req1_0", "output_index": 0,
                   "summary_index": 0, "part": {"type": "summary_text", "text": ""}, "sequence_number": 3})
        );
        assert_eq!(
            got[4],
            json!({"type": "response.reasoning_summary_text.delta", "item_id": "rs_req1_0", "output_index": 0,
                   "summary_index": 0, "delta": "Let me ", "sequence_number": 4})
        );
        assert_eq!(
            got[6],
            json!({"type": "response.reasoning_summary_text.done", "item_id": "rs_req1_0", "output_index": 0,
                   "summary_index": 0, "text": "Let me think.", "sequence_number": 6})
        );
        assert_eq!(got[7]["part"], json!({"type": "summary_text", "text": "Let me think."}));
        let reasoning = json!({"type": "reasoning", "id": "rs_req1_0",
                               "summary": [{"type": "summary_text", "text": "Let me think."}]});
        assert_eq!(got[8]["item"], reasoning);
        assert_eq!(got[9]["item"]["id"], "msg_req1_1");
        assert_eq!(got[15]["response"]["output"][0], reasoning);
        assert_eq!(got[15]["response"]["output"][1]["content"][0]["text"], "Yes.");
    }

    #[test]
    fn usage_only_at_the_end() {
        let got = events(&run(&[text("a"), finish("stop"), usage(3, 1)]));
        assert_eq!(got[0]["response"]["usage"], Value::Null);
        assert_eq!(got.last().map(|e| &e["response"]["usage"]), Some(&usage_json(3, 1)));
        // No usage chunk: no usage.
        let got = events(&run(&[text("a"), finish("stop")]));
        assert_eq!(got.last().map(|e| &e["response"]["usage"]), Some(&Value::Null));
    }

    #[test]
    fn length_ends_incomplete() {
        let got = events(&run(&[text("Once"), finish("length")]));
        let last = got.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(last["response"]["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(got[got.len() - 2]["item"], message("incomplete", Some("Once")));
        assert_eq!(last["response"]["output"], json!([message("incomplete", Some("Once"))]));
    }

    #[test]
    fn zero_chunks() {
        let got = events(&run(&[]));
        assert_eq!(
            got,
            vec![
                lifecycle("response.created", 0, in_progress()),
                lifecycle("response.in_progress", 1, in_progress()),
                lifecycle("response.completed", 2, expected("completed", json!([]), Value::Null)),
            ]
        );
        let mut s = ResponsesStream::new(meta(json!({})));
        let mut out = BytesMut::new();
        s.error(&GatewayError::bad_gateway("no data"), &mut out);
        let kinds: Vec<Value> =
            events(std::str::from_utf8(&out).unwrap()).into_iter().map(|e| e["type"].clone()).collect();
        assert_eq!(
            kinds,
            [json!("response.created"), json!("response.in_progress"), json!("response.failed"), json!("error")]
        );
    }

    #[test]
    fn an_error_mid_stream() {
        let mut s = ResponsesStream::new(meta(json!({})));
        let mut out = BytesMut::new();
        s.chunk(&text("Hi"), &mut out);
        let error = GatewayError::new(429, ErrorKind::Upstream, "Slow down").with_code("rate_limit_exceeded");
        s.error(&error, &mut out);
        // Nothing follows.
        let before = out.len();
        s.chunk(&text("more"), &mut out);
        s.finish(&mut out);
        s.error(&error, &mut out);
        assert_eq!(out.len(), before);
        let got = events(std::str::from_utf8(&out).unwrap());
        assert_eq!(got.len(), 7, "{got:#?}");
        let mut failed = expected("failed", json!([message("incomplete", Some("Hi"))]), Value::Null);
        failed["error"] = json!({"code": "rate_limit_exceeded", "message": "Slow down"});
        assert_eq!(got[5], lifecycle("response.failed", 5, failed));
        assert_eq!(
            got[6],
            json!({"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": null,
                   "error": {"type": "upstream_error", "code": "rate_limit_exceeded", "message": "Slow down",
                             "param": null},
                   "sequence_number": 6})
        );
        // Without a code of its own: null in the event, `server_error` in the response.
        let mut s = ResponsesStream::new(meta(json!({})));
        let mut out = BytesMut::new();
        s.error(&GatewayError::timeout("too slow"), &mut out);
        let got = events(std::str::from_utf8(&out).unwrap());
        assert_eq!(got[2]["response"]["error"], json!({"code": "server_error", "message": "too slow"}));
        assert_eq!(got[3]["code"], Value::Null);
        assert_eq!(got[3]["error"]["type"], "timeout_error");
    }

    #[test]
    fn arguments_for_a_finished_call_end_the_stream() {
        let got = events(&run(&[
            call(0, Some("a"), Some("f"), "{"),
            call(1, Some("b"), Some("g"), "{}"),
            call(0, None, None, "}"),
            text("ignored"),
        ]));
        let kinds: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(kinds[kinds.len() - 2..], ["response.failed", "error"]);
        let last = got.last().unwrap();
        assert!(last["message"].as_str().unwrap().contains("tool call 0"), "{last}");
        assert_eq!(got[got.len() - 2]["response"]["output"][1]["status"], "incomplete");
        // A repeated name or an empty fragment for a finished call is harmless.
        let got = events(&run(&[
            call(0, Some("a"), Some("f"), "{}"),
            call(1, Some("b"), Some("g"), "{}"),
            call(0, None, Some("f"), ""),
            finish("tool_calls"),
        ]));
        assert_eq!(got.last().unwrap()["type"], "response.completed");
    }

    #[test]
    fn a_call_without_an_id_or_a_name_at_first() {
        let got = events(&run(&[call(3, None, None, ""), call(3, None, Some("late"), "{}"), finish("tool_calls")]));
        let last = &got.last().unwrap()["response"]["output"][0];
        assert_eq!(last, &function_call(0, "call_req1_3", "late", "{}", "completed"));
    }

    /// Pieces of a stream: text, reasoning and argument fragments, finish and usage.
    #[derive(Debug, Clone)]
    enum Piece {
        Text(String),
        Thought(String),
        Args(String),
        Call,
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            "[a-z é\"\\\\]{1,6}".prop_map(Piece::Text),
            "[a-z ]{1,6}".prop_map(Piece::Thought),
            "[{}a-z:\"]{1,6}".prop_map(Piece::Args),
            Just(Piece::Call),
        ]
    }

    /// The chunks for `pieces`, each text split at `cuts`, then a finish and a usage chunk.
    fn chunks(pieces: &[Piece], cuts: &[usize]) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut calls = 0;
        let mut cut = cuts.iter().cycle();
        let mut split = |s: &str, make: &dyn Fn(&str) -> Chunk, out: &mut Vec<Chunk>| {
            let at = cut.next().copied().unwrap_or(0) % (s.chars().count() + 1);
            let at = s.char_indices().nth(at).map_or(s.len(), |(i, _)| i);
            for part in [&s[..at], &s[at..]] {
                if !part.is_empty() {
                    out.push(make(part));
                }
            }
        };
        for p in pieces {
            match p {
                Piece::Text(t) => split(t, &text, &mut out),
                Piece::Thought(t) => split(t, &thought, &mut out),
                Piece::Call => {
                    out.push(call(calls, Some(&format!("c{calls}")), Some("f"), ""));
                    calls += 1;
                }
                Piece::Args(a) if calls > 0 => split(a, &|s| call(calls - 1, None, None, s), &mut out),
                Piece::Args(_) => {}
            }
        }
        out.push(finish("stop"));
        out.push(usage(2, 3));
        out
    }

    /// The events without the fragment events, with renumbered sequence numbers, and the
    /// concatenated fragments per item.
    fn summary(events: Vec<Value>) -> (Vec<Value>, Vec<(Value, String)>) {
        let mut kept = Vec::new();
        let mut fragments: Vec<(Value, String)> = Vec::new();
        for mut e in events {
            if e["type"].as_str().is_some_and(|t| t.ends_with(".delta")) {
                let delta = e["delta"].as_str().unwrap_or_default();
                match fragments.last_mut() {
                    Some((id, text)) if *id == e["item_id"] => text.push_str(delta),
                    _ => fragments.push((e["item_id"].clone(), delta.to_owned())),
                }
                continue;
            }
            e["sequence_number"] = json!(kept.len());
            kept.push(e);
        }
        (kept, fragments)
    }

    proptest! {
        /// However the chunks are written (one buffer per chunk or one for bursts of them),
        /// the bytes are the same; however the text is split into chunks, the events are the
        /// same but for the fragment events, which carry the same text.
        #[test]
        fn any_grouping_gives_the_same_events(
            pieces in prop::collection::vec(piece(), 0..12),
            cuts in prop::collection::vec(0usize..8, 1..8),
            bursts in prop::collection::vec(1usize..5, 1..8),
        ) {
            let whole = chunks(&pieces, &[0]);
            let reference = run(&whole);
            // Bursts: several chunks into one buffer.
            let mut s = ResponsesStream::new(meta(json!({})));
            let mut text = String::new();
            let mut rest = &whole[..];
            for n in bursts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (burst, tail) = rest.split_at((*n).min(rest.len()));
                let mut out = BytesMut::new();
                for c in burst {
                    s.chunk(c, &mut out);
                }
                text.push_str(std::str::from_utf8(&out).unwrap());
                rest = tail;
            }
            let mut out = BytesMut::new();
            s.finish(&mut out);
            text.push_str(std::str::from_utf8(&out).unwrap());
            prop_assert_eq!(&text, &reference);
            // Splits: the same stream cut into other fragments.
            let split = run(&chunks(&pieces, &cuts));
            prop_assert_eq!(summary(events(&split)), summary(events(&reference)));
        }
    }
}
