//! Limits and budgets shared by a fleet through a real `redis-server` (`aigw.shared_state`;
//! `common::redis` starts one per test on a free loopback port): several real aigw processes on
//! one configuration count together, exactly; counts survive a restart and a graceful upgrade;
//! Redis stopped, restarted empty or frozen mid-load gives 503 (`deny`) or in-process counting
//! (`allow`), a log line per outage, a metric, and recovery without a restart.
//!
//! The gateways' quota clock stands still at `common::LIMITS_NOW`, which debug builds pass to
//! the admission script in place of Redis's own clock, so no test straddles a window;
//! `windows_follow_redis_clock` runs on Redis's clock with day windows.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::tokens::{hi, settled, ten_words, usage};
use crate::common::redis::Redis;
use crate::common::{self, Gateway, free_port, yaml};
use serde_json::{Value, json};

/// `aigw.shared_state` for `redis`: a generous `timeout_ms` (tests run in parallel on a busy
/// machine) unless `extra` sets one.
fn shared_state(redis: &Redis, extra: Value) -> Value {
    let mut s = json!({"url": redis.url(), "timeout_ms": 10000});
    if let Value::Object(o) = extra {
        for (k, v) in o {
            s[k] = v;
        }
    }
    s
}

fn v1(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
}

/// POST `body` to `path` on `port`: status, `x-ratelimit-remaining`, body.
async fn post(client: &reqwest::Client, port: u16, path: &str, body: &Value) -> (u16, Option<u64>, Value) {
    let r = client.post(format!("http://127.0.0.1:{port}{path}")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    let remaining = r.headers().get("x-ratelimit-remaining").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, remaining, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn three_instances_let_exactly_the_limit_through_under_64_clients() {
    let redis = Redis::start();
    let endpoint = ten_words("chat", json!({"limit": {"calls": 100, "renewal_period": "day"}}));
    let with_url =
        yaml(&json!({"endpoints": [endpoint.clone()], "aigw": {"shared_state": shared_state(&redis, json!({}))}}));
    let without = yaml(&json!({"endpoints": [endpoint]}));
    // The third reads MLflow's variable instead of the YAML.
    let url = redis.url();
    let gws = [
        Gateway::start(&with_url).await,
        Gateway::start(&with_url).await,
        Gateway::start_with(&without, &[("MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI", url.as_str())], &[]).await,
    ];
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = common::client();
            let ports = ports.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for j in 0..4 {
                    out.push(post(&client, ports[(i + j) % 3], "/v1/chat/completions", &v1("chat")).await);
                }
                out
            })
        })
        .collect();
    let mut remaining = Vec::new();
    let mut limited = 0;
    for t in tasks {
        for (status, left, body) in t.await.unwrap() {
            match status {
                200 => remaining.push(left.unwrap()),
                429 => {
                    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
                    limited += 1;
                }
                other => panic!("unexpected status {other}: {body}"),
            }
        }
    }
    // Exactly 100 passed, and each saw its own place in the one shared count.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..100).collect::<Vec<u64>>());
    assert_eq!(limited, 156);
    let keys = redis.keys("aigw:c:chat:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(redis.int(&keys[0]), 100);
    for g in &gws {
        assert!(!g.logs().contains("cannot be reached"), "{}", g.logs());
    }
}

