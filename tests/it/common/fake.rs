//! Fake providers: [`MockUpstream`] handlers that read the request the gateway sent, in one
//! provider's wire format, and answer in that format, whole or streamed as the request asks
//! (SSE, or AWS event-stream frames for Bedrock), from a small script derived from the request
//! ([`script`]):
//!
//! * the last message is a tool result → a text answer quoting it;
//! * a `get_weather` tool is offered and the user asks about the weather → some text and one
//!   `get_weather({"city": …})` call per city named (Paris when none is);
//! * thinking is asked for (Anthropic's `thinking`, Gemini's `thinkingConfig.includeThoughts`,
//!   Bedrock's `additionalModelRequestFields.thinking`; the gateway asks Anthropic, Gemini and
//!   Claude on Bedrock, and refuses `thinking` for the others) → a thinking block (thought
//!   parts, `reasoningContent`, signed where the provider signs), then the text or the calls;
//! * else → a text echoing what the model was given: the last user text, the system prompt,
//!   the number of images and of messages ([`reply_text`]);
//! * structured output is asked for (OpenAI's `response_format` or Responses `text.format` of
//!   type `json_schema`, Anthropic's `output_config.format`, Gemini's `responseJsonSchema`) →
//!   the text as JSON, `{"said": <text>}`;
//! * a last user text containing `[429]` → the provider's own rate-limit error (status 429),
//!   `[529]` → Anthropic's `overloaded_error` (status 529; meant for the Anthropic fake, the
//!   others send their rate-limit body with that status), `[cut]` → a stream that breaks off
//!   after its first text fragment (the connection is reset: an upstream failing mid-stream).
//!
//! The OpenAI fake also speaks OpenAI's Responses API (`POST …/responses`, what the gateway
//! forwards a `/v1/responses` request to natively): input items, `instructions`, function
//! tools, `reasoning.effort` (→ a `reasoning` item with a summary), `previous_response_id`
//! (quoted in the text: `[previous: <id>]`) and a `web_search` tool (→ a `web_search_call`
//! item before the message), answered as a `response` object or as its event stream
//! (`response.created` … `response.completed`, with `sequence_number`s).
//!
//! Every answer reports [`USAGE`] in the provider's own fields, cache reads included where the
//! format has them. The stream builders are public so that fixtures can be made from them
//! (`tests/fixtures/client-apis/anthropic/`). The upstream records every request, so tests can
//! assert what was sent.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

use super::bedrock;
use super::upstream::{MockUpstream, Recorded, Reply};

/// A fake provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fake {
    /// OpenAI's chat completions (`POST …/chat/completions`) and Responses API
    /// (`POST …/responses`).
    OpenAi,
    /// Anthropic's Messages API (`POST …/messages`, `…/messages/count_tokens`).
    Anthropic,
    /// Gemini's `generateContent` and `streamGenerateContent?alt=sse`.
    Gemini,
    /// Bedrock's Converse and ConverseStream.
    Bedrock,
    /// Mistral's chat completions.
    Mistral,
}

impl Fake {
    /// Every fake.
    pub const ALL: [Fake; 5] = [Fake::OpenAi, Fake::Anthropic, Fake::Gemini, Fake::Bedrock, Fake::Mistral];

