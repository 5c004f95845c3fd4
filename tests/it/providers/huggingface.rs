//! Hugging Face TGI through the real gateway: MLflow's fixtures replayed (see
//! tests/it/common/replay.rs), TGI's error body relayed, the `n` rule, and JSON 501s (chat,
//! streaming) before any upstream call; `hf_server_url` is required.

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::json;

// ---- MLflow fixtures replayed ----

const HF: (&str, &str) = ("hf_server_url", "https://tgi.example.com");

replay_tests! {
    huggingface_completions => Case::new("huggingface-completions", HF);
}

// ---- the gateway ----

fn config(url: &str) -> String {
    let ep = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "huggingface-text-generation-inference", "name": "falcon-7b",
                         "config": {"hf_server_url": url}}})
    };
    yaml(&json!({"endpoints": [ep("tgi", "llm/v1/completions"), ep("tgi-chat", "llm/v1/chat")]}))
}

#[tokio::test]
async fn tgi_errors_and_rules() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    upstream.push(Reply::Json(
        422,
        json!({"error": "Input validation error: `inputs` must have less than 2048 tokens. Given: 3000", "error_type": "validation"}),
    ));
    let (status, body) = gw.post("/endpoints/tgi/invocations", &json!({"prompt": "x", "temperature": 0.1})).await;
    assert_eq!(
        (status, body),
        (422, json!({"detail": "Input validation error: `inputs` must have less than 2048 tokens. Given: 3000"}))
    );
    let sent = upstream.last();
    assert_eq!(sent.target, "/generate");
    assert_eq!(sent.json()["parameters"]["temperature"], json!(5.0));

    let (status, body) = gw.post("/v1/completions", &json!({"model": "tgi", "prompt": "x", "n": 3})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        json!("'n' must be '1' for the Text Generation Inference provider.Received value: '3'.")
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn unsupported_calls_are_json_501() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let (status, body) = gw.post("/endpoints/tgi/invocations", &json!({"prompt": "x", "stream": true})).await;
    assert_eq!(
        (status, body),
        (
            501,
            json!({"detail": "The completions streaming route is not implemented for Hugging Face Text Generation Inference models."})
        )
    );
    let (status, body) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "tgi-chat", "messages": [{"role": "user", "content": "x"}], "stream": true}),
        )
        .await;
    assert_eq!(status, 501);
    assert_eq!(
        body["error"]["message"],
        json!("The chat route is not implemented for Hugging Face Text Generation Inference models.")
    );
    assert!(upstream.requests().is_empty());
}

#[test]
fn server_url_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/completions",
            "model": {"provider": "huggingface-text-generation-inference", "name": "f", "config": {}}}]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(msg.contains("model.config.hf_server_url") && msg.contains("Field required"), "{msg}");
}
