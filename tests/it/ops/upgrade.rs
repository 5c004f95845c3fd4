//! Zero-downtime operations with real processes and signals:
//! * graceful upgrade (Pingora's `SIGQUIT` hand-over to a process started with `-u`) under
//!   c=16 load of streaming and non-streaming requests: no request fails, a stream in flight
//!   completes, the old process exits once its requests are done;
//! * `SIGTERM` stops accepting, finishes what is in flight, and exits (an idle gateway at once,
//!   not after Pingora's 300 s grace period); `SIGINT` exits now; `SIGHUP` does not kill.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{free_port, sse_data, yaml};
use serde_json::{Value, json};

fn gateway_yaml() -> String {
    let mock = |name: &str, config: Value| json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": config}});
    yaml(&json!({"endpoints": [
        mock("chat", json!({"latency_ms": 5})),
        mock("stream", json!({"reply": "a b c d e f g h i j", "chunk_delay_ms": 20})),
        mock("long", json!({"reply": "one two three four five six seven eight nine ten eleven twelve", "chunk_delay_ms": 400})),
    ]}))
}

fn spawn(dir: &Path, port: u16, extra: &[&str], log: &str) -> Child {
    let out = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(common::binary())
        .args(["--config-path"])
        .arg(dir.join("gateway.yaml"))
        .args(["--port", &port.to_string()])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("http://127.0.0.1:{port}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Wait for a child to exit (bounded); its exit status.
async fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Start the ~5 s `long` stream (twelve words, 400 ms apart) on `port` and wait until its first
/// event has arrived (the stream is in flight). `stream_text` of its body tells its text and
/// whether it ended cleanly.
async fn long_stream(port: u16) -> common::Streaming {
    let mut stream = common::Streaming::start(
        common::client()
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&json!({"model": "long", "stream": true, "messages": [{"role": "user", "content": "x"}]})),
    );
    stream.started().await;
    stream
}

/// The text a stream carried, and whether it ended cleanly.
fn stream_text(body: &str) -> (String, bool) {
    let mut text = String::new();
    let mut clean = false;
    for d in sse_data(body) {
        if d == "[DONE]" {
            clean = true;
            continue;
        }
        let v: Value = serde_json::from_str(&d).unwrap_or(Value::Null);
        if v.get("error").is_some() {
            return (text, false);
        }
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    (text, clean)
}

#[tokio::test]
async fn graceful_upgrade_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gateway.yaml"), gateway_yaml()).unwrap();
    std::fs::write(
        d.join("pingora.yaml"),
        format!(
            "---\nversion: 1\nthreads: 2\npid_file: {}\nupgrade_sock: {}\ngrace_period_seconds: 60\ngraceful_shutdown_timeout_seconds: 2\n",
            d.join("aigw.pid").display(),
            d.join("upgrade.sock").display()
        ),
    )
    .unwrap();
    let conf = d.join("pingora.yaml");
    let conf = conf.to_str().unwrap();
    let port = free_port();
    let mut old = spawn(d, port, &["-c", conf], "old.log");
    let client = common::client();
    wait_ready(&client, port).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..16)
        .map(|i| {
            let (stop, ok, failed, failures) = (stop.clone(), ok.clone(), failed.clone(), failures.clone());
            let client = common::client();
            let base = format!("http://127.0.0.1:{port}");
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let streaming = (n + i).is_multiple_of(4);
                    let (url, body) = if streaming {
                        (
                            format!("{base}/v1/chat/completions"),
                            json!({"model": "stream", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
                        )
                    } else {
                        (
                            format!("{base}/endpoints/chat/invocations"),
                            json!({"messages": [{"role": "user", "content": "x"}]}),
                        )
                    };
                    let outcome = match client.post(&url).json(&body).send().await {
                        Ok(r) if r.status().is_success() => match r.text().await {
                            Ok(t) if !streaming => {
                                serde_json::from_str::<Value>(&t).map(|_| ()).map_err(|e| format!("bad JSON: {e}"))
                            }
                            Ok(t) => match stream_text(&t) {
                                (text, true) if text == "a b c d e f g h i j" => Ok(()),
                                other => Err(format!("incomplete stream {other:?}")),
                            },
                            Err(e) => Err(format!("body: {e}")),
                        },
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(format!("request: {e}")),
                    };
                    match outcome {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();

    // The load is running on the old process.
    let served = |n: usize| {
        let ok = ok.clone();
        move || ok.load(Ordering::Relaxed) >= n
    };
    common::wait_until(Duration::from_secs(30), "the load is served", served(100)).await;
    // A ~5 s stream that starts on the old process and must finish across the hand-over.
    let long = long_stream(port).await;

    // The hand-over, in systemd's ExecReload order: QUIT the old process, start the new one.
    let old_pid = old.id();
    signal(old_pid, "-QUIT");
    let mut new = spawn(d, port, &["-u", "-c", conf], "new.log");

    // The old process exits once its requests (the long stream too) are done, well before the
    // 60 s grace period; the load then keeps being served, by the new process alone.
    let status = wait_exit(&mut old, Duration::from_secs(30)).await.expect("the old process exited");
    let at_exit = ok.load(Ordering::Relaxed);
    common::wait_until(Duration::from_secs(30), "the new process serves the load", served(at_exit + 100)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (long_text, long_clean) = stream_text(&long.text().await);

    let logs = |name: &str| std::fs::read_to_string(d.join(name)).unwrap_or_default();
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}\nold log tail:\n{}\nnew log tail:\n{}",
        failures.len(),
        ok.load(Ordering::Relaxed) + failures.len(),
        &failures[..failures.len().min(5)],
        logs("old.log").lines().rev().take(15).collect::<Vec<_>>().join("\n"),
        logs("new.log").lines().rev().take(15).collect::<Vec<_>>().join("\n"),
    );
    assert!(ok.load(Ordering::Relaxed) > 200, "load ran: {}", ok.load(Ordering::Relaxed));
    assert!(long_clean, "the in-flight stream was cut: {long_text:?}");
    assert_eq!(long_text, "one two three four five six seven eight nine ten eleven twelve");

    assert!(status.success(), "{status:?}");
    assert!(logs("old.log").contains("no request in flight; exiting"));
    assert!(logs("new.log").contains("Bootstrap done") || logs("new.log").contains("listening"));
    // The new process owns the socket.
    let r = client.get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(new.try_wait().unwrap().is_none(), "the new process is running");
    signal(new.id(), "-INT");
    let _ = wait_exit(&mut new, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn sigterm_finishes_in_flight_then_exits_and_idle_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml()).unwrap();
    let client = common::client();

    // Idle: no -c, so Pingora's default grace period (300 s) applies; aigw exits anyway.
    let port = free_port();
    let mut gw = spawn(dir.path(), port, &[], "idle.log");
    wait_ready(&client, port).await;
    let t0 = Instant::now();
    signal(gw.id(), "-TERM");
    let status = wait_exit(&mut gw, Duration::from_secs(15)).await.expect("an idle gateway stops promptly");
    assert!(status.success());
    eprintln!("idle gateway stopped {:?} after SIGTERM", t0.elapsed());

    // Busy: a stream in flight completes; new connections are refused meanwhile.
    let port = free_port();
    let mut gw = spawn(dir.path(), port, &[], "busy.log");
    wait_ready(&client, port).await;
    let stream = long_stream(port).await;
    signal(gw.id(), "-TERM");
    common::wait_until_async(Duration::from_secs(10), "a stopping gateway accepts no new connections", || async {
        common::client().get(format!("http://127.0.0.1:{port}/health")).send().await.is_err()
    })
    .await;
    assert!(gw.try_wait().unwrap().is_none(), "still serving the stream");
    let (text, clean) = stream_text(&stream.text().await);
    assert!(clean && text.ends_with("twelve"), "{text:?}");
    let status = wait_exit(&mut gw, Duration::from_secs(15)).await.expect("exits after its last request");
    assert!(status.success());
}

#[tokio::test]
async fn sigint_exits_now_and_sighup_does_not_kill() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.yaml"), gateway_yaml()).unwrap();
    let client = common::client();
    let port = free_port();
    let mut gw = spawn(dir.path(), port, &[], "int.log");
    wait_ready(&client, port).await;
    // SIGHUP reloads (Pingora alone would die of it). One that arrives before the reload
    // service listens is ignored (src/main.rs), so it is sent again until one is handled.
    let log = dir.path().join("int.log");
    let (pid, mut polls) = (gw.id(), 0u32);
    common::wait_until(Duration::from_secs(10), "the SIGHUP is handled", || {
        if polls % 25 == 0 {
            signal(pid, "-HUP");
        }
        polls += 1;
        std::fs::read_to_string(&log).unwrap_or_default().contains("SIGHUP: reloading")
    })
    .await;
    assert!(gw.try_wait().unwrap().is_none());
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap().status().as_u16(), 200);

    let stream = long_stream(port).await;
    signal(gw.id(), "-INT");
    assert!(wait_exit(&mut gw, Duration::from_secs(5)).await.is_some(), "SIGINT exits now");
    let (_, clean) = stream_text(&stream.text().await);
    assert!(!clean, "SIGINT does not wait for the stream");
}

/// The commands of `systemd/aigw.service`, with the installed paths replaced by test ones:
/// `(directive, argv)` in file order, `$AIGW_ARGS` expanded as systemd does (split at
/// whitespace).
fn unit_commands(replace: &[(&str, String)]) -> Vec<(String, Vec<String>)> {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/aigw.service")).unwrap();
    let mut args = Vec::new();
    let mut commands = Vec::new();
    for line in unit.lines() {
        if let Some(v) = line.strip_prefix("Environment=\"AIGW_ARGS=") {
            args = v.trim_end_matches('"').split_whitespace().map(str::to_owned).collect();
        }
        let Some((directive, command)) = line.split_once('=') else { continue };
        if !["ExecStartPre", "ExecStart", "ExecReload"].contains(&directive) {
            continue;
        }
        let mut argv = Vec::new();
        for word in command.split_whitespace() {
            if word == "$AIGW_ARGS" {
                argv.extend(args.iter().cloned());
            } else {
                argv.push(word.to_owned());
            }
        }
        for word in &mut argv {
            for (from, to) in replace {
                if word == from {
                    *word = to.clone();
                }
            }
        }
        commands.push((directive.to_owned(), argv));
    }
    assert!(!args.is_empty(), "the unit defines AIGW_ARGS");
    commands
}

/// Whether a process (not necessarily our child) is still running (a zombie is not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Kills the daemon named by a pid file when the test ends, passed or not.
struct KillDaemon(std::path::PathBuf);

impl Drop for KillDaemon {
    fn drop(&mut self) {
        if let Some(pid) = read_pid(&self.0) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// `systemctl start` and `systemctl reload` as the shipped unit runs them (daemon mode, pid
/// file, `-t` before each start, SIGQUIT then `-u -d`), on the unit's own listen address: the
/// check refuses what the start would refuse, the reload hands over with no failed request,
/// the pid file names the new process and the old one exits.
#[tokio::test]
async fn the_systemd_unit_starts_checks_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let gateway = d.join("gateway.yaml");
    let pingora = d.join("pingora.yaml");
    std::fs::write(
        &pingora,
        format!(
            "---\nversion: 1\nthreads: 2\npid_file: {}\nupgrade_sock: {}\nerror_log: {}\ngrace_period_seconds: 30\ngraceful_shutdown_timeout_seconds: 1\n",
            d.join("aigw.pid").display(),
            d.join("upgrade.sock").display(),
            d.join("daemon.log").display()
        ),
    )
    .unwrap();
    let commands = unit_commands(&[
        ("/usr/local/bin/aigw", common::binary().to_owned()),
        ("/etc/aigw/pingora.yaml", pingora.display().to_string()),
        ("/etc/aigw/gateway.yaml", gateway.display().to_string()),
        ("5000", port.to_string()),
    ]);
    let run = |argv: &[String]| {
        let out = Command::new(&argv[0]).args(&argv[1..]).stdin(Stdio::null()).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let find = |directive: &str, flag: &str| -> Vec<String> {
        commands
            .iter()
            .find(|(d, argv)| d == directive && argv.iter().any(|a| a == flag))
            .map(|(_, argv)| argv.clone())
            .unwrap_or_else(|| panic!("{directive} with {flag} in the unit: {commands:?}"))
    };
    let (start_check, start) = (find("ExecStartPre", "-t"), find("ExecStart", "-d"));
    assert!(start.iter().any(|a| a == "0.0.0.0"), "the unit serves a public address: {start:?}");

    // Without API keys a public listener is refused, and the check says so before the start.
    std::fs::write(&gateway, gateway_yaml()).unwrap();
    let (ok, out) = run(&start_check);
    assert!(!ok && out.contains("refusing to listen on 0.0.0.0"), "{out}");

    // With a key it starts as a daemon and writes its pid file.
    let mut cfg: Value = aigw::config::parse_yaml(&gateway_yaml()).unwrap();
    cfg["aigw"] = json!({"auth": {"keys": [{"name": "ops", "key": "unit-test-key-0123456789"}]}});
    std::fs::write(&gateway, yaml(&cfg)).unwrap();
    let (ok, out) = run(&start_check);
    assert!(ok, "{out}");
    let _daemon = KillDaemon(d.join("aigw.pid"));
    let (ok, out) = run(&start);
    assert!(ok, "{out}");
    let client = common::client();
    wait_ready(&client, port).await;
    let old_pid = read_pid(&d.join("aigw.pid")).expect("the daemon wrote its pid file");
    assert!(running(old_pid));

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
            let client = common::client();
            let url = format!("http://127.0.0.1:{port}/endpoints/chat/invocations");
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = client
                        .post(&url)
                        .bearer_auth("unit-test-key-0123456789")
                        .json(&json!({"messages": [{"role": "user", "content": "x"}]}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("status {}", r.status())),
                        Err(e) => failures.lock().unwrap().push(format!("request: {e}")),
                    }
                }
            })
        })
        .collect();
    let served_at_least = |n: usize| {
        let served = served.clone();
        move || served.load(Ordering::Relaxed) >= n
    };
    common::wait_until(Duration::from_secs(30), "the load is served", served_at_least(20)).await;

    // `systemctl reload`: every ExecReload line in order, $MAINPID from the pid file.
    for (_, argv) in commands.iter().filter(|(d, _)| d == "ExecReload") {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| if a == "$MAINPID" { old_pid.to_string() } else { a.clone() })
            .map(|a| if a == "/bin/kill" { "kill".to_owned() } else { a })
            .collect();
        let (ok, out) = run(&argv);
        assert!(ok, "{argv:?}: {out}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_pid(&d.join("aigw.pid")) == Some(old_pid) || running(old_pid) {
        assert!(Instant::now() < deadline, "the hand-over did not complete; log:\n{}", {
            std::fs::read_to_string(d.join("daemon.log")).unwrap_or_default()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The new daemon serves the load.
    let after = served.load(Ordering::Relaxed);
    common::wait_until(Duration::from_secs(30), "the new daemon serves the load", served_at_least(after + 20)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let new_pid = read_pid(&d.join("aigw.pid")).expect("the new daemon wrote its pid file");
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{} failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(served.load(Ordering::Relaxed) > 20, "load ran: {}", served.load(Ordering::Relaxed));
    assert_ne!(new_pid, old_pid);
    assert!(running(new_pid));
    assert_eq!(client.get(format!("http://127.0.0.1:{port}/health")).send().await.unwrap().status().as_u16(), 200);
    signal(new_pid, "-INT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(new_pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The grace period bounds a stop: a stream that outlives `grace_period_seconds` does not keep
/// the process alive; it exits (successfully) and the stream is cut.
#[tokio::test]
async fn the_grace_period_bounds_how_long_a_stop_waits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("gateway.yaml"), gateway_yaml()).unwrap();
    std::fs::write(
        d.join("pingora.yaml"),
        format!(
            "---\nversion: 1\nthreads: 2\npid_file: {}\nupgrade_sock: {}\ngrace_period_seconds: 1\ngraceful_shutdown_timeout_seconds: 1\n",
            d.join("aigw.pid").display(),
            d.join("upgrade.sock").display()
        ),
    )
    .unwrap();
    let conf = d.join("pingora.yaml");
    let port = free_port();
    let mut gw = spawn(d, port, &["-c", conf.to_str().unwrap()], "grace.log");
    let client = common::client();
    wait_ready(&client, port).await;
    // About 5 s of stream (twelve words, 400 ms apart), far longer than the 1 s grace period.
    let stream = long_stream(port).await;
    signal(gw.id(), "-TERM");
    let status = wait_exit(&mut gw, Duration::from_secs(30)).await.expect("the stop is bounded");
    let (text, clean) = stream_text(&stream.text().await);
    assert!(!clean && !text.ends_with("twelve"), "the stream outlived the grace period: {text:?}");
    assert!(status.success(), "{status:?}");
}
