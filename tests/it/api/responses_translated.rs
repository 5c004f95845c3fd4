//! `/v1/responses` streams translated from every provider, replayed from fixtures at random
//! split points (`tests/fixtures/client-apis/responses/`): each fixture holds the client's
//! request, the provider's stream (made by its fake, `common::fake`) and the exact Responses
//! events the gateway must write, which are compared byte for byte; only the ids and times the
//! gateway makes up are normalised (`{request_id}`, `{created}`). Every provider here goes
//! through the unified chunks and `api::responses::ResponsesStream`: OpenAI's chat completions
//! (the OpenAI fake behind the OpenAI-compatible `groq` provider; the `openai` provider itself
//! forwards `/v1/responses` natively, `api::responses_native`), Anthropic, Gemini, Bedrock and
//! Mistral.
//!
//! Also here: what must survive a tool round trip (Gemini's thought signatures), and gaps of the translation the SDK tests (`sdk::openai_responses`) show, as ignored
//! tests that say what the gateway should do.
//!
//! Regenerate the fixtures (then read the diff) with
//! `cargo test --test it api::responses_translated::write_fixtures -- --ignored`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{self, Fake};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, bedrock, split_points, sse_data, yaml};

/// The fixtures: one text answer and one text + two function calls answer per provider.
const CASES: [&str; 2] = ["text", "tools"];

/// The providers, by endpoint name, and the fake playing each.
const PROVIDERS: [(&str, Fake); 5] = [
    ("groq", Fake::OpenAi),
    ("anthropic", Fake::Anthropic),
    ("gemini", Fake::Gemini),
    ("bedrock", Fake::Bedrock),
    ("mistral", Fake::Mistral),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/client-apis/responses")
}

fn endpoint(name: &str, f: Fake, upstream: &MockUpstream) -> Value {
    match f {
        Fake::OpenAi => fake::openai_compatible_endpoint(name, name, upstream),
        _ => f.endpoint(name, upstream),
    }
}

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "The current weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// The client's request of a case.
fn client_request(name: &str, case: &str) -> Value {
    match case {
        "text" => json!({"model": name, "input": "Hello", "stream": true}),
        _ => json!({"model": name, "stream": true, "tools": [weather_tool()],
                    "input": [{"role": "user", "content": "What's the weather in Paris and Rome?"}]}),
    }
}

/// The gateway's stream with the ids and times it made up replaced: its request id (which the
/// upstream received as `x-request-id`) by `{request_id}`, the response's `created_at` (the
/// request's time) by `{created}`.
fn normalise(text: &str, upstream: &Recorded) -> String {
    let id = upstream.header("x-request-id").expect("the gateway sends its request id upstream");
    let text = text.replace(id, "{request_id}");
    let marker = "\"created_at\":";
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("{created}");
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// The upstream's stream in a fixture: SSE events as text, or Bedrock's events as boto3 shows
/// them (each becomes one event-stream frame).
fn upstream_bytes(f: Fake, fx: &Value) -> (Vec<Vec<u8>>, &'static str) {
    let stream = fx["upstream_stream"].as_array().expect("upstream_stream");
    if f == Fake::Bedrock {
        (stream.iter().map(bedrock::event_frame).collect(), "application/vnd.amazon.eventstream")
    } else {
        (stream.iter().map(|e| e.as_str().unwrap().as_bytes().to_vec()).collect(), "text/event-stream")
    }
}

fn reply(pieces: Vec<Vec<u8>>, content_type: &str) -> Reply {
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        pieces: pieces.into_iter().map(|p| (p, Duration::ZERO)).collect(),
        chunked: true,
    }
}

