//! Token limits, dollar budgets and the usage ledger, in one process (docs/limits.md, "Reserve,
//! then settle"): a request reserves its estimated prompt plus its `max_tokens` at admission and
//! the real usage replaces the reservation when it ends (streams included); a reservation that
//! does not fit is refused (429 `token_limit_exceeded`, `budget_exceeded`) in each family's
//! shape; the audit line, the metrics and `GET /aigw/usage` carry tokens and cost.

use std::time::Duration;

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const KEY_A: &str = "gw-key-team-a-0123456789";
const KEY_B: &str = "gw-key-team-b-0123456789";

/// A mock endpoint answering ten words (completion_tokens 10; prompt_tokens = the words asked).
pub fn ten_words(name: &str, extra: Value) -> Value {
    let mut e = json!({"name": name, "endpoint_type": "llm/v1/chat",
        "model": {"provider": "mock", "name": "m", "config": {"reply": "a b c d e f g h i j"}}});
    if let Value::Object(o) = extra {
        for (k, v) in o {
            if k == "pricing" {
                e["model"]["pricing"] = v;
            } else {
                e[k] = v;
            }
        }
    }
    e
}

/// "hi" with max_tokens 5: reserves 9 (17 bytes of text / 4, rounded up, + 4 for the message)
/// + 5 = 14 tokens; uses 1 + 10 = 11.
pub fn hi() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
}

/// `GET /aigw/usage`, with a key when given.
pub async fn usage(gw: &Gateway, key: Option<&str>) -> Value {
    let mut r = gw.client.get(gw.url("/aigw/usage"));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Wait until `/aigw/usage` shows `path` (a JSON pointer) equal to `want`: the last answer's
/// reservation has been settled.
pub async fn settled(gw: &Gateway, key: Option<&str>, path: &str, want: Value) {
    let what = format!("{path} == {want}");
    common::wait_until_async(Duration::from_secs(10), &what, || async {
        usage(gw, key).await.pointer(path) == Some(&want)
    })
    .await;
}

#[tokio::test]
async fn token_limit_reserves_then_settles_streams_included() {
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [ten_words("chat", json!({"limit": {"tokens": 100, "renewal_period": "day"}}))]
    })))
    .await;
    // Each call reserves 14 and settles to 11: eight fit (8 * 11 = 88; 88 + 14 > 100).
    for n in 1..=8u64 {
        if n == 3 {
            let (status, _, text) = gw
                .post_text(
                    "/endpoints/chat/invocations",
                    &json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": true}),
                )
                .await;
            assert_eq!(status, 200);
            assert!(text.contains("\"usage\""), "{text}");
        } else {
            assert_eq!(gw.post("/endpoints/chat/invocations", &hi()).await.0, 200, "call {n}");
        }
        settled(&gw, None, "/limits/0/tokens_used", json!(11 * n)).await;
    }
    let report = usage(&gw, None).await;
    assert_eq!(report["limits"][0]["tokens"], 100);
    assert_eq!(report["limits"][0]["calls"], Value::Null);
    // The next reservation does not fit: 429 in each family's shape, Retry-After to the day's end.
    let r = gw.client.post(gw.url("/endpoints/chat/invocations")).json(&hi()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "6390");
    let v: Value = r.json().await.unwrap();
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("Token limit exceeded for endpoint 'chat'"), "{v}");
    assert!(detail.contains("reserves 14") && detail.contains("12 are left"), "{v}");
    let (status, v) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str(), v["error"]["type"].as_str()),
        (429, Some("token_limit_exceeded"), Some("rate_limit_error"))
    );
    let (status, v) = gw
        .post(
            "/v1/messages",
            &json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(
        (status, v["type"].as_str(), v["error"]["type"].as_str()),
        (429, Some("error"), Some("rate_limit_error"))
    );
    // A smaller reservation still fits: 1 (prompt) + 9 (message) ... with max_tokens 1: 10 <= 12.
    let small = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1});
    assert_eq!(gw.post("/endpoints/chat/invocations", &small).await.0, 200);
    // Refusals were counted as rate limited.
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aigw_rate_limited_total{endpoint=\"chat\"} 3"), "{metrics}");
}

