//! Traffic routes and resilience: weighted traffic split (MLflow's `TRAFFIC_SPLIT`), aigw's
//! `FALLBACK` routes and per-endpoint retries, and model defaults applied per destination before
//! the provider's own rules.

#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::upstream::{MockUpstream, Reply};
use common::{Gateway, free_port, sse_data, yaml};
use serde_json::{Value, json};

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
    let err = aigw::config::GatewayConfig::parse(&bad, std::path::Path::new("g.yaml")).unwrap_err().to_string();
    assert!(err.contains("timeout_s") && err.contains("endpoint 'x'"), "{err}");
}