    /// The provider's name in the gateway YAML.
    pub fn provider(self) -> &'static str {
        match self {
            Fake::OpenAi => "openai",
            Fake::Anthropic => "anthropic",
            Fake::Gemini => "gemini",
            Fake::Bedrock => "bedrock",
            Fake::Mistral => "mistral",
        }
    }

    /// The upstream model name an endpoint of this fake is configured with.
    pub fn model(self) -> &'static str {
        match self {
            Fake::OpenAi => "gpt-4o-2024-08-06",
            Fake::Anthropic => "claude-sonnet-4-5-20250929",
            Fake::Gemini => "gemini-2.5-flash",
            Fake::Bedrock => "anthropic.claude-3-5-sonnet-20240620-v1:0",
            Fake::Mistral => "mistral-small-latest",
        }
    }

    /// An `llm/v1/chat` endpoint named `name` whose provider is this fake at `upstream`.
    pub fn endpoint(self, name: &str, upstream: &MockUpstream) -> Value {
        let url = upstream.url();
        let config = match self {
            Fake::OpenAi => json!({"openai_api_key": OPENAI_KEY, "openai_api_base": format!("{url}/v1")}),
            Fake::Anthropic => json!({"anthropic_api_key": ANTHROPIC_KEY, "anthropic_api_base": format!("{url}/v1")}),
            Fake::Gemini => json!({"gemini_api_key": GEMINI_KEY, "gemini_api_base": format!("{url}/v1beta/models")}),
            Fake::Bedrock => json!({"aws_config": {"aws_access_key_id": bedrock::AKID,
                                                   "aws_secret_access_key": bedrock::SECRET,
                                                   "aws_region": "us-east-1"},
                                    "bedrock_api_base": url}),
            Fake::Mistral => json!({"mistral_api_key": MISTRAL_KEY, "mistral_api_base": format!("{url}/v1")}),
        };
        json!({"name": name, "endpoint_type": "llm/v1/chat",
               "model": {"provider": self.provider(), "name": self.model(), "config": config}})
    }

    /// A mock upstream playing this fake.
    pub async fn start(self) -> MockUpstream {
        let upstream = MockUpstream::start().await;
        upstream.handle(move |r| self.reply(r));
        upstream
    }

    /// The answer to one request.
    pub fn reply(self, r: &Recorded) -> Reply {
        if self == Fake::Anthropic && r.target.ends_with("/count_tokens") {
            return Reply::Json(200, json!({"input_tokens": COUNT_TOKENS}));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
            return Reply::Json(400, json!({"error": {"message": "the fake expects a JSON body"}}));
        };
        let seen = self.seen(&r.target, &body);
        if let Some(status) = seen.error {
            return self.error(status);
        }
        let script = script(&seen);
        if seen.cut && seen.stream {
            return self.cut_stream(&script, &seen);
        }
        match (self, seen.stream) {
            (Fake::Bedrock, true) => {
                bedrock::event_stream_reply(bedrock_stream(&script).iter().map(bedrock::event_frame).collect())
            }
            (Fake::Gemini, true) => sse_reply(gemini_stream(&script, &seen)),
            (_, true) => sse_reply(self.sse_events(&script, &seen)),
            (_, false) => Reply::Json(200, self.whole(&script, &seen)),
        }
    }

    /// The stream of `script` broken off after the event carrying the text's first fragment:
    /// the connection is reset there, without the provider's end of stream.
    fn cut_stream(self, script: &Script, seen: &Seen) -> Reply {
        let first = script.text.as_deref().map(words).unwrap_or_default().into_iter().next().unwrap_or_default();
        let marker = Value::from(first).to_string();
        let (events, content_type): (Vec<Vec<u8>>, &str) = match self {
            Fake::Bedrock => (
                bedrock_stream(script)
                    .iter()
                    .map(|e| (e.to_string(), bedrock::event_frame(e)))
                    .scan(false, |past, (text, frame)| {
                        let keep = !*past;
                        *past = *past || text.contains(&marker);
                        keep.then_some(frame)
                    })
                    .collect(),
                "application/vnd.amazon.eventstream",
            ),
            _ => {
                let events = self.sse_events(script, seen);
                let end = events.iter().position(|e| e.contains(&marker)).map_or(events.len(), |i| i + 1);
                (events.into_iter().take(end).map(String::into_bytes).collect(), "text/event-stream")
            }
        };
        Reply::CutAfter { status: 200, content_type: content_type.into(), pieces: events }
    }

    /// What the script sees of a request in this fake's wire format.
    pub fn seen(self, target: &str, body: &Value) -> Seen {
        match self {
            Fake::OpenAi if target.split('?').next().unwrap_or_default().ends_with("/responses") => {
                seen_responses(body)
            }
            Fake::OpenAi | Fake::Mistral => seen_openai(body),
            Fake::Anthropic => seen_anthropic(body),
            Fake::Gemini => seen_gemini(target, body),
            Fake::Bedrock => seen_bedrock(target, body),
        }
    }

    /// The whole answer (JSON) for a script.
    pub fn whole(self, script: &Script, seen: &Seen) -> Value {
        match self {
            Fake::OpenAi if seen.responses => responses_whole(script, seen),
            Fake::OpenAi => openai_whole(script, seen),
            Fake::Anthropic => anthropic_whole(script, seen),
            Fake::Gemini => gemini_whole(script),
            Fake::Bedrock => bedrock_whole(script),
            Fake::Mistral => mistral_whole(script, seen),
        }
    }

    /// The streamed answer of an SSE provider: one string per event, as sent.
    pub fn sse_events(self, script: &Script, seen: &Seen) -> Vec<String> {
        match self {
            Fake::OpenAi if seen.responses => responses_stream(script, seen),
            Fake::OpenAi => openai_stream(script, seen),
            Fake::Anthropic => anthropic_stream(script, seen),
            Fake::Gemini => gemini_stream(script, seen),
            Fake::Mistral => mistral_stream(script, seen),
            Fake::Bedrock => panic!("Bedrock streams AWS event-stream frames: bedrock_stream"),
        }
    }

    /// The provider's own error answer for `status` (429, or 529 for Anthropic).
    pub fn error(self, status: u16) -> Reply {
        let json = |body: Value| Reply::Json(status, body);
        match (self, status) {
            (Fake::Anthropic, 529) => json(json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_011fake"})),
            (Fake::Anthropic, _) => json(json!({"type": "error",
                "error": {"type": "rate_limit_error",
                          "message": "This request would exceed the rate limit for your organization of 50 requests per minute."},
                "request_id": "req_011fake"})),
            (Fake::OpenAi, _) => Reply::Raw {
                status,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-ratelimit-limit-requests".into(), "3".into()),
                    ("x-ratelimit-remaining-requests".into(), "0".into()),
                    ("x-ratelimit-reset-requests".into(), "20s".into()),
                ],
                pieces: vec![(
                    json!({"error": {"message": "Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                                     "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
                    .to_string()
                    .into_bytes(),
                    Duration::ZERO,
                )],
                chunked: false,
            },
            (Fake::Gemini, _) => json(json!({"error": {"code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED"}})),
            (Fake::Bedrock, _) => Reply::Raw {
                status,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-amzn-errortype".into(), "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/".into()),
                ],
                pieces: vec![(
                    json!({"message": "Too many requests, please wait before trying again."}).to_string().into_bytes(),
                    Duration::ZERO,
                )],
                chunked: false,
            },
            (Fake::Mistral, _) => json(json!({"object": "error", "message": "Requests rate limit exceeded",
                                              "type": "rate_limited", "param": null, "code": "1300"})),
        }
    }
}

/// The fakes' provider keys (what the gateway must send upstream).
pub const OPENAI_KEY: &str = "sk-fake-openai-0123456789";
pub const ANTHROPIC_KEY: &str = "sk-ant-fake-0123456789";
pub const GEMINI_KEY: &str = "fake-gemini-key-0123456789";
pub const MISTRAL_KEY: &str = "fake-mistral-key-0123456789";

/// What Anthropic's fake answers to `count_tokens`.
pub const COUNT_TOKENS: u64 = 1234;

/// Token counts every answer reports, in Anthropic's terms: `input` excludes the cache reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub cache_read: u64,
    pub output: u64,
}

/// The usage of every answer.
pub const USAGE: Usage = Usage { input: 21, cache_read: 4, output: 9 };

