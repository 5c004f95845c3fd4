//! Every provider × endpoint type × stream × client API, through one real gateway.
//!
//! One gateway process serves an endpoint for every (provider, endpoint type) pair, each pointed
//! at its own mock upstream (so what each endpoint sent is counted apart). Every endpoint is
//! called four times: `stream` false and true, on `/endpoints/{name}/invocations` and on
//! `/v1/...`. The truth table below is aigw's (src/providers/<name>.rs and README's provider
//! table), not MLflow's: Anthropic serves completions (streamed too) through the Messages API,
//! and a Bedrock API key (bearer token) serves ConverseStream and embeddings.
//!
//! * a combination the provider cannot serve: 501 JSON before any upstream call (the mock
//!   recorded nothing), `{"detail": …}` on the native route, OpenAI's `{"error": {…}}` on `/v1`,
//!   with MLflow's message (`The chat route is not implemented for Cohere models.`, or
//!   `… chat streaming route …` for a type served but not streamed);
//! * a combination it serves: exactly one upstream call, on the provider's path, with its
//!   credentials, answered from the MLflow fixture of that provider's wire format; the client
//!   gets a 200 unified answer (an SSE stream for chat and completions with `stream: true`,
//!   ending in `[DONE]` on every route; embeddings ignore `stream`).
//!
//! Every cell is checked and all failures are reported together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::replay::default_reply;
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, bedrock, fixture, served_providers, sse_data, yaml};
use aigw::config::ProviderName;
use futures_util::future::join_all;
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ty {
    Chat,
    Completions,
    Embeddings,
}

impl Ty {
    const ALL: [Ty; 3] = [Ty::Chat, Ty::Completions, Ty::Embeddings];

    fn endpoint_type(self) -> &'static str {
        match self {
            Ty::Chat => "llm/v1/chat",
            Ty::Completions => "llm/v1/completions",
            Ty::Embeddings => "llm/v1/embeddings",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Ty::Chat => "chat",
            Ty::Completions => "completions",
            Ty::Embeddings => "embeddings",
        }
    }

    fn v1_path(self) -> &'static str {
        match self {
            Ty::Chat => "/v1/chat/completions",
            Ty::Completions => "/v1/completions",
            Ty::Embeddings => "/v1/embeddings",
        }
    }

    fn request(self, stream: bool) -> Value {
        let mut r = match self {
            Ty::Chat => json!({"messages": [{"role": "user", "content": "hi"}]}),
            Ty::Completions => json!({"prompt": "hi", "max_tokens": 10}),
            Ty::Embeddings => json!({"input": "hi"}),
        };
        if stream {
            r["stream"] = json!(true);
        }
        r
    }
}

/// The wire format an upstream speaks: which MLflow fixtures its mock answers from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Mistral,
    Together,
    Cohere,
    Mosaic,
    Palm,
    Tgi,
    Ai21,
    MlflowServing,
    /// The built-in mock provider: no upstream at all.
    Builtin,
}

