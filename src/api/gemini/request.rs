//! A `GenerateContentRequest` body → MLflow's unified chat request
//! (docs/client-apis.md#gemini-generatecontent).
//!
//! Field names are read in both spellings Google's JSON accepts (`systemInstruction` and
//! `system_instruction`). The body is checked as far as the translation needs (types, required
//! fields, unknown names); a problem is a 400 whose message and `param` name its path
//! (`contents[2].parts[0].functionCall.name`). The unified request is then validated with
//! MLflow's rules as well.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use super::INCLUDE_THOUGHTS;
use crate::api::{Parsed, message, text_part};
use crate::error::GatewayError;
use crate::schema::{self, EndpointType, Extensions, SignedThinking};

/// Top-level fields only Google's API serves: cached prompts, Vertex AI's labels and Model
/// Armor, service tiers.
const NATIVE_FIELDS: &[(&str, &str)] = &[
    ("cachedContent", "cachedContent"),
    ("labels", "labels"),
    ("serviceTier", "serviceTier"),
    ("modelArmorConfig", "modelArmorConfig"),
];

/// Google's built-in tools (`{"googleSearch": {}}` and the like), and the name a refusal gives
/// them.
const NATIVE_TOOLS: &[(&str, &str)] = &[
    ("googleSearch", "tools.googleSearch"),
    ("googleSearchRetrieval", "tools.googleSearchRetrieval"),
    ("codeExecution", "tools.codeExecution"),
    ("urlContext", "tools.urlContext"),
    ("fileSearch", "tools.fileSearch"),
    ("googleMaps", "tools.googleMaps"),
    ("computerUse", "tools.computerUse"),
    ("retrieval", "tools.retrieval"),
    ("enterpriseWebSearch", "tools.enterpriseWebSearch"),
    ("mcpServers", "tools.mcpServers"),
];

/// `generationConfig` fields only Google's models serve (log probabilities, speech and image
/// output, Vertex AI's model routing, …).
const NATIVE_GENERATION: &[(&str, &str)] = &[
    ("responseLogprobs", "generationConfig.responseLogprobs"),
    ("logprobs", "generationConfig.logprobs"),
    ("speechConfig", "generationConfig.speechConfig"),
    ("imageConfig", "generationConfig.imageConfig"),
    ("audioTimestamp", "generationConfig.audioTimestamp"),
    ("enableEnhancedCivicAnswers", "generationConfig.enableEnhancedCivicAnswers"),
    ("enableAffectiveDialog", "generationConfig.enableAffectiveDialog"),
    ("routingConfig", "generationConfig.routingConfig"),
    ("modelSelectionConfig", "generationConfig.modelSelectionConfig"),
];

/// Safety thresholds that filter nothing beyond what any provider does: other providers cannot
/// apply Google's harm filters, so only these translate (as nothing).
const UNFILTERED: &[&str] = &["BLOCK_NONE", "OFF", "HARM_BLOCK_THRESHOLD_UNSPECIFIED"];

/// Parse a `GenerateContentRequest` body for `endpoint` (named in the URL), streamed when the
/// method was `:streamGenerateContent`.
///
/// `Parsed::native` is the body as sent; `Parsed::native_only` names the first feature only a
/// provider speaking Gemini's API can serve; `Parsed::echo` notes [`INCLUDE_THOUGHTS`].
pub fn parse(endpoint: &str, body: &[u8], stream: bool) -> Result<Parsed, GatewayError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("Invalid JSON payload received. {e}")))?;
    let Value::Object(native) = value else {
        return Err(GatewayError::bad_request("Invalid JSON payload received. The body must be a JSON object."));
    };
    let mut t = Translation::default();
    let mut unified = t.request(&native)?;
    if stream {
        unified.insert("stream".into(), Value::Bool(true));
    }
    let mut request =
        schema::request_from_value(EndpointType::Chat, Value::Object(unified)).map_err(GatewayError::validation)?;
    request.extensions = t.extensions;
    let mut echo = Map::new();
    if t.include_thoughts {
        echo.insert(INCLUDE_THOUGHTS.into(), Value::Bool(true));
    }
    Ok(Parsed { model: endpoint.to_owned(), request, native, native_only: t.native_only, unknown: None, echo })
}

/// A field name in Google's JSON spelling: `snake_case` (which Google's JSON parser also
/// accepts) becomes `lowerCamelCase`; a camel-case name is returned as is, without a copy.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path in the request body, rendered only for an error: `contents[2].parts[0].text`.
#[derive(Clone, Copy)]
enum Loc<'a> {
    Root,
    Key(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl fmt::Display for Loc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Root => Ok(()),
            Loc::Key(Loc::Root, k) => f.write_str(k),
            Loc::Key(p, k) => write!(f, "{p}.{k}"),
            Loc::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// A 400 naming `loc` in its message and `param`.
fn invalid(loc: &Loc<'_>, message: impl fmt::Display) -> GatewayError {
    let path = loc.to_string();
    GatewayError::bad_request(format!("Invalid value at '{path}': {message}")).with_param(path)
}

/// Google's refusal of a field it does not know.
fn unknown(loc: &Loc<'_>, key: &str) -> GatewayError {
    let message = match loc {
        Loc::Root => format!("Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."),
        _ => format!("Invalid JSON payload received. Unknown name \"{key}\" at '{loc}': Cannot find field."),
    };
    GatewayError::bad_request(message).with_param(Loc::Key(loc, key).to_string())
}

fn missing(loc: &Loc<'_>) -> GatewayError {
    invalid(loc, "a value is required")
}

fn string<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v str, GatewayError> {
    value.as_str().ok_or_else(|| invalid(loc, "expected a string"))
}

fn object<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v Map<String, Value>, GatewayError> {
    value.as_object().ok_or_else(|| invalid(loc, "expected an object"))
}

fn list<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<&'v [Value], GatewayError> {
    value.as_array().map(Vec::as_slice).ok_or_else(|| invalid(loc, "expected a list"))
}

fn boolean(value: &Value, loc: &Loc<'_>) -> Result<bool, GatewayError> {
    value.as_bool().ok_or_else(|| invalid(loc, "expected a boolean"))
}

fn number(value: &Value, loc: &Loc<'_>) -> Result<Value, GatewayError> {
    match value {
        Value::Number(_) => Ok(value.clone()),
        _ => Err(invalid(loc, "expected a number")),
    }
}

