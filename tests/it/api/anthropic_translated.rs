//! `/v1/messages` streams from every provider, replayed from fixtures at random split points
//! (`tests/fixtures/client-apis/anthropic/`): each fixture holds the client's request, the
//! provider's stream (made by its fake, `common::fake`) and the exact Anthropic events the
//! gateway must write, which are compared byte for byte; only the ids and timestamps the gateway
//! makes up are normalised (`{request_id}`, `{created}`). Anthropic's own stream goes through
//! unchanged (native relay); the others go through the unified chunks and
//! `api::anthropic::MessagesStream`.
//!
//! Also here: the gaps the SDK tests found in the translation (Bedrock's cache reads, Mistral's
//! stream usage), now closed and kept as strict replays.
//!
//! Regenerate the fixtures (then read the diff) with
//! `cargo test --test it api::anthropic_translated::write_fixtures -- --ignored`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{self, Fake};
use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, bedrock, split_points, yaml};

/// The fixtures: one text answer and one text + two tool calls answer per provider.
const CASES: [&str; 2] = ["text", "tools"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/client-apis/anthropic")
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "The current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// The client's request of a case, for the endpoint named after the provider.
fn client_request(f: Fake, case: &str) -> Value {
    match case {
        "text" => json!({"model": f.provider(), "max_tokens": 256, "stream": true,
                         "messages": [{"role": "user", "content": "Hello"}]}),
        _ => json!({"model": f.provider(), "max_tokens": 256, "stream": true, "tools": [weather_tool()],
                    "messages": [{"role": "user", "content": "What's the weather in Paris and Rome?"}]}),
    }
}

/// One gateway with an endpoint per provider (named after it), each pointing at its upstream.
async fn gateway(upstreams: &[(Fake, MockUpstream)]) -> Gateway {
    let endpoints: Vec<Value> = upstreams.iter().map(|(f, u)| f.endpoint(f.provider(), u)).collect();
    Gateway::start_with(&yaml(&json!({"endpoints": endpoints})), bedrock::NO_AMBIENT_AWS, &[]).await
}

async fn upstreams() -> Vec<(Fake, MockUpstream)> {
    let mut out = Vec::new();
    for f in Fake::ALL {
        out.push((f, MockUpstream::start().await));
    }
    out
}

/// The gateway's stream with the ids and times it made up replaced: its request id (which the
/// upstream received as `x-request-id`) by `{request_id}`, and the time in Gemini's stream id
/// (`gemini-chat-stream-<created>`) by `{created}`.
fn normalise(text: &str, upstream: &Recorded) -> String {
    let id = upstream.header("x-request-id").expect("the gateway sends its request id upstream");
    let text = text.replace(id, "{request_id}");
    let marker = "gemini-chat-stream-";
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

fn fixture(f: Fake, case: &str) -> Value {
    let path = dir().join(format!("{}-{case}.json", f.provider()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Replay one fixture: its upstream stream sent as recorded (one piece per event) and cut at
/// random split points (eight seeds) gives the same events, byte for byte. A fixture's
/// `known_gaps` are events the gateway writes differently today than it should: unless
/// `strict`, the event it writes today is expected in their place (so that the rest is still
/// checked at every split); the strict replays are the tests below.
async fn replay(f: Fake, case: &str, strict: bool) {
    let upstream = MockUpstream::start().await;
    let endpoint = f.endpoint(f.provider(), &upstream);
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": [endpoint]})), bedrock::NO_AMBIENT_AWS, &[]).await;
    let fx = fixture(f, case);
    let mut expected: String =
        fx["expected_client_stream"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    if !strict {
        for gap in fx["known_gaps"].as_array().into_iter().flatten() {
            let (should, today) = (gap["expected"].as_str().unwrap(), gap["today"].as_str().unwrap());
            assert!(expected.contains(should), "{}-{case}: the gap's event is in the expected stream", f.provider());
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
        let (status, ct, text) = gw.post_text("/v1/messages", &fx["client_request"]).await;
        let ctx = format!("{}-{case} (split {seed:?})", f.provider());
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
    ($($test:ident => $fake:expr, $case:literal;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($fake, $case, false).await;
        }
    )*};
}

fixture_tests! {
    openai_text => Fake::OpenAi, "text";
    openai_tools => Fake::OpenAi, "tools";
    anthropic_text => Fake::Anthropic, "text";
    anthropic_tools => Fake::Anthropic, "tools";
    gemini_text => Fake::Gemini, "text";
    gemini_tools => Fake::Gemini, "tools";
    bedrock_text => Fake::Bedrock, "text";
    bedrock_tools => Fake::Bedrock, "tools";
    mistral_text => Fake::Mistral, "text";
    mistral_tools => Fake::Mistral, "tools";
}

/// Write the fixtures: each provider's fake answers the case's request through the gateway;
/// the fixture keeps the request, the fake's stream and the gateway's events (normalised).
#[tokio::test]
#[ignore = "writes tests/fixtures/client-apis/anthropic/; run by hand, then review the diff"]
async fn write_fixtures() {
    let upstreams = upstreams().await;
    let gw = gateway(&upstreams).await;
    std::fs::create_dir_all(dir()).unwrap();
    for (f, upstream) in &upstreams {
        upstream.handle({
            let f = *f;
            move |r| f.reply(r)
        });
        for case in CASES {
            let request = client_request(*f, case);
            let (status, _, text) = gw.post_text("/v1/messages", &request).await;
            assert_eq!(status, 200, "{text}");
            let sent = upstream.last();
            let seen = f.seen(&sent.target, &sent.json());
            let script = fake::script(&seen);
            let stream: Vec<Value> = match f {
                Fake::Bedrock => fake::bedrock_stream(&script),
                _ => f.sse_events(&script, &seen).into_iter().map(Value::from).collect(),
            };
            let mut expected: Vec<String> =
                normalise(&text, &sent).split_inclusive("\n\n").map(str::to_owned).collect();
            // The usage the gateway should report at the end; where it writes another today,
            // the fixture expects the right one and names the gap.
            let mut gaps = Vec::new();
            if *f != Fake::Anthropic {
                let should = message_delta(*f, case);
                let today = expected.iter_mut().find(|e| e.starts_with("event: message_delta\n")).unwrap();
                if *today != should {
                    gaps.push(json!({"reason": GAP_REASON, "expected": should, "today": today.clone()}));
                    *today = should;
                }
            }
            let fx = json!({
                "description": format!(
                    "/v1/messages streamed from {} ({case}): the client's request, the upstream's stream{}, and the \
                     exact Anthropic events the gateway writes ({{request_id}}: the gateway's request id, \
                     {{created}}: its request time). Written by api::anthropic_translated::write_fixtures.",
                    f.provider(),
                    if *f == Fake::Bedrock { " (ConverseStream events, one event-stream frame each)" } else { "" }
                ),
                "provider": f.provider(),
                "client_request": request,
                "upstream_target": sent.target,
                "upstream_stream": stream,
                "expected_client_stream": expected,
            });
            let mut fx = fx;
            if !gaps.is_empty() {
                fx["known_gaps"] = Value::Array(gaps);
            }
            let path = dir().join(format!("{}-{case}.json", f.provider()));
            std::fs::write(&path, serde_json::to_string_pretty(&fx).unwrap() + "\n").unwrap();
        }
    }
}

/// The `message_delta` event a translated stream of the fakes must end with: the stop reason
/// and the fake's usage in Anthropic's terms (Mistral reports no cache reads).
fn message_delta(f: Fake, case: &str) -> String {
    let stop = if case == "tools" { "tool_use" } else { "end_turn" };
    let cache = if f == Fake::Mistral { 0 } else { fake::USAGE.cache_read };
    let data = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                      "usage": {"input_tokens": fake::USAGE.input, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": cache, "output_tokens": fake::USAGE.output}});
    format!("event: message_delta\ndata: {data}\n\n")
}

/// Why a provider's stream ends with other counts today (no provider is known to).
const GAP_REASON: &str = "unexpected: the gateway reports other counts than the fake sent";

// ---- gaps the SDK tests found (tests/it/sdk/anthropic_messages.rs), now closed ----

/// Bedrock's Converse usage has `cacheReadInputTokens` (and `cacheWriteInputTokens`) beside an
/// `inputTokens` that excludes them, as Anthropic's `input_tokens` does; `/v1/messages` should
/// report them as `cache_read_input_tokens` (and `cache_creation_input_tokens`), whole and
/// streamed.
#[tokio::test]
async fn bedrock_cache_reads_reach_anthropic_usage() {
    let upstream = Fake::Bedrock.start().await;
    let endpoint = Fake::Bedrock.endpoint("bedrock", &upstream);
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": [endpoint]})), bedrock::NO_AMBIENT_AWS, &[]).await;
    let mut request = client_request(Fake::Bedrock, "text");
    request["stream"] = json!(false);
    let (status, body) = gw.post("/v1/messages", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": fake::USAGE.input, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": fake::USAGE.cache_read, "output_tokens": fake::USAGE.output})
    );
    replay(Fake::Bedrock, "tools", true).await;
}

/// Mistral's stream reports usage on its last chunk; `/v1/messages` should put it in
/// `message_delta` instead of zeros.
#[tokio::test]
async fn mistral_stream_usage_reaches_message_delta() {
    replay(Fake::Mistral, "text", true).await;
    replay(Fake::Mistral, "tools", true).await;
}

/// A one-call tool round trip on Gemini through `/v1/messages` (whole answers): the second
/// request as Gemini received it.
async fn gemini_round_trip() -> Value {
    let upstream = Fake::Gemini.start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::Gemini.endpoint("gemini", &upstream)]}))).await;
    let mut messages = vec![json!({"role": "user", "content": "What's the weather in Paris?"})];
    let request = |messages: &[Value]| json!({"model": "gemini", "max_tokens": 256, "tools": [weather_tool()], "messages": messages});
    let (status, answer) = gw.post("/v1/messages", &request(&messages)).await;
    assert_eq!((status, answer["stop_reason"].as_str()), (200, Some("tool_use")), "{answer}");
    let id = answer["content"][1]["id"].clone();
    messages.push(json!({"role": "assistant", "content": answer["content"]}));
    messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "Sunny"}]}));
    let (status, answer) = gw.post("/v1/messages", &request(&messages)).await;
    assert_eq!((status, answer["content"][0]["text"].as_str()), (200, Some("The weather tool says: Sunny")));
    upstream.last().json()
}

