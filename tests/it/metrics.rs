//! Prometheus metrics (`src/metrics.rs`): requests, rate limits, tokens, stream first byte,
//! upstream latency, config reloads and generation, in flight; on a separate listener
//! (`aigw.metrics.listen`) and on the main one.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, free_port, yaml};
use serde_json::{Value, json};

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn metrics_on_a_separate_listener() {
    let metrics_port = free_port();
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    );
    let config = json!({"endpoints": [
        mock("chat"), {"name": "limited", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}, "limit": {"calls": 1, "renewal_period": "day"}},
        {"name": "remote", "endpoint_type": "llm/v1/chat", "model": {"provider": "openai", "name": "m",
            "config": {"openai_api_key": "sk-metrics-0000000", "openai_api_base": upstream.url()}}}],
        "aigw": {"metrics": {"listen": format!("127.0.0.1:{metrics_port}")}}});
    let gw = Gateway::start(&yaml(&config)).await;
    assert!(gw.logs().contains("no API keys configured: serving unauthenticated, on loopback only"), "{}", gw.logs());
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 200);
    assert_eq!(gw.post("/endpoints/remote/invocations", &ask()).await.0, 200);
    // One accepted and one rejected reload.
    let mut changed = config.clone();
    changed["endpoints"].as_array_mut().unwrap().push(mock("added"));
    std::fs::write(&gw.config_path, yaml(&changed)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.post("/endpoints/added/invocations", &ask()).await.0 != 200 {
        assert!(Instant::now() < deadline, "the reload was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&gw.config_path, "endpoints: [{name: broken}]").unwrap();
    while !gw.logs().contains("reload rejected") {
        assert!(Instant::now() < deadline, "the invalid reload was never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = gw
        .post_text(
            "/v1/chat/completions",
            &json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "a b c"}]}),
        )
        .await;
    assert_eq!(stream.0, 200);
    gw.post("/endpoints/limited/invocations", &ask()).await;
    assert_eq!(gw.post("/endpoints/limited/invocations", &ask()).await.0, 429);
    let needles = [
        "aigw_requests_total{endpoint=\"chat\",family=\"mlflow\",provider=\"mock\",status=\"200\"} 1",
        "aigw_requests_total{endpoint=\"limited\",family=\"mlflow\",provider=\"mock\",status=\"429\"} 1",
        "aigw_rate_limited_total{endpoint=\"limited\"} 1",
        "aigw_tokens_total{endpoint=\"chat\",key=\"\",kind=\"completion\"}",
        "aigw_stream_first_byte_seconds_count{endpoint=\"chat\"} 1",
        "aigw_request_duration_seconds_bucket",
        "aigw_upstream_duration_seconds_count{provider=\"openai\"} 1",
        "aigw_config_reloads_total{outcome=\"ok\"} 1",
        "aigw_config_reloads_total{outcome=\"rejected\"} 1",
        "aigw_config_generation 2",
        // The scrape itself is in flight.
        "aigw_inflight_requests 1",
    ];
    // A request is counted once its answer is written (the logging hook): scrape until the last
    // one shows.
    let scrape = || async {
        let r = common::client().get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap();
        r.text().await.unwrap()
    };
    let counted = "aigw_requests_total{endpoint=\"limited\",family=\"mlflow\",provider=\"mock\",status=\"429\"} 1";
    common::wait_until_async(Duration::from_secs(10), "the last request is counted", || async {
        scrape().await.contains(counted)
    })
    .await;
    let text = scrape().await;
    for needle in needles {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
    // The separate listener serves /metrics only; the main one serves it too (no keys here).
    assert_eq!(
        common::client().get(format!("http://127.0.0.1:{metrics_port}/health")).send().await.unwrap().status(),
        404
    );
    assert_eq!(gw.get("/metrics").await.0, 200);
    // /aigw/usage follows /metrics: on the separate listener too.
    let r = common::client().get(format!("http://127.0.0.1:{metrics_port}/aigw/usage")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let usage: serde_json::Value = r.json().await.unwrap();
    assert_eq!(usage["limits"][0]["endpoint"], "limited");
    assert_eq!(usage["limits"][0]["calls_used"], usage["limits"][0]["calls"]);
}
