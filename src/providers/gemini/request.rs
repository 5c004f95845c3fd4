//! Unified request → Gemini `generateContent` / `embedContent` bodies.
//!
//! Shared with `vertex_ai`, which sends the same `generateContent` body to
//! `…/publishers/google/models/<m>:generateContent` and strips the `id` fields of
//! `functionCall` / `functionResponse` parts (`BodyOptions::strip_ids`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::providers::parse_data_url;
use crate::schema::{Extensions, Request};

/// Unified parameter → Gemini `generationConfig` key, in MLflow's order. A request naming the
/// Gemini key itself is refused with a pointer to the unified name.
const RENAMES: [(&str, &str); 7] = [
    ("stop", "stopSequences"),
    ("n", "candidateCount"),
    ("max_tokens", "maxOutputTokens"),
    ("top_k", "topK"),
    ("top_p", "topP"),
    ("frequency_penalty", "frequencyPenalty"),
    ("presence_penalty", "presencePenalty"),
];

/// What goes into `generationConfig`: (unified request key, Gemini key).
const GENERATION_CONFIG: [(&str, &str); 8] = [
    ("temperature", "temperature"),
    ("stop", "stopSequences"),
    ("n", "candidateCount"),
    ("max_tokens", "maxOutputTokens"),
    ("top_k", "topK"),
    ("top_p", "topP"),
    ("frequency_penalty", "frequencyPenalty"),
    ("presence_penalty", "presencePenalty"),
];

/// How a `generateContent` body is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BodyOptions {
    /// Leave out the `id` of `functionCall` and `functionResponse` parts (Vertex AI refuses
    /// them; the Gemini API takes them).
    pub strip_ids: bool,
    /// How the model takes its thinking settings.
    pub thinking: Thinking,
}

/// How a Gemini model takes its thinking settings, told by its name (docs/client-apis.md,
/// "Extensions per provider").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Thinking {
    /// `thinkingBudget`, where 0 turns thinking off (Gemini 2.5 Flash and Flash-Lite, and any
    /// model the name does not place).
    #[default]
    Budget,
    /// `thinkingBudget` from 128 up; thinking cannot be turned off (Gemini 2.5 Pro).
    BudgetFrom128,
    /// `thinkingLevel` (`minimal`, `low`, `medium`, `high`; which ones depends on the model),
    /// and thinking cannot be turned off (Gemini 3 and later).
    Levels,
}

impl Thinking {
    /// The thinking settings of `model` (a model name, with or without a `models/` prefix).
    pub(crate) fn of(model: &str) -> Thinking {
        let lower = model.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        if name.starts_with("gemini-2.5-pro") {
            return Thinking::BudgetFrom128;
        }
        let major = name
            .strip_prefix("gemini-")
            .map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().unwrap_or_default())
            .and_then(|digits| digits.parse::<u32>().ok());
        match major {
            Some(m) if m >= 3 => Thinking::Levels,
            _ => Thinking::Budget,
        }
    }
}

/// `reasoning.effort` → thinking budget for [`Thinking::Budget`] models: Google's own mapping
/// for its OpenAI-compatible API (`low` 1K, `medium` 8K, `high` 24K tokens).
const EFFORT_BUDGETS: [(&str, i64); 3] = [("low", 1024), ("medium", 8192), ("high", 24576)];