#[tokio::test]
async fn budgets_charge_the_serving_destination_and_never_name_keys() {
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.log");
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [
            ten_words("primary", json!({"pricing": {"input": 1000, "output": 1000}})),
            ten_words("backup", json!({"pricing": {"input": 2000, "output": 2000}})),
        ],
        "routes": [{"name": "split", "task_type": "llm/v1/chat", "destinations": [{"name": "backup", "traffic_percentage": 100}]}],
        "aigw": {"audit": {"path": audit}, "auth": {"keys": [{"name": "team-a", "key": KEY_A}, {"name": "team-b", "key": KEY_B}]},
                 "budgets": [{"name": "team-a", "usd": 0.05, "renewal_period": "day", "keys": ["team-a"], "endpoints": ["split"]}]}
    })))
    .await;
    let call = |path: &'static str, key: &'static str| {
        let gw = &gw;
        async move {
            let r = gw.client.post(gw.url(path)).bearer_auth(key).json(&hi()).send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (status, retry, r.text().await.unwrap())
        }
    };
    // Through the route, backup serves at $0.002 a token: 14 reserved ($0.028), 11 used ($0.022).
    assert_eq!(call("/gateway/split/invocations", KEY_A).await.0, 200);
    settled(&gw, Some(KEY_A), "/budgets/0/spent_usd", json!(0.022)).await;
    assert_eq!(call("/gateway/split/invocations", KEY_A).await.0, 200, "0.022 + 0.028 = 0.05 fits");
    settled(&gw, Some(KEY_A), "/budgets/0/spent_usd", json!(0.044)).await;
    let (status, retry, body) = call("/gateway/split/invocations", KEY_A).await;
    assert_eq!((status, retry.as_deref()), (429, Some("6390")));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"detail": "Budget 'team-a' exhausted: 0.05 USD per 1 day"})
    );
    assert!(!body.contains(KEY_A));
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&json!({"model": "split", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded");
    // Another key, or another endpoint, is not charged to it.
    assert_eq!(call("/gateway/split/invocations", KEY_B).await.0, 200);
    assert_eq!(call("/endpoints/primary/invocations", KEY_A).await.0, 200);
    let report = usage(&gw, Some(KEY_A)).await;
    assert_eq!(report["budgets"][0]["name"], "team-a");
    assert_eq!(report["budgets"][0]["usd"], 0.05);
    assert_eq!(report["budgets"][0]["resets_at"], "2023-11-15T00:00:00.000Z");
    // The ledger: the audit line and the metrics carry the serving destination's cost.
    common::wait_until(Duration::from_secs(10), "six audit lines", || {
        std::fs::read_to_string(&audit).unwrap_or_default().matches("\"method\":\"POST\"").count() >= 6
    })
    .await;
    // The invocations' lines (the /aigw/usage reads have theirs too).
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["method"] == "POST")
        .collect();
    let first = &lines[0];
    assert_eq!(
        (first["endpoint"].as_str(), first["target"].as_str(), first["key"].as_str()),
        (Some("backup"), Some("split"), Some("team-a"))
    );
    assert_eq!((first["tokens_in"].as_u64(), first["tokens_out"].as_u64()), (Some(1), Some(10)));
    assert_eq!(first["cost_usd"], json!(0.022));
    assert_eq!((first["cached_tokens"].clone(), first["reasoning_tokens"].clone()), (Value::Null, Value::Null));
    let refused = &lines[2];
    assert_eq!((refused["status"].as_u64(), refused["cost_usd"].clone()), (Some(429), Value::Null));
    let metrics = gw.client.get(gw.url("/metrics")).bearer_auth(KEY_B).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("aigw_cost_usd_total{endpoint=\"backup\",key=\"team-a\"} 0.044"), "{metrics}");
    assert!(
        metrics.contains("aigw_tokens_total{endpoint=\"backup\",key=\"team-b\",kind=\"completion\"} 10"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_ledger_counts_cached_and_reasoning_tokens_and_failures_release_reservations() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                  "prompt_tokens_details": {"cached_tokens": 400}, "completion_tokens_details": {"reasoning_tokens": 50}}}),
    );
    let failing = MockUpstream::start().await;
    failing.always_json(500, json!({"error": {"message": "boom", "type": "server_error"}}));
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.log");
    let openai = |name: &str, base: String| {
        json!({"name": name, "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": "sk-ledger-test-key", "openai_api_base": base},
                  "pricing": {"input": 0.15, "output": 0.60, "cached_input": 0.075}},
        "limit": {"tokens": 100000, "renewal_period": "day"}})
    };
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [openai("chat", upstream.url()), openai("broken", failing.url())],
        "aigw": {"audit": {"path": audit}}
    })))
    .await;
    assert_eq!(
        gw.post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
            .await
            .0,
        200
    );
    assert_eq!(
        gw.post("/v1/chat/completions", &json!({"model": "broken", "messages": [{"role": "user", "content": "x"}]}))
            .await
            .0,
        500
    );
    settled(&gw, None, "/limits/0/tokens_used", json!(1200)).await;
    // The failed call's reservation (its prompt and 4,096 output tokens) was released.
    settled(&gw, None, "/limits/1/tokens_used", json!(0)).await;
    common::wait_until(Duration::from_secs(10), "two audit lines", || {
        std::fs::read_to_string(&audit).unwrap_or_default().matches("\"method\":\"POST\"").count() >= 2
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    let line: Value =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).find(|l| l["method"] == "POST").unwrap();
    assert_eq!(
        (
            line["tokens_in"].as_u64(),
            line["tokens_out"].as_u64(),
            line["cached_tokens"].as_u64(),
            line["reasoning_tokens"].as_u64()
        ),
        (Some(1000), Some(200), Some(400), Some(50))
    );
    // 600 * 0.15 + 400 * 0.075 + 200 * 0.60 dollars per million = $0.00024.
    assert_eq!(line["cost_usd"], json!(0.00024));
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "aigw_tokens_total{endpoint=\"chat\",key=\"\",kind=\"cached\"} 400",
        "aigw_tokens_total{endpoint=\"chat\",key=\"\",kind=\"reasoning\"} 50",
        "aigw_tokens_total{endpoint=\"chat\",key=\"\",kind=\"prompt\"} 1000",
        "aigw_cost_usd_total{endpoint=\"chat\",key=\"\"} 0.00024",
    ] {
        assert!(metrics.contains(needle), "missing {needle}\n{metrics}");
    }
}

