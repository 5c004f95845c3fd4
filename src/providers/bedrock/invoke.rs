//! InvokeModel (`POST /model/<id>/invoke`): completions in each model vendor's own body, and
//! Titan embeddings (one call per input).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::providers::{parse_upstream_json, to_json};
use crate::schema::{
    Answer, CompletionChoice, CompletionsResponse, Embedding, EmbeddingsResponse, EmbeddingsUsage, Request, Usage,
};

const DISPLAY: &str = "Amazon Bedrock";
/// Anthropic's default `max_tokens` in MLflow.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 8192;
/// MLflow's Anthropic `max_tokens` ceiling.
const ANTHROPIC_MAXIMUM_MAX_TOKENS: u64 = 1_000_000;
/// Bedrock's cap on legacy Anthropic `max_tokens_to_sample`.
const BEDROCK_ANTHROPIC_MAX_TOKENS: u64 = 8191;

/// The model vendor behind a Bedrock model id, which decides the InvokeModel body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// `amazon.*` (Titan).
    Amazon,
    /// `cohere.*`.
    Cohere,
    /// `ai21.*`.
    Ai21,
    /// `anthropic.*`.
    Anthropic,
}

impl Vendor {
    /// MLflow's rule: the id must contain a dot; the first vendor whose name occurs in it
    /// (case-insensitive) wins, in the order amazon, cohere, ai21, anthropic.
    pub fn of_model(model: Option<&str>) -> Option<Vendor> {
        let name = model?.to_ascii_lowercase();
        if !name.contains('.') {
            return None;
        }
        [
            ("amazon", Vendor::Amazon),
            ("cohere", Vendor::Cohere),
            ("ai21", Vendor::Ai21),
            ("anthropic", Vendor::Anthropic),
        ]
        .into_iter()
        .find(|(n, _)| name.contains(n))
        .map(|(_, f)| f)
    }
}

/// MLflow's answer for a model id whose vendor it cannot tell.
pub fn unknown_vendor() -> GatewayError {
    GatewayError::invalid("Unknown Amazon Bedrock model type None")
}

fn rename(payload: &mut Map<String, Value>, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        if let Some(v) = payload.remove(*from) {
            payload.insert((*to).to_owned(), v);
        }
    }
}

fn scale(payload: &mut Map<String, Value>, key: &str, factor: f64, skip_zero: bool) {
    if let Some(t) = payload.get(key).and_then(Value::as_f64) {
        if skip_zero && t == 0.0 {
            return;
        }
        if let Some(n) = serde_json::Number::from_f64(t * factor) {
            payload.insert(key.to_owned(), Value::Number(n));
        }
    }
}

fn n_value(v: &Value) -> String {
    v.as_i64().map(|n| n.to_string()).unwrap_or_else(|| v.to_string())
}

