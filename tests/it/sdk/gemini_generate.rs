//! The official Google Gen AI Python SDK (`google-genai` 3.x) against Gemini's routes
//! (`/gateway/gemini/v1beta/models/{endpoint}:…`), with one endpoint per provider, each played
//! by a fake upstream (`common::fake`): Gemini's own (forwarded natively) and OpenAI's and
//! Anthropic's (translated). Text, a function-call round trip and errors, whole and streamed,
//! an error after a stream's first byte, and gateway keys (`gemini_generate.py` says how); then what each fake received.

use std::time::Duration;

use serde_json::{Value, json};

use super::run_sdk;
use crate::common::fake::{self, Fake, USAGE};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};

const GATEWAY_KEY: &str = "sk-aigw-genai-test-0123456789";
const FAKES: [Fake; 3] = [Fake::Gemini, Fake::OpenAi, Fake::Anthropic];

#[tokio::test]
async fn official_google_genai_python_sdk() {
    let mut upstreams = Vec::new();
    let mut endpoints = Vec::new();
    let mut providers = Vec::new();
    for f in FAKES {
        let upstream = f.start().await;
        endpoints.push(f.endpoint(f.provider(), &upstream));
        upstreams.push(upstream);
        // Every fake reports the cache reads within its prompt count (Anthropic's apart, which
        // the unified usage adds back).
        let usage = [USAGE.input + USAGE.cache_read, USAGE.output];
        providers.push(json!({"name": f.provider(), "model": f.model(), "usage": usage}));
    }
    // An OpenAI upstream whose stream stops after its first text, without a finish reason.
    let cut = MockUpstream::start().await;
    cut.handle(|_| {
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                           "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]});
        Reply::sse(vec![format!("data: {chunk}\n\n").into_bytes()], Duration::ZERO)
    });
    let mut all = endpoints.clone();
    all.push(Fake::OpenAi.endpoint("cut", &cut));
    let gw = Gateway::start(&yaml(&json!({"endpoints": all}))).await;
    let keyed_config = json!({"endpoints": [endpoints[1].clone()],
                              "aigw": {"auth": {"keys": [{"name": "sdk", "key": GATEWAY_KEY}]}}});
    let keyed = Gateway::start(&yaml(&keyed_config)).await;
    let config = json!({"key": GATEWAY_KEY, "endpoint": "openai", "cut": "cut", "providers": providers});
    let stdout =
        run_sdk("gemini_generate.py", vec![gw.url(""), keyed.url(""), config.to_string()], "google-genai SDK: OK", &gw)
            .await;
    for f in FAKES {
        for mode in ["whole", "stream"] {
            for case in ["text", "tools round trip", "rate limit"] {
                let line = format!("{}: {case} ({mode}) OK", f.provider());
                assert!(stdout.contains(&line), "missing {line:?}:\n{stdout}");
            }
        }
    }
    assert!(stdout.contains("error mid-stream OK") && stdout.contains("gateway keys OK"), "{stdout}");

    // What the fakes received for the round trip's second turn.
    let second_turn = |upstream: &crate::common::upstream::MockUpstream| -> Value {
        upstream
            .requests()
            .iter()
            .map(|r| r.json())
            .rfind(|b| b.to_string().contains("Sunny in Paris"))
            .expect("the second turn")
    };
    // Gemini: the SDK's own body, the model's content as it came back (its thought signature on
    // the first call), the function responses by name.
    let sent = second_turn(&upstreams[0]);
    let model_turn = &sent["contents"][1];
    assert_eq!(model_turn["role"], json!("model"), "{sent}");
    let parts = model_turn["parts"].as_array().unwrap();
    let call = parts.iter().find(|p| p.get("functionCall").is_some()).expect("a call");
    assert_eq!(call["thoughtSignature"], json!(fake::GEMINI_SIGNATURE), "{sent}");
    assert_eq!(sent["contents"][2]["parts"][0]["functionResponse"]["name"], json!("get_weather"));
    // OpenAI: tool messages answering the calls' ids, in order.
    let sent = second_turn(&upstreams[1]);
    let messages = sent["messages"].as_array().unwrap();
    let ids: Vec<&Value> = messages[1]["tool_calls"].as_array().unwrap().iter().map(|c| &c["id"]).collect();
    assert_eq!(
        (&messages[2]["tool_call_id"], &messages[3]["tool_call_id"]),
        (ids[0], ids[1]),
        "each response answers its call: {sent}"
    );
    assert_eq!(messages[3]["content"], json!("{\"result\":\"Sunny in Rome\"}"));
}
