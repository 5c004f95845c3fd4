//! Mistral through the real gateway: MLflow's fixtures replayed (see tests/it/common/replay.rs),
//! `/v1` chat streaming (split anywhere), completions streaming refused with a JSON 501 before any
//! upstream call, Mistral's error bodies relayed, and configuration errors naming the field.

use std::time::Duration;

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, split_points, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

const MISTRAL: (&str, &str) = ("mistral_api_base", "https://api.mistral.ai/v1");

replay_tests! {
    mistral_chat => Case::new("mistral-chat", MISTRAL);
    mistral_chat_stream => Case::new("mistral-chat-stream", MISTRAL);
    mistral_chat_stream_v1 => Case { via_v1: true, ..Case::new("mistral-chat-stream", MISTRAL) };
    mistral_completions => Case::new("mistral-completions", MISTRAL);
    mistral_embeddings => Case::new("mistral-embeddings", MISTRAL);
}

// ---- the gateway ----

fn config(base: &str) -> String {
    let ep = |name: &str, ty: &str, model: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "mistral", "name": model,
                         "config": {"mistral_api_key": "key", "mistral_api_base": base}}})
    };
    yaml(&json!({"endpoints": [
        ep("chat", "llm/v1/chat", "mistral-large-latest"),
        ep("completions", "llm/v1/completions", "mistral-tiny"),
    ]}))
}

const STREAM: &str = concat!(
    "data: {\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Bonjour\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\", ça va\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" ? 🙂\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"s1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mistral-large-latest\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn v1_chat_stream_any_split() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    for seed in 0..6u64 {
        let pieces =
            if seed == 0 { vec![STREAM.as_bytes().to_vec()] } else { split_points(STREAM.as_bytes(), seed, 16) };
        upstream.push(Reply::sse(pieces, Duration::from_millis(1)));
        let (status, ct, text) = gw
            .post_text(
                "/v1/chat/completions",
                &json!({"model": "chat", "messages": [{"role": "user", "content": "Salut"}], "stream": true}),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "seed {seed}: {text}");
        let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(chunks.len(), 5, "seed {seed}: {text}");
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        assert_eq!(content, "Bonjour, ça va ? 🙂", "seed {seed}");
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finishes, [&json!("stop")], "seed {seed}: exactly one finish_reason chunk");
        // MLflow 3.18 forwards the counts of the chunk that carries usage (3.17: null on all).
        assert!(chunks[..4].iter().all(|c| c["usage"].is_null() && c["provider"] == "mistral"));
        assert_eq!(
            chunks[4]["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}),
            "seed {seed}"
        );

        let sent = upstream.last().json();
        assert_eq!(sent["model"], json!("mistral-large-latest"));
        assert_eq!(sent["stream"], json!(true));
        assert!(sent.get("stream_options").is_none(), "no stream_options injected for Mistral");
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn completions_stream_is_a_json_501_before_any_call() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let (status, ct, text) =
        gw.post_text("/endpoints/completions/invocations", &json!({"prompt": "hi", "stream": true})).await;
    assert_eq!(status, 501, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, json!({"detail": "The completions streaming route is not implemented for Mistral models."}));

    let (status, body) =
        gw.post("/v1/completions", &json!({"model": "completions", "prompt": "hi", "stream": true})).await;
    assert_eq!(status, 501);
    assert_eq!(
        body["error"]["message"],
        json!("The completions streaming route is not implemented for Mistral models.")
    );
    assert!(upstream.requests().is_empty(), "no upstream call for an unsupported stream");
}