/// What a fake's script sees of a request, whatever its wire format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// The system prompt (text parts joined with `\n`).
    pub system: Option<String>,
    /// Conversation messages (turns), system prompt not counted.
    pub messages: usize,
    /// The text of the last user message that has text (parts joined with a space).
    pub last_user_text: String,
    /// The last message holds tool results: their texts, joined with `; `.
    pub tool_result: Option<String>,
    /// The names of the tools offered.
    pub tools: Vec<String>,
    /// Images in the conversation.
    pub images: usize,
    /// Thinking was asked for.
    pub thinking: bool,
    /// A streamed answer was asked for.
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`.
    pub include_usage: bool,
    /// The model the request names (in the body, or in the URL).
    pub model: String,
    /// An error the request asks for (`[429]`, `[529]` in the last user text).
    pub error: Option<u16>,
    /// A stream broken off mid-way is asked for (`[cut]` in the last user text).
    pub cut: bool,
    /// Structured output (a JSON schema) is asked for.
    pub json_schema: bool,
    /// The request came to OpenAI's Responses API (`…/responses`).
    pub responses: bool,
    /// A Responses request's `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// The types of the Responses API's built-in tools offered (`web_search`, …).
    pub builtin_tools: Vec<String>,
    /// A Responses request's fields that its `response` object repeats.
    pub echo: serde_json::Map<String, Value>,
}

/// A tool call the fake makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The city asked about (ids derive from it).
    pub city: String,
    pub name: String,
    pub input: Value,
}

/// What a fake answers, before it is put in the provider's format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Script {
    pub thinking: Option<String>,
    pub text: Option<String>,
    pub calls: Vec<Call>,
}

const CITIES: [&str; 6] = ["Paris", "Rome", "London", "Berlin", "Tokyo", "Madrid"];

/// The script for a request.
pub fn script(seen: &Seen) -> Script {
    let mut script = base_script(seen);
    if seen.json_schema
        && script.calls.is_empty()
        && let Some(text) = &script.text
    {
        script.text = Some(json!({ "said": text }).to_string());
    }
    script
}

fn base_script(seen: &Seen) -> Script {
    if let Some(result) = &seen.tool_result {
        return Script { text: Some(format!("The weather tool says: {result}")), ..Script::default() };
    }
    let thinking =
        seen.thinking.then(|| format!("The user wrote \"{}\". A short answer will do.", seen.last_user_text));
    if seen.tools.iter().any(|t| t == "get_weather") && seen.last_user_text.to_lowercase().contains("weather") {
        let words: Vec<String> = seen
            .last_user_text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| CITIES.contains(w))
            .map(str::to_owned)
            .collect();
        let cities = if words.is_empty() { vec!["Paris".to_owned()] } else { words };
        let calls = cities
            .into_iter()
            .map(|city| Call { name: "get_weather".into(), input: json!({"city": city}), city })
            .collect();
        return Script { thinking, text: Some("Let me check the weather.".into()), calls };
    }
    Script { thinking, text: Some(reply_text(seen)), calls: Vec::new() }
}

/// The text a fake answers with when it neither calls tools nor quotes a tool result:
/// `You said: <last user text> [system: <system>] [images: <n>] [previous: <id>] [messages: <n>]`
/// (the bracketed parts only when there is a system prompt, images, or a Responses request's
/// `previous_response_id`).
pub fn reply_text(seen: &Seen) -> String {
    let mut text = format!("You said: {}", seen.last_user_text);
    if let Some(system) = &seen.system {
        text.push_str(&format!(" [system: {system}]"));
    }
    if seen.images > 0 {
        text.push_str(&format!(" [images: {}]", seen.images));
    }
    if let Some(previous) = &seen.previous_response_id {
        text.push_str(&format!(" [previous: {previous}]"));
    }
    text.push_str(&format!(" [messages: {}]", seen.messages));
    text
}

/// The errors and failures the last user text asks for.
fn asked(seen: &mut Seen) {
    seen.error = error_asked(&seen.last_user_text);
    seen.cut = seen.last_user_text.contains("[cut]");
}

fn error_asked(text: &str) -> Option<u16> {
    if text.contains("[429]") {
        Some(429)
    } else if text.contains("[529]") {
        Some(529)
    } else {
        None
    }
}

fn texts_of(parts: &[Value], key: &str) -> Vec<String> {
    parts.iter().filter_map(|p| p.get(key).and_then(Value::as_str)).map(str::to_owned).collect()
}

// ---- reading requests ----

/// OpenAI's (and Mistral's) chat request.
fn seen_openai(body: &Value) -> Seen {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let text = |content: &Value| match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => texts_of(parts, "text").join(" "),
        _ => String::new(),
    };
    let mut seen = Seen {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        stream: body["stream"] == json!(true),
        include_usage: body["stream_options"]["include_usage"] == json!(true),
        json_schema: body["response_format"]["type"] == json!("json_schema"),
        tools: body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str())
            .map(str::to_owned)
            .collect(),
        ..Seen::default()
    };
    let system: Vec<String> = messages.iter().filter(|m| m["role"] == "system").map(|m| text(&m["content"])).collect();
    seen.system = (!system.is_empty()).then(|| system.join("\n"));
    let turns: Vec<&Value> = messages.iter().filter(|m| m["role"] != "system").collect();
    seen.messages = turns.len();
    for m in &turns {
        if let Value::Array(parts) = &m["content"] {
            seen.images += parts.iter().filter(|p| p["type"] == "image_url").count();
        }
    }
    if let Some(m) = turns.iter().rev().find(|m| m["role"] == "user") {
        seen.last_user_text = text(&m["content"]);
    }
    // Tool messages at the end (one per call of the last assistant message).
    let results: Vec<String> =
        turns.iter().rev().take_while(|m| m["role"] == "tool").map(|m| text(&m["content"])).collect();
    if !results.is_empty() {
        seen.tool_result = Some(results.into_iter().rev().collect::<Vec<_>>().join("; "));
    }
    asked(&mut seen);
    seen
}

