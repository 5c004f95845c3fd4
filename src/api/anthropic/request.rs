//! A Messages API request body → MLflow's unified chat request (docs/client-apis.md#messages-requests).
//!
//! The body is checked the way Anthropic checks it (required fields, types, no unknown
//! top-level fields); a problem is a 400 whose message and `param` name its path
//! (`messages.2.content.0.source.type`). The unified request is then built and validated with
//! MLflow's rules (`schema::request_from_value`).

use std::fmt;

use serde_json::{Map, Value};

use crate::api::{Parsed, call_id, message, text_part};
use crate::error::GatewayError;
use crate::schema::{self, EndpointType, Extensions, SignedThinking};

/// Top-level fields only Anthropic's own API serves (`context_management` see
/// [`only_clears_thinking`]). `speed` and `diagnostics` are newer (anthropic SDK 2.x sends them).
const NATIVE_FIELDS: &[&str] =
    &["service_tier", "container", "mcp_servers", "context_management", "inference_geo", "speed", "diagnostics"];

/// Content blocks only Anthropic's own API serves (documents, search results, and the blocks
/// of server tools, MCP and containers).
const NATIVE_BLOCKS: &[&str] = &[
    "document",
    "search_result",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "container_upload",
    "mcp_tool_use",
    "mcp_tool_result",
];

/// Anthropic's server and built-in client tools (`{"type": "web_search_20250305", …}`), by
/// the prefix of their versioned type, and the name a refusal gives them.
const SERVER_TOOLS: &[(&str, &str)] = &[
    ("web_search_", "web_search"),
    ("web_fetch_", "web_fetch"),
    ("code_execution_", "code_execution"),
    ("bash_", "bash"),
    ("text_editor_", "text_editor"),
    ("computer_", "computer"),
    ("memory_", "memory"),
    ("tool_search_tool_", "tool_search"),
    ("browser_", "browser"),
    ("mcp_toolset", "mcp_toolset"),
];

/// Parse a Messages request body (docs/client-apis.md#messages-requests).
///
/// `Parsed::native` is the body as sent; `Parsed::native_only` names the first feature that
/// only a provider speaking the Messages API can serve (a top-level field such as
/// `service_tier`, a content block type such as `document`, an image `file` source, a server
/// tool such as `web_search`, or an `output_config.effort` other than the default `high`); the
/// unified request leaves it out.
pub fn parse(body: &[u8]) -> Result<Parsed, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(native) = value else {
        return Err(GatewayError::bad_request("The request body must be a JSON object."));
    };
    let mut t = Translation::default();
    let unified = t.request(&native)?;
    let model = match native.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(invalid(&Loc::Key(&Loc::Root, "model"), "Field required")),
    };
    let mut request =
        schema::request_from_value(EndpointType::Chat, Value::Object(unified)).map_err(GatewayError::validation)?;
    request.extensions = t.extensions;
    Ok(Parsed { model, request, native, native_only: t.native_only, unknown: None, echo: Map::new() })
}

/// A path in the request body, rendered only for an error: `messages.2.content.0`.
#[derive(Clone, Copy)]
enum Loc<'a> {
    Root,
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parent, segment): (&Loc<'_>, &dyn fmt::Display) = match self {
            Loc::Root => return Ok(()),
            Loc::Key(p, k) => (p, k),
            Loc::Index(p, i) => (p, i),
        };
        if matches!(parent, Loc::Root) { segment.fmt(f) } else { write!(f, "{parent}.{segment}") }
    }
}

/// A 400 naming `loc` in its message and `param`, as Anthropic words them.
fn invalid(loc: &Loc<'_>, message: impl fmt::Display) -> GatewayError {
    let path = loc.to_string();
    GatewayError::bad_request(format!("{path}: {message}")).with_param(path)
}

fn required<'v>(obj: &'v Map<String, Value>, key: &'static str, loc: &Loc<'_>) -> Result<&'v Value, GatewayError> {
    match obj.get(key) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(invalid(&Loc::Key(loc, key), "Field required")),
    }
}

fn string<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v str, GatewayError> {
    value.as_str().ok_or_else(|| invalid(loc, "Input should be a valid string"))
}

fn object<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v Map<String, Value>, GatewayError> {
    value.as_object().ok_or_else(|| invalid(loc, "Input should be a valid dictionary"))
}

fn list<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v [Value], GatewayError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| invalid(loc, "Input should be a valid list"))
}

/// A number within `[0, max]`.
fn unit_number(value: &Value, loc: &Loc<'_>, max: f64) -> Result<Value, GatewayError> {
    match value.as_f64() {
        None => Err(invalid(loc, "Input should be a valid number")),
        Some(f) if f < 0.0 => Err(invalid(loc, "Input should be greater than or equal to 0")),
        Some(f) if f > max => Err(invalid(loc, format!("Input should be less than or equal to {max}"))),
        Some(_) => Ok(value.clone()),
    }
}

/// An integer of at least `min`.
fn integer(value: &Value, loc: &Loc<'_>, min: u64) -> Result<u64, GatewayError> {
    match value {
        Value::Number(n) if n.is_u64() || n.is_i64() => match n.as_u64() {
            Some(i) if i >= min => Ok(i),
            _ => Err(invalid(loc, format!("Input should be greater than or equal to {min}"))),
        },
        _ => Err(invalid(loc, "Input should be a valid integer")),
    }
}

/// Content parts as unified content: one text part is a plain string; none is no content.
fn content(mut parts: Vec<Value>) -> Option<Value> {
    if parts.len() == 1
        && parts[0].get("type").and_then(Value::as_str) == Some("text")
        && let Some(Value::String(text)) = parts[0].as_object_mut().and_then(|p| p.remove("text"))
    {
        return Some(Value::String(text));
    }
    (!parts.is_empty()).then_some(Value::Array(parts))
}

/// What the translation gathers beside the unified body.
#[derive(Default)]
struct Translation {
    extensions: Extensions,
    native_only: Option<&'static str>,
}

impl Translation {
    /// Note a feature only Anthropic's own API serves (the first one is reported).
    fn native(&mut self, feature: &'static str) {
        self.native_only.get_or_insert(feature);
    }