#[tokio::test]
async fn usage_follows_the_metrics_access_rule() {
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [ten_words("chat", json!({"limit": {"calls": 5, "tokens": 1000, "renewal_period": "hour", "key": "api_key"}}))],
        "aigw": {"auth": {"keys": [{"name": "team-a", "key": KEY_A}, {"name": "team-b", "key": KEY_B, "endpoints": ["chat"]}]}}
    })))
    .await;
    let r = gw.client.post(gw.url("/endpoints/chat/invocations")).bearer_auth(KEY_A).json(&hi()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A key restricted to some endpoints may not read it; no key is 401.
    let r = gw.client.get(gw.url("/aigw/usage")).bearer_auth(KEY_B).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(gw.get("/aigw/usage").await.0, 401);
    // Per-key counters are listed by key name.
    settled(&gw, Some(KEY_A), "/limits/0/tokens_used", json!(11)).await;
    let report = usage(&gw, Some(KEY_A)).await;
    let rows = report["limits"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0]["key"].as_str(), rows[0]["calls_used"].as_u64()), (Some("team-a"), Some(1)));
    assert_eq!((rows[1]["key"].as_str(), rows[1]["calls_used"].as_u64()), (Some("team-b"), Some(0)));
    assert_eq!(rows[0]["resets_at"], "2023-11-14T23:00:00.000Z");
    assert_eq!(report["shared"], false);
}
