//! A Responses request (`POST /v1/responses`) translated into MLflow's unified chat request.
//!
//! The body is read field by field; every field the Responses API defines is either
//! translated, accepted without effect (and echoed in the answer), or named as
//! [`Parsed::native_only`] (only a provider that serves the Responses API itself can honour
//! it). Anything else is a 400 naming it. Errors are OpenAI's: a message, `param` set to the
//! field's path (`input[3].content[0].type`) and a `code` (`missing_required_parameter`,
//! `invalid_type`, `invalid_value`, `unknown_parameter`). The mapping is documented in
//! `docs/client-apis.md#openai-responses-api`.

use serde_json::{Map, Value};

use crate::api::{self, Parsed, call_id, text_part};
use crate::error::GatewayError;
use crate::schema::{EndpointType, Extensions, Request, SignedThinking, request_from_value};

/// Parse a Responses request body: its target, its unified translation, the fields the answer
/// echoes, and the first field only the Responses API itself can serve.
pub fn parse(body: &[u8]) -> Result<Parsed, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("The request body is not valid JSON: {e}")))?;
    let Value::Object(native) = value else {
        return Err(GatewayError::bad_request("The request body must be a JSON object.").with_code("invalid_type"));
    };
    let mut t = Translator::default();
    for (key, value) in &native {
        // A null is a field not given (the SDK's `None`).
        if !value.is_null() {
            t.field(key, value)?;
        }
    }
    let Some(model) = t.model.take() else {
        return Err(GatewayError::bad_request("you must provide a model parameter")
            .with_param("model")
            .with_code("missing_required_parameter"));
    };
    t.finish(model, native)
}

/// The translation under way.
#[derive(Default)]
struct Translator {
    model: Option<String>,
    instructions: Option<String>,
    /// Unified messages from `input`, in order.
    messages: Vec<Value>,
    /// The assistant message that the next `function_call` item joins, if the items since it
    /// were only function calls (or reasoning, which is left out).
    group: Option<usize>,
    /// Unified fields other than `messages`, in the client's order.
    body: Map<String, Value>,
    /// Unified `tool_choice` and `parallel_tool_calls`: sent only with tools.
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<Value>,
    echo: Map<String, Value>,
    native_only: Option<&'static str>,
    /// The first unknown top-level field (see `Parsed::unknown`).
    unknown: Option<String>,
    reasoning_effort: Option<String>,
    /// Signed thinking from reasoning items the gateway wrote, by the message it belongs to.
    thinking_history: Vec<SignedThinking>,
    /// Signed thinking waiting for the assistant message that follows it.
    pending_thinking: Vec<(String, String)>,
}

/// The request fields the answer repeats (`Response` has a field of the same name).
const ECHOED: &[&str] = &[
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "max_output_tokens",
    "max_tool_calls",
    "text",
    "metadata",
    "reasoning",
    "user",
    "truncation",
    "previous_response_id",
    "background",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
];

impl Translator {
    fn native(&mut self, field: &'static str) {
        self.native_only.get_or_insert(field);
    }

    fn field(&mut self, key: &str, value: &Value) -> Result<(), GatewayError> {
        match key {
            "model" => self.model = Some(string(value, || key.to_owned())?.to_owned()),
            "input" => self.input(value)?,
            "instructions" => self.instructions = Some(string(value, || key.to_owned())?.to_owned()),
            "tools" => self.tools(value)?,
            "tool_choice" => self.tool_choice(value)?,
            "parallel_tool_calls" => {
                boolean(value, key)?;
                self.parallel_tool_calls = Some(value.clone());
            }
            "text" => self.text(value)?,
            "max_output_tokens" => {
                integer(value, key, 1)?;
                self.body.insert("max_tokens".into(), value.clone());
            }
            "temperature" => {
                number(value, key, 2.0)?;
                self.body.insert(key.into(), value.clone());
            }
            "top_p" => {
                number(value, key, 1.0)?;
                self.body.insert(key.into(), value.clone());
            }
            "user" => {
                string(value, || key.to_owned())?;
                self.body.insert(key.into(), value.clone());
            }
            "stream" => {
                boolean(value, key)?;
                self.body.insert(key.into(), value.clone());
            }
            // Accepted without effect: nothing is stored (answers say `store: false`),
            // metadata is only echoed, the stream is never obfuscated, and the cache and
            // service-tier hints concern OpenAI's own serving.
            "store" => {
                boolean(value, key)?;
            }
            "metadata" | "stream_options" | "prompt_cache_options" => object(value, key).map(drop)?,
            "prompt_cache_key" | "prompt_cache_retention" | "safety_identifier" | "service_tier" => {
                string(value, || key.to_owned()).map(drop)?
            }
            // Limits calls of built-in tools, which only the native API has.
            "max_tool_calls" => integer(value, key, 0)?,
            "reasoning" => self.reasoning(value)?,
            "previous_response_id" => {
                string(value, || key.to_owned())?;
                self.native("previous_response_id");
            }
            "conversation" => self.native("conversation"),
            "prompt" => self.native("prompt"),
            "moderation" => self.native("moderation"),
            "top_logprobs" => self.native("top_logprobs"),
            "background" => {
                if boolean(value, key)? {
                    self.native("background");
                }
            }
            "include" => {
                // `reasoning.encrypted_content` (Codex sends it when it does not store) asks for
                // OpenAI's opaque reasoning state, which no other provider has: a translated
                // answer's reasoning items simply carry none. Anything else needs OpenAI.
                let wanted = array(value, || key.to_owned())?;
                if wanted.iter().any(|v| v.as_str() != Some("reasoning.encrypted_content")) {
                    self.native("include");
                }
            }
            "context_management" => {
                if !array(value, || key.to_owned())?.is_empty() {
                    self.native("context_management");
                }
            }
            "truncation" => match string(value, || key.to_owned())? {
                "disabled" => {}
                "auto" => self.native("truncation"),
                other => return Err(invalid_value(key.to_owned(), other, "'auto' and 'disabled'")),
            },
            _ => {
                self.unknown.get_or_insert_with(|| key.to_owned());
            }
        }
        if ECHOED.contains(&key) {
            self.echo.insert(key.to_owned(), value.clone());
        }
        Ok(())
    }

