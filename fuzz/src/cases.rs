//! Provider decoding cases shared by the `provider_response` / `provider_stream` fuzz targets
//! and by `tests/it/properties.rs` (which includes this file with `#[path]`).
//!
//! One gateway configuration holds an endpoint for every provider and every endpoint type it
//! serves, with dummy credentials that load without any network access (Vertex AI gets a
//! service-account JSON with the repository's test-only RSA key). For each endpoint, valid
//! unified requests (plain, streamed, with tools, several embedding inputs) go through
//! `aigw::providers::prepare`, exactly as the server does, and each resulting `Exchange`'s
//! decoder is a [`Case`]. Only the public API of the `aigw` crate is used.
//!
//! Fuzz inputs share one layout ([`Input::parse`]): `[n] [n × u16 BE cut points] [body]`. The
//! cut points split the body into pieces (a stream is fed piece by piece; a fan-out gets one
//! body per upstream call), so the fuzzer chooses the splits and a seed `[0] body` is the body
//! whole.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use aigw::api::encode::{self, AnswerMeta, StreamEncoder};
use aigw::config::{Endpoint, ProviderName};
use aigw::error::Family;
use aigw::providers::{self, Call, Decoder, Exchange};
use aigw::schema::{EndpointType, Request, parse_request};
use aigw::snapshot::Snapshot;
use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

/// The repository's test-only RSA key (it guards nothing).
const TEST_KEY: &str = include_str!("../../src/providers/vertex_ai/testdata/test-only-rsa-key.pem");

/// `created` for every call (MLflow fixtures' frozen time).
pub const CREATED: u64 = 1_700_000_000;

/// How a case's answer is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One JSON body.
    Json,
    /// A stream fed in pieces.
    Stream,
    /// A fan-out of this many JSON bodies.
    Many(usize),
}

/// One endpoint plus one valid request for it.
pub struct Case {
    /// `<endpoint name> <request variant>`, e.g. `anthropic-chat stream`.
    pub label: String,
    /// The configured provider name (`openai`, `amazon-bedrock`, …).
    pub provider: String,
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// The validated request.
    pub request: Request,
    /// Its decoder's kind.
    pub kind: Kind,
}

impl Case {
    /// A fresh exchange for this case (a decoder is consumed by use).
    pub fn exchange(&self) -> Exchange {
        let call = Call { endpoint: &self.endpoint, created: CREATED };
        let provider = match cases().snapshot.provider(&self.endpoint) {
            Ok(p) => p,
            Err(e) => panic!("{}: {}", self.label, e.message()),
        };
        match providers::prepare(provider, self.request.clone(), &call) {
            Ok(x) => x,
            Err(e) => panic!("{}: prepare failed: {}", self.label, e.message()),
        }
    }
}

/// All cases, built once.
pub struct Cases {
    /// The configuration the cases' endpoints come from, with their providers.
    pub snapshot: Snapshot,
    /// Cases whose answer is one or several JSON bodies.
    pub response: Vec<Case>,
    /// Cases whose answer is a stream.
    pub stream: Vec<Case>,
}

/// One endpoint of the configuration: name, type, provider, model, config, and whether it
/// streams (then the streamed request variants must prepare successfully too).
struct Ep(&'static str, &'static str, &'static str, &'static str, Value, bool);

