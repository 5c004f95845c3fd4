//! The deprecated `palm` provider: MLflow's fixtures replayed (see tests/it/common/replay.rs)
//! and its 501 for streams before any upstream call (on the gateway of `providers::gemini`,
//! whose rule-violation and configuration-error tests cover PaLM too).

use super::gemini::{config, hi};
use crate::common::Gateway;
use crate::common::replay::{Case, replay_tests};
use crate::common::upstream::MockUpstream;
use serde_json::{Value, json};

const PALM: (&str, &str) = ("palm_api_base", "https://generativelanguage.googleapis.com/v1beta3/models/");

replay_tests! {
    palm_chat => Case::new("palm-chat", PALM);
    palm_completions => Case::new("palm-completions", PALM);
    palm_embeddings => Case::new("palm-embeddings", PALM);
}

#[tokio::test]
async fn palm_streams_are_501_before_any_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&upstream.url())).await;
    let (status, ct, text) = gw.post_text("/endpoints/palm-chat/invocations", &hi(true)).await;
    assert_eq!(status, 501);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"detail": "The chat streaming route is not implemented for PaLM models."})
    );
    let (status, body) =
        gw.post("/v1/completions", &json!({"model": "palm-completions", "prompt": "x", "stream": true})).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["error"]["message"], json!("The completions streaming route is not implemented for PaLM models."));
    assert!(upstream.requests().is_empty());
    gw.assert_alive().await;
}