/// An integer: a JSON integer, an integral float, or a string of digits (Google's JSON writes
/// 64-bit integers as strings).
fn integer(value: &Value, loc: &Loc<'_>) -> Result<i64, GatewayError> {
    let n = match value {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        }
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| invalid(loc, "expected an integer"))
}

/// One part of a `Content`, as far as the translation is concerned.
enum Part<'v> {
    /// `text` (a thought when `thought` is true, with its signature if it has one).
    Text { text: &'v str, thought: bool, signature: Option<&'v str> },
    /// `inlineData` of an image, as a `data:` URL.
    Image(String),
    /// `functionCall`.
    Call { id: Option<&'v str>, name: &'v str, args: Option<&'v Value>, signature: Option<&'v str> },
    /// `functionResponse`.
    Response { id: Option<&'v str>, name: &'v str, response: Option<&'v Value> },
    /// A part only Google's API serves (noted in `native_only`).
    Native,
}

/// `toolConfig.functionCallingConfig`, translated.
#[derive(Default)]
struct Calling {
    /// The unified `tool_choice`, when it is not the default (`AUTO`).
    choice: Option<Value>,
    /// `allowedFunctionNames`: only these declarations are offered.
    allowed: Option<Vec<String>>,
}

/// What the translation gathers beside the unified body.
#[derive(Default)]
struct Translation {
    extensions: Extensions,
    native_only: Option<&'static str>,
    include_thoughts: bool,
    /// The function calls of the latest model turn not answered yet: (name, id). A
    /// `functionResponse` without an id answers the first one of its name.
    pending: Vec<(String, String)>,
}

impl Translation {
    /// Note a feature only Google's API serves (the first one is reported).
    fn native(&mut self, feature: &'static str) {
        self.native_only.get_or_insert(feature);
    }

    /// The unified request body for the `GenerateContentRequest` `native`.
    fn request(&mut self, native: &Map<String, Value>) -> Result<Map<String, Value>, GatewayError> {
        let root = Loc::Root;
        let (mut contents, mut system, mut tools, mut tool_config, mut generation) = (None, None, None, None, None);
        for (key, value) in native {
            if value.is_null() {
                continue;
            }
            match camel(key).as_ref() {
                "contents" => contents = Some((key, value)),
                "systemInstruction" => system = Some((key, value)),
                "tools" => tools = Some((key, value)),
                "toolConfig" => tool_config = Some((key, value)),
                "generationConfig" => generation = Some((key, value)),
                "safetySettings" => self.safety(value, &Loc::Key(&root, key))?,
                // The URL names the endpoint.
                "model" => {}
                other => match NATIVE_FIELDS.iter().find(|(f, _)| *f == other) {
                    Some((_, name)) => self.native(name),
                    None => return Err(unknown(&root, key)),
                },
            }
        }
        let mut messages = Vec::new();
        if let Some((key, value)) = system
            && let Some(text) = self.system(value, &Loc::Key(&root, key))?
        {
            messages.push(Value::Object(message("system", Some(Value::String(text)))));
        }
        let Some((key, contents)) = contents else {
            return Err(missing(&Loc::Key(&root, "contents")));
        };
        let cloc = Loc::Key(&root, key);
        let turns = list(contents, &cloc)?;
        if turns.is_empty() {
            return Err(invalid(&cloc, "contents must not be empty"));
        }
        messages.reserve(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            self.content(turn, &Loc::Index(&cloc, i), i, &mut messages)?;
        }
        let mut body = Map::with_capacity(12);
        body.insert("messages".into(), Value::Array(messages));
        if let Some((key, value)) = generation {
            self.generation(value, &Loc::Key(&root, key), &mut body)?;
        }
        let calling = match tool_config {
            Some((key, value)) => self.tool_config(value, &Loc::Key(&root, key))?,
            None => Calling::default(),
        };
        if let Some((key, value)) = tools {
            let functions = self.tools(value, &Loc::Key(&root, key), calling.allowed.as_deref())?;
            // OpenAI refuses `tool_choice` without tools.
            if !functions.is_empty() {
                body.insert("tools".into(), Value::Array(functions));
                if let Some(choice) = calling.choice {
                    body.insert("tool_choice".into(), choice);
                }
            }
        }
        Ok(body)
    }

    /// `systemInstruction`: its text parts joined with `\n`; none when it has no text.
    fn system(&mut self, value: &Value, loc: &Loc<'_>) -> Result<Option<String>, GatewayError> {
        let c = object(value, loc)?;
        let mut text = String::new();
        for (key, v) in c {
            match camel(key).as_ref() {
                "role" => {}
                "parts" => {
                    let ploc = Loc::Key(loc, key);
                    for (j, p) in list(v, &ploc)?.iter().enumerate() {
                        let pl = Loc::Index(&ploc, j);
                        match self.part(p, &pl)? {
                            Part::Text { thought: false, text: t, .. } => {
                                if !text.is_empty() {
                                    text.push('\n');
                                }
                                text.push_str(t);
                            }
                            Part::Text { .. } | Part::Native => {}
                            // Images and calls in a system instruction: a unified system message
                            // holds text only.
                            _ => self.native("systemInstruction.parts (not text)"),
                        }
                    }
                }
                _ => return Err(unknown(loc, key)),
            }
        }
        Ok((!text.is_empty()).then_some(text))
    }

    /// One `Content` (turn `index` of `contents`) → unified messages appended to `out`.
    fn content(&mut self, turn: &Value, loc: &Loc<'_>, index: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
        let c = object(turn, loc)?;
        let mut model = false;
        let mut parts = None;
        for (key, value) in c {
            match camel(key).as_ref() {
                "role" => {
                    model = match value {
                        Value::Null => false,
                        v => match string(v, &Loc::Key(loc, key))? {
                            // `function` is the role older clients give function responses.
                            "" | "user" | "function" => false,
                            "model" => true,
                            _ => return Err(invalid(&Loc::Key(loc, key), "Please use a valid role: user, model.")),
                        },
                    }
                }
                "parts" => parts = Some((key, value)),
                _ => return Err(unknown(loc, key)),
            }
        }
        let Some((key, parts)) = parts.filter(|(_, v)| !v.is_null()) else {
            return Err(missing(&Loc::Key(loc, "parts")));
        };
        let ploc = Loc::Key(loc, key);
        let parts = list(parts, &ploc)?;
        if parts.is_empty() {
            return Err(invalid(&ploc, "contents.parts must not be empty"));
        }
        if model { self.model(parts, &ploc, index, out) } else { self.user(parts, &ploc, out) }
    }