fn fixture(name: &str, case: &str) -> Value {
    let path = dir().join(format!("{name}-{case}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Replay one fixture: its upstream stream sent as recorded (one piece per event) and cut at
/// random split points (eight seeds) gives the same events, byte for byte. A fixture's
/// `known_gaps` are events the gateway writes differently today than it should: unless
/// `strict`, the event it writes today is expected in their place (so that the rest is still
/// checked at every split); the strict replays are the ignored tests below.
async fn replay(name: &str, f: Fake, case: &str, strict: bool) {
    let upstream = MockUpstream::start().await;
    let gw =
        Gateway::start_with(&yaml(&json!({"endpoints": [endpoint(name, f, &upstream)]})), bedrock::NO_AMBIENT_AWS, &[])
            .await;
    let fx = fixture(name, case);
    let mut expected: String =
        fx["expected_client_stream"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    if !strict {
        for gap in fx["known_gaps"].as_array().into_iter().flatten() {
            let (should, today) = (gap["expected"].as_str().unwrap(), gap["today"].as_str().unwrap());
            assert!(expected.contains(should), "{name}-{case}: the gap's event is in the expected stream");
            expected = expected.replace(should, today);
        }
    }
    let (events, content_type) = upstream_bytes(f, &fx);
    let whole = events.concat();
    for seed in [None, Some(1), Some(2), Some(3), Some(4), Some(5), Some(6), Some(7), Some(8)] {
        let pieces = match seed {
            None => events.clone(),
            Some(s) => split_points(&whole, s, 16),
        };
        upstream.clear();
        upstream.push(reply(pieces, content_type));
        let (status, ct, text) = gw.post_text("/v1/responses", &fx["client_request"]).await;
        let ctx = format!("{name}-{case} (split {seed:?})");
        assert_eq!((status, ct.starts_with("text/event-stream")), (200, true), "{ctx}: {ct}: {text}");
        let sent = upstream.last();
        assert_eq!(sent.target, fx["upstream_target"].as_str().unwrap(), "{ctx}");
        let got = normalise(&text, &sent);
        if got != expected {
            let (g, e): (Vec<&str>, Vec<&str>) =
                (got.split_inclusive("\n\n").collect(), expected.split_inclusive("\n\n").collect());
            let at = g.iter().zip(&e).position(|(a, b)| a != b).unwrap_or(g.len().min(e.len()));
            panic!(
                "{ctx}: the events differ from event {at} on\n  got:      {:?}\n  expected: {:?}",
                &g[at..],
                &e[at..]
            );
        }
    }
}

/// One test per fixture.
macro_rules! fixture_tests {
    ($($test:ident => $name:literal, $fake:expr, $case:literal;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($name, $fake, $case, false).await;
        }
    )*};
}

fixture_tests! {
    groq_text => "groq", Fake::OpenAi, "text";
    groq_tools => "groq", Fake::OpenAi, "tools";
    anthropic_text => "anthropic", Fake::Anthropic, "text";
    anthropic_tools => "anthropic", Fake::Anthropic, "tools";
    gemini_text => "gemini", Fake::Gemini, "text";
    gemini_tools => "gemini", Fake::Gemini, "tools";
    bedrock_text => "bedrock", Fake::Bedrock, "text";
    bedrock_tools => "bedrock", Fake::Bedrock, "tools";
    mistral_text => "mistral", Fake::Mistral, "text";
    mistral_tools => "mistral", Fake::Mistral, "tools";
}

/// Write the fixtures: each provider's fake answers the case's request through the gateway;
/// the fixture keeps the request, the fake's stream and the gateway's events (normalised).
#[tokio::test]
#[ignore = "writes tests/fixtures/client-apis/responses/; run by hand, then review the diff"]
async fn write_fixtures() {
    let mut upstreams = Vec::new();
    for (name, f) in PROVIDERS {
        upstreams.push((name, f, f.start().await));
    }
    let endpoints: Vec<Value> = upstreams.iter().map(|(name, f, u)| endpoint(name, *f, u)).collect();
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": endpoints})), bedrock::NO_AMBIENT_AWS, &[]).await;
    std::fs::create_dir_all(dir()).unwrap();
    for (name, f, upstream) in &upstreams {
        for case in CASES {
            let request = client_request(name, case);
            let (status, _, text) = gw.post_text("/v1/responses", &request).await;
            assert_eq!(status, 200, "{text}");
            let sent = upstream.last();
            let seen = f.seen(&sent.target, &sent.json());
            let script = fake::script(&seen);
            let stream: Vec<Value> = match f {
                Fake::Bedrock => fake::bedrock_stream(&script),
                _ => f.sse_events(&script, &seen).into_iter().map(Value::from).collect(),
            };
            // The usage the gateway should report at the end; where it writes another today,
            // the fixture expects the right one and names the gap.
            let mut gaps = Vec::new();
            let expected: Vec<String> = text
                .split_inclusive("\n\n")
                .map(|event| {
                    let today = normalise(event, &sent);
                    if !event.starts_with("event: response.completed\n") {
                        return today;
                    }
                    let should = normalise(&completed_with_usage(event, &usage(*f)), &sent);
                    if today != should {
                        gaps.push(json!({"reason": gap_reason(*f), "expected": should, "today": today}));
                    }
                    should
                })
                .collect();
            let description = format!(
                "/v1/responses streamed from {name} ({case}{}): the client's request, the upstream's stream{}, and \
                 the exact Responses events the gateway writes ({{request_id}}: the gateway's request id, \
                 {{created}}: its request time). Written by api::responses_translated::write_fixtures.",
                if *f == Fake::OpenAi {
                    ", OpenAI's chat completions through the OpenAI-compatible groq provider"
                } else {
                    ""
                },
                if *f == Fake::Bedrock { " (ConverseStream events, one event-stream frame each)" } else { "" }
            );
            let mut fx = json!({
                "description": description,
                "provider": name,
                "client_request": request,
                "upstream_target": sent.target,
                "upstream_stream": stream,
                "expected_client_stream": expected,
            });
            if !gaps.is_empty() {
                fx["known_gaps"] = Value::Array(gaps);
            }
            let path = dir().join(format!("{name}-{case}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&fx).unwrap() + "\n").unwrap();
        }
    }
}

/// The usage a translated stream of the fakes must end with, in the Responses API's terms:
/// input tokens with the cache reads (Mistral reports none).
fn usage(f: Fake) -> Value {
    let u = fake::USAGE;
    let cached = if f == Fake::Mistral { 0 } else { u.cache_read };
    json!({"input_tokens": u.input + cached,
           "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
           "output_tokens": u.output, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": u.input + cached + u.output})
}

/// A `response.completed` event with its response's usage replaced (the rest as written).
fn completed_with_usage(event: &str, usage: &Value) -> String {
    let data = event.strip_prefix("event: response.completed\ndata: ").unwrap().trim_end();
    let mut v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v.to_string(), data, "the event re-serialises as the gateway wrote it");
    v["response"]["usage"] = usage.clone();
    format!("event: response.completed\ndata: {v}\n\n")
}

/// Why a provider's stream ends with other counts today (no provider has such a gap now; a
/// new one is written into the fixture with this reason and fails the strict replays).
fn gap_reason(_: Fake) -> &'static str {
    "unexpected: the gateway reports other counts than the fake sent"
}

// ---- gaps the SDK tests (tests/it/sdk/openai_responses.rs) found, closed since: strict replays ----

/// Mistral's stream reports usage on its last chunk; `response.completed` should carry it
/// instead of `usage: null`.
#[tokio::test]
async fn mistral_stream_usage_reaches_response_completed() {
    replay("mistral", Fake::Mistral, "text", true).await;
    replay("mistral", Fake::Mistral, "tools", true).await;
}

/// Bedrock's cache reads belong in `input_tokens` and `input_tokens_details.cached_tokens`.
#[tokio::test]
async fn bedrock_cache_reads_reach_responses_usage() {
    replay("bedrock", Fake::Bedrock, "tools", true).await;
}

/// `text.format` of type `json_schema` asks for structured output: it reaches Converse as
/// `outputConfig.textFormat` (it was once dropped without a word, the model answering free text).
#[tokio::test]
async fn bedrock_structured_output_is_not_dropped() {
    let upstream = Fake::Bedrock.start().await;
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [Fake::Bedrock.endpoint("bedrock", &upstream)]})),
        bedrock::NO_AMBIENT_AWS,
        &[],
    )
    .await;
    let schema = json!({"type": "object", "properties": {"said": {"type": "string"}}, "required": ["said"]});
    let request = json!({"model": "bedrock", "input": "Hello",
                         "text": {"format": {"type": "json_schema", "name": "echo", "schema": schema}}});
    let (status, body) = gw.post("/v1/responses", &request).await;
    if status == 400 {
        assert_eq!(body["error"]["param"], json!("text.format"), "{body}");
        assert!(upstream.requests().is_empty());
    } else {
        assert_eq!(status, 200, "{body}");
        let format = &upstream.last().json()["outputConfig"]["textFormat"];
        assert_eq!(format["type"], json!("json_schema"), "the schema reaches Converse: {}", upstream.last().json());
    }
}

/// The `response` object of an answer: the body, or a stream's `response.completed`.
/// A field the translation does not know is refused with OpenAI's `unknown_parameter` 400 on a
/// translated endpoint (the native path forwards it: api::responses_native), and nothing
/// reaches the provider.
#[tokio::test]
async fn an_unknown_field_is_refused_by_a_translation() {
    let upstream = Fake::Anthropic.start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::Anthropic.endpoint("claude", &upstream)]}))).await;
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "claude", "input": "hi", "future_field": {"x": 1}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], json!("unknown_parameter"), "{body}");
    assert_eq!(body["error"]["param"], json!("future_field"), "{body}");
    assert_eq!(body["error"]["message"], json!("Unknown parameter: 'future_field'."), "{body}");
    assert!(upstream.requests().is_empty(), "nothing reached the provider");
    gw.assert_alive().await;
}

