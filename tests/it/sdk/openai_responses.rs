//! The official OpenAI Python SDK against `/v1/responses`, with one endpoint per provider, each
//! played by a fake upstream (`common::fake`): the `openai` endpoint goes to OpenAI's own
//! Responses API (the fake answers it natively), the others are translated through the unified
//! schema — `groq` being OpenAI's chat completions through an OpenAI-compatible provider. Text,
//! instructions, multi-turn items, images, function-call round trips, `text.format`,
//! `reasoning.effort`, native-only fields, errors, each whole, through `responses.stream` and as
//! raw events (`openai_responses.py` says how). Then what each fake received, in its own wire
//! format. Also the OpenAI Agents SDK: a tool-calling agent on the native and the Anthropic
//! endpoints (`openai_agents.py`).

use serde_json::{Value, json};

use super::run_sdk;
use crate::common::fake::{self, Fake, USAGE};
use crate::common::upstream::{MockUpstream, Recorded};
use crate::common::{Gateway, bedrock, yaml};

/// The endpoints, by the name the script prints: the fake playing each, and the translated
/// endpoint on OpenAI's chat completions (`groq`, an OpenAI-compatible provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `openai`: OpenAI's own Responses API, native.
    Native,
    /// `groq`: OpenAI's chat completions, translated.
    Chat,
    /// A translated provider.
    Translated(Fake),
}

const TARGETS: [Target; 6] = [
    Target::Native,
    Target::Chat,
    Target::Translated(Fake::Anthropic),
    Target::Translated(Fake::Gemini),
    Target::Translated(Fake::Bedrock),
    Target::Translated(Fake::Mistral),
];

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Native => "openai",
            Target::Chat => "groq",
            Target::Translated(f) => f.provider(),
        }
    }

    fn fake(self) -> Fake {
        match self {
            Target::Native | Target::Chat => Fake::OpenAi,
            Target::Translated(f) => f,
        }
    }

    fn endpoint(self, upstream: &MockUpstream) -> Value {
        match self {
            Target::Chat => fake::openai_compatible_endpoint("groq", "groq", upstream),
            _ => self.fake().endpoint(self.name(), upstream),
        }
    }
}

/// The gateway key of the second gateway.
const GATEWAY_KEY: &str = "sk-aigw-sdk-test-0123456789";

/// `[input_tokens, cached_tokens, output_tokens, total_tokens]` as the fakes report them.
const FULL_USAGE: [u64; 4] = [USAGE.input + USAGE.cache_read, USAGE.cache_read, USAGE.output, 34];

/// What the script expects of each endpoint, from what the gateway does today. When a
/// provider's translation changes, the line to change is here.
fn expectations(t: Target) -> Value {
    let f = t.fake();
    let (usage, stream_usage) = match t {
        // Mistral has no cache reads.
        Target::Translated(Fake::Mistral) => {
            let u = json!([USAGE.input, 0, USAGE.output, USAGE.input + USAGE.output]);
            (u.clone(), u)
        }
        _ => (json!(FULL_USAGE), json!(FULL_USAGE)),
    };
    json!({
        "name": t.name(),
        "model": t.name(),
        "upstream_model": f.model(),
        "native": t == Target::Native,
        "usage": usage,
        "stream_usage": stream_usage,
        "image_url": match f {
            Fake::Gemini => "note",
            Fake::Bedrock => "refused",
            _ => "image",
        },
        // `openai` takes the native path; every translated provider here sends the effort in
        // its own field (docs/client-apis.md, "Extensions per provider"), checked below.
        "reasoning": if t == Target::Native { "native" } else { "translated" },
        // Every translation sends the schema (Converse: outputConfig.textFormat).
        "json_schema": "json",
        // A native stream broken off upstream ends with the `error` event alone; a translated
        // one with `response.failed`, then `error`.
        "cut": if t == Target::Native { "error" } else { "failed" },
    })
}

/// The cases the script prints for an endpoint, in order.
fn expected_lines(t: Target) -> Vec<String> {
    let mut lines = Vec::new();
    for mode in ["whole", "helper", "raw"] {
        let mut cases = vec![
            "text",
            "instructions",
            "multi-turn",
            "image base64",
            "image url",
            "tools Paris",
            "tools Paris+Rome",
            "json_schema",
            "reasoning.effort",
            "previous_response_id",
            "web_search",
            "rate limit",
        ];
        if mode != "whole" {
            cases.push("mid-stream failure");
        }
        lines.extend(cases.into_iter().map(|case| format!("{}: {case} ({mode}) OK", t.name())));
    }
    if t == Target::Native {
        lines.push("openai: native body OK".into());
        lines.push("openai: unknown field OK".into());
    }
    lines
}

