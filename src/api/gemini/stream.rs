//! Unified stream chunks → Gemini's stream of `GenerateContentResponse`s
//! (docs/client-apis.md#gemini-generatecontent): server-sent events (`data: {json}`, what
//! `?alt=sse` asks for), or the elements of one JSON array (Google's default).
//!
//! Text and thoughts go out as they arrive, one event per chunk. A function call's `args` is an
//! object in Gemini's answers, so calls are gathered until the stream completes; the last event
//! carries them, each candidate's `finishReason`, and the `usageMetadata` (providers report usage
//! at the end). A relayed Gemini stream (a native endpoint's) arrives as the JSON of each event
//! and is framed the same way, so the client gets the framing it asked for either way.

use bytes::{BufMut, BytesMut};

use super::response::{Candidate, Content, GenerateContentResponse, Part, UsageMetadata, finish_reason};
use crate::api::encode::AnswerMeta;
use crate::error::GatewayError;
use crate::schema::{Chunk, Usage};

/// A function call being gathered.
#[derive(Debug)]
struct Call {
    /// Its unified tool-call index.
    index: u32,
    id: String,
    name: String,
    arguments: String,
    signature: Option<String>,
}

/// What one candidate has gathered.
#[derive(Debug)]
struct Candidacy {
    index: u32,
    calls: Vec<Call>,
    finish: Option<String>,
}

/// How the events are framed: server-sent events, or the elements of one JSON array.
#[derive(Debug)]
struct Framing {
    /// One JSON array (no `alt=sse`).
    array: bool,
    /// Some of the stream was written (with a JSON array: its `[`).
    started: bool,
}

impl Framing {
    /// Frame one event's JSON.
    fn frame(&mut self, json: &[u8], out: &mut BytesMut) {
        self.open(out);
        out.extend_from_slice(json);
        self.close(out);
    }

    /// Serialise one response straight into `out`, framed; on failure (never, for our own
    /// structs) `out` is left as it was.
    fn write(&mut self, response: &GenerateContentResponse<'_>, out: &mut BytesMut) -> Result<(), GatewayError> {
        let (mark, started) = (out.len(), self.started);
        self.open(out);
        if let Err(e) = serde_json::to_writer((&mut *out).writer(), response) {
            out.truncate(mark);
            self.started = started;
            return Err(GatewayError::internal(format!("cannot serialise the answer: {e}")));
        }
        self.close(out);
        Ok(())
    }

    /// What goes before an event: `data: `, or the array's `[` or separator.
    fn open(&mut self, out: &mut BytesMut) {
        if self.array {
            out.extend_from_slice(if self.started { b",\r\n" } else { b"[" });
        } else {
            out.extend_from_slice(b"data: ");
        }
        self.started = true;
    }

    /// What goes after an event: the blank line of an SSE event (nothing in an array).
    fn close(&self, out: &mut BytesMut) {
        if !self.array {
            out.extend_from_slice(b"\r\n\r\n");
        }
    }

    /// The end of the array (nothing for server-sent events).
    fn end(&mut self, out: &mut BytesMut) {
        if self.array {
            if !self.started {
                out.extend_from_slice(b"[");
            }
            out.extend_from_slice(b"]");
        }
    }
}

/// Writes one Gemini stream.
#[derive(Debug)]
pub struct GenerateContentStream {
    meta: AnswerMeta,
    thoughts: bool,
    framing: Framing,
    /// The stream is a Gemini stream relayed as it came.
    relayed: bool,
    response_id: Option<String>,
    upstream_model: Option<String>,
    candidates: Vec<Candidacy>,
    usage: Option<Usage>,
    /// Calls started so far (for the ids of calls that came without one).
    calls_started: usize,
}