    /// A user turn: its function responses become `tool` messages first (OpenAI wants them
    /// right after the assistant's tool calls), then one user message with its text and images.
    fn user(&mut self, parts: &[Value], loc: &Loc<'_>, out: &mut Vec<Value>) -> Result<(), GatewayError> {
        let mut content = Vec::with_capacity(parts.len());
        let mut answered = 0;
        for (j, p) in parts.iter().enumerate() {
            let pl = Loc::Index(loc, j);
            match self.part(p, &pl)? {
                Part::Text { text, thought: false, .. } => content.push(text_part(text)),
                // A client's own "thoughts" are not input.
                Part::Text { .. } | Part::Native => {}
                Part::Image(url) => content.push(image_part(url)),
                Part::Response { id, name, response } => {
                    let id = self.answered_call(id, name, &pl)?;
                    let mut m = message("tool", None);
                    m.insert("tool_call_id".into(), Value::String(id));
                    let text = match response {
                        None => "{}".to_owned(),
                        Some(r) => r.to_string(),
                    };
                    m.insert("content".into(), Value::String(text));
                    out.push(Value::Object(m));
                    answered += 1;
                }
                Part::Call { .. } => {
                    return Err(invalid(&pl, "functionCall parts are only allowed in turns of role 'model'"));
                }
            }
        }
        if answered == 0 || !content.is_empty() {
            let content = match content.as_mut_slice() {
                [one] if one.get("type").and_then(Value::as_str) == Some("text") => {
                    one.as_object_mut().and_then(|p| p.remove("text")).unwrap_or(Value::Array(Vec::new()))
                }
                _ => Value::Array(content),
            };
            out.push(Value::Object(message("user", Some(content))));
        }
        Ok(())
    }

    /// The id of the call a `functionResponse` answers: its own `id`, else the first pending
    /// call of its name.
    fn answered_call(&mut self, id: Option<&str>, name: &str, loc: &Loc<'_>) -> Result<String, GatewayError> {
        if let Some(id) = id {
            self.pending.retain(|(_, pending)| pending != id);
            return Ok(id.to_owned());
        }
        match self.pending.iter().position(|(pending, _)| pending == name) {
            Some(i) => Ok(self.pending.remove(i).1),
            None => Err(invalid(
                &Loc::Key(loc, "functionResponse"),
                format!("the function response '{name}' answers no functionCall of the model turn before it"),
            )),
        }
    }