fn endpoints() -> Vec<Ep> {
    let sa = json!({
        "type": "service_account",
        "project_id": "fuzz-project",
        "private_key_id": "0123456789abcdef",
        "private_key": TEST_KEY,
        "client_email": "fuzz@fuzz-project.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": "http://127.0.0.1:9/token",
    })
    .to_string();
    let vertex = json!({"vertex_project": "fuzz-project", "vertex_credentials": sa});
    let azure = |ty: &str| {
        json!({"openai_api_type": ty, "openai_api_key": "key", "openai_api_base": "https://x.openai.azure.com/",
               "openai_deployment_name": "dep", "openai_api_version": "2024-02-01"})
    };
    let aws_keys = json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"}});
    let aws_bearer = json!({"aws_config": {"aws_bearer_token": "token", "aws_region": "us-east-1"}});
    let key = |k: &str| json!({ k: "key" });
    let (c, p, e) = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings");
    vec![
        Ep("openai-chat", c, "openai", "gpt-4o-mini", key("openai_api_key"), true),
        Ep("openai-completions", p, "openai", "gpt-3.5-turbo-instruct", key("openai_api_key"), true),
        Ep("openai-embeddings", e, "openai", "text-embedding-3-small", key("openai_api_key"), false),
        Ep("azure-chat", c, "azure", "gpt-4o", azure("azure"), true),
        Ep("azure-completions", p, "azure", "gpt-35-turbo-instruct", azure("azure"), true),
        Ep("azure-embeddings", e, "openai", "text-embedding-ada-002", azure("azuread"), false),
        Ep("groq-chat", c, "groq", "llama-3.1-8b-instant", key("api_key"), true),
        Ep("groq-embeddings", e, "groq", "e5", key("api_key"), false),
        Ep("deepseek-chat", c, "deepseek", "deepseek-chat", key("api_key"), true),
        Ep("xai-chat", c, "xai", "grok-2", key("api_key"), true),
        Ep("openrouter-chat", c, "openrouter", "openai/gpt-4o", key("api_key"), true),
        Ep("ollama-chat", c, "ollama", "llama3.2", json!({}), true),
        Ep("ollama-embeddings", e, "ollama", "nomic-embed-text", json!({}), false),
        Ep("portkey-chat", c, "portkey", "gpt-4o", json!({"api_key": "key", "provider": "openai"}), true),
        Ep("anthropic-chat", c, "anthropic", "claude-3-5-sonnet-latest", key("anthropic_api_key"), true),
        Ep("anthropic-completions", p, "anthropic", "claude-instant-1", key("anthropic_api_key"), true),
        Ep("gemini-chat", c, "gemini", "gemini-2.0-flash", key("gemini_api_key"), true),
        Ep("gemini-completions", p, "gemini", "gemini-2.0-flash", key("gemini_api_key"), true),
        Ep("gemini-embeddings", e, "gemini", "text-embedding-004", key("gemini_api_key"), false),
        Ep("palm-chat", c, "palm", "chat-bison", key("palm_api_key"), false),
        Ep("palm-completions", p, "palm", "text-bison", key("palm_api_key"), false),
        Ep("palm-embeddings", e, "palm", "embedding-gecko-001", key("palm_api_key"), false),
        Ep("bedrock-chat", c, "bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", aws_keys.clone(), true),
        Ep("amazon-bedrock-chat", c, "amazon-bedrock", "meta.llama3-8b-instruct-v1:0", aws_bearer, true),
        Ep("bedrock-titan", p, "bedrock", "amazon.titan-text-express-v1", aws_keys.clone(), false),
        Ep("bedrock-claude", p, "bedrock", "anthropic.claude-v2", aws_keys.clone(), false),
        Ep("bedrock-ai21", p, "bedrock", "ai21.j2-ultra", aws_keys.clone(), false),
        Ep("bedrock-cohere", p, "bedrock", "cohere.command-text-v14", aws_keys.clone(), false),
        Ep("bedrock-embeddings", e, "bedrock", "amazon.titan-embed-text-v1", aws_keys, false),
        Ep("mistral-chat", c, "mistral", "mistral-large-latest", key("mistral_api_key"), true),
        Ep("mistral-completions", p, "mistral", "mistral-tiny", key("mistral_api_key"), false),
        Ep("mistral-embeddings", e, "mistral", "mistral-embed", key("mistral_api_key"), false),
        Ep("togetherai-chat", c, "togetherai", "mistralai/Mixtral-8x7B-Instruct-v0.1", key("togetherai_api_key"), true),
        Ep("togetherai-completions", p, "togetherai", "mistralai/Mixtral-8x7B-v0.1", key("togetherai_api_key"), true),
        Ep(
            "togetherai-embeddings",
            e,
            "togetherai",
            "togethercomputer/m2-bert-80M-8k-retrieval",
            key("togetherai_api_key"),
            false,
        ),
        Ep("cohere-chat", c, "cohere", "command", key("cohere_api_key"), true),
        Ep("cohere-completions", p, "cohere", "command", key("cohere_api_key"), true),
        Ep("cohere-embeddings", e, "cohere", "embed-english-light-v2.0", key("cohere_api_key"), false),
        Ep("mosaicml-chat", c, "mosaicml", "llama2-70b-chat", key("mosaicml_api_key"), false),
        Ep("mosaicml-completions", p, "mosaicml", "mpt-7b-instruct", key("mosaicml_api_key"), false),
        Ep("mosaicml-embeddings", e, "mosaicml", "instructor-large", key("mosaicml_api_key"), false),
        Ep(
            "tgi-completions",
            p,
            "huggingface-text-generation-inference",
            "falcon-7b",
            json!({"hf_server_url": "http://127.0.0.1:9"}),
            false,
        ),
        Ep("ai21labs-completions", p, "ai21labs", "j2-ultra", key("ai21labs_api_key"), false),
        Ep(
            "mlflow-chat",
            c,
            "mlflow-model-serving",
            "chat-bot",
            json!({"model_server_url": "http://127.0.0.1:9"}),
            false,
        ),
        Ep(
            "mlflow-completions",
            p,
            "mlflow-model-serving",
            "text2text",
            json!({"model_server_url": "http://127.0.0.1:9"}),
            false,
        ),
        Ep(
            "mlflow-embeddings",
            e,
            "mlflow-model-serving",
            "st",
            json!({"model_server_url": "http://127.0.0.1:9"}),
            false,
        ),
        Ep(
            "databricks-chat",
            c,
            "databricks",
            "databricks-meta-llama-3-3-70b-instruct",
            json!({"host": "https://x.cloud.databricks.com", "token": "key"}),
            true,
        ),
        Ep(
            "databricks-embeddings",
            e,
            "databricks",
            "databricks-gte-large-en",
            json!({"host": "https://x.cloud.databricks.com", "token": "key"}),
            false,
        ),
        Ep(
            "databricks-uc-chat",
            c,
            "databricks-model-serving",
            "main.default.agent",
            json!({"host": "https://x.cloud.databricks.com", "client_id": "id", "client_secret": "secret"}),
            true,
        ),
        Ep("vertex-gemini-chat", c, "vertex_ai", "gemini-2.5-flash", vertex.clone(), true),
        Ep("vertex-gemini-completions", p, "vertex_ai", "gemini-2.5-flash", vertex.clone(), true),
        Ep("vertex-gemini-embeddings", e, "vertex_ai", "gemini-embedding-001", vertex.clone(), false),
        Ep("vertex-claude-chat", c, "vertex_ai", "claude-sonnet-4-5@20250929", vertex.clone(), true),
        Ep("vertex-maas-chat", c, "vertex_ai", "meta/llama-3.1-405b-instruct-maas", vertex, true),
    ]
}

