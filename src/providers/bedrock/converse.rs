//! Chat through the Converse API (`POST /model/<id>/converse`) and ConverseStream
//! (`/converse-stream`, answered in AWS event-stream frames).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, GatewayError};
use crate::framing::StreamDecoder;
use crate::framing::eventstream::{FrameDecoder, Message};
use crate::providers::anthropic::{effort_thinking, single_signature};
use crate::providers::{parse_data_url, parse_upstream_json, python_json, to_json};
use crate::schema::{
    Answer, ChatChoice, ChatChunk, ChatResponse, Chunk, ChunkChoice, Delta, Request, ResponseMessage, ToolCall,
    ToolCallDelta, Usage, object_schema,
};

const DISPLAY: &str = "Amazon Bedrock";

// ---- request ----

/// Whether a Bedrock model id (or inference profile ARN) names an Anthropic Claude model, whose
/// Converse requests take Anthropic's own fields in `additionalModelRequestFields`.
pub fn is_claude(model: Option<&str>) -> bool {
    model.is_some_and(|m| m.to_ascii_lowercase().contains("anthropic.claude"))
}

/// The Converse request body for a unified chat request. For Claude models (`claude`), the
/// client APIs' extensions go in `additionalModelRequestFields` as Anthropic's fields: `top_k`,
/// `thinking` as sent, `reasoning.effort` as a thinking budget
/// ([`crate::providers::anthropic::effort_thinking`], which may raise `maxTokens`); other
/// models refuse them before this is called (`Provider::accepts`).
pub fn request_body(req: &Request, claude: bool) -> Result<Vec<u8>, GatewayError> {
    let mut messages: Vec<Value> = Vec::new();
    let mut system: Vec<Value> = Vec::new();
    let mut tool_results: Vec<Value> = Vec::new();
    for (index, m) in req.messages().iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        if role != "tool" && !tool_results.is_empty() {
            messages.push(json!({"role": "user", "content": std::mem::take(&mut tool_results)}));
        }
        let content = m.get("content");
        match role {
            "system" => system.extend(content_blocks(content, false)?),
            "assistant" => {
                let calls = m.get("tool_calls").and_then(Value::as_array).filter(|c| !c.is_empty());
                let mut blocks = content_blocks(content, true)?;
                if let Some(calls) = calls {
                    // Converse rejects blank text blocks next to tool uses.
                    blocks.retain(|b| b.get("text").and_then(Value::as_str).is_none_or(|t| !t.is_empty()));
                    for call in calls {
                        blocks.push(tool_use(call)?);
                    }
                } else if blocks.is_empty() {
                    blocks.push(json!({"text": ""}));
                }
                if claude {
                    // Claude's own signed thinking goes back first (it wants it for a turn that
                    // called tools while thinking).
                    let thinking = req.extensions.thinking_history.iter().filter(|t| t.message == index).map(|t| {
                        json!({"reasoningContent": {"reasoningText": {"text": t.thinking, "signature": t.signature}}})
                    });
                    blocks.splice(0..0, thinking);
                }
                messages.push(json!({"role": "assistant", "content": blocks}));
            }
            "tool" => {
                let id = m.get("tool_call_id").cloned().unwrap_or(Value::Null);
                let mut text_blocks = content_blocks(content, false)?;
                if text_blocks.is_empty() {
                    text_blocks.push(json!({"text": ""}));
                }
                tool_results.push(json!({"toolResult": {"toolUseId": id, "content": text_blocks}}));
            }
            _ => {
                let mut blocks = content_blocks(content, true)?;
                if blocks.is_empty() {
                    blocks.push(json!({"text": ""}));
                }
                messages.push(json!({"role": "user", "content": blocks}));
            }
        }
    }
    if !tool_results.is_empty() {
        messages.push(json!({"role": "user", "content": tool_results}));
    }

    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let b = &req.body;
    let mut inference = Map::new();
    if let Some(v) = b.get("temperature") {
        inference.insert("temperature".into(), v.clone());
    }
    if let Some(v) = b.get("top_p") {
        inference.insert("topP".into(), v.clone());
    }
    let max_tokens = b.get("max_tokens").or_else(|| b.get("max_completion_tokens"));
    let mut additional = Map::new();
    if claude {
        let ext = &req.extensions;
        if let Some(k) = ext.top_k {
            additional.insert("top_k".into(), Value::from(k));
        }
        if let Some(t) = &ext.thinking {
            additional.insert("thinking".into(), t.clone());
        }
        if let Some((thinking, raised)) = effort_thinking(ext, max_tokens.and_then(Value::as_u64))? {
            additional.insert("thinking".into(), thinking);
            if let Some(raised) = raised {
                inference.insert("maxTokens".into(), Value::from(raised));
            }
        }
    }
    if let Some(v) = max_tokens.filter(|_| !inference.contains_key("maxTokens")) {
        inference.insert("maxTokens".into(), v.clone());
    }
    if let Some(v) = b.get("stop") {
        inference.insert("stopSequences".into(), v.clone());
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !additional.is_empty() {
        body.insert("additionalModelRequestFields".into(), Value::Object(additional));
    }
    if let Some(format) = b.get("response_format").and_then(output_config) {
        body.insert("outputConfig".into(), format);
    }
    if let Some(tools) = b.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        let mut config = Map::new();
        config.insert("tools".into(), Value::Array(tools.iter().map(tool_spec).collect::<Result<_, _>>()?));
        if let Some(choice) = b.get("tool_choice").and_then(tool_choice) {
            config.insert("toolChoice".into(), choice);
        }
        body.insert("toolConfig".into(), Value::Object(config));
    }
    to_json(&body)
}

