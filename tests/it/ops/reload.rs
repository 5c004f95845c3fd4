//! Hot reload: the gateway watches its YAML and swaps a valid new configuration in atomically;
//! an invalid or deleted file leaves the current one serving; SIGHUP forces a reload.
//! Changes are observed by polling the gateway (bounded), never by timing assertions.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, sse_data, yaml};
use serde_json::{Value, json};

fn mock(name: &str, reply: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": reply}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "x"}]})
}

/// Write a file atomically (temp file + rename), as deploy tools do.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Poll `check` until it holds (at most 10 s).
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    common::wait_until_async(Duration::from_secs(10), what, check).await;
}

/// aigw started on `config` as it is (a symlink stays one; the harness writes a plain file),
/// its output to `log` when given (a file in the watched directory must not matter).
struct OnPath {
    _child: common::KillOnDrop,
    client: reqwest::Client,
    url: String,
}

impl OnPath {
    fn start(config: &Path, log: Option<&Path>) -> OnPath {
        let port = common::free_port();
        let (out, err) = match log {
            Some(path) => {
                let file = std::fs::File::create(path).unwrap();
                (std::process::Stdio::from(file.try_clone().unwrap()), std::process::Stdio::from(file))
            }
            None => (std::process::Stdio::null(), std::process::Stdio::null()),
        };
        let child = Command::new(common::binary())
            .arg("--config-path")
            .arg(config)
            .args(["--port", &port.to_string()])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        OnPath {
            _child: common::KillOnDrop(child),
            client: common::client(),
            url: format!("http://127.0.0.1:{port}/endpoints/chat/invocations"),
        }
    }

    /// The `chat` endpoint's reply, `None` while it does not answer 200.
    async fn reply(&self) -> Option<String> {
        match self.client.post(&self.url).json(&ask()).send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["choices"][0]["message"]["content"].as_str().map(str::to_owned)),
            _ => None,
        }
    }
}

async fn answer(gw: &Gateway, name: &str) -> Option<String> {
    let (status, body) = gw.post(&format!("/endpoints/{name}/invocations"), &ask()).await;
    (status == 200).then(|| body["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn endpoints_change_under_load_without_a_failed_request() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("stable", "v1")]}))).await;
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (common::client(), gw.url("/endpoints/stable/invocations"));
            let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match client.post(&url).json(&ask()).send().await {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.unwrap();
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();

    // Add an endpoint.
    write_atomic(&gw.config_path, &yaml(&json!({"endpoints": [mock("stable", "v1"), mock("added", "new")]})));
    eventually("the added endpoint serves", || async { answer(&gw, "added").await.as_deref() == Some("new") }).await;
    // Change one in place (not atomically).
    std::fs::write(&gw.config_path, yaml(&json!({"endpoints": [mock("stable", "v2"), mock("added", "new")]}))).unwrap();
    eventually("the changed endpoint answers anew", || async { answer(&gw, "stable").await.as_deref() == Some("v2") })
        .await;
    // Remove one.
    write_atomic(&gw.config_path, &yaml(&json!({"endpoints": [mock("stable", "v2")]})));
    eventually("the removed endpoint is gone", || async { answer(&gw, "added").await.is_none() }).await;
    let (status, body) = gw.post("/endpoints/added/invocations", &ask()).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 50);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed during the reloads");
    assert!(gw.logs().contains("configuration reloaded"));
}

#[tokio::test]
async fn invalid_or_deleted_files_keep_the_current_configuration() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat", "first")]}))).await;
    // Invalid: the old configuration keeps serving, the log says what and where, no secret.
    write_atomic(
        &gw.config_path,
        &yaml(&json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
            "model": {"provider": "openai", "config": {"openai_api_key": "sk-reload-secret-xyz", "openai_api_type": "bogus"}}}]})),
    );
    eventually("the rejection is logged", || async { gw.logs().contains("reload rejected") }).await;
    let logs = gw.logs();
    assert!(
        logs.contains("gateway.yaml") && logs.contains("endpoint 'chat'") && logs.contains("openai_api_type"),
        "{logs}"
    );
    assert!(!logs.contains("sk-reload-secret-xyz"), "a secret reached the log");
    assert_eq!(answer(&gw, "chat").await.as_deref(), Some("first"));

    // Broken YAML too.
    write_atomic(&gw.config_path, "endpoints: [ {name: chat, ");
    eventually("the YAML error is logged", || async { gw.logs().matches("reload rejected").count() >= 2 }).await;
    assert_eq!(answer(&gw, "chat").await.as_deref(), Some("first"));

    // Deleted: keeps serving; recreated: loads.
    std::fs::remove_file(&gw.config_path).unwrap();
    eventually("the deletion is logged", || async { gw.logs().contains("was deleted") }).await;
    assert_eq!(answer(&gw, "chat").await.as_deref(), Some("first"));
    std::fs::write(&gw.config_path, yaml(&json!({"endpoints": [mock("chat", "recreated")]}))).unwrap();
    eventually("the recreated file loads", || async { answer(&gw, "chat").await.as_deref() == Some("recreated") })
        .await;
}

