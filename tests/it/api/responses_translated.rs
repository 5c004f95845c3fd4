//! `/v1/responses` translated through the unified schema for providers that do not speak the
//! Responses API: what must survive a tool round trip.

use serde_json::{Value, json};

use crate::common::fake::{self, Fake};
use crate::common::{Gateway, sse_data, yaml};

fn weather_tool() -> Value {
    json!({"type": "function", "name": "get_weather", "description": "The current weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

/// The `response` object of an answer: the body, or a stream's `response.completed`.
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