/// A `json_schema` `response_format` as Converse's structured output (`outputConfig.textFormat`,
/// the schema as a JSON string, with its `name` and `description`). Other formats (`text`;
/// `json_object`, which Converse cannot express) and a `json_schema` without an object schema
/// send nothing, as MLflow sends nothing.
fn output_config(format: &Value) -> Option<Value> {
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    let spec = format.get("json_schema");
    let schema = spec.and_then(|s| s.get("schema")).filter(|s| s.is_object())?;
    let mut definition = Map::new();
    definition.insert("schema".into(), Value::String(schema.to_string()));
    for key in ["name", "description"] {
        if let Some(v) = spec.and_then(|s| s.get(key)).filter(|v| v.is_string()) {
            definition.insert(key.into(), v.clone());
        }
    }
    Some(json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}))
}

/// Message content as Converse blocks: text parts as `{text}`, base64 data-URL images as
/// `{image}` (when `images`), other parts left out.
fn content_blocks(content: Option<&Value>, images: bool) -> Result<Vec<Value>, GatewayError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => out.push(json!({"text": p.get("text").cloned().unwrap_or(Value::from(""))})),
                    Some("image_url") if images => {
                        let url = p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("");
                        out.push(image_block(url)?);
                    }
                    _ => {}
                }
            }
            Ok(out)
        }
        Some(other) => Ok(vec![json!({"text": other.to_string()})]),
    }
}

fn image_block(url: &str) -> Result<Value, GatewayError> {
    let Some((mime, data)) = parse_data_url(url) else {
        return Err(GatewayError::bad_request(
            "Amazon Bedrock accepts images only as base64 data URLs (data:image/png;base64,...)",
        ));
    };
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(GatewayError::bad_request(format!(
                "Amazon Bedrock does not accept images of type '{other}' (png, jpeg, gif and webp are accepted)"
            )));
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data}}}))
}

fn tool_use(call: &Value) -> Result<Value, GatewayError> {
    let f = call.get("function");
    let name = f.and_then(|f| f.get("name")).cloned().unwrap_or(Value::Null);
    let input = match f.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| {
            GatewayError::invalid(format!("Invalid JSON in the arguments of tool call '{}': {e}", name_str(&name)))
        })?,
        Some(other) => other.clone(),
    };
    Ok(json!({"toolUse": {"toolUseId": call.get("id").cloned().unwrap_or(Value::Null), "name": name, "input": input}}))
}

fn name_str(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A unified tool as a Converse `toolSpec`; the parameter schema is forwarded whole
/// (docs/mlflow-compat.md#fix-6), with `type` and `properties` filled in when missing
/// ([`object_schema`]).
fn tool_spec(tool: &Value) -> Result<Value, GatewayError> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("function");
    if kind != "function" {
        return Err(GatewayError::invalid(format!(
            "Only function calling tool is supported, but received tool type {kind}"
        )));
    }
    let f = tool.get("function");
    let field = |key: &str| f.and_then(|f| f.get(key)).filter(|v| !v.is_null());
    Ok(json!({"toolSpec": {
        "name": field("name").cloned().unwrap_or(Value::Null),
        "description": field("description").cloned().unwrap_or(Value::from("")),
        "inputSchema": {"json": object_schema(field("parameters").cloned())},
    }}))
}