/// An expected upstream header.
#[derive(Clone, Copy, Debug)]
enum Hdr {
    Is(&'static str, &'static str),
    Starts(&'static str, &'static str),
    Present(&'static str),
    Absent(&'static str),
}

/// One provider configuration under test.
struct Row {
    /// Unique label, the prefix of its endpoints' names.
    label: &'static str,
    /// `model.provider`.
    provider: &'static str,
    /// The name aigw's 501 messages use for it.
    display: &'static str,
    wire: Wire,
    /// What it serves, one character per column: chat, chat stream, completions, completions
    /// stream, embeddings (a letter = served, `-` = 501).
    serves: &'static str,
    /// `model.name` per endpoint type.
    models: [&'static str; 3],
    /// `model.config`, given the mock upstream's URL and the OAuth token endpoint's URL.
    config: fn(&str, &str) -> Value,
    /// The upstream path and query per served column (same order as `serves`).
    paths: [&'static str; 5],
    /// Headers every upstream call must (not) carry.
    headers: &'static [Hdr],
}

impl Row {
    fn column(ty: Ty, stream: bool) -> usize {
        match (ty, stream) {
            (Ty::Chat, false) => 0,
            (Ty::Chat, true) => 1,
            (Ty::Completions, false) => 2,
            (Ty::Completions, true) => 3,
            // Embeddings ignore `stream`.
            (Ty::Embeddings, _) => 4,
        }
    }

    fn serves(&self, ty: Ty, stream: bool) -> bool {
        self.serves.as_bytes()[Self::column(ty, stream)] != b'-'
    }

    fn model(&self, ty: Ty) -> &'static str {
        self.models[ty as usize]
    }
}

const OPENAI_COMPAT_PATHS: [&str; 5] = ["/v1/chat/completions", "/v1/chat/completions", "", "", "/v1/embeddings"];
const AZURE_PATHS: [&str; 5] = [
    "/openai/deployments/dep/chat/completions?api-version=2024-06-01",
    "/openai/deployments/dep/chat/completions?api-version=2024-06-01",
    "/openai/deployments/dep/completions?api-version=2024-06-01",
    "/openai/deployments/dep/completions?api-version=2024-06-01",
    "/openai/deployments/dep/embeddings?api-version=2024-06-01",
];
const BEDROCK_MODELS: [&str; 3] =
    ["anthropic.claude-3-5-sonnet-20240620-v1:0", "amazon.titan-tg1-large", "amazon.titan-embed-text-v1"];
const BEDROCK_PATHS: [&str; 5] = [
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream",
    "/model/amazon.titan-tg1-large/invoke",
    "",
    "/model/amazon.titan-embed-text-v1/invoke",
];

fn vertex_config(mock: &str, tokens: &str, location: Option<&str>) -> Value {
    let credentials = json!({"type": "authorized_user", "client_id": "cid", "client_secret": "csecret",
                             "refresh_token": "rtoken", "token_uri": tokens})
    .to_string();
    let mut c = json!({"vertex_project": "proj", "vertex_api_base": mock, "vertex_credentials": credentials});
    if let Some(l) = location {
        c["vertex_location"] = json!(l);
    }
    c
}

fn compat(
    label: &'static str,
    provider: &'static str,
    display: &'static str,
    config: fn(&str, &str) -> Value,
    headers: &'static [Hdr],
) -> Row {
    Row {
        label,
        provider,
        display,
        wire: Wire::OpenAi,
        serves: "cc--e",
        models: ["chat-model", "completions-model", "embeddings-model"],
        config,
        paths: OPENAI_COMPAT_PATHS,
        headers,
    }
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            label: "openai",
            display: "OpenAI",
            provider: "openai",
            wire: Wire::OpenAi,
            serves: "ccppe",
            models: ["gpt-4o-mini", "gpt-3.5-turbo-instruct", "text-embedding-3-small"],
            config: |m, _| json!({"openai_api_key": "sk-openai", "openai_api_base": format!("{m}/v1")}),
            paths: [
                "/v1/chat/completions",
                "/v1/chat/completions",
                "/v1/completions",
                "/v1/completions",
                "/v1/embeddings",
            ],
            headers: &[Hdr::Is("authorization", "Bearer sk-openai"), Hdr::Absent("api-key")],
        },
        Row {
            label: "openai-azure",
            display: "OpenAI",
            provider: "openai",
            wire: Wire::OpenAi,
            serves: "ccppe",
            models: ["gpt-4o-mini", "gpt-35-turbo-instruct", "text-embedding-3-small"],
            config: |m, _| {
                json!({"openai_api_key": "azure-key", "openai_api_type": "azure", "openai_api_base": m,
                       "openai_deployment_name": "dep", "openai_api_version": "2024-06-01"})
            },
            paths: AZURE_PATHS,
            headers: &[Hdr::Is("api-key", "azure-key"), Hdr::Absent("authorization")],
        },
        Row {
            label: "openai-azuread",
            display: "OpenAI",
            provider: "openai",
            wire: Wire::OpenAi,
            serves: "ccppe",
            models: ["gpt-4o-mini", "gpt-35-turbo-instruct", "text-embedding-3-small"],
            config: |m, _| {
                json!({"openai_api_key": "aad-token", "openai_api_type": "azuread", "openai_api_base": m,
                       "openai_deployment_name": "dep", "openai_api_version": "2024-06-01"})
            },
            paths: AZURE_PATHS,
            headers: &[Hdr::Is("authorization", "Bearer aad-token"), Hdr::Absent("api-key")],
        },
        Row {
            label: "azure-alias",
            display: "OpenAI",
            provider: "azure",
            wire: Wire::OpenAi,
            serves: "ccppe",
            models: ["gpt-4o-mini", "gpt-35-turbo-instruct", "text-embedding-3-small"],
            config: |m, _| {
                json!({"openai_api_key": "azure-key", "openai_api_type": "azure", "openai_api_base": m,
                       "openai_deployment_name": "dep", "openai_api_version": "2024-06-01"})
            },
            paths: AZURE_PATHS,
            headers: &[Hdr::Is("api-key", "azure-key"), Hdr::Absent("authorization")],
        },
        compat(
            "groq",
            "groq",
            "Groq",
            |m, _| json!({"api_key": "gsk", "api_base": format!("{m}/v1")}),
            &[Hdr::Is("authorization", "Bearer gsk")],
        ),
        compat(
            "deepseek",
            "deepseek",
            "DeepSeek",
            |m, _| json!({"api_key": "dsk", "api_base": format!("{m}/v1")}),
            &[Hdr::Is("authorization", "Bearer dsk")],
        ),
        compat(
            "xai",
            "xai",
            "xAI",
            |m, _| json!({"api_key": "xsk", "api_base": format!("{m}/v1")}),
            &[Hdr::Is("authorization", "Bearer xsk")],
        ),
        compat(
            "openrouter",
            "openrouter",
            "OpenRouter",
            |m, _| json!({"api_key": "osk", "api_base": format!("{m}/v1")}),
            &[Hdr::Is("authorization", "Bearer osk")],
        ),
        compat(
            "ollama",
            "ollama",
            "Ollama",
            |m, _| json!({"api_base": format!("{m}/v1")}),
            &[Hdr::Absent("authorization")],
        ),
        compat(
            "portkey",
            "portkey",
            "Portkey",
            |m, _| {
                json!({"api_key": "pk-key", "provider": "openai", "provider_api_key": "sk-behind-portkey",
                       "api_base": format!("{m}/v1")})
            },
            &[
                Hdr::Is("x-portkey-api-key", "pk-key"),
                Hdr::Is("x-portkey-provider", "openai"),
                Hdr::Is("authorization", "Bearer sk-behind-portkey"),
            ],
        ),
        Row {
            label: "anthropic",
            display: "Anthropic",
            provider: "anthropic",
            wire: Wire::Anthropic,
            serves: "ccpp-",
            models: ["claude-3-5-sonnet-latest", "claude-3-5-sonnet-latest", "claude-3-5-sonnet-latest"],
            config: |m, _| json!({"anthropic_api_key": "sk-ant", "anthropic_api_base": format!("{m}/v1")}),
            paths: ["/v1/messages", "/v1/messages", "/v1/messages", "/v1/messages", ""],
            headers: &[
                Hdr::Is("x-api-key", "sk-ant"),
                Hdr::Is("anthropic-version", "2023-06-01"),
                Hdr::Absent("authorization"),
            ],
        },
        Row {
            label: "gemini",
            display: "Gemini",
            provider: "gemini",
            wire: Wire::Gemini,
            serves: "ccppe",
            models: ["gemini-2.0-flash", "gemini-2.0-flash", "text-embedding-004"],
            config: |m, _| json!({"gemini_api_key": "g-key", "gemini_api_base": format!("{m}/v1beta/models")}),
            paths: [
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                "/v1beta/models/gemini-2.0-flash:generateContent",
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                "/v1beta/models/text-embedding-004:embedContent",
            ],
            headers: &[Hdr::Is("x-goog-api-key", "g-key"), Hdr::Absent("authorization")],
        },
        Row {
            label: "bedrock-sigv4",
            display: "Amazon Bedrock",
            provider: "bedrock",
            wire: Wire::Bedrock,
            serves: "ccp-e",
            models: BEDROCK_MODELS,
            config: |m, _| {
                json!({"aws_config": {"aws_access_key_id": bedrock::AKID, "aws_secret_access_key": bedrock::SECRET,
                                      "aws_region": "us-east-1"},
                       "bedrock_api_base": m})
            },
            paths: BEDROCK_PATHS,
            headers: &[
                Hdr::Starts("authorization", "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/"),
                Hdr::Present("x-amz-date"),
            ],
        },
        Row {
            // README: a Bedrock API key serves streams and embeddings too (MLflow: 501).
            label: "bedrock-bearer",
            display: "Amazon Bedrock",
            provider: "bedrock",
            wire: Wire::Bedrock,
            serves: "ccp-e",
            models: BEDROCK_MODELS,
            config: |m, _| {
                json!({"aws_config": {"aws_bearer_token": "bedrock-api-key", "aws_region": "us-east-1"},
                       "bedrock_api_base": m})
            },
            paths: BEDROCK_PATHS,
            headers: &[Hdr::Is("authorization", "Bearer bedrock-api-key"), Hdr::Absent("x-amz-date")],
        },
        Row {
            // MLflow's alias of `bedrock`; answers name the provider as configured.
            label: "amazon-bedrock",
            display: "Amazon Bedrock",
            provider: "amazon-bedrock",
            wire: Wire::Bedrock,
            serves: "ccp-e",
            models: BEDROCK_MODELS,
            config: |m, _| {
                json!({"aws_config": {"aws_access_key_id": bedrock::AKID, "aws_secret_access_key": bedrock::SECRET,
                                      "aws_region": "us-east-1"},
                       "bedrock_api_base": m})
            },
            paths: BEDROCK_PATHS,
            headers: &[
                Hdr::Starts("authorization", "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/"),
                Hdr::Present("x-amz-date"),
            ],
        },
        Row {
            label: "mistral",
            display: "Mistral",
            provider: "mistral",
            wire: Wire::Mistral,
            serves: "ccp-e",
            models: ["mistral-large-latest", "mistral-tiny", "mistral-embed"],
            config: |m, _| json!({"mistral_api_key": "mk", "mistral_api_base": format!("{m}/v1")}),
            paths: ["/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", "", "/v1/embeddings"],
            headers: &[Hdr::Is("authorization", "Bearer mk")],
        },
        Row {
            label: "togetherai",
            display: "TogetherAI",
            provider: "togetherai",
            wire: Wire::Together,
            serves: "ccppe",
            models: ["mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai/Mixtral-8x7B-Instruct-v0.1", "m2-bert"],
            config: |m, _| json!({"togetherai_api_key": "tk", "togetherai_api_base": format!("{m}/v1")}),
            paths: [
                "/v1/chat/completions",
                "/v1/chat/completions",
                "/v1/completions",
                "/v1/completions",
                "/v1/embeddings",
            ],
            headers: &[Hdr::Is("authorization", "Bearer tk")],
        },
        Row {
            label: "cohere",
            display: "Cohere",
            provider: "cohere",
            wire: Wire::Cohere,
            serves: "ccppe",
            models: ["command", "command", "embed-english-light-v2.0"],
            config: |m, _| json!({"cohere_api_key": "ck", "cohere_api_base": format!("{m}/v1")}),
            paths: ["/v1/chat", "/v1/chat", "/v1/generate", "/v1/generate", "/v1/embed"],
            headers: &[Hdr::Is("authorization", "Bearer ck")],
        },
        Row {
            label: "mosaicml",
            display: "MosaicML",
            provider: "mosaicml",
            wire: Wire::Mosaic,
            serves: "c-p-e",
            models: ["llama2-70b-chat", "mpt-7b-instruct", "instructor-large"],
            config: |m, _| json!({"mosaicml_api_key": "mosaic-key", "mosaicml_api_base": m}),
            paths: [
                "/llama2-70b-chat/v1/predict",
                "",
                "/mpt-7b-instruct/v1/predict",
                "",
                "/instructor-large/v1/predict",
            ],
            headers: &[Hdr::Is("authorization", "mosaic-key")],
        },
        Row {
            label: "palm",
            display: "PaLM",
            provider: "palm",
            wire: Wire::Palm,
            serves: "c-p-e",
            models: ["chat-bison", "text-bison", "embedding-gecko-001"],
            config: |m, _| json!({"palm_api_key": "palm-key", "palm_api_base": format!("{m}/v1beta3/models")}),
            paths: [
                "/v1beta3/models/chat-bison:generateMessage",
                "",
                "/v1beta3/models/text-bison:generateText",
                "",
                "/v1beta3/models/embedding-gecko-001:batchEmbedText",
            ],
            headers: &[Hdr::Is("x-goog-api-key", "palm-key")],
        },
        Row {
            label: "tgi",
            display: "Hugging Face Text Generation Inference",
            provider: "huggingface-text-generation-inference",
            wire: Wire::Tgi,
            serves: "--p--",
            models: ["falcon-7b-instruct", "falcon-7b-instruct", "falcon-7b-instruct"],
            config: |m, _| json!({"hf_server_url": m}),
            paths: ["", "", "/generate", "", ""],
            headers: &[Hdr::Absent("authorization")],
        },
        Row {
            label: "ai21labs",
            display: "AI21Labs",
            provider: "ai21labs",
            wire: Wire::Ai21,
            serves: "--p--",
            models: ["j2-ultra", "j2-ultra", "j2-ultra"],
            config: |m, _| json!({"ai21labs_api_key": "a21", "ai21labs_api_base": format!("{m}/studio/v1")}),
            paths: ["", "", "/studio/v1/j2-ultra/complete", "", ""],
            headers: &[Hdr::Is("authorization", "Bearer a21")],
        },
        Row {
            label: "mlflow-serving",
            display: "MLflow Model Serving",
            provider: "mlflow-model-serving",
            wire: Wire::MlflowServing,
            serves: "c-p-e",
            models: ["chat-bot", "text2text", "st"],
            config: |m, _| json!({"model_server_url": m}),
            paths: ["/invocations", "", "/invocations", "", "/invocations"],
            headers: &[Hdr::Absent("authorization")],
        },
        Row {
            label: "databricks",
            display: "Databricks",
            provider: "databricks",
            wire: Wire::OpenAi,
            serves: "cc--e",
            models: ["databricks-meta-llama", "databricks-meta-llama", "databricks-gte-large-en"],
            config: |m, _| json!({"host": m, "token": "dapi-123"}),
            paths: [
                "/serving-endpoints/chat/completions",
                "/serving-endpoints/chat/completions",
                "",
                "",
                "/serving-endpoints/embeddings",
            ],
            headers: &[Hdr::Is("authorization", "Bearer dapi-123")],
        },
        Row {
            // MLflow's alias of `databricks`.
            label: "databricks-serving",
            display: "Databricks",
            provider: "databricks-model-serving",
            wire: Wire::OpenAi,
            serves: "cc--e",
            models: ["databricks-meta-llama", "databricks-meta-llama", "databricks-gte-large-en"],
            config: |m, _| json!({"host": m, "token": "dapi-456"}),
            paths: [
                "/serving-endpoints/chat/completions",
                "/serving-endpoints/chat/completions",
                "",
                "",
                "/serving-endpoints/embeddings",
            ],
            headers: &[Hdr::Is("authorization", "Bearer dapi-456")],
        },
        Row {
            label: "vertex-gemini",
            display: "Vertex AI",
            provider: "vertex_ai",
            wire: Wire::Gemini,
            serves: "ccppe",
            models: ["gemini-2.0-flash", "gemini-2.0-flash", "text-embedding-004"],
            config: |m, t| vertex_config(m, t, Some("us-east5")),
            paths: [
                "/v1/projects/proj/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent",
                "/v1/projects/proj/locations/us-east5/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                "/v1/projects/proj/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent",
                "/v1/projects/proj/locations/us-east5/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                "/v1/projects/proj/locations/us-east5/publishers/google/models/text-embedding-004:embedContent",
            ],
            headers: &[Hdr::Is("authorization", "Bearer ya29.matrix"), Hdr::Absent("x-goog-api-key")],
        },
        Row {
            label: "vertex-claude",
            display: "Vertex AI Claude",
            provider: "vertex_ai",
            wire: Wire::Anthropic,
            serves: "cc---",
            models: ["claude-3-5-sonnet-v2@20241022"; 3],
            config: |m, t| vertex_config(m, t, Some("us-east5")),
            paths: [
                "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict",
                "/v1/projects/proj/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:streamRawPredict",
                "",
                "",
                "",
            ],
            headers: &[Hdr::Is("authorization", "Bearer ya29.matrix"), Hdr::Absent("x-api-key")],
        },
        Row {
            // Model-as-a-Service: default location us-central1.
            label: "vertex-openai",
            display: "Vertex AI partner (OpenAI-compatible)",
            provider: "vertex_ai",
            wire: Wire::OpenAi,
            serves: "cc---",
            models: ["meta/llama-3.3-70b-instruct-maas"; 3],
            config: |m, t| vertex_config(m, t, None),
            paths: [
                "/v1/projects/proj/locations/us-central1/endpoints/openapi/chat/completions",
                "/v1/projects/proj/locations/us-central1/endpoints/openapi/chat/completions",
                "",
                "",
                "",
            ],
            headers: &[Hdr::Is("authorization", "Bearer ya29.matrix")],
        },
        Row {
            label: "mock",
            display: "Mock",
            provider: "mock",
            wire: Wire::Builtin,
            serves: "ccppe",
            models: ["mock-model"; 3],
            config: |_, _| json!({}),
            paths: [""; 5],
            headers: &[],
        },
    ]
}

/// An upstream answer in `wire`'s format, taken from the MLflow fixtures.
fn answer(wire: Wire, ty: Ty, stream: bool) -> Reply {
    let fx = |name: &str| default_reply(&fixture(&format!("{name}.json")), None);
    let json = |v: Value| Reply::Json(200, v);
    match (wire, ty, stream) {
        (Wire::OpenAi, Ty::Chat, false) => fx("openai-chat"),
        (Wire::OpenAi, Ty::Chat, true) => fx("openai-chat-stream"),
        (Wire::OpenAi, Ty::Completions, false) => fx("openai-completions"),
        (Wire::OpenAi, Ty::Completions, true) => fx("openai-completions-stream"),
        (Wire::OpenAi, Ty::Embeddings, _) => fx("openai-embeddings"),
        // aigw serves Anthropic completions through the Messages API.
        (Wire::Anthropic, _, false) => fx("anthropic-chat"),
        (Wire::Anthropic, _, true) => fx("anthropic-chat-stream"),
        (Wire::Gemini, Ty::Chat, false) => fx("gemini-chat"),
        (Wire::Gemini, Ty::Chat, true) => fx("gemini-chat-stream"),
        (Wire::Gemini, Ty::Completions, false) => fx("gemini-completions"),
        (Wire::Gemini, Ty::Completions, true) => fx("gemini-completions-stream"),
        (Wire::Gemini, Ty::Embeddings, _) => fx("gemini-embeddings-single"),
        (Wire::Bedrock, Ty::Chat, false) => fx("bedrock-chat"),
        (Wire::Bedrock, Ty::Chat, true) => bedrock::stream_fixture_reply(&fixture("bedrock-chat-stream.json"), None),
        (Wire::Bedrock, Ty::Completions, _) => fx("bedrock-completions-titan"),
        (Wire::Bedrock, Ty::Embeddings, _) => json(fixture("bedrock-embeddings.json")["upstream_response"][0].clone()),
        (Wire::Mistral, Ty::Chat, false) => fx("mistral-chat"),
        (Wire::Mistral, Ty::Chat, true) => fx("mistral-chat-stream"),
        (Wire::Mistral, Ty::Completions, _) => fx("mistral-completions"),
        (Wire::Mistral, Ty::Embeddings, _) => fx("mistral-embeddings"),
        (Wire::Together, Ty::Chat, false) => fx("togetherai-chat"),
        (Wire::Together, Ty::Chat, true) => fx("togetherai-chat-stream"),
        (Wire::Together, Ty::Completions, false) => fx("togetherai-completions"),
        (Wire::Together, Ty::Completions, true) => fx("togetherai-completions-stream"),
        (Wire::Together, Ty::Embeddings, _) => fx("togetherai-embeddings"),
        (Wire::Cohere, Ty::Chat, false) => fx("cohere-chat"),
        (Wire::Cohere, Ty::Chat, true) => ndjson(&fixture("cohere-chat-stream.json")),
        (Wire::Cohere, Ty::Completions, false) => fx("cohere-completions"),
        (Wire::Cohere, Ty::Completions, true) => ndjson(&fixture("cohere-completions-stream.json")),
        (Wire::Cohere, Ty::Embeddings, _) => fx("cohere-embeddings"),
        (Wire::Mosaic, Ty::Chat, _) => fx("mosaicml-chat"),
        (Wire::Mosaic, Ty::Completions, _) => fx("mosaicml-completions"),
        (Wire::Mosaic, Ty::Embeddings, _) => json(json!({"outputs": [[0.1, 0.2, 0.3]]})),
        (Wire::Palm, Ty::Chat, _) => fx("palm-chat"),
        (Wire::Palm, Ty::Completions, _) => fx("palm-completions"),
        (Wire::Palm, Ty::Embeddings, _) => fx("palm-embeddings"),
        (Wire::Tgi, _, _) => fx("huggingface-completions"),
        (Wire::Ai21, _, _) => fx("ai21labs-completions"),
        (Wire::MlflowServing, Ty::Chat, _) => fx("mlflow-model-serving-chat"),
        (Wire::MlflowServing, Ty::Completions, _) => fx("mlflow-model-serving-completions"),
        (Wire::MlflowServing, Ty::Embeddings, _) => fx("mlflow-model-serving-embeddings"),
        (Wire::Builtin, _, _) => unreachable!("the mock provider has no upstream"),
    }
}

/// Cohere streams newline-delimited JSON.
fn ndjson(fx: &Value) -> Reply {
    let pieces = fx["upstream_response"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().as_bytes().to_vec());
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/stream+json".into())],
        pieces: pieces.map(|p| (p, Duration::from_millis(1))).collect(),
        chunked: true,
    }
}