/// The overshoot bound of docs/limits.md, measured: each call reserves 11 tokens (an estimated
/// prompt of 9 and max_tokens 2) and uses 21 (the mock ignores max_tokens and answers twenty
/// words), so each exceeds its reservation by 10. With 32 clients, at most 64 calls are admitted
/// and not yet settled at any time (each client's call in flight, and its previous one whose
/// settle may still be on its way): usage may exceed the limit by at most 64 * 10.
#[tokio::test]
async fn tokens_and_a_budget_across_two_instances_under_32_clients() {
    let redis = Redis::start();
    let twenty = "a b c d e f g h i j k l m n o p q r s t";
    let cfg = yaml(&json!({
        "endpoints": [
            {"name": "chat", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": twenty}},
             "limit": {"tokens": 1000, "renewal_period": "day"}},
            ten_words("priced", json!({"pricing": {"input": 1000, "output": 1000}})),
        ],
        "aigw": {"shared_state": shared_state(&redis, json!({})),
                 "budgets": [{"name": "priced-daily", "usd": 0.2, "renewal_period": "day", "endpoints": ["priced"]}]}
    }));
    let gws = [Gateway::start(&cfg).await, Gateway::start(&cfg).await];
    let ports: Vec<u16> = gws.iter().map(|g| g.port).collect();
    let load = |model: &'static str, max_tokens: u64, code: &'static str| {
        let ports = ports.clone();
        async move {
            let tasks: Vec<_> = (0..32)
                .map(|i| {
                    let client = common::client();
                    let ports = ports.clone();
                    tokio::spawn(async move {
                        let body = json!({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]});
                        let mut ok = 0u64;
                        for j in 0..6 {
                            let (status, _, v) = post(&client, ports[(i + j) % 2], "/v1/chat/completions", &body).await;
                            match status {
                                200 => ok += 1,
                                429 => assert_eq!(v["error"]["code"], code, "{v}"),
                                other => panic!("unexpected status {other}: {v}"),
                            }
                        }
                        ok
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += t.await.unwrap();
            }
            ok
        }
    };

    // Tokens.
    let ok = load("chat", 2, "token_limit_exceeded").await;
    let used = 21 * ok;
    let key = redis.keys("aigw:t:chat:*").pop().expect("the token counter");
    common::wait_until(Duration::from_secs(10), "every call settled", || redis.int(&key) == used as i64).await;
    eprintln!("token limit 1000: {ok} calls admitted, {used} tokens used (bound 1000 + 640)");
    assert!(used <= 1000 + 64 * 10, "{used} tokens used");
    // A call was refused only when the count, reservations included, left less than 11: the
    // calls' real use cannot end below 990.
    assert!(used > 1000 - 11, "{used} tokens used");

    // The budget: $0.001 a token; each call reserves 29 tokens ($0.029) and uses 11 ($0.011),
    // so it is never exceeded.
    let ok = load("priced", 20, "budget_exceeded").await;
    async fn spent(gw: &Gateway) -> f64 {
        usage(gw, None).await["budgets"][0]["spent_usd"].as_f64().unwrap()
    }
    let want = ok as f64 * 0.011;
    common::wait_until_async(Duration::from_secs(10), "the budget settled", || async {
        (spent(&gws[0]).await - want).abs() < 1e-9
    })
    .await;
    assert!(want <= 0.2 + 1e-9, "spent {want}");
    // One at a time, calls are admitted until what is left is under one reservation.
    let mut total = ok;
    loop {
        let (status, _, v) = post(
            &gws[(total % 2) as usize].client,
            gws[(total % 2) as usize].port,
            "/v1/chat/completions",
            &json!({"model": "priced", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        if status == 429 {
            assert_eq!(v["error"]["code"], "budget_exceeded");
            assert_eq!(v["error"]["message"], "Budget 'priced-daily' exhausted: 0.2 USD per 1 day");
            break;
        }
        assert_eq!(status, 200);
        total += 1;
        settled(&gws[0], None, "/budgets/0/spent_usd", json!((total as f64 * 0.011 * 1e9).round() / 1e9)).await;
    }
    let spent = spent(&gws[1]).await;
    assert!(spent <= 0.2 + 1e-9 && spent > 0.2 - 0.029, "spent {spent}");
}

/// An aigw process on `dir/gateway.yaml`, with Pingora settings `conf` (pid file, upgrade socket).
fn spawn(dir: &std::path::Path, port: u16, extra: &[&str], log: &str) -> Child {
    let out = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(common::binary())
        .arg("--config-path")
        .arg(dir.join("gateway.yaml"))
        .args(["--port", &port.to_string(), "-c"])
        .arg(dir.join("pingora.yaml"))
        .args(extra)
        .env("RUST_LOG", "info")
        .env(aigw::limits::TEST_NOW_ENV, common::LIMITS_NOW.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn counts_survive_a_restart_and_a_graceful_upgrade() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = json!({"endpoints": [ten_words("chat", json!({"limit": {"calls": 5, "renewal_period": "day"}}))],
                     "aigw": {"shared_state": shared_state(&redis, json!({}))}});
    std::fs::write(d.join("gateway.yaml"), yaml(&cfg)).unwrap();
    std::fs::write(
        d.join("pingora.yaml"),
        format!(
            "---\nversion: 1\nthreads: 2\npid_file: {}\nupgrade_sock: {}\ngrace_period_seconds: 60\ngraceful_shutdown_timeout_seconds: 2\n",
            d.join("aigw.pid").display(),
            d.join("upgrade.sock").display()
        ),
    )
    .unwrap();
    let port = free_port();
    let client = common::client();
    let ready = |client: &reqwest::Client| {
        let client = client.clone();
        async move {
            common::wait_until_async(Duration::from_secs(20), "the gateway serves", || async {
                client
                    .get(format!("http://127.0.0.1:{port}/health"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await
        }
    };
    let body = hi();
    let call = || post(&client, port, "/endpoints/chat/invocations", &body);

    let mut first = common::KillOnDrop(spawn(d, port, &[], "first.log"));
    ready(&client).await;
    assert_eq!(call().await.1, Some(4));
    assert_eq!(call().await.1, Some(3));
    // A crash and a restart: the count is Redis's.
    let _ = first.0.kill();
    let _ = first.0.wait();
    let old = common::KillOnDrop(spawn(d, port, &[], "old.log"));
    ready(&client).await;
    assert_eq!(call().await.1, Some(2));
    // A graceful upgrade (SIGQUIT, then a new process with -u): the count goes on.
    assert!(Command::new("kill").args(["-QUIT", &old.0.id().to_string()]).status().unwrap().success());
    let new = common::KillOnDrop(spawn(d, port, &["-u"], "new.log"));
    let new_pid = new.0.id();
    common::wait_until_async(Duration::from_secs(30), "the new process listens", || async {
        common::listens_on(new_pid, port) == Some(true)
    })
    .await;
    // Whichever process answers, the count is one.
    let fresh = common::client();
    assert_eq!(post(&fresh, port, "/endpoints/chat/invocations", &hi()).await.1, Some(1));
    assert_eq!(post(&fresh, port, "/endpoints/chat/invocations", &hi()).await.1, Some(0));
    let (status, _, body) = post(&fresh, port, "/endpoints/chat/invocations", &hi()).await;
    assert_eq!((status, body), (429, json!({"error": "Rate limit exceeded: 5 per 1 day"})));
    drop(old);
}

/// A background load of `clients` loops on `port` until stopped: statuses counted.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
    other: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, unavailable) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let other = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|i| {
                let (stop, ok, unavailable, other) = (stop.clone(), ok.clone(), unavailable.clone(), other.clone());
                let client = common::client();
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // Every family: its own 503 shape.
                        let (path, body) = match (i + n) % 3 {
                            0 => ("/v1/chat/completions", v1("chat")),
                            1 => ("/endpoints/chat/invocations", hi()),
                            _ => ("/v1/messages", json!({"model": "chat", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})),
                        };
                        let r = client.post(format!("http://127.0.0.1:{port}{path}")).json(&body).send().await.unwrap();
                        let status = r.status().as_u16();
                        let retry = r.headers().get("retry-after").is_some();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        let shaped = match path {
                            "/v1/chat/completions" => v["error"]["code"] == "shared_state_unavailable",
                            "/v1/messages" => v["error"]["type"] == "overloaded_error",
                            _ => v["detail"].as_str().is_some_and(|d| d.contains("shared state")),
                        };
                        match status {
                            200 => ok.fetch_add(1, Ordering::Relaxed),
                            503 if retry && shaped => unavailable.fetch_add(1, Ordering::Relaxed),
                            _ => {
                                other.lock().unwrap().push(format!("{path}: {status} {v}"));
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Load { stop, ok, unavailable, other, tasks }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::Relaxed)
    }

    async fn served(&self, more: usize, what: &str) {
        let target = self.ok() + more;
        common::wait_until(Duration::from_secs(30), what, || self.ok() >= target).await;
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        self.other.lock().unwrap().clone()
    }
}

fn errors_metric(text: &str, kind: &str) -> u64 {
    let needle = format!("aigw_shared_state_errors_total{{kind=\"{kind}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&needle)?.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn redis_stopped_restarted_and_frozen_under_deny() {
    let mut redis = Redis::start();
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [ten_words("chat", json!({"limit": {"calls": 100000, "renewal_period": "day"}}))],
        "aigw": {"shared_state": shared_state(&redis, json!({"timeout_ms": 50, "on_unavailable": "deny"}))}
    })))
    .await;
    let load = Load::start(gw.port, 8);
    load.served(30, "served with Redis up").await;
    // Down: every request gets the family's 503 with Retry-After, none waits.
    redis.stop();
    let before = load.unavailable();
    common::wait_until(Duration::from_secs(30), "503s while Redis is down", || load.unavailable() >= before + 30).await;
    // Back, empty (no persistence): served again without a restart of aigw; the lost counts and
    // the lost script cache are noticed.
    redis.restart();
    load.served(30, "served again after Redis restarted").await;
    // Frozen (connected but silent): each decision gives up after timeout_ms.
    redis.pause(true);
    let before = load.unavailable();
    common::wait_until(Duration::from_secs(30), "503s while Redis is frozen", || load.unavailable() >= before + 10)
        .await;
    redis.pause(false);
    load.served(30, "served again after Redis thawed").await;
    let other = load.finish().await;
    assert!(other.is_empty(), "unexpected answers: {:?}", &other[..other.len().min(5)]);

    let logs = gw.logs();
    let down_lines: Vec<&str> =
        logs.lines().filter(|l| l.contains("WARN") && l.contains("shared state redis://")).collect();
    // One line per outage and one at its end: at least the stop and the freeze (on a busy
    // machine a 50 ms round trip may time out now and then, a short outage of its own).
    // Every outage's first line names the policy; its cause may also be an error answer (Redis
    // answers LOADING or BUSY while it starts).
    let outages = down_lines.iter().filter(|l| l.contains("until it answers")).count();
    assert!(outages >= 2, "{down_lines:#?}");
    // (A round trip that timed out after the last answer would be an outage not yet over.)
    let ended = logs.matches("answering again").count();
    assert!(ended == outages || ended + 1 == outages, "{logs}");
    assert!(down_lines[0].contains("cannot be reached"), "{down_lines:#?}");
    assert!(down_lines.iter().any(|l| l.contains("lost its data")), "{down_lines:#?}");
    let metrics = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(errors_metric(&metrics, "connection") > 0, "{metrics}");
    assert!(errors_metric(&metrics, "timeout") > 0, "{metrics}");
    assert_eq!(errors_metric(&metrics, "reset"), 1, "{metrics}");
    assert!(metrics.contains("aigw_rejected_total{reason=\"shared_state_unavailable\"}"), "{metrics}");
}

#[tokio::test]
async fn redis_stopped_and_restarted_under_allow_counts_in_process() {
    let mut redis = Redis::start();
    let gw = Gateway::start(&yaml(&json!({
        "endpoints": [ten_words("chat", json!({"limit": {"calls": 100000, "renewal_period": "day"}}))],
        "aigw": {"shared_state": shared_state(&redis, json!({"timeout_ms": 50, "on_unavailable": "allow"}))}
    })))
    .await;
    let load = Load::start(gw.port, 8);
    load.served(30, "served with Redis up").await;
    let key = redis.keys("aigw:c:chat:*").pop().expect("the shared counter");
    redis.stop();
    common::wait_until(Duration::from_secs(30), "the outage is noticed", || gw.logs().contains("cannot be reached"))
        .await;
    // Served meanwhile, and counted in this process.
    load.served(50, "served while Redis is down").await;
    redis.restart();
    common::wait_until(Duration::from_secs(30), "Redis is used again", || redis.int(&key) > 0).await;
    load.served(30, "served after Redis restarted").await;
    let other = load.finish().await;
    assert!(other.is_empty(), "unexpected answers: {:?}", &other[..other.len().min(5)]);
    let logs = gw.logs();
    // Every outage's first line names the policy (its cause may be an error answer too).
    let outages = logs.matches("until it answers").count();
    let ended = logs.matches("answering again").count();
    assert!(outages >= 1 && (ended == outages || ended + 1 == outages), "one line per outage:\n{logs}");
    assert!(gw.logs().contains("counted in this process"));
}

#[tokio::test]
async fn a_hot_reload_changes_a_shared_limit() {
    let redis = Redis::start();
    let cfg = |calls: u64| {
        yaml(&json!({"endpoints": [ten_words("chat", json!({"limit": {"calls": calls, "renewal_period": "day"}}))],
                     "aigw": {"shared_state": shared_state(&redis, json!({}))}}))
    };
    let gw = Gateway::start(&cfg(2)).await;
    let other = Gateway::start(&cfg(2)).await;
    assert_eq!(gw.post("/endpoints/chat/invocations", &hi()).await.0, 200);
    assert_eq!(other.post("/endpoints/chat/invocations", &hi()).await.0, 200);
    assert_eq!(gw.post("/endpoints/chat/invocations", &hi()).await.0, 429);
    // The reloaded instance applies 3 to the fleet's count so far; the other still applies 2.
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, cfg(3)).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
    common::wait_until(Duration::from_secs(10), "reloaded", || gw.logs().contains("configuration reloaded")).await;
    assert_eq!(other.post("/endpoints/chat/invocations", &hi()).await.0, 429);
    let r = gw.client.post(gw.url("/endpoints/chat/invocations")).json(&hi()).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-ratelimit-limit"].to_str().unwrap()), (200, "3"));
    assert_eq!(gw.post("/endpoints/chat/invocations", &hi()).await.0, 429);
    assert!(!gw.logs().contains("applies after a restart"), "the shared state itself did not change");
}

#[tokio::test]
async fn a_password_never_shows_and_a_wrong_one_is_a_fault() {
    let password = "redis-secret-pass-4711";
    let mut redis = Redis::start_with(Some(password));
    let url = redis.url();
    let cfg = json!({"endpoints": [ten_words("chat", json!({"limit": {"calls": 10, "renewal_period": "day"}}))],
                     "aigw": {"shared_state": {"url": "$AIGW_TEST_REDIS_URL", "timeout_ms": 2000}}});
    let gw = Gateway::start_with(&yaml(&cfg), &[("AIGW_TEST_REDIS_URL", url.as_str())], &[]).await;
    assert_eq!(gw.post("/endpoints/chat/invocations", &hi()).await.0, 200);
    let report = usage(&gw, None).await;
    assert_eq!((report["shared"].as_bool(), report["limits"][0]["calls_used"].as_u64()), (Some(true), Some(1)));
    // A wrong password: refused (deny), said once, without the password.
    let wrong = url.replace(password, "not-the-password-1234");
    let bad = Gateway::start_with(&yaml(&cfg), &[("AIGW_TEST_REDIS_URL", wrong.as_str())], &[]).await;
    let (status, v) = bad.post("/endpoints/chat/invocations", &hi()).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(bad.get("/aigw/usage").await.0, 503);
    redis.stop();
    let (status, v) = gw.post("/endpoints/chat/invocations", &hi()).await;
    assert_eq!(status, 503, "{v}");
    for g in [&gw, &bad] {
        let metrics = g.client.get(g.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let (_, usage) = g.get("/aigw/usage").await;
        for text in [g.logs(), metrics, usage.to_string(), v.to_string()] {
            assert!(!text.contains(password) && !text.contains("not-the-password"), "{text}");
        }
        assert!(g.logs().contains(&format!("shared state redis://127.0.0.1:{}/0", redis.port)), "{}", g.logs());
    }
}

/// Without a test clock the windows are Redis's: the day's counter expires a minute after the
/// day ends, and the reset in the headers agrees with it.
#[tokio::test]
async fn windows_follow_redis_clock() {
    let redis = Redis::start();
    let cfg = yaml(&json!({"endpoints": [ten_words("chat", json!({"limit": {"calls": 3, "renewal_period": "day"}}))],
                           "aigw": {"shared_state": shared_state(&redis, json!({}))}}));
    let gw = Gateway::start_with(&cfg, &[(aigw::limits::TEST_NOW_ENV, "")], &[]).await;
    let r = gw.client.post(gw.url("/endpoints/chat/invocations")).json(&hi()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let reset: i64 = r.headers()["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&reset), "{reset}");
    let key = redis.keys("aigw:c:chat:*").pop().unwrap();
    let ttl = match redis.command(&["TTL", &key]).unwrap() {
        ::redis::Value::Int(n) => n,
        other => panic!("{other:?}"),
    };
    // The TTL was set at the call; a second or two may have passed since.
    assert!(ttl <= reset + 60 && ttl >= reset + 60 - 5, "ttl {ttl}, reset {reset}");
    // The window index in the key is Redis's day.
    let day: i64 = key.rsplit(':').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now / 86_400 - day).abs() <= 1, "{key}");
}

/// `rediss://`: TLS through rustls, the server's CA trusted through `SSL_CERT_FILE`.
#[tokio::test]
async fn tls_to_redis() {
    let redis = Redis::start_tls();
    let cfg = yaml(&json!({"endpoints": [ten_words("chat", json!({"limit": {"calls": 2, "renewal_period": "day"}}))],
                           "aigw": {"shared_state": shared_state(&redis, json!({}))}}));
    let ca = redis.ca_path();
    let ca = ca.to_str().unwrap();
    let gws = [
        Gateway::start_with(&cfg, &[("SSL_CERT_FILE", ca)], &[]).await,
        Gateway::start_with(&cfg, &[("SSL_CERT_FILE", ca)], &[]).await,
    ];
    assert_eq!(gws[0].post("/endpoints/chat/invocations", &hi()).await.0, 200);
    assert_eq!(gws[1].post("/endpoints/chat/invocations", &hi()).await.0, 200);
    let (status, body) = gws[0].post("/endpoints/chat/invocations", &hi()).await;
    assert_eq!((status, body), (429, json!({"error": "Rate limit exceeded: 2 per 1 day"})));
    assert_eq!(redis.keys("aigw:c:chat:*").len(), 1);
    // A gateway that does not trust the server's certificate cannot use it: refused (deny).
    let untrusted = Gateway::start(&cfg).await;
    assert_eq!(untrusted.post("/endpoints/chat/invocations", &hi()).await.0, 503);
}