#[tokio::test]
async fn kubernetes_style_symlink_swap() {
    // /conf/gateway.yaml -> ..data/gateway.yaml, ..data -> ..v1 ; an update swaps ..data.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path();
    let v1 = conf.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("gateway.yaml"), yaml(&json!({"endpoints": [mock("chat", "one")]}))).unwrap();
    std::os::unix::fs::symlink("..v1", conf.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/gateway.yaml", conf.join("gateway.yaml")).unwrap();

    // The harness writes a plain file; start aigw on the symlink itself.
    let gw = OnPath::start(&conf.join("gateway.yaml"), Some(&conf.join("aigw.log")));
    let ask_once = || gw.reply();
    eventually("started", || async { ask_once().await.as_deref() == Some("one") }).await;

    let v2 = conf.join("..v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(v2.join("gateway.yaml"), yaml(&json!({"endpoints": [mock("chat", "two")]}))).unwrap();
    std::os::unix::fs::symlink("..v2", conf.join("..data_tmp")).unwrap();
    std::fs::rename(conf.join("..data_tmp"), conf.join("..data")).unwrap();
    std::fs::remove_dir_all(&v1).unwrap();
    eventually("the swapped version serves", || async { ask_once().await.as_deref() == Some("two") }).await;
}

#[tokio::test]
async fn sighup_reloads_rotated_file_secrets() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(
        200,
        json!({"object": "list", "data": [], "model": "m", "usage": {"prompt_tokens": 0, "total_tokens": 0}}),
    );
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("openai.key");
    std::fs::write(&key_file, "sk-old\n").unwrap();
    let gw = Gateway::start(&yaml(&json!({"endpoints": [{"name": "emb", "endpoint_type": "llm/v1/embeddings",
        "model": {"provider": "openai", "name": "m", "config": {"openai_api_key": key_file.to_str().unwrap(), "openai_api_base": upstream.url()}}}]})))
    .await;
    let input = json!({"input": "x"});
    let call = || gw.post("/endpoints/emb/invocations", &input);
    assert_eq!(call().await.0, 200);
    assert_eq!(upstream.last().header("authorization"), Some("Bearer sk-old"));

    // The key file changes; the config file does not: nothing reloads by itself. (A check that
    // something does not happen has nothing to wait for: it gives it the watcher's longest
    // debounce to happen.)
    std::fs::write(&key_file, "sk-new\n").unwrap();
    tokio::time::sleep(aigw::reload::DEBOUNCE_MAX).await;
    assert_eq!(call().await.0, 200);
    assert_eq!(upstream.last().header("authorization"), Some("Bearer sk-old"));

    // SIGHUP forces the reload.
    assert!(Command::new("kill").args(["-HUP", &gw.pid().to_string()]).status().unwrap().success());
    eventually("the rotated key is used", || async {
        call().await.0 == 200 && upstream.last().header("authorization") == Some("Bearer sk-new")
    })
    .await;
    gw.assert_alive().await;
}

#[tokio::test]
async fn quota_counters_survive_a_reload_of_unchanged_endpoints() {
    let limited = |calls: u64| {
        json!({"name": "chat", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock"},
               "limit": {"calls": calls, "renewal_period": "day"}})
    };
    let gw = Gateway::start(&yaml(&json!({"endpoints": [limited(2)]}))).await;
    // The quota clock stands still (common::LIMITS_NOW): the day does not end during the test.
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 200);
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 200);
    // Reload with another endpoint added; chat's limit is unchanged.
    write_atomic(&gw.config_path, &yaml(&json!({"endpoints": [limited(2), mock("other", "o")]})));
    eventually("reloaded", || async { answer(&gw, "other").await.is_some() }).await;
    assert_eq!(gw.post("/endpoints/chat/invocations", &ask()).await.0, 429, "the count survived the reload");
    // A changed limit starts a new count.
    write_atomic(&gw.config_path, &yaml(&json!({"endpoints": [limited(3), mock("other", "o")]})));
    eventually("the new limit applies", || async { gw.post("/endpoints/chat/invocations", &ask()).await.0 == 200 })
        .await;
}

