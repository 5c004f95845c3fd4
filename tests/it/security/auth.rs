//! Gateway API keys (`src/auth.rs`): authentication in every header form, authorization per
//! endpoint, listings filtered to what a key may use, keys hot-reloaded with per-key counters,
//! client credentials never forwarded upstream, and the loopback rule without keys.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, free_port, yaml};
use base64::Engine;
use serde_json::{Value, json};

const KEY_A: &str = "gw-key-team-a-0123456789";
const KEY_CI: &str = "gw-key-ci-abcdefghijkl";

fn sha256_hex(s: &str) -> String {
    aigw::config::settings::sha256(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn keyed_config(extra: Value) -> Value {
    let mut c = json!({
        "endpoints": [mock("chat"), mock("other"),
                      {"name": "emb", "endpoint_type": "llm/v1/embeddings", "model": {"provider": "mock"}}],
        "aigw": {"auth": {"keys": [
            {"name": "team-a", "key": "$AIGW_TEST_KEY_A", "endpoints": ["chat"]},
            {"name": "ci", "sha256": sha256_hex(KEY_CI)}
        ]}}
    });
    if let Value::Object(o) = extra {
        for (k, v) in o {
            c["aigw"][k] = v;
        }
    }
    c
}

async fn keyed(extra: Value) -> Gateway {
    Gateway::start_with(&yaml(&keyed_config(extra)), &[("AIGW_TEST_KEY_A", KEY_A)], &[]).await
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

async fn status_with(
    gw: &Gateway,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = gw.client.post(gw.url(path)).json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn api_keys_authenticate_and_authorize() {
    let gw = keyed(Value::Null).await;
    // /health is open.
    let (status, _) = gw.get("/health").await;
    assert_eq!(status, 200);

    // No key: 401 in each family's shape.
    let (status, body, headers) = status_with(&gw, "/endpoints/chat/invocations", &ask(), &[]).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("Missing API key"));
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"aigw\"");
    let v1 = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = status_with(&gw, "/v1/chat/completions", &v1, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "authentication_error");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    // Wrong key.
    let (status, body, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", "Bearer nope-nope-nope")]).await;
    assert_eq!((status, body["detail"].as_str()), (401, Some("Incorrect API key provided")));
    // Listing needs a key too.
    assert_eq!(gw.get("/api/2.0/endpoints/").await.0, 401);

    // Every header form.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("mlflow:{KEY_A}"));
    for h in [
        ("authorization", format!("Bearer {KEY_A}")),
        ("x-api-key", KEY_A.to_owned()),
        ("api-key", KEY_A.to_owned()),
        ("authorization", format!("Basic {basic}")),
    ] {
        let (status, body, _) = status_with(&gw, "/endpoints/chat/invocations", &ask(), &[(h.0, &h.1)]).await;
        assert_eq!(status, 200, "{h:?}: {body}");
    }

    // team-a may use chat only: 403 elsewhere, in both shapes.
    let bearer_a = format!("Bearer {KEY_A}");
    let (status, body, _) =
        status_with(&gw, "/endpoints/other/invocations", &ask(), &[("authorization", &bearer_a)]).await;
    assert_eq!(status, 403);
    assert_eq!(body["detail"], "API key 'team-a' may not use 'other'");
    // On a native route that is decided before the body is read: a body over the size limit
    // still gets the 403, not a 413.
    let big = gw
        .client
        .post(gw.url("/endpoints/other/invocations"))
        .header("authorization", &bearer_a)
        .header("content-type", "application/json")
        .body(vec![b' '; 17 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 403);
    let v1_other = json!({"model": "other", "messages": [{"role": "user", "content": "hi"}]});
    let (status, body, _) = status_with(&gw, "/v1/chat/completions", &v1_other, &[("authorization", &bearer_a)]).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["type"], "permission_error");
    // ci may use everything.
    let bearer_ci = format!("Bearer {KEY_CI}");
    let (status, _, _) = status_with(&gw, "/v1/chat/completions", &v1_other, &[("authorization", &bearer_ci)]).await;
    assert_eq!(status, 200);

    // Listings show a key only what it may use.
    let list = |auth: String| {
        let gw = &gw;
        async move {
            let v: Value = gw
                .client
                .get(gw.url("/v1/models"))
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(bearer_a.clone()).await, ["chat"]);
    assert_eq!(list(bearer_ci.clone()).await, ["chat", "other", "emb"]);
    let v: Value = gw
        .client
        .get(gw.url("/api/2.0/endpoints/"))
        .header("authorization", &bearer_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(
        gw.client
            .get(gw.url("/api/2.0/endpoints/other"))
            .header("authorization", &bearer_a)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Metrics count the rejections (and need a key on the main listener, one not restricted
    // to some endpoints: the metrics name them all).
    assert_eq!(gw.get("/metrics").await.0, 401);
    let r = gw.client.get(gw.url("/metrics")).header("authorization", &bearer_a).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let text = gw
        .client
        .get(gw.url("/metrics"))
        .header("authorization", &bearer_ci)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Three requests above without a key, and the /metrics request without one.
    assert!(text.contains("aigw_auth_rejected_total{reason=\"missing_key\"} 4"), "{text}");
    assert!(text.contains("aigw_auth_rejected_total{reason=\"invalid_key\"} 1"));
    assert!(text.contains("aigw_auth_rejected_total{reason=\"forbidden\"} 4"), "{text}");
    assert!(!text.contains(KEY_A) && !text.contains(KEY_CI));
}

#[tokio::test]
async fn keys_hot_reload_and_counters_per_key() {
    let gw = keyed(Value::Null).await;
    let bearer_ci = format!("Bearer {KEY_CI}");
    // Add a key and a per-key limit.
    let mut c = keyed_config(Value::Null);
    c["aigw"]["auth"]["keys"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "new", "sha256": sha256_hex("gw-key-new-zyxwvutsrq")}));
    c["endpoints"][0]["limit"] = json!({"calls": 1, "renewal_period": "day", "key": "api_key"});
    std::fs::write(&gw.config_path, yaml(&c)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = status_with(
            &gw,
            "/endpoints/chat/invocations",
            &ask(),
            &[("authorization", "Bearer gw-key-new-zyxwvutsrq")],
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the new key never worked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Counted per key: "new" used its one call; ci has its own.
    let (status, _, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", "Bearer gw-key-new-zyxwvutsrq")])
            .await;
    assert_eq!(status, 429);
    let (status, _, _) =
        status_with(&gw, "/endpoints/chat/invocations", &ask(), &[("authorization", &bearer_ci)]).await;
    assert_eq!(status, 200);
    // Remove it again.
    std::fs::write(&gw.config_path, yaml(&keyed_config(Value::Null))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = status_with(
            &gw,
            "/endpoints/chat/invocations",
            &ask(),
            &[("authorization", "Bearer gw-key-new-zyxwvutsrq")],
        )
        .await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the removed key kept working");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_credentials_never_travel_upstream() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    );
    let cfg = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "m", "config": {"openai_api_key": "sk-provider-secret-0001", "openai_api_base": upstream.url()}}}],
        "aigw": {"auth": {"keys": [{"name": "app", "key": KEY_A}]}}});
    let gw = Gateway::start(&yaml(&cfg)).await;
    let (status, _, _) = status_with(
        &gw,
        "/endpoints/chat/invocations",
        &ask(),
        &[
            ("authorization", &format!("Bearer {KEY_A}")),
            ("x-api-key", "client-x-api-key"),
            ("api-key", "client-api-key"),
            ("cookie", "session=1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let req = upstream.last();
    assert_eq!(req.header("authorization"), Some("Bearer sk-provider-secret-0001"));
    for (k, v) in &req.headers {
        assert!(!v.contains(KEY_A) && !v.contains("client-"), "client header leaked upstream: {k}: {v}");
        assert_ne!(k, "cookie");
    }
}

#[tokio::test]
async fn no_keys_means_loopback_only_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, yaml(&json!({"endpoints": [mock("chat")]}))).unwrap();
    let out = Command::new(common::binary())
        .args(["--host", "0.0.0.0", "--port", &free_port().to_string(), "--config-path"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen") && err.contains("allow_unauthenticated"), "{err}");

    // Explicitly allowed: it serves, and says so.
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [mock("chat")], "aigw": {"auth": {"allow_unauthenticated": true}}})),
        &[],
        &["--host", "0.0.0.0"],
    )
    .await;
    assert!(gw.logs().contains("no API keys configured and aigw.auth.allow_unauthenticated is set"));
    // A reload may not take the keys away from a public listener.
    let gw =
        Gateway::start_with(&yaml(&keyed_config(Value::Null)), &[("AIGW_TEST_KEY_A", KEY_A)], &["--host", "0.0.0.0"])
            .await;
    std::fs::write(&gw.config_path, yaml(&json!({"endpoints": [mock("chat")]}))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.logs().contains("reload rejected") {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 401, "still protected");
}