/// Providers aigw serves that have no case, and why. Every other one must have an endpoint in
/// [`endpoints`] ([`build`] checks this against the registry, `ProviderName::ALL`).
pub const NO_CASES: &[(&str, &str)] =
    &[("mock", "its answers are made by aigw itself and read by the OpenAI decoders the openai cases fuzz")];

/// Whether aigw serves provider `p`: the registry's names minus those the configuration loader
/// refuses with `providers::unsupported::rejection` (MLflow's names aigw does not serve).
pub fn served(p: ProviderName) -> bool {
    let text = format!(
        "endpoints: [{{name: e, endpoint_type: llm/v1/chat, model: {{provider: {p}, name: m, config: {{}}}}}}]"
    );
    match Snapshot::parse(&text, Path::new("providers.yaml")) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains(&providers::unsupported::rejection(p).message),
    }
}

/// The served providers that must have cases: the registry minus the refused names and [`NO_CASES`].
pub fn providers_with_cases() -> Vec<ProviderName> {
    ProviderName::ALL
        .iter()
        .copied()
        .filter(|&p| served(p) && !NO_CASES.iter().any(|(n, _)| *n == p.as_str()))
        .collect()
}

/// Request variants per endpoint type: (label, body, required). A variant that is not
/// required may be refused by a provider (e.g. tools); a required one must prepare.
fn requests(t: EndpointType, stream: bool) -> Vec<(&'static str, Value, bool)> {
    if stream && t == EndpointType::Embeddings {
        return Vec::new(); // embeddings never stream
    }
    let with_stream = |mut v: Value| {
        if stream {
            v["stream"] = json!(true);
        }
        v
    };
    let vs = match t {
        EndpointType::Chat => vec![
            ("basic", json!({"messages": [{"role": "user", "content": "hi"}]}), true),
            (
                "full",
                json!({"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                       "temperature": 0.5, "max_tokens": 16, "n": 1, "stop": ["x"]}),
                false,
            ),
            (
                "tools",
                json!({"messages": [{"role": "user", "content": "weather?"}],
                       "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}),
                false,
            ),
        ],
        EndpointType::Completions => vec![
            ("basic", json!({"prompt": "hi", "max_tokens": 16}), true),
            ("full", json!({"prompt": "hi", "max_tokens": 16, "temperature": 0.5, "stop": ["x"], "n": 1}), false),
        ],
        EndpointType::Embeddings => {
            vec![("one", json!({"input": "hi"}), true), ("many", json!({"input": ["hi", "there", "you"]}), false)]
        }
    };
    vs.into_iter().map(|(l, v, r)| (l, with_stream(v), r)).collect()
}

fn build() -> Cases {
    let eps = endpoints();
    for p in providers_with_cases() {
        assert!(
            eps.iter().any(|e| e.2 == p.as_str()),
            "provider {p} has no case: add an endpoint for it to `endpoints` in fuzz/src/cases.rs (or to NO_CASES, with the reason)"
        );
    }
    let list: Vec<Value> = eps
        .iter()
        .map(|Ep(name, ty, provider, model, config, _)| {
            json!({"name": name, "endpoint_type": ty, "model": {"provider": provider, "name": model, "config": config}})
        })
        .collect();
    let text = json!({ "endpoints": list }).to_string();
    let snapshot = match Snapshot::parse(&text, Path::new("fuzz-providers.yaml")) {
        Ok(c) => c,
        Err(e) => panic!("the provider configuration does not load: {e}"),
    };
    let (mut response, mut streamed) = (Vec::new(), Vec::new());
    for Ep(name, _, provider, _, _, streams) in &eps {
        let endpoint = snapshot.config.endpoint(name).unwrap_or_else(|| panic!("{name}: not configured")).clone();
        let built = match snapshot.provider(&endpoint) {
            Ok(p) => p,
            Err(e) => panic!("{name}: {}", e.message()),
        };
        for stream in [false, true] {
            for (variant, body, required) in requests(endpoint.endpoint_type, stream) {
                let required = required && (!stream || *streams);
                let label = format!("{name} {variant}{}", if stream { " stream" } else { "" });
                let request = match parse_request(endpoint.endpoint_type, body.to_string().as_bytes()) {
                    Ok(r) => r,
                    Err(e) => panic!("{label}: invalid request {:?}", e.0),
                };
                let call = Call { endpoint: &endpoint, created: CREATED };
                let exchange = match providers::prepare(built, request.clone(), &call) {
                    Ok(x) => x,
                    Err(e) if required => panic!("{label}: prepare failed: {}", e.message()),
                    Err(_) => continue,
                };
                let kind = match &exchange {
                    Exchange::Call { decoder: Decoder::Json(_), .. }
                    | Exchange::Local { decoder: Decoder::Json(_), .. } => Kind::Json,
                    Exchange::Call { decoder: Decoder::Stream(_), .. }
                    | Exchange::Local { decoder: Decoder::Stream(_), .. } => Kind::Stream,
                    Exchange::FanOut { requests, .. } => Kind::Many(requests.len()),
                };
                assert_eq!(kind == Kind::Stream, stream, "{label}: streamed iff the request asks for it");
                let case = Case { label, provider: provider.to_string(), endpoint: endpoint.clone(), request, kind };
                if stream { streamed.push(case) } else { response.push(case) }
            }
        }
    }
    Cases { snapshot, response, stream: streamed }
}

/// The decoder of a single call's (or the mock's) answer.
fn decoder_of(case: &Case) -> Decoder {
    match case.exchange() {
        Exchange::Call { decoder, .. } | Exchange::Local { decoder, .. } => decoder,
        Exchange::FanOut { .. } => panic!("{}: a fan-out has no single decoder", case.label),
    }
}

/// The cases (built on first use; panics if a provider aigw serves has no endpoint, cannot be
/// configured or refuses a required request, so coverage never silently shrinks).
pub fn cases() -> &'static Cases {
    static CASES: OnceLock<Cases> = OnceLock::new();
    CASES.get_or_init(build)
}

/// A fuzz input: cut points and a body.
pub struct Input<'a> {
    /// Offsets into `body`, sorted, each ≤ `body.len()`.
    pub cuts: Vec<usize>,
    /// The bytes to decode.
    pub body: &'a [u8],
}

impl<'a> Input<'a> {
    /// `[n] [n × u16 BE] [body]` (n taken modulo 16; a short input gives fewer cuts).
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let Some((&n, mut rest)) = data.split_first() else {
            return Input { cuts: Vec::new(), body: &[] };
        };
        let mut raw = Vec::new();
        for _ in 0..(n % 16) {
            let Some((c, r)) = rest.split_first_chunk::<2>() else { break };
            raw.push(u16::from_be_bytes(*c) as usize);
            rest = r;
        }
        let mut cuts: Vec<usize> = raw.into_iter().map(|c| c % (rest.len() + 1)).collect();
        cuts.sort_unstable();
        Input { cuts, body: rest }
    }

    /// The body split at the cut points (empty pieces included: decoders get them too).
    pub fn pieces(&self) -> Vec<&'a [u8]> {
        split_at(self.body, &self.cuts)
    }

    /// The body split into exactly `n` bodies (the first `n - 1` cut points, the rest at the end).
    pub fn bodies(&self, n: usize) -> Vec<Bytes> {
        let mut cuts: Vec<usize> = self.cuts.iter().copied().take(n.saturating_sub(1)).collect();
        cuts.resize(n.saturating_sub(1), self.body.len());
        split_at(self.body, &cuts).into_iter().map(Bytes::copy_from_slice).collect()
    }
}

