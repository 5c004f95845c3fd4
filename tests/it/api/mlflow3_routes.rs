//! MLflow 3's server-gateway routes, served from the YAML configuration
//! (`src/api/operations.rs`): `/gateway/{endpoint}/mlflow/invocations`,
//! `/gateway/mlflow/v1/chat/completions` and `/models`, the OpenAI passthroughs (OpenAI's body
//! forwarded as sent to an OpenAI endpoint, translated for any other), the Responses and
//! Anthropic aliases, and MLflow 3's timing headers on every invocation answer.

use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const KEY: &str = "sk-mlflow3-routes-key-0123456789";

fn openai_answer() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
}

async fn start(upstream: &MockUpstream) -> Gateway {
    let base = format!("{}/v1", upstream.url());
    Gateway::start(&yaml(&json!({"endpoints": [
        {"name": "chat", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "openai", "name": "gpt-4o-mini", "config": {"openai_api_key": KEY, "openai_api_base": base}}},
        {"name": "emb", "endpoint_type": "llm/v1/embeddings",
         "model": {"provider": "openai", "name": "text-embedding-3-small", "config": {"openai_api_key": KEY, "openai_api_base": base}}},
        {"name": "claude", "endpoint_type": "llm/v1/chat",
         "model": {"provider": "anthropic", "name": "claude-x", "config": {"anthropic_api_key": KEY, "anthropic_api_base": base}}},
        {"name": "mock", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "name": "m"}}
    ]})))
    .await
}

#[tokio::test]
async fn mlflow_invocations_and_v1_aliases() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, openai_answer());
    let gw = start(&upstream).await;
    let ask = json!({"messages": [{"role": "user", "content": "hi"}]});

    // /gateway/{endpoint}/mlflow/invocations: MLflow's unified schema, as /gateway/{endpoint}/invocations.
    let (status, body) = gw.post("/gateway/chat/mlflow/invocations", &ask).await;
    assert_eq!((status, body["choices"][0]["message"]["content"].as_str()), (200, Some("hello")), "{body}");
    assert_eq!(body["object"], json!("chat.completion"));
    let (status, body) = gw.post("/gateway/nope/mlflow/invocations", &ask).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));

    // /gateway/mlflow/v1/chat/completions: OpenAI-compatible, model = endpoint or route.
    let mut req = ask.clone();
    req["model"] = json!("chat");
    let (status, body) = gw.post("/gateway/mlflow/v1/chat/completions", &req).await;
    assert_eq!((status, body["choices"][0]["message"]["content"].as_str()), (200, Some("hello")));
    req["model"] = json!("nope");
    let (status, body) = gw.post("/gateway/mlflow/v1/chat/completions", &req).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("model_not_found")), "OpenAI's shape");

    let (status, body) = gw.get("/gateway/mlflow/v1/models").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"chat") && ids.contains(&"claude"), "{body}");
}

#[tokio::test]
async fn the_openai_passthrough_forwards_openais_body_as_sent() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, openai_answer());
    let gw = start(&upstream).await;
    // What an OpenAI client sends, including fields MLflow's schema would normalise or not know.
    let req = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                     "logit_bias": {"50256": -100}, "store": false, "n": 2, "service_tier": "auto"});
    let (status, body) = gw.post("/gateway/openai/v1/chat/completions", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, openai_answer(), "OpenAI's answer relayed as it came");
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/chat/completions");
    let mut expected = req.clone();
    expected["model"] = json!("gpt-4o-mini");
    assert_eq!(sent.json(), expected, "only model replaced: nothing added, nothing removed");

    upstream.always_json(200, json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                                     "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}));
    let (status, body) =
        gw.post("/gateway/openai/v1/embeddings", &json!({"model": "emb", "input": "x", "dimensions": 8})).await;
    assert_eq!((status, body["data"][0]["embedding"].clone()), (200, json!([0.5])));
    assert_eq!(upstream.last().json(), json!({"model": "text-embedding-3-small", "input": "x", "dimensions": 8}));

    // To an endpoint of another provider the body is translated, as on /v1.
    let (status, body) = gw
        .post(
            "/gateway/openai/v1/chat/completions",
            &json!({"model": "mock", "messages": [{"role": "user", "content": "yo"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("This is a mock response to: yo"));
}

#[tokio::test]
async fn the_openai_passthrough_relays_streams_with_their_done() {
    let upstream = MockUpstream::start().await;
    let stream = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    upstream.push(Reply::sse(vec![stream.as_bytes().to_vec()], std::time::Duration::ZERO));
    let gw = start(&upstream).await;
    let req = json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, text) = gw.post_text("/gateway/openai/v1/chat/completions", &req).await;
    assert_eq!((status, text.as_str()), (200, stream));
    assert!(upstream.last().json().get("stream_options").is_none(), "the client's body, nothing injected");
}

#[tokio::test]
async fn the_anthropic_and_responses_aliases() {
    let upstream = MockUpstream::start().await;
    let message = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                         "content": [{"type": "text", "text": "hey"}], "stop_reason": "end_turn", "stop_sequence": null,
                         "usage": {"input_tokens": 2, "output_tokens": 1}});
    upstream.always_json(200, message.clone());
    let gw = start(&upstream).await;
    let (status, body) = gw
        .post(
            "/gateway/anthropic/v1/messages",
            &json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!((status, body), (200, message));
    assert_eq!(upstream.last().target, "/v1/messages");
    // An error there is Anthropic-shaped.
    let (status, body) = gw.post("/gateway/anthropic/v1/messages", &json!({"model": "claude"})).await;
    assert_eq!((status, body["type"].as_str()), (400, Some("error")), "{body}");

    let (status, body) = gw.post("/gateway/openai/v1/responses", &json!({"model": "mock", "input": "hello"})).await;
    assert_eq!((status, body["object"].as_str()), (200, Some("response")), "{body}");
}

#[tokio::test]
async fn invocation_answers_carry_mlflows_timing_headers() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, openai_answer());
    let gw = start(&upstream).await;
    let req = json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
    for (path, body) in [
        ("/v1/chat/completions", req.clone()),
        ("/endpoints/chat/invocations", json!({"messages": [{"role": "user", "content": "hi"}]})),
        ("/v1/chat/completions", json!({"model": "nope", "messages": []})),
    ] {
        let r = gw.client.post(gw.url(path)).json(&body).send().await.unwrap();
        let ms = |name: &str| -> f64 {
            r.headers().get(name).unwrap_or_else(|| panic!("{path}: no {name}")).to_str().unwrap().parse().unwrap()
        };
        let (total, overhead) = (ms("x-mlflow-gateway-duration-ms"), ms("x-mlflow-gateway-overhead-duration-ms"));
        assert!(total >= overhead && overhead >= 0.0, "{path}: {total} {overhead}");
        let timing = r.headers()["server-timing"].to_str().unwrap().to_owned();
        assert!(timing.starts_with("total;dur=") && timing.contains("upstream;dur="), "{timing}");
    }
    // Local answers are not invocations.
    let r = gw.client.get(gw.url("/health")).send().await.unwrap();
    assert!(r.headers().get("x-mlflow-gateway-duration-ms").is_none());
}
