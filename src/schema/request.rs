//! Unified requests: parsing, validation with pydantic's rules and FastAPI's error shape, and
//! model defaults.

use serde_json::{Map, Number, Value, json};

use super::EndpointType;

/// A parsed, validated unified request. The body keeps every field the client sent (nulls
/// removed, lax values coerced, `n` defaulted for chat and completions).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Which API the body was validated against.
    pub endpoint_type: EndpointType,
    /// The request object.
    pub body: Map<String, Value>,
    /// Whether `n` was absent and set to MLflow's default of 1 (a model default may replace it).
    pub implicit_n: bool,
    /// Features of the Anthropic Messages or OpenAI Responses request that MLflow's unified
    /// schema has no field for. A provider that can honour one says so
    /// (`Provider::accepts`); for any other provider the request is refused with a 400 naming
    /// the field, never sent without it.
    pub extensions: Extensions,
}

/// A request feature outside MLflow's unified schema (see [`Request::extensions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Anthropic's `top_k`.
    TopK,
    /// Anthropic's `thinking` (extended thinking with a token budget).
    Thinking,
    /// The Responses API's `reasoning.effort`.
    ReasoningEffort,
}

impl Extension {
    /// The request field as the client spelled it.
    pub fn field(self) -> &'static str {
        match self {
            Extension::TopK => "top_k",
            Extension::Thinking => "thinking",
            Extension::ReasoningEffort => "reasoning.effort",
        }
    }
}

/// The values of the [`Extension`]s a request uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extensions {
    /// Anthropic's `top_k`.
    pub top_k: Option<u64>,
    /// Anthropic's `thinking` object, as sent (`{"type": "enabled", "budget_tokens": N}`).
    pub thinking: Option<Value>,
    /// The Responses API's `reasoning.effort` (`minimal`, `low`, `medium`, `high`).
    pub reasoning_effort: Option<String>,
    /// Signed thinking of earlier assistant turns (from Messages `thinking` blocks, or from
    /// Responses reasoning items the gateway wrote), in order. Not an [`Extension`]: only
    /// Claude's translations give it back (Claude wants the thinking of a turn that called tools
    /// when thinking is on); every other provider leaves it out (docs/client-apis.md, "Thinking
    /// history").
    pub thinking_history: Vec<SignedThinking>,
}

/// One signed thinking block of an earlier assistant turn (Anthropic's `thinking` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedThinking {
    /// The index of the assistant message it belongs to, in the unified `messages`.
    pub message: usize,
    /// The thinking text.
    pub thinking: String,
    /// Anthropic's signature of it.
    pub signature: String,
}

impl Extensions {
    /// The extensions this request uses.
    pub fn used(&self) -> impl Iterator<Item = Extension> + '_ {
        [
            self.top_k.map(|_| Extension::TopK),
            self.thinking.as_ref().map(|_| Extension::Thinking),
            self.reasoning_effort.as_ref().map(|_| Extension::ReasoningEffort),
        ]
        .into_iter()
        .flatten()
    }
}

impl Request {
    /// Whether the client asked for a streamed answer (never for embeddings).
    pub fn stream(&self) -> bool {
        self.endpoint_type != EndpointType::Embeddings && matches!(self.body.get("stream"), Some(Value::Bool(true)))
    }

    /// The chat messages (empty for other types).
    pub fn messages(&self) -> &[Value] {
        match self.body.get("messages") {
            Some(Value::Array(m)) => m,
            _ => &[],
        }
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.body.get(key).and_then(Value::as_str)
    }

    /// A number field.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.body.get(key).and_then(Value::as_f64)
    }

    /// An integer field.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.body.get(key).and_then(Value::as_u64)
    }
}

/// FastAPI's 422 `detail` list: one object per problem (`type`, `loc`, `msg`, `input`, `ctx`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidationErrors(pub Vec<Value>);

impl ValidationErrors {
    fn push(&mut self, kind: &str, loc: &Loc<'_>, msg: impl Into<String>, input: &Value, ctx: Option<Value>) {
        let mut item = Map::with_capacity(5);
        item.insert("type".into(), Value::from(kind));
        item.insert("loc".into(), loc.to_value());
        item.insert("msg".into(), Value::String(msg.into()));
        item.insert("input".into(), input.clone());
        if let Some(ctx) = ctx {
            item.insert("ctx".into(), ctx);
        }
        self.0.push(Value::Object(item));
    }