#[tokio::test]
async fn mistral_errors_are_relayed() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    // Mistral's 401 body.
    let unauthorized = json!({"message": "Unauthorized", "request_id": "4f2b"});
    upstream.push(Reply::Json(401, unauthorized.clone()));
    let (status, body) =
        gw.post("/endpoints/chat/invocations", &json!({"messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!((status, body), (401, json!({"detail": unauthorized})));

    // Mistral's validation error shape.
    upstream.push(Reply::Json(
        422,
        json!({"object": "error", "message": "Input should be a valid integer", "type": "invalid_request_error",
               "param": null, "code": null}),
    ));
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["message"], json!("Input should be a valid integer"));

    // An error object in the middle of a stream: the chunks so far, then one error event.
    upstream.push(Reply::sse(
        vec![
            STREAM.split_inclusive("\n\n").nth(1).unwrap().as_bytes().to_vec(),
            b"data: {\"object\":\"error\",\"message\":\"Service overloaded\",\"type\":\"internal_server_error\"}\n\n"
                .to_vec(),
        ],
        Duration::from_millis(1),
    ));
    let (status, _, text) = gw
        .post_text(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        )
        .await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(err["error"]["message"], json!("Service overloaded"));
    assert!(!text.contains("[DONE]"));
    gw.assert_alive().await;
}

#[test]
fn missing_key_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [{"name": "c", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "mistral", "name": "m", "config": {"mistral_api_base": "https://x/v1"}}}]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(msg.contains("model.config.mistral_api_key") && msg.contains("Field required"), "{msg}");
}

/// `/v1/responses` with `reasoning.effort`: Mistral's chat API documents `reasoning_effort`, so
/// it goes upstream as sent; `top_k` (from `/v1/messages`) is still refused, before any call.
#[tokio::test]
async fn reasoning_effort_goes_upstream() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::Json(200, crate::common::upstream::openai_answer("/chat/completions")));
    let (status, body) =
        gw.post("/v1/responses", &json!({"model": "chat", "input": "Hi", "reasoning": {"effort": "high"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.last().json()["reasoning_effort"], json!("high"));
    let calls = upstream.requests().len();
    let messages =
        json!({"model": "chat", "max_tokens": 9, "top_k": 3, "messages": [{"role": "user", "content": "Hi"}]});
    let (status, body) = gw.post("/v1/messages", &messages).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(upstream.requests().len(), calls);
}

/// Reasoning models answer with list content (`thinking` and `text` chunks): the text chunks,
/// concatenated, are the content, whole and streamed; a thinking-only delta has no content.
/// MLflow 3.17 answered the whole one with a 500 and broke the stream.
#[tokio::test]
async fn reasoning_list_content_is_its_text() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let thinking = json!({"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]});
    upstream.push(Reply::Json(
        200,
        json!({"id": "r1", "object": "chat.completion", "created": 1, "model": "magistral-medium-latest",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": [thinking,
                   {"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"}]}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}),
    ));
    let request = json!({"messages": [{"role": "user", "content": "Salut"}]});
    let (status, body) = gw.post("/endpoints/chat/invocations", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("Bonjour"), "{body}");
    assert!(!body.to_string().contains("Let me think."), "{body}");

    let chunk = |content: Value, finish: Value| {
        let c = json!({"id": "r2", "object": "chat.completion.chunk", "created": 1, "model": "magistral-medium-latest",
                       "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let stream = [
        chunk(json!([thinking]), Value::Null),
        chunk(json!([{"type": "text", "text": "Bon"}, {"type": "text", "text": "jour"}]), Value::Null),
        chunk(json!("!"), json!("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    upstream.push(Reply::sse(vec![stream.into_bytes()], Duration::ZERO));
    let mut request = request;
    request["stream"] = json!(true);
    let (status, _, text) = gw.post_text("/endpoints/chat/invocations", &request).await;
    assert_eq!(status, 200, "{text}");
    let contents: Vec<Value> = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .map(|c| c["choices"][0]["delta"]["content"].clone())
        .collect();
    assert_eq!(contents, vec![Value::Null, json!("Bonjour"), json!("!")], "{text}");
}

/// With the stream's usage passed on, the Responses API's `response.completed` reports
/// Mistral's counts instead of `usage: null`.
#[tokio::test]
async fn responses_stream_reports_mistral_usage() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    upstream.push(Reply::sse(vec![STREAM.as_bytes().to_vec()], Duration::ZERO));
    let (status, _, text) =
        gw.post_text("/v1/responses", &json!({"model": "chat", "input": "Salut", "stream": true})).await;
    assert_eq!(status, 200, "{text}");
    let completed = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|e| e["type"] == "response.completed")
        .expect("response.completed");
    let usage = &completed["response"]["usage"];
    assert_eq!(
        (&usage["input_tokens"], &usage["output_tokens"], &usage["total_tokens"]),
        (&json!(5), &json!(4), &json!(9)),
        "{text}"
    );
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], json!("Bonjour, ça va ? 🙂"));
}
