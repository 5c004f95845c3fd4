//! Garbage-input properties of the parsers and decoders that read bytes from outside: the
//! gateway YAML, unified request bodies, SSE streams, AWS event streams, Cohere's NDJSON, and
//! every provider's stream decoder. Whatever the bytes and however they are split: no panic,
//! and a clear error.
//!
//! The provider cases (one endpoint per provider and endpoint type, prepared through
//! `providers::prepare` as the server does) are shared with the cargo-fuzz targets in `fuzz/`.
//! `cargo test --test it properties::write_fuzz_seeds -- --ignored` regenerates `fuzz/seeds/`.

#[path = "../../fuzz/src/cases.rs"]
#[allow(dead_code)]
mod cases;

use std::path::Path;

use crate::common::bedrock;
use aigw::framing::eventstream::FrameDecoder;
use aigw::framing::ndjson::NdjsonLines;
use aigw::schema::{EndpointType, parse_request};
use aigw::snapshot::Snapshot;
use cases::{Case, Kind, cases, run_stream, split_at, sse_events};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// Sorted cut points into a body of `len` bytes.
fn cut_points(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
    points.sort_unstable();
    points
}

// ---- configuration ----

const CONFIG_PATH: &str = "/etc/aigw/gateway.yaml";

/// YAML fragments the loader cares about, to be strung together at random.
const YAML_TOKENS: &[&str] = &[
    "endpoints:",
    "routes:",
    "aigw:",
    "- name: chat",
    "- name: x y",
    "name: chat",
    "endpoint_type: llm/v1/chat",
    "endpoint_type: llm/v1/embeddings",
    "task_type: llm/v1/chat",
    "model:",
    "provider: openai",
    "provider: bedrock",
    "provider: vertex_ai",
    "provider: mock",
    "provider: nope",
    "config:",
    "openai_api_key: k",
    "openai_api_type: azure",
    "aws_config: {aws_region: us-east-1}",
    "vertex_project: p",
    "temperature: 2.5",
    "max_tokens: -1",
    "limit: {calls: 1, renewal_period: minute}",
    "renewal_period: 2 fortnights",
    "destinations: [{name: chat, traffic_percentage: 100}]",
    "traffic_percentage: 101",
    "routing_strategy: FALLBACK",
    "retry: {max_attempts: 0}",
    "max_request_body: 16MiB",
    "&a [1, 2]",
    "*a",
    "!!binary aGk=",
    "? [complex, key]",
    "{",
    "[",
    "'",
    "\"",
    "~",
    "- ",
    ":",
    "$OPENAI_API_KEY",
    "${HOME}",
];

fn yaml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(YAML_TOKENS), 0usize..6, any::<bool>()), 0..24).prop_map(|parts| {
        let mut text = String::new();
        for (token, indent, newline) in parts {
            if newline {
                text.push('\n');
                text.push_str(&" ".repeat(indent * 2));
            } else {
                text.push(' ');
            }
            text.push_str(token);
        }
        text
    })
}