/// `tool_choice` as Converse's `toolChoice` (`none` cannot be expressed: left out).
fn tool_choice(choice: &Value) -> Option<Value> {
    match choice {
        Value::String(s) if s == "auto" => Some(json!({"auto": {}})),
        Value::String(s) if s == "required" => Some(json!({"any": {}})),
        Value::Object(o) => {
            let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str)?;
            Some(json!({"tool": {"name": name}}))
        }
        _ => None,
    }
}

// ---- answer ----

#[derive(Deserialize)]
struct WireConverse {
    output: Option<WireOutput>,
    #[serde(rename = "stopReason")]
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireOutput {
    message: Option<WireMessage>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(rename = "inputTokens")]
    input: Option<u64>,
    #[serde(rename = "outputTokens")]
    output: Option<u64>,
    #[serde(rename = "totalTokens")]
    total: Option<u64>,
    #[serde(rename = "cacheReadInputTokens")]
    cache_read: Option<u64>,
    #[serde(rename = "cacheWriteInputTokens")]
    cache_write: Option<u64>,
}

impl WireUsage {
    /// Unified usage, prompt caching included as MLflow 3.18 reports it
    /// (docs/mlflow-compat.md#mlflow-318-provider-translations): prompt tokens are input plus
    /// cache reads plus cache writes, `prompt_tokens_details.cached_tokens` the cache reads,
    /// `cache_creation_input_tokens` the cache writes; the total is prompt plus completion when
    /// both are known, else Converse's own.
    fn unified(self) -> Usage {
        let prompt = self.input.map(|i| i + self.cache_read.unwrap_or(0) + self.cache_write.unwrap_or(0));
        let total = prompt.zip(self.output).map(|(p, c)| p + c).or(self.total);
        let mut usage = Usage::counts(prompt, self.output, total);
        usage.prompt_tokens_details = self.cache_read.map(|c| json!({ "cached_tokens": c }));
        if let Some(w) = self.cache_write {
            usage.extra.insert("cache_creation_input_tokens".into(), Value::from(w));
        }
        usage
    }
}

/// Converse's `stopReason` as a unified `finish_reason`: `tool_use` → `tool_calls`,
/// `max_tokens` and `model_context_window_exceeded` → `length`, `content_filtered` and
/// `guardrail_intervened` → `content_filter`, anything else → `stop` (MLflow 3.18).
pub fn finish_reason(stop: Option<&str>) -> String {
    match stop {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("content_filtered" | "guardrail_intervened") => "content_filter",
        _ => "stop",
    }
    .to_owned()
}

/// Decode a Converse answer.
pub fn decode(
    body: &[u8],
    model: Option<String>,
    provider: &'static str,
    created: u64,
) -> Result<Answer, GatewayError> {
    let wire: WireConverse = parse_upstream_json(body, DISPLAY)?;
    let message = wire.output.and_then(|o| o.message);
    let (role, blocks) = match message {
        Some(m) => (m.role, m.content),
        None => (None, Vec::new()),
    };
    let mut texts: Vec<&str> = Vec::new();
    let mut reasoning: Vec<&str> = Vec::new();
    let mut signatures: Vec<String> = Vec::new();
    let mut calls = Vec::new();
    for b in &blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            texts.push(t);
        } else if let Some(u) = b.get("toolUse") {
            calls.push(ToolCall::function(
                u.get("toolUseId").and_then(Value::as_str).unwrap_or_default().to_owned(),
                u.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                python_json(u.get("input").unwrap_or(&Value::Null)),
            ));
        } else if let Some(t) = b.pointer("/reasoningContent/reasoningText/text").and_then(Value::as_str) {
            reasoning.push(t);
            let signature = b.pointer("/reasoningContent/reasoningText/signature").and_then(Value::as_str);
            signatures.push(signature.unwrap_or_default().to_owned());
        }
    }
    let message = ResponseMessage::new(
        role.unwrap_or_else(|| "assistant".into()),
        (!texts.is_empty()).then(|| texts.join("\n")),
        (!calls.is_empty()).then_some(calls),
    )
    .with_reasoning((!reasoning.is_empty()).then(|| reasoning.join("\n")))
    .with_thinking_signature(single_signature(signatures));
    Ok(Answer::Chat(ChatResponse::new(
        None,
        created,
        model,
        vec![ChatChoice::new(0, message, Some(finish_reason(wire.stop_reason.as_deref())))],
        wire.usage.map(WireUsage::unified).unwrap_or_default(),
        provider,
    )))
}

