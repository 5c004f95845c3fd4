//! Cohere through the real gateway: MLflow's fixtures replayed (see tests/it/common/replay.rs),
//! newline-delimited JSON streams (chat on `/v1`, generate on the native route) split at arbitrary
//! bytes, the provider's 422 rules on both client APIs, Cohere's error bodies, docs/mlflow-compat.md#fix-8 (a
//! single embedding string becomes a list), and the deprecation warning at load.

use std::time::Duration;

use crate::common;
use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, split_points, sse_data, yaml};
use serde_json::{Value, json};

// ---- MLflow fixtures replayed ----

const COHERE: (&str, &str) = ("cohere_api_base", "https://api.cohere.ai/v1");

/// Cohere streams newline-delimited JSON, not SSE: reply with the fixture's lines as they are
/// (split at random points for the split runs).
fn ndjson_reply(fx: &Value, split: Option<u64>) -> Reply {
    let lines: Vec<&str> = fx["upstream_response"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let bytes: Vec<u8> = lines.concat().into_bytes();
    let pieces = match split {
        None => lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
        Some(seed) => common::split_points(&bytes, seed, 12),
    };
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/stream+json".into())],
        pieces: pieces.into_iter().map(|p| (p, std::time::Duration::from_millis(1))).collect(),
        chunked: true,
    }
}

replay_tests! {
    cohere_chat => Case::new("cohere-chat", COHERE);
    cohere_chat_stream => Case { reply: Some(ndjson_reply), ..Case::new("cohere-chat-stream", COHERE) };
    cohere_completions => Case::new("cohere-completions", COHERE);
    cohere_completions_stream => Case { reply: Some(ndjson_reply), ..Case::new("cohere-completions-stream", COHERE) };
    cohere_chat_stream_v1 => Case { reply: Some(ndjson_reply), via_v1: true, ..Case::new("cohere-chat-stream", COHERE) };
    cohere_completions_stream_v1 => Case { reply: Some(ndjson_reply), via_v1: true, ..Case::new("cohere-completions-stream", COHERE) };
    cohere_embeddings => Case::new("cohere-embeddings", COHERE);
}

// ---- the gateway ----

fn config(base: &str) -> String {
    let ep = |name: &str, ty: &str, model: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "cohere", "name": model,
                         "config": {"cohere_api_key": "key", "cohere_api_base": base}}})
    };
    yaml(&json!({"endpoints": [
        ep("chat", "llm/v1/chat", "command"),
        ep("completions", "llm/v1/completions", "command"),
        ep("embeddings", "llm/v1/embeddings", "embed-english-v3.0"),
    ]}))
}

fn ndjson(pieces: Vec<Vec<u8>>) -> Reply {
    Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/stream+json".into())],
        pieces: pieces.into_iter().map(|p| (p, Duration::from_millis(1))).collect(),
        chunked: true,
    }
}

const CHAT_STREAM: &str = concat!(
    "{\"is_finished\":false,\"event_type\":\"stream-start\",\"generation_id\":\"g\"}\n",
    "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Grüß\"}\n",
    "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\" dich, \"}\n",
    "{\"is_finished\":false,\"event_type\":\"text-generation\",\"text\":\"Welt 🌍\"}\n",
    "{\"is_finished\":true,\"event_type\":\"stream-end\",\"response\":{\"response_id\":\"r1\",\"text\":\"Grüß dich, Welt 🌍\",",
    "\"generation_id\":\"g\",\"token_count\":{\"prompt_tokens\":3,\"response_tokens\":5,\"total_tokens\":8}},\"finish_reason\":\"COMPLETE\"}\n",
);

