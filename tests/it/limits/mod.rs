//! Rate limits (docs/mlflow-compat.md#fix-3): exact quotas on every path that reaches an endpoint, one
//! counter per endpoint, 429 in the client API's shape with `Retry-After`, and
//! `x-ratelimit-*` headers on limited and unlimited answers alike; scoped counters; concurrency
//! caps. Every gateway's quota clock stands still at `common::LIMITS_NOW`, so no test straddles a
//! window boundary; the window arithmetic (renewal at the boundary of every period) is unit-tested
//! in src/limits/ on a manual clock. Token limits, budgets and the usage ledger: `tokens`; counters
//! shared in Redis by several instances: `shared`.

mod shared;
mod tokens;

use crate::common;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

fn mock(name: &str, extra: Value) -> Value {
    let mut e = json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "name": "m"}});
    if let Value::Object(o) = extra {
        for (k, v) in o {
            e[k] = v;
        }
    }
    e
}

fn chat() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

fn v1_chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn one_exact_counter_on_every_path_with_headers() {
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [mock("chat", json!({"limit": {"calls": 4, "renewal_period": "minute"}}))],
        "routes": [{"name": "split", "task_type": "llm/v1/chat", "destinations": [{"name": "chat", "traffic_percentage": 100}]}]
    })))
    .await;
    // Four calls through four different paths share the endpoint's one counter.
    let paths: [(&str, Value); 4] = [
        ("/endpoints/chat/invocations", chat()),
        ("/gateway/chat/invocations", chat()),
        ("/v1/chat/completions", v1_chat("chat")),
        ("/endpoints/split/invocations", chat()),
    ];
    for (n, (path, body)) in paths.iter().enumerate() {
        let r = gw.client.post(gw.url(path)).json(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["x-ratelimit-limit"], "4");
        assert_eq!(r.headers()["x-ratelimit-remaining"], (3 - n).to_string().as_str());
        // The gateway's quota clock stands at common::LIMITS_NOW, 30 s before a minute's end.
        assert_eq!(r.headers()["x-ratelimit-reset"], "30");
    }
    // Every path is now limited, each in its own family's shape.
    for (path, body) in &paths {
        let r = gw.client.post(gw.url(path)).json(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 429, "{path}");
        assert_eq!(r.headers()["retry-after"], "30");
        assert_eq!(r.headers()["x-ratelimit-reset"], "30");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
        let v: Value = r.json().await.unwrap();
        if path.starts_with("/v1") {
            assert_eq!(v["error"]["message"], "Rate limit exceeded: 4 per 1 minute");
            assert_eq!(v["error"]["type"], "rate_limit_error");
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        } else {
            assert_eq!(v, json!({"error": "Rate limit exceeded: 4 per 1 minute"}));
        }
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn sixty_four_parallel_clients_get_exactly_one_hundred() {
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [mock("chat", json!({"limit": {"calls": 100, "renewal_period": "day"}}))]
    })))
    .await;
    let url = gw.url("/v1/chat/completions");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let client = common::client();
            let url = url.clone();
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..4 {
                    let r = client.post(&url).json(&v1_chat("chat")).send().await.unwrap();
                    codes.push(r.status().as_u16());
                }
                codes
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        for code in t.await.unwrap() {
            match code {
                200 => ok += 1,
                429 => limited += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!((ok, limited), (100, 156));
}

#[tokio::test]
async fn scoped_counters() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        mock("per-user", json!({"limit": {"calls": 1, "renewal_period": "hour", "key": "header:x-user"}})),
        mock("per-ip", json!({"limit": {"calls": 1, "renewal_period": "hour", "key": "client_ip"}})),
    ]})))
    .await;
    let call = |user: &'static str| {
        let gw = &gw;
        async move {
            gw.client
                .post(gw.url("/endpoints/per-user/invocations"))
                .header("x-user", user)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call("alice").await, 200);
    assert_eq!(call("bob").await, 200);
    assert_eq!(call("alice").await, 429);
    assert_eq!(call("bob").await, 429);

    // Two client addresses (both loopback) count separately.
    let from = |ip: &str| {
        reqwest::Client::builder().no_proxy().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
    };
    let (a, b) = (from("127.0.0.1"), from("127.0.0.2"));
    let post = |c: &reqwest::Client| c.post(gw.url("/endpoints/per-ip/invocations")).json(&chat()).send();
    assert_eq!(post(&a).await.unwrap().status().as_u16(), 200);
    assert_eq!(post(&b).await.unwrap().status().as_u16(), 200);
    assert_eq!(post(&a).await.unwrap().status().as_u16(), 429);
    assert_eq!(post(&b).await.unwrap().status().as_u16(), 429);
}

#[tokio::test]
async fn concurrency_cap() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [{
        "name": "slow", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "mock", "config": {"latency_ms": 1500}},
        "limit": {"calls": 3, "renewal_period": "day", "max_concurrent": 2}
    }]})))
    .await;
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let client = common::client();
            let url = gw.url("/endpoints/slow/invocations");
            tokio::spawn(async move { client.post(url).json(&chat()).send().await.unwrap() })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        let code = r.status().as_u16();
        if code == 429 {
            // Refused for concurrency, not for the quota, and it used none of it.
            let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
            assert_eq!(header("x-ratelimit-limit").as_deref(), Some("3"));
            assert!(matches!(header("x-ratelimit-remaining").as_deref(), Some("1" | "2" | "3")));
            let v: Value = r.json().await.unwrap();
            assert!(v["detail"].as_str().unwrap().contains("at most 2 at a time"), "{v}");
        }
        codes.push(code);
    }
    codes.sort_unstable();
    assert_eq!(codes, [200, 200, 429, 429, 429]);
    // The slots were released, and the three refused requests did not count: one call is left.
    let r = gw.client.post(gw.url("/endpoints/slow/invocations")).json(&chat()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    let (status, body) = gw.post("/endpoints/slow/invocations", &chat()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "Rate limit exceeded: 3 per 1 day");
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("aigw_rejected_total{reason=\"concurrency_limit\"} 3"), "{text}");
    assert!(text.contains("aigw_rate_limited_total{endpoint=\"slow\"} 1"), "{text}");
}

#[tokio::test]
async fn unlimited_endpoints_carry_no_quota_headers() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("free", Value::Null)]}))).await;
    let r = gw.client.post(gw.url("/endpoints/free/invocations")).json(&chat()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-ratelimit-limit").is_none());
}