/// One endpoint of the gateway: a row's provider serving one endpoint type.
struct Target<'a> {
    row: &'a Row,
    ty: Ty,
    name: String,
    upstream: Option<MockUpstream>,
    /// The answer for the next upstream request (500 when unset).
    next: Arc<Mutex<Option<Reply>>>,
}

/// The OAuth token endpoint the `vertex_ai` endpoints use.
async fn token_server() -> MockUpstream {
    let tokens = MockUpstream::start().await;
    tokens.always_json(200, json!({"access_token": "ya29.matrix", "expires_in": 3600, "token_type": "Bearer"}));
    tokens
}

/// Start one gateway with an endpoint per (row, endpoint type), each with its own mock upstream.
async fn matrix_gateway(rows: &[Row]) -> (Gateway, Vec<Target<'_>>, MockUpstream) {
    let tokens = token_server().await;
    let token_uri = format!("{}/token", tokens.url());
    let mut targets = Vec::new();
    let mut endpoints = Vec::new();
    for row in rows {
        for ty in Ty::ALL {
            let name = format!("{}-{}", row.label, ty.short());
            let upstream = if row.wire == Wire::Builtin { None } else { Some(MockUpstream::start().await) };
            let next: Arc<Mutex<Option<Reply>>> = Arc::new(Mutex::new(None));
            if let Some(u) = &upstream {
                let next = next.clone();
                u.handle(move |_| {
                    next.lock().unwrap().take().unwrap_or_else(|| {
                        Reply::Json(500, json!({"error": {"message": "matrix: no answer prepared for this call"}}))
                    })
                });
            }
            let base = upstream.as_ref().map(MockUpstream::url).unwrap_or_default();
            endpoints.push(json!({"name": name, "endpoint_type": ty.endpoint_type(),
                                  "model": {"provider": row.provider, "name": row.model(ty), "config": (row.config)(&base, &token_uri)}}));
            targets.push(Target { row, ty, name, upstream, next });
        }
    }
    let gw = Gateway::start(&yaml(&json!({ "endpoints": endpoints }))).await;
    (gw, targets, tokens)
}