    fn input(&mut self, value: &Value) -> Result<(), GatewayError> {
        match value {
            Value::String(text) => {
                self.messages.push(message("user", Value::String(text.clone())));
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.item(i, item)?;
                }
                Ok(())
            }
            _ => Err(invalid_type("input".into(), "a string or an array of input items")),
        }
    }

    fn item(&mut self, i: usize, item: &Value) -> Result<(), GatewayError> {
        let Value::Object(o) = item else {
            return Err(invalid_type(format!("input[{i}]"), "an object"));
        };
        let kind = match o.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid_type(format!("input[{i}].type"), "a string")),
        };
        match kind {
            Some("message") => self.message(i, o),
            None if has(o, "role") => self.message(i, o),
            None => Err(missing(format!("input[{i}].type"))),
            Some("function_call") => self.function_call(i, o),
            Some("function_call_output") => self.function_call_output(i, o),
            // The provider's own opaque reasoning (Codex sends it back, encrypted, with
            // `store: false`): another provider cannot read it, so it is left out; the
            // conversation reads the same without it. Claude's signed thinking, which the
            // gateway wrote into the item, is kept for the assistant message after it.
            Some("reasoning") => {
                if let Some(signature) = o
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .and_then(|e| e.strip_prefix(super::THINKING_SIGNATURE_PREFIX))
                    .filter(|s| !s.is_empty())
                {
                    let text: String = match o.get("summary") {
                        Some(Value::Array(parts)) => {
                            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
                        }
                        _ => String::new(),
                    };
                    self.pending_thinking.push((text, signature.to_owned()));
                }
                Ok(())
            }
            Some(other) => {
                self.native(native_item(other));
                self.group = None;
                Ok(())
            }
        }
    }

    fn message(&mut self, i: usize, o: &Map<String, Value>) -> Result<(), GatewayError> {
        let role = match o.get("role") {
            None | Some(Value::Null) => return Err(missing(format!("input[{i}].role"))),
            Some(Value::String(r)) => r.as_str(),
            Some(_) => return Err(invalid_type(format!("input[{i}].role"), "a string")),
        };
        let (unified_role, assistant) = match role {
            "user" => ("user", false),
            "system" | "developer" => ("system", false),
            "assistant" => ("assistant", true),
            other => {
                return Err(invalid_value(
                    format!("input[{i}].role"),
                    other,
                    "'user', 'assistant', 'system' and 'developer'",
                ));
            }
        };
        let content = match o.get("content") {
            None | Some(Value::Null) => return Err(missing(format!("input[{i}].content"))),
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Array(parts)) => {
                self.parts(parts, if assistant { Parts::Assistant } else { Parts::Input }, || format!("input[{i}]"))?
            }
            Some(_) => {
                return Err(invalid_type(format!("input[{i}].content"), "a string or an array of content parts"));
            }
        };
        self.group = assistant.then_some(self.messages.len());
        if assistant {
            self.attach_thinking(self.messages.len());
        } else {
            self.pending_thinking.clear();
        }
        self.messages.push(message(unified_role, content));
        Ok(())
    }

    /// Give the signed thinking read so far to the assistant message at `index`.
    fn attach_thinking(&mut self, index: usize) {
        let pending = std::mem::take(&mut self.pending_thinking);
        self.thinking_history.extend(pending.into_iter().map(|(thinking, signature)| SignedThinking {
            message: index,
            thinking,
            signature,
        }));
    }

    fn function_call(&mut self, i: usize, o: &Map<String, Value>) -> Result<(), GatewayError> {
        let field = |name: &str| match o.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(missing(format!("input[{i}].{name}"))),
            Some(_) => Err(invalid_type(format!("input[{i}].{name}"), "a string")),
        };
        let (id, name, arguments) = (field("call_id")?, field("name")?, field("arguments")?);
        let mut function = Map::with_capacity(2);
        function.insert("name".into(), Value::String(name));
        function.insert("arguments".into(), Value::String(arguments));
        // A Gemini thought signature carried in the id (api::call_id) is the call's, not the id's.
        let (id, thought_signature) = call_id::split(&id);
        let mut call = Map::with_capacity(4);
        call.insert("id".into(), Value::from(id));
        call.insert("type".into(), Value::from("function"));
        call.insert("function".into(), Value::Object(function));
        if let Some(signature) = thought_signature {
            call.insert("thought_signature".into(), Value::String(signature));
        }
        let at = match self.group {
            Some(at) => at,
            None => {
                let mut m = Map::with_capacity(2);
                m.insert("role".into(), Value::from("assistant"));
                self.messages.push(Value::Object(m));
                self.messages.len() - 1
            }
        };
        self.group = Some(at);
        self.attach_thinking(at);
        if let Some(Value::Object(m)) = self.messages.get_mut(at) {
            match m.entry("tool_calls").or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(calls) => calls.push(Value::Object(call)),
                other => *other = Value::Array(vec![Value::Object(call)]),
            }
        }
        Ok(())
    }

    fn function_call_output(&mut self, i: usize, o: &Map<String, Value>) -> Result<(), GatewayError> {
        let call_id = match o.get("call_id") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(missing(format!("input[{i}].call_id"))),
            Some(_) => return Err(invalid_type(format!("input[{i}].call_id"), "a string")),
        };
        let content = match o.get("output") {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Array(parts)) => self.parts(parts, Parts::Output, || format!("input[{i}].output"))?,
            None | Some(Value::Null) => return Err(missing(format!("input[{i}].output"))),
            Some(_) => return Err(invalid_type(format!("input[{i}].output"), "a string or an array of content parts")),
        };
        let mut m = Map::with_capacity(3);
        m.insert("role".into(), Value::from("tool"));
        m.insert("tool_call_id".into(), Value::from(call_id::split(&call_id).0));
        m.insert("content".into(), content);
        self.messages.push(Value::Object(m));
        self.group = None;
        self.pending_thinking.clear();
        Ok(())
    }

    /// Content parts to unified content: one text part becomes a string, an assistant's text
    /// parts one string (they are one answer), anything else a list of unified parts.
    /// `at` names the item (`input[2]`) or the output list (`input[2].output`) for errors.
    fn parts(&mut self, parts: &[Value], kind: Parts, at: impl Fn() -> String) -> Result<Value, GatewayError> {
        // An item's parts are at `<item>.content[j]`, a function output's at `<output>[j]`.
        let path = |j: usize, field: &str| match kind {
            Parts::Output => format!("{}[{j}]{field}", at()),
            _ => format!("{}.content[{j}]{field}", at()),
        };
        let mut unified = Vec::with_capacity(parts.len());
        let mut all_text = true;
        for (j, part) in parts.iter().enumerate() {
            let Value::Object(p) = part else {
                return Err(invalid_type(path(j, ""), "an object"));
            };
            let kind_name = match p.get("type") {
                Some(Value::String(t)) => t.as_str(),
                None | Some(Value::Null) => return Err(missing(path(j, ".type"))),
                Some(_) => return Err(invalid_type(path(j, ".type"), "a string")),
            };
            let text_field = match (kind_name, kind) {
                ("input_text", _) => Some("text"),
                ("output_text", Parts::Assistant) => Some("text"),
                ("refusal", Parts::Assistant) => Some("refusal"),
                _ => None,
            };
            if let Some(field) = text_field {
                match p.get(field) {
                    Some(Value::String(t)) => unified.push(text_part(t)),
                    None | Some(Value::Null) => return Err(missing(path(j, &format!(".{field}")))),
                    Some(_) => return Err(invalid_type(path(j, &format!(".{field}")), "a string")),
                }
                continue;
            }
            all_text = false;
            match (kind_name, kind) {
                ("input_image", Parts::Input | Parts::Output) => {
                    if let Some(image) = self.image(p, |f| path(j, f))? {
                        unified.push(image);
                    }
                }
                // OpenAI's file storage, file inputs and audio inputs: no unified part.
                ("input_file", Parts::Input | Parts::Output) => self.native("input_file"),
                ("input_audio", Parts::Input) => self.native("input_audio"),
                (other, Parts::Assistant) => {
                    return Err(invalid_value(path(j, ".type"), other, "'output_text', 'refusal' and 'input_text'"));
                }
                (other, Parts::Input) => {
                    return Err(invalid_value(
                        path(j, ".type"),
                        other,
                        "'input_text', 'input_image', 'input_file' and 'input_audio'",
                    ));
                }
                (other, Parts::Output) => {
                    return Err(invalid_value(path(j, ".type"), other, "'input_text', 'input_image' and 'input_file'"));
                }
            }
        }
        if all_text && (unified.len() == 1 || kind == Parts::Assistant) {
            let text: String = unified.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            return Ok(Value::String(text));
        }
        Ok(Value::Array(unified))
    }

    /// An `input_image` part as a unified `image_url` part; `None` when it needs the native
    /// API (a `file_id`, or `detail: "original"`).
    fn image(&mut self, p: &Map<String, Value>, path: impl Fn(&str) -> String) -> Result<Option<Value>, GatewayError> {
        let detail = match p.get("detail") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) if matches!(d.as_str(), "auto" | "low" | "high") => Some(d.clone()),
            Some(Value::String(d)) if d == "original" => {
                self.native("input_image.detail");
                None
            }
            Some(Value::String(d)) => {
                return Err(invalid_value(path(".detail"), d, "'auto', 'low', 'high' and 'original'"));
            }
            Some(_) => return Err(invalid_type(path(".detail"), "a string")),
        };
        let url = match (p.get("image_url"), p.get("file_id")) {
            (Some(Value::String(url)), _) => url.clone(),
            (Some(v), _) if !v.is_null() => return Err(invalid_type(path(".image_url"), "a string")),
            (_, Some(Value::String(_))) => {
                self.native("input_image.file_id");
                return Ok(None);
            }
            _ => return Err(missing(path(".image_url"))),
        };
        let mut image = Map::with_capacity(2);
        image.insert("url".into(), Value::String(url));
        if let Some(d) = detail {
            image.insert("detail".into(), Value::String(d));
        }
        let mut part = Map::with_capacity(2);
        part.insert("type".into(), Value::from("image_url"));
        part.insert("image_url".into(), Value::Object(image));
        Ok(Some(Value::Object(part)))
    }

    fn tools(&mut self, value: &Value) -> Result<(), GatewayError> {
        let tools = array(value, || "tools".into())?;
        let mut unified = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let Value::Object(t) = tool else {
                return Err(invalid_type(format!("tools[{i}]"), "an object"));
            };
            let kind = match t.get("type") {
                Some(Value::String(k)) => k.as_str(),
                None | Some(Value::Null) => return Err(missing(format!("tools[{i}].type"))),
                Some(_) => return Err(invalid_type(format!("tools[{i}].type"), "a string")),
            };
            if kind != "function" {
                self.native(native_tool(kind));
                continue;
            }
            let mut function = Map::with_capacity(4);
            match t.get("name") {
                Some(Value::String(n)) => function.insert("name".into(), Value::String(n.clone())),
                None | Some(Value::Null) => return Err(missing(format!("tools[{i}].name"))),
                Some(_) => return Err(invalid_type(format!("tools[{i}].name"), "a string")),
            };
            for (key, check) in
                [("description", Value::is_string as fn(&Value) -> bool), ("parameters", Value::is_object)]
            {
                match t.get(key) {
                    None | Some(Value::Null) => {}
                    Some(v) if check(v) => {
                        function.insert(key.into(), v.clone());
                    }
                    Some(_) => {
                        let expected = if key == "description" { "a string" } else { "an object" };
                        return Err(invalid_type(format!("tools[{i}].{key}"), expected));
                    }
                }
            }
            // Only when sent: the Responses API's own default is strict, which a schema
            // written for another provider often is not.
            match t.get("strict") {
                None | Some(Value::Null) => {}
                Some(v @ Value::Bool(_)) => {
                    function.insert("strict".into(), v.clone());
                }
                Some(_) => return Err(invalid_type(format!("tools[{i}].strict"), "a boolean")),
            }
            let mut tool = Map::with_capacity(2);
            tool.insert("type".into(), Value::from("function"));
            tool.insert("function".into(), Value::Object(function));
            unified.push(Value::Object(tool));
        }
        if !unified.is_empty() {
            self.body.insert("tools".into(), Value::Array(unified));
        }
        Ok(())
    }

    fn tool_choice(&mut self, value: &Value) -> Result<(), GatewayError> {
        match value {
            Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
                self.tool_choice = Some(value.clone());
            }
            Value::String(s) => {
                return Err(invalid_value("tool_choice".into(), s, "'auto', 'none' and 'required'"));
            }
            Value::Object(o) => match o.get("type") {
                Some(Value::String(t)) if t == "function" => {
                    let name = match o.get("name") {
                        Some(Value::String(n)) => n.clone(),
                        None | Some(Value::Null) => return Err(missing("tool_choice.name".into())),
                        Some(_) => return Err(invalid_type("tool_choice.name".into(), "a string")),
                    };
                    let mut function = Map::with_capacity(1);
                    function.insert("name".into(), Value::String(name));
                    let mut choice = Map::with_capacity(2);
                    choice.insert("type".into(), Value::from("function"));
                    choice.insert("function".into(), Value::Object(function));
                    self.tool_choice = Some(Value::Object(choice));
                }
                Some(Value::String(t)) if t == "allowed_tools" => self.native("tool_choice (allowed_tools)"),
                Some(Value::String(_)) => self.native("tool_choice"),
                None | Some(Value::Null) => return Err(missing("tool_choice.type".into())),
                Some(_) => return Err(invalid_type("tool_choice.type".into(), "a string")),
            },
            _ => return Err(invalid_type("tool_choice".into(), "a string or an object")),
        }
        Ok(())
    }

    fn text(&mut self, value: &Value) -> Result<(), GatewayError> {
        for (key, v) in object(value, "text")? {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "format" => self.format(v)?,
                "verbosity" => self.native("text.verbosity"),
                other => return Err(unknown_parameter(format!("text.{other}"))),
            }
        }
        Ok(())
    }

    fn format(&mut self, value: &Value) -> Result<(), GatewayError> {
        let f = object(value, "text.format")?;
        let kind = match f.get("type") {
            Some(Value::String(k)) => k.as_str(),
            None | Some(Value::Null) => return Err(missing("text.format.type".into())),
            Some(_) => return Err(invalid_type("text.format.type".into(), "a string")),
        };
        let mut format = Map::with_capacity(2);
        match kind {
            "text" => return Ok(()),
            "json_object" => {
                format.insert("type".into(), Value::from("json_object"));
            }
            "json_schema" => {
                let mut schema = Map::with_capacity(4);
                match f.get("name") {
                    Some(Value::String(n)) => schema.insert("name".into(), Value::String(n.clone())),
                    None | Some(Value::Null) => return Err(missing("text.format.name".into())),
                    Some(_) => return Err(invalid_type("text.format.name".into(), "a string")),
                };
                match f.get("schema") {
                    Some(v @ Value::Object(_)) => schema.insert("schema".into(), v.clone()),
                    None | Some(Value::Null) => return Err(missing("text.format.schema".into())),
                    Some(_) => return Err(invalid_type("text.format.schema".into(), "an object")),
                };
                for (key, check, expected) in [
                    ("strict", Value::is_boolean as fn(&Value) -> bool, "a boolean"),
                    ("description", Value::is_string, "a string"),
                ] {
                    match f.get(key) {
                        None | Some(Value::Null) => {}
                        Some(v) if check(v) => {
                            schema.insert(key.into(), v.clone());
                        }
                        Some(_) => return Err(invalid_type(format!("text.format.{key}"), expected)),
                    }
                }
                format.insert("type".into(), Value::from("json_schema"));
                format.insert("json_schema".into(), Value::Object(schema));
            }
            other => {
                return Err(invalid_value("text.format.type".into(), other, "'text', 'json_object' and 'json_schema'"));
            }
        }
        self.body.insert("response_format".into(), Value::Object(format));
        Ok(())
    }

    fn reasoning(&mut self, value: &Value) -> Result<(), GatewayError> {
        for (key, v) in object(value, "reasoning")? {
            if v.is_null() {
                continue;
            }
            match key.as_str() {
                "effort" => self.reasoning_effort = Some(string(v, || "reasoning.effort".into())?.to_owned()),
                // A summary of the provider's reasoning is whatever reasoning text it returns.
                "summary" | "generate_summary" => {
                    string(v, || format!("reasoning.{key}"))?;
                }
                other => return Err(unknown_parameter(format!("reasoning.{other}"))),
            }
        }
        Ok(())
    }

    /// The parsed request: the unified translation, the field only the native API serves, and
    /// the echoed fields.
    fn finish(self, model: String, native: Map<String, Value>) -> Result<Parsed, GatewayError> {
        let mut messages = self.messages;
        let mut thinking_history = self.thinking_history;
        if let Some(instructions) = self.instructions {
            messages.insert(0, message("system", Value::String(instructions)));
            for t in &mut thinking_history {
                t.message += 1;
            }
        }
        if messages.is_empty() && self.native_only.is_none() {
            return Err(missing("input".into()));
        }
        let mut body = Map::with_capacity(self.body.len() + 3);
        body.insert("messages".into(), Value::Array(messages));
        let has_tools = self.body.contains_key("tools");
        body.extend(self.body);
        // OpenAI's chat API refuses both without tools (Codex sends `tool_choice: "auto"`
        // with no tools at all); without tools they mean nothing.
        if has_tools {
            if let Some(choice) = self.tool_choice {
                body.insert("tool_choice".into(), choice);
            }
            if let Some(parallel) = self.parallel_tool_calls {
                body.insert("parallel_tool_calls".into(), parallel);
            }
        }
        let extensions =
            Extensions { reasoning_effort: self.reasoning_effort, thinking_history, ..Extensions::default() };
        // A request with a native-only field is never translated: when its unified form is
        // not valid (no input besides a `previous_response_id`, say), it is kept as it is.
        let kept = self.native_only.map(|_| body.clone());
        let request = match (request_from_value(EndpointType::Chat, Value::Object(body)), kept) {
            (Ok(mut request), _) => {
                request.extensions = extensions;
                request
            }
            (Err(_), Some(body)) => Request { endpoint_type: EndpointType::Chat, body, implicit_n: true, extensions },
            (Err(errors), None) => return Err(GatewayError::validation(errors)),
        };
        Ok(Parsed { model, request, native, native_only: self.native_only, unknown: self.unknown, echo: self.echo })
    }
}

