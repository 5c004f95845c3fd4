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
//! send, which makes the official SDKs raise an exception from the stream. Nothing follows.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::response::{
    Failure, Item, ItemStatus, ItemView, Kind, OutputText, ResponseObject, Status, SummaryText, response_id,
};
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
        let output_index = self.items.len() - 1;
        let Some(item) = self.items.last_mut() else { return };
        item.text.to_mut().push_str(delta);
        let item_id = item.id.as_str();
        let sequence_number = bump(&mut self.seq);
        if message {
            let event = TextDelta {
                kind: "response.output_text.delta",
                item_id,
                output_index,
                content_index: 0,
                delta,
                logprobs: [],
                sequence_number,
            };
            write(out, event.kind, &event);
        } else {
            let event = SummaryDelta {
                kind: "response.reasoning_summary_text.delta",
                item_id,
                output_index,
                summary_index: 0,
                delta,
                sequence_number,
            };
            write(out, event.kind, &event);
        }
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
                    Some(id) => id.clone(),
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
        let event = ArgsDelta {
            kind: "response.function_call_arguments.delta",
            item_id: &item.id,
            output_index,
            delta: arguments,
            sequence_number: bump(&mut self.seq),
        };
        write(out, event.kind, &event);
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

#[derive(Serialize)]
struct TextDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    logprobs: [(); 0],
    sequence_number: u64,
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

#[derive(Serialize)]
struct SummaryDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    delta: &'a str,
    sequence_number: u64,
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

#[derive(Serialize)]
struct ArgsDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
    sequence_number: u64,
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
