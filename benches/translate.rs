//! Micro-benchmark of the per-request CPU work that is aigw's own: parsing and validating a
//! unified request, translating it for a provider, decoding the provider's answer, and
//! translating a streamed answer chunk by chunk. No network: the load benchmark
//! (`scripts/bench.sh`) measures the whole path.
//!
//! ```text
//! cargo bench --bench translate            # every case
//! cargo bench --bench translate -- stream  # cases whose name contains "stream"
//! ```
//!
//! Each case runs for about a second after a warm-up; the report is the median of five runs,
//! in nanoseconds per operation.

// A measuring tool: unwrap, expect and panic stop the run, which is what a failure should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aigw::api::encode::{self, AnswerMeta, StreamEncoder};
use aigw::config::Endpoint;
use aigw::error::Family;
use aigw::providers::{self, Call, Decoder, Exchange, Provider};
use aigw::schema::{EndpointType, parse_request};
use aigw::snapshot::Snapshot;
use bytes::BytesMut;

const CONFIG: &str = r#"
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {provider: openai, name: gpt-4o-mini, config: {openai_api_key: bench-key}}
  - name: claude
    endpoint_type: llm/v1/chat
    model: {provider: anthropic, name: claude-3-5-haiku-latest, config: {anthropic_api_key: bench-key}}
  - name: gemini
    endpoint_type: llm/v1/chat
    model: {provider: gemini, name: gemini-2.0-flash, config: {gemini_api_key: bench-key}}
"#;

const CHAT_REQUEST: &[u8] = br#"{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Write one sentence about load testing."}],"temperature":0.2,"max_tokens":64}"#;
const STREAM_REQUEST: &[u8] =
    br#"{"messages":[{"role":"user","content":"Write one sentence about load testing."}],"stream":true}"#;

const OPENAI_ANSWER: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"This is a benchmark answer of a typical short length."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}}"#;
const ANTHROPIC_ANSWER: &[u8] = br#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[{"type":"text","text":"This is a benchmark answer of a typical short length."}],"stop_reason":"end_turn","usage":{"input_tokens":12,"output_tokens":11}}"#;

/// Words per streamed answer (as in the load benchmark's mock upstream).
const WORDS: usize = 20;

fn openai_stream() -> Vec<Vec<u8>> {
    let head = r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"#;
    let mut events = vec![format!(
        "data: {head}\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
    )];
    for i in 0..WORDS {
        events.push(format!("data: {head}\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"));
    }
    events.push(format!("data: {head}\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"));
    events.push(r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}"#.to_owned() + "\n\n");
    events.push("data: [DONE]\n\n".to_owned());
    events.into_iter().map(String::into_bytes).collect()
}

fn anthropic_stream() -> Vec<Vec<u8>> {
    let mut events = vec![
        r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[],"stop_reason":null,"usage":{"input_tokens":12,"output_tokens":1}}}

"#
        .to_owned(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
    ];
    for i in 0..WORDS {
        events.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}\n\n"));
    }
    events.push("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_owned());
    events.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20}}\n\n".to_owned());
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned());
    events.into_iter().map(String::into_bytes).collect()
}

fn gemini_stream() -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    for i in 0..WORDS {
        events.push(format!("data: {{\"candidates\":[{{\"content\":{{\"parts\":[{{\"text\":\" word{i}\"}}],\"role\":\"model\"}},\"index\":0}}]}}\r\n\r\n"));
    }
    events.push("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":20,\"totalTokenCount\":32}}\r\n\r\n".to_owned());
    events.into_iter().map(String::into_bytes).collect()
}

/// Median nanoseconds per call of `op`, over five runs of about 200 ms each.
fn measure(mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    let mut calls: u64 = 0;
    while warm.elapsed() < Duration::from_millis(200) {
        op();
        calls += 1;
    }
    let per_run = calls.max(1);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_run {
                op();
            }
            start.elapsed().as_nanos() as f64 / per_run as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn endpoint<'s>(snapshot: &'s Snapshot, name: &str) -> (Arc<Endpoint>, &'s dyn Provider) {
    let endpoint = Arc::clone(snapshot.config.endpoint(name).unwrap_or_else(|| panic!("the bench config has {name}")));
    let provider = snapshot.provider(&endpoint).expect("every endpoint has a provider");
    (endpoint, provider)
}

/// One full request through `name`: parse, translate; then decode `answer` (JSON) or feed
/// `stream` event by event, and encode the result for an OpenAI-compatible client.
fn exchange(target: &(Arc<Endpoint>, &dyn Provider), request: &[u8], answer: &[u8], stream: &[Vec<u8>]) {
    let (endpoint, provider) = target;
    let req = parse_request(EndpointType::Chat, request).expect("a valid request");
    let call = Call { endpoint, created: 1_700_000_000 };
    let Exchange::Call { request, decoder } =
        providers::prepare(*provider, req, &call).expect("a translatable request")
    else {
        unreachable!("chat is one call")
    };
    black_box(request.body.len());
    match decoder {
        Decoder::Json(decode) => {
            let answer = decode(answer).expect("a decodable answer");
            black_box(encode::answer(Family::OpenAi, &answer, &AnswerMeta::default()).expect("an encodable answer"));
        }
        Decoder::Stream(mut decoder) => {
            let mut chunks = Vec::new();
            let mut out = BytesMut::with_capacity(4096);
            let mut encoder = StreamEncoder::new(Family::OpenAi, AnswerMeta::default());
            for event in stream {
                decoder.feed(event, &mut chunks).expect("a decodable event");
                for c in chunks.drain(..) {
                    encoder.chunk(&c, &mut out);
                }
            }
            decoder.finish(&mut chunks).expect("a complete stream");
            for c in chunks.drain(..) {
                encoder.chunk(&c, &mut out);
            }
            encoder.finish(None, &mut out);
            black_box(out.len());
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a name filter.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let snapshot = Snapshot::parse(CONFIG, Path::new("bench.yaml")).expect("the bench config loads");
    let (openai, anthropic, gemini) =
        (endpoint(&snapshot, "chat"), endpoint(&snapshot, "claude"), endpoint(&snapshot, "gemini"));
    let (openai_events, anthropic_events, gemini_events) = (openai_stream(), anthropic_stream(), gemini_stream());

    type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "parse chat request",
            Box::new(|| {
                black_box(parse_request(EndpointType::Chat, CHAT_REQUEST).expect("valid"));
            }),
        ),
        ("openai chat", Box::new(|| exchange(&openai, CHAT_REQUEST, OPENAI_ANSWER, &[]))),
        ("anthropic chat", Box::new(|| exchange(&anthropic, CHAT_REQUEST, ANTHROPIC_ANSWER, &[]))),
        ("openai stream (20 words)", Box::new(|| exchange(&openai, STREAM_REQUEST, b"", &openai_events))),
        ("anthropic stream (20 words)", Box::new(|| exchange(&anthropic, STREAM_REQUEST, b"", &anthropic_events))),
        ("gemini stream (20 words)", Box::new(|| exchange(&gemini, STREAM_REQUEST, b"", &gemini_events))),
    ];
    println!("{:<32} {:>12}", "case", "ns/op");
    for (name, mut op) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("{name:<32} {:>12.0}", measure(&mut op));
    }
}