fn check_headers(req: &Recorded, headers: &[Hdr]) -> Result<(), String> {
    for h in headers {
        let ok = match *h {
            Hdr::Is(name, want) => req.header(name) == Some(want),
            Hdr::Starts(name, prefix) => req.header(name).is_some_and(|v| v.starts_with(prefix)),
            Hdr::Present(name) => req.header(name).is_some(),
            Hdr::Absent(name) => req.header(name).is_none(),
        };
        if !ok {
            return Err(format!("upstream header {h:?} not as expected; headers sent: {:?}", req.headers));
        }
    }
    Ok(())
}

/// Check a 501 answer: native `{"detail": "..."}`, `/v1` OpenAI's error object.
fn check_not_implemented(v1: bool, expected: &str, content_type: &str, text: &str) -> Result<(), String> {
    if !content_type.starts_with("application/json") {
        return Err(format!("501 content type {content_type}"));
    }
    let body: Value = serde_json::from_str(text).map_err(|e| format!("501 body is not JSON ({e}): {text}"))?;
    let message = if v1 {
        let err = body["error"].as_object().ok_or_else(|| format!("no error object: {body}"))?;
        let mut keys: Vec<&str> = err.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if body.as_object().map(|o| o.len()) != Some(1) || keys != ["code", "message", "param", "type"] {
            return Err(format!("not OpenAI's error shape: {body}"));
        }
        if err["type"].as_str().is_none_or(str::is_empty) {
            return Err(format!("error.type: {body}"));
        }
        err["message"].as_str()
    } else {
        if body.as_object().map(|o| o.len()) != Some(1) {
            return Err(format!("not {{\"detail\": …}}: {body}"));
        }
        body["detail"].as_str()
    };
    let message = message.ok_or_else(|| format!("no message string: {body}"))?;
    if message != expected {
        return Err(format!("501 message {message:?}, expected {expected:?}"));
    }
    Ok(())
}

