//! Unified chat and completions requests → an Anthropic Messages API body
//! (docs/mlflow-compat.md#provider-translations).
//!
//! [`messages_body`] is the one entry point; it returns the JSON object so that a caller can
//! adjust it before sending (Claude on Vertex AI drops `model` and adds `anthropic_version`).

use serde_json::{Map, Number, Value, json};

use crate::error::GatewayError;
use crate::schema::{EndpointType, Extensions, Request, SignedThinking, object_schema};

/// `max_tokens` when the request sets neither `max_tokens` nor `max_completion_tokens`
/// (MLflow's default, kept for wire compatibility).
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The largest `max_tokens` MLflow lets through.
pub const MAXIMUM_MAX_TOKENS: u64 = 1_000_000;

/// The instruction appended to `system` for `response_format: {"type": "json_object"}`.
pub const JSON_OBJECT_INSTRUCTION: &str = "Respond with only a single valid JSON object. Do not include any \
     explanatory text, markdown, or code fences before or after the JSON object.";

/// How [`messages_body`] builds the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyOptions<'a> {
    /// The `model` value; `None` leaves the key out (Vertex AI names the model in the URL).
    pub model: Option<&'a str>,
    /// Send `http(s)` image URLs as Anthropic `{"type": "url"}` image sources. When false, such
    /// images become MLflow's text note `[unsupported image reference: <url>]` (for hosts that
    /// do not fetch URLs). `data:` URLs always become base64 image sources.
    pub url_images: bool,
}

/// Build the Messages API body for a chat or completions request (docs/mlflow-compat.md#provider-translations):
///
/// * completions: the prompt becomes one user message;
/// * `temperature` and `top_p` together → 422; `max_tokens` = `max_tokens` or
///   `max_completion_tokens` or 8192 (above 1,000,000 → 422); `n` ≠ 1 → 422;
/// * system (and `developer`) messages → top-level `system`, joined with `\n`;
/// * images, assistant tool calls and tool results → Anthropic content blocks;
/// * `stop` → `stop_sequences`, `temperature` halved, `tools`, `tool_choice`,
///   `parallel_tool_calls` and `response_format` translated; `stream: true` kept,
///   `stream_options` dropped (usage always comes with the last chunk);
/// * every other field is forwarded unchanged;
/// * the client APIs' extensions: `top_k` and `thinking` as sent, `reasoning.effort` as a
///   thinking budget ([`effort_thinking`]).
pub(crate) fn messages_body(req: Request, opts: &BodyOptions<'_>) -> Result<Map<String, Value>, GatewayError> {
    let stream = req.stream();
    let endpoint_type = req.endpoint_type;
    let extensions = req.extensions;
    let mut body = req.body;
    body.remove("model");
    body.remove("stream_options");
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }

    if body.contains_key("temperature") && body.contains_key("top_p") {
        return Err(GatewayError::invalid("Cannot set both 'temperature' and 'top_p' parameters."));
    }
    let max_tokens = body.remove("max_tokens");
    let max_completion_tokens = body.remove("max_completion_tokens");
    let max_tokens = max_tokens.or(max_completion_tokens);
    let effort = effort_thinking(&extensions, max_tokens.as_ref().and_then(Value::as_u64))?;
    let raised = effort.as_ref().and_then(|(_, raised)| *raised);
    if let Some((thinking, _)) = effort {
        body.insert("thinking".into(), thinking);
    }
    let max_tokens = match raised {
        Some(raised) => Value::from(raised),
        None => match max_tokens {
            None => Value::from(DEFAULT_MAX_TOKENS),
            Some(v) => {
                if v.as_u64().is_some_and(|m| m > MAXIMUM_MAX_TOKENS) {
                    return Err(GatewayError::invalid(format!(
                        "Invalid value for max_tokens: cannot exceed {MAXIMUM_MAX_TOKENS}."
                    )));
                }
                v
            }
        },
    };
    if let Some(k) = extensions.top_k {
        body.entry("top_k").or_insert(Value::from(k));
    }
    if let Some(thinking) = extensions.thinking {
        body.insert("thinking".into(), thinking);
    }
    body.insert("max_tokens".into(), max_tokens);
    if let Some(n) = body.remove("n")
        && n.as_i64() != Some(1)
    {
        // MLflow's message has a literal '{n}' (a missing f-string); aigw names the value.
        let shown = match &n {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(GatewayError::invalid(format!(
            "'n' must be '1' for the Anthropic provider. Received value: '{shown}'."
        ))
        .with_param("n"));
    }
    if let Some(stop) = body.remove("stop") {
        body.insert("stop_sequences".into(), stop);
    }
    if let Some(t) = body.get_mut("temperature")
        && let Some(f) = t.as_f64()
        && let Some(half) = Number::from_f64(f * 0.5)
    {
        // MLflow's range is 0–2, Anthropic's 0–1.
        *t = Value::Number(half);
    }

    let messages = match endpoint_type {
        EndpointType::Completions => {
            let prompt = body.remove("prompt").unwrap_or_else(|| Value::String(String::new()));
            vec![json!({"role": "user", "content": prompt})]
        }
        _ => match body.remove("messages") {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        },
    };
    let (system, messages) = convert_messages(messages, opts.url_images, &extensions.thinking_history)?;
    body.insert("messages".into(), Value::Array(messages));
    if let Some(system) = system {
        body.insert("system".into(), system);
    }

    if let Some(tools) = body.remove("tools") {
        body.insert("tools".into(), convert_tools(tools)?);
    }
    if let Some(choice) = body.remove("tool_choice") {
        body.insert("tool_choice".into(), convert_tool_choice(choice));
    }
    if let Some(parallel) = body.remove("parallel_tool_calls") {
        apply_parallel_tool_calls(&mut body, parallel);
    }
    if let Some(format) = body.remove("response_format") {
        apply_response_format(&mut body, &format);
    }
    if let Some(model) = opts.model {
        body.insert("model".into(), Value::from(model));
    }
    Ok(body)
}