    /// The unified request body for the Messages body `native`.
    fn request(&mut self, native: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
        let root = Loc::Root;
        for (key, value) in native {
            match key.as_str() {
                "model" | "max_tokens" | "messages" | "system" | "metadata" | "stop_sequences" | "stream"
                | "temperature" | "top_p" | "top_k" | "tools" | "tool_choice" | "thinking" | "output_config"
                // A prompt-caching hint, like `cache_control` on blocks: nothing to translate.
                | "cache_control" => {}
                "context_management" if only_clears_thinking(value) => {}
                other => match NATIVE_FIELDS.iter().find(|f| **f == other) {
                    Some(field) => {
                        if !value.is_null() {
                            self.native(field);
                        }
                    }
                    None => return Err(invalid(&Loc::Key(&root, other), "Extra inputs are not permitted")),
                },
            }
        }
        string(required(native, "model", &root)?, &Loc::Key(&root, "model"))?;
        let max_tokens = integer(required(native, "max_tokens", &root)?, &Loc::Key(&root, "max_tokens"), 1)?;

        let mut body = Map::with_capacity(12);
        let mut messages = Vec::new();
        if let Some(system) = native.get("system").filter(|v| !v.is_null()) {
            let text = self.system(system, &Loc::Key(&root, "system"))?;
            if !text.is_empty() {
                messages.push(Value::Object(message("system", Some(Value::String(text)))));
            }
        }
        let mloc = Loc::Key(&root, "messages");
        let turns = list(required(native, "messages", &root)?, &mloc)?;
        if turns.is_empty() {
            return Err(invalid(&mloc, "List should have at least 1 item"));
        }
        messages.reserve(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            self.turn(turn, &Loc::Index(&mloc, i), &mut messages)?;
        }
        body.insert("messages".into(), Value::Array(messages));
        body.insert("max_tokens".into(), Value::from(max_tokens));

        let field = |key: &'static str| native.get(key).filter(|v| !v.is_null()).map(|v| (v, Loc::Key(&root, key)));
        if let Some((v, loc)) = field("stream") {
            let stream = v.as_bool().ok_or_else(|| invalid(&loc, "Input should be a valid boolean"))?;
            body.insert("stream".into(), Value::Bool(stream));
        }
        if let Some((v, loc)) = field("temperature") {
            body.insert("temperature".into(), unit_number(v, &loc, 1.0)?);
        }
        if let Some((v, loc)) = field("top_p") {
            body.insert("top_p".into(), unit_number(v, &loc, 1.0)?);
        }
        if let Some((v, loc)) = field("top_k") {
            self.extensions.top_k = Some(integer(v, &loc, 0)?);
        }
        if let Some((v, loc)) = field("stop_sequences") {
            let items = list(v, &loc)?;
            let mut stop = Vec::with_capacity(items.len());
            for (i, s) in items.iter().enumerate() {
                stop.push(Value::from(string(s, &Loc::Index(&loc, i))?));
            }
            if !stop.is_empty() {
                body.insert("stop".into(), Value::Array(stop));
            }
        }
        if let Some((v, loc)) = field("metadata") {
            for (key, value) in object(v, &loc)? {
                match key.as_str() {
                    "user_id" if value.is_null() => {}
                    "user_id" => {
                        let user = string(value, &Loc::Key(&loc, "user_id"))?;
                        body.insert("user".into(), Value::from(user));
                    }
                    other => return Err(invalid(&Loc::Key(&loc, other), "Extra inputs are not permitted")),
                }
            }
        }
        if let Some((v, loc)) = field("thinking") {
            self.thinking(v, &loc)?;
        }
        if let Some((v, loc)) = field("output_config") {
            self.output_config(v, &loc, &mut body)?;
        }
        let mut has_tools = false;
        if let Some((v, loc)) = field("tools") {
            let tools = self.tools(v, &loc)?;
            has_tools = !tools.is_empty();
            if has_tools {
                body.insert("tools".into(), Value::Array(tools));
            }
        }
        if let Some((v, loc)) = field("tool_choice") {
            let (choice, parallel) = tool_choice(v, &loc)?;
            // OpenAI refuses `tool_choice` and `parallel_tool_calls` without tools.
            if has_tools {
                body.insert("tool_choice".into(), choice);
                if !parallel {
                    body.insert("parallel_tool_calls".into(), Value::Bool(false));
                }
            }
        }
        Ok(body)
    }