#[tokio::test]
async fn a_stream_in_flight_finishes_on_its_snapshot() {
    let slow = json!({"name": "slow", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "mock", "config": {"reply": "one two three four five six seven eight", "chunk_delay_ms": 150}}});
    let gw = Gateway::start(&yaml(&json!({"endpoints": [slow]}))).await;
    let mut stream = common::Streaming::start(
        common::client()
            .post(gw.url("/endpoints/slow/invocations"))
            .json(&json!({"messages": [{"role": "user", "content": "x"}], "stream": true})),
    );
    stream.started().await;
    // Remove the endpoint while it streams.
    write_atomic(&gw.config_path, &yaml(&json!({"endpoints": [mock("other", "o")]})));
    eventually("reloaded", || async { answer(&gw, "other").await.is_some() }).await;
    let text = stream.text().await;
    let pieces: String = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(pieces, "one two three four five six seven eight", "{text}");
    assert!(!text.contains("\"error\""));
}

/// A config symlink repointed to a file of another name in another directory: the new target
/// is watched from then on, so later in-place edits of it are served too (no SIGHUP needed).
#[tokio::test]
async fn a_repointed_symlink_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["a", "b", "conf"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("a/one.yaml"), yaml(&json!({"endpoints": [mock("chat", "one")]}))).unwrap();
    std::fs::write(root.join("b/two.yaml"), yaml(&json!({"endpoints": [mock("chat", "two")]}))).unwrap();
    let link = root.join("conf/gateway.yaml");
    std::os::unix::fs::symlink(root.join("a/one.yaml"), &link).unwrap();
    let gw = OnPath::start(&link, None);
    let ask_once = || gw.reply();
    eventually("started", || async { ask_once().await.as_deref() == Some("one") }).await;
    // Repoint the link atomically.
    let tmp = root.join("conf/gateway.yaml.new");
    std::os::unix::fs::symlink(root.join("b/two.yaml"), &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    eventually("the new target serves", || async { ask_once().await.as_deref() == Some("two") }).await;
    // Edit the new target in place.
    std::fs::write(root.join("b/two.yaml"), yaml(&json!({"endpoints": [mock("chat", "three")]}))).unwrap();
    eventually("an edit of the new target serves", || async { ask_once().await.as_deref() == Some("three") }).await;
    // The old target no longer matters: edited, then the new target edited after it, the old
    // edit is never served while the new one gets picked up.
    std::fs::write(root.join("a/one.yaml"), yaml(&json!({"endpoints": [mock("chat", "stale")]}))).unwrap();
    std::fs::write(root.join("b/two.yaml"), yaml(&json!({"endpoints": [mock("chat", "four")]}))).unwrap();
    let served = std::cell::RefCell::new(Vec::new());
    eventually("the later edit of the new target serves", || async {
        let reply = ask_once().await;
        served.borrow_mut().push(reply.clone());
        reply.as_deref() == Some("four")
    })
    .await;
    let served = served.into_inner();
    assert!(served.iter().all(|r| matches!(r.as_deref(), Some("three" | "four"))), "{served:?}");
}

/// A symlinked directory on the way to the file (`conf/gateway.yaml -> ../srv/current/gateway.yaml`,
/// `current -> releases/v1`) repointed to another release: the new release serves, and later
/// in-place edits of its file too.
#[tokio::test]
async fn a_repointed_directory_symlink_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["conf", "srv/releases/v1", "srv/releases/v2"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("srv/releases/v1/gateway.yaml"), yaml(&json!({"endpoints": [mock("chat", "v1")]})))
        .unwrap();
    std::fs::write(root.join("srv/releases/v2/gateway.yaml"), yaml(&json!({"endpoints": [mock("chat", "v2")]})))
        .unwrap();
    std::os::unix::fs::symlink("releases/v1", root.join("srv/current")).unwrap();
    let link = root.join("conf/gateway.yaml");
    std::os::unix::fs::symlink(root.join("srv/current/gateway.yaml"), &link).unwrap();
    let gw = OnPath::start(&link, None);
    let ask_once = || gw.reply();
    eventually("started", || async { ask_once().await.as_deref() == Some("v1") }).await;
    let tmp = root.join("srv/current.new");
    std::os::unix::fs::symlink("releases/v2", &tmp).unwrap();
    std::fs::rename(&tmp, root.join("srv/current")).unwrap();
    eventually("the new release serves", || async { ask_once().await.as_deref() == Some("v2") }).await;
    std::fs::write(root.join("srv/releases/v2/gateway.yaml"), yaml(&json!({"endpoints": [mock("chat", "v2-edited")]})))
        .unwrap();
    eventually("an edit in the new release serves", || async { ask_once().await.as_deref() == Some("v2-edited") })
        .await;
}