/// `reasoning.effort` → extended thinking with a token budget (docs/client-apis.md,
/// "Extensions per provider"); `none` is no thinking.
const EFFORT_BUDGETS: [(&str, u64); 4] = [("minimal", 1024), ("low", 1024), ("medium", 8192), ("high", 24576)];

/// Anthropic's smallest thinking budget.
const MIN_BUDGET: u64 = 1024;

/// The `thinking` object for the request's `reasoning.effort` (none when the request has
/// `thinking` itself, or no effort, or `none`), and the `max_tokens` to send instead of the
/// request's. Claude wants `max_tokens` above the budget: a request without `max_tokens` gets
/// the budget plus MLflow's default 8,192 for the answer; one whose `max_tokens` leaves no room
/// gets the budget lowered to `max_tokens` − 1, or a 400 when that is below Anthropic's minimum
/// of 1,024. Shared with Claude on Bedrock.
pub(crate) fn effort_thinking(
    ext: &Extensions,
    max_tokens: Option<u64>,
) -> Result<Option<(Value, Option<u64>)>, GatewayError> {
    let Some(effort) = ext.reasoning_effort.as_deref().filter(|_| ext.thinking.is_none()) else {
        return Ok(None);
    };
    if effort == "none" {
        return Ok(None);
    }
    let Some(&(_, budget)) = EFFORT_BUDGETS.iter().find(|(e, _)| *e == effort) else {
        return Err(GatewayError::bad_request(format!(
            "reasoning.effort '{effort}' has no Anthropic equivalent; use none, minimal, low, medium or high"
        ))
        .with_param("reasoning.effort"));
    };
    let (budget, raised) = match max_tokens {
        None => (budget, Some(budget + DEFAULT_MAX_TOKENS)),
        Some(max) if max > budget => (budget, None),
        Some(max) if max > MIN_BUDGET => (max - 1, None),
        Some(max) => {
            return Err(GatewayError::bad_request(format!(
                "reasoning.effort needs more than {MIN_BUDGET} output tokens on Anthropic (thinking's smallest \
                 budget); the request allows {max}"
            ))
            .with_param("reasoning.effort"));
        }
    };
    Ok(Some((json!({"type": "enabled", "budget_tokens": budget}), raised)))
}

