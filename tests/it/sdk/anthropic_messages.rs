//! The official Anthropic Python SDK against `/v1/messages`, with one endpoint per provider,
//! each played by a fake upstream (`common::fake`): text, system prompts, multi-turn, images,
//! tool round trips, thinking, whole and streamed (the SDK's helper and raw events),
//! `count_tokens` and error shapes (`anthropic_messages.py` says how). Then what each fake
//! received, in its own wire format.

use serde_json::{Value, json};

use super::run_sdk;
use crate::common::fake::{self, Fake, USAGE};
use crate::common::upstream::Recorded;
use crate::common::{Gateway, bedrock, yaml};

/// The endpoint name of each fake: a Claude model id for Anthropic's, as Claude Code asks for
/// it, and plain names for the others.
fn endpoint_name(f: Fake) -> &'static str {
    match f {
        Fake::Anthropic => "claude-sonnet-4-5",
        other => other.provider(),
    }
}

/// The gateway key of the second gateway.
const GATEWAY_KEY: &str = "sk-aigw-sdk-test-0123456789";

/// What the script expects of each provider, from what the gateway does today.
fn expectations(f: Fake) -> Value {
    let full = [USAGE.input, USAGE.cache_read, USAGE.output];
    let (usage, stream_usage) = match f {
        // Mistral has no cache reads.
        Fake::Mistral => ([USAGE.input, 0, USAGE.output], [USAGE.input, 0, USAGE.output]),
        _ => (full, full),
    };
    json!({
        "name": f.provider(),
        "model": endpoint_name(f),
        "upstream_model": f.model(),
        "native": f == Fake::Anthropic,
        "usage": usage,
        "stream_usage": stream_usage,
        // Anthropic counts; the others get the estimate: ceil(5 / 4) + 4 per message + 8.
        "count_tokens": if f == Fake::Anthropic { fake::COUNT_TOKENS } else { 14 },
        "image_url": match f {
            Fake::Gemini => "note",
            Fake::Bedrock => "refused",
            _ => "image",
        },
    })
}

/// The cases the script prints for a provider, in order.
fn expected_lines(f: Fake) -> Vec<String> {
    let mut lines = Vec::new();
    for mode in ["whole", "helper", "raw"] {
        for case in [
            "text",
            "system string",
            "system blocks",
            "multi-turn",
            "image base64",
            "image url",
            "tools Paris",
            "tools Paris+Rome",
            "thinking",
            "rate limit",
        ] {
            lines.push(format!("{}: {case} ({mode}) OK", f.provider()));
        }
    }
    lines.push(format!("{}: count_tokens OK", f.provider()));
    if f == Fake::Anthropic {
        lines.push("anthropic: native body OK".into());
        for mode in ["whole", "helper", "raw"] {
            lines.push(format!("anthropic: overloaded ({mode}) OK"));
        }
    }
    lines
}

#[tokio::test]
async fn anthropic_python_sdk_against_every_provider() {
    let mut upstreams = Vec::new();
    for f in Fake::ALL {
        upstreams.push((f, f.start().await));
    }
    let endpoints: Vec<Value> = upstreams.iter().map(|(f, u)| f.endpoint(endpoint_name(*f), u)).collect();
    let env = bedrock::NO_AMBIENT_AWS;
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": endpoints})), env, &[]).await;
    let keyed = Gateway::start_with(
        &yaml(&json!({"endpoints": [endpoints[0]],
                      "aigw": {"auth": {"keys": [{"name": "sdk", "key": GATEWAY_KEY}]}}})),
        env,
        &[],
    )
    .await;
    let config = json!({"key": GATEWAY_KEY, "providers": Fake::ALL.map(expectations)});
    let stdout = run_sdk(
        "anthropic_messages.py",
        vec![gw.url(""), keyed.url(""), config.to_string()],
        "anthropic SDK against /v1/messages: OK",
        &gw,
    )
    .await;

    let printed: Vec<&str> = stdout.lines().filter(|l| l.ends_with(" OK")).collect();
    let mut expected: Vec<String> = Fake::ALL.iter().flat_map(|f| expected_lines(*f)).collect();
    expected.extend(
        [
            "gateway: unknown model OK",
            "gateway: missing max_tokens OK",
            "gateway: gateway key OK",
            "anthropic SDK against /v1/messages: OK",
        ]
        .map(String::from),
    );
    assert_eq!(printed, expected, "the script's cases");

    for (f, upstream) in &upstreams {
        let requests = upstream.requests();
        match f {
            Fake::OpenAi => check_openai(&requests),
            Fake::Anthropic => check_anthropic(&requests, &stdout),
            Fake::Gemini => check_gemini(&requests),
            Fake::Bedrock => check_bedrock(&requests),
            Fake::Mistral => check_mistral(&requests),
        }
        // Each rate-limited request reached the upstream once (no retry of an answered 429).
        let limited = requests.iter().filter(|r| String::from_utf8_lossy(&r.body).contains("[429]")).count();
        assert_eq!(limited, 3, "{f:?}: one upstream call per rate-limited request");
    }
}