    /// `system`: a string, or text blocks joined with `\n`.
    fn system(&mut self, value: &Value, loc: &Loc<'_>) -> Result<String, GatewayError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Array(blocks) => {
                let mut text = String::new();
                for (i, block) in blocks.iter().enumerate() {
                    let bloc = Loc::Index(loc, i);
                    let b = object(block, &bloc)?;
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => {}
                        Some(_) => return Err(invalid(&Loc::Key(&bloc, "type"), "Input should be 'text'")),
                        None => return Err(invalid(&Loc::Key(&bloc, "type"), "Field required")),
                    }
                    if i > 0 {
                        text.push('\n');
                    }
                    text.push_str(string(required(b, "text", &bloc)?, &Loc::Key(&bloc, "text"))?);
                }
                Ok(text)
            }
            _ => Err(invalid(loc, "Input should be a valid string or a list of text blocks")),
        }
    }

    /// One Messages turn → unified messages appended to `out`.
    fn turn(&mut self, turn: &Value, loc: &Loc<'_>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
        let m = object(turn, loc)?;
        let role_loc = Loc::Key(loc, "role");
        let role = match string(required(m, "role", loc)?, &role_loc)? {
            "user" => "user",
            "assistant" => "assistant",
            _ => return Err(invalid(&role_loc, "Input should be 'user' or 'assistant'")),
        };
        let cloc = Loc::Key(loc, "content");
        match required(m, "content", loc)? {
            Value::String(s) => out.push(Value::Object(message(role, Some(Value::from(s.as_str()))))),
            Value::Array(blocks) if role == "user" => self.user(blocks, &cloc, out)?,
            Value::Array(blocks) => self.assistant(blocks, &cloc, out)?,
            _ => return Err(invalid(&cloc, "Input should be a valid string or a list of content blocks")),
        }
        Ok(())
    }

    /// A user turn's blocks: its tool results become `tool` messages first (OpenAI wants them
    /// right after the assistant's tool calls), then one user message with the other parts in
    /// their order, images of tool results included at their place.
    fn user(&mut self, blocks: &[Value], loc: &Loc<'_>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
        let mut parts = Vec::with_capacity(blocks.len());
        let mut tools = 0;
        for (j, block) in blocks.iter().enumerate() {
            let bloc = Loc::Index(loc, j);
            let (b, kind) = block_kind(block, &bloc)?;
            match kind {
                "text" => parts.push(self.text(b, &bloc)?),
                "image" => {
                    if let Some(part) = self.image(b, &bloc)? {
                        parts.push(part);
                    }
                }
                "tool_result" => {
                    let message = self.tool_result(b, &bloc, &mut parts)?;
                    out.push(Value::Object(message));
                    tools += 1;
                }
                "tool_use" | "thinking" | "redacted_thinking" => {
                    return Err(invalid(
                        &Loc::Key(&bloc, "type"),
                        format!("'{kind}' blocks are only allowed in assistant messages"),
                    ));
                }
                other => self.other_block(other, &bloc)?,
            }
        }
        if tools == 0 || !parts.is_empty() {
            out.push(Value::Object(message("user", Some(content(parts).unwrap_or(Value::Array(Vec::new()))))));
        }
        Ok(())
    }

    /// An assistant turn's blocks: text (and images) as content, `tool_use` as tool calls;
    /// thinking is left out of the message, but signed `thinking` blocks are kept beside it
    /// (`thinking_history`, for Claude's translations; see docs/client-apis.md). A turn left with
    /// nothing is dropped.
    fn assistant(&mut self, blocks: &[Value], loc: &Loc<'_>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
        let mut parts = Vec::with_capacity(blocks.len());
        let mut calls = Vec::new();
        let mut thinking = Vec::new();
        for (j, block) in blocks.iter().enumerate() {
            let bloc = Loc::Index(loc, j);
            let (b, kind) = block_kind(block, &bloc)?;
            match kind {
                "text" => parts.push(self.text(b, &bloc)?),
                "image" => {
                    if let Some(part) = self.image(b, &bloc)? {
                        parts.push(part);
                    }
                }
                "tool_use" => calls.push(tool_call(b, &bloc)?),
                // The model's own reasoning: meaningless to another model (see the module doc),
                // but Claude wants its signed thinking back.
                "thinking" => {
                    if let (Some(Value::String(text)), Some(Value::String(signature))) =
                        (b.get("thinking"), b.get("signature"))
                        && !signature.is_empty()
                    {
                        thinking.push((text.clone(), signature.clone()));
                    }
                }
                "redacted_thinking" => {}
                "tool_result" => {
                    return Err(invalid(
                        &Loc::Key(&bloc, "type"),
                        "'tool_result' blocks are only allowed in user messages",
                    ));
                }
                other => self.other_block(other, &bloc)?,
            }
        }
        if parts.is_empty() && calls.is_empty() {
            return Ok(());
        }
        let mut m = message("assistant", content(parts));
        if !calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        let index = out.len();
        self.extensions.thinking_history.extend(thinking.into_iter().map(|(thinking, signature)| SignedThinking {
            message: index,
            thinking,
            signature,
        }));
        out.push(Value::Object(m));
        Ok(())
    }

    /// A block that is neither text, image, tool use or result, nor thinking.
    fn other_block(&mut self, kind: &str, loc: &Loc<'_>) -> Result<(), GatewayError> {
        match NATIVE_BLOCKS.iter().find(|k| **k == kind) {
            Some(k) => {
                self.native(k);
                Ok(())
            }
            None => Err(invalid(&Loc::Key(loc, "type"), format!("Unknown content block type '{kind}'"))),
        }
    }

    fn text(&mut self, b: &Map<String, Value>, loc: &Loc<'_>) -> Result<Value, GatewayError> {
        // `cache_control` and `citations` are hints and attributions: nothing to translate.
        Ok(text_part(string(required(b, "text", loc)?, &Loc::Key(loc, "text"))?))
    }

    /// An image block → an `image_url` part (none for a `file` source, which only Anthropic
    /// can resolve).
    fn image(&mut self, b: &Map<String, Value>, loc: &Loc<'_>) -> Result<Option<Value>, GatewayError> {
        let sloc = Loc::Key(loc, "source");
        let source = object(required(b, "source", loc)?, &sloc)?;
        let tloc = Loc::Key(&sloc, "type");
        let url = match string(required(source, "type", &sloc)?, &tloc)? {
            "base64" => {
                let media_type = string(required(source, "media_type", &sloc)?, &Loc::Key(&sloc, "media_type"))?;
                let data = string(required(source, "data", &sloc)?, &Loc::Key(&sloc, "data"))?;
                let mut url = String::with_capacity(media_type.len() + data.len() + 13);
                url.push_str("data:");
                url.push_str(media_type);
                url.push_str(";base64,");
                url.push_str(data);
                url
            }
            "url" => string(required(source, "url", &sloc)?, &Loc::Key(&sloc, "url"))?.to_owned(),
            "file" => {
                self.native("file");
                return Ok(None);
            }
            _ => return Err(invalid(&tloc, "Input should be 'base64', 'url' or 'file'")),
        };
        let mut image_url = Map::with_capacity(1);
        image_url.insert("url".into(), Value::String(url));
        let mut part = Map::with_capacity(2);
        part.insert("type".into(), Value::from("image_url"));
        part.insert("image_url".into(), Value::Object(image_url));
        Ok(Some(Value::Object(part)))
    }

    /// A `tool_result` block → a `tool` message; its images go to `images` (the user message
    /// after the tool messages: OpenAI's tool messages carry only text). `is_error: true`
    /// prefixes the text with `Error: `.
    fn tool_result(
        &mut self,
        b: &Map<String, Value>,
        loc: &Loc<'_>,
        images: &mut Vec<Value>,
    ) -> Result<Map<String, Value>, GatewayError> {
        let id = string(required(b, "tool_use_id", loc)?, &Loc::Key(loc, "tool_use_id"))?;
        let is_error = match b.get("is_error") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(e)) => *e,
            Some(_) => return Err(invalid(&Loc::Key(loc, "is_error"), "Input should be a valid boolean")),
        };
        let mut text = String::new();
        if is_error {
            text.push_str("Error: ");
        }
        let cloc = Loc::Key(loc, "content");
        match b.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => text.push_str(s),
            Some(Value::Array(blocks)) => {
                let mut first = true;
                for (k, block) in blocks.iter().enumerate() {
                    let bloc = Loc::Index(&cloc, k);
                    let (inner, kind) = block_kind(block, &bloc)?;
                    match kind {
                        "text" => {
                            if !first {
                                text.push('\n');
                            }
                            first = false;
                            text.push_str(string(required(inner, "text", &bloc)?, &Loc::Key(&bloc, "text"))?);
                        }
                        "image" => {
                            if let Some(part) = self.image(inner, &bloc)? {
                                images.push(part);
                            }
                        }
                        "document" | "search_result" => self.other_block(kind, &bloc)?,
                        other => {
                            return Err(invalid(
                                &Loc::Key(&bloc, "type"),
                                format!("Unknown tool result content block type '{other}'"),
                            ));
                        }
                    }
                }
            }
            Some(_) => return Err(invalid(&cloc, "Input should be a valid string or a list of content blocks")),
        }
        let mut m = message("tool", None);
        // A Gemini thought signature carried in the id (api::call_id) is the call's, not the id's.
        m.insert("tool_call_id".into(), Value::from(call_id::split(id).0));
        m.insert("content".into(), Value::String(text));
        Ok(m)
    }

    /// `thinking` → the `thinking` extension (`disabled` is no thinking).
    fn thinking(&mut self, value: &Value, loc: &Loc<'_>) -> Result<(), GatewayError> {
        let t = object(value, loc)?;
        let tloc = Loc::Key(loc, "type");
        match string(required(t, "type", loc)?, &tloc)? {
            "enabled" => {
                integer(required(t, "budget_tokens", loc)?, &Loc::Key(loc, "budget_tokens"), 1024)?;
                self.extensions.thinking = Some(value.clone());
            }
            "adaptive" => self.extensions.thinking = Some(value.clone()),
            "disabled" => self.extensions.thinking = None,
            _ => return Err(invalid(&tloc, "Input should be 'enabled', 'disabled' or 'adaptive'")),
        }
        Ok(())
    }

    /// `output_config`: `format` (a JSON schema) → `response_format`; `effort` only Anthropic
    /// serves.
    fn output_config(
        &mut self,
        value: &Value,
        loc: &Loc<'_>,
        body: &mut Map<String, Value>,
    ) -> Result<(), GatewayError> {
        for (key, v) in object(value, loc)? {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            match key.as_str() {
                "effort" => {
                    // `high` is Anthropic's default: sending it is the same as not sending it.
                    if string(v, &kloc)? != "high" {
                        self.native("output_config.effort");
                    }
                }
                "format" => {
                    let f = object(v, &kloc)?;
                    let tloc = Loc::Key(&kloc, "type");
                    if string(required(f, "type", &kloc)?, &tloc)? != "json_schema" {
                        return Err(invalid(&tloc, "Input should be 'json_schema'"));
                    }
                    let sloc = Loc::Key(&kloc, "schema");
                    let schema = object(required(f, "schema", &kloc)?, &sloc)?;
                    let mut json_schema = Map::with_capacity(2);
                    json_schema.insert("name".into(), Value::from("output"));
                    json_schema.insert("schema".into(), Value::Object(schema.clone()));
                    let mut format = Map::with_capacity(2);
                    format.insert("type".into(), Value::from("json_schema"));
                    format.insert("json_schema".into(), Value::Object(json_schema));
                    body.insert("response_format".into(), Value::Object(format));
                }
                other => return Err(invalid(&Loc::Key(loc, other), "Extra inputs are not permitted")),
            }
        }
        Ok(())
    }

    /// `tools` → OpenAI function tools (the input schema whole); server tools only Anthropic
    /// serves are left out and noted.
    fn tools(&mut self, value: &Value, loc: &Loc<'_>) -> Result<Vec<Value>, GatewayError> {
        let items = list(value, loc)?;
        let mut tools = Vec::with_capacity(items.len());
        for (i, tool) in items.iter().enumerate() {
            let tloc = Loc::Index(loc, i);
            let t = object(tool, &tloc)?;
            match t.get("type") {
                None | Some(Value::Null) => {}
                Some(Value::String(kind)) if kind == "custom" => {}
                Some(Value::String(kind)) => match SERVER_TOOLS.iter().find(|(prefix, _)| kind.starts_with(prefix)) {
                    Some((_, name)) => {
                        self.native(name);
                        continue;
                    }
                    None => return Err(invalid(&Loc::Key(&tloc, "type"), format!("Unknown tool type '{kind}'"))),
                },
                Some(_) => return Err(invalid(&Loc::Key(&tloc, "type"), "Input should be a valid string")),
            }
            let name = string(required(t, "name", &tloc)?, &Loc::Key(&tloc, "name"))?;
            let sloc = Loc::Key(&tloc, "input_schema");
            let schema = required(t, "input_schema", &tloc)?;
            object(schema, &sloc)?;
            let mut function = Map::with_capacity(4);
            function.insert("name".into(), Value::from(name));
            if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
                function.insert("description".into(), Value::from(string(d, &Loc::Key(&tloc, "description"))?));
            }
            function.insert("parameters".into(), schema.clone());
            if let Some(strict) = t.get("strict").filter(|s| !s.is_null()) {
                let strict = strict
                    .as_bool()
                    .ok_or_else(|| invalid(&Loc::Key(&tloc, "strict"), "Input should be a valid boolean"))?;
                function.insert("strict".into(), Value::Bool(strict));
            }
            let mut tool = Map::with_capacity(2);
            tool.insert("type".into(), Value::from("function"));
            tool.insert("function".into(), Value::Object(function));
            tools.push(Value::Object(tool));
        }
        Ok(tools)
    }
}