/// The system prompt being assembled: MLflow joins string contents with `\n`; once any system
/// message has a list of parts, the prompt becomes a list of text blocks (which keeps per-block
/// fields such as `cache_control`).
enum System {
    Text(Vec<String>),
    Blocks(Vec<Value>),
}

impl System {
    fn push_text(&mut self, text: String) {
        match self {
            System::Text(parts) => parts.push(text),
            System::Blocks(blocks) => blocks.push(json!({"type": "text", "text": text})),
        }
    }

    fn push_parts(&mut self, parts: Vec<Value>) -> Result<(), GatewayError> {
        if let System::Text(texts) = self {
            let blocks = std::mem::take(texts).into_iter().map(|t| json!({"type": "text", "text": t})).collect();
            *self = System::Blocks(blocks);
        }
        let System::Blocks(blocks) = self else { return Ok(()) };
        for part in parts {
            if part.get("type").and_then(Value::as_str) != Some("text") {
                return Err(GatewayError::invalid(
                    "System messages for the Anthropic provider may contain only text parts.",
                ));
            }
            blocks.push(part);
        }
        Ok(())
    }

    fn into_value(self) -> Option<Value> {
        match self {
            System::Text(parts) if parts.is_empty() => None,
            System::Text(parts) => Some(Value::String(parts.join("\n"))),
            System::Blocks(blocks) if blocks.is_empty() => None,
            System::Blocks(blocks) => Some(Value::Array(blocks)),
        }
    }
}

/// Split unified messages into Anthropic's `system` and `messages`; an assistant message with
/// signed thinking in `history` starts with those `thinking` blocks (Claude wants them back for
/// a turn that called tools while thinking).
fn convert_messages(
    messages: Vec<Value>,
    url_images: bool,
    history: &[SignedThinking],
) -> Result<(Option<Value>, Vec<Value>), GatewayError> {
    let mut system = System::Text(Vec::new());
    let mut out = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let Value::Object(mut m) = message else { continue };
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r) => r.to_owned(),
            None => continue,
        };
        let content = m.remove("content");
        match role.as_str() {
            // `developer` is OpenAI's newer name for the system role.
            "system" | "developer" => match content {
                Some(Value::String(s)) => system.push_text(s),
                Some(Value::Array(parts)) => system.push_parts(parts)?,
                _ => {}
            },
            "user" => {
                let mut msg = Map::with_capacity(2);
                msg.insert("role".into(), Value::from("user"));
                if let Some(c) = content {
                    msg.insert("content".into(), convert_content(c, url_images));
                }
                out.push(Value::Object(msg));
            }
            "assistant" => {
                let mut assistant = convert_assistant(content, m.remove("tool_calls"), url_images)?;
                prepend_thinking(&mut assistant, history.iter().filter(|t| t.message == index));
                out.push(assistant);
            }
            "tool" => {
                let Some(id) = m.remove("tool_call_id") else {
                    return Err(GatewayError::invalid("A 'tool' message needs a 'tool_call_id'."));
                };
                let mut block = Map::with_capacity(3);
                block.insert("type".into(), Value::from("tool_result"));
                block.insert("tool_use_id".into(), id);
                if let Some(c) = content {
                    block.insert("content".into(), convert_content(c, url_images));
                }
                out.push(json!({"role": "user", "content": [Value::Object(block)]}));
            }
            other => log::debug!("anthropic: dropping a message with role '{other}'"),
        }
    }
    Ok((system.into_value(), out))
}