/// The `generationConfig.thinkingConfig` for a request's `thinking` or `reasoning.effort`
/// extension (`thinking` wins when both are set), or `None` when it uses neither.
fn thinking_config(ext: &Extensions, thinking: Thinking) -> Result<Option<Value>, GatewayError> {
    if let Some(t) = &ext.thinking {
        let budget = match t.get("type").and_then(Value::as_str) {
            Some("enabled") => match t.get("budget_tokens").and_then(Value::as_i64) {
                Some(b) => b,
                None => {
                    return Err(GatewayError::bad_request("thinking.budget_tokens must be an integer")
                        .with_param("thinking.budget_tokens"));
                }
            },
            // Adaptive thinking is Gemini's dynamic budget.
            Some("adaptive") => -1,
            other => {
                return Err(GatewayError::bad_request(format!(
                    "thinking.type '{}' has no Gemini equivalent",
                    other.unwrap_or_default()
                ))
                .with_param("thinking.type"));
            }
        };
        return Ok(Some(json!({"thinkingBudget": budget, "includeThoughts": true})));
    }
    let Some(effort) = ext.reasoning_effort.as_deref() else { return Ok(None) };
    let cannot_turn_off = || {
        GatewayError::bad_request(
            "reasoning.effort 'none': this Gemini model cannot turn thinking off; use 'minimal' or 'low'",
        )
        .with_param("reasoning.effort")
    };
    let unknown = || {
        GatewayError::bad_request(format!(
            "reasoning.effort '{effort}' has no Gemini equivalent; use none, minimal, low, medium or high"
        ))
        .with_param("reasoning.effort")
    };
    Ok(Some(match thinking {
        Thinking::Levels => match effort {
            "none" => return Err(cannot_turn_off()),
            "minimal" | "low" | "medium" | "high" => json!({"thinkingLevel": effort, "includeThoughts": true}),
            _ => return Err(unknown()),
        },
        Thinking::Budget | Thinking::BudgetFrom128 => {
            let budget = match (effort, thinking) {
                ("none", Thinking::BudgetFrom128) => return Err(cannot_turn_off()),
                ("minimal", Thinking::BudgetFrom128) => 128,
                ("none" | "minimal", _) => 0,
                _ => match EFFORT_BUDGETS.iter().find(|(e, _)| *e == effort) {
                    Some((_, b)) => *b,
                    None => return Err(unknown()),
                },
            };
            if budget == 0 {
                json!({"thinkingBudget": 0})
            } else {
                json!({"thinkingBudget": budget, "includeThoughts": true})
            }
        }
    }))
}

/// The `generateContent` body for a unified chat request (MLflow's `chat_to_model`):
/// * Gemini's own parameter names are refused (422 `Invalid parameter <k>. Use <k1> instead.`);
/// * `max_completion_tokens` stands in for an absent `max_tokens`;
/// * sampling parameters go to `generationConfig` under Gemini's names (`n` is always present
///   after validation, so `candidateCount` always is);
/// * messages become `contents` (`assistant` → `model`), `system` messages
///   `system_instruction`, assistant `tool_calls` `functionCall` parts, `tool` messages
///   `functionResponse` parts;
/// * `response_format`, `tools` and `tool_choice` are translated;
/// * every other request field is dropped, as MLflow does.
pub(crate) fn chat_body(req: Request, opts: BodyOptions) -> Result<Value, GatewayError> {
    let mut body = req.body;
    let messages = match body.remove("messages") {
        Some(Value::Array(m)) => m,
        _ => Vec::new(),
    };
    generate_content_body(body, messages, &req.extensions, opts)
}

/// The `generateContent` body for a unified completions request: the prompt as one user
/// message, an optional extra `system_prompt` (string) as a system message before it, then as
/// for chat.
pub(crate) fn completions_body(req: Request, opts: BodyOptions) -> Result<Value, GatewayError> {
    let mut body = req.body;
    let prompt = body.remove("prompt").unwrap_or(Value::String(String::new()));
    let mut messages = Vec::with_capacity(2);
    match body.remove("system_prompt") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(GatewayError::invalid("'system_prompt' must be a string.").with_param("system_prompt")),
    }
    messages.push(json!({"role": "user", "content": prompt}));
    body.remove("messages");
    generate_content_body(body, messages, &req.extensions, opts)
}