/// Anthropic's Messages request.
fn seen_anthropic(body: &Value) -> Seen {
    let blocks_text = |content: &Value| match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            texts_of(&blocks.iter().filter(|b| b["type"] == "text").cloned().collect::<Vec<_>>(), "text").join(" ")
        }
        _ => String::new(),
    };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut seen = Seen {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        stream: body["stream"] == json!(true),
        thinking: matches!(body["thinking"]["type"].as_str(), Some("enabled" | "adaptive")),
        json_schema: body["output_config"]["format"]["type"] == json!("json_schema"),
        tools: body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .map(str::to_owned)
            .collect(),
        messages: messages.len(),
        ..Seen::default()
    };
    seen.system = match &body["system"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(blocks) => Some(texts_of(blocks, "text").join("\n")),
        _ => None,
    };
    for m in &messages {
        if let Value::Array(blocks) = &m["content"] {
            seen.images += blocks.iter().filter(|b| b["type"] == "image").count();
        }
    }
    if let Some(m) = messages.iter().rev().find(|m| m["role"] == "user" && !blocks_text(&m["content"]).is_empty()) {
        seen.last_user_text = blocks_text(&m["content"]);
    }
    // The last turn: Anthropic combines consecutive user messages into one turn (the unified
    // translation sends one tool result per user message, as MLflow does).
    let last_turn: Vec<&Value> = messages.iter().rev().take_while(|m| m["role"] == "user").collect();
    let results: Vec<String> = last_turn
        .iter()
        .rev()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| blocks_text(&b["content"]))
        .collect();
    if !results.is_empty() {
        seen.tool_result = Some(results.join("; "));
    }
    asked(&mut seen);
    seen
}

/// Gemini's `generateContent` request; the model and the method are in the URL
/// (`…/models/<model>:streamGenerateContent?alt=sse`).
fn seen_gemini(target: &str, body: &Value) -> Seen {
    let path = target.split('?').next().unwrap_or_default();
    let (model_path, method) = path.rsplit_once(':').unwrap_or((path, ""));
    let contents = body["contents"].as_array().cloned().unwrap_or_default();
    let parts_of = |c: &Value| c["parts"].as_array().cloned().unwrap_or_default();
    let mut seen = Seen {
        model: model_path.rsplit('/').next().unwrap_or_default().to_owned(),
        stream: method == "streamGenerateContent",
        tools: body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|t| t["functionDeclarations"].as_array().cloned().unwrap_or_default())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect(),
        messages: contents.len(),
        thinking: body["generationConfig"]["thinkingConfig"]["includeThoughts"] == json!(true),
        json_schema: body["generationConfig"].get("responseJsonSchema").is_some(),
        ..Seen::default()
    };
    let system = body.get("system_instruction").or_else(|| body.get("systemInstruction"));
    seen.system = system.map(|s| texts_of(&parts_of(s), "text").join("\n"));
    for c in &contents {
        seen.images += parts_of(c).iter().filter(|p| p.get("inlineData").is_some()).count();
    }
    if let Some(c) = contents.iter().rev().find(|c| c["role"] == "user" && !texts_of(&parts_of(c), "text").is_empty()) {
        seen.last_user_text = texts_of(&parts_of(c), "text").join(" ");
    }
    if let Some(last) = contents.last().filter(|c| c["role"] == "user") {
        let results: Vec<String> = parts_of(last)
            .iter()
            .filter_map(|p| p.get("functionResponse"))
            .map(|r| match &r["response"]["result"] {
                Value::String(s) => s.clone(),
                _ => r["response"].to_string(),
            })
            .collect();
        if !results.is_empty() {
            seen.tool_result = Some(results.join("; "));
        }
    }
    asked(&mut seen);
    seen
}

/// Bedrock's Converse request; the model id is the path's percent-encoded segment
/// (`/model/<id>/converse-stream`).
fn seen_bedrock(target: &str, body: &Value) -> Seen {
    let segments: Vec<&str> = target.split('?').next().unwrap_or_default().split('/').collect();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let content = |m: &Value| m["content"].as_array().cloned().unwrap_or_default();
    let mut seen = Seen {
        model: segments.get(2).map(|m| m.replace("%3A", ":")).unwrap_or_default(),
        stream: segments.last() == Some(&"converse-stream"),
        tools: body["toolConfig"]["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["toolSpec"]["name"].as_str().map(str::to_owned))
            .collect(),
        messages: messages.len(),
        thinking: body["additionalModelRequestFields"]["thinking"]["type"] == json!("enabled"),
        // Converse's structured output (`outputConfig.textFormat`, the schema as a JSON string).
        json_schema: body["outputConfig"]["textFormat"]["type"] == json!("json_schema"),
        ..Seen::default()
    };
    seen.system = body["system"].as_array().map(|s| texts_of(s, "text").join("\n"));
    for m in &messages {
        seen.images += content(m).iter().filter(|b| b.get("image").is_some()).count();
    }
    if let Some(m) = messages.iter().rev().find(|m| m["role"] == "user" && !texts_of(&content(m), "text").is_empty()) {
        seen.last_user_text = texts_of(&content(m), "text").join(" ");
    }
    if let Some(last) = messages.last().filter(|m| m["role"] == "user") {
        let results: Vec<String> = content(last)
            .iter()
            .filter_map(|b| b.get("toolResult"))
            .map(|r| texts_of(r["content"].as_array().map(Vec::as_slice).unwrap_or_default(), "text").join(" "))
            .collect();
        if !results.is_empty() {
            seen.tool_result = Some(results.join("; "));
        }
    }
    asked(&mut seen);
    seen
}

// ---- ids, pieces ----

/// The tool-call id a provider gives the call of `city` at `index` (Gemini gives none).
pub fn call_id(fake: Fake, call: &Call, index: usize) -> String {
    let city = call.city.to_lowercase();
    match fake {
        Fake::OpenAi => format!("call_{city}{index}Fk3rP9a0Qe"),
        Fake::Anthropic => format!("toolu_01{city}{index}XyZ"),
        Fake::Bedrock => format!("tooluse_{city}{index}_AbC"),
        // Mistral's ids are nine letters and digits.
        Fake::Mistral => format!("{:x<5}{index:04}", &city[..city.len().min(5)]),
        Fake::Gemini => String::new(),
    }
}

/// Text as a stream sends it: one piece per word, each with the space before it.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        out.push(if i == 0 { w.to_owned() } else { format!(" {w}") });
    }
    out
}

/// JSON text in fragments of up to 7 characters, as streamed tool arguments arrive.
pub fn fragments(json: &str) -> Vec<String> {
    let chars: Vec<char> = json.chars().collect();
    chars.chunks(7).map(|c| c.iter().collect()).collect()
}

fn sse_reply(events: Vec<String>) -> Reply {
    Reply::sse(events.into_iter().map(String::into_bytes).collect(), Duration::ZERO)
}

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

