//! Databricks through the real gateway and a mock workspace: personal access tokens (config and
//! `DATABRICKS_*` environment), OAuth M2M tokens (fetched once for concurrent requests, cached,
//! refreshed before expiry, failures reported), the Unity Catalog base path, list-typed answer
//! content flattened (reasoning parts dropped), streams, errors and the completions 501.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::upstream::{MockUpstream, Recorded, Reply};
use crate::common::{Gateway, sse_data, yaml};
use serde_json::{Value, json};

fn endpoint(name: &str, ty: &str, provider: &str, model: &str, config: Value) -> Value {
    json!({"name": name, "endpoint_type": ty, "model": {"provider": provider, "name": model, "config": config}})
}

fn chat_answer(content: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000001, "model": "served",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn token_auth_list_content_and_501() {
    let upstream = MockUpstream::start().await;
    let config = json!({"host": upstream.url(), "token": "dapi-123"});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        endpoint("chat", "llm/v1/chat", "databricks-model-serving", "databricks-claude", config.clone()),
        endpoint("emb", "llm/v1/embeddings", "databricks", "databricks-gte-large-en", config.clone()),
        endpoint("completions", "llm/v1/completions", "databricks", "m", config),
    ]})))
    .await;

    upstream.push(Reply::Json(
        200,
        chat_answer(json!([
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "secret thoughts"}]},
            {"type": "text", "text": "Hello"},
            {"type": "text", "text": "World"}
        ])),
    ));
    let (status, body) = gw.post("/v1/chat/completions", &json!({"model": "chat", "messages": user("hi")})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("Hello\nWorld"));
    assert!(!body.to_string().contains("secret thoughts"), "reasoning parts are dropped");
    assert_eq!(body["provider"], json!("databricks-model-serving"));
    let sent = upstream.last();
    assert_eq!(sent.target, "/serving-endpoints/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer dapi-123"));
    assert_eq!(sent.json()["model"], json!("databricks-claude"));
    assert_eq!(sent.json()["n"], json!(1));

    upstream.push(Reply::Json(
        200,
        json!({"object": "list", "model": "gte", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
               "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
    ));
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": ["a"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"], json!([0.5]));
    assert_eq!(upstream.last().target, "/serving-endpoints/embeddings");

    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "x"})).await;
    assert_eq!(
        (status, body),
        (501, json!({"detail": "The completions route is not implemented for Databricks models."}))
    );
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn unity_catalog_models_use_the_ai_gateway_path() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [endpoint(
        "chat",
        "llm/v1/chat",
        "databricks",
        "main.default.my_agent",
        json!({"host": upstream.url(), "token": "t"}),
    )]})))
    .await;
    upstream.push(Reply::Json(200, chat_answer(json!("ok"))));
    let (status, _) = gw.post("/endpoints/chat/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!(status, 200);
    let sent = upstream.last();
    assert_eq!(sent.target, "/ai-gateway/mlflow/v1/chat/completions");
    assert_eq!(sent.json()["model"], json!("main.default.my_agent"));
}