/// An assistant message; with tool calls its content becomes a list of blocks: its text first
/// (MLflow drops it; aigw keeps it), then one `tool_use` block per call.
fn convert_assistant(
    content: Option<Value>,
    tool_calls: Option<Value>,
    url_images: bool,
) -> Result<Value, GatewayError> {
    let mut msg = Map::with_capacity(2);
    msg.insert("role".into(), Value::from("assistant"));
    let calls = match tool_calls {
        Some(Value::Array(calls)) if !calls.is_empty() => calls,
        _ => {
            if let Some(c) = content {
                msg.insert("content".into(), convert_content(c, url_images));
            }
            return Ok(Value::Object(msg));
        }
    };
    let mut blocks = Vec::with_capacity(calls.len() + 1);
    match content.map(|c| convert_content(c, url_images)) {
        Some(Value::String(s)) if !s.is_empty() => blocks.push(json!({"type": "text", "text": s})),
        Some(Value::Array(parts)) => blocks.extend(parts),
        _ => {}
    }
    for call in calls {
        let id = call.get("id").cloned().unwrap_or(Value::Null);
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).cloned().unwrap_or_else(|| Value::from(""));
        let arguments = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("");
        let input = if arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str::<Value>(arguments).map_err(|e| {
                GatewayError::invalid(format!(
                    "The arguments of tool call {} are not valid JSON: {e}",
                    id.as_str().map_or_else(|| id.to_string(), |s| format!("'{s}'"))
                ))
            })?
        };
        blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    msg.insert("content".into(), Value::Array(blocks));
    Ok(Value::Object(msg))
}

/// Put signed thinking blocks before an assistant message's content (a text content becomes a
/// text block after them).
fn prepend_thinking<'a>(message: &mut Value, thinking: impl Iterator<Item = &'a SignedThinking>) {
    let mut blocks: Vec<Value> =
        thinking.map(|t| json!({"type": "thinking", "thinking": t.thinking, "signature": t.signature})).collect();
    if blocks.is_empty() {
        return;
    }
    let Value::Object(m) = message else { return };
    match m.remove("content") {
        Some(Value::Array(parts)) => blocks.extend(parts),
        Some(Value::String(s)) if !s.is_empty() => blocks.push(json!({"type": "text", "text": s})),
        _ => {}
    }
    m.insert("content".into(), Value::Array(blocks));
}

/// Message content: strings unchanged; in lists, `image_url` parts become image blocks and
/// every other part is passed as it is.
fn convert_content(content: Value, url_images: bool) -> Value {
    match content {
        Value::Array(parts) => Value::Array(parts.into_iter().map(|p| convert_part(p, url_images)).collect()),
        other => other,
    }
}

fn convert_part(part: Value, url_images: bool) -> Value {
    if part.get("type").and_then(Value::as_str) != Some("image_url") {
        return part;
    }
    let url = part.get("image_url").and_then(|i| i.get("url")).and_then(Value::as_str).unwrap_or("");
    let mut block = if let Some((media_type, data)) = super::super::parse_data_url(url) {
        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    } else if url_images && (url.starts_with("https://") || url.starts_with("http://")) {
        json!({"type": "image", "source": {"type": "url", "url": url}})
    } else {
        json!({"type": "text", "text": format!("[unsupported image reference: {url}]")})
    };
    if let (Some(cache), Value::Object(b)) = (part.get("cache_control"), &mut block) {
        b.insert("cache_control".into(), cache.clone());
    }
    block
}

/// OpenAI function tools → Anthropic tools, the parameter schema forwarded whole
/// (docs/mlflow-compat.md#fix-6) with `type` and `properties` filled in when missing
/// ([`object_schema`]; Anthropic requires an object schema). A tool without `description` or
/// `parameters` still works.
fn convert_tools(tools: Value) -> Result<Value, GatewayError> {
    let Value::Array(tools) = tools else { return Ok(tools) };
    let mut out = Vec::with_capacity(tools.len());
    for tool in tools {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("function");
        if kind != "function" {
            return Err(GatewayError::invalid(format!(
                "Only function tools are supported by the Anthropic provider; got a tool of type '{kind}'."
            )));
        }
        let Value::Object(mut tool) = tool else { continue };
        let Some(Value::Object(mut f)) = tool.remove("function") else { continue };
        let mut t = Map::with_capacity(4);
        t.insert("name".into(), f.remove("name").unwrap_or_else(|| Value::from("")));
        if let Some(d) = f.remove("description").filter(|d| !d.is_null()) {
            t.insert("description".into(), d);
        }
        t.insert("input_schema".into(), object_schema(f.remove("parameters")));
        if let Some(cache) = tool.remove("cache_control") {
            t.insert("cache_control".into(), cache);
        }
        out.push(Value::Object(t));
    }
    Ok(Value::Array(out))
}