    /// The first problem as one line, e.g. `messages: Field required`, and its dotted location
    /// (for OpenAI-style errors, which carry one message and one `param`).
    pub fn summary(&self) -> (String, Option<String>) {
        let Some(first) = self.0.first() else {
            return ("Invalid request".into(), None);
        };
        let msg = first.get("msg").and_then(Value::as_str).unwrap_or("Invalid request");
        let loc = first.get("loc").and_then(Value::as_array);
        let dotted = |keep: &dyn Fn(&str) -> bool| {
            loc.map(|loc| {
                loc.iter()
                    .skip(1)
                    .map(|p| match p {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .filter(|s| keep(s))
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .filter(|p| !p.is_empty())
        };
        // The message keeps pydantic's whole location (union members included, as FastAPI
        // reports it); `param` names only the request's own fields.
        let place = dotted(&|_| true);
        let param = dotted(&|s| !is_union_member(s));
        match place {
            Some(p) => (format!("{p}: {msg}"), param),
            None => (msg.to_owned(), None),
        }
    }
}

/// Whether a location segment is a pydantic union member tag (`str`, `list[…]`), not a field.
fn is_union_member(segment: &str) -> bool {
    segment.contains('[') || matches!(segment, "str" | "int" | "float" | "bool")
}

/// A location in the body, for error reports: `["body", "messages", 0, "content"]`.
#[derive(Clone, Copy)]
enum Loc<'a> {
    Body,
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl Loc<'_> {
    fn to_value(self) -> Value {
        let mut parts = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                Loc::Body => {
                    parts.push(Value::from("body"));
                    break;
                }
                Loc::Key(parent, k) => {
                    parts.push(Value::from(k));
                    cur = *parent;
                }
                Loc::Index(parent, i) => {
                    parts.push(Value::from(i));
                    cur = *parent;
                }
            }
        }
        parts.reverse();
        Value::Array(parts)
    }
}

/// Parse and validate a request body for `endpoint_type`.
pub fn parse_request(endpoint_type: EndpointType, bytes: &[u8]) -> Result<Request, ValidationErrors> {
    match serde_json::from_slice(bytes) {
        Ok(v) => request_from_value(endpoint_type, v),
        Err(e) => Err(json_error(bytes, &e)),
    }
}

/// FastAPI's error for a body that is not JSON: loc `["body", <offset>]`, input `{}`, the
/// decoder's message in `ctx.error`.
pub fn json_error(bytes: &[u8], e: &serde_json::Error) -> ValidationErrors {
    let offset = byte_offset(bytes, e.line(), e.column());
    ValidationErrors(vec![json!({
        "type": "json_invalid",
        "loc": ["body", offset],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": e.to_string()},
    })])
}

/// Validate an already parsed body for `endpoint_type`.
pub fn request_from_value(endpoint_type: EndpointType, value: Value) -> Result<Request, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let Value::Object(mut body) = value else {
        errors.push(
            "model_attributes_type",
            &Loc::Body,
            "Input should be a valid dictionary or object to extract fields from",
            &value,
            None,
        );
        return Err(errors);
    };
    let implicit_n = endpoint_type != EndpointType::Embeddings && body.get("n").is_none_or(Value::is_null);
    validate(endpoint_type, &mut body, &mut errors);
    if errors.0.is_empty() {
        Ok(Request { endpoint_type, body, implicit_n, extensions: Extensions::default() })
    } else {
        Err(errors)
    }
}

fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let mut offset = 0;
    for (i, l) in bytes.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.len() + 1;
    }
    bytes.len()
}

fn validate(endpoint_type: EndpointType, body: &mut Map<String, Value>, errors: &mut ValidationErrors) {
    // exclude_none: nulls are "not given".
    body.retain(|_, v| !v.is_null());
    let snapshot = if has_required(endpoint_type, body) { Value::Null } else { Value::Object(body.clone()) };
    match endpoint_type {
        EndpointType::Chat => {
            require(body, "messages", &snapshot, errors);
            check_common(body, errors);
            if let Some(v) = body.get_mut("messages") {
                check_messages(v, &Loc::Key(&Loc::Body, "messages"), errors);
            }
            if let Some(v) = body.get_mut("tools") {
                check_tools(v, &Loc::Key(&Loc::Body, "tools"), errors);
            }
            if let Some(v) = body.get_mut("tool_choice") {
                check_tool_choice(v, &Loc::Key(&Loc::Body, "tool_choice"), errors);
            }
        }
        EndpointType::Completions => {
            require(body, "prompt", &snapshot, errors);
            check_common(body, errors);
            if let Some(v) = body.get_mut("prompt") {
                check_str(v, &Loc::Key(&Loc::Body, "prompt"), errors);
            }
        }
        EndpointType::Embeddings => {
            // Embeddings do not stream: `stream` is ignored, and not sent upstream (OpenAI's
            // embeddings API refuses arguments it does not know).
            body.remove("stream");
            require(body, "input", &snapshot, errors);
            if let Some(v) = body.get_mut("input") {
                check_embedding_input(v, &Loc::Key(&Loc::Body, "input"), errors);
            }
        }
    }
}

