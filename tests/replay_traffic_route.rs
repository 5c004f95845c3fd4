//! `traffic-route-chat.json` end to end: the fixture's endpoints and traffic route, each
//! destination on its own mock upstream, the route invoked on every route family. The fixture
//! gives `chat1` 100 % and `chat2` 0 %, so every call must reach `chat1` (with its key and
//! model) and none `chat2`; the answer is the fixture's. Then a split between two providers
//! (openai and groq) checks, call by call, that the answer — its `provider` field included,
//! streams too — comes from the destination that was actually called.

#[path = "it/common/mod.rs"]
mod common;

use common::replay::{default_reply, expected_events, rebase};
use common::upstream::{MockUpstream, Reply};
use common::{Gateway, assert_json_eq, fixture, sse_data, yaml};
use serde_json::{Value, json};

fn point(endpoint: &mut Value, key: &str, mock: &str, default: &str) {
    let config = &mut endpoint["model"]["config"];
    let current = config.get(key).and_then(Value::as_str).unwrap_or(default).to_owned();
    config[key] = json!(rebase(&current, mock));
}

#[tokio::test]
async fn traffic_route_chat_fixture() {
    let fx = fixture("traffic-route-chat.json");
    let (one, two) = (MockUpstream::start().await, MockUpstream::start().await);
    let mut chat1 = fx["endpoint_config"].clone();
    point(&mut chat1, "openai_api_base", &one.url(), "https://api.openai.com/v1");
    let mut chat2 = fx["other_endpoints"][0].clone();
    point(&mut chat2, "openai_api_base", &two.url(), "https://api.openai.com/v1");
    let config = json!({"endpoints": [chat1, chat2], "routes": fx["routes_config"]});
    let gw = Gateway::start(&yaml(&config)).await;
    one.always_json(200, fx["upstream_response"].clone());
    two.always_json(500, json!({"error": {"message": "the 0 % destination was called"}}));

    let route = fx["routes_config"][0]["name"].as_str().unwrap();
    let mut v1_request = fx["client_request"].clone();
    v1_request["model"] = json!(route);
    let calls = [
        (fx["client_path"].as_str().unwrap().to_owned(), fx["client_request"].clone()),
        (format!("/gateway/{route}/invocations"), fx["client_request"].clone()),
        ("/v1/chat/completions".to_owned(), v1_request),
    ];
    let rounds = 10;
    for _ in 0..rounds {
        for (path, request) in &calls {
            let before = one.requests().len();
            let (status, body) = gw.post(path, request).await;
            assert_eq!(status, fx["expected_client_status"].as_u64().unwrap() as u16, "{path}: {body}");
            assert_json_eq(&body, &fx["expected_client_response"], &["created"]);
            assert_eq!(body["provider"], json!("openai"));

            let sent = one.requests();
            assert_eq!(sent.len(), before + 1, "{path}: one call to chat1");
            let req = &sent[before];
            assert_eq!(req.method, fx["expected_upstream_method"].as_str().unwrap());
            assert_eq!(req.target, fx["expected_upstream_path"].as_str().unwrap());
            assert_eq!(req.header("authorization"), Some("Bearer key"), "chat1's key, not chat2's");
            assert_json_eq(&req.json(), &fx["expected_upstream_payload"], &[]);
        }
    }
    assert_eq!(one.requests().len(), rounds * calls.len());
    assert!(two.requests().is_empty(), "a 0 % destination is never called");
    gw.assert_alive().await;
}

fn chat_answer(text: &str, model: &str) -> Value {
    json!({"id": format!("chatcmpl-{model}"), "object": "chat.completion", "created": 1700000000, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

/// A 50/50 split between an `openai` and a `groq` endpoint: each answer's `provider`, model and
/// text are those of the destination whose upstream received the call.
#[tokio::test]
async fn answer_comes_from_the_destination_that_was_called() {
    let fx = fixture("openai-chat-stream.json");
    let (a, b) = (MockUpstream::start().await, MockUpstream::start().await);
    let config = json!({
        "endpoints": [
            {"name": "to-openai", "endpoint_type": "llm/v1/chat",
             "model": {"provider": "openai", "name": "gpt-4o-mini",
                       "config": {"openai_api_key": "key-a", "openai_api_base": a.url()}}},
            {"name": "to-groq", "endpoint_type": "llm/v1/chat",
             "model": {"provider": "groq", "name": "llama-3.1-8b-instant",
                       "config": {"api_key": "key-b", "api_base": b.url()}}}
        ],
        "routes": [{"name": "split", "task_type": "llm/v1/chat", "routing_strategy": "TRAFFIC_SPLIT",
                    "destinations": [{"name": "to-openai", "traffic_percentage": 50},
                                     {"name": "to-groq", "traffic_percentage": 50}]}]
    });
    let gw = Gateway::start(&yaml(&config)).await;
    let destinations =
        [(&a, "openai", "gpt-4o-mini", "Bearer key-a"), (&b, "groq", "llama-3.1-8b-instant", "Bearer key-b")];
    for (mock, _, model, _) in &destinations {
        let (fx, model) = (fx.clone(), model.to_string());
        mock.handle(move |r| {
            if r.json()["stream"] == json!(true) {
                default_reply(&fx, None)
            } else {
                Reply::Json(200, chat_answer(&format!("from {model}"), &model))
            }
        });
    }
    let mut hits = [0usize; 2];
    // 64 calls: both destinations are chosen at least once unless the split is broken (the
    // chance of a fair split missing one is 2^-63).
    for i in 0..64 {
        let stream = i % 4 >= 2; // every combination of stream and route family
        let before = [a.requests().len(), b.requests().len()];
        let v1 = i % 2 == 0;
        let mut request = json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream});
        let path = if v1 {
            request["model"] = json!("split");
            "/v1/chat/completions"
        } else {
            "/endpoints/split/invocations"
        };
        let (status, _, text) = gw.post_text(path, &request).await;
        assert_eq!(status, 200, "{text}");
        let now = [a.requests().len(), b.requests().len()];
        let called: Vec<usize> = (0..2).filter(|&d| now[d] > before[d]).collect();
        assert_eq!(called.len(), 1, "exactly one destination per call: {called:?}");
        let d = called[0];
        assert_eq!(now[d], before[d] + 1);
        hits[d] += 1;
        let (mock, provider, model, auth) = destinations[d];
        let sent = mock.last();
        assert_eq!(sent.header("authorization"), Some(auth));
        assert_eq!(sent.json()["model"], json!(model));
        if stream {
            let mut events = sse_data(&text);
            if v1 {
                assert_eq!(events.pop().as_deref(), Some("[DONE]"));
            }
            assert_eq!(events.len(), expected_events(&fx).len(), "{text}");
            for e in &events {
                let e: Value = serde_json::from_str(e).unwrap();
                assert_eq!(e["provider"], json!(provider), "stream chunk from {model}: {e}");
            }
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["provider"], json!(provider), "{body}");
            assert_eq!(body["model"], json!(model), "{body}");
            assert_eq!(body["choices"][0]["message"]["content"], json!(format!("from {model}")), "{body}");
        }
    }
    assert!(hits[0] > 0 && hits[1] > 0, "both destinations are chosen: {hits:?}");
}
