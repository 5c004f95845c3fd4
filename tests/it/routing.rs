//! Routing (`src/routing.rs`): MLflow's `traffic-route-chat.json` fixture end to end, weighted
//! traffic split (MLflow's `TRAFFIC_SPLIT`), aigw's `FALLBACK` routes and per-endpoint retries,
//! and model defaults applied per destination before the provider's own rules.
//!
//! The fixture's endpoints and traffic route, each destination on its own mock upstream, the
//! route invoked on every client API. The fixture gives `chat1` 100 % and `chat2` 0 %, so
//! every call must reach `chat1` (with its key and model) and none `chat2`; the answer is the
//! fixture's. Then a split between two providers (openai and groq) checks, call by call, that
//! the answer — its `provider` field included, streams too — comes from the destination that
//! was actually called.

use std::time::Duration;

use crate::common;
use crate::common::replay::{default_reply, expected_events, rebase};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, assert_json_eq, fixture, free_port, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow's traffic-route fixture ----

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
        let stream = i % 4 >= 2; // every combination of stream and client API
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
            assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
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

// ---- traffic split, fallback, retries, defaults ----

fn chat_ok(text: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
}

fn openai(name: &str, base: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat",
           "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": "sk-test", "openai_api_base": base}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn traffic_split_80_20_within_five_sigma() {
    let mock = |name: &str, reply: &str| json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": reply}}});
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [mock("a", "A"), mock("b", "B")],
        "routes": [{"name": "split", "task_type": "llm/v1/chat", "routing_strategy": "TRAFFIC_SPLIT",
                    "destinations": [{"name": "a", "traffic_percentage": 80}, {"name": "b", "traffic_percentage": 20}]}]
    })))
    .await;
    let n = 2000;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = common::client();
            let url = gw.url("/v1/chat/completions");
            tokio::spawn(async move {
                let mut a = 0;
                for _ in 0..n / 16 {
                    let v: Value = client
                        .post(&url)
                        .json(&json!({"model": "split", "messages": [{"role": "user", "content": "x"}]}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match v["choices"][0]["message"]["content"].as_str() {
                        Some("A") => a += 1,
                        Some("B") => {}
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
                a
            })
        })
        .collect();
    let mut a = 0;
    for t in tasks {
        a += t.await.unwrap();
    }
    // Binomial(2000, 0.8): mean 1600, sigma = sqrt(2000 * 0.8 * 0.2) ~ 17.9.
    let sigma = (n as f64 * 0.8 * 0.2).sqrt();
    assert!((a as f64 - 1600.0).abs() <= 5.0 * sigma, "{a} of {n} went to the 80 % destination");
}

#[tokio::test]
async fn fallback_on_failures_before_the_first_byte() {
    let primary = MockUpstream::start().await;
    let secondary = MockUpstream::start().await;
    secondary.always_json(200, chat_ok("from secondary"));
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let gw = Gateway::start_with(
        &yaml(&json!({
            "endpoints": [openai("primary", &format!("{}/v1", primary.url())), openai("secondary", &format!("{}/v1", secondary.url())),
                          openai("dead", &dead)],
            "routes": [
                {"name": "ha", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                 "destinations": [{"name": "primary"}, {"name": "secondary"}]},
                {"name": "ha-dead", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                 "destinations": [{"name": "dead"}, {"name": "secondary"}]}
            ]
        })),
        &[("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS", "1")],
        &[],
    )
    .await;

    for failure in [
        Reply::Json(500, json!({"error": {"message": "boom"}})),
        Reply::Json(503, json!({"error": {"message": "overloaded"}})),
        Reply::Json(429, json!({"error": {"message": "slow down"}})),
        Reply::Close,
        Reply::Delay(Duration::from_secs(3), Box::new(Reply::Json(200, chat_ok("too late")))),
    ] {
        primary.push(failure.clone());
        let (status, body) = gw.post("/endpoints/ha/invocations", &ask()).await;
        assert_eq!(status, 200, "{failure:?}: {body}");
        assert_eq!(body["choices"][0]["message"]["content"], "from secondary", "{failure:?}");
    }
    // Unreachable primary.
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "ha-dead", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 200, "{body}");

    // A client error is final: no fallback.
    primary.push(Reply::Json(400, json!({"error": {"message": "bad temperature"}})));
    let before = secondary.requests().len();
    let (status, body) = gw.post("/endpoints/ha/invocations", &ask()).await;
    assert_eq!((status, body), (400, json!({"detail": "bad temperature"})));
    assert_eq!(secondary.requests().len(), before);

    // When every destination fails, the last failure is the answer.
    primary.push(Reply::Json(503, json!({"error": {"message": "primary down"}})));
    secondary.push(Reply::Json(502, json!({"error": {"message": "secondary down"}})));
    let (status, body) = gw.post("/endpoints/ha/invocations", &ask()).await;
    assert_eq!((status, body), (502, json!({"detail": "secondary down"})));

    // The route is visible with its strategy, and listed as a model.
    let (status, body) = gw.get("/api/3.0/gateway/route/ha").await;
    assert_eq!(status, 200);
    assert_eq!(body["routing_strategy"], "FALLBACK");
    let (_, models) = gw.get("/v1/models").await;
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "ha"));
}

