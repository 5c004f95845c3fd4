//! The audit log (`src/audit.rs`): one JSON line per request with who, what and how it went
//! (never a key or a body), the request id sent upstream too, and logrotate-style rotation.

use std::time::{Duration, Instant};

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const KEY_A: &str = "gw-key-team-a-0123456789";

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn audit_lines_with_rotation() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}),
    );
    let logs = tempfile::tempdir().unwrap();
    let audit = logs.path().join("audit.log");
    let cfg = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-x", "config": {"openai_api_key": "sk-audit-provider-key", "openai_api_base": upstream.url()}},
        "limit": {"calls": 100, "renewal_period": "day"}}],
        "routes": [{"name": "r", "task_type": "llm/v1/chat", "destinations": [{"name": "chat", "traffic_percentage": 100}]}],
        "aigw": {"audit": {"path": audit}, "auth": {"keys": [{"name": "team-a", "key": KEY_A}]}}});
    let gw = Gateway::start(&yaml(&cfg)).await;
    let auth = format!("Bearer {KEY_A}");
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", &auth)
        .header("x-request-id", "req-audit-1")
        .json(&json!({"model": "r", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = gw
        .client
        .post(gw.url("/endpoints/chat/invocations"))
        .header("authorization", "Bearer wrong-key-000000000")
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let read_lines = |path: &std::path::Path, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "audit lines missing: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The harness's readiness probe (GET /health) wrote the first line.
    let lines: Vec<Value> = read_lines(&audit, 3).into_iter().filter(|l| l["path"] != "/health").collect();
    let ok = &lines[0];
    assert_eq!(ok["request_id"], "req-audit-1");
    // The same id went upstream.
    assert_eq!(upstream.requests()[0].header("x-request-id"), Some("req-audit-1"));
    assert_eq!(ok["key"], "team-a");
    assert_eq!(ok["family"], "openai");
    assert_eq!(ok["target"], "r");
    assert_eq!(ok["endpoint"], "chat");
    assert_eq!(ok["provider"], "openai");
    assert_eq!(ok["model"], "gpt-x");
    assert_eq!(ok["status"], 200);
    assert_eq!((ok["tokens_in"].as_u64(), ok["tokens_out"].as_u64()), (Some(11), Some(7)));
    assert_eq!(ok["rate_limit"]["limit"], 100);
    assert_eq!(ok["rate_limit"]["limited"], false);
    assert!(ok["duration_ms"].as_f64().unwrap() > 0.0 && ok["upstream_ms"].as_f64().is_some());
    assert!(ok["bytes_in"].as_u64().unwrap() > 0 && ok["bytes_out"].as_u64().unwrap() > 0);
    assert!(ok["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ok["time"].as_str().unwrap().ends_with('Z'));
    let denied = &lines[1];
    assert_eq!(
        (denied["status"].as_u64(), denied["error"].as_str(), denied["key"].as_str()),
        (Some(401), Some("unauthorized"), None)
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains(KEY_A) && !text.contains("wrong-key") && !text.contains("sk-audit-provider-key"));

    // logrotate-style rotation: the file is moved away; a new one is started.
    std::fs::rename(&audit, logs.path().join("audit.log.1")).unwrap();
    common::wait_until(Duration::from_secs(10), "the audit log is reopened", || {
        gw.logs().contains(&format!("audit log {} reopened", audit.display()))
    })
    .await;
    let r = gw
        .client
        .post(gw.url("/endpoints/chat/invocations"))
        .header("authorization", &auth)
        .json(&ask())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let lines = read_lines(&audit, 1);
    assert_eq!(lines[0]["path"], "/endpoints/chat/invocations");
    assert_eq!(read_lines(&logs.path().join("audit.log.1"), 3).len(), 3);
}