/// The events (type, data) an `SseParser` reads from `pieces` fed one after another.
pub fn sse_events(pieces: &[&[u8]]) -> Vec<(String, String)> {
    let mut parser = aigw::framing::sse::SseParser::new();
    let mut out = Vec::new();
    for p in pieces {
        parser.feed(p, |e| out.push((e.event.to_owned(), e.data.to_owned()))).expect("no event limit is set");
    }
    parser.finish(|e| out.push((e.event.to_owned(), e.data.to_owned()))).expect("no event limit is set");
    out
}

/// Split `body` at sorted offsets.
pub fn split_at<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut last = 0;
    for &c in cuts {
        out.push(&body[last..c]);
        last = c;
    }
    out.push(&body[last..]);
    out
}

/// What decoding a stream gave: the events written, and the status of the error that ended it.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    /// Every byte the decoder appended to its output.
    pub out: Vec<u8>,
    /// `Some(status)` if `feed` or `finish` failed (decoding stops there, as in the server).
    pub error: Option<u16>,
}

/// Feed `pieces` to a fresh stream decoder of `case`, then `finish`, the way the server does:
/// stop at the first error. Checks what the decoder wrote is whole `data: <json>\n\n` events.
pub fn run_stream(case: &Case, pieces: &[&[u8]]) -> StreamOutcome {
    let Decoder::Stream(mut decoder) = decoder_of(case) else { panic!("{}: not a stream decoder", case.label) };
    let mut chunks = Vec::new();
    let mut out = BytesMut::new();
    let mut encoder = StreamEncoder::new(Family::OpenAi, AnswerMeta::default());
    let mut error = None;
    for piece in pieces {
        let fed = decoder.feed(piece, &mut chunks);
        for c in chunks.drain(..) {
            encoder.chunk(&c, &mut out);
        }
        if let Err(e) = fed {
            error = Some(e);
            break;
        }
        let _ = decoder.usage();
    }
    if error.is_none() {
        let end = decoder.finish(&mut chunks);
        for c in chunks.drain(..) {
            encoder.chunk(&c, &mut out);
        }
        if let Err(e) = end {
            error = Some(e);
        }
    }
    let _ = decoder.usage();
    if let Some(e) = &error {
        check_error(case, e);
    }
    check_events(case, &out);
    StreamOutcome { out: out.to_vec(), error: error.map(|e| e.status) }
}