// ---- stream ----

#[derive(Deserialize)]
struct BlockStart {
    #[serde(rename = "contentBlockIndex", default)]
    index: u64,
    start: Option<StartBody>,
}

#[derive(Deserialize)]
struct StartBody {
    #[serde(rename = "toolUse")]
    tool_use: Option<StartToolUse>,
}

#[derive(Deserialize)]
struct StartToolUse {
    #[serde(rename = "toolUseId")]
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct BlockDelta {
    #[serde(rename = "contentBlockIndex", default)]
    index: u64,
    delta: Option<DeltaBody>,
}

#[derive(Deserialize)]
struct DeltaBody {
    text: Option<String>,
    #[serde(rename = "toolUse")]
    tool_use: Option<DeltaToolUse>,
    #[serde(rename = "reasoningContent")]
    reasoning: Option<DeltaReasoning>,
}

#[derive(Deserialize)]
struct DeltaToolUse {
    input: Option<String>,
}

#[derive(Deserialize)]
struct DeltaReasoning {
    text: Option<String>,
    signature: Option<String>,
}

#[derive(Deserialize)]
struct MessageStop {
    #[serde(rename = "stopReason")]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    usage: Option<WireUsage>,
}

/// Decodes a ConverseStream body (event-stream frames) into unified chat chunks. The stream is
/// complete once `messageStop` or `metadata` arrived; ending before is an error.
pub struct ConverseStream {
    frames: FrameDecoder,
    provider: &'static str,
    model: Option<String>,
    created: u64,
    /// contentBlockIndex → tool call ordinal.
    tools: HashMap<u64, u32>,
    usage: Option<Usage>,
    complete: bool,
}

impl ConverseStream {
    /// A decoder whose chunks carry `model` and `provider`.
    pub fn new(provider: &'static str, model: Option<String>, created: u64) -> Self {
        ConverseStream {
            frames: FrameDecoder::new(),
            provider,
            model,
            created,
            tools: HashMap::new(),
            usage: None,
            complete: false,
        }
    }

    fn chunk(&self, out: &mut Vec<Chunk>, finish_reason: Option<String>, delta: Delta, usage: Option<Usage>) {
        out.push(Chunk::Chat(ChatChunk::new(
            None,
            self.created,
            self.model.clone(),
            vec![ChunkChoice::new(0, delta, finish_reason)],
            usage,
            self.provider,
        )));
    }

    fn message(&mut self, m: &Message, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        match m.header_str(":message-type").unwrap_or("event") {
            "event" => {}
            "exception" => {
                let kind = m.header_str(":exception-type").unwrap_or("exception");
                let message = serde_json::from_slice::<Value>(&m.payload)
                    .ok()
                    .and_then(|v| {
                        v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).map(str::to_owned)
                    })
                    .unwrap_or_else(|| String::from_utf8_lossy(&m.payload).into_owned());
                return Err(GatewayError::new(502, ErrorKind::Upstream, format!("{message} ({kind})")));
            }
            other => {
                let code = m.header_str(":error-code").unwrap_or(other);
                let message = m.header_str(":error-message").unwrap_or("the stream failed");
                return Err(GatewayError::new(502, ErrorKind::Upstream, format!("{message} ({code})")));
            }
        }
        let unreadable =
            |e: serde_json::Error| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream event: {e}"));
        match m.header_str(":event-type").unwrap_or("") {
            "contentBlockStart" => {
                let start: BlockStart = serde_json::from_slice(&m.payload).map_err(unreadable)?;
                if let Some(tool) = start.start.and_then(|s| s.tool_use) {
                    let ordinal = self.tools.len() as u32;
                    self.tools.insert(start.index, ordinal);
                    let call = ToolCallDelta::start(ordinal, tool.id, tool.name).with_arguments(String::new());
                    self.chunk(out, None, Delta::tool_calls(vec![call]), None);
                }
            }
            "contentBlockDelta" => {
                let d: BlockDelta = serde_json::from_slice(&m.payload).map_err(unreadable)?;
                let Some(body) = d.delta else { return Ok(()) };
                if let Some(text) = body.text {
                    self.chunk(out, None, Delta::text(Some(text)), None);
                } else if let Some(input) = body.tool_use.and_then(|t| t.input) {
                    let index = self.tools.get(&d.index).copied().unwrap_or(0);
                    self.chunk(out, None, Delta::tool_calls(vec![ToolCallDelta::arguments(index, Some(input))]), None);
                } else if let Some(r) = body.reasoning {
                    if let Some(text) = r.text {
                        self.chunk(out, None, Delta::reasoning(Some(text)), None);
                    } else if let Some(signature) = r.signature.filter(|s| !s.is_empty()) {
                        self.chunk(out, None, Delta::thinking_signature(signature), None);
                    }
                }
            }
            "messageStop" => {
                self.complete = true;
                let s: MessageStop = serde_json::from_slice(&m.payload).map_err(unreadable)?;
                self.chunk(out, Some(finish_reason(s.stop_reason.as_deref())), Delta::default(), None);
            }
            "metadata" => {
                self.complete = true;
                let meta: Metadata = serde_json::from_slice(&m.payload).map_err(unreadable)?;
                if let Some(u) = meta.usage {
                    let usage = u.unified();
                    self.usage = Some(usage.clone());
                    self.chunk(out, None, Delta::default(), Some(usage));
                }
            }
            // messageStart, contentBlockStop and anything new carry nothing to relay.
            _ => {}
        }
        Ok(())
    }
}