#[tokio::test]
async fn streams_fall_back_only_before_the_first_byte() {
    let primary = MockUpstream::start().await;
    let secondary = MockUpstream::start().await;
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [openai("primary", &format!("{}/v1", primary.url())), openai("secondary", &format!("{}/v1", secondary.url()))],
        "routes": [{"name": "ha", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                    "destinations": [{"name": "primary"}, {"name": "secondary"}]}]
    })))
    .await;
    let chunk = |text: &str| {
        format!("data: {{\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n").into_bytes()
    };
    let stream_req = json!({"model": "ha", "stream": true, "messages": [{"role": "user", "content": "x"}]});

    // Fails before streaming: the secondary streams.
    primary.push(Reply::Json(503, json!({"error": {"message": "overloaded"}})));
    secondary.push(Reply::sse(vec![chunk("hello"), b"data: [DONE]\n\n".to_vec()], Duration::ZERO));
    let (status, _, text) = gw.post_text("/v1/chat/completions", &stream_req).await;
    assert_eq!(status, 200);
    assert!(text.contains("hello") && text.ends_with("data: [DONE]\n\n"), "{text}");

    // Fails after the first byte reached the client: no fallback, one error event.
    let before = secondary.requests().len();
    primary.push(Reply::CutAfter { status: 200, content_type: "text/event-stream".into(), pieces: vec![chunk("par")] });
    let (status, _, text) = gw.post_text("/v1/chat/completions", &stream_req).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert!(events[0].contains("par"));
    assert!(events.last().unwrap().contains("\"error\""), "{text}");
    assert_eq!(secondary.requests().len(), before, "no fallback after the first byte");
}

#[tokio::test]
async fn retries_with_backoff() {
    let upstream = MockUpstream::start().await;
    let mut e = openai("chat", &format!("{}/v1", upstream.url()));
    e["retry"] = json!({"max_attempts": 3, "backoff_ms": 20, "max_backoff_ms": 100});
    let mut once = openai("once", &format!("{}/v1", upstream.url()));
    once["retry"] = json!({"max_attempts": 2, "backoff_ms": 10});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [e, once]}))).await;

    upstream.push(Reply::Json(503, json!({"error": {"message": "busy"}})));
    upstream.push(Reply::Close);
    upstream.push(Reply::Json(200, chat_ok("third time lucky")));
    let (status, body) = gw.post("/endpoints/chat/invocations", &ask()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "third time lucky");
    assert_eq!(upstream.requests().len(), 3);

    upstream.clear();
    upstream.push(Reply::Json(503, json!({"error": {"message": "busy"}})));
    upstream.push(Reply::Json(503, json!({"error": {"message": "still busy"}})));
    let (status, body) = gw.post("/endpoints/once/invocations", &ask()).await;
    assert_eq!((status, body), (503, json!({"detail": "still busy"})));
    assert_eq!(upstream.requests().len(), 2);

    // Client errors are not retried.
    upstream.clear();
    upstream.push(Reply::Json(400, json!({"error": {"message": "bad"}})));
    let (status, _) = gw.post("/endpoints/chat/invocations", &ask()).await;
    assert_eq!(status, 400);
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn model_defaults_apply_per_destination_before_provider_rules() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, json!({"id": "msg", "type": "message", "role": "assistant", "model": "claude",
        "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}));
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [{"name": "claude", "endpoint_type": "llm/v1/chat",
                       "model": {"provider": "anthropic", "name": "claude-x",
                                 "config": {"anthropic_api_key": "k", "anthropic_api_base": format!("{}/v1", upstream.url()),
                                            "temperature": 0.8, "max_tokens": 300, "stop": ["END"]}}}],
        "routes": [{"name": "r", "task_type": "llm/v1/chat", "destinations": [{"name": "claude", "traffic_percentage": 100}]}]
    })))
    .await;
    // Defaults, then Anthropic's temperature halving on the merged value.
    for path in ["/endpoints/claude/invocations", "/endpoints/r/invocations"] {
        let (status, _) = gw.post(path, &ask()).await;
        assert_eq!(status, 200);
        let sent = upstream.last().json();
        assert_eq!(sent["temperature"], json!(0.4), "{path}");
        assert_eq!(sent["max_tokens"], json!(300));
        assert_eq!(sent["stop_sequences"], json!(["END"]));
    }
    // A request value wins over the default.
    let (status, _) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "claude", "temperature": 1.0, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().json()["temperature"], json!(0.5));
    assert_eq!(upstream.last().json()["max_tokens"], json!(300));
}

/// An endpoint's `timeout_s` bounds each of its upstream calls: a slow primary of a FALLBACK
/// route is given up after its own timeout (not the global 300 s) and the secondary answers;
/// without a route, the timeout is a 504 naming it.
#[tokio::test]
async fn endpoint_timeouts_bound_each_attempt() {
    let primary = MockUpstream::start().await;
    primary.handle(|_| Reply::Delay(Duration::from_secs(4), Box::new(Reply::Json(200, chat_ok("from primary")))));
    let secondary = MockUpstream::start().await;
    secondary.always_json(200, chat_ok("from secondary"));
    let mut slow = openai("primary", &format!("{}/v1", primary.url()));
    slow["timeout_s"] = json!(0.5);
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [slow, openai("secondary", &format!("{}/v1", secondary.url()))],
        "routes": [{"name": "ha", "task_type": "llm/v1/chat", "routing_strategy": "FALLBACK",
                    "destinations": [{"name": "primary"}, {"name": "secondary"}]}]
    })))
    .await;
    let (status, body) = gw.post("/endpoints/ha/invocations", &ask()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "from secondary");
    assert_eq!(primary.requests().len(), 1);
    let (status, body) = gw.post("/endpoints/primary/invocations", &ask()).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("did not answer within 0.5 s"), "{body}");
    // A bad value is a load error naming the field.
    let bad = yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "mock"}, "timeout_s": -1}]}));
    let err = aigw::snapshot::Snapshot::parse(&bad, std::path::Path::new("g.yaml")).unwrap_err().to_string();
    assert!(err.contains("timeout_s") && err.contains("endpoint 'x'"), "{err}");
}