impl GenerateContentStream {
    /// A stream for a request with `meta` (`meta.array_stream`: one JSON array, else SSE).
    pub fn new(meta: AnswerMeta) -> Self {
        GenerateContentStream {
            thoughts: super::response::include_thoughts(&meta),
            framing: Framing { array: meta.array_stream, started: false },
            meta,
            relayed: false,
            response_id: None,
            upstream_model: None,
            candidates: Vec::new(),
            usage: None,
            calls_started: 0,
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        if self.framing.array { "application/json; charset=utf-8" } else { "text/event-stream; charset=utf-8" }
    }

    /// Append the events for one chunk.
    pub fn chunk(&mut self, chunk: &Chunk, out: &mut BytesMut) {
        let c = match chunk {
            Chunk::Native(event) => {
                self.relayed = true;
                self.framing.frame(event, out);
                return;
            }
            Chunk::Chat(c) => c,
            Chunk::Completions(_) => return,
        };
        if self.response_id.is_none() {
            self.response_id = c.id.clone().filter(|id| !id.is_empty());
        }
        if self.upstream_model.is_none() {
            self.upstream_model.clone_from(&c.model);
        }
        if let Some(u) = &c.usage {
            self.usage = Some(u.clone());
        }
        for choice in &c.choices {
            self.gather(choice);
            let d = &choice.delta;
            let mut parts = Vec::with_capacity(2);
            if self.thoughts {
                if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                    parts.push(Part::thought(r, None));
                }
                if let Some(s) = d.thinking_signature.as_deref() {
                    parts.push(Part::thought("", Some(s)));
                }
            }
            if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
                parts.push(Part::text(t));
            }
            if parts.is_empty() {
                continue;
            }
            let response = GenerateContentResponse {
                candidates: vec![Candidate {
                    content: Content::model(parts),
                    finish_reason: None,
                    index: choice.index,
                }],
                usage_metadata: None,
                model_version: self.meta.model.as_deref().or(self.upstream_model.as_deref()),
                response_id: self.response_id.as_deref().unwrap_or(&self.meta.request_id),
            };
            // Our own structs always serialise (and a failure writes nothing).
            let _ = self.framing.write(&response, out);
        }
    }

    /// Note a choice's tool-call fragments and finish reason.
    fn gather(&mut self, choice: &crate::schema::ChunkChoice) {
        let at = match self.candidates.iter().position(|c| c.index == choice.index) {
            Some(i) => i,
            None => {
                self.candidates.push(Candidacy { index: choice.index, calls: Vec::new(), finish: None });
                self.candidates.len() - 1
            }
        };
        for d in choice.delta.tool_calls.iter().flatten() {
            let calls = &mut self.candidates[at].calls;
            let same = calls.iter().rposition(|c| c.index == d.index && d.id.as_ref().is_none_or(|id| *id == c.id));
            let call = match same {
                Some(i) => &mut calls[i],
                None => {
                    self.calls_started += 1;
                    let id =
                        d.id.clone().unwrap_or_else(|| format!("call_{}_{}", self.meta.request_id, self.calls_started));
                    let calls = &mut self.candidates[at].calls;
                    calls.push(Call {
                        index: d.index,
                        id,
                        name: String::new(),
                        arguments: String::new(),
                        signature: None,
                    });
                    let last = calls.len() - 1;
                    &mut calls[last]
                }
            };
            if let Some(name) = &d.function.name {
                call.name.push_str(name);
            }
            if let Some(a) = &d.function.arguments {
                call.arguments.push_str(a);
            }
            if d.thought_signature.is_some() {
                call.signature.clone_from(&d.thought_signature);
            }
        }
        if let Some(f) = &choice.finish_reason {
            self.candidates[at].finish = Some(f.clone());
        }
    }

    /// Append the end of a stream that completed: the event with the calls, finish reasons and
    /// usage (the last a chunk carried, else `recorded`, what the upstream's decoder read), or,
    /// for a relayed stream, only the array's end.
    pub fn finish(&mut self, recorded: Option<&Usage>, out: &mut BytesMut) {
        if self.usage.is_none() {
            self.usage = recorded.cloned();
        }
        if !self.relayed
            && let Err(e) = self.last_event(out)
        {
            return self.error(&e, out);
        }
        self.framing.end(out);
    }

    fn last_event(&mut self, out: &mut BytesMut) -> Result<(), GatewayError> {
        if self.candidates.is_empty() {
            self.candidates.push(Candidacy { index: 0, calls: Vec::new(), finish: None });
        }
        let mut candidates = Vec::with_capacity(self.candidates.len());
        for c in &self.candidates {
            let mut parts = Vec::with_capacity(c.calls.len());
            for call in &c.calls {
                parts.push(Part::call(&call.id, &call.name, &call.arguments, call.signature.as_deref())?);
            }
            candidates.push(Candidate {
                content: Content::model(parts),
                finish_reason: Some(finish_reason(c.finish.as_deref())),
                index: c.index,
            });
        }
        let response = GenerateContentResponse {
            candidates,
            usage_metadata: self.usage.as_ref().map(UsageMetadata::of),
            model_version: self.meta.model.as_deref().or(self.upstream_model.as_deref()),
            response_id: self.response_id.as_deref().unwrap_or(&self.meta.request_id),
        };
        self.framing.write(&response, out)?;
        Ok(())
    }

    /// Append the error event of a stream that failed after it started (Gemini's error object;
    /// with a JSON array, its last element); nothing follows it.
    pub fn error(&mut self, error: &GatewayError, out: &mut BytesMut) {
        let json = error.gemini_value().to_string();
        self.framing.frame(json.as_bytes(), out);
        self.framing.end(out);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::schema::{ChatChunk, ChunkChoice, Delta, ToolCallDelta};

    fn meta(array: bool, thoughts: bool) -> AnswerMeta {
        let mut echo = Map::new();
        if thoughts {
            echo.insert(super::super::INCLUDE_THOUGHTS.into(), json!(true));
        }
        AnswerMeta { model: Some("claude-x".into()), request_id: "r1".into(), created: 0, echo, array_stream: array }
    }

    fn chunk(delta: Delta, finish: Option<&str>) -> Chunk {
        Chunk::Chat(ChatChunk::new(
            Some("msg_1".into()),
            0,
            None,
            vec![ChunkChoice::new(0, delta, finish.map(str::to_owned))],
            None,
            "anthropic",
        ))
    }

    fn usage_chunk() -> Chunk {
        Chunk::Chat(ChatChunk::new(
            Some("msg_1".into()),
            0,
            None,
            Vec::new(),
            Some(Usage::new(Some(5), Some(7))),
            "anthropic",
        ))
    }

    fn events(text: &str) -> Vec<Value> {
        text.split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect()
    }

    fn run(s: &mut GenerateContentStream, chunks: &[Chunk]) -> String {
        let mut out = BytesMut::new();
        for c in chunks {
            s.chunk(c, &mut out);
        }
        s.finish(None, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn text_goes_out_at_once_and_calls_at_the_end() {
        let mut s = GenerateContentStream::new(meta(false, true));
        assert_eq!(s.content_type(), "text/event-stream; charset=utf-8");
        let text = run(
            &mut s,
            &[
                chunk(Delta::reasoning(Some("Hmm.".into())), None),
                chunk(Delta::thinking_signature("sig".into()), None),
                chunk(Delta::text(Some("Let me check.".into())), None),
                chunk(
                    Delta::tool_calls(vec![ToolCallDelta::start(
                        0,
                        Some("toolu_1".into()),
                        Some("get_weather".into()),
                    )]),
                    None,
                ),
                chunk(Delta::tool_calls(vec![ToolCallDelta::arguments(0, Some("{\"city\":".into()))]), None),
                chunk(
                    Delta::tool_calls(vec![ToolCallDelta::arguments(0, Some("\"Paris\"}".into()))]),
                    Some("tool_calls"),
                ),
                usage_chunk(),
            ],
        );
        let model = |parts: Value| json!({"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}], "modelVersion": "claude-x", "responseId": "msg_1"});
        assert_eq!(
            events(&text),
            vec![
                model(json!([{"text": "Hmm.", "thought": true}])),
                model(json!([{"text": "", "thought": true, "thoughtSignature": "sig"}])),
                model(json!([{"text": "Let me check."}])),
                json!({"candidates": [{"content": {"parts": [{"functionCall": {"id": "toolu_1", "name": "get_weather", "args": {"city": "Paris"}}}], "role": "model"},
                                       "finishReason": "STOP", "index": 0}],
                       "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
                       "modelVersion": "claude-x", "responseId": "msg_1"}),
            ]
        );
    }

    #[test]
    fn thoughts_only_when_asked_and_a_json_array_when_asked() {
        let mut s = GenerateContentStream::new(meta(true, false));
        assert_eq!(s.content_type(), "application/json; charset=utf-8");
        let text = run(
            &mut s,
            &[
                chunk(Delta::reasoning(Some("Hmm.".into())), None),
                chunk(Delta::text(Some("Hi".into())), Some("length")),
            ],
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2, "{text}");
        assert_eq!(v[0]["candidates"][0]["content"]["parts"], json!([{"text": "Hi"}]));
        assert_eq!(v[1]["candidates"][0]["finishReason"], json!("MAX_TOKENS"));
        assert!(v[1].get("usageMetadata").is_none(), "no usage was reported");
    }

    #[test]
    fn errors_end_the_stream_in_geminis_shape() {
        for array in [false, true] {
            let mut s = GenerateContentStream::new(meta(array, false));
            let mut out = BytesMut::new();
            s.chunk(&chunk(Delta::text(Some("Hi".into())), None), &mut out);
            s.error(&GatewayError::new(503, crate::error::ErrorKind::Upstream, "overloaded"), &mut out);
            let text = String::from_utf8(out.to_vec()).unwrap();
            let error = json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}});
            if array {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v[1], error);
            } else {
                assert_eq!(events(&text)[1], error);
            }
        }
        // Before anything was written, an array holds only the error.
        let mut s = GenerateContentStream::new(meta(true, false));
        let mut out = BytesMut::new();
        s.error(&GatewayError::bad_gateway("x"), &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["error"]["code"], json!(502));
        // Arguments that are not an object end the stream with an error at its end.
        let mut s = GenerateContentStream::new(meta(false, false));
        let text = run(
            &mut s,
            &[chunk(
                Delta::tool_calls(vec![ToolCallDelta::start(0, None, Some("f".into())).with_arguments("[1]".into())]),
                Some("tool_calls"),
            )],
        );
        assert_eq!(events(&text)[0]["error"]["code"], json!(502));
    }

    #[test]
    fn relayed_events_are_framed_as_asked() {
        let event =
            br#"{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP","index":0}]}"#;
        let mut sse = GenerateContentStream::new(meta(false, false));
        let text = run(&mut sse, &[Chunk::Native(bytes::Bytes::from_static(event))]);
        assert_eq!(text, format!("data: {}\r\n\r\n", std::str::from_utf8(event).unwrap()), "nothing added");
        let mut array = GenerateContentStream::new(meta(true, false));
        let native = Chunk::Native(bytes::Bytes::from_static(event));
        let text = run(&mut array, &[native.clone(), native]);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }

    #[test]
    fn usage_the_decoder_recorded_is_reported_when_no_chunk_carried_it() {
        let mut s = GenerateContentStream::new(meta(false, false));
        let mut out = BytesMut::new();
        s.chunk(&chunk(Delta::text(Some("Hi".into())), Some("stop")), &mut out);
        s.finish(Some(&Usage::new(Some(3), Some(2))), &mut out);
        let written = events(std::str::from_utf8(&out).unwrap());
        assert_eq!(
            written[1]["usageMetadata"],
            json!({"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5})
        );
        // A chunk's usage wins.
        let mut s = GenerateContentStream::new(meta(false, false));
        let text = {
            let mut out = BytesMut::new();
            s.chunk(&usage_chunk(), &mut out);
            s.finish(Some(&Usage::new(Some(1), Some(1))), &mut out);
            String::from_utf8(out.to_vec()).unwrap()
        };
        assert_eq!(events(&text)[0]["usageMetadata"]["totalTokenCount"], json!(12));
    }

    #[test]
    fn calls_without_ids_get_the_gateways_and_parallel_calls_keep_apart() {
        let mut s = GenerateContentStream::new(meta(false, false));
        let text = run(
            &mut s,
            &[
                chunk(
                    Delta::tool_calls(vec![
                        ToolCallDelta::start(0, None, Some("a".into())).with_arguments("{}".into()),
                    ]),
                    None,
                ),
                chunk(Delta::tool_calls(vec![ToolCallDelta::start(1, Some("c2".into()), Some("b".into()))]), None),
                chunk(
                    Delta::tool_calls(vec![ToolCallDelta::arguments(1, Some("{\"x\":1}".into()))]),
                    Some("tool_calls"),
                ),
            ],
        );
        assert_eq!(
            events(&text)[0]["candidates"][0]["content"]["parts"],
            json!([{"functionCall": {"id": "call_r1_1", "name": "a", "args": {}}},
                   {"functionCall": {"id": "c2", "name": "b", "args": {"x": 1}}}])
        );
    }
}
