//! A real headless Chromium running a test page, for the browser tests (`security::browser`).
//!
//! [`PageServer`] is a small HTTP server of the test on a loopback port: it serves pages and
//! receives their results. A page's origin is `http://127.0.0.1:<its port>`, so two servers are
//! two origins. [`PageServer::run`] serves a page whose script runs `fetch` calls and POSTs
//! what it saw (statuses, the headers and bodies the browser let it read, or the errors
//! `fetch` threw) back to the same server (same origin: no CORS involved), starts Chromium on
//! that page, waits (bounded) for the result, and stops Chromium.
//!
//! Chromium is Debian's package (`chromium`), installed with `apt-get` when missing (as
//! `common::redis` installs redis-server), run as root with `--no-sandbox` and a fresh
//! profile directory per run, in its own process group, which is killed when the run ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Chromium binary, installed from Debian's packages when missing (once per test process).
pub fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let find =
            || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.is_file());
        if let Some(p) = find() {
            return p;
        }
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        let apt = |args: &[&str]| {
            let mut cmd = if root { Command::new("apt-get") } else { Command::new("sudo") };
            if !root {
                cmd.arg("apt-get");
            }
            cmd.args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let install = ["install", "-y", "-qq", "chromium"];
        if !apt(&install) {
            assert!(apt(&["update", "-qq"]), "apt-get update failed: cannot install chromium");
            assert!(apt(&install), "apt-get install chromium failed");
        }
        find().expect("chromium installed but not found")
    })
}

/// Helpers every page's script can use.
const PRELUDE: &str = r#"
async function call(url, init) {
  try {
    const r = await fetch(url, init);
    const headers = {};
    r.headers.forEach((v, k) => { headers[k] = v; });
    return {ok: true, status: r.status, type: r.type, headers, body: await r.text()};
  } catch (e) {
    return {ok: false, error: String(e)};
  }
}
"#;

#[derive(Default)]
struct Shared {
    /// Page id → HTML.
    pages: HashMap<String, String>,
    /// Page id → what the page posted back.
    results: HashMap<String, Value>,
}

/// A loopback HTTP server that serves test pages (one origin) and collects their results.
pub struct PageServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PageServer {
    pub async fn start() -> PageServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind page server");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, state.clone()));
            }
        });
        PageServer { port, shared, task }
    }

    /// This server's origin, as a browser serializes it.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run `script` (the body of an async JavaScript function; its return value is the
    /// result; the helper `call(url, init)` is defined) in a page of this origin in Chromium,
    /// and return what it returned (`{"thrown": "..."}` if it threw).
    pub async fn run(&self, script: &str) -> Value {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!("p{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let html = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>aigw browser test</title></head><body>\
             <script>{PRELUDE}\n(async () => {{\n  let result;\n  try {{ result = await (async () => {{\n{script}\n}})(); }}\n  \
             catch (e) {{ result = {{thrown: String(e)}}; }}\n  \
             await fetch('/result/{id}', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify(result === undefined ? null : result)}});\n\
             }})();</script></body></html>"
        );
        self.shared.lock().unwrap().pages.insert(id.clone(), html);
        let url = format!("{}/page/{id}", self.origin());
        let profile = tempfile::tempdir().expect("profile dir");
        let log = profile.path().join("chromium.log");
        let browser = Browser::launch(&url, profile.path(), &log);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(v) = self.shared.lock().unwrap().results.remove(&id) {
                drop(browser);
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "the page {url} posted no result within 120 s; Chromium's log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A Chromium process group, killed when dropped.
struct Browser(Child);

impl Browser {
    fn launch(url: &str, profile: &std::path::Path, log: &std::path::Path) -> Browser {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-crash-reporter",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Browser(child)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group (the browser and the renderer and helper processes it started),
        // by the id of the process this test started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One connection: `GET /page/<id>` serves the page, `POST /result/<id>` stores its result,
/// anything else is 404. Every answer closes the connection.
async fn serve(mut sock: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (method, path, body) = loop {
        let Ok(n) = sock.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else { continue };
        let length = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= head + length {
            break (
                req.method.unwrap_or("").to_owned(),
                req.path.unwrap_or("").to_owned(),
                buf[head..head + length].to_vec(),
            );
        }
    };
    let (status, content_type, answer) = match (method.as_str(), path.split_once('/').map(|(_, p)| p)) {
        ("GET", Some(p)) if p.starts_with("page/") => match shared.lock().unwrap().pages.get(&p[5..]) {
            Some(html) => ("200 OK", "text/html; charset=utf-8", html.clone()),
            None => ("404 Not Found", "text/plain", String::new()),
        },
        ("POST", Some(p)) if p.starts_with("result/") => {
            let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
            shared.lock().unwrap().results.insert(p[7..].to_owned(), v);
            ("204 No Content", "text/plain", String::new())
        }
        _ => ("404 Not Found", "text/plain", String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(answer.as_bytes()).await;
    let _ = sock.shutdown().await;
}