#[tokio::test]
async fn environment_credentials() {
    let upstream = MockUpstream::start().await;
    let url = upstream.url();
    let gw = Gateway::start_with(
        &yaml(&json!({"endpoints": [
            endpoint("chat", "llm/v1/chat", "databricks", "m", json!({})),
            endpoint("chat2", "llm/v1/chat", "databricks", "m", json!({"host": "${WORKSPACE_URL}", "token": "$OTHER_TOKEN"})),
        ]})),
        &[
            ("DATABRICKS_HOST", url.as_str()),
            ("DATABRICKS_TOKEN", "env-token"),
            ("WORKSPACE_URL", url.as_str()),
            ("OTHER_TOKEN", "other-token"),
        ],
        &[],
    )
    .await;
    upstream.push(Reply::Json(200, chat_answer(json!("ok"))));
    let (status, _) = gw.post("/endpoints/chat/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().header("authorization"), Some("Bearer env-token"));
    upstream.push(Reply::Json(200, chat_answer(json!("ok"))));
    let (status, _) = gw.post("/endpoints/chat2/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().header("authorization"), Some("Bearer other-token"));
    assert!(!gw.logs().contains("env-token"));
}

/// A mock workspace: the token endpoint issues `tok-<n>` valid for `lifetime` seconds (after
/// `delay`), the serving endpoint answers chat.
fn workspace(upstream: &MockUpstream, lifetime: u64, delay: Duration) -> Arc<AtomicUsize> {
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    upstream.handle(move |r: &Recorded| {
        if r.target == "/oidc/v1/token" {
            let ok = r.header("authorization") == Some("Basic c3AtaWQ6c3Atc2VjcmV0") // sp-id:sp-secret
                && r.header("content-type") == Some("application/x-www-form-urlencoded")
                && r.body == b"grant_type=client_credentials&scope=all-apis";
            if !ok {
                return Reply::Json(401, json!({"error": "invalid_client", "error_description": "bad request"}));
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let answer = json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": lifetime});
            Reply::Delay(delay, Box::new(Reply::Json(200, answer)))
        } else {
            Reply::Json(200, chat_answer(json!("ok")))
        }
    });
    issued
}

fn oauth_config(url: &str) -> String {
    yaml(&json!({"endpoints": [endpoint(
        "chat",
        "llm/v1/chat",
        "databricks",
        "m",
        json!({"host": url, "client_id": "sp-id", "client_secret": "sp-secret"}),
    )]}))
}

fn serving_auth(upstream: &MockUpstream) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .filter(|r| r.target == "/serving-endpoints/chat/completions")
        .map(|r| r.header("authorization").unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn oauth_token_is_fetched_once_cached_and_refreshed() {
    let upstream = MockUpstream::start().await;
    let issued = workspace(&upstream, 2, Duration::from_millis(300));
    let gw = Gateway::start(&oauth_config(&upstream.url())).await;

    // Concurrent first requests share one token fetch.
    let req = json!({"messages": user("hi")});
    let calls = (0..6).map(|_| gw.post("/endpoints/chat/invocations", &req));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token fetch for concurrent requests");

    // Cached while fresh (a 2 s token is refreshed after half its lifetime).
    let (status, _) = gw.post("/v1/chat/completions", &json!({"model": "chat", "messages": user("hi")})).await;
    assert_eq!(status, 200);
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    assert!(serving_auth(&upstream).iter().all(|a| a == "Bearer tok-1"), "{:?}", serving_auth(&upstream));

    // The subject: real time passing (the token cache reads the system clock) until the token
    // is past half its lifetime.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, _) = gw.post("/endpoints/chat/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!(status, 200);
    assert_eq!(issued.load(Ordering::SeqCst), 2, "refreshed before expiry");
    assert_eq!(serving_auth(&upstream).last().map(String::as_str), Some("Bearer tok-2"));
    let logs = gw.logs();
    assert!(!logs.contains("sp-secret") && !logs.contains("tok-1"), "{logs}");
}

#[tokio::test]
async fn oauth_failure_is_a_502_without_a_serving_call() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(401, json!({"error": "invalid_client", "error_description": "Client authentication failed"}));
    let gw = Gateway::start(&oauth_config(&upstream.url())).await;
    let (status, body) = gw.post("/endpoints/chat/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!(
        (status, body),
        (502, json!({"detail": "Databricks OAuth token request failed with HTTP 401: Client authentication failed"}))
    );
    let (status, body) =
        gw.post("/v1/chat/completions", &json!({"model": "chat", "messages": user("hi"), "stream": true})).await;
    assert_eq!(status, 502, "a stream request gets a JSON error before any byte");
    assert!(body["error"]["message"].as_str().unwrap().contains("Client authentication failed"));
    assert!(upstream.requests().iter().all(|r| r.target == "/oidc/v1/token"));
    assert!(!body.to_string().contains("sp-secret"));
}

#[tokio::test]
async fn streams_and_errors() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&yaml(&json!({"endpoints": [endpoint(
        "chat",
        "llm/v1/chat",
        "databricks",
        "databricks-llama",
        json!({"host": upstream.url(), "token": "t"}),
    )]})))
    .await;
    upstream.push(Reply::sse(
        vec![
            b"data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n".to_vec(),
            b"data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}]}\n\n".to_vec(),
            b"data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n".to_vec(),
        ],
        Duration::from_millis(1),
    ));
    let (status, _, text) =
        gw.post_text("/v1/chat/completions", &json!({"model": "chat", "messages": user("hi"), "stream": true})).await;
    assert_eq!(status, 200, "{text}");
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"));
    let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|ch| ch["delta"]["content"].as_str()))
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(content, "Hi there");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], json!(3));
    assert_eq!(upstream.last().json()["stream_options"], json!({"include_usage": true}));

    let denied =
        json!({"error_code": "PERMISSION_DENIED", "message": "User does not have permission to query this endpoint."});
    upstream.push(Reply::Json(403, denied.clone()));
    let (status, body) = gw.post("/endpoints/chat/invocations", &json!({"messages": user("hi")})).await;
    assert_eq!((status, body), (403, json!({"detail": denied})));
    upstream.push(Reply::Json(403, denied));
    let (status, body) = gw.post("/v1/chat/completions", &json!({"model": "chat", "messages": user("hi")})).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["message"], json!("User does not have permission to query this endpoint."));
}