fn has_required(endpoint_type: EndpointType, body: &Map<String, Value>) -> bool {
    body.contains_key(match endpoint_type {
        EndpointType::Chat => "messages",
        EndpointType::Completions => "prompt",
        EndpointType::Embeddings => "input",
    })
}

fn require(body: &Map<String, Value>, key: &str, snapshot: &Value, errors: &mut ValidationErrors) {
    if !body.contains_key(key) {
        errors.push("missing", &Loc::Key(&Loc::Body, key), "Field required", snapshot, None);
    }
}

/// The parameters chat and completions share (MLflow's `BaseRequestPayload`).
fn check_common(body: &mut Map<String, Value>, errors: &mut ValidationErrors) {
    body.entry("n").or_insert(Value::from(1));
    for (key, value) in body.iter_mut() {
        let loc = Loc::Key(&Loc::Body, key);
        check_param(key, value, &loc, errors);
    }
}

/// Check one common parameter; returns false when `key` is not a common parameter.
fn check_param(key: &str, value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) -> bool {
    match key {
        "n" | "max_tokens" | "max_completion_tokens" | "top_k" => check_int(value, loc, 1, errors),
        "temperature" => check_float(value, loc, Some(0.0), Some(2.0), errors),
        "top_p" => check_float(value, loc, Some(0.0), Some(1.0), errors),
        "presence_penalty" | "frequency_penalty" => check_float(value, loc, Some(-2.0), Some(2.0), errors),
        "stream" => check_bool(value, loc, errors),
        "stop" => check_stop(value, loc, errors),
        "model" => check_str(value, loc, errors),
        "stream_options" => check_dict(value, loc, errors),
        "response_format" => check_response_format(value, loc, errors),
        _ => return false,
    }
    true
}

fn check_int(value: &mut Value, loc: &Loc<'_>, ge: i64, errors: &mut ValidationErrors) {
    let parsed = match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
                Some(_) => {
                    errors.push(
                        "int_from_float",
                        loc,
                        "Input should be a valid integer, got a number with a fractional part",
                        value,
                        None,
                    );
                    return;
                }
                None => None,
            },
        },
        Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Some(i),
            Err(_) => {
                errors.push(
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    value,
                    None,
                );
                return;
            }
        },
        _ => None,
    };
    let Some(i) = parsed else {
        errors.push("int_type", loc, "Input should be a valid integer", value, None);
        return;
    };
    if i < ge {
        errors.push(
            "greater_than_equal",
            loc,
            format!("Input should be greater than or equal to {ge}"),
            value,
            Some(json!({ "ge": ge })),
        );
        return;
    }
    *value = Value::from(i);
}

fn check_float(value: &mut Value, loc: &Loc<'_>, ge: Option<f64>, le: Option<f64>, errors: &mut ValidationErrors) {
    let f = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => {
                // Keep the client's number as a JSON number from here on.
                if let Some(n) = Number::from_f64(f) {
                    *value = Value::Number(n);
                }
                Some(f)
            }
            _ => {
                errors.push(
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    value,
                    None,
                );
                return;
            }
        },
        _ => None,
    };
    let Some(f) = f else {
        errors.push("float_type", loc, "Input should be a valid number", value, None);
        return;
    };
    if let Some(ge) = ge.filter(|ge| f < *ge) {
        errors.push(
            "greater_than_equal",
            loc,
            format!("Input should be greater than or equal to {}", fmt_bound(ge)),
            value,
            Some(json!({ "ge": ge })),
        );
    } else if let Some(le) = le.filter(|le| f > *le) {
        errors.push(
            "less_than_equal",
            loc,
            format!("Input should be less than or equal to {}", fmt_bound(le)),
            value,
            Some(json!({ "le": le })),
        );
    }
}

fn fmt_bound(b: f64) -> String {
    if b.fract() == 0.0 { format!("{}", b as i64) } else { b.to_string() }
}

