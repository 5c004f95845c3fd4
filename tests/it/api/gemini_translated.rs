//! Gemini's generateContent (`/gateway/gemini/v1beta/models/{endpoint}:…`) translated through
//! the unified schema for providers that do not speak it (OpenAI, Anthropic, Bedrock, Mistral
//! fakes): text, images, a function-call round trip, JSON schema output, thoughts, streams as
//! server-sent events and as one JSON array (event order, usage), errors in Google's shape, and
//! chat's pipeline (a fallback route, rate limits, metrics) (docs/client-apis.md, "Gemini
//! generateContent").

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::fake::{self, Fake};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};

/// The translated fakes (Gemini's own is `api::gemini_native`).
const TRANSLATED: [Fake; 4] = [Fake::OpenAi, Fake::Anthropic, Fake::Bedrock, Fake::Mistral];

fn path(endpoint: &str, stream: bool) -> String {
    if stream {
        format!("/gateway/gemini/v1beta/models/{endpoint}:streamGenerateContent?alt=sse")
    } else {
        format!("/gateway/gemini/v1beta/models/{endpoint}:generateContent")
    }
}

/// A gateway with one endpoint per fake, named after its provider.
async fn gateway(fakes: &[Fake]) -> (Gateway, Vec<MockUpstream>) {
    let mut upstreams = Vec::new();
    let mut endpoints = Vec::new();
    for f in fakes {
        let upstream = f.start().await;
        endpoints.push(f.endpoint(f.provider(), &upstream));
        upstreams.push(upstream);
    }
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": endpoints})),
        &[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret"), ("AWS_REGION", "us-east-1")],
        &[],
    )
    .await;
    (gw, upstreams)
}

/// The events of a Gemini SSE body (`data: {json}\r\n\r\n` each).
fn sse_events(text: &str) -> Vec<Value> {
    text.split("\r\n\r\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data line: {e:?}"));
            serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}"))
        })
        .collect()
}

/// A whole answer: status and body.
async fn generate(gw: &Gateway, endpoint: &str, body: &Value) -> (u16, Value) {
    gw.post(&path(endpoint, false), body).await
}

/// A streamed answer (`alt=sse`): its events.
async fn stream(gw: &Gateway, endpoint: &str, body: &Value) -> Vec<Value> {
    let (status, ct, text) = gw.post_text(&path(endpoint, true), body).await;
    assert_eq!((status, ct.as_str()), (200, "text/event-stream; charset=utf-8"), "{text}");
    sse_events(&text)
}

/// The parts of candidate 0 of every event, concatenated; texts of adjacent text parts joined.
fn parts_of(events: &[Value]) -> Vec<Value> {
    let mut parts: Vec<Value> = Vec::new();
    for e in events {
        for p in e["candidates"][0]["content"]["parts"].as_array().into_iter().flatten() {
            match (parts.last_mut(), p.get("text")) {
                (Some(last), Some(Value::String(t)))
                    if last.get("text").is_some() && last.get("thought") == p.get("thought") =>
                {
                    let joined = format!("{}{t}", last["text"].as_str().unwrap());
                    last["text"] = json!(joined);
                }
                _ => parts.push(p.clone()),
            }
        }
    }
    parts
}