    /// A model turn: its text (and images) as the assistant's content, its function calls as
    /// tool calls. Thoughts are left out (see docs/client-apis.md), except signed ones, which are
    /// kept beside the request for Claude's translations. A turn left with nothing is dropped.
    fn model(
        &mut self,
        parts: &[Value],
        loc: &Loc<'_>,
        index: usize,
        out: &mut Vec<Value>,
    ) -> Result<(), GatewayError> {
        self.pending.clear();
        let mut text: Option<String> = None;
        let mut images = Vec::new();
        let mut calls = Vec::new();
        // The turn's thoughts, joined, and the signature they came with: a streamed answer
        // gives the text in many thought parts and the signature in a last, empty one.
        let (mut thought, mut signed) = (String::new(), None);
        for (j, p) in parts.iter().enumerate() {
            let pl = Loc::Index(loc, j);
            match self.part(p, &pl)? {
                Part::Text { text: t, thought: false, .. } => text.get_or_insert_with(String::new).push_str(t),
                Part::Text { text: t, thought: true, signature } => {
                    thought.push_str(t);
                    if let Some(s) = signature.filter(|s| !s.is_empty()) {
                        signed = Some(s);
                    }
                }
                Part::Native => {}
                Part::Image(url) => images.push(image_part(url)),
                Part::Call { id, name, args, signature } => {
                    let arguments = match args {
                        None => "{}".to_owned(),
                        Some(a @ Value::Object(_)) => a.to_string(),
                        Some(_) => {
                            return Err(invalid(
                                &Loc::Key(&Loc::Key(&pl, "functionCall"), "args"),
                                "expected an object",
                            ));
                        }
                    };
                    // Calls without an id get one the conversation's later turns can refer to.
                    let id = id.map_or_else(|| format!("call_{index}_{j}"), str::to_owned);
                    self.pending.push((name.to_owned(), id.clone()));
                    let mut function = Map::with_capacity(2);
                    function.insert("name".into(), Value::from(name));
                    function.insert("arguments".into(), Value::String(arguments));
                    let mut call = Map::with_capacity(4);
                    call.insert("id".into(), Value::String(id));
                    call.insert("type".into(), Value::from("function"));
                    call.insert("function".into(), Value::Object(function));
                    if let Some(s) = signature {
                        call.insert("thought_signature".into(), Value::from(s));
                    }
                    calls.push(Value::Object(call));
                }
                Part::Response { .. } => {
                    return Err(invalid(&pl, "functionResponse parts are only allowed in turns of role 'user'"));
                }
            }
        }
        let content = match (text, images.is_empty()) {
            (None, true) => None,
            (Some(t), true) => Some(Value::String(t)),
            (text, false) => {
                let mut parts: Vec<Value> = text.iter().map(|t| text_part(t)).collect();
                parts.append(&mut images);
                Some(Value::Array(parts))
            }
        };
        if content.is_none() && calls.is_empty() {
            return Ok(());
        }
        let mut m = message("assistant", content);
        if !calls.is_empty() {
            m.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(signature) = signed {
            let signature = signature.to_owned();
            self.extensions.thinking_history.push(SignedThinking { message: out.len(), thinking: thought, signature });
        }
        out.push(Value::Object(m));
        Ok(())
    }

    /// One `Part`.
    fn part<'v>(&mut self, value: &'v Value, loc: &Loc<'_>) -> Result<Part<'v>, GatewayError> {
        let p = object(value, loc)?;
        let mut data: Option<Part<'v>> = None;
        let mut thought = false;
        let mut signature = None;
        for (key, v) in p {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            let part = match camel(key).as_ref() {
                "text" => Part::Text { text: string(v, &kloc)?, thought: false, signature: None },
                "thought" => {
                    thought = boolean(v, &kloc)?;
                    continue;
                }
                "thoughtSignature" => {
                    signature = Some(string(v, &kloc)?);
                    continue;
                }
                // How Google tokenizes media, and metadata: nothing to translate.
                "mediaResolution" | "partMetadata" => continue,
                "inlineData" => self.inline_data(v, &kloc)?,
                "functionCall" => function_call(v, &kloc)?,
                "functionResponse" => self.function_response(v, &kloc)?,
                "fileData" => {
                    self.native("contents.parts.fileData");
                    Part::Native
                }
                "executableCode" => {
                    self.native("contents.parts.executableCode");
                    Part::Native
                }
                "codeExecutionResult" => {
                    self.native("contents.parts.codeExecutionResult");
                    Part::Native
                }
                "videoMetadata" => {
                    self.native("contents.parts.videoMetadata");
                    continue;
                }
                _ => return Err(unknown(loc, key)),
            };
            if data.is_some() {
                return Err(invalid(
                    loc,
                    "a part has exactly one of text, inlineData, functionCall, functionResponse, …",
                ));
            }
            data = Some(part);
        }
        match data {
            Some(Part::Text { text, .. }) => Ok(Part::Text { text, thought, signature }),
            Some(Part::Call { id, name, args, .. }) => Ok(Part::Call { id, name, args, signature }),
            Some(other) => Ok(other),
            None => Err(invalid(loc, "required oneof field 'data' must have one initialized field")),
        }
    }

    /// `inlineData`: an image becomes a `data:` URL; other media only Google's models read.
    fn inline_data(&mut self, value: &Value, loc: &Loc<'_>) -> Result<Part<'static>, GatewayError> {
        let d = object(value, loc)?;
        let (mut mime, mut data) = (None, None);
        for (key, v) in d {
            match camel(key).as_ref() {
                "mimeType" => mime = Some(string(v, &Loc::Key(loc, key))?),
                "data" => data = Some(string(v, &Loc::Key(loc, key))?),
                "displayName" => {}
                _ => return Err(unknown(loc, key)),
            }
        }
        let mime = mime.ok_or_else(|| missing(&Loc::Key(loc, "mimeType")))?;
        let data = data.ok_or_else(|| missing(&Loc::Key(loc, "data")))?;
        if !mime.starts_with("image/") {
            self.native("contents.parts.inlineData (not an image)");
            return Ok(Part::Native);
        }
        let mut url = String::with_capacity(mime.len() + data.len() + 13);
        url.push_str("data:");
        url.push_str(mime);
        url.push_str(";base64,");
        url.push_str(data);
        Ok(Part::Image(url))
    }

    /// `functionResponse`: `{id?, name, response}`; multimodal `parts` only Google serves.
    fn function_response<'v>(&mut self, value: &'v Value, loc: &Loc<'_>) -> Result<Part<'v>, GatewayError> {
        let r = object(value, loc)?;
        let (mut id, mut name, mut response) = (None, None, None);
        for (key, v) in r {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            match camel(key).as_ref() {
                "id" => id = Some(string(v, &kloc)?),
                "name" => name = Some(string(v, &kloc)?),
                "response" => {
                    object(v, &kloc)?;
                    response = Some(v);
                }
                "parts" => self.native("contents.parts.functionResponse.parts"),
                // The Live API's scheduling of asynchronous calls: nothing to translate.
                "willContinue" | "scheduling" => {}
                _ => return Err(unknown(loc, key)),
            }
        }
        let name = name.ok_or_else(|| missing(&Loc::Key(loc, "name")))?;
        Ok(Part::Response { id, name, response })
    }

    /// `generationConfig` → sampling parameters, `response_format` and the extensions.
    fn generation(&mut self, value: &Value, loc: &Loc<'_>, body: &mut Map<String, Value>) -> Result<(), GatewayError> {
        let (mut mime, mut schema) = (None, None);
        for (key, v) in object(value, loc)? {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            match camel(key).as_ref() {
                "temperature" => _ = body.insert("temperature".into(), number(v, &kloc)?),
                "topP" => _ = body.insert("top_p".into(), number(v, &kloc)?),
                "topK" => {
                    let k = integer(v, &kloc)?;
                    let k = u64::try_from(k).map_err(|_| invalid(&kloc, "topK must be at least 0"))?;
                    self.extensions.top_k = Some(k);
                }
                "maxOutputTokens" => _ = body.insert("max_tokens".into(), Value::from(integer(v, &kloc)?)),
                // The answer has one candidate: more are Gemini's own (a unified answer's other
                // choices have no place in Gemini's stream of one candidate's parts).
                "candidateCount" => {
                    if integer(v, &kloc)? != 1 {
                        self.native("generationConfig.candidateCount");
                    }
                }
                "seed" => _ = body.insert("seed".into(), Value::from(integer(v, &kloc)?)),
                "presencePenalty" => _ = body.insert("presence_penalty".into(), number(v, &kloc)?),
                "frequencyPenalty" => _ = body.insert("frequency_penalty".into(), number(v, &kloc)?),
                "stopSequences" => {
                    let items = list(v, &kloc)?;
                    let mut stop = Vec::with_capacity(items.len());
                    for (i, s) in items.iter().enumerate() {
                        stop.push(Value::from(string(s, &Loc::Index(&kloc, i))?));
                    }
                    if !stop.is_empty() {
                        body.insert("stop".into(), Value::Array(stop));
                    }
                }
                "responseMimeType" => mime = Some((string(v, &kloc)?, key)),
                "responseSchema" => {
                    object(v, &kloc)?;
                    schema = Some(json_schema(v));
                }
                "responseJsonSchema" => {
                    object(v, &kloc)?;
                    // The JSON Schema wins over a `responseSchema` (Gemini refuses both).
                    schema = Some(v.clone());
                }
                "thinkingConfig" => self.thinking(v, &kloc)?,
                "responseModalities" => {
                    for (i, m) in list(v, &kloc)?.iter().enumerate() {
                        if string(m, &Loc::Index(&kloc, i))? != "TEXT" {
                            self.native("generationConfig.responseModalities");
                        }
                    }
                }
                // How Google tokenizes media: nothing to translate.
                "mediaResolution" => {}
                other => match NATIVE_GENERATION.iter().find(|(f, _)| *f == other) {
                    Some((_, name)) => self.native(name),
                    None => return Err(unknown(loc, key)),
                },
            }
        }
        let format = match (mime, schema) {
            (Some(("text/x.enum", _)), _) => {
                self.native("generationConfig.responseMimeType (text/x.enum)");
                return Ok(());
            }
            (_, Some(schema)) => {
                let mut json_schema = Map::with_capacity(2);
                json_schema.insert("name".into(), Value::from("response"));
                json_schema.insert("schema".into(), schema);
                let mut format = Map::with_capacity(2);
                format.insert("type".into(), Value::from("json_schema"));
                format.insert("json_schema".into(), Value::Object(json_schema));
                format
            }
            (Some(("application/json", _)), None) => {
                let mut format = Map::with_capacity(1);
                format.insert("type".into(), Value::from("json_object"));
                format
            }
            (Some(("text/plain", _)) | None, None) => return Ok(()),
            (Some((other, key)), None) => {
                return Err(invalid(
                    &Loc::Key(loc, key),
                    format!("unsupported MIME type '{other}': use text/plain, application/json or text/x.enum"),
                ));
            }
        };
        body.insert("response_format".into(), Value::Object(format));
        Ok(())
    }

    /// `thinkingConfig`: `thinkingBudget` → the `thinking` extension (-1: adaptive, 0: no
    /// thinking, N: a budget of N tokens); `thinkingLevel` → `reasoning.effort`;
    /// `includeThoughts` → the answer shows the model's reasoning as thought parts.
    fn thinking(&mut self, value: &Value, loc: &Loc<'_>) -> Result<(), GatewayError> {
        let (mut budget, mut level) = (None, None);
        for (key, v) in object(value, loc)? {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            match camel(key).as_ref() {
                "includeThoughts" => self.include_thoughts = boolean(v, &kloc)?,
                "thinkingBudget" => budget = Some((integer(v, &kloc)?, key)),
                "thinkingLevel" => level = Some(string(v, &kloc)?),
                _ => return Err(unknown(loc, key)),
            }
        }
        if budget.is_some() && level.is_some() {
            return Err(invalid(loc, "thinkingBudget and thinkingLevel cannot both be set"));
        }
        match budget {
            Some((-1, _)) => self.extensions.thinking = Some(serde_json::json!({"type": "adaptive"})),
            Some((0, _)) => {}
            Some((n, _)) if n > 0 => {
                self.extensions.thinking = Some(serde_json::json!({"type": "enabled", "budget_tokens": n}));
            }
            Some((_, key)) => {
                return Err(invalid(&Loc::Key(loc, key), "the budget must be -1 (dynamic) or at least 0"));
            }
            None => {}
        }
        if let Some(level) = level.filter(|l| !l.eq_ignore_ascii_case("THINKING_LEVEL_UNSPECIFIED")) {
            self.extensions.reasoning_effort = Some(level.to_ascii_lowercase());
        }
        Ok(())
    }

    /// `tools`: function declarations → OpenAI function tools (only the `allowed` ones when
    /// `allowedFunctionNames` names some); Google's built-in tools are noted.
    fn tools(&mut self, value: &Value, loc: &Loc<'_>, allowed: Option<&[String]>) -> Result<Vec<Value>, GatewayError> {
        let mut out = Vec::new();
        for (i, tool) in list(value, loc)?.iter().enumerate() {
            let tloc = Loc::Index(loc, i);
            for (key, v) in object(tool, &tloc)? {
                if v.is_null() {
                    continue;
                }
                let kloc = Loc::Key(&tloc, key);
                match camel(key).as_ref() {
                    "functionDeclarations" => {
                        for (j, d) in list(v, &kloc)?.iter().enumerate() {
                            if let Some(f) = declaration(d, &Loc::Index(&kloc, j), allowed)? {
                                out.push(f);
                            }
                        }
                    }
                    other => match NATIVE_TOOLS.iter().find(|(t, _)| *t == other) {
                        Some((_, name)) => self.native(name),
                        None => return Err(unknown(&tloc, key)),
                    },
                }
            }
        }
        if let Some(names) = allowed
            && out.is_empty()
            && !names.is_empty()
        {
            return Err(invalid(loc, "allowedFunctionNames names no declared function"));
        }
        Ok(out)
    }

    /// `toolConfig`: `functionCallingConfig.mode` `AUTO` (the default), `ANY` (`required`, or
    /// the one function `allowedFunctionNames` names), `NONE`; `VALIDATED` and retrieval
    /// settings only Google serves.
    fn tool_config(&mut self, value: &Value, loc: &Loc<'_>) -> Result<Calling, GatewayError> {
        let mut calling = Calling::default();
        for (key, v) in object(value, loc)? {
            if v.is_null() {
                continue;
            }
            let kloc = Loc::Key(loc, key);
            match camel(key).as_ref() {
                "functionCallingConfig" => {
                    let mut mode = "AUTO";
                    for (k, fv) in object(v, &kloc)? {
                        if fv.is_null() {
                            continue;
                        }
                        let floc = Loc::Key(&kloc, k);
                        match camel(k).as_ref() {
                            "mode" => mode = string(fv, &floc)?,
                            "allowedFunctionNames" => {
                                let names = list(fv, &floc)?;
                                let mut out = Vec::with_capacity(names.len());
                                for (i, n) in names.iter().enumerate() {
                                    out.push(string(n, &Loc::Index(&floc, i))?.to_owned());
                                }
                                calling.allowed = Some(out);
                            }
                            _ => return Err(unknown(&kloc, k)),
                        }
                    }
                    calling.choice = match mode {
                        "AUTO" | "MODE_UNSPECIFIED" => None,
                        "NONE" => Some(Value::from("none")),
                        "ANY" => match calling.allowed.as_deref() {
                            Some([one]) => Some(serde_json::json!({"type": "function", "function": {"name": one}})),
                            _ => Some(Value::from("required")),
                        },
                        "VALIDATED" => {
                            self.native("toolConfig.functionCallingConfig.mode (VALIDATED)");
                            None
                        }
                        _ => {
                            return Err(invalid(
                                &Loc::Key(&kloc, "mode"),
                                format!("unknown mode '{mode}': use AUTO, ANY, NONE or VALIDATED"),
                            ));
                        }
                    };
                }
                "retrievalConfig" => self.native("toolConfig.retrievalConfig"),
                _ => return Err(unknown(loc, key)),
            }
        }
        Ok(calling)
    }

    /// `safetySettings`: thresholds that filter nothing translate (as nothing); any other
    /// threshold is Google's own filter, which only Google applies.
    fn safety(&mut self, value: &Value, loc: &Loc<'_>) -> Result<(), GatewayError> {
        for (i, s) in list(value, loc)?.iter().enumerate() {
            let sloc = Loc::Index(loc, i);
            for (key, v) in object(s, &sloc)? {
                match camel(key).as_ref() {
                    "category" | "method" => {}
                    "threshold" => {
                        if !UNFILTERED.contains(&string(v, &Loc::Key(&sloc, key))?) {
                            self.native("safetySettings");
                        }
                    }
                    _ => return Err(unknown(&sloc, key)),
                }
            }
        }
        Ok(())
    }
}

/// An image part.
fn image_part(url: String) -> Value {
    let mut image_url = Map::with_capacity(1);
    image_url.insert("url".into(), Value::String(url));
    let mut part = Map::with_capacity(2);
    part.insert("type".into(), Value::from("image_url"));
    part.insert("image_url".into(), Value::Object(image_url));
    Value::Object(part)
}

/// `functionCall`: `{id?, name, args?}`.
fn function_call<'v>(value: &'v Value, loc: &Loc<'_>) -> Result<Part<'v>, GatewayError> {
    let c = object(value, loc)?;
    let (mut id, mut name, mut args) = (None, None, None);
    for (key, v) in c {
        if v.is_null() {
            continue;
        }
        match camel(key).as_ref() {
            "id" => id = Some(string(v, &Loc::Key(loc, key))?),
            "name" => name = Some(string(v, &Loc::Key(loc, key))?),
            "args" => args = Some(v),
            // Streamed arguments of the Live API: nothing to translate.
            "partialArgs" | "willContinue" => {}
            _ => return Err(unknown(loc, key)),
        }
    }
    let name = name.ok_or_else(|| missing(&Loc::Key(loc, "name")))?;
    Ok(Part::Call { id, name, args, signature: None })
}

/// One function declaration → an OpenAI function tool (`None` when `allowed` leaves it out).
fn declaration(value: &Value, loc: &Loc<'_>, allowed: Option<&[String]>) -> Result<Option<Value>, GatewayError> {
    let d = object(value, loc)?;
    let (mut name, mut description, mut parameters) = (None, None, None);
    for (key, v) in d {
        if v.is_null() {
            continue;
        }
        let kloc = Loc::Key(loc, key);
        match camel(key).as_ref() {
            "name" => name = Some(string(v, &kloc)?),
            "description" => description = Some(string(v, &kloc)?),
            "parameters" => {
                object(v, &kloc)?;
                parameters.get_or_insert_with(|| json_schema(v));
            }
            "parametersJsonSchema" => {
                object(v, &kloc)?;
                parameters = Some(v.clone());
            }
            // What the function returns, and the Live API's scheduling: nothing a chat tool
            // definition carries.
            "response" | "responseJsonSchema" | "behavior" => {}
            _ => return Err(unknown(loc, key)),
        }
    }
    let name = name.ok_or_else(|| missing(&Loc::Key(loc, "name")))?;
    if allowed.is_some_and(|names| !names.iter().any(|n| n == name)) {
        return Ok(None);
    }
    let mut function = Map::with_capacity(3);
    function.insert("name".into(), Value::from(name));
    if let Some(d) = description {
        function.insert("description".into(), Value::from(d));
    }
    let parameters = parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
    function.insert("parameters".into(), parameters);
    let mut tool = Map::with_capacity(2);
    tool.insert("type".into(), Value::from("function"));
    tool.insert("function".into(), Value::Object(function));
    Ok(Some(Value::Object(tool)))
}

/// Gemini's `Schema` (an OpenAPI 3.0 subset: upper-case `type`, `nullable`, `propertyOrdering`,
/// 64-bit counts as strings) → JSON Schema: types lower-cased, `nullable` as a `"null"` type,
/// counts as numbers, `propertyOrdering` and `example` left out, the rest as is.
fn json_schema(value: &Value) -> Value {
    let Value::Object(o) = value else { return value.clone() };
    let mut out = Map::with_capacity(o.len());
    let mut nullable = false;
    for (key, v) in o {
        let key = camel(key);
        match key.as_ref() {
            "type" => match v {
                Value::String(t) if t == "TYPE_UNSPECIFIED" => {}
                Value::String(t) => _ = out.insert("type".into(), Value::String(t.to_ascii_lowercase())),
                other => _ = out.insert("type".into(), other.clone()),
            },
            "nullable" => nullable = v.as_bool() == Some(true),
            "propertyOrdering" | "example" => {}
            "properties" => {
                let props = match v {
                    Value::Object(p) => Value::Object(p.iter().map(|(k, s)| (k.clone(), json_schema(s))).collect()),
                    other => other.clone(),
                };
                out.insert("properties".into(), props);
            }
            "items" => _ = out.insert("items".into(), json_schema(v)),
            "anyOf" => {
                let any = match v {
                    Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
                    other => other.clone(),
                };
                out.insert("anyOf".into(), any);
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" | "minProperties" | "maxProperties" => {
                let n = match v {
                    Value::String(s) => s.parse::<u64>().map_or_else(|_| v.clone(), Value::from),
                    other => other.clone(),
                };
                out.insert(key.into_owned(), n);
            }
            _ => _ = out.insert(key.into_owned(), v.clone()),
        }
    }
    if nullable {
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            _ => _ = out.insert("nullable".into(), Value::Bool(true)),
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Family;
    use crate::schema::Extension;

    fn ok(v: Value) -> Parsed {
        match parse("chat", v.to_string().as_bytes(), false) {
            Ok(p) => p,
            Err(e) => panic!("refused: {e}"),
        }
    }

    fn messages(contents: Value) -> Value {
        ok(json!({"contents": contents})).request.body["messages"].clone()
    }

    /// The error for `body`: status (Gemini's), message, param.
    fn refused(body: Value) -> (u16, String, Option<String>) {
        match parse("chat", body.to_string().as_bytes(), false) {
            Ok(p) => panic!("accepted: {:?}", p.request.body),
            Err(e) => (e.status_for(Family::Gemini), e.message(), e.param),
        }
    }

    fn native_only(body: Value) -> Option<&'static str> {
        ok(body).native_only
    }

    fn hi() -> Value {
        json!([{"role": "user", "parts": [{"text": "Hi"}]}])
    }

    #[test]
    fn a_minimal_request_in_either_spelling() {
        let body = json!({"contents": [{"parts": [{"text": "Hi"}]}]});
        let p = ok(body.clone());
        assert_eq!(p.model, "chat");
        assert_eq!(
            Value::Object(p.request.body.clone()),
            json!({"messages": [{"role": "user", "content": "Hi"}], "n": 1})
        );
        assert_eq!(Value::Object(p.native), body, "native is the body as sent");
        assert_eq!((p.native_only, p.echo.is_empty(), p.request.stream()), (None, true, false));
        let p = parse("chat", body.to_string().as_bytes(), true).unwrap();
        assert!(p.request.stream(), "the method decides the stream");

        let snake = json!({"system_instruction": {"parts": [{"text": "Be brief."}]},
                           "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "iVBO"}}]}],
                           "generation_config": {"max_output_tokens": 5, "stop_sequences": ["x"]}});
        let p = ok(snake);
        assert_eq!(
            Value::Object(p.request.body),
            json!({"messages": [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]}],
                   "max_tokens": 5, "stop": ["x"], "n": 1})
        );
    }

