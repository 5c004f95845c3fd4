//! Fixture replay (see tests/common/replay.rs) for `gemini`, plus exact checks of the
//! time-derived ids and a `/v1` streaming run.
//!
//! Gemini answers carry ids MLflow derives from the clock (`gemini-chat-<now>`,
//! `gemini-chat-stream-<now>`, `gemini-completions-stream-<now>`), recorded at frozen time
//! 1700000000. The replay cases ignore `created` and `id` (which also hides the tool-call ids
//! nested in `tool_calls`), so `*_exact_ids` runs each fixture once more and checks every id:
//! time-derived ones must be `<prefix>-<created>` with `created` taken during the call, all
//! others (tool-call ids: `functionCall.id` or `call_` + md5) must equal the fixture's.

#[path = "it/common/mod.rs"]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::replay::{Case, default_reply, expected_events, point_at, replay};
use common::upstream::MockUpstream;
use common::{Gateway, assert_json_eq, fixture, sse_data, yaml};
use serde_json::{Value, json};

const GEMINI: (&str, &str) = ("gemini_api_base", "https://generativelanguage.googleapis.com/v1beta/models");

/// Time-derived values differ from the recording; `*_exact_ids` checks them.
const TIME: &[&str] = &["created", "id"];

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

replay_tests! {
    gemini_chat => Case { ignore: TIME, ..Case::new("gemini-chat", GEMINI) };
    gemini_chat_tools => Case { ignore: TIME, ..Case::new("gemini-chat-tools", GEMINI) };
    gemini_chat_stream => Case { ignore: TIME, ..Case::new("gemini-chat-stream", GEMINI) };
    gemini_completions => Case::new("gemini-completions", GEMINI);
    gemini_completions_stream => Case { ignore: TIME, ..Case::new("gemini-completions-stream", GEMINI) };
    gemini_completions_stream_v1 => Case { ignore: TIME, via_v1: true, ..Case::new("gemini-completions-stream", GEMINI) };
    gemini_embeddings_single => Case::new("gemini-embeddings-single", GEMINI);
    gemini_embeddings_batch => Case::new("gemini-embeddings-batch", GEMINI);
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Replace the fixture's time-derived values in `expected` with the ones `got` carries, after
/// checking that they are consistent: `created` within [`t0`, `t1`] and every id ending in the
/// frozen time `-1700000000` equal to the same prefix followed by `-<created>`.
fn patch_time(expected: &mut Value, got: &Value, t0: u64, t1: u64) {
    let created = got["created"].as_u64().expect("created");
    assert!((t0..=t1).contains(&created), "created {created} outside the call [{t0}, {t1}]");
    assert_eq!(expected["created"], json!(1_700_000_000));
    expected["created"] = json!(created);
    if let Some(id) = expected["id"].as_str()
        && let Some(prefix) = id.strip_suffix("-1700000000")
    {
        let want = format!("{prefix}-{created}");
        assert_eq!(got["id"], json!(want), "time-derived id");
        expected["id"] = json!(want);
    }
}

async fn exact_ids(name: &'static str) {
    let fx = fixture(&format!("{name}.json"));
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new(name, GEMINI), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;
    upstream.push(default_reply(&fx, None));

    let t0 = now();
    let (status, _, text) = gw.post_text(fx["client_path"].as_str().unwrap(), &fx["client_request"]).await;
    let t1 = now();
    assert_eq!(status, 200, "{text}");
    if fx["expected_client_response"].is_array() {
        let got: Vec<Value> = sse_data(&text).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
        let mut expected = expected_events(&fx);
        assert_eq!(got.len(), expected.len(), "{text}");
        for (g, e) in got.iter().zip(&mut expected) {
            patch_time(e, g, t0, t1);
            assert_json_eq(g, e, &[]);
        }
    } else {
        let got: Value = serde_json::from_str(&text).unwrap();
        let mut expected = fx["expected_client_response"].clone();
        patch_time(&mut expected, &got, t0, t1);
        assert_json_eq(&got, &expected, &[]);
    }
}

#[tokio::test]
async fn gemini_chat_exact_ids() {
    exact_ids("gemini-chat").await;
}

#[tokio::test]
async fn gemini_chat_tools_exact_ids() {
    // The tool-call id MLflow generates when Gemini gives none: "call_" + md5 of
    // `get_weather/{"location": "Singapore"}`.
    let fx = fixture("gemini-chat-tools.json");
    assert_eq!(
        fx["expected_client_response"]["choices"][0]["message"]["tool_calls"][0]["id"],
        json!("call_c8800a29b7c6d0e92541b3fa793048ab")
    );
    exact_ids("gemini-chat-tools").await;
}

#[tokio::test]
async fn gemini_chat_stream_exact_ids() {
    exact_ids("gemini-chat-stream").await;
}

#[tokio::test]
async fn gemini_completions_stream_exact_ids() {
    exact_ids("gemini-completions-stream").await;
}

/// `/v1/chat/completions` with `stream: true`: OpenAI framing (`[DONE]` last), the deltas
/// concatenate to the whole answer, exactly one chunk has a finish reason, usage arrives.
#[tokio::test]
async fn v1_chat_stream() {
    let fx = fixture("gemini-chat-stream.json");
    let upstream = MockUpstream::start().await;
    let mut endpoint = fx["endpoint_config"].clone();
    point_at(&mut endpoint, &Case::new("gemini-chat-stream", GEMINI), &upstream.url());
    let gw = Gateway::start(&yaml(&json!({ "endpoints": [endpoint] }))).await;

    for split in [None, Some(5)] {
        upstream.push(default_reply(&fx, split));
        let (status, ct, text) = gw
            .post_text(
                "/v1/chat/completions",
                &json!({"model": "gemini-chat", "messages": [{"role": "user", "content": "Hi"}], "stream": true}),
            )
            .await;
        assert_eq!(status, 200, "{text}");
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let mut events = sse_data(&text);
        assert_eq!(events.pop().as_deref(), Some("[DONE]"), "{text}");
        let chunks: Vec<Value> = events.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let content: String =
            chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
        assert_eq!(content, "Hello world");
        let finishes: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finishes, vec![&json!("stop")]);
        assert!(
            chunks.iter().all(|c| c["object"] == json!("chat.completion.chunk") && c["model"] == "gemini-2.0-flash")
        );
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], json!(4));
        let req = upstream.last();
        assert_eq!(req.target, "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
        assert_eq!(req.json()["contents"], json!([{"role": "user", "parts": [{"text": "Hi"}]}]));
    }
    gw.assert_alive().await;
}
