//! Unified responses, serialised the way MLflow's FastAPI app does: optional fields are emitted
//! as `null`, keys in MLflow's field order.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Token usage of a chat or completions answer. Extra upstream keys
/// (`completion_tokens_details`, `cache_creation_input_tokens`, …) are passed through.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    pub completion_tokens: Option<u64>,
    /// Both.
    pub total_tokens: Option<u64>,
    /// `{"cached_tokens": N}` when known; omitted otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<Value>,
    /// Further keys the upstream reported.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Usage {
    /// Usage with these counts (each may be unknown) and nothing else.
    pub fn counts(prompt: Option<u64>, completion: Option<u64>, total: Option<u64>) -> Usage {
        Usage { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total, ..Usage::default() }
    }

    /// Usage from input and output counts, the total their sum when both are known.
    pub fn new(prompt: Option<u64>, completion: Option<u64>) -> Usage {
        Usage::counts(prompt, completion, prompt.zip(completion).map(|(p, c)| p + c))
    }

    /// Only the three counts of `self` (details and extra upstream keys dropped).
    pub fn only_counts(self) -> Usage {
        Usage::counts(self.prompt_tokens, self.completion_tokens, self.total_tokens)
    }

    /// Usage from an OpenAI-style usage object (any missing count is null).
    pub fn from_openai(v: &Value) -> Usage {
        let Some(obj) = v.as_object() else {
            return Usage::default();
        };
        let mut usage = Usage::default();
        for (k, val) in obj {
            match k.as_str() {
                "prompt_tokens" => usage.prompt_tokens = val.as_u64(),
                "completion_tokens" => usage.completion_tokens = val.as_u64(),
                "total_tokens" => usage.total_tokens = val.as_u64(),
                "prompt_tokens_details" => {
                    usage.prompt_tokens_details = (!val.is_null()).then(|| val.clone());
                }
                _ => {
                    usage.extra.insert(k.clone(), val.clone());
                }
            }
        }
        usage
    }

    /// Whether any count is known.
    pub fn is_known(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some() || self.total_tokens.is_some()
    }
}

/// A function call made by the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// JSON-encoded arguments.
    pub arguments: String,
}

/// A tool call in a chat answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// Call id, used by the `tool` message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What to call.
    pub function: FunctionCall,
    /// Gemini's thought signature, emitted only when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl ToolCall {
    /// A function call with JSON-encoded `arguments`.
    pub fn function(id: String, name: String, arguments: String) -> ToolCall {
        ToolCall { id, kind: "function", function: FunctionCall { name, arguments }, thought_signature: None }
    }

    /// The same call carrying Gemini's thought signature (emitted only when `Some`).
    pub fn with_thought_signature(mut self, signature: Option<String>) -> ToolCall {
        self.thought_signature = signature;
        self
    }
}

/// The assistant message of a chat choice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// Usually `assistant`.
    pub role: String,
    /// Text, or null when the model only called tools.
    pub content: Option<String>,
    /// Tool calls, or null.
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Always null (MLflow never maps it).
    pub refusal: Option<String>,
    /// The model's reasoning text (Anthropic thinking), kept out of `content`; emitted only
    /// when present, as OpenAI-compatible servers do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The signature of the reasoning (Claude's, when it came as one signed thinking block):
    /// not part of the chat answer, but the Messages and Responses encodings hand it to the
    /// client so that it can give the thinking back (docs/client-apis.md, "Thinking history").
    #[serde(skip)]
    pub thinking_signature: Option<String>,
}

impl ResponseMessage {
    /// A message of `role` with `content` and `tool_calls`; no refusal, no reasoning.
    pub fn new(role: String, content: Option<String>, tool_calls: Option<Vec<ToolCall>>) -> ResponseMessage {
        ResponseMessage { role, content, tool_calls, refusal: None, reasoning_content: None, thinking_signature: None }
    }

    /// The same message with the signature of its reasoning (see [`Self::thinking_signature`]).
    pub fn with_thinking_signature(mut self, signature: Option<String>) -> ResponseMessage {
        self.thinking_signature = signature;
        self
    }

    /// An `assistant` message with `content` only.
    pub fn assistant(content: Option<String>) -> ResponseMessage {
        ResponseMessage::new("assistant".to_owned(), content, None)
    }