fn weather_tool() -> Value {
    json!([{"functionDeclarations": [{"name": "get_weather", "description": "The current weather of a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}])
}

fn user(text: &str) -> Value {
    json!({"role": "user", "parts": [{"text": text}]})
}

#[tokio::test]
async fn text_system_instruction_and_usage_on_every_provider() {
    let (gw, upstreams) = gateway(&TRANSLATED).await;
    let body = json!({"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [user("Hello there")],
                      "generationConfig": {"temperature": 0.4, "maxOutputTokens": 64}});
    for (f, upstream) in TRANSLATED.iter().zip(&upstreams) {
        let (status, answer) = generate(&gw, f.provider(), &body).await;
        assert_eq!(status, 200, "{f:?}: {answer}");
        let candidate = &answer["candidates"][0];
        assert_eq!(
            candidate["content"],
            json!({"parts": [{"text": "You said: Hello there [system: Be brief.] [messages: 1]"}], "role": "model"}),
            "{f:?}"
        );
        assert_eq!((&candidate["finishReason"], &candidate["index"]), (&json!("STOP"), &json!(0)), "{f:?}");
        assert_eq!(answer["modelVersion"], json!(f.model()), "{f:?}: the endpoint's model");
        assert!(answer["responseId"].as_str().is_some_and(|id| !id.is_empty()), "{f:?}: {answer}");
        let usage = &answer["usageMetadata"];
        let prompt = usage["promptTokenCount"].as_u64().unwrap();
        assert_eq!(usage["candidatesTokenCount"], json!(fake::USAGE.output), "{f:?}: {usage}");
        // (Bedrock's total counts its cache reads, which its input count leaves out.)
        assert!(usage["totalTokenCount"].as_u64() >= Some(prompt + fake::USAGE.output), "{f:?}: {usage}");
        // The sampling parameters reached the provider in its own format.
        let sent = upstream.last().json();
        let max = match f {
            Fake::Bedrock => &sent["inferenceConfig"]["maxTokens"],
            _ => &sent["max_tokens"],
        };
        assert_eq!(max, &json!(64), "{f:?}: {sent}");
    }
    // OpenAI reports its cache reads: Gemini's cachedContentTokenCount.
    let (_, answer) = generate(&gw, "openai", &body).await;
    assert_eq!(answer["usageMetadata"]["cachedContentTokenCount"], json!(fake::USAGE.cache_read));
    assert_eq!(answer["usageMetadata"]["promptTokenCount"], json!(fake::USAGE.input + fake::USAGE.cache_read));
}

#[tokio::test]
async fn an_inline_image_reaches_the_provider() {
    let (gw, upstreams) = gateway(&[Fake::OpenAi, Fake::Anthropic]).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]}]});
    for (f, upstream) in [Fake::OpenAi, Fake::Anthropic].iter().zip(&upstreams) {
        let (status, answer) = generate(&gw, f.provider(), &body).await;
        assert_eq!(status, 200, "{answer}");
        let text = answer["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap();
        assert!(text.contains("[images: 1]"), "{f:?}: {text}");
        let sent = upstream.last().json();
        let image = match f {
            Fake::OpenAi => sent["messages"][0]["content"][1]["image_url"]["url"].clone(),
            _ => sent["messages"][0]["content"][1]["source"]["data"].clone(),
        };
        let expected = if *f == Fake::OpenAi { "data:image/png;base64,iVBORw0KGgo=" } else { "iVBORw0KGgo=" };
        assert_eq!(image, json!(expected), "{f:?}: {sent}");
    }
}

/// The model calls `get_weather` twice; the client sends the calls and their responses back as
/// Gemini's SDKs do (the model's content as it came, then one `functionResponse` per call).
async fn round_trip(gw: &Gateway, f: Fake, streamed: bool) -> (Value, Value) {
    let first = json!({"contents": [user("What's the weather in Paris and Rome?")], "tools": weather_tool()});
    let parts = if streamed {
        parts_of(&stream(gw, f.provider(), &first).await)
    } else {
        let (status, answer) = generate(gw, f.provider(), &first).await;
        assert_eq!(status, 200, "{f:?}: {answer}");
        answer["candidates"][0]["content"]["parts"].as_array().unwrap().clone()
    };
    let calls: Vec<&Value> = parts.iter().filter_map(|p| p.get("functionCall")).collect();
    assert_eq!(calls.len(), 2, "{f:?}: {parts:?}");
    assert_eq!(
        (calls[0]["name"].as_str(), &calls[0]["args"], &calls[1]["args"]),
        (Some("get_weather"), &json!({"city": "Paris"}), &json!({"city": "Rome"})),
        "{f:?}"
    );
    assert!(parts[0]["text"].as_str().is_some_and(|t| t.contains("check the weather")), "{f:?}: {parts:?}");
    let responses: Vec<Value> = calls
        .iter()
        .map(|c| json!({"functionResponse": {"id": c["id"], "name": c["name"],
                                              "response": {"result": format!("Sunny in {}", c["args"]["city"].as_str().unwrap())}}}))
        .collect();
    let second = json!({"contents": [user("What's the weather in Paris and Rome?"),
                                     {"role": "model", "parts": parts},
                                     {"role": "user", "parts": responses}],
                        "tools": weather_tool()});
    let (status, answer) = generate(gw, f.provider(), &second).await;
    assert_eq!(status, 200, "{f:?}: {answer}");
    (answer, calls[0].clone())
}

#[tokio::test]
async fn a_function_call_round_trip_whole_and_streamed() {
    let (gw, upstreams) = gateway(&TRANSLATED).await;
    for (f, upstream) in TRANSLATED.iter().zip(&upstreams) {
        for streamed in [false, true] {
            let (answer, call) = round_trip(&gw, *f, streamed).await;
            let text = answer["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap();
            assert!(text.starts_with("The weather tool says:"), "{f:?} {streamed}: {answer}");
            // (The fakes quote the tool results of the last message: for Anthropic the last
            // response's.)
            assert!(text.contains("Sunny in Rome"), "{f:?}: {text}");
            // The provider got its own tool-result format, answering the calls' ids.
            let sent = upstream.last().json();
            let id = call["id"].as_str().unwrap();
            let answered = match f {
                Fake::OpenAi | Fake::Mistral => sent["messages"][2]["tool_call_id"].as_str().map(str::to_owned),
                Fake::Anthropic => sent["messages"][2]["content"][0]["tool_use_id"].as_str().map(str::to_owned),
                _ => sent["messages"][2]["content"][0]["toolResult"]["toolUseId"].as_str().map(str::to_owned),
            };
            assert_eq!(answered.as_deref(), Some(id), "{f:?} {streamed}: {sent}");
        }
    }
}

#[tokio::test]
async fn function_calling_modes_and_declarations_reach_openai() {
    let (gw, upstreams) = gateway(&[Fake::OpenAi]).await;
    let tools = json!([{"functionDeclarations": [
        {"name": "get_weather", "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}},
        {"name": "get_time"}]}]);
    let config = json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}});
    let (status, _) =
        generate(&gw, "openai", &json!({"contents": [user("Hi")], "tools": tools, "toolConfig": config})).await;
    assert_eq!(status, 200);
    let sent = upstreams[0].last().json();
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}}]),
        "only the allowed declaration, its JSON schema whole"
    );
    assert_eq!(sent["tool_choice"], json!({"type": "function", "function": {"name": "get_weather"}}));
    let config = json!({"functionCallingConfig": {"mode": "NONE"}});
    generate(&gw, "openai", &json!({"contents": [user("Hi")], "tools": tools, "toolConfig": config})).await;
    assert_eq!(upstreams[0].last().json()["tool_choice"], json!("none"));
}