fn check_bool(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let b = match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" | "y" | "t" => Some(true),
            "false" | "no" | "off" | "0" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    };
    match b {
        Some(b) => *value = Value::Bool(b),
        None => errors.push("bool_parsing", loc, "Input should be a valid boolean", value, None),
    }
}

fn check_str(value: &Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    if !value.is_string() {
        errors.push("string_type", loc, "Input should be a valid string", value, None);
    }
}

fn check_dict(value: &Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    if !value.is_object() {
        errors.push("dict_type", loc, "Input should be a valid dictionary", value, None);
    }
}

fn check_list<'v>(value: &'v mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) -> Option<&'v mut Vec<Value>> {
    if !value.is_array() {
        errors.push("list_type", loc, "Input should be a valid list", value, None);
    }
    value.as_array_mut()
}

fn too_short(value: &Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    errors.push(
        "too_short",
        loc,
        "List should have at least 1 item after validation, not 0",
        value,
        Some(json!({"field_type": "List", "min_length": 1, "actual_length": 0})),
    );
}

fn check_stop(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let Some(items) = check_list(value, loc, errors) else { return };
    if items.is_empty() {
        too_short(value, loc, errors);
        return;
    }
    for (i, item) in items.iter().enumerate() {
        check_str(item, &Loc::Index(loc, i), errors);
    }
}

fn check_response_format(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let Some(obj) = value.as_object() else {
        errors.push("model_type", loc, "Input should be a valid dictionary or instance of ResponseFormat", value, None);
        return;
    };
    match obj.get("type") {
        Some(Value::String(t)) if matches!(t.as_str(), "text" | "json_object" | "json_schema") => {
            if t == "json_schema" && !obj.get("json_schema").is_some_and(Value::is_object) {
                errors.push("missing", &Loc::Key(loc, "json_schema"), "Field required", value, None);
            }
        }
        Some(other) => errors.push(
            "literal_error",
            &Loc::Key(loc, "type"),
            "Input should be 'text', 'json_object' or 'json_schema'",
            other,
            Some(json!({"expected": "'text', 'json_object' or 'json_schema'"})),
        ),
        None => errors.push("missing", &Loc::Key(loc, "type"), "Field required", value, None),
    }
}

fn check_messages(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let Some(items) = check_list(value, loc, errors) else { return };
    if items.is_empty() {
        too_short(value, loc, errors);
        return;
    }
    for (i, message) in items.iter_mut().enumerate() {
        let mloc = Loc::Index(loc, i);
        let Some(m) = message.as_object_mut() else {
            errors.push(
                "model_type",
                &mloc,
                "Input should be a valid dictionary or instance of RequestMessage",
                message,
                Some(json!({"class_name": "RequestMessage"})),
            );
            continue;
        };
        m.retain(|_, v| !v.is_null());
        match m.get("role") {
            Some(Value::String(_)) => {}
            Some(other) => {
                errors.push("string_type", &Loc::Key(&mloc, "role"), "Input should be a valid string", other, None)
            }
            None => {
                let snapshot = Value::Object(m.clone());
                errors.push("missing", &Loc::Key(&mloc, "role"), "Field required", &snapshot, None);
            }
        }
        if let Some(content) = m.get_mut("content") {
            check_content(content, &Loc::Key(&mloc, "content"), errors);
        }
        for key in ["refusal", "tool_call_id"] {
            if let Some(v) = m.get(key) {
                check_str(v, &Loc::Key(&mloc, key), errors);
            }
        }
        if let Some(calls) = m.get_mut("tool_calls") {
            check_tool_calls(calls, &Loc::Key(&mloc, "tool_calls"), errors);
        }
    }
}