impl StreamDecoder for ConverseStream {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        self.frames.push(chunk);
        loop {
            let next = self
                .frames
                .next_message()
                .map_err(|e| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream: {e}")))?;
            match next {
                Some(m) => self.message(&m, out)?,
                None => return Ok(()),
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        self.feed(&[], out)?;
        self.frames
            .finish()
            .map_err(|e| GatewayError::bad_gateway(format!("{DISPLAY} sent an unreadable stream: {e}")))?;
        if self.complete { Ok(()) } else { Err(crate::framing::incomplete()) }
    }

    fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::eventstream::tests::{encode, event};
    use crate::schema::{EndpointType, request_from_value};

    fn chat(v: Value) -> Request {
        request_from_value(EndpointType::Chat, v).unwrap()
    }

    fn body(v: Value) -> Value {
        serde_json::from_slice(&request_body(&chat(v), true).unwrap()).unwrap()
    }

    fn with_extensions(ext: crate::schema::Extensions, max_tokens: Option<u64>, claude: bool) -> Value {
        let mut req = chat(json!({"messages": [{"role": "user", "content": "hi"}]}));
        if let Some(m) = max_tokens {
            req.body.insert("max_tokens".into(), json!(m));
        }
        req.extensions = ext;
        serde_json::from_slice(&request_body(&req, claude).unwrap()).unwrap()
    }

    #[test]
    fn claude_models() {
        assert!(is_claude(Some("anthropic.claude-3-5-sonnet-20240620-v1:0")));
        assert!(is_claude(Some("us.anthropic.claude-sonnet-4-20250514-v1:0")));
        assert!(is_claude(Some("arn:aws:bedrock:us-east-1:1:inference-profile/eu.anthropic.claude-3-7-sonnet-v1:0")));
        assert!(!is_claude(Some("amazon.nova-pro-v1:0")));
        assert!(!is_claude(Some("meta.llama3-70b-instruct-v1:0")));
        assert!(!is_claude(None));
    }

    #[test]
    fn claude_extensions_are_additional_model_request_fields() {
        use crate::schema::Extensions;
        let ext = Extensions {
            top_k: Some(40),
            thinking: Some(json!({"type": "enabled", "budget_tokens": 2048})),
            reasoning_effort: None,
            ..Extensions::default()
        };
        let b = with_extensions(ext.clone(), Some(4096), true);
        assert_eq!(
            b["additionalModelRequestFields"],
            json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 2048}})
        );
        assert_eq!(b["inferenceConfig"], json!({"maxTokens": 4096}));
        // Not for other models (their provider refuses the request before this).
        assert!(with_extensions(ext, Some(4096), false).get("additionalModelRequestFields").is_none());