/// Gemini 2.5 and later sign their function calls (`thoughtSignature`, thinking is on by
/// default) and Gemini 3 refuses a history whose function calls lack their signatures. An
/// Anthropic `tool_use` block has no field for it, so it travels inside the block's id
/// (`api::call_id`), and the client's `tool_use` and `tool_result` give it back.
#[tokio::test]
async fn gemini_thought_signature_survives_a_messages_tool_round_trip() {
    let sent = gemini_round_trip().await;
    let call =
        &sent["contents"][1]["parts"].as_array().unwrap().iter().find(|p| p.get("functionCall").is_some()).cloned();
    assert_eq!(call.as_ref().and_then(|p| p["thoughtSignature"].as_str()), Some(fake::GEMINI_SIGNATURE), "{sent}");
}

/// The model's text beside its function calls ("Let me check the weather.") is part of its turn:
/// the Gemini translation keeps it, before the calls (MLflow drops it).
#[tokio::test]
async fn gemini_history_keeps_the_text_beside_function_calls() {
    let sent = gemini_round_trip().await;
    let parts = sent["contents"][1]["parts"].as_array().unwrap();
    assert_eq!(parts.first(), Some(&json!({"text": "Let me check the weather."})), "{sent}");
    assert!(parts.iter().any(|p| p.get("functionCall").is_some()), "{sent}");
}