fn check_content(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let parts = match value {
        Value::String(_) => return,
        Value::Array(parts) => parts,
        other => {
            errors.push("string_type", &Loc::Key(loc, "str"), "Input should be a valid string", other, None);
            errors.push("list_type", &Loc::Key(loc, "list[tagged-union]"), "Input should be a valid list", other, None);
            return;
        }
    };
    for (i, part) in parts.iter_mut().enumerate() {
        let ploc = Loc::Index(loc, i);
        let Some(p) = part.as_object_mut() else {
            errors.push(
                "model_attributes_type",
                &ploc,
                "Input should be a valid dictionary or object to extract fields from",
                part,
                None,
            );
            continue;
        };
        p.retain(|_, v| !v.is_null());
        let kind = p.get("type").and_then(Value::as_str).map(str::to_owned);
        match kind.as_deref() {
            Some("text") => match p.get("text") {
                Some(Value::String(_)) => {}
                Some(v) => errors.push(
                    "string_type",
                    &Loc::Key(&Loc::Key(&ploc, "text"), "text"),
                    "Input should be a valid string",
                    v,
                    None,
                ),
                None => {
                    let snapshot = Value::Object(p.clone());
                    errors.push(
                        "missing",
                        &Loc::Key(&Loc::Key(&ploc, "text"), "text"),
                        "Field required",
                        &snapshot,
                        None,
                    );
                }
            },
            Some("image_url") => {
                let iloc = Loc::Key(&ploc, "image_url");
                match p.get("image_url") {
                    Some(Value::Object(img)) => {
                        if !img.get("url").is_some_and(Value::is_string) {
                            let snapshot = Value::Object(img.clone());
                            errors.push(
                                "missing",
                                &Loc::Key(&Loc::Key(&iloc, "image_url"), "url"),
                                "Field required",
                                &snapshot,
                                None,
                            );
                        }
                        if let Some(d) = img.get("detail").filter(|d| !d.is_null())
                            && !matches!(d.as_str(), Some("auto" | "low" | "high"))
                        {
                            errors.push(
                                "literal_error",
                                &Loc::Key(&Loc::Key(&iloc, "image_url"), "detail"),
                                "Input should be 'auto', 'low' or 'high'",
                                d,
                                Some(json!({"expected": "'auto', 'low' or 'high'"})),
                            );
                        }
                    }
                    other => {
                        let snapshot = Value::Object(p.clone());
                        errors.push(
                            "missing",
                            &Loc::Key(&iloc, "image_url"),
                            "Field required",
                            other.unwrap_or(&snapshot),
                            None,
                        );
                    }
                }
            }
            Some("input_audio") => {
                let aloc = Loc::Key(&ploc, "input_audio");
                match p.get("input_audio") {
                    Some(Value::Object(a)) => {
                        if !a.get("data").is_some_and(Value::is_string) {
                            errors.push(
                                "missing",
                                &Loc::Key(&Loc::Key(&aloc, "input_audio"), "data"),
                                "Field required",
                                &Value::Object(a.clone()),
                                None,
                            );
                        }
                        if !matches!(a.get("format").and_then(Value::as_str), Some("wav" | "mp3")) {
                            errors.push(
                                "literal_error",
                                &Loc::Key(&Loc::Key(&aloc, "input_audio"), "format"),
                                "Input should be 'wav' or 'mp3'",
                                a.get("format").unwrap_or(&Value::Null),
                                Some(json!({"expected": "'wav' or 'mp3'"})),
                            );
                        }
                    }
                    _ => {
                        let snapshot = Value::Object(p.clone());
                        errors.push("missing", &Loc::Key(&aloc, "input_audio"), "Field required", &snapshot, None);
                    }
                }
            }
            Some("reasoning") => {}
            Some(other) => {
                let other = other.to_owned();
                errors.push(
                    "union_tag_invalid",
                    &ploc,
                    format!(
                        "Input tag '{other}' found using 'type' does not match any of the expected \
                         tags: 'text', 'image_url', 'input_audio', 'reasoning'"
                    ),
                    part,
                    Some(json!({"discriminator": "'type'", "tag": other, "expected_tags": "'text', 'image_url', 'input_audio', 'reasoning'"})),
                );
            }
            None => errors.push(
                "union_tag_not_found",
                &ploc,
                "Unable to extract tag using discriminator 'type'",
                part,
                Some(json!({"discriminator": "'type'"})),
            ),
        }
    }
}

fn check_tool_calls(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let Some(calls) = check_list(value, loc, errors) else { return };
    for (i, call) in calls.iter_mut().enumerate() {
        let cloc = Loc::Index(loc, i);
        let Some(c) = call.as_object_mut() else {
            errors.push("model_type", &cloc, "Input should be a valid dictionary or instance of ToolCall", call, None);
            continue;
        };
        c.retain(|_, v| !v.is_null());
        if !c.get("id").is_some_and(Value::is_string) {
            let snapshot = Value::Object(c.clone());
            errors.push("missing", &Loc::Key(&cloc, "id"), "Field required", c.get("id").unwrap_or(&snapshot), None);
        }
        c.entry("type").or_insert(Value::from("function"));
        match c.get_mut("function") {
            Some(Value::Object(f)) => {
                f.retain(|_, v| !v.is_null());
                for key in ["name", "arguments"] {
                    if let Some(v) = f.get(key) {
                        check_str(v, &Loc::Key(&Loc::Key(&cloc, "function"), key), errors);
                    }
                }
            }
            Some(other) => errors.push(
                "model_type",
                &Loc::Key(&cloc, "function"),
                "Input should be a valid dictionary",
                other,
                None,
            ),
            None => {
                let snapshot = Value::Object(c.clone());
                errors.push("missing", &Loc::Key(&cloc, "function"), "Field required", &snapshot, None);
            }
        }
    }
}