/// Whether `context_management` asks only for thinking of earlier turns to be cleared
/// (`{"edits": [{"type": "clear_thinking_…", …}]}`, which Claude Code sends with thinking on).
/// The translation never sends earlier thinking, so there is nothing left to do; any other edit
/// (clearing old tool results) only Anthropic can apply.
fn only_clears_thinking(value: &Value) -> bool {
    let Some(cm) = value.as_object() else { return false };
    cm.keys().all(|k| k == "edits")
        && cm.get("edits").and_then(Value::as_array).is_some_and(|edits| {
            edits
                .iter()
                .all(|e| e.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("clear_thinking_")))
        })
}

/// A content block's object and `type`.
fn block_kind<'v>(block: &'v Value, loc: &Loc<'_>) -> Result<(&'v Map<String, Value>, &'v str), GatewayError> {
    let b = object(block, loc)?;
    let kind = string(required(b, "type", loc)?, &Loc::Key(loc, "type"))?;
    Ok((b, kind))
}

/// A `tool_use` block → a unified tool call (the input serialised as the arguments string).
fn tool_call(b: &Map<String, Value>, loc: &Loc<'_>) -> Result<Value, GatewayError> {
    let id = string(required(b, "id", loc)?, &Loc::Key(loc, "id"))?;
    let name = string(required(b, "name", loc)?, &Loc::Key(loc, "name"))?;
    let arguments = match b.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input @ Value::Object(_)) => input.to_string(),
        Some(_) => return Err(invalid(&Loc::Key(loc, "input"), "Input should be a valid dictionary")),
    };
    let mut function = Map::with_capacity(2);
    function.insert("name".into(), Value::from(name));
    function.insert("arguments".into(), Value::String(arguments));
    let (id, thought_signature) = call_id::split(id);
    let mut call = Map::with_capacity(4);
    call.insert("id".into(), Value::from(id));
    call.insert("type".into(), Value::from("function"));
    call.insert("function".into(), Value::Object(function));
    if let Some(signature) = thought_signature {
        call.insert("thought_signature".into(), Value::String(signature));
    }
    Ok(Value::Object(call))
}