/// The body; the request's extensions (docs/client-apis.md): `top_k` is `generationConfig.topK`,
/// `thinking` and `reasoning.effort` make `generationConfig.thinkingConfig`.
fn generate_content_body(
    mut body: Map<String, Value>,
    messages: Vec<Value>,
    ext: &Extensions,
    opts: BodyOptions,
) -> Result<Value, GatewayError> {
    for (unified, native) in RENAMES {
        if body.contains_key(native) {
            return Err(
                GatewayError::invalid(format!("Invalid parameter {native}. Use {unified} instead.")).with_param(native)
            );
        }
    }
    if !body.contains_key("max_tokens")
        && let Some(v) = body.remove("max_completion_tokens")
    {
        body.insert("max_tokens".into(), v);
    }

    if let Some(k) = ext.top_k
        && !body.contains_key("top_k")
    {
        body.insert("top_k".into(), Value::from(k));
    }
    let thinking = thinking_config(ext, opts.thinking)?;

    let (contents, system_parts) = convert_messages(messages, opts)?;
    let mut out = Map::with_capacity(6);
    out.insert("contents".into(), Value::Array(contents));
    if !system_parts.is_empty() {
        out.insert("system_instruction".into(), json!({ "parts": system_parts }));
    }

    let mut generation = Map::new();
    for (unified, native) in GENERATION_CONFIG {
        if let Some(v) = body.remove(unified) {
            generation.insert(native.into(), v);
        }
    }
    if let Some(Value::Object(format)) = body.remove("response_format") {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                if let Some(schema) = format.get("json_schema").and_then(|s| s.get("schema")) {
                    generation.insert("responseJsonSchema".into(), schema.clone());
                    generation.insert("responseMimeType".into(), Value::from("application/json"));
                }
            }
            Some("json_object") => {
                generation.insert("responseMimeType".into(), Value::from("application/json"));
            }
            _ => {}
        }
    }
    if let Some(thinking) = thinking {
        generation.insert("thinkingConfig".into(), thinking);
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }

    if let Some(Value::Array(tools)) = body.remove("tools")
        && !tools.is_empty()
    {
        let declarations = tools.into_iter().map(function_declaration).collect::<Result<Vec<_>, _>>()?;
        out.insert("tools".into(), json!([{ "functionDeclarations": declarations }]));
        if let Some(config) = body.remove("tool_choice").and_then(tool_config) {
            out.insert("toolConfig".into(), config);
        }
    }
    Ok(Value::Object(out))
}

/// One unified tool → a Gemini function declaration. The parameter schema is forwarded whole
/// (docs/mlflow-compat.md#fix-6: MLflow's request schema truncates it).
fn function_declaration(tool: Value) -> Result<Value, GatewayError> {
    let Value::Object(mut tool) = tool else {
        return Err(GatewayError::invalid("Each tool must be an object."));
    };
    match tool.get("type").and_then(Value::as_str).unwrap_or("function") {
        "function" => {}
        other => {
            return Err(GatewayError::invalid(format!(
                "Only function calling tool is supported, but received tool type {other}"
            )));
        }
    }
    let Some(Value::Object(mut function)) = tool.remove("function") else {
        return Err(GatewayError::invalid("A function tool needs a 'function' object."));
    };
    let mut decl = Map::with_capacity(3);
    decl.insert("name".into(), function.remove("name").unwrap_or(Value::Null));
    if let Some(d) = function.remove("description").filter(|d| !d.is_null()) {
        decl.insert("description".into(), d);
    }
    if let Some(p) = function.remove("parameters").filter(|p| !p.is_null()) {
        decl.insert("parametersJsonSchema".into(), p);
    }
    Ok(Value::Object(decl))
}

/// `tool_choice` → `toolConfig` (`auto` and anything unknown: no config, Gemini's default).
fn tool_config(choice: Value) -> Option<Value> {
    let calling = match &choice {
        Value::String(s) => match s.as_str() {
            "none" => json!({"mode": "NONE"}),
            "required" => json!({"mode": "ANY"}),
            _ => return None,
        },
        Value::Object(o) => {
            let name = o.get("function").and_then(|f| f.get("name"))?.clone();
            json!({"mode": "ANY", "allowedFunctionNames": [name]})
        }
        _ => return None,
    };
    Some(json!({ "functionCallingConfig": calling }))
}