/// MLflow's 501 message: the type is not served at all, or served but not streamed.
fn not_implemented_message(row: &Row, ty: Ty, stream: bool) -> String {
    let what = if stream && row.serves(ty, false) { "streaming route" } else { "route" };
    format!("The {} {what} is not implemented for {} models.", ty.short(), row.display)
}

/// Check a 200 answer of a served combination.
fn check_served(t: &Target<'_>, stream: bool, content_type: &str, text: &str) -> Result<(), String> {
    let provider = t.row.provider;
    let streamed = stream && t.ty != Ty::Embeddings;
    if !streamed {
        if !content_type.starts_with("application/json") {
            return Err(format!("content type {content_type}: {text}"));
        }
        let body: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
        let ok = match t.ty {
            // (PaLM's role is its `author`, as MLflow answers.)
            Ty::Chat => body["choices"][0]["message"]["role"].is_string() && body["provider"] == provider,
            Ty::Completions => body["choices"][0]["text"].is_string(),
            Ty::Embeddings => {
                body["data"][0]["embedding"].as_array().is_some_and(|e| !e.is_empty()) && body["object"] == "list"
            }
        };
        return if ok { Ok(()) } else { Err(format!("not a unified {:?} answer: {body}", t.ty)) };
    }
    if !content_type.starts_with("text/event-stream") {
        return Err(format!("stream content type {content_type}: {text}"));
    }
    let mut events = sse_data(text);
    // Every route ends a stream with `[DONE]` (MLflow 3.18).
    if events.pop().as_deref() != Some("[DONE]") {
        return Err(format!("stream does not end with [DONE]: {text}"));
    }
    if events.is_empty() {
        return Err(format!("no events: {text}"));
    }
    for e in &events {
        let v: Value = serde_json::from_str(e).map_err(|err| format!("event is not JSON ({err}): {e:?} in {text}"))?;
        if v.get("error").is_some() || !v["choices"].is_array() {
            return Err(format!("not a unified chunk: {e}"));
        }
        if t.ty == Ty::Chat && v["provider"] != provider {
            return Err(format!("chat chunk without provider {provider:?}: {e}"));
        }
    }
    Ok(())
}