async fn respond(gw: &Gateway, request: &Value) -> Value {
    if request["stream"] == json!(true) {
        let (status, _, text) = gw.post_text("/v1/responses", request).await;
        assert_eq!(status, 200, "{text}");
        let events: Vec<Value> = sse_data(&text).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        events.into_iter().find(|e| e["type"] == "response.completed").expect("response.completed")["response"].clone()
    } else {
        let (status, body) = gw.post("/v1/responses", request).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// A one-call tool round trip on Gemini through `/v1/responses`, the client sending the answer's
/// output items back as they came: the second request as Gemini received it.
async fn gemini_round_trip(stream: bool) -> Value {
    let upstream = Fake::Gemini.start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::Gemini.endpoint("gemini", &upstream)]}))).await;
    let mut input = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let request =
        |input: &[Value]| json!({"model": "gemini", "tools": [weather_tool()], "input": input, "stream": stream});
    let answer = respond(&gw, &request(&input)).await;
    let output = answer["output"].as_array().expect("output").clone();
    let call = output.iter().find(|i| i["type"] == "function_call").expect("a function call").clone();
    input.extend(output);
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}));
    let answer = respond(&gw, &request(&input)).await;
    assert_eq!(answer["output"][0]["content"][0]["text"], json!("The weather tool says: Sunny"), "{answer}");
    upstream.last().json()
}

/// Gemini 3 refuses a history whose function calls lack the `thoughtSignature` it gave them. A
/// `function_call` item has no field for it, so it travels inside the `call_id`
/// (`api::call_id`), and comes back out of the client's `function_call` and
/// `function_call_output` items — whole answers and streams alike.
#[tokio::test]
async fn gemini_thought_signature_survives_a_responses_tool_round_trip() {
    for stream in [false, true] {
        let sent = gemini_round_trip(stream).await;
        let parts = sent["contents"][1]["parts"].as_array().unwrap();
        let call = parts.iter().find(|p| p.get("functionCall").is_some()).expect("the function call");
        assert_eq!(call["thoughtSignature"].as_str(), Some(fake::GEMINI_SIGNATURE), "stream {stream}: {sent}");
        let id = call["functionCall"]["id"].as_str().unwrap();
        assert!(id.starts_with("call_") && !id.contains("__"), "the unified id goes upstream: {id}");
        let response = &sent["contents"][2]["parts"][0]["functionResponse"];
        assert_eq!((response["id"].as_str(), response["name"].as_str()), (Some(id), Some("get_weather")), "{sent}");
    }
}
