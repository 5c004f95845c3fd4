//! MosaicML through the real gateway: MLflow's fixtures replayed (see tests/it/common/replay.rs),
//! the chat model check at load (config case 35, naming `model.name`), the token-allowance 500 →
//! 422 mapping, other errors relayed, 422 for roles a Llama-2 prompt cannot hold, JSON 501 for
//! streams before any call, and the deprecation warning.

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::json;

// ---- MLflow fixtures replayed ----

const MOSAIC: (&str, &str) = ("mosaicml_api_base", "https://models.hosted-on.mosaicml.hosting");

replay_tests! {
    mosaicml_chat => Case::new("mosaicml-chat", MOSAIC);
    mosaicml_completions => Case::new("mosaicml-completions", MOSAIC);
}

// ---- the gateway ----

fn config(base: &str) -> String {
    let ep = |name: &str, ty: &str, model: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "mosaicml", "name": model,
                         "config": {"mosaicml_api_key": "key", "mosaicml_api_base": base}}})
    };
    yaml(&json!({"endpoints": [
        ep("chat", "llm/v1/chat", "llama2-70b-chat"),
        ep("completions", "llm/v1/completions", "mpt-7b-instruct"),
        ep("embeddings", "llm/v1/embeddings", "instructor-large"),
    ]}))
}

#[tokio::test]
async fn token_allowance_errors_are_422_others_relayed() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let too_long = json!({"message": "Error: prompt token count (5123) exceeds the limit of 4096"});
    upstream.push(Reply::Json(500, too_long.clone()));
    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "x"})).await;
    assert_eq!((status, body), (422, json!({"detail": too_long})));
    assert_eq!(upstream.last().target, "/mpt-7b-instruct/v1/predict");
    assert_eq!(upstream.last().header("authorization"), Some("key"));

    upstream.push(Reply::Json(500, json!({"message": "Error: max output tokens is limited to 2048"})));
    let (status, body) = gw.post("/v1/completions", &json!({"model": "completions", "prompt": "x"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["message"], json!("Error: max output tokens is limited to 2048"));

    upstream.push(Reply::Json(500, json!({"message": "Internal error"})));
    let (status, _) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "x"})).await;
    assert_eq!(status, 500);

    upstream.push(Reply::Json(401, json!({"message": "Invalid API key"})));
    let (status, body) = gw.post("/endpoints/embeddings/invocations", &json!({"input": "x"})).await;
    assert_eq!((status, body), (401, json!({"detail": {"message": "Invalid API key"}})));
    assert_eq!(upstream.last().json(), json!({"inputs": ["x"]}));
    gw.assert_alive().await;
}

#[tokio::test]
async fn streams_and_bad_roles_never_reach_mosaicml() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let (status, body) = gw
        .post("/endpoints/chat/invocations", &json!({"messages": [{"role": "user", "content": "x"}], "stream": true}))
        .await;
    assert_eq!(
        (status, body),
        (501, json!({"detail": "The chat streaming route is not implemented for MosaicML models."}))
    );
    let (status, body) =
        gw.post("/v1/completions", &json!({"model": "completions", "prompt": "x", "stream": true})).await;
    assert_eq!(status, 501);
    assert_eq!(
        body["error"]["message"],
        json!("The completions streaming route is not implemented for MosaicML models.")
    );
    let (status, body) = gw
        .post(
            "/endpoints/chat/invocations",
            &json!({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c"}, {"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"],
        json!(
            "An invalid request structure was submitted. Invalid role tool inputted. Must be one of 'system', 'user', or 'assistant'."
        )
    );
    assert!(upstream.requests().is_empty());
    assert!(gw.logs().contains("the mosaicml provider is deprecated"));
}

#[test]
fn chat_model_must_be_llama2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "mosaicml", "name": "mpt-7b", "config": {"mosaicml_api_key": "k"}}}]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(
        msg.contains(
            "An invalid model has been specified for the chat route. 'mpt-7b'. Ensure the model selected starts with one of: ['llama2']"
        ),
        "{msg}"
    );
    assert!(msg.contains("model.name"), "{msg}");
}