/// A valid configuration with bytes deleted, inserted or replaced at random places.
fn mutated_config() -> impl Strategy<Value = String> {
    const VALID: &str = "endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      \
         name: gpt-4o-mini\n      config:\n        openai_api_key: k\n        temperature: 0.2\n    limit: {calls: 10, \
         renewal_period: minute}\nroutes:\n  - name: r\n    task_type: llm/v1/chat\n    destinations:\n      - name: chat\n        \
         traffic_percentage: 100\n";
    prop::collection::vec((any::<Index>(), 0u8..3, any::<char>()), 1..8).prop_map(|edits| {
        let mut chars: Vec<char> = VALID.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len());
            match op {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any text: the loader answers Ok or Err, never panics, and an error starts with the file.
    #[test]
    fn config_parse_garbage(text in prop_oneof![any::<String>(), yaml_soup(), mutated_config()]) {
        match Snapshot::parse(&text, Path::new(CONFIG_PATH)) {
            Ok(snapshot) => {
                let config = &snapshot.config;
                for e in &config.endpoints {
                    prop_assert!(config.endpoint(&e.name).is_some());
                }
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(shown.starts_with(&format!("{CONFIG_PATH}: ")), "{}", shown);
                prop_assert!(!e.message.is_empty(), "{}", shown);
            }
        }
    }
}

// ---- unified requests ----

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z]{0,6}".prop_map(Value::from),
        prop::sample::select(vec!["user", "assistant", "system", "tool", "function", "text", "image_url"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(REQUEST_KEYS), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// Keys the unified schemas know, at any depth.
const REQUEST_KEYS: &[&str] = &[
    "messages",
    "role",
    "content",
    "prompt",
    "input",
    "temperature",
    "max_tokens",
    "n",
    "stop",
    "stream",
    "tools",
    "tool_choice",
    "tool_calls",
    "tool_call_id",
    "function",
    "name",
    "arguments",
    "parameters",
    "type",
    "text",
    "image_url",
    "url",
    "response_format",
    "top_p",
    "model",
    "x",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, any endpoint type: Ok, or a non-empty FastAPI error list whose items have a
    /// `type`, a `msg` and a `loc` starting with `"body"`.
    #[test]
    fn parse_request_garbage(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json_value().prop_map(|v| v.to_string().into_bytes()),
        ],
    ) {
        for t in [EndpointType::Chat, EndpointType::Completions, EndpointType::Embeddings] {
            match parse_request(t, &body) {
                Ok(req) => prop_assert!(serde_json::to_vec(&req.body).is_ok()),
                Err(errors) => {
                    prop_assert!(!errors.0.is_empty(), "{}: empty error list", t);
                    for item in &errors.0 {
                        prop_assert!(item["type"].is_string() && item["msg"].is_string(), "{}", item);
                        prop_assert_eq!(item["loc"][0].as_str(), Some("body"), "{}", item);
                    }
                }
            }
        }
    }
}

// ---- Gemini's generateContent requests ----

/// Keys of Gemini's `GenerateContentRequest`, at any depth, in both spellings.
const GEMINI_KEYS: &[&str] = &[
    "contents",
    "role",
    "parts",
    "text",
    "thought",
    "thoughtSignature",
    "inlineData",
    "inline_data",
    "mimeType",
    "data",
    "functionCall",
    "functionResponse",
    "id",
    "name",
    "args",
    "response",
    "systemInstruction",
    "tools",
    "functionDeclarations",
    "parameters",
    "parametersJsonSchema",
    "toolConfig",
    "functionCallingConfig",
    "mode",
    "allowedFunctionNames",
    "generationConfig",
    "temperature",
    "topK",
    "maxOutputTokens",
    "candidateCount",
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "thinkingConfig",
    "thinkingBudget",
    "includeThoughts",
    "safetySettings",
    "threshold",
    "type",
    "properties",
    "nullable",
    "googleSearch",
];

/// JSON made of Gemini's keys and the values they take.
fn gemini_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..5000).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "user",
            "model",
            "function",
            "image/png",
            "audio/wav",
            "application/json",
            "text/x.enum",
            "AUTO",
            "ANY",
            "NONE",
            "OBJECT",
            "STRING",
            "BLOCK_NONE",
            "get_weather",
            "",
            "12",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(GEMINI_KEYS), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// `api::gemini::parse`'s promises for any body: a Google-shaped 400, or the body kept as sent
/// and (unless only Google's API can serve it) a unified chat request that validates again
/// unchanged, with messages (the `gemini_request` fuzz target checks the same).
fn check_gemini(body: &[u8], stream: bool) -> Result<(), TestCaseError> {
    use aigw::error::Family;
    match aigw::api::gemini::parse("chat", body, stream) {
        Ok(parsed) => {
            let sent: Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Value::Object(parsed.native.clone()), sent);
            prop_assert_eq!(parsed.request.stream(), stream);
            if parsed.native_only.is_none() {
                let again =
                    aigw::schema::request_from_value(EndpointType::Chat, Value::Object(parsed.request.body.clone()));
                prop_assert!(again.as_ref().is_ok_and(|a| a.body == parsed.request.body), "{:?}", parsed.request.body);
                prop_assert!(!parsed.request.messages().is_empty());
            }
        }
        Err(e) => {
            prop_assert_eq!(e.status_for(Family::Gemini), 400, "{}", e);
            let v: Value =
                serde_json::from_slice(&e.body(Family::Gemini)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&v["error"]["status"], "INVALID_ARGUMENT");
            prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", v);
        }
    }
    Ok(())
}