/// `tool_choice` → the unified choice, and whether parallel tool calls stay allowed.
fn tool_choice(value: &Value, loc: &Loc<'_>) -> Result<(Value, bool), GatewayError> {
    let c = object(value, loc)?;
    let tloc = Loc::Key(loc, "type");
    let choice = match string(required(c, "type", loc)?, &tloc)? {
        "auto" => Value::from("auto"),
        "any" => Value::from("required"),
        "none" => Value::from("none"),
        "tool" => {
            let name = string(required(c, "name", loc)?, &Loc::Key(loc, "name"))?;
            let mut function = Map::with_capacity(1);
            function.insert("name".into(), Value::from(name));
            let mut choice = Map::with_capacity(2);
            choice.insert("type".into(), Value::from("function"));
            choice.insert("function".into(), Value::Object(function));
            Value::Object(choice)
        }
        _ => return Err(invalid(&tloc, "Input should be 'auto', 'any', 'tool' or 'none'")),
    };
    let parallel = match c.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(disable)) => !disable,
        Some(_) => {
            return Err(invalid(&Loc::Key(loc, "disable_parallel_tool_use"), "Input should be a valid boolean"));
        }
    };
    Ok((choice, parallel))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_value(v: Value) -> Result<Parsed, GatewayError> {
        parse(v.to_string().as_bytes())
    }

    fn ok(v: Value) -> Parsed {
        match parse_value(v) {
            Ok(p) => p,
            Err(e) => panic!("refused: {e}"),
        }
    }

    /// The unified messages of a request with `messages`.
    fn unified(messages: Value) -> Value {
        let p = ok(json!({"model": "m", "max_tokens": 10, "messages": messages}));
        p.request.body["messages"].clone()
    }

    /// The error for `body`: its status, message and param.
    fn refused(body: Value) -> (u16, String, Option<String>) {
        match parse_value(body) {
            Ok(p) => panic!("accepted: {:?}", p.request.body),
            Err(e) => (e.status_for(crate::error::Family::Anthropic), e.message(), e.param),
        }
    }

    fn base(extra: Value) -> Value {
        let mut body = json!({"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        body
    }

    #[test]
    fn a_minimal_request() {
        let body = base(json!({}));
        let p = ok(body.clone());
        assert_eq!(p.model, "claude");
        assert_eq!(
            Value::Object(p.request.body.clone()),
            json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100, "n": 1})
        );
        assert_eq!(p.request.endpoint_type, EndpointType::Chat);
        assert_eq!(Value::Object(p.native), body, "native is the body as sent");
        assert_eq!(p.native_only, None);
        assert!(p.echo.is_empty());
        assert_eq!(p.request.extensions, Extensions::default());
        assert!(!p.request.stream());
    }

    #[test]
    fn system_string_and_blocks() {
        let p = ok(base(json!({"system": "Be brief."})));
        assert_eq!(p.request.body["messages"][0], json!({"role": "system", "content": "Be brief."}));
        let p = ok(base(json!({"system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ]})));
        assert_eq!(
            p.request.body["messages"],
            json!([
                {"role": "system", "content": "You are Claude Code.\nBe brief."},
                {"role": "user", "content": "Hi"},
            ])
        );
        let p = ok(base(json!({"system": []})));
        assert_eq!(p.request.body["messages"], json!([{"role": "user", "content": "Hi"}]), "no empty system message");
        let (status, message, param) = refused(base(json!({"system": [{"type": "image"}]})));
        assert_eq!((status, param.as_deref()), (400, Some("system.0.type")), "{message}");
        let (_, message, param) = refused(base(json!({"system": 5})));
        assert_eq!(param.as_deref(), Some("system"), "{message}");
    }

    /// A `tool_use` id carrying a Gemini thought signature (api::call_id) is split into the
    /// unified id and `thought_signature`; its `tool_result` refers to the unified id.
    #[test]
    fn thought_signatures_come_out_of_tool_ids() {
        let signed = call_id::join("call_1", Some("sig=="));
        let messages = json!([
            {"role": "assistant", "content": [{"type": "tool_use", "id": signed, "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": signed, "content": "ok"}]},
        ]);
        assert_eq!(
            unified(messages),
            json!([
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}, "thought_signature": "sig=="}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ])
        );
    }

    /// Signed `thinking` blocks are kept beside the unified request for Claude's translations
    /// (by the index of their assistant message); unsigned and redacted ones are not.
    #[test]
    fn signed_thinking_is_kept_beside_the_messages() {
        let p = ok(json!({"model": "m", "max_tokens": 9, "system": "S", "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Plan.", "signature": "sig"},
                {"type": "thinking", "thinking": "Unsigned.", "signature": ""},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "Alone.", "signature": "s2"}]}
        ]}));
        assert_eq!(
            p.request.extensions.thinking_history,
            vec![SignedThinking { message: 2, thinking: "Plan.".into(), signature: "sig".into() }],
            "system is message 0; a thinking-only turn is dropped with its thinking"
        );
        assert_eq!(p.request.body["messages"][2]["role"], json!("assistant"));
    }

    #[test]
    fn text_image_and_tool_round_trip() {
        let messages = json!([
            {"role": "user", "content": [
                {"type": "text", "text": "What is this, and the weather there?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants the weather.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_photo", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C", "cache_control": {"type": "ephemeral"}},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": [
                    {"type": "text", "text": "camera offline"},
                    {"type": "text", "text": "last frame attached"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/frame.jpg"}},
                ]},
                {"type": "text", "text": "Thanks!"},
            ]},
        ]);
        assert_eq!(
            unified(messages),
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this, and the weather there?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "get_photo", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: camera offline\nlast frame attached"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/frame.jpg"}},
                    {"type": "text", "text": "Thanks!"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_messages_come_first_and_the_turn_keeps_its_order() {
        let messages = json!([
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {"x": 1}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "before"},
                {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "one"}]},
                {"type": "text", "text": "after"},
            ]},
        ]);
        assert_eq!(
            unified(messages),
            json!([
                {"role": "assistant", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                ]},
                {"role": "tool", "tool_call_id": "a", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "before"}, {"type": "text", "text": "after"}]},
            ])
        );
        // Only tool results: no user message; no content: an empty tool message.
        let messages = json!([
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]},
        ]);
        assert_eq!(unified(messages)[1], json!({"role": "tool", "tool_call_id": "a", "content": ""}));
        let messages =
            json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": true}]}]);
        assert_eq!(unified(messages)[0], json!({"role": "tool", "tool_call_id": "a", "content": "Error: "}));
    }

    #[test]
    fn one_text_block_is_a_string_and_thinking_only_turns_vanish() {
        let messages = json!([
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
            {"role": "assistant", "content": "The answer is ("},
        ]);
        assert_eq!(
            unified(messages),
            json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is ("}])
        );
    }

    #[test]
    fn image_sources() {
        let image = |source: Value| json!([{"role": "user", "content": [{"type": "image", "source": source}]}]);
        assert_eq!(
            unified(image(json!({"type": "url", "url": "https://x/y.png"}))),
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
        );
        let p =
            ok(json!({"model": "m", "max_tokens": 1, "messages": image(json!({"type": "file", "file_id": "f_1"}))}));
        assert_eq!(p.native_only, Some("file"), "only Anthropic can resolve its files");
        for (source, param) in [
            (json!({"type": "bytes", "data": "x"}), "messages.0.content.0.source.type"),
            (json!({"type": "base64", "data": "x"}), "messages.0.content.0.source.media_type"),
            (json!({"type": "base64", "media_type": "image/png", "data": 5}), "messages.0.content.0.source.data"),
            (json!({"type": "url"}), "messages.0.content.0.source.url"),
            (json!("https://x"), "messages.0.content.0.source"),
        ] {
            let (status, message, p) = refused(json!({"model": "m", "max_tokens": 1, "messages": image(source)}));
            assert_eq!((status, p.as_deref()), (400, Some(param)), "{message}");
            assert!(message.starts_with(&format!("{param}: ")), "{message}");
        }
    }

    #[test]
    fn tools_and_every_tool_choice() {
        let tools = json!([{
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                             "$defs": {"unit": {"enum": ["C", "F"]}}},
            "cache_control": {"type": "ephemeral"},
        }, {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": true}]);
        let p = ok(base(json!({"tools": tools})));
        assert_eq!(
            p.request.body["tools"],
            json!([
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                                   "$defs": {"unit": {"enum": ["C", "F"]}}},
                }},
                {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}, "strict": true}},
            ])
        );
        assert!(!p.request.body.contains_key("tool_choice"));
        assert!(!p.request.body.contains_key("parallel_tool_calls"));
        for (choice, unified) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
            (
                json!({"type": "tool", "name": "get_weather"}),
                json!({"type": "function", "function": {"name": "get_weather"}}),
            ),
        ] {
            let p = ok(base(json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(p.request.body["tool_choice"], unified, "{choice}");
            assert!(!p.request.body.contains_key("parallel_tool_calls"));
            let mut choice = choice;
            choice["disable_parallel_tool_use"] = json!(true);
            let p = ok(base(json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(p.request.body["tool_choice"], unified);
            assert_eq!(p.request.body["parallel_tool_calls"], json!(false));
        }
        // Without tools there is no choice to make (OpenAI refuses one).
        let p = ok(base(json!({"tool_choice": {"type": "auto"}})));
        assert!(!p.request.body.contains_key("tool_choice"));
        for (body, param) in [
            (json!({"tool_choice": {"type": "tool"}}), "tool_choice.name"),
            (json!({"tool_choice": {"type": "sometimes"}}), "tool_choice.type"),
            (json!({"tool_choice": "auto"}), "tool_choice"),
            (
                json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}}),
                "tool_choice.disable_parallel_tool_use",
            ),
            (json!({"tools": [{"name": "f"}]}), "tools.0.input_schema"),
            (json!({"tools": [{"input_schema": {}}]}), "tools.0.name"),
            (json!({"tools": [{"name": "f", "input_schema": []}]}), "tools.0.input_schema"),
            (json!({"tools": {"name": "f"}}), "tools"),
        ] {
            let (status, message, p) = refused(base(body));
            assert_eq!((status, p.as_deref()), (400, Some(param)), "{message}");
        }
    }

    #[test]
    fn server_tools_need_anthropic() {
        for (kind, name) in [
            ("web_search_20250305", "web_search"),
            ("bash_20250124", "bash"),
            ("text_editor_20250728", "text_editor"),
            ("computer_20250124", "computer"),
            ("code_execution_20250825", "code_execution"),
        ] {
            let p = ok(base(json!({"tools": [
                {"name": "f", "input_schema": {"type": "object"}},
                {"type": kind, "name": "x", "max_uses": 5},
            ]})));
            assert_eq!(p.native_only, Some(name), "{kind}");
            assert_eq!(
                p.request.body["tools"].as_array().map(Vec::len),
                Some(1),
                "only the function tool is translated"
            );
        }
        let (status, message, param) = refused(base(json!({"tools": [{"type": "teleport_20990101", "name": "x"}]})));
        assert_eq!((status, param.as_deref()), (400, Some("tools.0.type")), "{message}");
        assert!(message.contains("teleport_20990101"), "{message}");
    }

    #[test]
    fn parameters() {
        let p = ok(base(json!({
            "stop_sequences": ["\n\nHuman:", "END"],
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "u-1"},
            "stream": true,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "cache_control": {"type": "ephemeral"},
        })));
        let body = Value::Object(p.request.body.clone());
        assert_eq!(body["stop"], json!(["\n\nHuman:", "END"]));
        assert_eq!((body["temperature"].clone(), body["top_p"].clone()), (json!(0.7), json!(0.9)));
        assert_eq!(body["user"], json!("u-1"));
        assert!(p.request.stream());
        assert!(body.get("top_k").is_none() && body.get("thinking").is_none() && body.get("cache_control").is_none());
        assert_eq!(p.request.extensions.top_k, Some(40));
        assert_eq!(p.request.extensions.thinking, Some(json!({"type": "enabled", "budget_tokens": 2048})));
        assert_eq!(p.native_only, None);

        let p =
            ok(base(json!({"thinking": {"type": "disabled"}, "stop_sequences": [], "metadata": {"user_id": null}})));
        assert_eq!(p.request.extensions.thinking, None);
        assert!(!p.request.body.contains_key("stop") && !p.request.body.contains_key("user"));
        let p = ok(base(json!({"thinking": {"type": "adaptive"}})));
        assert_eq!(p.request.extensions.thinking, Some(json!({"type": "adaptive"})));
        // Null is "not given".
        let p = ok(base(json!({"temperature": null, "system": null, "service_tier": null})));
        assert_eq!(p.native_only, None);
        assert!(!p.request.body.contains_key("temperature"));
    }

    #[test]
    fn output_config() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
        let p = ok(base(json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}})));
        assert_eq!(
            p.request.body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
        );
        let p = ok(base(json!({"output_config": {"effort": "low"}})));
        assert_eq!(p.native_only, Some("output_config.effort"));
        let p = ok(base(json!({"output_config": {"effort": "high"}})));
        assert_eq!(p.native_only, None, "the default effort changes nothing");
        let (_, message, param) = refused(base(json!({"output_config": {"format": {"type": "yaml"}}})));
        assert_eq!(param.as_deref(), Some("output_config.format.type"), "{message}");
        let (_, message, param) = refused(base(json!({"output_config": {"verbosity": 1}})));
        assert_eq!(param.as_deref(), Some("output_config.verbosity"), "{message}");
    }

    #[test]
    fn fields_only_anthropic_serves() {
        for field in
            ["service_tier", "container", "mcp_servers", "context_management", "inference_geo", "speed", "diagnostics"]
        {
            let p = ok(base(json!({ field: "x" })));
            assert_eq!(p.native_only, Some(field));
        }
        // Clearing earlier thinking (Claude Code sends it with thinking on) is what the
        // translation does anyway; clearing tool results is not.
        let clear_thinking = json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]});
        let p = ok(base(json!({"context_management": clear_thinking})));
        assert_eq!(p.native_only, None);
        let clear_tools = json!({"edits": [
            {"type": "clear_thinking_20251015", "keep": "all"},
            {"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 30000}},
        ]});
        let p = ok(base(json!({"context_management": clear_tools})));
        assert_eq!(p.native_only, Some("context_management"));
        let p = ok(base(json!({"service_tier": "auto", "container": "c"})));
        assert_eq!(p.native_only, Some("service_tier"), "the first one is named");
        for block in [
            json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}),
            json!({"type": "search_result", "source": "s", "title": "t", "content": []}),
        ] {
            let kind = block["type"].as_str().map(str::to_owned);
            let p = ok(
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [block, {"type": "text", "text": "sum up"}]}]}),
            );
            assert_eq!(p.native_only, kind.as_deref());
            assert_eq!(p.request.body["messages"], json!([{"role": "user", "content": "sum up"}]));
        }
        let p = ok(json!({"model": "m", "max_tokens": 1, "messages": [
            {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": [{"type": "document"}]}]},
        ]}));
        assert_eq!(p.native_only, Some("server_tool_use"));
    }

    #[test]
    fn errors_name_their_field() {
        let m = json!([{"role": "user", "content": "Hi"}]);
        for (body, param) in [
            (json!({"model": "m", "messages": m}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 0, "messages": m}), "max_tokens"),
            (json!({"model": "m", "max_tokens": -3, "messages": m}), "max_tokens"),
            (json!({"model": "m", "max_tokens": 1.5, "messages": m}), "max_tokens"),
            (json!({"model": "m", "max_tokens": "10", "messages": m}), "max_tokens"),
            (json!({"max_tokens": 1, "messages": m}), "model"),
            (json!({"model": 7, "max_tokens": 1, "messages": m}), "model"),
            (json!({"model": "m", "max_tokens": 1}), "messages"),
            (json!({"model": "m", "max_tokens": 1, "messages": []}), "messages"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "frequency_penalty": 1}), "frequency_penalty"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "n": 1}), "n"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "temperature": 1.5}), "temperature"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "top_p": "high"}), "top_p"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "top_k": -1}), "top_k"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "stream": "yes"}), "stream"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "stop_sequences": ["a", 1]}), "stop_sequences.1"),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "metadata": {"session": "x"}}), "metadata.session"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": m, "thinking": {"type": "enabled"}}),
                "thinking.budget_tokens",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": m, "thinking": {"type": "enabled", "budget_tokens": 100}}),
                "thinking.budget_tokens",
            ),
            (json!({"model": "m", "max_tokens": 1, "messages": m, "thinking": {"type": "deep"}}), "thinking.type"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
                "messages.0.role",
            ),
            (json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user"}]}), "messages.0.content"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 3}]}),
                "messages.0.content",
            ),
            (json!({"model": "m", "max_tokens": 1, "messages": ["hi"]}), "messages.0"),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages.0.content.0.text",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]}),
                "messages.0.content.0.type",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": [1]}]}]}),
                "messages.0.content.0.input",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f"}]}]}),
                "messages.0.content.0.id",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
                "messages.0.content.0.tool_use_id",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": "no"}]}]}),
                "messages.0.content.0.is_error",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": [{"type": "tool_use"}]}]}]}),
                "messages.0.content.0.content.0.type",
            ),
        ] {
            let (status, message, p) = refused(body.clone());
            assert_eq!((status, p.as_deref()), (400, Some(param)), "{body}: {message}");
            assert!(message.starts_with(&format!("{param}: ")), "{message}");
        }
        let (status, message, _) = refused(json!([1]));
        assert_eq!(status, 400, "{message}");
        let e = parse(b"{\"model\": ").err().map(|e| e.message()).unwrap_or_default();
        assert!(e.starts_with("The request body is not valid JSON"), "{e}");
    }
}