/// Messages → (`contents`, `system_instruction.parts`).
fn convert_messages(messages: Vec<Value>, opts: BodyOptions) -> Result<(Vec<Value>, Vec<Value>), GatewayError> {
    let mut contents: Vec<Value> = Vec::with_capacity(messages.len());
    let mut system_parts = Vec::new();
    // tool_call_id → function name, from the assistant messages seen so far.
    let mut call_names: HashMap<String, String> = HashMap::new();

    for message in messages {
        let Value::Object(mut m) = message else { continue };
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r) => r.to_owned(),
            None => continue,
        };
        match role.as_str() {
            "user" => {
                contents.push(json!({"role": "user", "parts": content_parts(m.remove("content"))}));
            }
            "assistant" => {
                let calls = match m.remove("tool_calls") {
                    Some(Value::Array(calls)) if !calls.is_empty() => calls,
                    _ => Vec::new(),
                };
                if calls.is_empty() {
                    contents.push(json!({"role": "model", "parts": content_parts(m.remove("content"))}));
                } else {
                    // The text the model said beside its calls stays in the turn, before them
                    // (MLflow drops it; docs/mlflow-compat.md lists the difference).
                    let mut parts = match m.remove("content") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::String(s)) if s.is_empty() => Vec::new(),
                        content => content_parts(content),
                    };
                    for c in calls {
                        parts.push(function_call_part(c, opts, &mut call_names)?);
                    }
                    contents.push(json!({"role": "model", "parts": parts}));
                }
            }
            "system" => system_parts.extend(content_parts(m.remove("content"))),
            "tool" => {
                let part = function_response_part(&mut m, opts, &call_names)?;
                // Gemini wants the answers to one turn's calls in one user turn.
                if let Some(last) = contents.last_mut().filter(|l| is_function_response_turn(l))
                    && let Some(Value::Array(parts)) = last.get_mut("parts")
                {
                    parts.push(part);
                } else {
                    contents.push(json!({"role": "user", "parts": [part]}));
                }
            }
            // MLflow drops messages of any other role.
            _ => {}
        }
    }
    Ok((contents, system_parts))
}

fn is_function_response_turn(content: &Value) -> bool {
    content.get("role").and_then(Value::as_str) == Some("user")
        && content
            .get("parts")
            .and_then(Value::as_array)
            .is_some_and(|parts| !parts.is_empty() && parts.iter().all(|p| p.get("functionResponse").is_some()))
}

/// An assistant tool call → `{"functionCall": {"id", "name", "args"}, "thoughtSignature"?}`.
fn function_call_part(
    call: Value,
    opts: BodyOptions,
    call_names: &mut HashMap<String, String>,
) -> Result<Value, GatewayError> {
    let Value::Object(mut call) = call else {
        return Err(GatewayError::invalid("Each tool call must be an object."));
    };
    let id = call.remove("id").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let (name, arguments) = match call.remove("function") {
        Some(Value::Object(mut f)) => (
            f.remove("name").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            f.remove("arguments").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let args: Value = if arguments.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&arguments)
            .map_err(|e| GatewayError::invalid(format!("The arguments of tool call '{id}' are not valid JSON: {e}")))?
    };
    call_names.insert(id.clone(), name.clone());

    let mut function_call = Map::with_capacity(3);
    if !opts.strip_ids {
        function_call.insert("id".into(), Value::String(id));
    }
    function_call.insert("name".into(), Value::String(name));
    function_call.insert("args".into(), args);
    let mut part = Map::with_capacity(2);
    part.insert("functionCall".into(), Value::Object(function_call));
    if let Some(Value::String(sig)) = call.remove("thought_signature") {
        part.insert("thoughtSignature".into(), Value::String(sig));
    }
    Ok(Value::Object(part))
}

/// A `tool` message → `{"functionResponse": {"id", "name", "response"}}`: the name comes from
/// the earlier tool call with that id; the response is the content parsed as a JSON object,
/// or `{"result": <content>}`.
fn function_response_part(
    m: &mut Map<String, Value>,
    opts: BodyOptions,
    call_names: &HashMap<String, String>,
) -> Result<Value, GatewayError> {
    let id = match m.remove("tool_call_id") {
        Some(Value::String(id)) => id,
        _ => String::new(),
    };
    let Some(name) = call_names.get(&id) else {
        return Err(GatewayError::invalid(format!(
            "Tool message refers to tool_call_id '{id}', which no earlier assistant message's \
             tool_calls contain."
        ))
        .with_param("messages"));
    };
    let text = content_text(m.remove("content"));
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Value::Object(o),
        _ => json!({ "result": text }),
    };
    let mut function_response = Map::with_capacity(3);
    if !opts.strip_ids {
        function_response.insert("id".into(), Value::String(id));
    }
    function_response.insert("name".into(), Value::String(name.clone()));
    function_response.insert("response".into(), response);
    Ok(json!({ "functionResponse": function_response }))
}