/// Decode `input` as the JSON answer (or fan-out answers) of `case`; checks an `Ok` answer is
/// JSON and an error is well formed. Returns the answer or the error status.
pub fn run_response(case: &Case, input: &Input<'_>) -> Result<Vec<u8>, u16> {
    let result = match case.exchange() {
        Exchange::Call { decoder: Decoder::Json(decode), .. }
        | Exchange::Local { decoder: Decoder::Json(decode), .. } => decode(input.body),
        Exchange::FanOut { decode, .. } => {
            let Kind::Many(n) = case.kind else { panic!("{}: fan-out kind", case.label) };
            decode(input.bodies(n))
        }
        _ => panic!("{}: a stream decoder for a non-stream request", case.label),
    };
    let result = result.and_then(|a| encode::answer(Family::OpenAi, &a, &AnswerMeta::default()).map(|b| b.to_vec()));
    match result {
        Ok(answer) => {
            if let Err(e) = serde_json::from_slice::<Value>(&answer) {
                panic!("{}: the answer is not JSON ({e}): {}", case.label, String::from_utf8_lossy(&answer));
            }
            Ok(answer)
        }
        Err(e) => {
            check_error(case, &e);
            Err(e.status)
        }
    }
}

fn check_error(case: &Case, e: &aigw::error::GatewayError) {
    assert!((400..=599).contains(&e.status), "{}: error status {}", case.label, e.status);
    let _ = e.message();
}

/// Everything a stream decoder writes must be complete `data: <json>\n\n` events.
pub fn check_events(case: &Case, out: &[u8]) {
    let text = match std::str::from_utf8(out) {
        Ok(t) => t,
        Err(e) => panic!("{}: stream output is not UTF-8: {e}", case.label),
    };
    if text.is_empty() {
        return;
    }
    let Some(body) = text.strip_suffix("\n\n") else {
        panic!("{}: stream output does not end with a complete event: {text:?}", case.label)
    };
    for event in body.split("\n\n") {
        let Some(data) = event.strip_prefix("data: ") else { panic!("{}: not a data event: {event:?}", case.label) };
        if let Err(e) = serde_json::from_str::<Value>(data) {
            panic!("{}: event data is not JSON ({e}): {data:?}", case.label);
        }
    }
}