fn check_tools(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let Some(tools) = check_list(value, loc, errors) else { return };
    for (i, tool) in tools.iter_mut().enumerate() {
        let tloc = Loc::Index(loc, i);
        let Some(t) = tool.as_object_mut() else {
            errors.push(
                "model_type",
                &tloc,
                "Input should be a valid dictionary or instance of ToolDefinition",
                tool,
                None,
            );
            continue;
        };
        t.entry("type").or_insert(Value::from("function"));
        match t.get("type").and_then(Value::as_str) {
            Some("function") => match t.get("function") {
                Some(Value::Object(f)) => {
                    if !f.get("name").is_some_and(Value::is_string) {
                        errors.push(
                            "missing",
                            &Loc::Key(&Loc::Key(&tloc, "function"), "name"),
                            "Field required",
                            &Value::Object(f.clone()),
                            None,
                        );
                    }
                    if let Some(p) = f.get("parameters").filter(|p| !p.is_null() && !p.is_object()) {
                        errors.push(
                            "model_type",
                            &Loc::Key(&Loc::Key(&tloc, "function"), "parameters"),
                            "Input should be a valid dictionary",
                            p,
                            None,
                        );
                    }
                }
                _ => {
                    let snapshot = Value::Object(t.clone());
                    errors.push("missing", &Loc::Key(&tloc, "function"), "Field required", &snapshot, None);
                }
            },
            Some("uc_function") => {}
            _ => errors.push(
                "literal_error",
                &Loc::Key(&tloc, "type"),
                "Input should be 'function' or 'uc_function'",
                t.get("type").unwrap_or(&Value::Null),
                Some(json!({"expected": "'function' or 'uc_function'"})),
            ),
        }
    }
}

/// A tool's `parameters` as the object schema a provider that needs one gets (Anthropic's
/// `input_schema`, Converse's `inputSchema.json`): `type` defaults to `"object"` and
/// `properties` to `{}` (a tool without parameters, `{}` or `{"type": "object"}` is valid, as
/// in MLflow 3.18); every other keyword, at any depth, stays as sent
/// (docs/mlflow-compat.md#fix-6 and #mlflow-318-provider-translations). Absent or null
/// parameters are `{"type": "object", "properties": {}}`.
pub fn object_schema(parameters: Option<Value>) -> Value {
    let mut schema = match parameters {
        Some(Value::Object(o)) => o,
        _ => Map::with_capacity(2),
    };
    if schema.get("type").is_none_or(Value::is_null) {
        schema.insert("type".into(), Value::from("object"));
    }
    if schema.get("properties").is_none_or(Value::is_null) {
        schema.insert("properties".into(), Value::Object(Map::new()));
    }
    Value::Object(schema)
}

fn check_tool_choice(value: &mut Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    match value {
        Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => {}
        Value::Object(o) if o.get("function").and_then(|f| f.get("name")).is_some_and(Value::is_string) => {
            o.entry("type").or_insert(Value::from("function"));
        }
        other => errors.push(
            "literal_error",
            loc,
            "Input should be 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}",
            other,
            None,
        ),
    }
}

fn check_embedding_input(value: &Value, loc: &Loc<'_>, errors: &mut ValidationErrors) {
    let ok = match value {
        Value::String(_) => true,
        Value::Array(items) => {
            items.iter().all(Value::is_string)
                || items.iter().all(|v| v.is_i64() || v.is_u64())
                || items
                    .iter()
                    .all(|v| v.as_array().is_some_and(|inner| inner.iter().all(|x| x.is_i64() || x.is_u64())))
        }
        _ => false,
    };
    if !ok {
        errors.push(
            "union_type",
            loc,
            "Input should be a string, a list of strings, a list of token ids or a list of lists of token ids",
            value,
            None,
        );
    }
}