const CREATED: u64 = 1_700_000_000;

fn stop_reason_openai(script: &Script) -> &'static str {
    if script.calls.is_empty() { "stop" } else { "tool_calls" }
}

// ---- OpenAI ----

fn openai_usage() -> Value {
    json!({"prompt_tokens": USAGE.input + USAGE.cache_read, "completion_tokens": USAGE.output,
           "total_tokens": USAGE.input + USAGE.cache_read + USAGE.output,
           "prompt_tokens_details": {"cached_tokens": USAGE.cache_read, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                         "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

fn openai_whole(script: &Script, seen: &Seen) -> Value {
    let mut message = json!({"role": "assistant", "content": script.text, "refusal": null, "annotations": []});
    if !script.calls.is_empty() {
        message["tool_calls"] = script
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({"id": call_id(Fake::OpenAi, c, i), "type": "function",
                       "function": {"name": c.name, "arguments": c.input.to_string()}})
            })
            .collect();
    }
    json!({"id": "chatcmpl-Fake0penAi", "object": "chat.completion", "created": CREATED, "model": seen.model,
           "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": stop_reason_openai(script)}],
           "usage": openai_usage(), "service_tier": "default", "system_fingerprint": "fp_fake"})
}

fn openai_stream(script: &Script, seen: &Seen) -> Vec<String> {
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({"id": "chatcmpl-Fake0penAi", "object": "chat.completion.chunk", "created": CREATED,
                           "model": seen.model, "service_tier": "default", "system_fingerprint": "fp_fake",
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if seen.include_usage {
            c["usage"] = Value::Null;
        }
        data(&c)
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": "", "refusal": null}), None)];
    for piece in script.text.as_deref().map(words).unwrap_or_default() {
        out.push(chunk(json!({"content": piece}), None));
    }
    for (i, c) in script.calls.iter().enumerate() {
        out.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call_id(Fake::OpenAi, c, i), "type": "function",
                                   "function": {"name": c.name, "arguments": ""}}]}),
            None,
        ));
        for f in fragments(&c.input.to_string()) {
            out.push(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]}), None));
        }
    }
    out.push(chunk(json!({}), Some(stop_reason_openai(script))));
    if seen.include_usage {
        out.push(data(&json!({"id": "chatcmpl-Fake0penAi", "object": "chat.completion.chunk", "created": CREATED,
                               "model": seen.model, "service_tier": "default", "system_fingerprint": "fp_fake",
                               "choices": [], "usage": openai_usage()})));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

// ---- Mistral ----

fn mistral_usage() -> Value {
    // Mistral reports no cache reads.
    json!({"prompt_tokens": USAGE.input, "completion_tokens": USAGE.output, "total_tokens": USAGE.input + USAGE.output})
}

fn mistral_calls(script: &Script) -> Value {
    script
        .calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": call_id(Fake::Mistral, c, i), "type": "function", "index": i,
                   "function": {"name": c.name, "arguments": c.input.to_string()}})
        })
        .collect()
}

fn mistral_whole(script: &Script, seen: &Seen) -> Value {
    let calls = if script.calls.is_empty() { Value::Null } else { mistral_calls(script) };
    json!({"id": "5d4c2ae1fa9a4f8ab2fake", "object": "chat.completion", "created": CREATED, "model": seen.model,
           "choices": [{"index": 0, "finish_reason": stop_reason_openai(script),
                        "message": {"role": "assistant", "content": script.text.clone().unwrap_or_default(),
                                    "tool_calls": calls, "prefix": false}}],
           "usage": mistral_usage()})
}

fn mistral_stream(script: &Script, seen: &Seen) -> Vec<String> {
    let chunk = |delta: Value, finish: Option<&str>, usage: Option<Value>| {
        let mut c = json!({"id": "5d4c2ae1fa9a4f8ab2fake", "object": "chat.completion.chunk", "created": CREATED,
                           "model": seen.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if let Some(u) = usage {
            c["usage"] = u;
        }
        data(&c)
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), None, None)];
    for piece in script.text.as_deref().map(words).unwrap_or_default() {
        out.push(chunk(json!({"content": piece}), None, None));
    }
    // Mistral sends the calls whole, all in one chunk.
    if !script.calls.is_empty() {
        out.push(chunk(json!({"tool_calls": mistral_calls(script)}), None, None));
    }
    out.push(chunk(json!({"content": ""}), Some(stop_reason_openai(script)), Some(mistral_usage())));
    out.push("data: [DONE]\n\n".into());
    out
}

// ---- Anthropic ----

pub const SIGNATURE: &str = "EqQBCkYIBRgCKkBfakeSignatureOfTheThinkingBlock==";

fn anthropic_usage(output: u64) -> Value {
    json!({"input_tokens": USAGE.input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": USAGE.cache_read,
           "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
           "output_tokens": output, "service_tier": "standard"})
}

fn anthropic_stop(script: &Script) -> &'static str {
    if script.calls.is_empty() { "end_turn" } else { "tool_use" }
}

fn anthropic_whole(script: &Script, seen: &Seen) -> Value {
    let mut content = Vec::new();
    if let Some(t) = &script.thinking {
        content.push(json!({"type": "thinking", "thinking": t, "signature": SIGNATURE}));
    }
    if let Some(t) = &script.text {
        content.push(json!({"type": "text", "text": t}));
    }
    for (i, c) in script.calls.iter().enumerate() {
        content
            .push(json!({"type": "tool_use", "id": call_id(Fake::Anthropic, c, i), "name": c.name, "input": c.input}));
    }
    json!({"id": "msg_01FakeAnthropicMessage", "type": "message", "role": "assistant", "model": seen.model,
           "content": content, "stop_reason": anthropic_stop(script), "stop_sequence": null,
           "usage": anthropic_usage(USAGE.output)})
}