    /// The same message with the model's reasoning text (emitted only when `Some`).
    pub fn with_reasoning(mut self, reasoning: Option<String>) -> ResponseMessage {
        self.reasoning_content = reasoning;
        self
    }
}

/// One choice of a chat answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChoice {
    /// Position, 0-based.
    pub index: u32,
    /// The message.
    pub message: ResponseMessage,
    /// `stop`, `length`, `tool_calls`, … or null.
    pub finish_reason: Option<String>,
}

impl ChatChoice {
    /// Choice `index` with its message and finish reason.
    pub fn new(index: u32, message: ResponseMessage, finish_reason: Option<String>) -> ChatChoice {
        ChatChoice { index, message, finish_reason }
    }
}

/// A chat answer (`chat.completion`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    /// Upstream id, or null.
    pub id: Option<String>,
    /// `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model that answered.
    pub model: Option<String>,
    /// Choices.
    pub choices: Vec<ChatChoice>,
    /// Token usage.
    pub usage: Usage,
    /// The endpoint's provider as configured.
    pub provider: &'static str,
}

impl ChatResponse {
    /// A `chat.completion` answer.
    pub fn new(
        id: Option<String>,
        created: u64,
        model: Option<String>,
        choices: Vec<ChatChoice>,
        usage: Usage,
        provider: &'static str,
    ) -> ChatResponse {
        ChatResponse { id, object: object::CHAT, created, model, choices, usage, provider }
    }
}

/// A function call fragment in a streamed chat chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FunctionCallDelta {
    /// Function name (first fragment).
    pub name: Option<String>,
    /// A piece of the JSON arguments.
    pub arguments: Option<String>,
}

/// A tool call fragment in a streamed chat chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallDelta {
    /// Which tool call of the message this fragment belongs to.
    pub index: u32,
    /// Call id (first fragment).
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type")]
    pub kind: Option<&'static str>,
    /// Name and/or arguments.
    pub function: FunctionCallDelta,
    /// Gemini's thought signature (first fragment), emitted only when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl ToolCallDelta {
    /// The first fragment of tool call `index`: its id, type `function` and name.
    pub fn start(index: u32, id: Option<String>, name: Option<String>) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id,
            kind: Some("function"),
            function: FunctionCallDelta { name, arguments: None },
            thought_signature: None,
        }
    }

    /// The same fragment carrying Gemini's thought signature (emitted only when `Some`).
    pub fn with_thought_signature(mut self, signature: Option<String>) -> ToolCallDelta {
        self.thought_signature = signature;
        self
    }

    /// The same fragment carrying (the first piece of) the call's arguments.
    pub fn with_arguments(mut self, arguments: String) -> ToolCallDelta {
        self.function.arguments = Some(arguments);
        self
    }

    /// A later fragment of tool call `index`: a piece of its arguments.
    pub fn arguments(index: u32, arguments: Option<String>) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: FunctionCallDelta { name: None, arguments },
            thought_signature: None,
        }
    }
}

/// The delta of a streamed chat choice.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Delta {
    /// Role (first chunk).
    pub role: Option<String>,
    /// Text fragment.
    pub content: Option<String>,
    /// Tool call fragments.
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// A fragment of reasoning text, emitted only when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The signature of the reasoning streamed so far (Claude's, at the end of a thinking
    /// block); see [`ResponseMessage::thinking_signature`]. Never written in a chat chunk.
    #[serde(skip)]
    pub thinking_signature: Option<String>,
}

impl Delta {
    /// A delta with these parts (no reasoning text).
    pub fn new(role: Option<String>, content: Option<String>, tool_calls: Option<Vec<ToolCallDelta>>) -> Delta {
        Delta { role, content, tool_calls, reasoning_content: None, thinking_signature: None }
    }

    /// A delta carrying a text fragment (or none).
    pub fn text(content: Option<String>) -> Delta {
        Delta { content, ..Delta::default() }
    }

    /// A delta carrying tool call fragments.
    pub fn tool_calls(calls: Vec<ToolCallDelta>) -> Delta {
        Delta { tool_calls: Some(calls), ..Delta::default() }
    }

    /// A delta carrying a fragment of reasoning text (or none).
    pub fn reasoning(text: Option<String>) -> Delta {
        Delta { reasoning_content: text, ..Delta::default() }
    }

    /// A delta carrying the signature of the reasoning streamed so far.
    pub fn thinking_signature(signature: String) -> Delta {
        Delta { thinking_signature: Some(signature), ..Delta::default() }
    }
}

