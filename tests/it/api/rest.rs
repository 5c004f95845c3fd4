//! The REST surface, replayed from MLflow 3.17.2's recorded session
//! (tests/fixtures/mlflow/gateway-rest-api.json): the ordered cases run against one gateway
//! whose upstream always answers the recorded OpenAI completion.
//!
//! Where aigw deliberately differs (docs/mlflow-compat.md), the expectation is overridden here
//! with the reason.

use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, assert_json_eq, fixture, yaml};
use serde_json::{Value, json};

fn openai_error(message: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}})
}

/// aigw's deliberate differences: (status, content type prefix, body).
fn override_for(index: usize, case: &Value) -> Option<(u16, Option<&'static str>, Value)> {
    let detail = case["expected_body"]["detail"].as_str().unwrap_or_default().to_owned();
    match index {
        // docs/mlflow-compat.md#error-shapes-per-client-api: /v1 errors are OpenAI-shaped.
        21 | 23 | 24 => Some((400, Some("application/json"), openai_error(&detail, Some("model"), None))),
        // MLflow's message has a literal '{n}' (a missing f-string); aigw names the value sent.
        19 => Some((
            422,
            Some("application/json"),
            json!({"detail": "'n' must be '1' for the Anthropic provider. Received value: '2'."}),
        )),
        // docs/mlflow-compat.md#fix-2: an unknown model is a 404 JSON, not a 500 text/plain.
        22 => Some((
            404,
            Some("application/json"),
            openai_error("The model 'missing' does not exist", Some("model"), Some("model_not_found")),
        )),
        // docs/mlflow-compat.md#fix-3: one counter per endpoint on every path that reaches it, so after the two
        // allowed calls the /gateway alias, /v1 and the traffic route are limited too.
        28 | 30 => Some((429, Some("application/json"), json!({"error": "Rate limit exceeded: 2 per 1 minute"}))),
        29 => Some((
            429,
            Some("application/json"),
            json!({"error": {"message": "Rate limit exceeded: 2 per 1 minute", "type": "rate_limit_error",
                             "param": null, "code": "rate_limit_exceeded"}}),
        )),
        _ => None,
    }
}

#[tokio::test]
async fn mlflow_rest_session() {
    let fx = fixture("gateway-rest-api.json");
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, fx["mock_upstream_response"].clone());
    let mut config = fx["config"].clone();
    for e in config["endpoints"].as_array_mut().unwrap() {
        let provider = e["model"]["provider"].as_str().unwrap().to_owned();
        let cfg = e["model"]["config"].as_object_mut().unwrap();
        match provider.as_str() {
            "openai" => cfg.insert("openai_api_base".into(), Value::from(format!("{}/v1", upstream.url()))),
            _ => cfg.insert("anthropic_api_base".into(), Value::from(format!("{}/v1", upstream.url()))),
        };
    }
    let gw = Gateway::start(&yaml(&config)).await;
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The rate-limited cases share one minute window: the gateway's quota clock stands still at
    // common::LIMITS_NOW.
    for (i, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let desc = case["description"].as_str().unwrap();
        let method = case["method"].as_str().unwrap();
        let mut req = client.request(method.parse().unwrap(), gw.url(case["path"].as_str().unwrap()));
        if let Some(q) = case["query"].as_object() {
            let pairs: Vec<(String, String)> =
                q.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            req = req.query(&pairs);
        }
        if !case["request_body"].is_null() {
            req = req.json(&case["request_body"]);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();

        let (want_status, want_ct, want_body) = match override_for(i, case) {
            Some((s, ct, b)) => (s, ct.map(str::to_owned), b),
            None => (
                case["expected_status"].as_u64().unwrap() as u16,
                case["expected_content_type"].as_str().map(str::to_owned),
                case["expected_body"].clone(),
            ),
        };
        assert_eq!(status, want_status, "case {i} ({desc}): status; body {text}");
        match want_ct {
            Some(want) => assert!(
                ct.as_deref().is_some_and(|got| got.starts_with(&want)),
                "case {i} ({desc}): content type {ct:?}, want {want}"
            ),
            None => assert!(ct.is_none(), "case {i} ({desc}): unexpected content type {ct:?}"),
        }
        if let Some(loc) = case["expected_location"].as_str() {
            assert_eq!(location.as_deref(), Some(loc), "case {i} ({desc})");
        }
        match &want_body {
            Value::String(s) if s.is_empty() => assert!(text.is_empty(), "case {i} ({desc}): body {text}"),
            want => {
                let got: Value =
                    serde_json::from_str(&text).unwrap_or_else(|_| panic!("case {i} ({desc}): not JSON: {text}"));
                assert_json_eq(&got, want, &["created"]);
            }
        }
    }
}