/// One cell: call `t` with `stream` on the native or `/v1` route and check the outcome.
async fn cell(gw: &Gateway, t: &Target<'_>, stream: bool, v1: bool) -> Result<(), String> {
    let served = t.row.serves(t.ty, stream);
    let before = t.upstream.as_ref().map_or(0, |u| u.requests().len());
    if served && t.upstream.is_some() {
        *t.next.lock().unwrap() = Some(answer(t.row.wire, t.ty, stream));
    }
    let mut body = t.ty.request(stream);
    let path = if v1 {
        body["model"] = json!(t.name);
        t.ty.v1_path().to_owned()
    } else {
        format!("/endpoints/{}/invocations", t.name)
    };
    let (status, content_type, text) = gw.post_text(&path, &body).await;
    let sent: Vec<Recorded> = t.upstream.as_ref().map(|u| u.requests()[before..].to_vec()).unwrap_or_default();
    *t.next.lock().unwrap() = None;

    if !served {
        if status != 501 {
            return Err(format!("expected 501, got {status}: {text}"));
        }
        if !sent.is_empty() {
            return Err(format!("501 after {} upstream call(s): {:?}", sent.len(), sent[0].target));
        }
        return check_not_implemented(v1, &not_implemented_message(t.row, t.ty, stream), &content_type, &text);
    }
    if status != 200 {
        return Err(format!("expected 200, got {status}: {text}; upstream saw {:?}", sent.first().map(|r| &r.target)));
    }
    if t.upstream.is_some() {
        if sent.len() != 1 {
            return Err(format!("expected one upstream call, got {}", sent.len()));
        }
        let req = &sent[0];
        let want = t.row.paths[Row::column(t.ty, stream)];
        if req.method != "POST" || req.target != want {
            return Err(format!("upstream {} {}, expected POST {want}", req.method, req.target));
        }
        check_headers(req, t.row.headers)?;
        serde_json::from_slice::<Value>(&req.body).map_err(|e| format!("upstream body is not JSON: {e}"))?;
    }
    check_served(t, stream, &content_type, &text)
}