/// Where content parts appear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// A user, system or developer message.
    Input,
    /// An assistant message.
    Assistant,
    /// A `function_call_output`'s output.
    Output,
}

fn message(role: &str, content: Value) -> Value {
    Value::Object(api::message(role, Some(content)))
}

fn has(o: &Map<String, Value>, key: &str) -> bool {
    o.get(key).is_some_and(|v| !v.is_null())
}

/// The [`Parsed::native_only`] name of an input item type without a unified form.
fn native_item(kind: &str) -> &'static str {
    match kind {
        "item_reference" => "item_reference",
        "web_search_call" => "web_search_call",
        "file_search_call" => "file_search_call",
        "computer_call" => "computer_call",
        "computer_call_output" => "computer_call_output",
        "code_interpreter_call" => "code_interpreter_call",
        "image_generation_call" => "image_generation_call",
        "local_shell_call" => "local_shell_call",
        "local_shell_call_output" => "local_shell_call_output",
        "shell_call" => "shell_call",
        "shell_call_output" => "shell_call_output",
        "apply_patch_call" => "apply_patch_call",
        "apply_patch_call_output" => "apply_patch_call_output",
        "custom_tool_call" => "custom_tool_call",
        "custom_tool_call_output" => "custom_tool_call_output",
        "mcp_list_tools" => "mcp_list_tools",
        "mcp_approval_request" => "mcp_approval_request",
        "mcp_approval_response" => "mcp_approval_response",
        "mcp_call" => "mcp_call",
        "compaction" => "compaction",
        _ => "input (item type)",
    }
}