    #[test]
    fn system_text_images_and_roles() {
        let p = ok(json!({
            "systemInstruction": {"role": "system", "parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "What is this?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}}]},
                {"role": "model", "parts": [{"text": "A "}, {"text": "cat."}, {"text": "hmm", "thought": true}]},
                {"role": "user", "parts": [{"text": "Sure?"}]},
            ]
        }));
        assert_eq!(
            p.request.body["messages"],
            json!([
                {"role": "system", "content": "You are terse.\nAnswer in French."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                             {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}]},
                {"role": "assistant", "content": "A cat."},
                {"role": "user", "content": "Sure?"},
            ])
        );
        let (status, message, param) = refused(json!({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}));
        assert_eq!((status, param.as_deref()), (400, Some("contents[0].role")), "{message}");
        assert!(message.contains("Please use a valid role"), "{message}");
    }

    #[test]
    fn a_function_call_round_trip() {
        let m = messages(json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                {"functionCall": {"id": "own", "name": "get_time"}},
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"id": "own", "name": "get_time", "response": {"t": "noon"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            ]},
        ]));
        assert_eq!(
            m,
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}, "thought_signature": "c2ln"},
                    {"id": "call_1_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
                    {"id": "own", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1_0", "content": "{\"temp\":18}"},
                {"role": "tool", "tool_call_id": "own", "content": "{\"t\":\"noon\"}"},
                {"role": "tool", "tool_call_id": "call_1_1", "content": "{\"temp\":21}"},
            ])
        );
        let (status, message, param) = refused(json!({"contents": [
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
        ]}));
        assert_eq!((status, param.as_deref()), (400, Some("contents[0].parts[0].functionResponse")), "{message}");
        let (_, _, param) =
            refused(json!({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]}));
        assert_eq!(param.as_deref(), Some("contents[0].parts[0]"));
    }

    #[test]
    fn generation_config_maps_to_sampling_parameters_and_extensions() {
        let p = ok(json!({"contents": hi(), "generationConfig": {
            "temperature": 0.5, "topP": 0.9, "topK": 40, "maxOutputTokens": 100, "candidateCount": 1,
            "stopSequences": ["END"], "presencePenalty": 0.1, "frequencyPenalty": 0.2, "seed": "7",
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}, "mediaResolution": "MEDIA_RESOLUTION_LOW"
        }}));
        let b = Value::Object(p.request.body);
        assert_eq!(
            (&b["temperature"], &b["top_p"], &b["max_tokens"], &b["n"], &b["stop"], &b["seed"]),
            (&json!(0.5), &json!(0.9), &json!(100), &json!(1), &json!(["END"]), &json!(7))
        );
        assert_eq!((&b["presence_penalty"], &b["frequency_penalty"]), (&json!(0.1), &json!(0.2)));
        assert_eq!(p.request.extensions.top_k, Some(40));
        assert_eq!(p.request.extensions.thinking, Some(json!({"type": "enabled", "budget_tokens": 2048})));
        assert_eq!(p.echo.get(INCLUDE_THOUGHTS), Some(&json!(true)));
        let used: Vec<Extension> = p.request.extensions.used().collect();
        assert_eq!(used, vec![Extension::TopK, Extension::Thinking]);

        let thinking = |config: Value| {
            ok(json!({"contents": hi(), "generationConfig": {"thinkingConfig": config}})).request.extensions
        };
        assert_eq!(thinking(json!({"thinkingBudget": -1})).thinking, Some(json!({"type": "adaptive"})));
        assert_eq!(thinking(json!({"thinkingBudget": 0})), Extensions::default(), "0 is no thinking");
        assert_eq!(thinking(json!({"thinkingLevel": "LOW"})).reasoning_effort.as_deref(), Some("low"));
        let (_, _, param) =
            refused(json!({"contents": hi(), "generationConfig": {"thinkingConfig": {"thinkingBudget": -2}}}));
        assert_eq!(param.as_deref(), Some("generationConfig.thinkingConfig.thinkingBudget"));
        let (_, message, _) = refused(
            json!({"contents": hi(), "generationConfig": {"thinkingConfig": {"thinkingBudget": 5, "thinkingLevel": "LOW"}}}),
        );
        assert!(message.contains("cannot both"), "{message}");
    }

    #[test]
    fn json_output_and_schemas() {
        let format = |config: Value| {
            ok(json!({"contents": hi(), "generationConfig": config})).request.body.get("response_format").cloned()
        };
        assert_eq!(format(json!({"responseMimeType": "application/json"})), Some(json!({"type": "json_object"})));
        assert_eq!(format(json!({"responseMimeType": "text/plain"})), None);
        let schema = json!({"type": "OBJECT", "properties": {"name": {"type": "STRING", "nullable": true},
                                                             "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": "3"}},
                            "required": ["name"], "propertyOrdering": ["name", "tags"]});
        assert_eq!(
            format(json!({"responseMimeType": "application/json", "responseSchema": schema})),
            Some(json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {
                "type": "object", "properties": {"name": {"type": ["string", "null"]},
                                                 "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
                "required": ["name"]}}}))
        );
        let js = json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}, "additionalProperties": false});
        assert_eq!(
            format(json!({"responseMimeType": "application/json", "responseJsonSchema": js.clone()})),
            Some(json!({"type": "json_schema", "json_schema": {"name": "response", "schema": js}}))
        );
        assert_eq!(
            native_only(json!({"contents": hi(), "generationConfig": {"responseMimeType": "text/x.enum"}})),
            Some("generationConfig.responseMimeType (text/x.enum)")
        );
        let (_, _, param) =
            refused(json!({"contents": hi(), "generationConfig": {"responseMimeType": "application/xml"}}));
        assert_eq!(param.as_deref(), Some("generationConfig.responseMimeType"));
    }

    #[test]
    fn tools_and_function_calling_modes() {
        let tools = json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}},
            {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {"tz": {"type": "string"}}}},
            {"name": "ping"},
        ]}]);
        let p = ok(json!({"contents": hi(), "tools": tools}));
        assert_eq!(
            p.request.body["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
                {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
            ])
        );
        assert!(!p.request.body.contains_key("tool_choice"), "AUTO is the default");
        let choice = |config: Value| {
            let p = ok(json!({"contents": hi(), "tools": tools, "toolConfig": {"functionCallingConfig": config}}));
            let names: Vec<Value> =
                p.request.body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].clone()).collect();
            (p.request.body.get("tool_choice").cloned(), names)
        };
        assert_eq!(choice(json!({"mode": "NONE"})).0, Some(json!("none")));
        assert_eq!(choice(json!({"mode": "ANY"})).0, Some(json!("required")));
        assert_eq!(
            choice(json!({"mode": "ANY", "allowedFunctionNames": ["get_time"]})),
            (Some(json!({"type": "function", "function": {"name": "get_time"}})), vec![json!("get_time")])
        );
        assert_eq!(
            choice(json!({"mode": "ANY", "allowedFunctionNames": ["get_time", "ping"]})),
            (Some(json!("required")), vec![json!("get_time"), json!("ping")])
        );
        let (_, _, param) = refused(
            json!({"contents": hi(), "tools": tools, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}),
        );
        assert_eq!(param.as_deref(), Some("toolConfig.functionCallingConfig.mode"));
    }

    #[test]
    fn what_only_google_serves_is_named() {
        let cases = [
            (json!({"contents": hi(), "tools": [{"googleSearch": {}}]}), "tools.googleSearch"),
            (json!({"contents": hi(), "tools": [{"code_execution": {}}]}), "tools.codeExecution"),
            (json!({"contents": hi(), "cachedContent": "cachedContents/abc"}), "cachedContent"),
            (
                json!({"contents": hi(), "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}]}),
                "safetySettings",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "gs://b/f.pdf", "mimeType": "application/pdf"}}]}]}),
                "contents.parts.fileData",
            ),
            (
                json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "UklG"}}]}]}),
                "contents.parts.inlineData (not an image)",
            ),
            (
                json!({"contents": hi(), "generationConfig": {"responseLogprobs": true}}),
                "generationConfig.responseLogprobs",
            ),
            (json!({"contents": hi(), "generationConfig": {"candidateCount": 2}}), "generationConfig.candidateCount"),
            (
                json!({"contents": hi(), "systemInstruction": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}),
                "systemInstruction.parts (not text)",
            ),
            (
                json!({"contents": hi(), "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}),
                "generationConfig.responseModalities",
            ),
            (
                json!({"contents": hi(), "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}}),
                "toolConfig.functionCallingConfig.mode (VALIDATED)",
            ),
        ];
        for (body, feature) in cases {
            assert_eq!(native_only(body.clone()), Some(feature), "{body}");
        }
        let unfiltered = json!({"contents": hi(), "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"},
                                                                       {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "OFF"}],
                                "generationConfig": {"responseModalities": ["TEXT"]}});
        assert_eq!(native_only(unfiltered), None);
    }

    #[test]
    fn bad_bodies_are_400s_naming_the_place() {
        let cases = [
            (json!({}), "contents"),
            (json!({"contents": []}), "contents"),
            (json!({"contents": "Hi"}), "contents"),
            (json!({"contents": [{"role": "user"}]}), "contents[0].parts"),
            (json!({"contents": [{"parts": []}]}), "contents[0].parts"),
            (json!({"contents": [{"parts": [{}]}]}), "contents[0].parts[0]"),
            (json!({"contents": [{"parts": [{"text": 5}]}]}), "contents[0].parts[0].text"),
            (
                json!({"contents": [{"parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": ""}}]}]}),
                "contents[0].parts[0]",
            ),
            (json!({"contents": [{"parts": [{"bogus": 1}]}]}), "contents[0].parts[0].bogus"),
            (json!({"contents": hi(), "bogus": 1}), "bogus"),
            (json!({"contents": hi(), "generationConfig": {"bogus": 1}}), "generationConfig.bogus"),
            (json!({"contents": hi(), "generationConfig": {"temperature": "hot"}}), "generationConfig.temperature"),
            (
                json!({"contents": hi(), "tools": [{"functionDeclarations": [{"description": "x"}]}]}),
                "tools[0].functionDeclarations[0].name",
            ),
        ];
        for (body, param) in cases {
            let (status, message, p) = refused(body.clone());
            assert_eq!((status, p.as_deref()), (400, Some(param)), "{body}: {message}");
        }
        let (_, message, _) = refused(json!({"contents": hi(), "bogus": 1}));
        assert_eq!(message, "Invalid JSON payload received. Unknown name \"bogus\": Cannot find field.");
        let e = parse("chat", b"{not json", false).unwrap_err();
        assert_eq!(e.status_for(Family::Gemini), 400);
        // MLflow's rules still apply to the unified request.
        let (status, _, _) = refused(json!({"contents": hi(), "generationConfig": {"temperature": 3}}));
        assert_eq!(status, 400);
    }

    #[test]
    fn signed_thoughts_are_kept_for_claude() {
        let p = ok(json!({"contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Plan.", "thought": true, "thoughtSignature": "sig"},
                                        {"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]},
        ]}));
        assert_eq!(
            p.request.extensions.thinking_history,
            vec![SignedThinking { message: 1, thinking: "Plan.".into(), signature: "sig".into() }]
        );
        // As a stream gives it back: the thought in pieces, the signature in a last empty part.
        let p = ok(json!({"contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Pl", "thought": true}, {"text": "an.", "thought": true},
                                        {"text": "", "thought": true, "thoughtSignature": "sig"},
                                        {"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": true}}}]},
        ]}));
        assert_eq!(
            p.request.extensions.thinking_history,
            vec![SignedThinking { message: 1, thinking: "Plan.".into(), signature: "sig".into() }]
        );
        // Unsigned thoughts are left out.
        let p = ok(json!({"contents": [{"role": "model", "parts": [{"text": "hmm", "thought": true}, {"text": "A"}]},
                                       {"role": "user", "parts": [{"text": "B"}]}]}));
        assert!(p.request.extensions.thinking_history.is_empty());
    }

    #[test]
    fn camel_case_names() {
        assert_eq!(camel("system_instruction"), "systemInstruction");
        assert_eq!(camel("max_output_tokens"), "maxOutputTokens");
        assert!(matches!(camel("topK"), Cow::Borrowed("topK")));
    }
}