/// The InvokeModel body for a completions request.
///
/// Like MLflow, the request is taken with nulls and defaults removed (`n: 1` is not sent).
/// `stream` is never sent: InvokeModel has no such parameter, and streamed completions are
/// refused before this point.
pub fn completions_body(vendor: Vendor, req: &Request) -> Result<Vec<u8>, GatewayError> {
    let mut p: Map<String, Value> = req.body.clone();
    p.remove("model");
    p.remove("stream");
    p.remove("stream_options");
    if p.get("n").and_then(Value::as_u64) == Some(1) {
        p.remove("n");
    }
    let body = match vendor {
        Vendor::Anthropic => {
            if p.contains_key("top_p") {
                return Err(GatewayError::invalid(
                    "Cannot set both 'temperature' and 'top_p' parameters. Please use only the temperature \
                     parameter for your query.",
                ));
            }
            let max_tokens = match p.remove("max_tokens") {
                Some(v) => v.as_u64().unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
                None => ANTHROPIC_DEFAULT_MAX_TOKENS,
            };
            if max_tokens > ANTHROPIC_MAXIMUM_MAX_TOKENS {
                return Err(GatewayError::invalid(format!(
                    "Invalid value for max_tokens: cannot exceed {ANTHROPIC_MAXIMUM_MAX_TOKENS}."
                )));
            }
            if let Some(n) = p.remove("n") {
                return Err(GatewayError::invalid(format!(
                    "'n' must be '1' for the Anthropic provider. Received value: '{}'.",
                    n_value(&n)
                )));
            }
            rename(&mut p, &[("stop", "stop_sequences")]);
            p.insert("max_tokens_to_sample".into(), json!(max_tokens.min(BEDROCK_ANTHROPIC_MAX_TOKENS)));
            let mut prompt = p.get("prompt").and_then(Value::as_str).unwrap_or("").to_owned();
            if prompt.starts_with("Human: ") {
                prompt.insert_str(0, "\n\n");
            }
            if !prompt.starts_with("\n\nHuman: ") {
                prompt.insert_str(0, "\n\nHuman: ");
            }
            if !prompt.ends_with("\n\nAssistant:") {
                prompt.push_str("\n\nAssistant:");
            }
            p.insert("prompt".into(), Value::String(prompt));
            scale(&mut p, "temperature", 0.5, false);
            let stops = p.entry("stop_sequences").or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = stops
                && !list.iter().any(|s| s == "\n\nHuman:")
            {
                list.push(Value::from("\n\nHuman:"));
            }
            p.insert("anthropic_version".into(), Value::from("bedrock-2023-05-31"));
            p
        }
        Vendor::Amazon => {
            if let Some(n) = p.remove("n") {
                return Err(GatewayError::invalid(format!(
                    "'n' must be '1' for AWS Titan models. Received value: '{}'.",
                    n_value(&n)
                )));
            }
            if p.get("top_p").and_then(Value::as_f64) == Some(0.0) {
                return Err(GatewayError::invalid("'top_p' must be greater than 0 for AWS Titan models."));
            }
            scale(&mut p, "temperature", 0.5, false);
            let prompt = p.remove("prompt").unwrap_or(Value::Null);
            rename(&mut p, &[("max_tokens", "maxTokenCount"), ("stop", "stopSequences"), ("top_p", "topP")]);
            let mut body = Map::new();
            body.insert("inputText".into(), prompt);
            body.insert("textGenerationConfig".into(), Value::Object(p));
            body
        }
        Vendor::Ai21 => {
            rename(
                &mut p,
                &[("stop", "stopSequences"), ("n", "numResults"), ("max_tokens", "maxTokens"), ("top_p", "topP")],
            );
            p
        }
        Vendor::Cohere => {
            for (theirs, ours) in [("stop_sequences", "stop"), ("num_generations", "n")] {
                if p.contains_key(theirs) {
                    return Err(GatewayError::invalid(format!("Invalid parameter {theirs}. Use {ours} instead.")));
                }
            }
            scale(&mut p, "temperature", 2.5, true);
            rename(&mut p, &[("stop", "stop_sequences"), ("n", "num_generations")]);
            p
        }
    };
    to_json(&body)
}

#[derive(Deserialize)]
struct AnthropicAnswer {
    completion: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct TitanAnswer {
    #[serde(default)]
    results: Vec<TitanResult>,
}

#[derive(Deserialize)]
struct TitanResult {
    #[serde(rename = "outputText")]
    output_text: Option<String>,
}

#[derive(Deserialize)]
struct Ai21Answer {
    #[serde(default)]
    completions: Vec<Ai21Completion>,
}

#[derive(Deserialize)]
struct Ai21Completion {
    data: Option<Ai21Data>,
}

#[derive(Deserialize)]
struct Ai21Data {
    text: Option<String>,
}

#[derive(Deserialize)]
struct CohereAnswer {
    #[serde(default)]
    generations: Vec<CohereGeneration>,
}

#[derive(Deserialize)]
struct CohereGeneration {
    text: Option<String>,
}

/// Decode an InvokeModel completions answer of `vendor`.
pub fn decode_completions(
    vendor: Vendor,
    body: &[u8],
    model: Option<String>,
    created: u64,
) -> Result<Answer, GatewayError> {
    let choice = |i: usize, text: Option<String>, finish: Option<String>| CompletionChoice::new(i as u32, text, finish);
    let choices: Vec<CompletionChoice> = match vendor {
        Vendor::Anthropic => {
            let a: AnthropicAnswer = parse_upstream_json(body, DISPLAY)?;
            let finish = if a.stop_reason.as_deref() == Some("stop_sequence") { "stop" } else { "length" };
            vec![choice(0, a.completion, Some(finish.to_owned()))]
        }
        Vendor::Amazon => {
            let a: TitanAnswer = parse_upstream_json(body, DISPLAY)?;
            a.results.into_iter().enumerate().map(|(i, r)| choice(i, r.output_text, None)).collect()
        }
        Vendor::Ai21 => {
            let a: Ai21Answer = parse_upstream_json(body, DISPLAY)?;
            a.completions.into_iter().enumerate().map(|(i, c)| choice(i, c.data.and_then(|d| d.text), None)).collect()
        }
        Vendor::Cohere => {
            let a: CohereAnswer = parse_upstream_json(body, DISPLAY)?;
            a.generations.into_iter().enumerate().map(|(i, g)| choice(i, g.text, None)).collect()
        }
    };
    Ok(Answer::Completions(CompletionsResponse::new(None, created, model, choices, Usage::default())))
}

/// The texts to embed: a string or a list of strings (Titan takes text, not token ids).
pub fn embedding_inputs(req: &Request) -> Result<Vec<String>, GatewayError> {
    let refuse = || GatewayError::invalid("Amazon Bedrock embeddings take text input: a string or a list of strings");
    match req.body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(refuse)).collect(),
        _ => Err(refuse()),
    }
}