fn anthropic_stream(script: &Script, seen: &Seen) -> Vec<String> {
    let ev = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or_default());
    let mut out = vec![ev(json!({"type": "message_start", "message": {
        "id": "msg_01FakeAnthropicMessage", "type": "message", "role": "assistant", "model": seen.model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)}}))];
    let mut index = 0;
    let mut start = |out: &mut Vec<String>, block: Value| {
        out.push(ev(json!({"type": "content_block_start", "index": index, "content_block": block})));
        if index == 0 {
            out.push(ev(json!({"type": "ping"})));
        }
        index += 1;
        index - 1
    };
    let delta = |i: usize, d: Value| ev(json!({"type": "content_block_delta", "index": i, "delta": d}));
    let stop = |i: usize| ev(json!({"type": "content_block_stop", "index": i}));
    if let Some(t) = &script.thinking {
        let i = start(&mut out, json!({"type": "thinking", "thinking": ""}));
        for w in words(t) {
            out.push(delta(i, json!({"type": "thinking_delta", "thinking": w})));
        }
        out.push(delta(i, json!({"type": "signature_delta", "signature": SIGNATURE})));
        out.push(stop(i));
    }
    if let Some(t) = &script.text {
        let i = start(&mut out, json!({"type": "text", "text": ""}));
        for w in words(t) {
            out.push(delta(i, json!({"type": "text_delta", "text": w})));
        }
        out.push(stop(i));
    }
    for (n, c) in script.calls.iter().enumerate() {
        let i = start(
            &mut out,
            json!({"type": "tool_use", "id": call_id(Fake::Anthropic, c, n), "name": c.name, "input": {}}),
        );
        out.push(delta(i, json!({"type": "input_json_delta", "partial_json": ""})));
        for f in fragments(&c.input.to_string()) {
            out.push(delta(i, json!({"type": "input_json_delta", "partial_json": f})));
        }
        out.push(stop(i));
    }
    out.push(ev(json!({"type": "message_delta",
                       "delta": {"stop_reason": anthropic_stop(script), "stop_sequence": null},
                       "usage": {"output_tokens": USAGE.output}})));
    out.push(ev(json!({"type": "message_stop"})));
    out
}

// ---- Gemini ----

fn gemini_usage(candidates: u64) -> Value {
    let prompt = USAGE.input + USAGE.cache_read;
    json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates, "totalTokenCount": prompt + candidates,
           "cachedContentTokenCount": USAGE.cache_read,
           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
           "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": USAGE.cache_read}]})
}

/// The thought signature Gemini (2.5 and later, thinking by default) puts on the first
/// function call of a turn; Gemini 3 wants it back with that call in the history.
/// (Valid base64, as Google's are: the google-genai SDK decodes it.)
pub const GEMINI_SIGNATURE: &str = "CiQBfakeGeminiThoughtSignature0123456789";

fn gemini_calls(script: &Script) -> Vec<Value> {
    let mut parts: Vec<Value> =
        script.calls.iter().map(|c| json!({"functionCall": {"name": c.name, "args": c.input}})).collect();
    if let Some(first) = parts.first_mut() {
        first["thoughtSignature"] = json!(GEMINI_SIGNATURE);
    }
    parts
}

fn gemini_whole(script: &Script) -> Value {
    let mut parts = Vec::new();
    if let Some(t) = &script.thinking {
        parts.push(json!({"text": t, "thought": true}));
    }
    if let Some(t) = &script.text {
        parts.push(json!({"text": t}));
    }
    parts.extend(gemini_calls(script));
    json!({"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}],
           "usageMetadata": gemini_usage(USAGE.output), "modelVersion": Fake::Gemini.model(),
           "responseId": "fakeGeminiResponse01"})
}

/// Gemini's SSE events end with `\r\n\r\n`.
pub fn gemini_stream(script: &Script, _seen: &Seen) -> Vec<String> {
    let event = |parts: Vec<Value>, finish: bool, candidates: u64| {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if finish {
            candidate["finishReason"] = json!("STOP");
        }
        let v = json!({"candidates": [candidate], "usageMetadata": gemini_usage(candidates),
                       "modelVersion": Fake::Gemini.model(), "responseId": "fakeGeminiResponse01"});
        format!("data: {v}\r\n\r\n")
    };
    let mut out = Vec::new();
    let mut pieces: Vec<Vec<Value>> = Vec::new();
    if let Some(t) = &script.thinking {
        pieces.extend(words(t).into_iter().map(|w| vec![json!({"text": w, "thought": true})]));
    }
    pieces.extend(script.text.as_deref().map(words).unwrap_or_default().into_iter().map(|w| vec![json!({"text": w})]));
    // Parallel calls arrive together, in the last event.
    let calls = gemini_calls(script);
    if !calls.is_empty() {
        pieces.push(calls);
    }
    let n = pieces.len();
    for (i, parts) in pieces.into_iter().enumerate() {
        let done = i + 1 == n;
        out.push(event(parts, done, if done { USAGE.output } else { i as u64 + 1 }));
    }
    out
}

// ---- Bedrock ----

fn bedrock_usage() -> Value {
    json!({"inputTokens": USAGE.input, "outputTokens": USAGE.output,
           "totalTokens": USAGE.input + USAGE.cache_read + USAGE.output,
           "cacheReadInputTokens": USAGE.cache_read, "cacheWriteInputTokens": 0})
}

fn bedrock_stop(script: &Script) -> &'static str {
    if script.calls.is_empty() { "end_turn" } else { "tool_use" }
}

fn bedrock_whole(script: &Script) -> Value {
    let mut content = Vec::new();
    if let Some(t) = &script.thinking {
        content.push(json!({"reasoningContent": {"reasoningText": {"text": t, "signature": SIGNATURE}}}));
    }
    if let Some(t) = &script.text {
        content.push(json!({"text": t}));
    }
    for (i, c) in script.calls.iter().enumerate() {
        content.push(json!({"toolUse": {"toolUseId": call_id(Fake::Bedrock, c, i), "name": c.name, "input": c.input}}));
    }
    json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": bedrock_stop(script),
           "usage": bedrock_usage(), "metrics": {"latencyMs": 321}})
}