/// The [`Parsed::native_only`] name of a tool type other than `function`.
fn native_tool(kind: &str) -> &'static str {
    match kind {
        "web_search" => "tools (web_search)",
        "web_search_preview" => "tools (web_search_preview)",
        "file_search" => "tools (file_search)",
        "code_interpreter" => "tools (code_interpreter)",
        "computer_use_preview" => "tools (computer_use_preview)",
        "computer" => "tools (computer)",
        "image_generation" => "tools (image_generation)",
        "mcp" => "tools (mcp)",
        "local_shell" => "tools (local_shell)",
        "shell" => "tools (shell)",
        "apply_patch" => "tools (apply_patch)",
        "custom" => "tools (custom)",
        _ => "tools",
    }
}

fn missing(path: String) -> GatewayError {
    GatewayError::bad_request(format!("Missing required parameter: '{path}'."))
        .with_param(path)
        .with_code("missing_required_parameter")
}

fn invalid_type(path: String, expected: &str) -> GatewayError {
    GatewayError::bad_request(format!("Invalid type for '{path}': expected {expected}."))
        .with_param(path)
        .with_code("invalid_type")
}

fn invalid_value(path: String, value: &str, supported: &str) -> GatewayError {
    GatewayError::bad_request(format!("Invalid value for '{path}': '{value}'. Supported values are: {supported}."))
        .with_param(path)
        .with_code("invalid_value")
}