/// The request whose body contains `marker`, the `n`th such (0-based).
fn find<'a>(requests: &'a [Recorded], marker: &str, n: usize) -> &'a Recorded {
    requests
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(marker))
        .nth(n)
        .unwrap_or_else(|| panic!("no request #{n} containing {marker:?}"))
}

/// The tool result of the one-city round trip, and an ASCII part of it that finds its request
/// (the first one holding it is the whole round trip's second request).
const RESULT: &str = "Sunny, 22°C";
const RESULT_MARKER: &str = "Sunny, 22";

fn check_openai(requests: &[Recorded]) {
    for r in requests {
        assert_eq!(r.target, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake::OPENAI_KEY).as_str()));
        let b = r.json();
        assert_eq!(b["model"], json!(Fake::OpenAi.model()));
        if b["stream"] == json!(true) {
            assert_eq!(b["stream_options"], json!({"include_usage": true}), "{b}");
        }
    }
    let b = find(requests, RESULT_MARKER, 0).json();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{b}");
    assert_eq!(messages[0], json!({"role": "user", "content": "What's the weather in Paris?"}));
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(
        (messages[1]["role"].as_str(), messages[1]["content"].as_str()),
        (Some("assistant"), Some("Let me check the weather."))
    );
    assert_eq!(call["id"], json!("call_paris0Fk3rP9a0Qe"));
    assert_eq!(call["type"], json!("function"));
    assert_eq!(call["function"]["name"], json!("get_weather"));
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(messages[2], json!({"role": "tool", "tool_call_id": "call_paris0Fk3rP9a0Qe", "content": RESULT}));
    assert_eq!(b["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
    // Two calls: two tool messages, in order.
    let b = find(requests, "Rainy", 0).json();
    let tail: Vec<&Value> = b["messages"].as_array().unwrap().iter().skip(2).collect();
    assert_eq!(tail[0]["tool_call_id"], json!("call_paris0Fk3rP9a0Qe"));
    assert_eq!(tail[1]["tool_call_id"], json!("call_rome1Fk3rP9a0Qe"));
    // The base64 image as a data URL.
    let b = find(requests, png(), 0).json();
    assert_eq!(b["messages"][0]["content"][0]["image_url"]["url"], json!(format!("data:image/png;base64,{}", png())));
}

fn check_mistral(requests: &[Recorded]) {
    for r in requests {
        assert_eq!(r.target, "/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake::MISTRAL_KEY).as_str()));
        assert_eq!(r.json()["model"], json!(Fake::Mistral.model()));
        assert!(r.json().get("stream_options").is_none(), "no stream_options for Mistral");
    }
    let b = find(requests, RESULT_MARKER, 0).json();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["id"], json!("paris0000"));
    assert_eq!(messages[2], json!({"role": "tool", "tool_call_id": "paris0000", "content": RESULT}));
}

fn check_anthropic(requests: &[Recorded], stdout: &str) {
    // The SDK's API version (not the endpoint's default, 2023-06-01) reaches Anthropic.
    let version = stdout.lines().find_map(|l| l.strip_prefix("ANTHROPIC_VERSION ")).expect("the SDK's version");
    for r in requests {
        assert_eq!(r.header("x-api-key"), Some(fake::ANTHROPIC_KEY), "the endpoint's key, not the client's");
        assert_eq!(r.header("anthropic-version"), Some(version));
        assert_eq!(r.json()["model"], json!(Fake::Anthropic.model()));
    }
    // The client's body with only `model` replaced.
    let sent: Value = serde_json::from_str(
        stdout.lines().find_map(|l| l.strip_prefix("NATIVE_BODY ")).expect("the script printed the native body"),
    )
    .unwrap();
    let mut expected = sent.clone();
    expected["model"] = json!(Fake::Anthropic.model());
    assert_eq!(find(requests, "native body", 0).json(), expected);
    // The tool round trip as the client sent it.
    let b = find(requests, RESULT_MARKER, 0).json();
    assert_eq!(b["messages"][1]["content"][1]["id"], json!("toolu_01paris0XyZ"));
    assert_eq!(
        b["messages"][2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_01paris0XyZ", "content": RESULT}])
    );
    assert_eq!(b["thinking"], Value::Null);
    assert_eq!(
        find(requests, "Think about it", 0).json()["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    let count = requests.iter().filter(|r| r.target == "/v1/messages/count_tokens").count();
    assert_eq!(count, 1, "count_tokens is forwarded");
}

fn check_gemini(requests: &[Recorded]) {
    for r in requests {
        assert_eq!(r.header("x-goog-api-key"), Some(fake::GEMINI_KEY));
        let path = r.target.as_str();
        assert!(
            path == "/v1beta/models/gemini-2.5-flash:generateContent"
                || path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "{path}"
        );
    }
    let b = find(requests, RESULT_MARKER, 0).json();
    let contents = b["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "{b}");
    // The model's text beside its call comes first, then the call.
    let parts = contents[1]["parts"].as_array().unwrap();
    let call = &parts.iter().find(|p| p.get("functionCall").is_some()).unwrap()["functionCall"];
    assert_eq!((call["name"].as_str(), &call["args"]), (Some("get_weather"), &json!({"city": "Paris"})));
    let response = &contents[2]["parts"][0]["functionResponse"];
    assert_eq!(contents[2]["role"], json!("user"));
    assert_eq!(response["name"], json!("get_weather"));
    assert_eq!(response["response"], json!({"result": RESULT}));
    assert_eq!(response["id"], call["id"], "the response names the call the gateway made up an id for");
    // Two calls: both responses in one user turn.
    let b = find(requests, "Rainy", 0).json();
    assert_eq!(b["contents"][2]["parts"].as_array().unwrap().len(), 2, "{b}");
    assert_eq!(b["tools"][0]["functionDeclarations"][0]["name"], json!("get_weather"));
    // The system prompt as system_instruction, the image inline.
    let b = find(requests, "Answer in English.", 0).json();
    assert_eq!(b["system_instruction"], json!({"parts": [{"text": "Be brief.\nAnswer in English."}]}));
    let b = find(requests, png(), 0).json();
    assert_eq!(b["contents"][0]["parts"][0], json!({"inlineData": {"mimeType": "image/png", "data": png()}}));
}

fn check_bedrock(requests: &[Recorded]) {
    for r in requests {
        bedrock::verify_sigv4(r, bedrock::SECRET, "us-east-1", "bedrock");
        let model = bedrock::encode_segment(Fake::Bedrock.model());
        assert!(
            r.target == format!("/model/{model}/converse") || r.target == format!("/model/{model}/converse-stream"),
            "{}",
            r.target
        );
    }
    let b = find(requests, RESULT_MARKER, 0).json();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(
        messages[1]["content"][1],
        json!({"toolUse": {"toolUseId": "tooluse_paris0_AbC", "name": "get_weather", "input": {"city": "Paris"}}})
    );
    assert_eq!(
        messages[2]["content"],
        json!([{"toolResult": {"toolUseId": "tooluse_paris0_AbC", "content": [{"text": RESULT}]}}])
    );
    assert_eq!(b["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"], json!(["city"]));
    let b = find(requests, png(), 0);
    let b = b.json();
    assert_eq!(b["messages"][0]["content"][0], json!({"image": {"format": "png", "source": {"bytes": png()}}}));
    // A URL image is refused before any call.
    assert!(!requests.iter().any(|r| String::from_utf8_lossy(&r.body).contains("example.com/cat.png")));
}

fn png() -> &'static str {
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
}