/// ConverseStream's events, as boto3 shows them (`{"<event type>": payload}`): text blocks
/// have no `contentBlockStart`; payloads carry AWS's `p` padding.
pub fn bedrock_stream(script: &Script) -> Vec<Value> {
    let mut out = vec![json!({"messageStart": {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "role": "assistant"}})];
    let mut index = 0;
    if let Some(t) = &script.thinking {
        for w in words(t) {
            out.push(json!({"contentBlockDelta": {"contentBlockIndex": index, "p": "abcd",
                                                   "delta": {"reasoningContent": {"text": w}}}}));
        }
        out.push(json!({"contentBlockDelta": {"contentBlockIndex": index, "p": "abcd",
                                               "delta": {"reasoningContent": {"signature": SIGNATURE}}}}));
        out.push(json!({"contentBlockStop": {"contentBlockIndex": index, "p": "abcdefgh"}}));
        index += 1;
    }
    if let Some(t) = &script.text {
        for w in words(t) {
            out.push(json!({"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": w}, "p": "abcdef"}}));
        }
        out.push(json!({"contentBlockStop": {"contentBlockIndex": index, "p": "abcdefgh"}}));
        index += 1;
    }
    for (i, c) in script.calls.iter().enumerate() {
        out.push(json!({"contentBlockStart": {"contentBlockIndex": index, "p": "abc",
                         "start": {"toolUse": {"toolUseId": call_id(Fake::Bedrock, c, i), "name": c.name}}}}));
        for f in fragments(&c.input.to_string()) {
            out.push(json!({"contentBlockDelta": {"contentBlockIndex": index, "p": "ab",
                                                   "delta": {"toolUse": {"input": f}}}}));
        }
        out.push(json!({"contentBlockStop": {"contentBlockIndex": index, "p": "abcdefgh"}}));
        index += 1;
    }
    out.push(json!({"messageStop": {"p": "abcdefghijklmnop", "stopReason": bedrock_stop(script)}}));
    out.push(json!({"metadata": {"metrics": {"latencyMs": 321}, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJK",
                                 "usage": bedrock_usage()}}));
    out
}

// ---- OpenAI's Responses API ----