/// OpenAI's 400 for a field it does not know.
pub fn unknown_parameter(path: String) -> GatewayError {
    GatewayError::bad_request(format!("Unknown parameter: '{path}'.")).with_param(path).with_code("unknown_parameter")
}

fn string(value: &Value, path: impl FnOnce() -> String) -> Result<&str, GatewayError> {
    value.as_str().ok_or_else(|| invalid_type(path(), "a string"))
}

fn array(value: &Value, path: impl FnOnce() -> String) -> Result<&[Value], GatewayError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| invalid_type(path(), "an array"))
}

fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, GatewayError> {
    value.as_object().ok_or_else(|| invalid_type(path.to_owned(), "an object"))
}

fn boolean(value: &Value, path: &str) -> Result<bool, GatewayError> {
    value.as_bool().ok_or_else(|| invalid_type(path.to_owned(), "a boolean"))
}

fn integer(value: &Value, path: &str, min: u64) -> Result<(), GatewayError> {
    match (value.as_u64(), value.as_i64()) {
        (Some(n), _) if n >= min => Ok(()),
        (_, Some(_)) => Err(GatewayError::bad_request(format!(
            "Invalid '{path}': integer below minimum value. Expected a value >= {min}, but got {value} instead."
        ))
        .with_param(path)
        .with_code("integer_below_min_value")),
        _ => Err(invalid_type(path.to_owned(), "an integer")),
    }
}