#[tokio::test]
async fn a_response_schema_becomes_json_schema_output() {
    let (gw, upstreams) = gateway(&[Fake::OpenAi]).await;
    let config = json!({"responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER", "nullable": true}},
                           "required": ["name"], "propertyOrdering": ["name", "age"]}});
    let (status, answer) =
        generate(&gw, "openai", &json!({"contents": [user("Who?")], "generationConfig": config})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        upstreams[0].last().json()["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}}, "required": ["name"]}}})
    );
    let config = json!({"responseMimeType": "application/json", "responseJsonSchema": {"type": "object", "properties": {"x": {"type": "number"}}}});
    generate(&gw, "openai", &json!({"contents": [user("x?")], "generationConfig": config})).await;
    assert_eq!(
        upstreams[0].last().json()["response_format"]["json_schema"]["schema"],
        json!({"type": "object", "properties": {"x": {"type": "number"}}}),
        "a JSON schema goes whole"
    );
}

#[tokio::test]
async fn thoughts_from_claude_are_thought_parts_when_asked() {
    let (gw, upstreams) = gateway(&[Fake::Anthropic]).await;
    let config = json!({"maxOutputTokens": 4096, "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}});
    let body = json!({"contents": [user("Think")], "generationConfig": config});
    let (status, answer) = generate(&gw, "anthropic", &body).await;
    assert_eq!(status, 200, "{answer}");
    let parts = answer["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["thought"], json!(true), "{answer}");
    assert!(parts[0]["text"].as_str().unwrap().contains("A short answer will do"), "{answer}");
    assert_eq!(parts[1]["text"], json!("You said: Think [messages: 1]"));
    assert_eq!(upstreams[0].last().json()["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    let events = stream(&gw, "anthropic", &body).await;
    let parts = parts_of(&events);
    assert_eq!(
        (&parts[0]["thought"], &parts[1]["text"]),
        (&json!(true), &json!("You said: Think [messages: 1]")),
        "{events:?}"
    );
    // OpenAI cannot think on request: a clear 400 naming the field, nothing sent.
    let (gw, upstreams) = gateway(&[Fake::OpenAi]).await;
    let (status, error) = generate(&gw, "openai", &body).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["status"], json!("INVALID_ARGUMENT"));
    assert!(error["error"]["message"].as_str().unwrap().contains("thinkingConfig"), "{error}");
    assert!(upstreams[0].requests().is_empty());
}

#[tokio::test]
async fn streams_send_text_as_it_comes_then_calls_finish_and_usage() {
    let (gw, _upstreams) = gateway(&TRANSLATED).await;
    let body = json!({"contents": [user("What's the weather in Paris?")], "tools": weather_tool()});
    for f in TRANSLATED {
        let events = stream(&gw, f.provider(), &body).await;
        assert!(events.len() >= 3, "{f:?}: {events:?}");
        let (last, texts) = events.split_last().unwrap();
        for e in texts {
            let parts = e["candidates"][0]["content"]["parts"].as_array().unwrap();
            assert!(parts.iter().all(|p| p.get("text").is_some()), "{f:?}: text first: {e}");
            assert!(e["candidates"][0].get("finishReason").is_none() && e.get("usageMetadata").is_none(), "{f:?}: {e}");
            assert_eq!(e["modelVersion"], json!(f.model()));
        }
        let text: String = parts_of(texts).iter().filter_map(|p| p["text"].as_str()).collect();
        assert_eq!(text, "Let me check the weather.", "{f:?}");
        let candidate = &last["candidates"][0];
        assert_eq!(candidate["content"]["parts"][0]["functionCall"]["args"], json!({"city": "Paris"}), "{f:?}: {last}");
        assert_eq!(candidate["finishReason"], json!("STOP"), "{f:?}");
        assert_eq!(last["usageMetadata"]["candidatesTokenCount"], json!(fake::USAGE.output), "{f:?}: {last}");
    }
    // Without alt=sse: the same answer as one JSON array.
    let r = gw
        .client
        .post(gw.url("/gateway/gemini/v1beta/models/openai:streamGenerateContent"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json; charset=utf-8");
    let array: Value = r.json().await.unwrap();
    let events = array.as_array().unwrap();
    assert_eq!(events.last().unwrap()["candidates"][0]["finishReason"], json!("STOP"), "{array}");
    assert_eq!(parts_of(events)[0]["text"], json!("Let me check the weather."));
}

#[tokio::test]
async fn provider_errors_and_refusals_are_googles_shape() {
    let (gw, upstreams) = gateway(&[Fake::OpenAi, Fake::Anthropic]).await;
    for f in ["openai", "anthropic"] {
        let (status, error) = generate(&gw, f, &json!({"contents": [user("please [429]")]})).await;
        assert_eq!(status, 429, "{error}");
        assert_eq!((&error["error"]["code"], &error["error"]["status"]), (&json!(429), &json!("RESOURCE_EXHAUSTED")));
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    }
    let before: usize = upstreams.iter().map(|u| u.requests().len()).sum();
    let cases = [
        (
            json!({"contents": [user("Hi")], "generationConfig": {"candidateCount": 2}}),
            "generationConfig.candidateCount",
        ),
        (json!({"contents": [user("Hi")], "tools": [{"googleSearch": {}}]}), "tools.googleSearch"),
        (json!({"contents": [user("Hi")], "cachedContent": "cachedContents/x"}), "cachedContent"),
        (json!({"contents": [user("Hi")], "bogus": true}), "bogus"),
        (json!({"contents": [{"role": "user", "parts": [{"text": 5}]}]}), "contents[0].parts[0].text"),
        (json!({"contents": []}), "contents"),
    ];
    for (body, named) in cases {
        let (status, error) = generate(&gw, "openai", &body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(
            (&error["error"]["code"], &error["error"]["status"]),
            (&json!(400), &json!("INVALID_ARGUMENT")),
            "{error}"
        );
        assert!(error["error"]["message"].as_str().unwrap().contains(named), "{body}: {error}");
    }
    let (status, _, error) = gw.post_raw(&path("openai", false), b"{not json".to_vec()).await;
    assert_eq!((status, &error["error"]["status"]), (400, &json!("INVALID_ARGUMENT")), "{error}");
    let after: usize = upstreams.iter().map(|u| u.requests().len()).sum();
    assert_eq!(before, after, "nothing refused reached a provider");
    let (status, error) = generate(&gw, "nope", &json!({"contents": [user("Hi")]})).await;
    assert_eq!((status, &error["error"]["status"]), (404, &json!("NOT_FOUND")), "{error}");
    let r = gw.client.get(gw.url(&path("openai", false))).send().await.unwrap();
    assert_eq!(r.status(), 405);
    gw.assert_alive().await;
}

#[tokio::test]
async fn an_error_after_the_first_byte_is_the_streams_last_element() {
    let upstream = MockUpstream::start().await;
    let chunk = |delta: Value| {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
        format!("data: {c}\n\n").into_bytes()
    };
    // Text, then the stream stops without a finish reason or [DONE].
    let pieces = vec![chunk(json!({"role": "assistant", "content": "Hel"})), chunk(json!({"content": "lo"}))];
    upstream.push(Reply::sse(pieces.clone(), Duration::from_millis(1)));
    upstream.push(Reply::sse(pieces, Duration::from_millis(1)));
    let gw = Gateway::start(&yaml(&json!({"endpoints": [Fake::OpenAi.endpoint("openai", &upstream)]}))).await;
    let body = json!({"contents": [user("Hi")]});
    let events = stream(&gw, "openai", &body).await;
    assert_eq!(parts_of(&events[..2]), vec![json!({"text": "Hello"})], "{events:?}");
    let error = &events.last().unwrap()["error"];
    assert_eq!((&error["code"], &error["status"]), (&json!(502), &json!("UNAVAILABLE")), "{events:?}");
    assert_eq!(events.len(), 3, "nothing after the error: {events:?}");
    // As a JSON array: the error is its last element, and the array is closed.
    let (status, _, text) = gw.post_text("/gateway/gemini/v1beta/models/openai:streamGenerateContent", &body).await;
    assert_eq!(status, 200);
    let array: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(array.as_array().unwrap().last().unwrap()["error"]["code"], json!(502), "{text}");
}

/// The Gemini routes go through chat's pipeline: a `FALLBACK` route named in the URL moves from
/// a failing Gemini destination (native) to an OpenAI one (translated), the endpoint's rate limit
/// answers Google's 429, and the metrics count the requests under the `gemini` family.
#[tokio::test]
async fn routes_fallback_limits_and_metrics() {
    let gemini = MockUpstream::start().await;
    gemini.always_json(
        503,
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
    );
    let openai = Fake::OpenAi.start().await;
    let mut limited = Fake::OpenAi.endpoint("limited", &openai);
    limited["limit"] = json!({"calls": 1, "renewal_period": "minute"});
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [Fake::Gemini.endpoint("gemini", &gemini), Fake::OpenAi.endpoint("openai", &openai), limited],
        "routes": [{"name": "ha", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                    "destinations": [{"name": "gemini"}, {"name": "openai"}]}]
    })))
    .await;
    let body = json!({"contents": [user("Hello")]});
    let (status, answer) = generate(&gw, "ha", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["candidates"][0]["content"]["parts"][0]["text"], json!("You said: Hello [messages: 1]"));
    assert_eq!(answer["modelVersion"], json!(Fake::OpenAi.model()), "the destination that answered");
    assert!(!gemini.requests().is_empty(), "the Gemini destination was tried first");
    assert_eq!(gemini.last().json(), body, "natively");

    assert_eq!(generate(&gw, "limited", &body).await.0, 200);
    let r = gw.client.post(gw.url(&path("limited", false))).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let error: Value = r.json().await.unwrap();
    assert_eq!(
        (&error["error"]["code"], &error["error"]["status"]),
        (&json!(429), &json!("RESOURCE_EXHAUSTED")),
        "{error}"
    );

    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("aigw_requests_total{")
            && l.contains("family=\"gemini\"")
            && l.contains("status=\"429\"")),
        "{metrics}"
    );
}

/// Claude wants its signed thinking back with the turn that called tools while thinking: the
/// signature reaches the client as the thought part's `thoughtSignature` (whole, or in a last
/// empty thought part of the stream), and the client's history gives it back to Claude with the
/// whole thought.
#[tokio::test]
async fn claudes_signed_thinking_survives_a_tool_round_trip() {
    let (gw, upstreams) = gateway(&[Fake::Anthropic]).await;
    let config = json!({"maxOutputTokens": 4096, "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}});
    let question = user("What's the weather in Paris?");
    let first = json!({"contents": [question], "tools": weather_tool(), "generationConfig": config});
    for streamed in [false, true] {
        let parts = if streamed {
            stream(&gw, "anthropic", &first)
                .await
                .iter()
                .flat_map(|e| e["candidates"][0]["content"]["parts"].as_array().unwrap().clone())
                .collect()
        } else {
            let (status, answer) = generate(&gw, "anthropic", &first).await;
            assert_eq!(status, 200, "{answer}");
            answer["candidates"][0]["content"]["parts"].as_array().unwrap().clone()
        };
        assert!(parts.iter().any(|p| p["thoughtSignature"] == json!(fake::SIGNATURE)), "{streamed}: {parts:?}");
        let thought: String =
            parts.iter().filter(|p| p["thought"] == json!(true)).filter_map(|p| p["text"].as_str()).collect();
        let call = parts.iter().find_map(|p| p.get("functionCall")).expect("a call").clone();
        let answers = json!({"role": "user", "parts": [{"functionResponse": {"name": call["name"], "response": {"result": "Sunny"}}}]});
        let second = json!({"contents": [question, {"role": "model", "parts": parts}, answers], "tools": weather_tool(),
                            "generationConfig": config});
        let (status, answer) = generate(&gw, "anthropic", &second).await;
        assert_eq!(status, 200, "{answer}");
        let sent = upstreams[0].last().json();
        assert_eq!(
            sent["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": thought, "signature": fake::SIGNATURE}),
            "{streamed}: {sent}"
        );
    }
}