/// The Titan embeddings body for one text.
pub fn embedding_body(text: &str) -> Result<Vec<u8>, GatewayError> {
    to_json(&json!({ "inputText": text }))
}

#[derive(Deserialize)]
struct TitanEmbedding {
    embedding: Value,
    #[serde(rename = "inputTextTokenCount")]
    tokens: Option<u64>,
}

/// Decode the answers of the per-input calls (in input order) into one embeddings answer.
pub fn decode_embeddings(bodies: Vec<Bytes>, model: Option<String>) -> Result<Answer, GatewayError> {
    let mut data = Vec::with_capacity(bodies.len());
    let mut tokens = 0u64;
    for (i, body) in bodies.iter().enumerate() {
        let e: TitanEmbedding = parse_upstream_json(body, DISPLAY)?;
        tokens += e.tokens.unwrap_or(0);
        data.push(Embedding::new(i as u32, e.embedding));
    }
    Ok(Answer::Embeddings(EmbeddingsResponse::new(data, model, EmbeddingsUsage::new(Some(tokens), Some(tokens)))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EndpointType, request_from_value};

    fn completions(vendor: Vendor, v: Value) -> Result<Value, GatewayError> {
        let req = request_from_value(EndpointType::Completions, v).unwrap();
        completions_body(vendor, &req).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn families() {
        let f = |m: &str| Vendor::of_model(Some(m));
        assert_eq!(f("amazon.titan-tg1-large"), Some(Vendor::Amazon));
        assert_eq!(f("anthropic.claude-v2"), Some(Vendor::Anthropic));
        assert_eq!(f("us.anthropic.claude-3-5-sonnet-20240620-v1:0"), Some(Vendor::Anthropic));
        assert_eq!(f("cohere.command-text-v14"), Some(Vendor::Cohere));
        assert_eq!(f("AI21.j2-ultra"), Some(Vendor::Ai21));
        assert_eq!(f("meta.llama3-8b-instruct-v1:0"), None);
        assert_eq!(f("anthropic-claude"), None);
        assert_eq!(Vendor::of_model(None), None);
        assert_eq!(unknown_vendor().message(), "Unknown Amazon Bedrock model type None");
    }

    #[test]
    fn anthropic_body() {
        let b =
            completions(Vendor::Anthropic, json!({"prompt": "Human: hi", "stop": ["x"], "temperature": 1.0, "n": 1}))
                .unwrap();
        assert_eq!(
            b,
            json!({"prompt": "\n\nHuman: hi\n\nAssistant:", "stop_sequences": ["x", "\n\nHuman:"], "temperature": 0.5,
                   "max_tokens_to_sample": 8191, "anthropic_version": "bedrock-2023-05-31"})
        );
        let b = completions(
            Vendor::Anthropic,
            json!({"prompt": "\n\nHuman: a\n\nAssistant:", "stop": ["\n\nHuman:"], "max_tokens": 9000}),
        )
        .unwrap();
        assert_eq!(b["prompt"], "\n\nHuman: a\n\nAssistant:");
        assert_eq!(b["stop_sequences"], json!(["\n\nHuman:"]));
        assert_eq!(b["max_tokens_to_sample"], 8191);
        assert!(b.get("max_tokens").is_none());

        let e = completions(Vendor::Anthropic, json!({"prompt": "a", "top_p": 0.5})).unwrap_err();
        assert!(e.message().starts_with("Cannot set both 'temperature' and 'top_p'"));
        let e = completions(Vendor::Anthropic, json!({"prompt": "a", "n": 2})).unwrap_err();
        assert_eq!(e.message(), "'n' must be '1' for the Anthropic provider. Received value: '2'.");
        let e = completions(Vendor::Anthropic, json!({"prompt": "a", "max_tokens": 2_000_000})).unwrap_err();
        assert_eq!(e.message(), "Invalid value for max_tokens: cannot exceed 1000000.");
    }

    #[test]
    fn titan_ai21_cohere_bodies() {
        let b =
            completions(Vendor::Amazon, json!({"prompt": "p", "max_tokens": 5, "top_k": 3, "stream": false})).unwrap();
        assert_eq!(b, json!({"inputText": "p", "textGenerationConfig": {"maxTokenCount": 5, "top_k": 3}}));
        let e = completions(Vendor::Amazon, json!({"prompt": "p", "n": 3})).unwrap_err();
        assert_eq!(e.message(), "'n' must be '1' for AWS Titan models. Received value: '3'.");
        assert_eq!(completions(Vendor::Amazon, json!({"prompt": "p", "top_p": 0})).unwrap_err().status, 422);

        let b = completions(Vendor::Ai21, json!({"prompt": "p", "top_p": 0.1, "temperature": 0.7})).unwrap();
        assert_eq!(b, json!({"prompt": "p", "topP": 0.1, "temperature": 0.7}));

        let b = completions(Vendor::Cohere, json!({"prompt": "p", "n": 2, "stop": ["s"], "temperature": 0})).unwrap();
        assert_eq!(b, json!({"prompt": "p", "num_generations": 2, "stop_sequences": ["s"], "temperature": 0}));
        let e = completions(Vendor::Cohere, json!({"prompt": "p", "stop_sequences": ["s"]})).unwrap_err();
        assert_eq!(e.message(), "Invalid parameter stop_sequences. Use stop instead.");
        let e = completions(Vendor::Cohere, json!({"prompt": "p", "num_generations": 2})).unwrap_err();
        assert_eq!(e.message(), "Invalid parameter num_generations. Use n instead.");
    }

    #[test]
    fn decodes_completions() {
        let v = |f, b: &str| -> Value {
            serde_json::to_value(decode_completions(f, b.as_bytes(), Some("m.x".into()), 3).unwrap()).unwrap()
        };
        let a = v(Vendor::Anthropic, r#"{"completion":" hi","stop_reason":"stop_sequence"}"#);
        assert_eq!(a["choices"], json!([{"index": 0, "text": " hi", "finish_reason": "stop"}]));
        assert_eq!(a["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));
        assert_eq!(a["id"], Value::Null);
        let t = v(Vendor::Amazon, r#"{"results":[{"outputText":"a"},{"outputText":"b"}]}"#);
        assert_eq!(t["choices"][1], json!({"index": 1, "text": "b", "finish_reason": null}));
        let c = v(Vendor::Cohere, r#"{"generations":[{"text":"g"}]}"#);
        assert_eq!(c["choices"][0]["text"], "g");
        let j = v(Vendor::Ai21, r#"{"completions":[{"data":{"text":"j"}}]}"#);
        assert_eq!(j["choices"][0]["text"], "j");
        assert_eq!(decode_completions(Vendor::Amazon, b"[", None, 1).unwrap_err().status, 502);
    }

    #[test]
    fn embeddings() {
        let req = |v: Value| request_from_value(EndpointType::Embeddings, v).unwrap();
        assert_eq!(embedding_inputs(&req(json!({"input": "a"}))).unwrap(), vec!["a"]);
        assert_eq!(embedding_inputs(&req(json!({"input": ["a", "b"]}))).unwrap(), vec!["a", "b"]);
        assert_eq!(embedding_inputs(&req(json!({"input": [1, 2]}))).unwrap_err().status, 422);
        let out = decode_embeddings(
            vec![
                Bytes::from_static(br#"{"embedding":[0.1],"inputTextTokenCount":3}"#),
                Bytes::from_static(br#"{"embedding":[0.2],"inputTextTokenCount":2}"#),
            ],
            Some("amazon.titan-embed-text-v1".into()),
        )
        .unwrap();
        let v: Value = serde_json::to_value(&out).unwrap();
        assert_eq!(v["data"][1], json!({"object": "embedding", "embedding": [0.2], "index": 1}));
        assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
        assert_eq!(decode_embeddings(vec![Bytes::from_static(b"{}")], None).unwrap_err().status, 502);
    }
}