fn convert_tool_choice(choice: Value) -> Value {
    match &choice {
        Value::String(s) => match s.as_str() {
            "none" => json!({"type": "none"}),
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            _ => choice,
        },
        Value::Object(o) => match o.get("function").and_then(|f| f.get("name")) {
            Some(name) => json!({"type": "tool", "name": name}),
            None => choice,
        },
        _ => choice,
    }
}

/// OpenAI's `parallel_tool_calls: false` is Anthropic's `tool_choice.disable_parallel_tool_use`
/// (Anthropic rejects the OpenAI field).
fn apply_parallel_tool_calls(body: &mut Map<String, Value>, parallel: Value) {
    if parallel != Value::Bool(false) || !body.contains_key("tools") {
        return;
    }
    let choice = body.entry("tool_choice").or_insert_with(|| json!({"type": "auto"}));
    if let Value::Object(c) = choice
        && c.get("type").and_then(Value::as_str) != Some("none")
    {
        c.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
}

/// `json_schema` → `output_config.format` (the schema with `additionalProperties: false` on
/// every object; skipped, as MLflow does, when an object has no `properties`); `json_object`
/// → an instruction appended to `system`.
fn apply_response_format(body: &mut Map<String, Value>, format: &Value) {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let Some(mut schema) = format.get("json_schema").and_then(|j| j.get("schema")).cloned() else {
                return;
            };
            if !close_objects(&mut schema) {
                log::debug!("anthropic: structured output skipped: the schema has an object without properties");
                return;
            }
            let output = body.entry("output_config").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = output {
                o.insert("format".into(), json!({"type": "json_schema", "schema": schema}));
            }
        }
        Some("json_object") => match body.get_mut("system") {
            Some(Value::String(s)) => {
                s.push('\n');
                s.push_str(JSON_OBJECT_INSTRUCTION);
            }
            Some(Value::Array(blocks)) => blocks.push(json!({"type": "text", "text": JSON_OBJECT_INSTRUCTION})),
            _ => {
                body.insert("system".into(), Value::from(JSON_OBJECT_INSTRUCTION));
            }
        },
        _ => {}
    }
}