/// Properties: `parse` never panics, on any bytes or on Messages-shaped JSON, and what it
/// accepts is a valid unified request.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    /// Keys and strings a Messages body is made of, so that random bodies get deep.
    const WORDS: &[&str] = &[
        "model",
        "max_tokens",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "user",
        "assistant",
        "image",
        "source",
        "base64",
        "url",
        "file",
        "media_type",
        "data",
        "tool_use",
        "tool_result",
        "tool_use_id",
        "id",
        "name",
        "input",
        "is_error",
        "thinking",
        "redacted_thinking",
        "document",
        "system",
        "tools",
        "input_schema",
        "description",
        "tool_choice",
        "auto",
        "any",
        "tool",
        "none",
        "disable_parallel_tool_use",
        "metadata",
        "user_id",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "enabled",
        "disabled",
        "budget_tokens",
        "output_config",
        "format",
        "json_schema",
        "schema",
        "effort",
        "web_search_20250305",
        "custom",
        "service_tier",
        "cache_control",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![4 => prop::sample::select(WORDS).prop_map(str::to_owned), 1 => "[a-z_]{0,6}"]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..5000).prop_map(Value::from),
            (-1.0f64..3.0).prop_map(Value::from),
            word().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 96, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((word(), inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Content blocks, mostly well formed.
    fn block() -> impl Strategy<Value = Value> {
        let text = || word().prop_map(|t| json!({"type": "text", "text": t}));
        let image = prop_oneof![
            word().prop_map(
                |d| json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": d}})
            ),
            word().prop_map(|u| json!({"type": "image", "source": {"type": "url", "url": u}})),
            json_value().prop_map(|s| json!({"type": "image", "source": s})),
        ];
        let tool_use = (word(), word(), prop_oneof![Just(json!({})), json_value()])
            .prop_map(|(id, name, input)| json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        let tool_result = (word(), prop_oneof![word().prop_map(Value::String), prop::collection::vec(text(), 0..3).prop_map(Value::Array), json_value()], any::<bool>())
            .prop_map(|(id, content, is_error)| json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error}));
        let thinking = word().prop_map(|t| json!({"type": "thinking", "thinking": t, "signature": "s"}));
        prop_oneof![4 => text(), 2 => image, 2 => tool_use, 2 => tool_result, 1 => thinking, 1 => json_value()]
    }

    fn message() -> impl Strategy<Value = Value> {
        let role = prop_oneof![4 => Just(Value::from("user")), 4 => Just(Value::from("assistant")), 1 => json_value()];
        let content = prop_oneof![
            1 => word().prop_map(Value::String),
            3 => prop::collection::vec(block(), 0..4).prop_map(Value::Array),
        ];
        (role, content).prop_map(|(role, content)| json!({"role": role, "content": content}))
    }

    /// Top-level fields, mostly well formed.
    fn extra() -> impl Strategy<Value = (String, Value)> {
        let tool = (word(), json_value())
            .prop_map(|(name, d)| json!({"name": name, "description": d, "input_schema": {"type": "object"}}));
        prop_oneof![
            word().prop_map(|s| ("system".to_owned(), Value::String(s))),
            (0.0f64..1.0).prop_map(|t| ("temperature".to_owned(), Value::from(t))),
            prop::collection::vec(prop_oneof![3 => tool, 1 => json_value()], 0..3)
                .prop_map(|t| ("tools".to_owned(), Value::Array(t))),
            prop::sample::select(&["auto", "any", "none", "tool"][..])
                .prop_map(|t| ("tool_choice".to_owned(), json!({"type": t, "name": "f"}))),
            any::<bool>().prop_map(|b| ("stream".to_owned(), Value::Bool(b))),
            word().prop_map(|u| ("metadata".to_owned(), json!({"user_id": u}))),
            (1024u64..4096).prop_map(|b| ("thinking".to_owned(), json!({"type": "enabled", "budget_tokens": b}))),
            (word(), json_value()),
        ]
    }

    /// A body that passes the top-level checks often, with random messages and extras.
    fn body() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(message(), 0..4),
            prop::collection::vec(extra(), 0..4),
            prop_oneof![4 => Just(Value::from(64)), 1 => json_value()],
        )
            .prop_map(|(messages, extra, max_tokens)| {
                let mut body = Map::new();
                body.insert("model".into(), Value::from("m"));
                body.insert("max_tokens".into(), max_tokens);
                body.insert("messages".into(), Value::Array(messages));
                body.extend(extra);
                Value::Object(body)
            })
    }

    fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
        match parse(bytes) {
            Ok(p) => {
                let again = schema::request_from_value(EndpointType::Chat, Value::Object(p.request.body.clone()));
                prop_assert!(again.is_ok_and(|r| r.body == p.request.body), "the unified body validates again");
                let _ = super::super::count_tokens_estimate(&p.native);
            }
            Err(e) => {
                prop_assert_eq!(e.status_for(crate::error::Family::Anthropic), 400);
                prop_assert!(!e.message().is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            check(&bytes)?;
        }

        #[test]
        fn parse_never_panics_on_json(v in json_value()) {
            check(v.to_string().as_bytes())?;
        }

        #[test]
        fn parse_never_panics_on_messages_bodies(v in body()) {
            check(v.to_string().as_bytes())?;
            if let Value::Object(o) = &v {
                let _ = super::super::count_tokens_estimate(o);
            }
        }
    }
}