/// The text of a Responses message's `content`: a string, or its text parts joined with a space.
fn responses_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| matches!(p["type"].as_str(), Some("input_text" | "output_text")))
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// A Responses request (`POST …/responses`). Messages are counted as a chat translation of the
/// input would count them: each user and assistant message, function calls joining the
/// assistant message before them, each function output; `instructions` and system or developer
/// messages make the system prompt; reasoning and built-in tool items count nothing.
fn seen_responses(body: &Value) -> Seen {
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let effort = body["reasoning"]["effort"].as_str();
    let mut seen = Seen {
        model: body["model"].as_str().unwrap_or_default().to_owned(),
        stream: body["stream"] == json!(true),
        responses: true,
        thinking: effort.is_some_and(|e| e != "none" && e != "minimal"),
        json_schema: body["text"]["format"]["type"] == json!("json_schema"),
        previous_response_id: body["previous_response_id"].as_str().map(str::to_owned),
        echo: RESPONSES_ECHOED
            .iter()
            .filter_map(|k| body.get(*k).filter(|v| !v.is_null()).map(|v| ((*k).to_owned(), v.clone())))
            .collect(),
        tools: tools
            .iter()
            .filter(|t| t["type"] == "function")
            .filter_map(|t| t["name"].as_str())
            .map(str::to_owned)
            .collect(),
        builtin_tools: tools
            .iter()
            .filter(|t| t["type"] != "function")
            .filter_map(|t| t["type"].as_str())
            .map(str::to_owned)
            .collect(),
        ..Seen::default()
    };
    let mut system: Vec<String> = body["instructions"].as_str().map(str::to_owned).into_iter().collect();
    let mut results: Vec<String> = Vec::new();
    match &body["input"] {
        Value::String(s) => {
            seen.messages = 1;
            seen.last_user_text = s.clone();
        }
        Value::Array(items) => {
            let mut in_assistant = false;
            for item in items {
                let kind = item["type"].as_str().unwrap_or(if item.get("role").is_some() { "message" } else { "" });
                if kind != "function_call_output" {
                    results.clear();
                }
                match (kind, item["role"].as_str()) {
                    ("message", Some("system" | "developer")) => system.push(responses_text(&item["content"])),
                    ("message", role) => {
                        seen.messages += 1;
                        in_assistant = role == Some("assistant");
                        if role == Some("user") {
                            if let Value::Array(parts) = &item["content"] {
                                seen.images += parts.iter().filter(|p| p["type"] == "input_image").count();
                            }
                            let text = responses_text(&item["content"]);
                            if !text.is_empty() {
                                seen.last_user_text = text;
                            }
                        }
                    }
                    ("function_call", _) if !in_assistant => {
                        seen.messages += 1;
                        in_assistant = true;
                    }
                    ("function_call_output", _) => {
                        seen.messages += 1;
                        in_assistant = false;
                        results.push(responses_text(&item["output"]));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    seen.system = (!system.is_empty()).then(|| system.join("\n"));
    if !results.is_empty() {
        seen.tool_result = Some(results.join("; "));
    }
    asked(&mut seen);
    seen
}

const RESPONSE_ID: &str = "resp_0fake0penAiResponse";

/// The request fields a `response` object repeats.
const RESPONSES_ECHOED: [&str; 14] = [
    "instructions",
    "max_output_tokens",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
];

fn responses_usage() -> Value {
    json!({"input_tokens": USAGE.input + USAGE.cache_read,
           "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": USAGE.cache_read},
           "output_tokens": USAGE.output, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": USAGE.input + USAGE.cache_read + USAGE.output})
}

/// One output item of the fake's answer, whole.
#[derive(Debug, Clone)]
enum OutItem {
    Reasoning(String),
    WebSearch(String),
    Message(String),
    Call(usize, Call),
}

impl OutItem {
    fn id(&self) -> String {
        match self {
            OutItem::Reasoning(_) => "rs_0fake0penAi".into(),
            OutItem::WebSearch(_) => "ws_0fake0penAi".into(),
            OutItem::Message(_) => "msg_0fake0penAi".into(),
            OutItem::Call(i, _) => format!("fc_0fake0penAi{i}"),
        }
    }

    /// The item as `response.output_item.added` shows it (`done` false) or whole.
    fn json(&self, done: bool) -> Value {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            OutItem::Reasoning(t) => {
                let summary = if done { json!([{"type": "summary_text", "text": t}]) } else { json!([]) };
                json!({"id": self.id(), "type": "reasoning", "summary": summary})
            }
            OutItem::WebSearch(q) => {
                let mut item = json!({"id": self.id(), "type": "web_search_call", "status": status});
                if done {
                    item["action"] = json!({"type": "search", "query": q});
                }
                item
            }
            OutItem::Message(t) => {
                let content = if done {
                    json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": t}])
                } else {
                    json!([])
                };
                json!({"id": self.id(), "type": "message", "status": status, "content": content, "role": "assistant"})
            }
            OutItem::Call(i, c) => json!({"id": self.id(), "type": "function_call", "status": status,
                "arguments": if done { c.input.to_string() } else { String::new() },
                "call_id": call_id(Fake::OpenAi, c, *i), "name": c.name}),
        }
    }
}

fn responses_items(script: &Script, seen: &Seen) -> Vec<OutItem> {
    let mut items = Vec::new();
    if let Some(t) = &script.thinking {
        items.push(OutItem::Reasoning(t.clone()));
    }
    if seen.builtin_tools.iter().any(|t| t == "web_search") {
        items.push(OutItem::WebSearch(seen.last_user_text.clone()));
    }
    if let Some(t) = &script.text {
        items.push(OutItem::Message(t.clone()));
    }
    items.extend(script.calls.iter().cloned().enumerate().map(|(i, c)| OutItem::Call(i, c)));
    items
}

/// The `response` object: `in_progress` without output and usage, or `completed`; the
/// request's fields it repeats as sent, the others at OpenAI's defaults.
fn responses_object(seen: &Seen, items: &[OutItem], done: bool) -> Value {
    let mut object = json!({"id": RESPONSE_ID, "object": "response", "created_at": CREATED,
           "status": if done { "completed" } else { "in_progress" },
           "background": false, "error": null, "incomplete_details": null, "instructions": null,
           "max_output_tokens": null, "max_tool_calls": null, "model": seen.model,
           "output": if done { items.iter().map(|i| i.json(true)).collect() } else { Vec::new() },
           "parallel_tool_calls": true, "previous_response_id": seen.previous_response_id,
           "reasoning": {"effort": null, "summary": null}, "service_tier": "default", "store": true,
           "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
           "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
           "usage": if done { responses_usage() } else { Value::Null }, "user": null, "metadata": {}});
    for (k, v) in &seen.echo {
        object[k] = v.clone();
    }
    object
}

fn responses_whole(script: &Script, seen: &Seen) -> Value {
    responses_object(seen, &responses_items(script, seen), true)
}

/// The Responses event stream: `event: <type>` and the event's JSON, `sequence_number` from 0.
fn responses_stream(script: &Script, seen: &Seen) -> Vec<String> {
    let items = responses_items(script, seen);
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut ev = |mut v: Value| {
        v["sequence_number"] = json!(seq);
        seq += 1;
        out.push(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or_default()));
    };
    ev(json!({"type": "response.created", "response": responses_object(seen, &items, false)}));
    ev(json!({"type": "response.in_progress", "response": responses_object(seen, &items, false)}));
    for (index, item) in items.iter().enumerate() {
        let id = item.id();
        ev(json!({"type": "response.output_item.added", "item": item.json(false), "output_index": index}));
        match item {
            OutItem::Reasoning(t) => {
                let part = |text: &str| json!({"type": "summary_text", "text": text});
                ev(json!({"type": "response.reasoning_summary_part.added", "item_id": id, "output_index": index,
                          "part": part(""), "summary_index": 0}));
                for w in words(t) {
                    ev(json!({"type": "response.reasoning_summary_text.delta", "delta": w, "item_id": id,
                              "output_index": index, "summary_index": 0}));
                }
                ev(json!({"type": "response.reasoning_summary_text.done", "item_id": id, "output_index": index,
                          "summary_index": 0, "text": t}));
                ev(json!({"type": "response.reasoning_summary_part.done", "item_id": id, "output_index": index,
                          "part": part(t), "summary_index": 0}));
            }
            OutItem::WebSearch(_) => {
                for phase in ["in_progress", "searching", "completed"] {
                    ev(json!({"type": format!("response.web_search_call.{phase}"), "item_id": id,
                              "output_index": index}));
                }
            }
            OutItem::Message(t) => {
                let part = |text: &str| json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text});
                ev(json!({"type": "response.content_part.added", "content_index": 0, "item_id": id,
                          "output_index": index, "part": part("")}));
                for w in words(t) {
                    ev(json!({"type": "response.output_text.delta", "content_index": 0, "delta": w, "item_id": id,
                              "logprobs": [], "output_index": index}));
                }
                ev(json!({"type": "response.output_text.done", "content_index": 0, "item_id": id, "logprobs": [],
                          "output_index": index, "text": t}));
                ev(json!({"type": "response.content_part.done", "content_index": 0, "item_id": id,
                          "output_index": index, "part": part(t)}));
            }
            OutItem::Call(_, c) => {
                let arguments = c.input.to_string();
                for f in fragments(&arguments) {
                    ev(json!({"type": "response.function_call_arguments.delta", "delta": f, "item_id": id,
                              "output_index": index}));
                }
                ev(json!({"type": "response.function_call_arguments.done", "arguments": arguments, "item_id": id,
                          "name": c.name, "output_index": index}));
            }
        }
        ev(json!({"type": "response.output_item.done", "item": item.json(true), "output_index": index}));
    }
    ev(json!({"type": "response.completed", "response": responses_object(seen, &items, true)}));
    out
}

/// An endpoint named `name` of an OpenAI-compatible provider (`groq`, `deepseek`, …) whose
/// upstream is the OpenAI fake at `upstream`: OpenAI's chat completions, reached through the
/// translation (only the `openai` provider speaks the Responses API itself).
pub fn openai_compatible_endpoint(name: &str, provider: &str, upstream: &MockUpstream) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat",
           "model": {"provider": provider, "name": Fake::OpenAi.model(),
                     "config": {"api_key": OPENAI_KEY, "api_base": format!("{}/v1", upstream.url())}}})
}