#[test]
fn missing_credentials_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [endpoint("c", "llm/v1/chat", "databricks", "m", json!({"host": "https://h", "client_id": "x"}))]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(msg.contains("model.config.client_secret"), "{msg}");
}

/// `/v1/responses` with `reasoning.effort`: Databricks' chat API documents `reasoning_effort`
/// (GPT-5 and gpt-oss models), so it goes upstream as sent.
#[tokio::test]
async fn reasoning_effort_goes_upstream() {
    let upstream = MockUpstream::start().await;
    let config = json!({"host": upstream.url(), "token": "dapi-123"});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        endpoint("chat", "llm/v1/chat", "databricks", "databricks-gpt-oss-120b", config),
    ]})))
    .await;
    upstream.push(Reply::Json(200, chat_answer(json!("ok"))));
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "chat", "input": "Hi", "reasoning": {"effort": "medium"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.last().json()["reasoning_effort"], json!("medium"));
}

/// A streamed delta whose content is a list of typed parts (a `reasoning` part, `text` parts)
/// is the concatenation of its text parts, or null without one (MLflow 3.18; 3.17 broke the
/// stream, and aigw joined the parts with a newline).
#[tokio::test]
async fn stream_list_content_is_its_text_parts() {
    let upstream = MockUpstream::start().await;
    let config = json!({"host": upstream.url(), "token": "dapi-123"});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        endpoint("chat", "llm/v1/chat", "databricks", "databricks-claude", config),
    ]})))
    .await;
    let chunk = |content: Value, finish: Value| {
        let c = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "served",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                    "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let reasoning = json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "secret thoughts"}]});
    let stream = [
        chunk(json!([reasoning]), Value::Null),
        chunk(json!([reasoning, {"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]), Value::Null),
        chunk(json!(" world"), json!("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    upstream.push(Reply::sse(vec![stream.into_bytes()], Duration::ZERO));
    let request = json!({"messages": user("hi"), "stream": true});
    let (status, _, text) = gw.post_text("/endpoints/chat/invocations", &request).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains("secret thoughts"), "{text}");
    let contents: Vec<Value> = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|c| c["choices"][0]["delta"]["content"].clone())
        .collect();
    assert_eq!(contents, vec![Value::Null, json!("Hello"), json!(" world")], "{text}");
}