/// The hand-written seeds of the `gemini_request` fuzz target.
fn gemini_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/gemini_request");
    let mut seeds: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect();
    seeds.sort();
    seeds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Gemini-shaped soup, raw bytes, and the seeds with bytes replaced or cut off.
    #[test]
    fn gemini_request_garbage(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            gemini_value().prop_map(|v| v.to_string().into_bytes()),
            gemini_value().prop_map(|v| json!({"contents": [{"role": "user", "parts": [v]}]}).to_string().into_bytes()),
            gemini_value().prop_map(|v| json!({"contents": [{"parts": [{"text": "Hi"}]}], "generationConfig": v}).to_string().into_bytes()),
        ],
        seed in any::<Index>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
        cut in any::<Index>(),
        stream in any::<bool>(),
    ) {
        check_gemini(&body, stream)?;
        let seeds = gemini_seeds();
        let mut mutated = seeds[seed.index(seeds.len())].clone();
        for (at, byte) in &edits {
            let i = at.index(mutated.len());
            mutated[i] = *byte;
        }
        check_gemini(&mutated, stream)?;
        mutated.truncate(cut.index(mutated.len() + 1));
        check_gemini(&mutated, stream)?;
    }
}

#[test]
fn gemini_seeds_translate() {
    for seed in gemini_seeds() {
        let parsed = aigw::api::gemini::parse("chat", &seed, false).unwrap();
        assert!(!parsed.request.messages().is_empty());
    }
}

// ---- framings: SSE, AWS event stream, NDJSON ----

fn frames(pieces: &[&[u8]]) -> (usize, Option<String>) {
    let mut d = FrameDecoder::new();
    let mut n = 0;
    for p in pieces {
        d.push(p);
        loop {
            match d.next_message() {
                Ok(Some(_)) => n += 1,
                Ok(None) => break,
                Err(e) => return (n, Some(e.0)),
            }
        }
    }
    (n, d.finish().err().map(|e| e.0))
}

fn ndjson_lines(pieces: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut framing = NdjsonLines::default();
    let mut out = Vec::new();
    for p in pieces {
        framing.feed(p, |l| out.push(l.to_vec())).expect("no line limit is set");
    }
    framing.finish(|l| out.push(l.to_vec()));
    out
}

/// Bytes biased towards the characters the framings care about.
fn framing_garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![any::<u8>(), prop::sample::select(b"\r\n:data event \x00{}".to_vec())], 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Garbage SSE, any split: the same events as fed whole (the parser's own property covers
    /// well-formed streams only).
    #[test]
    fn sse_garbage_any_split(bytes in framing_garbage(), cuts in prop::collection::vec(any::<Index>(), 0..10)) {
        let points = cut_points(&cuts, bytes.len());
        prop_assert_eq!(sse_events(&split_at(&bytes, &points)), sse_events(&[&bytes]));
    }

    /// Garbage event stream, any split: no panic, an error for anything non-empty, and the same
    /// error whatever the split.
    #[test]
    fn eventstream_garbage_any_split(bytes in framing_garbage(), cuts in prop::collection::vec(any::<Index>(), 0..10)) {
        let points = cut_points(&cuts, bytes.len());
        let whole = frames(&[&bytes]);
        prop_assert_eq!(&frames(&split_at(&bytes, &points)), &whole);
        if !bytes.is_empty() {
            prop_assert!(whole.1.is_some(), "{} garbage bytes decoded without an error", bytes.len());
        }
    }

    /// Garbage NDJSON, any split: the same lines as fed whole.
    #[test]
    fn ndjson_garbage_any_split(bytes in framing_garbage(), cuts in prop::collection::vec(any::<Index>(), 0..10)) {
        let points = cut_points(&cuts, bytes.len());
        prop_assert_eq!(ndjson_lines(&split_at(&bytes, &points)), ndjson_lines(&[&bytes]));
    }
}

// ---- provider stream decoders ----