/// One choice of a streamed chat chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    /// Position.
    pub index: u32,
    /// Set on the last chunk of the choice.
    pub finish_reason: Option<String>,
    /// What is new.
    pub delta: Delta,
}

impl ChunkChoice {
    /// Choice `index` of a chunk: what is new, and the finish reason on its last chunk.
    pub fn new(index: u32, delta: Delta, finish_reason: Option<String>) -> ChunkChoice {
        ChunkChoice { index, finish_reason, delta }
    }
}

/// A streamed chat chunk (`chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatChunk {
    /// Upstream id, or null.
    pub id: Option<String>,
    /// `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: Option<String>,
    /// Choices (empty on a usage-only chunk).
    pub choices: Vec<ChunkChoice>,
    /// Usage, on the chunk that carries it.
    pub usage: Option<Usage>,
    /// The endpoint's provider as configured.
    pub provider: &'static str,
}

impl ChatChunk {
    /// A `chat.completion.chunk`.
    pub fn new(
        id: Option<String>,
        created: u64,
        model: Option<String>,
        choices: Vec<ChunkChoice>,
        usage: Option<Usage>,
        provider: &'static str,
    ) -> ChatChunk {
        ChatChunk { id, object: object::CHAT_CHUNK, created, model, choices, usage, provider }
    }
}

/// One choice of a completions answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionChoice {
    /// Position.
    pub index: u32,
    /// Generated text.
    pub text: Option<String>,
    /// Why generation stopped, or null.
    pub finish_reason: Option<String>,
}

impl CompletionChoice {
    /// Choice `index` with its text and finish reason.
    pub fn new(index: u32, text: Option<String>, finish_reason: Option<String>) -> CompletionChoice {
        CompletionChoice { index, text, finish_reason }
    }
}

/// A completions answer (`text_completion`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionsResponse {
    /// Upstream id, or null.
    pub id: Option<String>,
    /// `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: Option<String>,
    /// Choices.
    pub choices: Vec<CompletionChoice>,
    /// Usage (counts may be null).
    pub usage: Usage,
}

impl CompletionsResponse {
    /// A `text_completion` answer.
    pub fn new(
        id: Option<String>,
        created: u64,
        model: Option<String>,
        choices: Vec<CompletionChoice>,
        usage: Usage,
    ) -> CompletionsResponse {
        CompletionsResponse { id, object: object::COMPLETION, created, model, choices, usage }
    }
}

/// One choice of a streamed completions chunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionChunkChoice {
    /// Position.
    pub index: u32,
    /// Set on the last chunk.
    pub finish_reason: Option<String>,
    /// Text fragment.
    pub text: Option<String>,
}

impl CompletionChunkChoice {
    /// Choice `index` of a chunk: a text fragment, and the finish reason on its last chunk.
    pub fn new(index: u32, text: Option<String>, finish_reason: Option<String>) -> CompletionChunkChoice {
        CompletionChunkChoice { index, finish_reason, text }
    }
}

/// A streamed completions chunk (`text_completion_chunk`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionsChunk {
    /// Upstream id, or null.
    pub id: Option<String>,
    /// `text_completion_chunk` (Gemini: `text_completion.chunk`, as MLflow emits it).
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: Option<String>,
    /// Choices.
    pub choices: Vec<CompletionChunkChoice>,
    /// Usage, when known.
    pub usage: Option<Usage>,
}

impl CompletionsChunk {
    /// A `text_completion_chunk`.
    pub fn new(
        id: Option<String>,
        created: u64,
        model: Option<String>,
        choices: Vec<CompletionChunkChoice>,
        usage: Option<Usage>,
    ) -> CompletionsChunk {
        CompletionsChunk { id, object: object::COMPLETION_CHUNK, created, model, choices, usage }
    }
}

/// One embedding vector (a list of floats, or a base64 string when the client asked for it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    /// `embedding`.
    pub object: &'static str,
    /// The vector.
    pub embedding: Vector,
    /// Position of the input.
    pub index: u32,
}

impl Embedding {
    /// The vector of input `index`.
    pub fn new(index: u32, embedding: impl Into<Vector>) -> Embedding {
        Embedding { object: object::EMBEDDING, embedding: embedding.into(), index }
    }
}

