//! MLflow Model Serving through the real gateway: MLflow's fixtures replayed (see
//! tests/it/common/replay.rs), one chat message only (422), unusable `predictions` → 502, the
//! scoring server's error body relayed, JSON 501 for streams, and `model_server_url` required.

use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, yaml};
use serde_json::json;

// ---- MLflow fixtures replayed ----

const MLFLOW_SERVING: (&str, &str) = ("model_server_url", "http://127.0.0.1:6000");

replay_tests! {
    mlflow_model_serving_chat => Case::new("mlflow-model-serving-chat", MLFLOW_SERVING);
    mlflow_model_serving_completions => Case::new("mlflow-model-serving-completions", MLFLOW_SERVING);
    mlflow_model_serving_embeddings => Case::new("mlflow-model-serving-embeddings", ("model_server_url", "http://127.0.0.1:5002"));
}

// ---- the gateway ----

fn config(url: &str) -> String {
    let ep = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "mlflow-model-serving", "name": "m", "config": {"model_server_url": url}}})
    };
    yaml(
        &json!({"endpoints": [ep("chat", "llm/v1/chat"), ep("completions", "llm/v1/completions"), ep("emb", "llm/v1/embeddings")]}),
    )
}

#[tokio::test]
async fn rules_and_unusable_answers() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let (status, body) = gw
        .post(
            "/endpoints/chat/invocations",
            &json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"detail": "MLflow chat models are only capable of processing a single query at a time. The request submitted consists of 2 queries."})
        )
    );
    assert!(upstream.requests().is_empty());

    upstream.push(Reply::Json(200, json!({"outputs": ["x"]})));
    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (502, json!({"detail": "The response is missing the required key: predictions."})));

    upstream.push(Reply::Json(200, json!({"predictions": []})));
    let (status, body) = gw.post("/v1/embeddings", &json!({"model": "emb", "input": "a"})).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["message"], json!("The input list is empty"));
    assert_eq!(upstream.last().json(), json!({"inputs": ["a"]}));

    upstream.push(Reply::Json(200, json!({"predictions": {"candidates": ["one"]}})));
    let (status, body) =
        gw.post("/endpoints/chat/invocations", &json!({"messages": [{"role": "user", "content": "q"}]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], json!("one"));
    assert_eq!(upstream.last().json(), json!({"inputs": ["q"], "params": {"n": 1}}));
}

#[tokio::test]
async fn scoring_server_errors_and_streams() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let err = json!({"error_code": "BAD_REQUEST", "message": "Invalid input. Expected a list of strings."});
    upstream.push(Reply::Json(400, err.clone()));
    let (status, body) = gw.post("/endpoints/completions/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (400, json!({"detail": err})));
    upstream.push(Reply::Json(400, err.clone()));
    let (status, body) = gw.post("/v1/completions", &json!({"model": "completions", "prompt": "p"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], json!("Invalid input. Expected a list of strings."));

    let (status, body) = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "chat", "messages": [{"role": "user", "content": "q"}], "stream": true}),
        )
        .await;
    assert_eq!(status, 501);
    assert_eq!(
        body["error"]["message"],
        json!("The chat streaming route is not implemented for MLflow Model Serving models.")
    );
    assert_eq!(upstream.requests().len(), 2);
}

#[test]
fn server_url_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.yaml");
    std::fs::write(
        &path,
        yaml(&json!({"endpoints": [{"name": "x", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "mlflow-model-serving", "name": "m", "config": {"model_server_url": 5}}}]})),
    )
    .unwrap();
    let msg = aigw::snapshot::Snapshot::load(&path).err().unwrap().to_string();
    assert!(msg.contains("model.config.model_server_url"), "{msg}");
}