        // reasoning.effort: Anthropic's budgets, maxTokens raised when unset.
        let effort = |e: &str| Extensions { reasoning_effort: Some(e.into()), ..Extensions::default() };
        let b = with_extensions(effort("high"), None, true);
        assert_eq!(b["additionalModelRequestFields"], json!({"thinking": {"type": "enabled", "budget_tokens": 24576}}));
        assert_eq!(b["inferenceConfig"], json!({"maxTokens": 24576 + 8192}));
        let b = with_extensions(effort("low"), Some(2000), true);
        assert_eq!(b["additionalModelRequestFields"]["thinking"]["budget_tokens"], json!(1024));
        assert_eq!(b["inferenceConfig"], json!({"maxTokens": 2000}));
        let b = with_extensions(effort("none"), None, true);
        assert!(b.get("additionalModelRequestFields").is_none() && b.get("inferenceConfig").is_none());
    }

    #[test]
    fn claude_gets_its_signed_thinking_back() {
        use crate::schema::SignedThinking;
        let mut req = chat(json!({"messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "Sunny"}
        ]}));
        req.extensions.thinking_history =
            vec![SignedThinking { message: 1, thinking: "Use the tool.".into(), signature: "sig".into() }];
        let b: Value = serde_json::from_slice(&request_body(&req, true).unwrap()).unwrap();
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"reasoningContent": {"reasoningText": {"text": "Use the tool.", "signature": "sig"}}},
                   {"toolUse": {"toolUseId": "t1", "name": "w", "input": {}}}])
        );
        // Other model families never see it.
        let b: Value = serde_json::from_slice(&request_body(&req, false).unwrap()).unwrap();
        assert_eq!(b["messages"][1]["content"], json!([{"toolUse": {"toolUseId": "t1", "name": "w", "input": {}}}]));
    }

    #[test]
    fn messages_and_tool_results() {
        let b = body(json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": [{"type": "text", "text": "Really."}]},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
                    {"id": "t2", "type": "function", "function": {"name": "g", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": "one"},
                {"role": "tool", "tool_call_id": "t2", "content": "two"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t3", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "t3", "content": "three"},
                {"role": "user", "content": "thanks"}
            ],
            "max_completion_tokens": 10,
            "top_p": 0.5,
            "stop": ["x"]
        }));
        assert_eq!(
            b,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
                    {"role": "assistant", "content": [
                        {"text": "Checking."},
                        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": 1}}},
                        {"toolUse": {"toolUseId": "t2", "name": "g", "input": {}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "one"}]}},
                        {"toolResult": {"toolUseId": "t2", "content": [{"text": "two"}]}}
                    ]},
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t3", "name": "f", "input": {}}}]},
                    {"role": "user", "content": [{"toolResult": {"toolUseId": "t3", "content": [{"text": "three"}]}}]},
                    {"role": "user", "content": [{"text": "thanks"}]}
                ],
                "system": [{"text": "Be brief."}, {"text": "Really."}],
                "inferenceConfig": {"topP": 0.5, "maxTokens": 10, "stopSequences": ["x"]}
            })
        );
    }

    #[test]
    fn tools_are_forwarded_whole_with_tool_choice() {
        let schema = json!({"type": "object", "properties": {"loc": {"type": "object", "properties": {"city": {"type": "string", "minLength": 1}}, "required": ["city"]}}, "required": ["loc"], "additionalProperties": false});
        let b = body(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": schema}},
                {"type": "function", "function": {"name": "g", "description": "G"}},
                {"type": "function", "function": {"name": "h", "parameters": {}}},
                {"type": "function", "function": {"name": "i", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        }));
        let tools = &b["toolConfig"]["tools"];
        assert_eq!(tools[0]["toolSpec"]["inputSchema"]["json"], schema);
        assert_eq!(tools[0]["toolSpec"]["description"], "");
        for i in 1..=3 {
            assert_eq!(tools[i]["toolSpec"]["inputSchema"]["json"], json!({"type": "object", "properties": {}}));
        }
        assert_eq!(tools[1]["toolSpec"]["description"], "G");
        assert_eq!(b["toolConfig"]["toolChoice"], json!({"tool": {"name": "f"}}));
        assert!(b.get("inferenceConfig").is_none());

        for (choice, want) in [("auto", json!({"auto": {}})), ("required", json!({"any": {}}))] {
            let b = body(json!({"messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}));
            assert_eq!(b["toolConfig"]["toolChoice"], want);
        }
        let b = body(json!({"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}));
        assert!(b["toolConfig"].get("toolChoice").is_none());
    }

    #[test]
    fn bad_tool_arguments_and_images() {
        let req = chat(json!({"messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}
        ]}));
        let e = request_body(&req, true).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message().contains("tool call 'f'"), "{}", e.message());

        let b = body(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}
        ]}]}));
        assert_eq!(b["messages"][0]["content"][1], json!({"image": {"format": "png", "source": {"bytes": "iVBO"}}}));
        let req = chat(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
        ]}]}));
        // Unsupported, not a rule of the request schema: 400 (was 422).
        assert_eq!(request_body(&req, true).unwrap_err().status, 400);
        let req = chat(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
        ]}]}));
        assert_eq!(request_body(&req, true).unwrap_err().status, 400);
    }

    #[test]
    fn json_schema_becomes_structured_output() {
        let schema = json!({"type": "object", "properties": {"said": {"type": "string"}}, "required": ["said"]});
        let b = body(json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {
            "type": "json_schema", "json_schema": {"name": "echo", "description": "An echo", "strict": true,
            "schema": schema}}}));
        let format = &b["outputConfig"]["textFormat"];
        assert_eq!(format["type"], json!("json_schema"));
        let definition = &format["structure"]["jsonSchema"];
        assert_eq!(definition["name"], json!("echo"));
        assert_eq!(definition["description"], json!("An echo"));
        let sent: Value = serde_json::from_str(definition["schema"].as_str().unwrap()).unwrap();
        assert_eq!(sent, schema);
        for format in [
            json!({"type": "json_object"}),
            json!({"type": "text"}),
            json!({"type": "json_schema",
            "json_schema": {"name": "x"}}),
        ] {
            let b = body(json!({"messages": [{"role": "user", "content": "hi"}], "response_format": format}));
            assert!(b.get("outputConfig").is_none(), "{b}");
        }
    }

    #[test]
    fn usage_with_prompt_caching() {
        let usage =
            |wire: &str| serde_json::to_value(serde_json::from_str::<WireUsage>(wire).unwrap().unified()).unwrap();
        assert_eq!(
            usage(
                r#"{"inputTokens":10,"outputTokens":5,"totalTokens":15,"cacheReadInputTokens":100,"cacheWriteInputTokens":20}"#
            ),
            json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                   "prompt_tokens_details": {"cached_tokens": 100}, "cache_creation_input_tokens": 20})
        );
        assert_eq!(
            usage(r#"{"inputTokens":10,"outputTokens":5,"totalTokens":15,"cacheReadInputTokens":0}"#),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(
            usage(r#"{"inputTokens":3,"outputTokens":4,"totalTokens":7}"#),
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
        // Without input tokens the prompt is unknown and Converse's total is kept.
        assert_eq!(
            usage(r#"{"outputTokens":4,"totalTokens":9,"cacheWriteInputTokens":2}"#),
            json!({"prompt_tokens": null, "completion_tokens": 4, "total_tokens": 9, "cache_creation_input_tokens": 2})
        );
    }

    #[test]
    fn decodes_answers() {
        let out = decode(
            br#"{"output":{"message":{"role":"assistant","content":[{"text":"a"},{"reasoningContent":{"reasoningText":{"text":"hmm"}}},{"text":"b"},{"toolUse":{"toolUseId":"t","name":"f","input":{"city":"Z\u00fcrich","n":[1,2.0]}}}]}},"stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}"#,
            Some("m.x".into()),
            "bedrock",
            7,
        )
        .unwrap();
        let v: Value = serde_json::to_value(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "a\nb");
        assert_eq!(v["choices"][0]["message"]["reasoning_content"], "hmm");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            r#"{"city": "Z\u00fcrich", "n": [1, 2.0]}"#
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(v["usage"], json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}));
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["model"], "m.x");
        assert_eq!(v["created"], 7);

        for (stop, want) in [
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("content_filtered", "content_filter"),
            ("guardrail_intervened", "content_filter"),
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
        ] {
            assert_eq!(finish_reason(Some(stop)), want);
        }
        let out = decode(br#"{"output":{"message":{"role":"assistant","content":[]}}}"#, None, "bedrock", 1).unwrap();
        let v: Value = serde_json::to_value(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["usage"]["total_tokens"], Value::Null);

        assert_eq!(decode(b"not json", None, "bedrock", 1).unwrap_err().status, 502);
    }

    fn run(wire: &[u8], cuts: &[usize]) -> (Vec<Value>, Result<(), GatewayError>) {
        let mut d = ConverseStream::new("bedrock", Some("m.x".into()), 5);
        let mut start = 0;
        let pieces = cuts.iter().copied().chain([wire.len()]).map(|c| {
            let piece = &wire[start..c];
            start = c;
            piece
        });
        let (events, err) = crate::framing::testing::run(&mut d, pieces);
        (events, err.map_or(Ok(()), Err))
    }

    fn tool_stream() -> Vec<u8> {
        let mut wire = Vec::new();
        for (kind, payload) in [
            ("messageStart", r#"{"role":"assistant"}"#),
            ("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Let me check."}}"#),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            ("contentBlockStart", r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"f"}}}"#),
            ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":"}}}"#),
            ("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"1}"}}}"#),
            ("contentBlockStart", r#"{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"t2","name":"g"}}}"#),
            ("contentBlockDelta", r#"{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{}"}}}"#),
            ("messageStop", r#"{"stopReason":"tool_use"}"#),
            ("metadata", r#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7},"metrics":{"latencyMs":1}}"#),
        ] {
            wire.extend(event(kind, payload));
        }
        wire
    }

    #[test]
    fn stream_with_tools() {
        let (events, result) = run(&tool_stream(), &[]);
        result.unwrap();
        assert_eq!(events.len(), 8, "{events:?}");
        assert_eq!(events[0]["choices"][0]["delta"]["content"], "Let me check.");
        assert_eq!(
            events[1]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}])
        );
        assert_eq!(
            events[2]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": null, "type": null, "function": {"name": null, "arguments": "{\"a\":"}}])
        );
        assert_eq!(events[4]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(events[5]["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(events[6]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[7]["usage"], json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}));
        for e in &events {
            assert_eq!(e["id"], Value::Null);
            assert_eq!(e["model"], "m.x");
            assert_eq!(e["provider"], "bedrock");
            assert_eq!(e["object"], "chat.completion.chunk");
        }
    }

    #[test]
    fn stream_split_anywhere_gives_the_same_events() {
        let wire = tool_stream();
        let (whole, _) = run(&wire, &[]);
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..200 {
            let n = 1 + round % 17;
            let mut cuts: Vec<usize> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % (wire.len() as u64 + 1)) as usize
                })
                .collect();
            cuts.sort_unstable();
            let (split, result) = run(&wire, &cuts);
            result.unwrap();
            assert_eq!(split, whole, "cuts {cuts:?}");
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..wire.len()).collect();
        assert_eq!(run(&wire, &cuts).0, whole);
    }

    #[test]
    fn stream_exceptions_and_damage_are_errors() {
        let mut wire = event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#);
        wire.extend(encode(
            &[
                (":exception-type", "throttlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        ));
        let (events, result) = run(&wire, &[]);
        assert_eq!(events.len(), 1);
        let e = result.unwrap_err();
        assert_eq!(e.message(), "Too many requests, please wait before trying again. (throttlingException)");

        let wire =
            encode(&[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "boom")], b"");
        assert_eq!(run(&wire, &[]).1.unwrap_err().message(), "boom (InternalFailure)");

        // A truncated last frame.
        let wire = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let e = run(&wire[..wire.len() - 1], &[]).1.unwrap_err();
        assert_eq!(e.status, 502);
        assert!(e.message().contains("ended inside a message"), "{}", e.message());

        // A flipped bit.
        let mut wire = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        wire[20] ^= 0x40;
        assert!(run(&wire, &[]).1.unwrap_err().message().contains("checksum"));

        // Not JSON inside a valid frame.
        let wire = event("contentBlockDelta", "nope");
        assert!(run(&wire, &[]).1.unwrap_err().message().contains("unreadable stream event"));
    }

    #[test]
    fn stream_is_complete_at_message_stop_or_metadata() {
        let mut wire = event("messageStart", r#"{"role":"assistant"}"#);
        wire.extend(event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#));
        let (events, result) = run(&wire, &[]);
        assert_eq!(events.len(), 1);
        assert_eq!(result.unwrap_err().message(), "upstream stream ended before it was complete");
        let mut stopped = wire.clone();
        stopped.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        run(&stopped, &[]).1.unwrap();
        let mut metadata = wire;
        metadata.extend(event("metadata", r#"{"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#));
        run(&metadata, &[]).1.unwrap();
    }
}