#[tokio::test]
async fn v1_chat_ndjson_stream_any_split() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    for seed in 0..8u64 {
        let pieces = if seed == 0 {
            vec![CHAT_STREAM.as_bytes().to_vec()]
        } else {
            split_points(CHAT_STREAM.as_bytes(), seed, 20)
        };
        upstream.push(ndjson(pieces));
        let (status, ct, text) = gw
            .post_text(
                "/v1/chat/completions",
                &json!({"model": "chat", "messages": [{"role": "system", "content": "short"}, {"role": "user", "content": "Hallo"}], "stream": true}),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"));
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "seed {seed}: {text}");
        let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(chunks.len(), 4, "seed {seed}: stream-start is skipped: {text}");
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        assert_eq!(content, "Grüß dich, Welt 🌍", "seed {seed}");
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        // Cohere's raw finish reason, as MLflow sends it (docs/mlflow-compat.md#fix-10-kept).
        assert_eq!(finishes, [&json!("COMPLETE")], "seed {seed}: exactly one finish_reason chunk");
        let last = chunks.last().unwrap();
        assert_eq!(last["id"], json!("r1"));
        assert_eq!(last["usage"], json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}));
        assert_eq!(chunks[0]["usage"], json!({"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}));

        let sent = upstream.last();
        assert_eq!(sent.target, "/v1/chat");
        assert_eq!(sent.header("authorization"), Some("Bearer key"));
        assert_eq!(
            sent.json(),
            json!({"model": "command", "stream": true, "message": "Hallo", "preamble_override": "short"})
        );
    }
    gw.assert_alive().await;
}

#[tokio::test]
async fn native_generate_stream_and_truncated_stream() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let body = concat!(
        "{\"text\":\" Hi\",\"is_finished\":false,\"event_type\":\"text-generation\"}\n",
        "{\"is_finished\":true,\"event_type\":\"stream-end\",\"finish_reason\":\"MAX_TOKENS\",\"response\":{\"id\":\"g1\",\"generations\":[]}}\n",
    );
    upstream.push(ndjson(split_points(body.as_bytes(), 7, 9)));
    let (status, _, text) = gw
        .post_text("/endpoints/completions/invocations", &json!({"prompt": "x", "stream": true, "max_tokens": 3}))
        .await;
    assert_eq!(status, 200);
    let mut events = sse_data(&text);
    assert_eq!(events.pop().as_deref(), Some("[DONE]"), "native streams end with [DONE] too (MLflow 3.18)");
    let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks.len(), 2, "{text}");
    assert_eq!(chunks[0]["choices"][0]["text"], json!(" Hi"));
    assert_eq!(chunks[1]["id"], json!("g1"));
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], json!("MAX_TOKENS"));
    assert_eq!(upstream.last().json()["num_generations"], json!(1));

    // A stream cut inside a line: the complete lines, then one error event.
    upstream.push(ndjson(vec![
        b"{\"text\":\" Hi\",\"is_finished\":false,\"event_type\":\"text-generation\"}\n{\"text\":\" th".to_vec(),
    ]));
    let (status, _, text) =
        gw.post_text("/v1/completions", &json!({"model": "completions", "prompt": "x", "stream": true})).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"));
    gw.assert_alive().await;
}

#[tokio::test]
async fn provider_rules_on_both_route_families() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let (status, body) =
        gw.post("/endpoints/chat/invocations", &json!({"messages": [{"role": "user", "content": "x"}], "n": 2})).await;
    assert_eq!((status, body), (422, json!({"detail": "Parameter n must be 1 for Cohere chat, got 2."})));

    let (status, body) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "stream": true}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["message"], json!("Last message must be from user, got assistant."));

    let (status, body) =
        gw.post("/endpoints/completions/invocations", &json!({"prompt": "x", "stop_sequences": ["a"]})).await;
    assert_eq!((status, body), (400, json!({"detail": "Invalid parameter stop_sequences. Use stop instead."})));

    let (status, body) = gw.post("/endpoints/embeddings/invocations", &json!({"input": "a", "texts": ["b"]})).await;
    assert_eq!((status, body), (422, json!({"detail": "Invalid parameter texts. Use input instead."})));
    assert!(upstream.requests().is_empty(), "rule violations never reach Cohere");
}

#[tokio::test]
async fn single_string_embedding_becomes_a_list() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    upstream.push(Reply::Json(200, json!({"id": "e", "texts": ["hello"], "embeddings": [[0.5, 0.25]]})));
    let (status, body) = gw
        .post("/v1/embeddings", &json!({"model": "embeddings", "input": "hello", "input_type": "search_query"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"object": "embedding", "embedding": [0.5, 0.25], "index": 0}]));
    assert_eq!(body["model"], json!("embed-english-v3.0"));
    // docs/mlflow-compat.md#fix-8: MLflow sends `texts: "hello"`, which Cohere rejects.
    assert_eq!(
        upstream.last().json(),
        json!({"model": "embed-english-v3.0", "texts": ["hello"], "input_type": "search_query"})
    );
}

#[tokio::test]
async fn cohere_errors_are_relayed_and_deprecation_is_logged() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    upstream.push(Reply::Json(401, json!({"message": "invalid api token"})));
    let (status, body) =
        gw.post("/endpoints/chat/invocations", &json!({"messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!((status, body), (401, json!({"detail": {"message": "invalid api token"}})));

    upstream.push(Reply::Json(
        429,
        json!({"message": "You are using a Trial key, which is limited to 10 API calls / minute."}),
    ));
    let (status, body) = gw.post("/v1/completions", &json!({"model": "completions", "prompt": "x"})).await;
    assert_eq!(status, 429);
    assert_eq!(
        body["error"]["message"],
        json!("You are using a Trial key, which is limited to 10 API calls / minute.")
    );

    let logs = gw.logs();
    assert!(logs.contains("the cohere provider is deprecated"), "{logs}");
    assert!(!logs.contains("Bearer key"));
}