/// The stream cases of one provider family.
fn stream_cases(providers: &[&str]) -> Vec<&'static Case> {
    let list: Vec<&Case> = cases().stream.iter().filter(|c| providers.contains(&c.provider.as_str())).collect();
    assert!(!list.is_empty(), "no stream case for {providers:?}");
    list
}

/// How one upstream event carrying `payload` is framed by this case's provider.
fn frame_event(case: &Case, payload: &str) -> Vec<u8> {
    match case.provider.as_str() {
        "cohere" => format!("{payload}\n").into_bytes(),
        "bedrock" | "amazon-bedrock" => eventstream_frame(payload),
        _ => format!("data: {payload}\n\n").into_bytes(),
    }
}

/// A ConverseStream `contentBlockDelta` event frame carrying `payload` (CRCs correct).
fn eventstream_frame(payload: &str) -> Vec<u8> {
    bedrock::frame(
        &[(":event-type", "contentBlockDelta"), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

/// Garbage in random pieces: no panic, whole `data: <json>` events only (checked by
/// `run_stream`), a 4xx/5xx error if any, and the same outcome as the garbage fed whole.
fn check_garbage(list: &[&Case], pick: Index, bytes: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let case = list[pick.index(list.len())];
    let points = cut_points(cuts, bytes.len());
    let whole = run_stream(case, &[bytes]);
    prop_assert_eq!(run_stream(case, &split_at(bytes, &points)), whole, "{}", case.label);
    Ok(())
}

/// An upstream event whose payload is not JSON, alone or after garbage-free valid framing, in
/// random pieces: the stream ends with a 502.
fn check_junk(list: &[&Case], pick: Index, junk: &str, cuts: &[Index]) -> Result<(), TestCaseError> {
    let case = list[pick.index(list.len())];
    let bytes = frame_event(case, junk);
    let points = cut_points(cuts, bytes.len());
    let outcome = run_stream(case, &split_at(&bytes, &points));
    prop_assert_eq!(outcome.error, Some(502), "{}: junk {:?} gave {:?}", case.label, junk, outcome);
    Ok(())
}

/// Non-JSON text: starts with a letter no JSON value starts with.
const JUNK: &str = "[g-mo-sA-Z<][ -~]{0,40}";

macro_rules! stream_properties {
    ($($name:ident: [$($provider:literal),+];)+) => {
        $(
            mod $name {
                use super::*;
                proptest! {
                    #![proptest_config(ProptestConfig::with_cases(48))]

                    #[test]
                    fn garbage_in_any_pieces(pick in any::<Index>(), bytes in framing_garbage(), cuts in prop::collection::vec(any::<Index>(), 0..10)) {
                        check_garbage(&stream_cases(&[$($provider),+]), pick, &bytes, &cuts)?;
                    }

                    #[test]
                    fn junk_event_is_a_502(pick in any::<Index>(), junk in JUNK, cuts in prop::collection::vec(any::<Index>(), 0..6)) {
                        check_junk(&stream_cases(&[$($provider),+]), pick, &junk, &cuts)?;
                    }
                }
            }
        )+

        /// The providers the stream properties above cover.
        const STREAM_PROPERTY_PROVIDERS: &[&str] = &[$($($provider),+),+];
    };
}

/// Every provider with stream cases (every streaming provider aigw serves, see
/// `every_provider_has_cases`) is in one of the `stream_properties!` groups.
#[test]
fn stream_properties_cover_every_streaming_provider() {
    for case in &cases().stream {
        assert!(
            STREAM_PROPERTY_PROVIDERS.contains(&case.provider.as_str()),
            "{}: provider {} has stream cases but no stream_properties! group",
            case.label,
            case.provider
        );
    }
}

stream_properties! {
    stream_openai: ["openai", "azure"];
    stream_openai_compatible: ["groq", "deepseek", "xai", "openrouter", "ollama", "portkey"];
    stream_anthropic: ["anthropic"];
    stream_gemini: ["gemini"];
    stream_bedrock: ["bedrock", "amazon-bedrock"];
    stream_mistral: ["mistral"];
    stream_togetherai: ["togetherai"];
    stream_cohere: ["cohere"];
    stream_databricks: ["databricks", "databricks-model-serving"];
    stream_vertex_ai: ["vertex_ai"];
}

/// Every provider's JSON decoders: junk bodies are a 502, never a panic.
#[test]
fn response_decoders_refuse_junk() {
    for case in &cases().response {
        for junk in [&b""[..], b"not json", b"{", b"[]", b"null", b"{\"choices\": 7}"] {
            let n = match case.kind {
                Kind::Many(n) => n,
                _ => 1,
            };
            // The junk is the first body; a fan-out's other bodies are empty.
            let mut data = vec![(n - 1) as u8];
            for _ in 1..n {
                data.extend_from_slice(&(junk.len() as u16).to_be_bytes());
            }
            data.extend_from_slice(junk);
            let input = cases::Input::parse(&data);
            if let Err(status) = cases::run_response(case, &input) {
                assert!((400..=599).contains(&status), "{}: {status}", case.label);
            }
            // Not JSON at all is never a success.
            if matches!(junk, b"" | b"not json" | b"{") {
                assert!(cases::run_response(case, &input).is_err(), "{}: {:?} accepted", case.label, junk);
            }
        }
    }
}

/// Every provider aigw serves has cases (the list is derived from the registry,
/// `ProviderName::ALL`, minus the names refused at load and `cases::NO_CASES`).
#[test]
fn every_provider_has_cases() {
    let all = cases();
    let with_cases = cases::providers_with_cases();
    assert!(with_cases.len() >= 23, "{with_cases:?}");
    for p in with_cases {
        assert!(all.response.iter().any(|c| c.provider == p.as_str()), "{p}: no response case");
    }
    assert!(all.response.iter().any(|c| matches!(c.kind, Kind::Many(n) if n > 1)), "no fan-out case");
    assert!(all.stream.len() >= 20, "{} stream cases", all.stream.len());
}

// ---- fuzz findings ----

/// The `provider_stream` fuzz input that made two decodings of one stream differ: an
/// OpenAI-compatible (portkey) stream whose chunks lack `created`, decoded across a second
/// boundary. The outcomes agree once `created` is set aside.
#[test]
fn fuzz_regression_stream_created_from_clock() {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD
        .decode("GQgAnQCeATkBOgHHAcgCbAJtZGH/////////////////////////////////////////////////////CmRhdGE6IHsidHlwZSI6Im5ibG9ja19zdG9wIiwiaW5kZXgiOjB9CgpldmVudDogbWVvbnRlbnRfYmxvY2tfZGVsdGEiLSwiaW5kZXgiOjUsImRlbHRhInRpYWxfanNvbiI6IntcImxvY2F0aW9uXCI6ICJ9fQoKZXb+///7IGNvbnRlbnRfYmxvY2tfZGVsdCJjb250ZW50X2Jsb2NrX3N0YXJ0IiwiaW5kZXgiOjAsIiRjb250ZW50X2IAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAGxvY2siOnsidHl0ZW50X2Jsb2NrX2RlbHRhCmRhdGE6IHsidHlwZSI6ImNvbnRlbnRf//////////9ibG9jay5kZWx0YSIsImluZGV4IpwwLF94dGUibmJsb2NrX3N0b3AiLCJpbmRleCI6MH0KCmV2ZW50OiBtZW9udGVudF9ibG9ja19kZWx0YSItLCJpbmRleCI6NSwiZGVsdGEidGlhbF9qc29uIjoie1wibG9jYXRpb25cIjogIn19Cgpldv7///sgY29udGVudF9ibG9ja19kZWx0YQpkYXRhOiJ0ZXN0IiwiY2hvaWNlcyI6W10sInVzYWdlIjp7InByb21wdF90b2v+ZW5zIjo0LCJjImNvbXBhCmRhdGE6IHsidHlwZSI6ImNvbnRlbnRf////////bGV0aW9uX3Rva2VucyI6MSwidG90YWxfdG9rZW5zIjoxMH19CgpkYXRhOiBbRE9ORV0K")
        .unwrap();
    let case = cases().stream.iter().find(|c| c.label == "portkey-chat basic stream").unwrap();
    let input = cases::Input::parse(&data[1..]);
    let whole = run_stream(case, &[input.body]);
    let split = run_stream(case, &input.pieces());
    assert_eq!(whole, split);
    assert_eq!(whole.error, Some(502), "the junk after the first events ends the stream");
}

/// A stream chunk without `created` should get the request's `Call::created`, as the JSON
/// decoders do, not the clock: the clock makes one answer's chunks disagree with each other
/// and with the request. Found by the `provider_stream` fuzz target.
#[test]
fn stream_chunk_without_created_gets_the_call_time() {
    for label in [
        "openai-chat basic stream",
        "openai-completions basic stream",
        "mistral-chat basic stream",
        "togetherai-chat basic stream",
        "togetherai-completions basic stream",
    ] {
        let case = cases().stream.iter().find(|c| c.label == label).unwrap();
        let chunk = if case.endpoint.endpoint_type == EndpointType::Chat {
            r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#
        } else {
            r#"{"id":"x","model":"m","choices":[{"index":0,"text":"hi","finish_reason":null}]}"#
        };
        // `[DONE]`: a stream without its end is an error.
        let outcome = run_stream(case, &[format!("data: {chunk}\n\n").as_bytes(), b"data: [DONE]\n\n"]);
        assert_eq!(outcome.error, None, "{label}");
        let event: Value = serde_json::from_slice(outcome.out.strip_prefix(b"data: ").unwrap()).unwrap();
        assert_eq!(event["created"], json!(cases::CREATED), "{label}: {event}");
    }
}

// ---- fuzz seeds ----

/// Regenerate `fuzz/seeds/<target>/` from `conf/` and the MLflow fixtures. Run by hand:
/// `cargo test --test it properties::write_fuzz_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds; run by hand"]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = root.join("fuzz/seeds");
    let mut written = 0;
    let mut write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        written += 1;
    };

    // config: every file under conf/ and conf/examples/, and the validation fixture's configs.
    for dir in ["conf", "conf/examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let name = format!("{}-{}", dir.replace('/', "-"), path.file_name().unwrap().to_string_lossy());
                write("config", &name, &std::fs::read(&path).unwrap());
            }
        }
    }
    let fixtures = root.join("tests/fixtures/mlflow");
    let validation: Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("config-validation.json")).unwrap()).unwrap();
    for (i, case) in validation["cases"].as_array().unwrap().iter().enumerate() {
        write(
            "config",
            &format!("validation-{i:02}.yaml"),
            serde_saphyr::to_string(&case["config"]).unwrap().as_bytes(),
        );
    }

    let mut fixture_list: Vec<(String, Value)> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .filter(|(_, v): &(String, Value)| v.get("endpoint_config").is_some())
        .collect();
    fixture_list.sort_by(|a, b| a.0.cmp(&b.0));

    // request: every fixture's client request.
    for (name, fx) in &fixture_list {
        write("request", name, fx["client_request"].to_string().as_bytes());
    }

    // sse / eventstream / provider_*: the upstream answers.
    let stream_body = |fx: &Value| -> Option<(Vec<u8>, Vec<usize>)> {
        let up = &fx["upstream_response"];
        let pieces: Vec<Vec<u8>> = if let Some(events) = up["event_stream"].as_array() {
            events
                .iter()
                .map(|e| {
                    let (kind, payload) = e.as_object().unwrap().iter().next().unwrap();
                    let headers = [
                        (":event-type", kind.as_str()),
                        (":content-type", "application/json"),
                        (":message-type", "event"),
                    ];
                    bedrock::frame(&headers, payload.to_string().as_bytes())
                })
                .collect()
        } else {
            up.as_array()?.iter().map(|l| l.as_str().map(|s| s.as_bytes().to_vec())).collect::<Option<_>>()?
        };
        let mut cuts = Vec::new();
        let mut at = 0;
        for p in &pieces[..pieces.len().saturating_sub(1)] {
            at += p.len();
            cuts.push(at);
        }
        Some((pieces.concat(), cuts))
    };
    let encode = |prefix: &[u8], cuts: &[usize], body: &[u8]| {
        let cuts = &cuts[..cuts.len().min(15)];
        let mut out = prefix.to_vec();
        out.push(cuts.len() as u8);
        for c in cuts {
            out.extend_from_slice(&(*c as u16).to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    };
    for (name, fx) in &fixture_list {
        let stream = fx["client_request"]["stream"] == json!(true);
        if !stream {
            continue;
        }
        let Some((body, cuts)) = stream_body(fx) else { continue };
        if name.starts_with("bedrock") {
            write("eventstream", &format!("{name}-whole"), &encode(&[0], &[], &body));
            write("eventstream", &format!("{name}-split"), &encode(&[1], &cuts, &body));
        } else if !name.starts_with("cohere") {
            write("sse", &format!("{name}-whole"), &encode(&[], &[], &body));
            write("sse", &format!("{name}-split"), &encode(&[], &cuts, &body));
        }
    }

    // Which fixtures answer like a case: same decoder family, type and streaming.
    let family = |provider: &str, model: &str| -> String {
        match provider {
            "azure"
            | "databricks"
            | "databricks-model-serving"
            | "groq"
            | "deepseek"
            | "xai"
            | "openrouter"
            | "ollama"
            | "portkey" => "openai".into(),
            "amazon-bedrock" => "bedrock".into(),
            "vertex_ai" if model.starts_with("claude") => "anthropic".into(),
            "vertex_ai" if model.contains('/') => "openai".into(),
            "vertex_ai" => "gemini".into(),
            "bedrock" => format!("bedrock-{}", model.split('.').next().unwrap_or("")),
            other => other.into(),
        }
    };
    let case_family = |case: &Case| {
        let f = family(&case.provider, case.endpoint.model_name.as_deref().unwrap_or(""));
        // Converse (chat) answers the same whatever the model family.
        if case.endpoint.endpoint_type == EndpointType::Chat && f.starts_with("bedrock") { "bedrock".into() } else { f }
    };
    let fixture_family = |fx: &Value| {
        let m = &fx["endpoint_config"]["model"];
        let f = family(m["provider"].as_str().unwrap_or(""), m["name"].as_str().unwrap_or(""));
        if fx["endpoint_config"]["endpoint_type"] == "llm/v1/chat" && f.starts_with("bedrock") {
            "bedrock".into()
        } else {
            f
        }
    };
    let matching = |case: &Case, stream: bool| -> Vec<&(String, Value)> {
        fixture_list
            .iter()
            .filter(|(_, fx)| {
                fixture_family(fx) == case_family(case)
                    && fx["endpoint_config"]["endpoint_type"] == case.endpoint.endpoint_type.as_str()
                    && (fx["client_request"]["stream"] == json!(true)) == stream
            })
            .take(2)
            .collect()
    };
    for (i, case) in cases().response.iter().enumerate() {
        let slug = case.label.replace(' ', "-");
        let found = matching(case, false);
        if found.is_empty() {
            write("provider_response", &format!("{i:03}-{slug}-empty-object"), &encode(&[i as u8], &[], b"{}"));
        }
        for (name, fx) in found {
            let n = match case.kind {
                Kind::Many(n) => n,
                _ => 1,
            };
            let answers: Vec<String> = match fx["upstream_response"].as_array() {
                Some(list) if n > 1 || fx.get("expected_upstream_calls").is_some() => {
                    (0..n).map(|k| list[k % list.len()].to_string()).collect()
                }
                _ => vec![fx["upstream_response"].to_string(); n],
            };
            let mut cuts = Vec::new();
            let mut at = 0;
            for a in &answers[..n - 1] {
                at += a.len();
                cuts.push(at);
            }
            write(
                "provider_response",
                &format!("{i:03}-{slug}-{name}"),
                &encode(&[i as u8], &cuts, answers.concat().as_bytes()),
            );
        }
    }
    for (i, case) in cases().stream.iter().enumerate() {
        let slug = case.label.replace(' ', "-");
        for (name, fx) in matching(case, true) {
            let Some((body, cuts)) = stream_body(fx) else { continue };
            write("provider_stream", &format!("{i:03}-{slug}-{name}"), &encode(&[i as u8], &cuts, &body));
        }
    }
    println!("{written} seed files written under {}", seeds.display());
}