/// An embedding vector on its way out: a parsed value, or the upstream's own JSON text passed
/// through unparsed. Answers already in the right shape (OpenAI-format arrays, Gemini's
/// `values`) take the raw form, so a 1,536-float vector is neither parsed nor printed again.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Vector {
    /// A parsed (or built) value.
    Value(Value),
    /// JSON text copied from the upstream answer.
    Raw(Box<RawValue>),
}

impl From<Value> for Vector {
    fn from(v: Value) -> Vector {
        Vector::Value(v)
    }
}

impl From<Box<RawValue>> for Vector {
    fn from(v: Box<RawValue>) -> Vector {
        Vector::Raw(v)
    }
}

impl PartialEq for Vector {
    /// Equal when they denote the same JSON value, whatever their form.
    fn eq(&self, other: &Vector) -> bool {
        fn value(v: &Vector) -> Option<Value> {
            match v {
                Vector::Value(v) => Some(v.clone()),
                Vector::Raw(r) => serde_json::from_str(r.get()).ok(),
            }
        }
        match (self, other) {
            (Vector::Value(a), Vector::Value(b)) => a == b,
            (Vector::Raw(a), Vector::Raw(b)) if a.get() == b.get() => true,
            _ => value(self) == value(other),
        }
    }
}

/// Token usage of an embeddings answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EmbeddingsUsage {
    /// Input tokens.
    pub prompt_tokens: Option<u64>,
    /// Same as input tokens.
    pub total_tokens: Option<u64>,
}

impl EmbeddingsUsage {
    /// Input and total token counts (each may be unknown).
    pub fn new(prompt_tokens: Option<u64>, total_tokens: Option<u64>) -> EmbeddingsUsage {
        EmbeddingsUsage { prompt_tokens, total_tokens }
    }
}

/// An embeddings answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingsResponse {
    /// `list`.
    pub object: &'static str,
    /// Vectors in input order.
    pub data: Vec<Embedding>,
    /// Model.
    pub model: Option<String>,
    /// Usage.
    pub usage: EmbeddingsUsage,
}

impl EmbeddingsResponse {
    /// A `list` of vectors.
    pub fn new(data: Vec<Embedding>, model: Option<String>, usage: EmbeddingsUsage) -> EmbeddingsResponse {
        EmbeddingsResponse { object: object::LIST, data, model, usage }
    }
}

/// A whole unified answer, as a provider's decoder returns it. The server serialises it in the
/// shape of the client's API (MLflow's unified JSON on native and `/v1` routes).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// A chat answer.
    Chat(ChatResponse),
    /// A completions answer.
    Completions(CompletionsResponse),
    /// An embeddings answer.
    Embeddings(EmbeddingsResponse),
    /// A provider's answer in the client's own API (Anthropic Messages to Anthropic, Responses
    /// to OpenAI), relayed as it came.
    #[serde(skip)]
    Native(NativeAnswer),
}

/// An answer relayed unchanged, with the usage read from it on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeAnswer {
    /// The upstream's JSON body.
    pub body: bytes::Bytes,
    /// Its token usage, in unified terms.
    pub usage: Option<Usage>,
}

impl Answer {
    /// The token usage the upstream reported, when it reported any count.
    pub fn usage(&self) -> Option<Usage> {
        let usage = match self {
            Answer::Chat(c) => c.usage.clone(),
            Answer::Completions(c) => c.usage.clone(),
            Answer::Embeddings(e) => {
                Usage { prompt_tokens: e.usage.prompt_tokens, total_tokens: e.usage.total_tokens, ..Usage::default() }
            }
            Answer::Native(n) => n.usage.clone()?,
        };
        usage.is_known().then_some(usage)
    }
}

/// One unified stream chunk, as a provider's stream decoder produces it. The server writes it
/// in the shape of the client's API (one `data: {json}` event on native and `/v1` routes).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Chunk {
    /// A chat chunk.
    Chat(ChatChunk),
    /// A completions chunk.
    Completions(CompletionsChunk),
    /// One whole event of a stream in the client's own API, relayed as it came (its framing
    /// included: `event: …\ndata: …\n\n`; a Gemini event is its JSON only, which the Gemini
    /// client API frames as the client asked: SSE, or an element of a JSON array).
    #[serde(skip)]
    Native(bytes::Bytes),
}

