//! AI21 Labs through the real gateway: MLflow's fixtures replayed (see tests/it/common/replay.rs),
//! the j2 model check at load (config case 36, naming `model.name`), AI21's error body relayed, and
//! JSON 501s (streaming, chat) before any call.

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::json;

// ---- MLflow fixtures replayed ----

const AI21: (&str, &str) = ("ai21labs_api_base", "https://api.ai21.com/studio/v1");

replay_tests! {
    ai21labs_completions => Case::new("ai21labs-completions", AI21);
}

// ---- the gateway ----

fn config(base: &str) -> String {
    let ep = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "ai21labs", "name": "j2-ultra",
                         "config": {"ai21labs_api_key": "key", "ai21labs_api_base": base}}})
    };
    yaml(&json!({"endpoints": [ep("ai21", "llm/v1/completions"), ep("ai21-chat", "llm/v1/chat")]}))
}

#[tokio::test]
async fn ai21_errors_are_relayed() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/studio/v1", upstream.url()))).await;
    let forbidden = json!({"detail": "Forbidden: Bad or missing API token."});
    upstream.push(Reply::Json(401, forbidden.clone()));
    let (status, body) = gw.post("/endpoints/ai21/invocations", &json!({"prompt": "x", "max_tokens": 4})).await;
    // MLflow relays a JSON error without an `error` object whole, as the detail.
    assert_eq!((status, body), (401, json!({"detail": forbidden})));
    let sent = upstream.last();
    assert_eq!(sent.target, "/studio/v1/j2-ultra/complete");
    assert_eq!(sent.header("authorization"), Some("Bearer key"));
    assert_eq!(sent.json(), json!({"prompt": "x", "maxTokens": 4, "numResults": 1}));
}

#[tokio::test]
async fn unsupported_calls_are_json_501() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let (status, body) = gw.post("/endpoints/ai21/invocations", &json!({"prompt": "x", "stream": true})).await;
    assert_eq!(
        (status, body),
        (501, json!({"detail": "The completions streaming route is not implemented for AI21Labs models."}))
    );
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "ai21-chat", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(status, 501);
    assert_eq!(body["error"]["message"], json!("The chat route is not implemented for AI21Labs models."));
    assert!(upstream.requests().is_empty());
}

#[test]
fn only_j2_models_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/completions",
            "model": {"provider": "ai21labs", "name": "j2-foo", "config": {"ai21labs_api_key": "k"}}}]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(
        msg.contains(
            "An Unsupported AI21Labs model has been specified: 'j2-foo'. Please see documentation for supported models."
        ),
        "{msg}"
    );
    assert!(msg.contains("model.name"), "{msg}");
}