/// Text of a message content: a string, or the text parts of a list joined with `\n`.
fn content_text(content: Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Message content → Gemini parts: a string is one text part; a list maps `text` parts to
/// text, base64 `image_url` data URLs to `inlineData`, other image URLs to a text note (the
/// Gemini API cannot fetch URLs), other parts unchanged. No content is one empty text part.
fn content_parts(content: Option<Value>) -> Vec<Value> {
    match content {
        Some(Value::String(s)) => vec![json!({ "text": s })],
        Some(Value::Array(parts)) => parts.into_iter().map(convert_part).collect(),
        _ => vec![json!({ "text": "" })],
    }
}

fn convert_part(part: Value) -> Value {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let mut part = part;
            json!({ "text": part.get_mut("text").map(Value::take).unwrap_or(Value::from("")) })
        }
        Some("image_url") => {
            let url = part.get("image_url").and_then(|i| i.get("url")).and_then(Value::as_str).unwrap_or("");
            match parse_data_url(url) {
                Some((mime, data)) => json!({ "inlineData": { "mimeType": mime, "data": data } }),
                None => json!({ "text": format!("Image URL: {url}") }),
            }
        }
        _ => part,
    }
}

/// How an embeddings request is sent: one text to `:embedContent`, several to
/// `:batchEmbedContents`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmbedMethod {
    /// `{model}:embedContent`
    Single,
    /// `{model}:batchEmbedContents`
    Batch,
}

impl EmbedMethod {
    /// The method suffix of the URL, e.g. `:embedContent`.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            EmbedMethod::Single => ":embedContent",
            EmbedMethod::Batch => ":batchEmbedContents",
        }
    }
}