#[tokio::test]
async fn openai_python_sdk_responses_against_every_provider() {
    let mut upstreams = Vec::new();
    for t in TARGETS {
        upstreams.push((t, t.fake().start().await));
    }
    let endpoints: Vec<Value> = upstreams.iter().map(|(t, u)| t.endpoint(u)).collect();
    let env = bedrock::NO_AMBIENT_AWS;
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": endpoints})), env, &[]).await;
    let keyed = Gateway::start_with(
        &yaml(&json!({"endpoints": [endpoints[0]],
                      "aigw": {"auth": {"keys": [{"name": "sdk", "key": GATEWAY_KEY}]}}})),
        env,
        &[],
    )
    .await;
    let config = json!({"key": GATEWAY_KEY, "providers": TARGETS.map(expectations)});
    let stdout = run_sdk(
        "openai_responses.py",
        vec![gw.url(""), keyed.url(""), config.to_string()],
        "openai SDK against /v1/responses: OK",
        &gw,
    )
    .await;

    let printed: Vec<&str> = stdout.lines().filter(|l| l.ends_with(" OK")).collect();
    let mut expected: Vec<String> = TARGETS.iter().flat_map(|t| expected_lines(*t)).collect();
    expected.extend(
        ["gateway: unknown model OK", "gateway: gateway key OK", "openai SDK against /v1/responses: OK"]
            .map(String::from),
    );
    assert_eq!(printed, expected, "the script's cases");

    for (t, upstream) in &upstreams {
        let requests = upstream.requests();
        match t {
            Target::Native => check_native(&requests, &stdout),
            Target::Chat => check_chat(&requests),
            Target::Translated(Fake::Anthropic) => check_anthropic(&requests),
            Target::Translated(Fake::Gemini) => check_gemini(&requests),
            Target::Translated(Fake::Bedrock) => check_bedrock(&requests),
            Target::Translated(_) => check_mistral(&requests),
        }
        // `reasoning.effort` reached a translated provider in its own field.
        if *t != Target::Native {
            let b = find(&requests, "Think about it", 0).json();
            let effort = match t {
                Target::Translated(Fake::Anthropic) => b["thinking"]["type"].clone(),
                Target::Translated(Fake::Gemini) => json!(b["generationConfig"]["thinkingConfig"].is_object()),
                Target::Translated(Fake::Bedrock) => b["additionalModelRequestFields"]["thinking"]["type"].clone(),
                _ => b["reasoning_effort"].clone(),
            };
            let expected = match t {
                Target::Translated(Fake::Anthropic | Fake::Bedrock) => json!("enabled"),
                Target::Translated(Fake::Gemini) => json!(true),
                _ => json!("low"),
            };
            assert_eq!(effort, expected, "{t:?}: reasoning.effort upstream: {b}");
        }
        // Each rate-limited request reached the upstream once (no retry of an answered 429).
        let limited = requests.iter().filter(|r| String::from_utf8_lossy(&r.body).contains("[429]")).count();
        assert_eq!(limited, 3, "{t:?}: one upstream call per rate-limited request");
        // Refused requests never reached it.
        let body_has = |s: &str| requests.iter().any(|r| String::from_utf8_lossy(&r.body).contains(s));
        if *t != Target::Native {
            for refused in ["Go on", "Search the news"] {
                assert!(!body_has(refused), "{t:?}: a refused request ({refused}) reached the upstream");
            }
        }
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

/// The JSON schema the script asks for.
fn schema() -> Value {
    json!({"type": "object", "properties": {"said": {"type": "string"}}, "required": ["said"],
           "additionalProperties": false})
}

fn check_native(requests: &[Recorded], stdout: &str) {
    for r in requests {
        assert_eq!(r.target, "/v1/responses");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", fake::OPENAI_KEY).as_str()));
        assert_eq!(r.json()["model"], json!(Fake::OpenAi.model()));
    }
    // The client's body with only `model` replaced.
    let sent: Value = serde_json::from_str(
        stdout.lines().find_map(|l| l.strip_prefix("NATIVE_BODY ")).expect("the script printed the native body"),
    )
    .unwrap();
    let mut expected = sent.clone();
    expected["model"] = json!(Fake::OpenAi.model());
    assert_eq!(find(requests, "native body", 0).json(), expected);
    // The round trip's items as the client sent them: the answer's items, then the output.
    let b = find(requests, RESULT_MARKER, 0).json();
    let input = b["input"].as_array().unwrap();
    assert_eq!(input.len(), 4, "{b}");
    assert_eq!((input[1]["type"].as_str(), input[2]["type"].as_str()), (Some("message"), Some("function_call")));
    assert_eq!(input[2]["call_id"], json!("call_paris0Fk3rP9a0Qe"));
    assert_eq!(input[3], json!({"type": "function_call_output", "call_id": "call_paris0Fk3rP9a0Qe", "output": RESULT}));
    // What only OpenAI serves reached it.
    assert_eq!(find(requests, "Go on", 0).json()["previous_response_id"], json!("resp_prev123"));
    assert_eq!(find(requests, "Search the news", 0).json()["tools"], json!([{"type": "web_search"}]));
    assert_eq!(find(requests, "Think about it", 0).json()["reasoning"], json!({"effort": "low", "summary": "auto"}));
}

/// OpenAI's chat completions behind an OpenAI-compatible provider.
fn check_chat(requests: &[Recorded]) {
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
    assert_eq!(
        (messages[1]["role"].as_str(), messages[1]["content"].as_str()),
        (Some("assistant"), Some("Let me check the weather."))
    );
    let call = &messages[1]["tool_calls"][0];
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
    // instructions and the developer message as system messages, in order.
    let b = find(requests, "Answer in English.", 0).json();
    let m = b["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(m[1], json!({"role": "system", "content": "Answer in English."}));
    // The images as image_url parts, the schema as response_format.
    let b = find(requests, png(), 0).json();
    assert_eq!(b["messages"][0]["content"][0]["image_url"]["url"], json!(format!("data:image/png;base64,{}", png())));
    let b = find(requests, "example.com/cat.png", 0).json();
    assert_eq!(b["messages"][0]["content"][0]["image_url"]["url"], json!("https://example.com/cat.png"));
    let b = find(requests, "json_schema", 0).json();
    assert_eq!(
        b["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "echo", "schema": schema(), "strict": true}})
    );
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
    let b = find(requests, "json_schema", 0).json();
    assert_eq!(b["response_format"]["json_schema"]["schema"], schema());
}

fn check_anthropic(requests: &[Recorded]) {
    for r in requests {
        assert_eq!(r.target, "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some(fake::ANTHROPIC_KEY));
        assert_eq!(r.json()["model"], json!(Fake::Anthropic.model()));
    }
    let b = find(requests, RESULT_MARKER, 0).json();
    let messages = b["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{b}");
    let call = messages[1]["content"].as_array().unwrap().iter().find(|c| c["type"] == "tool_use").unwrap();
    assert_eq!(call["id"], json!("toolu_01paris0XyZ"));
    assert_eq!(call["input"], json!({"city": "Paris"}));
    assert_eq!(
        messages[2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_01paris0XyZ", "content": RESULT}])
    );
    // Two calls: one user message per result, which Anthropic combines into one turn.
    let b = find(requests, "Rainy", 0).json();
    let results: Vec<&Value> =
        b["messages"].as_array().unwrap()[2..].iter().map(|m| &m["content"][0]["tool_use_id"]).collect();
    assert_eq!(results, [&json!("toolu_01paris0XyZ"), &json!("toolu_01rome1XyZ")], "{b}");
    let b = find(requests, "Answer in English.", 0).json();
    assert_eq!(b["system"], json!("Be brief.\nAnswer in English."), "{b}");
    let b = find(requests, png(), 0).json();
    assert_eq!(
        b["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}})
    );
    let b = find(requests, "example.com/cat.png", 0).json();
    assert_eq!(
        b["messages"][0]["content"][0],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}})
    );
    // The schema as output_config.format (already closed with additionalProperties: false).
    let b = find(requests, "said", 0).json();
    assert_eq!(b["output_config"], json!({"format": {"type": "json_schema", "schema": schema()}}));
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
    let parts = contents[1]["parts"].as_array().unwrap();
    assert_eq!(parts.first(), Some(&json!({"text": "Let me check the weather."})), "{b}");
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
    let b = find(requests, "Answer in English.", 0).json();
    assert_eq!(b["system_instruction"], json!({"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]}));
    let b = find(requests, png(), 0).json();
    assert_eq!(b["contents"][0]["parts"][0], json!({"inlineData": {"mimeType": "image/png", "data": png()}}));
    // The schema as responseJsonSchema, JSON asked for.
    let b = find(requests, "said", 0).json();
    assert_eq!(b["generationConfig"]["responseJsonSchema"], schema());
    assert_eq!(b["generationConfig"]["responseMimeType"], json!("application/json"));
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
    let b = find(requests, "Answer in English.", 0).json();
    assert_eq!(b["system"], json!([{"text": "Be brief."}, {"text": "Answer in English."}]));
    let b = find(requests, png(), 0).json();
    assert_eq!(b["messages"][0]["content"][0], json!({"image": {"format": "png", "source": {"bytes": png()}}}));
    // A URL image is refused before any call.
    assert!(!requests.iter().any(|r| String::from_utf8_lossy(&r.body).contains("example.com/cat.png")));
    // The schema reached Converse as structured output.
    let b = find(requests, "json_schema", 0).json();
    assert_eq!(b["outputConfig"]["textFormat"]["type"], json!("json_schema"), "{b}");
}

fn png() -> &'static str {
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
}

/// The OpenAI Agents SDK (`openai_agents.py`): an agent with a function tool, run and streamed
/// through `/v1/responses` on OpenAI's own Responses API (native) and on Anthropic (translated);
/// the agent calls the tool and its final output quotes the result. Then what each fake got.
#[tokio::test]
async fn openai_agents_sdk_runs_a_tool_agent() {
    let native = Fake::OpenAi.start().await;
    let anthropic = Fake::Anthropic.start().await;
    let endpoints = [Target::Native.endpoint(&native), Target::Translated(Fake::Anthropic).endpoint(&anthropic)];
    let gw = Gateway::start_with(&yaml(&json!({"endpoints": endpoints})), bedrock::NO_AMBIENT_AWS, &[]).await;
    let stdout = run_sdk(
        "openai_agents.py",
        vec![gw.url(""), json!(["openai", "anthropic"]).to_string()],
        "openai-agents against /v1/responses: OK",
        &gw,
    )
    .await;
    let printed: Vec<&str> = stdout.lines().filter(|l| l.ends_with(" OK")).collect();
    assert_eq!(
        printed,
        [
            "openai: agent (run) OK",
            "openai: agent (streamed) OK",
            "anthropic: agent (run) OK",
            "anthropic: agent (streamed) OK",
            "openai-agents against /v1/responses: OK"
        ]
    );

    let instructions = "Answer questions about the weather with the get_weather tool.";
    // OpenAI got the agent's requests as sent: its tool (strict, as the SDK makes it), its
    // instructions, and the whole conversation each turn.
    let requests = native.requests();
    assert_eq!(requests.len(), 4, "two turns per run");
    for r in &requests {
        assert_eq!(r.target, "/v1/responses");
        let b = r.json();
        assert_eq!(b["instructions"], json!(instructions));
        assert_eq!(b["tools"][0]["name"], json!("get_weather"));
        assert_eq!(b["tools"][0]["strict"], json!(true));
    }
    let second = requests[1].json();
    let output = second["input"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(
        (output["type"].as_str(), output["call_id"].as_str(), output["output"].as_str()),
        (Some("function_call_output"), Some("call_paris0Fk3rP9a0Qe"), Some("Sunny, 22°C in Paris")),
        "{second}"
    );
    // Anthropic got them translated: the instructions as system, the result as a tool_result.
    let requests = anthropic.requests();
    assert_eq!(requests.len(), 4, "two turns per run");
    for r in &requests {
        assert_eq!(r.target, "/v1/messages");
        assert_eq!(r.json()["system"], json!(instructions));
        assert_eq!(r.json()["tools"][0]["name"], json!("get_weather"));
    }
    let second = requests[1].json();
    assert_eq!(
        second["messages"].as_array().unwrap().last().unwrap()["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_01paris0XyZ", "content": "Sunny, 22°C in Paris"}]),
        "{second}"
    );
}