fn number(value: &Value, path: &str, max: f64) -> Result<(), GatewayError> {
    match value.as_f64() {
        Some(n) if (0.0..=max).contains(&n) => Ok(()),
        Some(_) => Err(GatewayError::bad_request(format!(
            "Invalid '{path}': expected a number from 0 to {max}, but got {value} instead."
        ))
        .with_param(path)
        .with_code("invalid_value")),
        None => Err(invalid_type(path.to_owned(), "a number")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn ok(body: Value) -> Parsed {
        match parse(body.to_string().as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{body} was refused: {e}"),
        }
    }

    /// The unified body without the implicit `n`.
    fn unified(body: Value) -> Value {
        let mut p = ok(body);
        assert_eq!(p.request.body.remove("n"), Some(json!(1)));
        Value::Object(p.request.body)
    }

    fn err(body: Value) -> GatewayError {
        match parse(body.to_string().as_bytes()) {
            Ok(p) => panic!("{body} was accepted: {:?}", p.request.body),
            Err(e) => e,
        }
    }

    fn native_only(body: Value) -> Option<&'static str> {
        ok(body).native_only
    }

    #[test]
    fn a_string_input_is_one_user_message() {
        let p = ok(json!({"model": "chat", "input": "Hello", "stream": true}));
        assert_eq!(p.model, "chat");
        assert_eq!(p.native_only, None);
        assert!(p.echo.is_empty(), "{:?}", p.echo);
        assert_eq!(Value::Object(p.native.clone()), json!({"model": "chat", "input": "Hello", "stream": true}));
        assert!(p.request.stream());
        assert_eq!(p.request.endpoint_type, EndpointType::Chat);
        assert_eq!(p.request.extensions, Extensions::default());
        assert_eq!(
            Value::Object(p.request.body),
            json!({"messages": [{"role": "user", "content": "Hello"}], "stream": true, "n": 1})
        );
    }

    /// A `call_id` carrying a Gemini thought signature (api::call_id) is split into the unified
    /// id and `thought_signature`, in the call and in its output.
    #[test]
    fn thought_signatures_come_out_of_call_ids() {
        let signed = call_id::join("call_a", Some("sig=="));
        let body = json!({"model": "m", "input": [
            {"type": "function_call", "call_id": signed, "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": signed, "output": "ok"}
        ]});
        assert_eq!(
            unified(body)["messages"],
            json!([
                {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function",
                    "function": {"name": "f", "arguments": "{}"}, "thought_signature": "sig=="}]},
                {"role": "tool", "tool_call_id": "call_a", "content": "ok"}
            ])
        );
    }

    /// A reasoning item whose `encrypted_content` the gateway wrote gives Claude's signed
    /// thinking back, for the assistant message after it; other reasoning items are left out.
    #[test]
    fn signed_reasoning_items_are_kept_for_the_next_assistant_turn() {
        let signed = format!("{}sig", super::super::THINKING_SIGNATURE_PREFIX);
        let p = ok(json!({"model": "m", "instructions": "I", "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Use the tool."}],
             "encrypted_content": signed},
            {"type": "function_call", "call_id": "c", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "Sunny"},
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "gAAAA-openai-opaque"},
            {"role": "assistant", "content": "Sunny."}
        ]}));
        assert_eq!(
            p.request.extensions.thinking_history,
            vec![SignedThinking { message: 2, thinking: "Use the tool.".into(), signature: "sig".into() }],
            "instructions are message 0, the user message 1, the calls' assistant message 2"
        );
    }

    #[test]
    fn a_function_call_round_trip() {
        let body = json!({"model": "m", "input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
            {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "two calls"}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "weather",
             "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_b",
             "output": [{"type": "input_text", "text": "21C"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "Thanks. And Oslo?"}]},
            {"type": "function_call", "call_id": "call_c", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_c", "output": "3C"}
        ]});
        assert_eq!(
            unified(body)["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
                {"role": "user", "content": "Thanks. And Oslo?"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_c", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_c", "content": "3C"}
            ])
        );
    }

    #[test]
    fn a_function_call_after_a_user_message_starts_its_own_assistant_message() {
        let body = json!({"model": "m", "input": [
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "Go"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
        ]});
        let messages = unified(body)["messages"].clone();
        assert_eq!(messages[0], json!({"role": "assistant", "content": "Hi"}));
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(messages[2]["tool_calls"][0]["id"], "c");
        assert_eq!(messages.as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn images() {
        let body = json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            {"type": "input_image", "image_url": "https://example.com/b.png", "detail": null}
        ]}]});
        assert_eq!(
            unified(body)["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}
            ])
        );
        // An image in a function's output.
        let body = json!({"model": "m", "input": [
            {"type": "function_call", "call_id": "c", "name": "screenshot", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [
                {"type": "input_text", "text": "here"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}
        ]});
        assert_eq!(
            unified(body)["messages"][1]["content"],
            json!([{"type": "text", "text": "here"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
        );
    }

    #[test]
    fn parts_that_need_openai_storage_are_native_only() {
        let part = |p: Value| json!({"model": "m", "input": [{"role": "user", "content": [p]}]});
        assert_eq!(native_only(part(json!({"type": "input_image", "file_id": "file-1"}))), Some("input_image.file_id"));
        assert_eq!(
            native_only(part(json!({"type": "input_image", "image_url": "https://x/y.png", "detail": "original"}))),
            Some("input_image.detail")
        );
        assert_eq!(native_only(part(json!({"type": "input_file", "file_id": "file-1"}))), Some("input_file"));
        assert_eq!(
            native_only(part(json!({"type": "input_file", "file_data": "data:application/pdf;base64,AA"}))),
            Some("input_file")
        );
        assert_eq!(
            native_only(part(json!({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}))),
            Some("input_audio")
        );
        let output = json!({"model": "m", "input": [
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file", "file_id": "f"}]}]});
        assert_eq!(native_only(output), Some("input_file"));
    }

    #[test]
    fn instructions_and_developer_messages_are_system_messages() {
        let body = json!({"model": "m", "instructions": "Be brief.", "input": [
            {"role": "developer", "content": "Answer in French."},
            {"role": "system", "content": [{"type": "input_text", "text": "No emoji."}]},
            {"role": "user", "content": "Hi"}
        ]});
        let p = ok(body);
        assert_eq!(p.echo.get("instructions"), Some(&json!("Be brief.")));
        assert_eq!(
            Value::Array(p.request.messages().to_vec()),
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Answer in French."},
                {"role": "system", "content": "No emoji."},
                {"role": "user", "content": "Hi"}
            ])
        );
        // Instructions alone are a valid request, and come first whatever the key order.
        let u = unified(json!({"input": "x", "instructions": "I", "model": "m"}));
        assert_eq!(u["messages"], json!([{"role": "system", "content": "I"}, {"role": "user", "content": "x"}]));
    }

    #[test]
    fn assistant_text_parts_become_one_string() {
        let body = json!({"model": "m", "input": [{"role": "assistant", "content": [
            {"type": "output_text", "text": "Hello, ", "annotations": []},
            {"type": "output_text", "text": "world"},
            {"type": "refusal", "refusal": " (no more)"}
        ]}, {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]}]});
        let u = unified(body);
        assert_eq!(u["messages"][0], json!({"role": "assistant", "content": "Hello, world (no more)"}));
        assert_eq!(u["messages"][1]["content"], json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]));
    }

    #[test]
    fn text_formats() {
        let with = |format: Value| unified(json!({"model": "m", "input": "x", "text": {"format": format}}));
        assert_eq!(with(json!({"type": "text"})).get("response_format"), None);
        assert_eq!(with(json!({"type": "json_object"}))["response_format"], json!({"type": "json_object"}));
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
                            "additionalProperties": false});
        assert_eq!(
            with(json!({"type": "json_schema", "name": "thing", "schema": schema, "strict": true,
                        "description": "A thing"}))["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": true,
                                                          "description": "A thing"}})
        );
        assert_eq!(
            with(json!({"type": "json_schema", "name": "thing", "schema": schema}))["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "thing", "schema": schema}})
        );
        let p = ok(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(p.echo["text"], json!({"format": {"type": "json_object"}}));
        assert_eq!(
            native_only(json!({"model": "m", "input": "x", "text": {"verbosity": "low"}})),
            Some("text.verbosity")
        );
        let e = err(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}));
        assert_eq!(e.param.as_deref(), Some("text.format.name"));
        let e = err(json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}));
        assert_eq!(e.param.as_deref(), Some("text.format.type"));
    }

    #[test]
    fn tools_and_tool_choice() {
        let params = json!({"type": "object", "properties": {"city": {"type": "string", "enum": ["a", "b"]}},
                            "required": ["city"], "$defs": {"x": {"type": "integer"}}});
        let u = unified(json!({"model": "m", "input": "x", "parallel_tool_calls": false,
            "tool_choice": {"type": "function", "name": "weather"},
            "tools": [{"type": "function", "name": "weather", "description": "Get it", "parameters": params,
                       "strict": true},
                      {"type": "function", "name": "noop", "parameters": null, "strict": null}]}));
        assert_eq!(
            u["tools"],
            json!([{"type": "function", "function": {"name": "weather", "description": "Get it",
                                                     "parameters": params, "strict": true}},
                   {"type": "function", "function": {"name": "noop"}}])
        );
        assert_eq!(u["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
        assert_eq!(u["parallel_tool_calls"], json!(false));
        for choice in ["auto", "none", "required"] {
            let u = unified(json!({"model": "m", "input": "x", "tool_choice": choice,
                                   "tools": [{"type": "function", "name": "f"}]}));
            assert_eq!(u["tool_choice"], json!(choice));
        }
        // Without tools, neither means anything (and OpenAI's chat API would refuse them).
        let u = unified(json!({"model": "m", "input": "x", "tools": [], "tool_choice": "auto",
                               "parallel_tool_calls": true}));
        assert_eq!((u.get("tools"), u.get("tool_choice"), u.get("parallel_tool_calls")), (None, None, None));
    }

    #[test]
    fn sampling_limits_and_accepted_fields() {
        let p = ok(json!({"model": "m", "input": "x", "max_output_tokens": 64, "temperature": 0.5, "top_p": 0.9,
            "user": "u1", "stream": false, "metadata": {"k": "v"}, "store": true,
            "reasoning": {"effort": "high", "summary": "auto"}, "prompt_cache_key": "k",
            "safety_identifier": "s", "service_tier": "auto", "stream_options": {"include_obfuscation": false},
            "max_tool_calls": 3, "truncation": "disabled", "background": false,
            "include": ["reasoning.encrypted_content"],
            "previous_response_id": null, "conversation": null}));
        assert_eq!(p.native_only, None);
        assert_eq!(p.request.extensions.reasoning_effort.as_deref(), Some("high"));
        let mut body = p.request.body.clone();
        body.remove("n");
        assert_eq!(
            Value::Object(body),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 64, "temperature": 0.5,
                   "top_p": 0.9, "user": "u1", "stream": false})
        );
        assert_eq!(
            Value::Object(p.echo),
            json!({"max_output_tokens": 64, "temperature": 0.5, "top_p": 0.9, "user": "u1",
                   "metadata": {"k": "v"}, "reasoning": {"effort": "high", "summary": "auto"},
                   "prompt_cache_key": "k", "safety_identifier": "s", "max_tool_calls": 3,
                   "truncation": "disabled", "background": false})
        );
        let p = ok(json!({"model": "m", "input": "x", "reasoning": {"summary": "detailed"}}));
        assert_eq!(p.request.extensions, Extensions::default());
    }

    #[test]
    fn native_only_fields() {
        let cases: &[(Value, &str)] = &[
            (json!({"previous_response_id": "resp_1"}), "previous_response_id"),
            (json!({"conversation": "conv_1"}), "conversation"),
            (json!({"conversation": {"id": "conv_1"}}), "conversation"),
            (json!({"background": true}), "background"),
            (json!({"prompt": {"id": "pmpt_1"}}), "prompt"),
            (json!({"include": ["message.output_text.logprobs"]}), "include"),
            (json!({"include": ["file_search_call.results"]}), "include"),
            (json!({"truncation": "auto"}), "truncation"),
            (json!({"top_logprobs": 2}), "top_logprobs"),
            (json!({"moderation": {"model": "omni-moderation-latest"}}), "moderation"),
            (json!({"context_management": [{"type": "compaction"}]}), "context_management"),
            (json!({"text": {"format": {"type": "text"}, "verbosity": "high"}}), "text.verbosity"),
            (
                json!({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}),
                "tool_choice (allowed_tools)",
            ),
            (json!({"tool_choice": {"type": "web_search_preview"}}), "tool_choice"),
            (json!({"tool_choice": {"type": "mcp", "server_label": "s"}}), "tool_choice"),
        ];
        for (extra, field) in cases {
            let mut body = json!({"model": "m", "input": "x"});
            if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
                b.extend(e.clone());
            }
            assert_eq!(native_only(body.clone()), Some(*field), "{body}");
        }
        for (tool, field) in [
            ("web_search", "tools (web_search)"),
            ("web_search_preview", "tools (web_search_preview)"),
            ("file_search", "tools (file_search)"),
            ("code_interpreter", "tools (code_interpreter)"),
            ("computer_use_preview", "tools (computer_use_preview)"),
            ("image_generation", "tools (image_generation)"),
            ("mcp", "tools (mcp)"),
            ("local_shell", "tools (local_shell)"),
            ("custom", "tools (custom)"),
            ("shell", "tools (shell)"),
            ("apply_patch", "tools (apply_patch)"),
            ("a_tool_of_tomorrow", "tools"),
        ] {
            let body =
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": tool}]});
            let p = ok(body);
            assert_eq!(p.native_only, Some(field), "{tool}");
            // The function tools are still translated.
            assert_eq!(p.request.body["tools"][0]["function"]["name"], "f");
        }
        for item in [
            "item_reference",
            "web_search_call",
            "file_search_call",
            "computer_call",
            "computer_call_output",
            "code_interpreter_call",
            "image_generation_call",
            "local_shell_call",
            "local_shell_call_output",
            "shell_call",
            "shell_call_output",
            "apply_patch_call",
            "apply_patch_call_output",
            "mcp_list_tools",
            "mcp_approval_request",
            "mcp_approval_response",
            "mcp_call",
            "custom_tool_call",
            "custom_tool_call_output",
            "compaction",
        ] {
            let body = json!({"model": "m", "input": [{"role": "user", "content": "x"}, {"type": item, "id": "i"}]});
            assert_eq!(native_only(body), Some(item));
        }
        let body = json!({"model": "m", "input": [{"type": "hologram_call"}]});
        assert_eq!(native_only(body), Some("input (item type)"));
        // The first one found is named.
        let body = json!({"model": "m", "input": "x", "previous_response_id": "r", "truncation": "auto"});
        assert_eq!(native_only(body), Some("previous_response_id"));
    }

    #[test]
    fn a_native_only_request_parses_without_input() {
        let p = ok(json!({"model": "m", "previous_response_id": "resp_1", "input": []}));
        assert_eq!(p.native_only, Some("previous_response_id"));
        assert_eq!(p.request.body["messages"], json!([]));
        let p = ok(json!({"model": "m", "prompt": {"id": "pmpt_1", "variables": {"a": "b"}}}));
        assert_eq!(p.native_only, Some("prompt"));
        assert_eq!(p.native["prompt"]["variables"]["a"], "b");
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(Value, &str, &str)] = &[
            (json!({"input": "x"}), "model", "missing_required_parameter"),
            (json!({"model": 5, "input": "x"}), "model", "invalid_type"),
            (json!({"model": "m"}), "input", "missing_required_parameter"),
            (json!({"model": "m", "input": []}), "input", "missing_required_parameter"),
            (json!({"model": "m", "input": 5}), "input", "invalid_type"),
            (json!({"model": "m", "input": ["x"]}), "input[0]", "invalid_type"),
            (json!({"model": "m", "input": [{"content": "x"}]}), "input[0].type", "missing_required_parameter"),
            (
                json!({"model": "m", "input": [{"type": "message", "content": "x"}]}),
                "input[0].role",
                "missing_required_parameter",
            ),
            (json!({"model": "m", "input": [{"role": "bot", "content": "x"}]}), "input[0].role", "invalid_value"),
            (json!({"model": "m", "input": [{"role": "user"}]}), "input[0].content", "missing_required_parameter"),
            (json!({"model": "m", "input": [{"role": "user", "content": 1}]}), "input[0].content", "invalid_type"),
            (
                json!({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                    {"role": "user", "content": "c"}, {"role": "user", "content": [{"type": "input_video"}]}]}),
                "input[3].content[0].type",
                "invalid_value",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"text": "x"}]}]}),
                "input[0].content[0].type",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
                "input[0].content[0].text",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]}),
                "input[0].content[0].type",
                "invalid_value",
            ),
            (
                json!({"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]}),
                "input[0].content[0].type",
                "invalid_value",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
                "input[0].content[0].image_url",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u", "detail": "max"}]}]}),
                "input[0].content[0].detail",
                "invalid_value",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
                "input[0].call_id",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}),
                "input[0].arguments",
                "invalid_type",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
                "input[0].output",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "refusal", "refusal": "x"}]}]}),
                "input[0].output[0].type",
                "invalid_value",
            ),
            (json!({"model": "m", "input": "x", "tools": {}}), "tools", "invalid_type"),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
                "tools[0].name",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"name": "f"}]}),
                "tools[0].type",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f", "parameters": "{}"}]}),
                "tools[0].parameters",
                "invalid_type",
            ),
            (json!({"model": "m", "input": "x", "tool_choice": "any"}), "tool_choice", "invalid_value"),
            (
                json!({"model": "m", "input": "x", "tool_choice": {"type": "function"}}),
                "tool_choice.name",
                "missing_required_parameter",
            ),
            (json!({"model": "m", "input": "x", "temperature": 3}), "temperature", "invalid_value"),
            (json!({"model": "m", "input": "x", "top_p": "high"}), "top_p", "invalid_type"),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": 0}),
                "max_output_tokens",
                "integer_below_min_value",
            ),
            (json!({"model": "m", "input": "x", "max_output_tokens": 1.5}), "max_output_tokens", "invalid_type"),
            (json!({"model": "m", "input": "x", "stream": "yes"}), "stream", "invalid_type"),
            (json!({"model": "m", "input": "x", "truncation": "middle"}), "truncation", "invalid_value"),
            (json!({"model": "m", "input": "x", "include": "all"}), "include", "invalid_type"),
            (json!({"model": "m", "input": "x", "metadata": []}), "metadata", "invalid_type"),
            (json!({"model": "m", "input": "x", "reasoning": {"effort": 1}}), "reasoning.effort", "invalid_type"),
            (json!({"model": "m", "input": "x", "reasoning": {"budget": 1}}), "reasoning.budget", "unknown_parameter"),
            (json!({"model": "m", "input": "x", "text": {"colour": "red"}}), "text.colour", "unknown_parameter"),
        ];
        for (body, param, code) in cases {
            let e = err(body.clone());
            assert_eq!(e.status_for(crate::error::Family::Responses), 400, "{body}");
            assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some(*param), Some(*code)), "{body}: {e}");
            assert!(e.message().contains(param), "{body}: {}", e.message());
        }
    }

    /// An unknown top-level field does not fail the parse: it is named for the attempt, which
    /// forwards it to OpenAI as sent or refuses the translation with `unknown`'s 400.
    #[test]
    fn unknown_top_level_fields_are_named() {
        for (body, field) in [
            (json!({"model": "m", "input": "x", "future_field": {"x": 1}}), "future_field"),
            (json!({"model": "m", "input": "x", "max_tokens": 5, "frequency_penalty": 1}), "max_tokens"),
        ] {
            let p = ok(body.clone());
            assert_eq!(p.unknown.as_deref(), Some(field), "{body}");
            assert_eq!(p.native_only, None, "{body}");
            assert!(p.native.contains_key(field), "kept for the native path: {body}");
            assert!(!p.request.body.contains_key(field), "never translated: {body}");
        }
        let e = unknown_parameter("frequency_penalty".into());
        assert_eq!(e.message(), "Unknown parameter: 'frequency_penalty'.");
        assert_eq!((e.param.as_deref(), e.code.as_deref()), (Some("frequency_penalty"), Some("unknown_parameter")));
    }

    #[test]
    fn bodies_that_are_not_objects() {
        for body in [&b"{"[..], b"[]", b"\"x\"", b""] {
            let e = match parse(body) {
                Ok(_) => panic!("accepted {body:?}"),
                Err(e) => e,
            };
            assert_eq!(e.status_for(crate::error::Family::Responses), 400);
        }
    }

    /// JSON values whose object keys are mostly the Responses API's own names, so that
    /// arbitrary bodies reach deep into the translation.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            4 => prop::sample::select(vec![
                "model", "input", "type", "role", "content", "text", "image_url", "file_id", "detail", "call_id",
                "name", "arguments", "output", "tools", "tool_choice", "parameters", "strict", "format", "schema",
                "instructions", "reasoning", "effort", "summary", "stream", "temperature", "max_output_tokens",
                "include", "truncation", "background", "metadata", "refusal", "verbosity", "parallel_tool_calls",
            ])
            .prop_map(str::to_owned),
            1 => "[a-z_]{1,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-3.0f64..3.0).prop_map(Value::from),
            prop::sample::select(vec![
                "message",
                "user",
                "assistant",
                "developer",
                "system",
                "input_text",
                "output_text",
                "input_image",
                "function_call",
                "function_call_output",
                "reasoning",
                "function",
                "json_schema",
                "json_object",
                "auto",
                "required",
                "none",
                "web_search",
                "item_reference",
                "refusal",
                "disabled",
                "x",
            ])
            .prop_map(Value::from),
            ".{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in json_value(), input in json_value()) {
            let mut bodies = vec![value.clone()];
            // The same value as a whole body's input, and its fields beside a valid one.
            bodies.push(json!({"model": "m", "input": input}));
            if let Value::Object(o) = &value {
                let mut body = o.clone();
                body.insert("model".into(), json!("m"));
                body.entry("input").or_insert(json!("x"));
                bodies.push(Value::Object(body));
            }
            for body in bodies {
                match parse(body.to_string().as_bytes()) {
                    Ok(p) => {
                        prop_assert!(serde_json::to_vec(&p.request.body).is_ok());
                        if p.native_only.is_none() {
                            // What the providers get is a valid unified request.
                            let again = request_from_value(EndpointType::Chat, Value::Object(p.request.body.clone()));
                            prop_assert!(again.is_ok(), "{body}: {:?}", again.err());
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.status_for(crate::error::Family::Responses), 400);
                        prop_assert!(!e.message().is_empty());
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&bytes);
        }
    }
}