/// The embeddings body: a string or a one-element list → `{"content": {"parts": [{"text"}]}}`
/// (`:embedContent`); otherwise `{"requests": [{"model": "models/<name>", "content": …}…]}`
/// (`:batchEmbedContents`). Token-id input cannot be embedded by Gemini: 422.
pub(crate) fn embeddings_body(req: Request, model: &str) -> Result<(Value, EmbedMethod), GatewayError> {
    let mut body = req.body;
    let texts: Vec<Value> = match body.remove("input") {
        Some(Value::String(s)) => vec![Value::String(s)],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items,
        _ => {
            return Err(GatewayError::invalid("Gemini embeddings take text input: a string or a list of strings.")
                .with_param("input"));
        }
    };
    if texts.len() == 1 {
        let text = texts.into_iter().next().unwrap_or_default();
        return Ok((json!({"content": {"parts": [{"text": text}]}}), EmbedMethod::Single));
    }
    let model = format!("models/{model}");
    let requests: Vec<Value> =
        texts.into_iter().map(|text| json!({"model": model, "content": {"parts": [{"text": text}]}})).collect();
    Ok((json!({ "requests": requests }), EmbedMethod::Batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EndpointType, parse_request};

    fn chat(body: Value) -> Result<Value, GatewayError> {
        chat_opts(body, BodyOptions::default())
    }

    fn chat_opts(body: Value, opts: BodyOptions) -> Result<Value, GatewayError> {
        let req = parse_request(EndpointType::Chat, body.to_string().as_bytes()).expect("valid request");
        chat_body(req, opts)
    }

    fn completions(body: Value) -> Result<Value, GatewayError> {
        let req = parse_request(EndpointType::Completions, body.to_string().as_bytes()).expect("valid request");
        completions_body(req, BodyOptions::default())
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    #[test]
    fn renames_into_generation_config_and_drops_extras() {
        let body = chat(json!({
            "messages": [user("hi")],
            "temperature": 0.5, "stop": ["x"], "max_tokens": 10, "top_k": 3, "top_p": 0.5,
            "frequency_penalty": 0.1, "presence_penalty": 0.2, "seed": 7, "user": "u", "stream": true
        }))
        .unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"temperature": 0.5, "stopSequences": ["x"], "candidateCount": 1, "maxOutputTokens": 10,
                   "topK": 3, "topP": 0.5, "frequencyPenalty": 0.1, "presencePenalty": 0.2})
        );
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["contents", "generationConfig"]);
    }

    #[test]
    fn candidate_count_always_sent() {
        let body = chat(json!({"messages": [user("hi")]})).unwrap();
        assert_eq!(body["generationConfig"], json!({"candidateCount": 1}));
        let body = chat(json!({"messages": [user("hi")], "n": 3})).unwrap();
        assert_eq!(body["generationConfig"], json!({"candidateCount": 3}));
    }

    #[test]
    fn native_names_are_refused() {
        for (unified, native) in RENAMES {
            let mut req = json!({"messages": [user("hi")]});
            req[native] = json!(1);
            let err = chat(req).unwrap_err();
            assert_eq!(err.status, 422, "{native}");
            assert_eq!(err.message(), format!("Invalid parameter {native}. Use {unified} instead."));
        }
        let err = completions(json!({"prompt": "p", "maxOutputTokens": 5})).unwrap_err();
        assert_eq!(err.message(), "Invalid parameter maxOutputTokens. Use max_tokens instead.");
    }

    #[test]
    fn max_completion_tokens_stands_in_for_max_tokens() {
        let body = chat(json!({"messages": [user("hi")], "max_completion_tokens": 9})).unwrap();
        assert_eq!(body["generationConfig"]["maxOutputTokens"], json!(9));
        let body = chat(json!({"messages": [user("hi")], "max_completion_tokens": 9, "max_tokens": 4})).unwrap();
        assert_eq!(body["generationConfig"]["maxOutputTokens"], json!(4));
        assert!(body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn roles_system_and_parts() {
        let body = chat(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
            ]},
            {"role": "assistant", "content": "a cat"},
            {"role": "developer", "content": "dropped like MLflow does"}
        ]}))
        .unwrap();
        assert_eq!(body["system_instruction"], json!({"parts": [{"text": "be brief"}, {"text": "be kind"}]}));
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [
                    {"text": "what is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0"}},
                    {"text": "Image URL: https://example.com/cat.png"},
                    {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
                ]},
                {"role": "model", "parts": [{"text": "a cat"}]}
            ])
        );
    }

    fn tool_conversation() -> Value {
        json!({"messages": [
            user("weather in Paris and Rome?"),
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
                 "thought_signature": "sig1"},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 20}"},
            {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
            user("thanks")
        ]})
    }

    #[test]
    fn tool_calls_and_function_responses_merge() {
        let body = chat(tool_conversation()).unwrap();
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "weather in Paris and Rome?"}]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig1"},
                    {"functionCall": {"id": "c2", "name": "get_weather", "args": {"city": "Rome"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "c1", "name": "get_weather", "response": {"temp": 20}}},
                    {"functionResponse": {"id": "c2", "name": "get_weather", "response": {"result": "sunny"}}}
                ]},
                {"role": "user", "parts": [{"text": "thanks"}]}
            ])
        );
    }

    #[test]
    fn function_response_not_merged_into_a_text_turn() {
        let body = chat(json!({"messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            user("interjection"),
            {"role": "tool", "tool_call_id": "c1", "content": "[1, 2]"}
        ]}))
        .unwrap();
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(contents.len(), 3);
        assert_eq!(
            contents[2],
            json!({"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "f", "response": {"result": "[1, 2]"}}}]})
        );
    }

    #[test]
    fn strip_ids_for_vertex() {
        let body = chat_opts(tool_conversation(), BodyOptions { strip_ids: true, ..BodyOptions::default() }).unwrap();
        let text = body.to_string();
        assert!(!text.contains("\"id\""), "{text}");
        assert_eq!(
            body["contents"][1]["parts"][0]["functionCall"],
            json!({"name": "get_weather", "args": {"city": "Paris"}})
        );
        assert_eq!(body["contents"][2]["parts"][1]["functionResponse"]["name"], json!("get_weather"));
    }

    #[test]
    fn unknown_tool_call_id_is_422() {
        let err = chat(json!({"messages": [
            user("hi"),
            {"role": "tool", "tool_call_id": "nope", "content": "x"}
        ]}))
        .unwrap_err();
        assert_eq!(err.status, 422);
        assert!(err.message().contains("'nope'"), "{}", err.message());
    }

    #[test]
    fn bad_tool_arguments_are_422() {
        let err = chat(json!({"messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}))
        .unwrap_err();
        assert_eq!(err.status, 422);
    }

    #[test]
    fn response_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}});
        let body = chat(json!({"messages": [user("hi")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}))
        .unwrap();
        assert_eq!(body["generationConfig"]["responseJsonSchema"], schema);
        assert_eq!(body["generationConfig"]["responseMimeType"], json!("application/json"));

        let body = chat(json!({"messages": [user("hi")], "response_format": {"type": "json_object"}})).unwrap();
        assert_eq!(body["generationConfig"], json!({"candidateCount": 1, "responseMimeType": "application/json"}));

        let body = chat(json!({"messages": [user("hi")], "response_format": {"type": "text"}})).unwrap();
        assert_eq!(body["generationConfig"], json!({"candidateCount": 1}));
    }

    #[test]
    fn tools_forward_whole_schema_and_tool_choice() {
        let params = json!({"type": "object", "properties": {"loc": {"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}}, "additionalProperties": false});
        let tools = json!([{"type": "function", "function": {"name": "f", "description": "d", "parameters": params}},
                           {"type": "function", "function": {"name": "g"}}]);
        let body = chat(json!({"messages": [user("hi")], "tools": tools, "tool_choice": "none"})).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{"name": "f", "description": "d", "parametersJsonSchema": params}, {"name": "g"}]}])
        );
        assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "NONE"}}));

        let body = chat(json!({"messages": [user("hi")], "tools": tools, "tool_choice": "required"})).unwrap();
        assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY"}}));
        let body = chat(json!({"messages": [user("hi")], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "g"}}}))
        .unwrap();
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}})
        );
        let body = chat(json!({"messages": [user("hi")], "tools": tools, "tool_choice": "auto"})).unwrap();
        assert!(body.get("toolConfig").is_none());
        // tool_choice without tools is dropped.
        let body = chat(json!({"messages": [user("hi")], "tool_choice": "required"})).unwrap();
        assert!(body.get("toolConfig").is_none() && body.get("tools").is_none());
    }

    #[test]
    fn non_function_tools_are_422() {
        let err = chat(
            json!({"messages": [user("hi")], "tools": [{"type": "uc_function", "uc_function": {"name": "a.b.c"}}]}),
        )
        .unwrap_err();
        assert_eq!(err.message(), "Only function calling tool is supported, but received tool type uc_function");
    }

    #[test]
    fn completions_prompt_and_system_prompt() {
        let body = completions(json!({"prompt": "p", "system_prompt": "s", "max_tokens": 5, "echo": true})).unwrap();
        assert_eq!(
            body,
            json!({"contents": [{"role": "user", "parts": [{"text": "p"}]}],
                   "system_instruction": {"parts": [{"text": "s"}]},
                   "generationConfig": {"candidateCount": 1, "maxOutputTokens": 5}})
        );
    }

    fn with_extensions(body: Value, ext: Extensions, thinking: Thinking) -> Result<Value, GatewayError> {
        let mut req = parse_request(EndpointType::Chat, body.to_string().as_bytes()).expect("valid request");
        req.extensions = ext;
        chat_body(req, BodyOptions { strip_ids: false, thinking })
    }

    fn effort(effort: &str, thinking: Thinking) -> Result<Value, GatewayError> {
        let ext = Extensions { reasoning_effort: Some(effort.into()), ..Extensions::default() };
        with_extensions(json!({"messages": [user("hi")]}), ext, thinking)
            .map(|b| b["generationConfig"]["thinkingConfig"].clone())
    }

    #[test]
    fn thinking_settings_by_model_name() {
        assert_eq!(Thinking::of("gemini-2.5-flash"), Thinking::Budget);
        assert_eq!(Thinking::of("gemini-2.5-flash-lite"), Thinking::Budget);
        assert_eq!(Thinking::of("gemini-2.0-flash"), Thinking::Budget);
        assert_eq!(Thinking::of("models/gemini-2.5-pro-preview-06-05"), Thinking::BudgetFrom128);
        assert_eq!(Thinking::of("gemini-3-pro-preview"), Thinking::Levels);
        assert_eq!(Thinking::of("Gemini-3.1-Flash"), Thinking::Levels);
        assert_eq!(Thinking::of("gemini-10-ultra"), Thinking::Levels);
        assert_eq!(Thinking::of("tunedModels/my-model"), Thinking::Budget);
        assert_eq!(Thinking::of("gemini-flash-latest"), Thinking::Budget);
    }

    #[test]
    fn top_k_extension_is_top_k() {
        let ext = Extensions { top_k: Some(40), ..Extensions::default() };
        let body = with_extensions(json!({"messages": [user("hi")]}), ext, Thinking::Budget).unwrap();
        assert_eq!(body["generationConfig"], json!({"candidateCount": 1, "topK": 40}));
    }

    #[test]
    fn thinking_extension_is_a_thinking_budget() {
        let ext = |t: Value| Extensions { thinking: Some(t), ..Extensions::default() };
        let body = with_extensions(
            json!({"messages": [user("hi")], "max_tokens": 4096}),
            ext(json!({"type": "enabled", "budget_tokens": 2048})),
            Thinking::Levels,
        )
        .unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"candidateCount": 1, "maxOutputTokens": 4096,
                   "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}})
        );
        let body =
            with_extensions(json!({"messages": [user("hi")]}), ext(json!({"type": "adaptive"})), Thinking::Budget)
                .unwrap();
        assert_eq!(body["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": -1, "includeThoughts": true}));
        // `thinking` wins over an effort.
        let both = Extensions {
            thinking: Some(json!({"type": "enabled", "budget_tokens": 1024})),
            reasoning_effort: Some("high".into()),
            ..Extensions::default()
        };
        let body = with_extensions(json!({"messages": [user("hi")]}), both, Thinking::Budget).unwrap();
        assert_eq!(body["generationConfig"]["thinkingConfig"]["thinkingBudget"], json!(1024));
    }

    #[test]
    fn reasoning_effort_as_budget_or_level() {
        let on = |budget: i64| json!({"thinkingBudget": budget, "includeThoughts": true});
        assert_eq!(effort("none", Thinking::Budget).unwrap(), json!({"thinkingBudget": 0}));
        assert_eq!(effort("minimal", Thinking::Budget).unwrap(), json!({"thinkingBudget": 0}));
        assert_eq!(effort("low", Thinking::Budget).unwrap(), on(1024));
        assert_eq!(effort("medium", Thinking::Budget).unwrap(), on(8192));
        assert_eq!(effort("high", Thinking::Budget).unwrap(), on(24576));
        assert_eq!(effort("minimal", Thinking::BudgetFrom128).unwrap(), on(128));
        assert_eq!(effort("high", Thinking::BudgetFrom128).unwrap(), on(24576));
        for level in ["minimal", "low", "medium", "high"] {
            assert_eq!(
                effort(level, Thinking::Levels).unwrap(),
                json!({"thinkingLevel": level, "includeThoughts": true})
            );
        }
        for (value, thinking) in [("none", Thinking::Levels), ("none", Thinking::BudgetFrom128)] {
            let e = effort(value, thinking).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning.effort")));
            assert!(e.message().contains("cannot turn thinking off"), "{}", e.message());
        }
        for thinking in [Thinking::Budget, Thinking::Levels] {
            let e = effort("xhigh", thinking).unwrap_err();
            assert_eq!((e.status, e.param.as_deref()), (400, Some("reasoning.effort")));
            assert!(e.message().contains("'xhigh'"), "{}", e.message());
        }
        // No extension: no thinkingConfig (Gemini's own default).
        let body = chat(json!({"messages": [user("hi")]})).unwrap();
        assert!(body["generationConfig"].get("thinkingConfig").is_none());
    }

    #[test]
    fn embeddings_single_and_batch() {
        let req = |v: Value| parse_request(EndpointType::Embeddings, v.to_string().as_bytes()).unwrap();
        let (body, method) = embeddings_body(req(json!({"input": "a"})), "m").unwrap();
        assert_eq!((body, method), (json!({"content": {"parts": [{"text": "a"}]}}), EmbedMethod::Single));
        let (body, method) = embeddings_body(req(json!({"input": ["a"]})), "m").unwrap();
        assert_eq!((body, method), (json!({"content": {"parts": [{"text": "a"}]}}), EmbedMethod::Single));
        let (body, method) = embeddings_body(req(json!({"input": ["a", "b"]})), "m").unwrap();
        assert_eq!(method, EmbedMethod::Batch);
        assert_eq!(body["requests"][1], json!({"model": "models/m", "content": {"parts": [{"text": "b"}]}}));
        let err = embeddings_body(req(json!({"input": [1, 2]})), "m").unwrap_err();
        assert_eq!(err.status, 422);
    }
}