/// Request parameters that may be given as model defaults under `model.config`, besides the
/// common ones validated by [`check_param`].
const EXTRA_CHAT_DEFAULTS: &[&str] = &[
    "seed",
    "user",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "parallel_tool_calls",
    "reasoning_effort",
    "service_tier",
    "metadata",
    "tool_choice",
    "tools",
    "modalities",
    "prediction",
    "store",
    "verbosity",
];
const EMBEDDING_DEFAULTS: &[&str] = &["dimensions", "encoding_format", "user"];

/// Decide what a leftover `model.config` key is (docs/mlflow-compat.md#fix-5): `Ok(Some(value))` a request
/// parameter default (validated, coerced), `Ok(None)` not a request parameter, `Err` a request
/// parameter with an invalid value or one that cannot be a default.
pub fn validate_default(endpoint_type: EndpointType, key: &str, value: &Value) -> Result<Option<Value>, String> {
    if matches!(key, "stream" | "model" | "messages" | "prompt" | "input") {
        return Err(format!("'{key}' belongs to each request and cannot be a model default"));
    }
    let mut v = value.clone();
    let mut errors = ValidationErrors::default();
    let loc = Loc::Key(&Loc::Body, key);
    match endpoint_type {
        EndpointType::Chat | EndpointType::Completions => {
            if !check_param(key, &mut v, &loc, &mut errors) {
                match key {
                    "tools" if endpoint_type == EndpointType::Chat => check_tools(&mut v, &loc, &mut errors),
                    "tool_choice" if endpoint_type == EndpointType::Chat => {
                        check_tool_choice(&mut v, &loc, &mut errors)
                    }
                    _ if EXTRA_CHAT_DEFAULTS.contains(&key) => {}
                    _ => return Ok(None),
                }
            }
        }
        EndpointType::Embeddings => {
            if !EMBEDDING_DEFAULTS.contains(&key) {
                return Ok(None);
            }
        }
    }
    match errors.0.first() {
        None => Ok(Some(v)),
        Some(e) => Err(e.get("msg").and_then(Value::as_str).unwrap_or("invalid value").to_owned()),
    }
}