#[tokio::test]
async fn every_provider_endpoint_type_stream_and_route_family() {
    let rows = rows();
    let (gw, targets, tokens) = matrix_gateway(&rows).await;

    // Endpoints run concurrently; one endpoint's cells in turn (its upstream counts per cell).
    let results = join_all(targets.iter().map(|t| {
        let gw = &gw;
        async move {
            let mut failures = Vec::new();
            for stream in [false, true] {
                for v1 in [false, true] {
                    if let Err(e) = cell(gw, t, stream, v1).await {
                        let route =
                            if v1 { t.ty.v1_path().to_owned() } else { format!("/endpoints/{}/invocations", t.name) };
                        failures.push(format!("{} [{} stream={stream}] {route}: {e}", t.row.label, t.ty.short()));
                    }
                }
            }
            failures
        }
    }))
    .await;
    let failures: Vec<String> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{} of {} cells failed:\n{}", failures.len(), targets.len() * 4, failures.join("\n"));

    // Every vertex_ai endpoint that called Vertex fetched its token once, at its first call,
    // and reused it; the others never fetched one.
    let calling = targets
        .iter()
        .filter(|t| t.row.provider == "vertex_ai" && [false, true].iter().any(|&s| t.row.serves(t.ty, s)))
        .count();
    assert_eq!(tokens.requests().len(), calling, "one token per vertex_ai endpoint that made calls");
    gw.assert_alive().await;
    assert!(!gw.logs().contains("panicked"), "{}", gw.logs());
}