/// Set `additionalProperties: false` on every object schema that has `properties`; false when
/// some object schema has none (Anthropic's structured output cannot express it).
fn close_objects(schema: &mut Value) -> bool {
    let Value::Object(node) = schema else { return true };
    let is_object = match node.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "object"),
        _ => node.contains_key("properties"),
    };
    if is_object {
        if !node.get("properties").is_some_and(Value::is_object) {
            return false;
        }
        node.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "$defs", "definitions", "patternProperties"] {
        if let Some(Value::Object(children)) = node.get_mut(key)
            && !children.values_mut().all(close_objects)
        {
            return false;
        }
    }
    for key in ["items", "prefixItems", "anyOf", "oneOf", "allOf", "not", "if", "then", "else"] {
        let ok = match node.get_mut(key) {
            Some(Value::Array(children)) => children.iter_mut().all(close_objects),
            Some(child @ Value::Object(_)) => close_objects(child),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse_request;

    fn body(endpoint_type: EndpointType, json: Value) -> Result<Value, GatewayError> {
        let req = parse_request(endpoint_type, json.to_string().as_bytes()).unwrap();
        messages_body(req, &BodyOptions { model: Some("claude"), url_images: true }).map(Value::Object)
    }

    fn chat(json: Value) -> Value {
        body(EndpointType::Chat, json).unwrap()
    }

    fn chat_err(json: Value) -> GatewayError {
        body(EndpointType::Chat, json).unwrap_err()
    }

    fn with_extensions(json: Value, ext: Extensions) -> Result<Value, GatewayError> {
        let mut req = parse_request(EndpointType::Chat, json.to_string().as_bytes()).unwrap();
        req.extensions = ext;
        messages_body(req, &BodyOptions { model: Some("claude"), url_images: true }).map(Value::Object)
    }

    fn effort(effort: &str, max_tokens: Option<u64>) -> Result<Value, GatewayError> {
        let mut json = json!({"messages": [{"role": "user", "content": "hi"}]});
        if let Some(m) = max_tokens {
            json["max_tokens"] = json!(m);
        }
        with_extensions(json, Extensions { reasoning_effort: Some(effort.into()), ..Extensions::default() })
    }

    #[test]
    fn top_k_and_thinking_extensions_as_sent() {
        let ext = Extensions {
            top_k: Some(5),
            thinking: Some(json!({"type": "enabled", "budget_tokens": 2048})),
            reasoning_effort: Some("high".into()),
            ..Extensions::default()
        };
        let b =
            with_extensions(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096}), ext).unwrap();
        assert_eq!(b["top_k"], json!(5));
        assert_eq!(b["thinking"], json!({"type": "enabled", "budget_tokens": 2048}), "thinking wins over an effort");
        assert_eq!(b["max_tokens"], json!(4096));
        let ext = Extensions { thinking: Some(json!({"type": "adaptive"})), ..Extensions::default() };
        let b =
            with_extensions(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9}), ext).unwrap();
        assert_eq!(b["thinking"], json!({"type": "adaptive"}));
    }

    #[test]
    fn signed_thinking_goes_back_first_in_its_assistant_turn() {
        use crate::schema::SignedThinking;
        let history = vec![
            SignedThinking { message: 2, thinking: "Use the tool.".into(), signature: "sig".into() },
            SignedThinking { message: 4, thinking: "Answer.".into(), signature: "sig2".into() },
        ];
        let json = json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "Sunny"},
            {"role": "assistant", "content": "Sunny."},
            {"role": "user", "content": "Thanks"}
        ]});
        let b = with_extensions(json, Extensions { thinking_history: history, ..Extensions::default() }).unwrap();
        assert_eq!(
            b["messages"][1]["content"],
            json!([{"type": "thinking", "thinking": "Use the tool.", "signature": "sig"},
                   {"type": "text", "text": "Checking."},
                   {"type": "tool_use", "id": "t1", "name": "w", "input": {}}])
        );
        assert_eq!(
            b["messages"][3]["content"],
            json!([{"type": "thinking", "thinking": "Answer.", "signature": "sig2"}, {"type": "text", "text": "Sunny."}])
        );
        assert_eq!(b["messages"][4]["content"], json!("Thanks"));
    }

    #[test]
    fn reasoning_effort_is_a_thinking_budget() {
        let thinking = |budget: u64| json!({"type": "enabled", "budget_tokens": budget});
        for (value, budget) in [("minimal", 1024), ("low", 1024), ("medium", 8192), ("high", 24576)] {
            let b = effort(value, None).unwrap();
            assert_eq!(b["thinking"], thinking(budget), "{value}");
            assert_eq!(b["max_tokens"], json!(budget + DEFAULT_MAX_TOKENS), "room for the answer: {value}");
        }
        // An explicit max_tokens above the budget stays; one below lowers the budget.
        let b = effort("medium", Some(10_000)).unwrap();
        assert_eq!((&b["thinking"], &b["max_tokens"]), (&thinking(8192), &json!(10_000)));
        let b = effort("high", Some(4000)).unwrap();
        assert_eq!((&b["thinking"], &b["max_tokens"]), (&thinking(3999), &json!(4000)));
        let e = effort("low", Some(1024)).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning.effort")));
        // `none` is no thinking; an unknown effort is a 400 naming the field.
        let b = effort("none", None).unwrap();
        assert!(b.get("thinking").is_none());
        assert_eq!(b["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        let e = effort("xhigh", None).unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning.effort")));
    }

    #[test]
    fn system_messages_are_joined() {
        let b = chat(json!({"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "system", "content": "Be kind."},
            {"role": "developer", "content": "Use English."},
        ], "temperature": 1}));
        assert_eq!(b["system"], json!("Be brief.\nBe kind.\nUse English."));
        assert_eq!(b["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(b["temperature"], json!(0.5));
        assert_eq!(b["max_tokens"], json!(8192));
        assert_eq!(b["model"], json!("claude"));
        assert!(b.get("n").is_none());
    }

    #[test]
    fn system_parts_become_blocks() {
        let b = chat(json!({"messages": [
            {"role": "system", "content": "A"},
            {"role": "system", "content": [{"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": "Hi"},
        ], "response_format": {"type": "json_object"}}));
        assert_eq!(
            b["system"],
            json!([
                {"type": "text", "text": "A"},
                {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": JSON_OBJECT_INSTRUCTION},
            ])
        );
    }

    #[test]
    fn parameter_rules() {
        let e = chat_err(json!({"messages": [{"role": "user", "content": "x"}], "temperature": 1, "top_p": 0.5}));
        assert_eq!((e.status, e.message()), (422, "Cannot set both 'temperature' and 'top_p' parameters.".into()));
        let e = chat_err(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1_000_001}));
        assert_eq!(e.message(), "Invalid value for max_tokens: cannot exceed 1000000.");
        let e = chat_err(json!({"messages": [{"role": "user", "content": "x"}], "n": 3}));
        assert_eq!(
            (e.status, e.message()),
            (422, "'n' must be '1' for the Anthropic provider. Received value: '3'.".into())
        );
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 77,
                            "stop": ["END"], "top_p": 0.3, "top_k": 5, "metadata": {"user_id": "u"}}));
        assert_eq!(b["max_tokens"], json!(77));
        assert!(b.get("max_completion_tokens").is_none());
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert!(b.get("stop").is_none());
        assert_eq!((b["top_p"].clone(), b["top_k"].clone()), (json!(0.3), json!(5)));
        assert_eq!(b["metadata"], json!({"user_id": "u"}));
        let b =
            chat(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 9}));
        assert_eq!(b["max_tokens"], json!(5));
    }

    #[test]
    fn stream_flag_and_options() {
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "stream": true,
                            "stream_options": {"include_usage": true}}));
        assert_eq!(b["stream"], json!(true));
        assert!(b.get("stream_options").is_none());
    }

    #[test]
    fn images() {
        let b = chat(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}},
        ]}]}));
        assert_eq!(
            b["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "[unsupported image reference: gs://bucket/cat.jpg]"},
            ])
        );
        // Without URL sources (MLflow's behaviour, for hosts that do not fetch URLs).
        let req = parse_request(
            EndpointType::Chat,
            br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}"#,
        )
        .unwrap();
        let b = messages_body(req, &BodyOptions { model: None, url_images: false }).unwrap();
        assert_eq!(
            b["messages"][0]["content"],
            json!([{"type": "text", "text": "[unsupported image reference: https://x/y.png]"}])
        );
        assert!(!b.contains_key("model"));
    }

    #[test]
    fn tool_calls_and_results() {
        let b = chat(json!({"messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "21C"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "function", "content": "dropped"},
        ]}));
        assert_eq!(
            b["messages"],
            json!([
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "t2", "name": "get_time", "input": {}},
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "21C"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "noon"}]}]},
            ])
        );
        let e = chat_err(json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]}));
        assert_eq!(e.status, 422);
        assert!(e.message().contains("'t1'"), "{}", e.message());
        let e = chat_err(json!({"messages": [{"role": "tool", "content": "x"}]}));
        assert_eq!(e.status, 422);
    }

    #[test]
    fn tools_forward_the_whole_schema() {
        let params = json!({"type": "object", "properties": {"loc": {"type": "object",
            "properties": {"city": {"type": "string", "minLength": 1}}, "required": ["city"]}},
            "required": ["loc"], "additionalProperties": false});
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": params, "strict": true}},
            {"type": "function", "function": {"name": "g"}},
            {"type": "function", "function": {"name": "h", "parameters": {}}},
            {"type": "function", "function": {"name": "i", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "j", "parameters": {"required": [], "additionalProperties": false}}},
        ]}));
        // Anthropic needs an object schema: `type` and `properties` are filled in (MLflow 3.17
        // refused the last three with a 422; 3.18 sends them the same way).
        assert_eq!(
            b["tools"],
            json!([
                {"name": "f", "description": "d", "input_schema": params},
                {"name": "g", "input_schema": {"type": "object", "properties": {}}},
                {"name": "h", "input_schema": {"type": "object", "properties": {}}},
                {"name": "i", "input_schema": {"type": "object", "properties": {}}},
                {"name": "j", "input_schema": {"required": [], "additionalProperties": false, "type": "object",
                    "properties": {}}},
            ])
        );
        let e = chat_err(json!({"messages": [{"role": "user", "content": "x"}],
                                "tools": [{"type": "uc_function", "uc_function": {"name": "a.b.c"}}]}));
        assert_eq!(e.status, 422);
    }

    #[test]
    fn tool_choice_mapping() {
        let base = || {
            json!({"messages": [{"role": "user", "content": "x"}],
                             "tools": [{"type": "function", "function": {"name": "f"}}]})
        };
        for (choice, want) in [
            (json!("none"), json!({"type": "none"})),
            (json!("auto"), json!({"type": "auto"})),
            (json!("required"), json!({"type": "any"})),
            (json!({"type": "function", "function": {"name": "f"}}), json!({"type": "tool", "name": "f"})),
        ] {
            let mut req = base();
            req["tool_choice"] = choice;
            assert_eq!(chat(req)["tool_choice"], want);
        }
        let mut req = base();
        req["parallel_tool_calls"] = json!(false);
        let b = chat(req);
        assert_eq!(b["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
        assert!(b.get("parallel_tool_calls").is_none());
        let mut req = base();
        req["parallel_tool_calls"] = json!(true);
        req["tool_choice"] = json!("required");
        let b = chat(req);
        assert_eq!(b["tool_choice"], json!({"type": "any"}));
    }

    #[test]
    fn response_format_json_schema() {
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "c": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "integer"}}}},
        }}}}}));
        assert_eq!(
            b["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object", "additionalProperties": false,
            "properties": {
                "a": {"type": "object", "properties": {"b": {"type": "string"}}, "additionalProperties": false},
                "c": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "integer"}},
                      "additionalProperties": false}},
            }}}})
        );
        assert!(b.get("response_format").is_none());
        assert!(b.get("system").is_none());
        // An object without properties: structured output is skipped (as MLflow does).
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {
            "type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object", "properties": {
                "free": {"type": "object"}}}}}}));
        assert!(b.get("output_config").is_none());
        assert!(b.get("response_format").is_none());
    }

    #[test]
    fn response_format_json_object() {
        let b =
            chat(json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
                            "response_format": {"type": "json_object"}}));
        assert_eq!(b["system"], json!(format!("Be brief.\n{JSON_OBJECT_INSTRUCTION}")));
        let b =
            chat(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}));
        assert_eq!(b["system"], json!(JSON_OBJECT_INSTRUCTION));
        let b = chat(json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}}));
        assert!(b.get("system").is_none() && b.get("response_format").is_none());
    }

    #[test]
    fn completions_prompt_is_one_user_message() {
        let b = body(
            EndpointType::Completions,
            json!({"prompt": "How does a car work?", "max_tokens": 200, "stop": ["x"], "temperature": 1.0, "stream": true}),
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"stream": true, "max_tokens": 200, "stop_sequences": ["x"], "temperature": 0.5,
                   "messages": [{"role": "user", "content": "How does a car work?"}], "model": "claude"})
        );
        let e = body(EndpointType::Completions, json!({"prompt": "x", "n": 2})).unwrap_err();
        assert_eq!(e.status, 422);
    }
}