#[tokio::test]
async fn paging_and_bad_page_token() {
    let endpoints: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("e{i}"), "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}}))
        .collect();
    let gw = Gateway::start_with(
        &yaml(&json!({ "endpoints": endpoints })),
        &[("MLFLOW_DEPLOYMENTS_LIST_ENDPOINTS_PAGE_SIZE", "2")],
        &[],
    )
    .await;
    let mut names = Vec::new();
    let mut path = "/api/2.0/endpoints/".to_owned();
    loop {
        let (status, body) = gw.get(&path).await;
        assert_eq!(status, 200);
        names.extend(body["endpoints"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()));
        match body["next_page_token"].as_str() {
            Some(t) => path = format!("/api/2.0/endpoints/?page_token={t}"),
            None => break,
        }
    }
    assert_eq!(names, ["e0", "e1", "e2", "e3", "e4"]);
    // docs/mlflow-compat.md#fix-13: a malformed token is a 400 JSON (MLflow: 500 text/plain).
    let (status, body) = gw.get("/api/2.0/endpoints/?page_token=not-a-token").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("Invalid page token"));
    gw.assert_alive().await;
}

#[tokio::test]
async fn v1_models_and_unknown_paths() {
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [
            {"name": "chat", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}},
            {"name": "emb", "endpoint_type": "llm/v1/embeddings", "model": {"provider": "mock"}}
        ],
        "routes": [{"name": "split", "task_type": "llm/v1/chat", "destinations": [{"name": "chat", "traffic_percentage": 100}]}]
    })))
    .await;
    let (status, body) = gw.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["chat", "emb", "split"]);
    assert_eq!(body["data"][0]["owned_by"], "mock");

    let (status, body) = gw.get("/nothing/here").await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    let (status, body) = gw.get("/v1/nothing").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // Wrong method on a known route: 405 JSON with Allow.
    let r = gw.client.delete(gw.url("/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"detail": "Method Not Allowed"}));
    let (status, _) = gw.get("/v1/chat/completions").await;
    assert_eq!(status, 405);
    // The docs.
    let (status, spec) = gw.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["paths"]["/v1/chat/completions"].is_object());
    let r = gw.client.get(gw.url("/docs")).send().await.unwrap();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let (status, body) = gw.get("/favicon.ico").await;
    assert_eq!((status, body), (404, json!({"detail": "favicon.ico not found"})));
    // Every answer carries a request id; a sane client id is echoed.
    let r = gw.client.get(gw.url("/health")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = gw.client.get(gw.url("/health")).send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 32);
}

/// `GET /v1/models/{id}`: an endpoint or a route as one OpenAI model object; an unknown id is
/// OpenAI's 404 (`model_not_found`); a key sees only what it may use (404 for the rest, which
/// does not reveal that it exists).
#[tokio::test]
async fn v1_model_by_id() {
    let config = |auth: Value| {
        yaml(&json!({
            "endpoints": [
                {"name": "chat", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"}},
                {"name": "emb", "endpoint_type": "llm/v1/embeddings",
                 "model": {"provider": "openai", "name": "text-embedding-3-small", "config": {"openai_api_key": "sk-x"}}}
            ],
            "routes": [{"name": "split", "task_type": "llm/v1/chat", "destinations": [{"name": "chat", "traffic_percentage": 100}]}],
            "aigw": auth
        }))
    };
    let gw = Gateway::start(&config(Value::Null)).await;
    let (status, body) = gw.get("/v1/models/emb").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"id": "emb", "object": "model", "created": 0, "owned_by": "openai", "endpoint_type": "llm/v1/embeddings"})
    );
    let (status, body) = gw.get("/v1/models/split").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["id"].clone(), body["object"].clone()), (json!("split"), json!("model")));
    assert_eq!(body["endpoint_type"], "llm/v1/chat");
    // Each listed model can be fetched by its id, with the same object.
    let (_, list) = gw.get("/v1/models").await;
    for m in list["data"].as_array().unwrap() {
        let (status, one) = gw.get(&format!("/v1/models/{}", m["id"].as_str().unwrap())).await;
        assert_eq!((status, &one), (200, m));
    }

    let (status, body) = gw.get("/v1/models/nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("'nope'"), "{body}");

    // With keys: a key limited to `chat` sees `chat` only.
    let key = "aigw-test-key-0123456789abcdef";
    let gw = Gateway::start_with(
        &config(json!({"auth": {"keys": [{"name": "app", "key": "$AIGW_TEST_MODEL_KEY", "endpoints": ["chat"]}]}})),
        &[("AIGW_TEST_MODEL_KEY", key)],
        &[],
    )
    .await;
    let get = |id: &str, auth: Option<&str>| {
        let mut r = gw.client.get(gw.url(&format!("/v1/models/{id}")));
        if let Some(a) = auth {
            r = r.header("authorization", format!("Bearer {a}"));
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(get("chat", Some(key)).await.0, 200);
    let (status, body) = get("emb", Some(key)).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");
    assert_eq!(get("split", Some(key)).await.0, 404);
    assert_eq!(get("chat", None).await.0, 401);
}