/// The table has a row for every provider aigw serves, derived from the registry
/// (`ProviderName::ALL` minus the names refused at load, see `common::served_providers`): a
/// provider added to `src/config/provider_name.rs` without a row here fails this test.
#[test]
fn the_matrix_covers_every_provider() {
    let rows = rows();
    let served = served_providers();
    let missing: Vec<&str> =
        served.iter().map(|p| p.as_str()).filter(|p| !rows.iter().any(|r| r.provider == *p)).collect();
    assert!(missing.is_empty(), "providers aigw serves without a row in the matrix: {missing:?}");
    for r in &rows {
        let p =
            ProviderName::parse(r.provider).unwrap_or_else(|| panic!("{}: unknown provider {}", r.label, r.provider));
        assert!(served.contains(&p), "{}: {} is not a provider aigw serves", r.label, r.provider);
    }
    for r in &rows {
        assert_eq!(r.serves.len(), 5, "{}", r.label);
        for (i, c) in r.serves.bytes().enumerate() {
            let has_path = !r.paths[i].is_empty();
            assert!(c == b'-' || has_path || r.wire == Wire::Builtin, "{}: column {i} served without a path", r.label);
            assert!(c != b'-' || !has_path, "{}: column {i} not served but has a path", r.label);
        }
    }
}