impl Chunk {
    /// The usage this chunk carries, if any.
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            Chunk::Chat(c) => c.usage.as_ref(),
            Chunk::Completions(c) => c.usage.as_ref(),
            Chunk::Native(_) => None,
        }
    }
}

/// Object type names.
pub mod object {
    /// Chat answer.
    pub const CHAT: &str = "chat.completion";
    /// Chat chunk.
    pub const CHAT_CHUNK: &str = "chat.completion.chunk";
    /// Completions answer.
    pub const COMPLETION: &str = "text_completion";
    /// Completions chunk.
    pub const COMPLETION_CHUNK: &str = "text_completion_chunk";
    /// Embedding vector.
    pub const EMBEDDING: &str = "embedding";
    /// A list.
    pub const LIST: &str = "list";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    #[test]
    fn constructors_fill_the_fixed_fields() {
        let message = ResponseMessage::assistant(Some("hi".into()));
        assert_eq!(
            json(&message),
            json(&ResponseMessage {
                role: "assistant".into(),
                content: Some("hi".into()),
                tool_calls: None,
                refusal: None,
                reasoning_content: None,
                thinking_signature: None,
            })
        );
        let call = ToolCall::function("t".into(), "f".into(), "{}".into());
        assert_eq!(
            json(&call),
            serde_json::json!({"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}})
        );
        let answer = ChatResponse::new(
            None,
            7,
            None,
            vec![ChatChoice::new(0, message, None)],
            Usage::new(Some(1), Some(2)),
            "p",
        );
        assert_eq!(
            json(&answer),
            serde_json::json!({"id": null, "object": "chat.completion", "created": 7, "model": null,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "tool_calls": null, "refusal": null}, "finish_reason": null}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, "provider": "p"})
        );
        let chunk =
            ChatChunk::new(None, 7, None, vec![ChunkChoice::new(1, Delta::text(Some("a".into())), None)], None, "p");
        assert_eq!(
            json(&chunk),
            serde_json::json!({"id": null, "object": "chat.completion.chunk", "created": 7, "model": null,
                "choices": [{"index": 1, "finish_reason": null, "delta": {"role": null, "content": "a", "tool_calls": null}}],
                "usage": null, "provider": "p"})
        );
        assert_eq!(
            json(&ToolCallDelta::start(0, Some("i".into()), Some("f".into())).with_arguments(String::new())),
            serde_json::json!({"index": 0, "id": "i", "type": "function", "function": {"name": "f", "arguments": ""}})
        );
        let chunk =
            CompletionsChunk::new(None, 7, None, vec![CompletionChunkChoice::new(0, Some("x".into()), None)], None);
        assert_eq!(json(&chunk)["object"], "text_completion_chunk");
        let answer =
            CompletionsResponse::new(None, 7, None, vec![CompletionChoice::new(0, None, None)], Usage::default());
        assert_eq!(json(&answer)["object"], "text_completion");
        let answer = EmbeddingsResponse::new(
            vec![Embedding::new(0, serde_json::json!([1]))],
            None,
            EmbeddingsUsage::new(Some(2), None),
        );
        assert_eq!(
            json(&answer),
            serde_json::json!({"object": "list", "data": [{"object": "embedding", "embedding": [1], "index": 0}],
                "model": null, "usage": {"prompt_tokens": 2, "total_tokens": null}})
        );
        assert_eq!(Usage::new(Some(1), None), Usage::counts(Some(1), None, None));
    }

    #[test]
    fn usage_of_an_answer() {
        let usage =
            Usage { prompt_tokens: Some(3), completion_tokens: Some(4), total_tokens: Some(7), ..Usage::default() };
        let chat = ChatResponse {
            id: None,
            object: object::CHAT,
            created: 1,
            model: None,
            choices: Vec::new(),
            usage: usage.clone(),
            provider: "openai",
        };
        assert_eq!(Answer::Chat(chat.clone()).usage(), Some(usage));
        let unknown = Answer::Chat(ChatResponse { usage: Usage::default(), ..chat });
        assert_eq!(unknown.usage(), None, "no count known: no usage");
        let emb = Answer::Embeddings(EmbeddingsResponse {
            object: object::LIST,
            data: Vec::new(),
            model: None,
            usage: EmbeddingsUsage { prompt_tokens: Some(5), total_tokens: Some(5) },
        });
        assert_eq!(emb.usage().and_then(|u| u.prompt_tokens), Some(5));
    }
}