/// Merge model defaults into a request: a default applies where the request leaves the
/// parameter unset (absent or null). `n` counts as unset when it is the implicit 1.
pub fn apply_defaults(request: &mut Request, defaults: &Map<String, Value>) {
    for (key, value) in defaults {
        let unset = match request.body.get(key) {
            None | Some(Value::Null) => true,
            Some(_) => key == "n" && request.implicit_n,
        };
        if unset {
            request.body.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(t: EndpointType, body: &str) -> Vec<Value> {
        parse_request(t, body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn embeddings_drop_stream() {
        let r = parse_request(EndpointType::Embeddings, br#"{"input": "x", "stream": "yes"}"#).unwrap();
        assert!(!r.body.contains_key("stream") && !r.stream());
        let r = parse_request(EndpointType::Embeddings, br#"{"input": "x", "stream": true}"#).unwrap();
        assert!(!r.body.contains_key("stream"));
    }

    #[test]
    fn summary_names_the_field_without_union_members() {
        let e = parse_request(EndpointType::Chat, br#"{"messages": [{"role": "user", "content": 5}]}"#).unwrap_err();
        let (message, param) = e.summary();
        assert!(message.starts_with("messages.0.content.str: "), "{message}");
        assert_eq!(param.as_deref(), Some("messages.0.content"));
        let e = parse_request(EndpointType::Completions, br#"{}"#).unwrap_err();
        assert_eq!(e.summary(), ("prompt: Field required".to_owned(), Some("prompt".to_owned())));
    }

    #[test]
    fn missing_prompt_matches_fastapi() {
        assert_eq!(
            errs(EndpointType::Completions, r#"{"promptx": "x"}"#),
            vec![
                json!({"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": {"promptx": "x"}})
            ]
        );
    }

    #[test]
    fn empty_messages_matches_fastapi() {
        assert_eq!(
            errs(EndpointType::Chat, r#"{"messages": []}"#),
            vec![json!({"type": "too_short", "loc": ["body", "messages"],
                "msg": "List should have at least 1 item after validation, not 0", "input": [],
                "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0}})]
        );
    }

    #[test]
    fn temperature_range_matches_fastapi() {
        assert_eq!(
            errs(EndpointType::Completions, r#"{"prompt": "x", "temperature": 2.5}"#),
            vec![json!({"type": "less_than_equal", "loc": ["body", "temperature"],
                "msg": "Input should be less than or equal to 2", "input": 2.5, "ctx": {"le": 2.0}})]
        );
    }

    #[test]
    fn wrong_type_for_endpoint() {
        let e = errs(EndpointType::Embeddings, r#"{"messages": [{"role": "user", "content": "x"}]}"#);
        assert_eq!(e[0]["loc"], json!(["body", "input"]));
        assert_eq!(e[0]["input"], json!({"messages": [{"role": "user", "content": "x"}]}));
    }

    #[test]
    fn lax_coercions_and_n_default() {
        let r = parse_request(
            EndpointType::Chat,
            br#"{"messages":[{"role":"user","content":"hi","name":"bob"}],"stream":"true","temperature":"0.5","max_tokens":10.0,"seed":null}"#,
        )
        .unwrap();
        assert_eq!(r.body["n"], json!(1));
        assert_eq!(r.body["stream"], json!(true));
        assert_eq!(r.body["temperature"], json!(0.5));
        assert_eq!(r.body["max_tokens"], json!(10));
        assert!(!r.body.contains_key("seed"));
        // Unknown message keys are kept (MLflow drops them; nothing the client sends is lost).
        assert_eq!(r.messages()[0]["name"], json!("bob"));
        assert!(r.stream());
    }

    #[test]
    fn invalid_json_and_non_object() {
        let e = errs(EndpointType::Chat, "{not json");
        assert_eq!(e[0]["type"], json!("json_invalid"));
        let e = errs(EndpointType::Chat, "[1,2]");
        assert_eq!(e[0]["type"], json!("model_attributes_type"));
    }

    #[test]
    fn stop_must_be_a_list() {
        let e = errs(EndpointType::Completions, r#"{"prompt":"x","stop":"END"}"#);
        assert_eq!(e[0]["type"], json!("list_type"));
    }

    #[test]
    fn bad_content_part() {
        let e = errs(EndpointType::Chat, r#"{"messages":[{"role":"user","content":[{"type":"video","x":1}]}]}"#);
        assert_eq!(e[0]["type"], json!("union_tag_invalid"));
        assert_eq!(e[0]["loc"], json!(["body", "messages", 0, "content", 0]));
    }

    #[test]
    fn defaults_apply_only_when_unset() {
        let mut r =
            parse_request(EndpointType::Chat, br#"{"messages":[{"role":"user","content":"x"}],"temperature":0.1}"#)
                .unwrap();
        let mut d = Map::new();
        d.insert("temperature".into(), json!(0.7));
        d.insert("max_tokens".into(), json!(100));
        d.insert("n".into(), json!(2));
        apply_defaults(&mut r, &d);
        assert_eq!(r.body["temperature"], json!(0.1));
        assert_eq!(r.body["max_tokens"], json!(100));
        assert_eq!(r.body["n"], json!(2));
    }

    #[test]
    fn parameterless_tools_are_valid_and_become_object_schemas() {
        for params in [json!({}), json!({"type": "object"}), json!(null)] {
            let body = json!({"messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "now", "parameters": params}}]});
            assert!(request_from_value(EndpointType::Chat, body).is_ok(), "{params}");
            assert_eq!(
                object_schema(Some(params.clone())),
                json!({"type": "object", "properties": {}}),
                "MLflow 3.17 refused these (properties required): {params}"
            );
        }
        assert_eq!(object_schema(None), json!({"type": "object", "properties": {}}));
        // Everything else is kept, nested keywords included (MLflow drops them).
        let nested = json!({"properties": {"where": {"type": "object", "properties": {"city": {"type": "string",
            "minLength": 1}}, "required": ["city"], "additionalProperties": false}}, "$defs": {"x": {}}});
        let mut want = nested.clone();
        want["type"] = json!("object");
        assert_eq!(object_schema(Some(nested)), want);
        assert_eq!(object_schema(Some(json!({"type": "object", "properties": null})))["properties"], json!({}));
    }

    #[test]
    fn default_validation() {
        assert_eq!(validate_default(EndpointType::Chat, "temperature", &json!(0.7)), Ok(Some(json!(0.7))));
        assert!(validate_default(EndpointType::Chat, "temperature", &json!(7)).is_err());
        assert_eq!(validate_default(EndpointType::Chat, "openai_api_bse", &json!("x")), Ok(None));
        assert!(validate_default(EndpointType::Chat, "stream", &json!(true)).is_err());
        assert_eq!(validate_default(EndpointType::Embeddings, "dimensions", &json!(256)), Ok(Some(json!(256))));
        assert_eq!(validate_default(EndpointType::Embeddings, "temperature", &json!(1)), Ok(None));
    }
}
