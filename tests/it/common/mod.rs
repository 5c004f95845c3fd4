//! Shared test harness: start the real `aigw` binary on a config, talk to it over loopback,
//! play providers with [`upstream::MockUpstream`], and compare JSON.

#![allow(dead_code)]

pub mod bedrock;
pub mod chromium;
pub mod fake;
pub mod redis;
pub mod replay;
pub mod tinyproxy;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigw::config::ProviderName;
use serde_json::Value;

/// The instant the quota clock of every gateway the harness starts stands still at (a debug
/// build honours `aigw::limits::TEST_NOW_ENV`): 2023-11-14T22:13:30Z, so no test's calls
/// straddle a window boundary, and the seconds to the next window are known: 30 for a minute,
/// 2790 for an hour, 6390 for a day. (Window renewal itself: the unit tests in src/limits.rs.)
pub const LIMITS_NOW: u64 = 1_700_000_010;

/// A running gateway process, killed on drop.
pub struct Gateway {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
}

/// A free loopback port (bound, then released) for a process to listen on.
///
/// It is picked below the kernel's ephemeral range: a port `bind(…:0)` handed out (every mock
/// upstream's, every client socket's) could be handed out again to another test's mock between
/// its release here and the gateway's own bind, and the gateway (Pingora retries a busy port for
/// 30 s) would then not be the one answering on it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low);
    if high > low + 1000 {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut x = nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = low + (x % u64::from(high - low)) as u16;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
                && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
            {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Whether process `pid` holds a listening TCP socket on `port` (from Linux's /proc); `None`
/// when that cannot be told.
pub fn listens_on(pid: u32, port: u16) -> Option<bool> {
    let suffix = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[1].ends_with(&suffix) && f[3] == "0A" {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).ok().is_some_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
    }))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("client")
}

impl Gateway {
    /// Start on `yaml` with default settings.
    pub async fn start(yaml: &str) -> Gateway {
        Self::start_with(yaml, &[], &[]).await
    }

    /// Start on `yaml` with extra environment variables and command-line arguments.
    pub async fn start_with(yaml: &str, envs: &[(&str, &str)], args: &[&str]) -> Gateway {
        Self::start_with_unset(yaml, envs, &[], args).await
    }

    /// Start on `yaml` with extra environment variables, without the variables named in
    /// `unset` (for readers such as aws-config, to which a variable set to "" is set), and
    /// with command-line arguments.
    pub async fn start_with_unset(yaml: &str, envs: &[(&str, &str)], unset: &[&str], args: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("gateway.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        let log_path = dir.path().join("aigw.log");
        let client = client();
        // A port taken by someone else between `free_port` and the gateway's bind: try another.
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(&config_path, &log_path, port, envs, unset, args);
            if wait_ready(&mut child, port, &log_path, &client).await {
                return Gateway { child, port, dir, config_path, log_path, client };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("gateway could not get a free port; log:\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote to stdout and stderr.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// POST a JSON body; status and parsed JSON answer (Null when not JSON).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.client.post(self.url(path)).json(body).send().await.expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// POST raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, String, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = r.bytes().await.expect("body");
        (status, ct, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// POST and return status, content type and the raw body text.
    pub async fn post_text(&self, path: &str, body: &Value) -> (u16, String, String) {
        let r = self.client.post(self.url(path)).json(body).send().await.expect("request");
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (status, ct, r.text().await.expect("body"))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("request");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Assert the gateway still serves: health and one mock-free REST call.
    pub async fn assert_alive(&self) {
        let (status, body) = self.get("/health").await;
        assert_eq!((status, body), (200, serde_json::json!({"status": "OK"})), "gateway stopped serving");
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until the gateway `child` answers `/health` on `port` from its own listening socket
/// (not another process that happens to hold the port). False when the port is taken.
async fn wait_ready(child: &mut Child, port: u16, log_path: &Path, client: &reqwest::Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = || std::fs::read_to_string(log_path).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if logs().contains("cannot listen on") && logs().contains("in use") {
                return false; // the port was taken meanwhile: the caller tries another
            }
            panic!("gateway exited ({status}) before it became ready; log:\n{}", logs());
        }
        if logs().contains("is in use, will try again") {
            return false;
        }
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/health")).send().await
            && r.status().is_success()
            && listens_on(child.id(), port) != Some(false)
        {
            return true;
        }
        if Instant::now() > deadline {
            panic!("gateway did not become ready; log:\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Poll `cond` until it holds; panic naming `what` once `timeout` has passed. For waiting on
/// something observable (a log line, a counter, a file) instead of sleeping a fixed time.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "still waiting after {timeout:?} for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`wait_until`] for a condition that must itself await (e.g. an HTTP call to the gateway).
pub async fn wait_until_async<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "still waiting after {timeout:?} for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request sent in the background whose answer is read as it arrives (a stream in flight).
pub struct Streaming {
    first_bytes: Option<tokio::sync::oneshot::Receiver<()>>,
    task: tokio::task::JoinHandle<String>,
}

impl Streaming {
    /// Send `request` and read its answer in the background.
    pub fn start(request: reqwest::RequestBuilder) -> Streaming {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tx = Some(tx);
            let mut body = Vec::new();
            if let Ok(mut r) = request.send().await {
                while let Ok(Some(chunk)) = r.chunk().await {
                    body.extend_from_slice(&chunk);
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
            }
            String::from_utf8_lossy(&body).into_owned()
        });
        Streaming { first_bytes: Some(rx), task }
    }

    /// Wait (at most 20 s) until the first bytes of the answer's body have arrived: the request
    /// is then in flight on the server.
    pub async fn started(&mut self) {
        let Some(rx) = self.first_bytes.take() else { return };
        match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the request failed before any byte of its answer arrived"),
            Err(_) => panic!("no byte of the answer arrived within 20 s"),
        }
    }

    /// The whole body as it arrived (up to the failure, if the connection failed; empty if the
    /// request did).
    pub async fn text(self) -> String {
        self.task.await.expect("the reading task")
    }
}

/// Whether some socket on this machine is ESTABLISHED to `127.0.0.1:port` (a client's side of a
/// connection to that port), from Linux's /proc/net/tcp; `None` when that cannot be told. Once
/// the server closes, the client's socket leaves ESTABLISHED as the FIN arrives.
pub fn connected_to(port: u16) -> Option<bool> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let remote = format!("0100007F:{port:04X}");
    Some(text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 3 && f[2] == remote && f[3] == "01"
    }))
}

/// A child process killed (and reaped) when dropped, so a failing test leaves no gateway behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_aigw")
}

/// The path of `binary`, installed from Debian's package `package` when the machine lacks it
/// (`apt-get install -y`, with `apt-get update` first if that fails; through `sudo` when not
/// root), as `scripts/instructions.sh` does for valgrind. Callers keep the answer in a
/// `OnceLock`, so one test process installs a package once.
pub fn debian_binary(binary: &str, package: &str) -> PathBuf {
    let find = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
            .map(|d| d.join(binary))
            .find(|p| p.is_file())
    };
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
    let install = ["install", "-y", "-qq", package];
    if !apt(&install) {
        assert!(apt(&["update", "-qq"]), "apt-get update failed: cannot install {package}");
        assert!(apt(&install), "apt-get install {package} failed");
    }
    find().unwrap_or_else(|| panic!("{package} installed but {binary} not found"))
}

/// The environment variables that point aigw at a forward proxy (or exempt hosts from it).
pub const PROXY_VARIABLES: [&str; 8] =
    ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

fn spawn(config: &Path, log: &Path, port: u16, envs: &[(&str, &str)], unset: &[&str], args: &[&str]) -> Child {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut cmd = Command::new(binary());
    cmd.arg("--config-path")
        .arg(config)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .env_remove("MLFLOW_GATEWAY_CONFIG")
        .env_remove("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS")
        .env_remove("MLFLOW_GATEWAY_ALLOWED_PROVIDERS")
        .env_remove("MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI")
        .env("RUST_LOG", "info")
        .env(aigw::limits::TEST_NOW_ENV, LIMITS_NOW.to_string())
        // No test gateway asks a real EC2 metadata service for AWS credentials (a test that
        // plays one sets AWS_EC2_METADATA_SERVICE_ENDPOINT and this back to false).
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for k in unset {
        cmd.env_remove(k);
    }
    // A forward proxy in the developer's environment is not the tests' (they set their own).
    for var in PROXY_VARIABLES {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn aigw")
}

/// Every provider name aigw serves, in `ProviderName::ALL`'s order: the registry
/// (src/config/provider_name.rs) minus the names the configuration loader refuses with
/// `providers::unsupported::rejection` (MLflow's names that aigw does not serve). Tables that need
/// a row per provider check themselves against this list, so a new provider cannot be forgotten.
pub fn served_providers() -> Vec<ProviderName> {
    ProviderName::ALL.iter().copied().filter(|&p| !refused_at_load(p)).collect()
}

/// Whether an endpoint of provider `p` is refused at load as a provider aigw does not serve.
pub fn refused_at_load(p: ProviderName) -> bool {
    let text = format!(
        "endpoints: [{{name: e, endpoint_type: llm/v1/chat, model: {{provider: {p}, name: m, config: {{}}}}}}]"
    );
    match aigw::snapshot::Snapshot::parse(&text, Path::new("providers.yaml")) {
        Ok(_) => false,
        Err(e) => e.to_string().contains(&aigw::providers::unsupported::rejection(p).message),
    }
}

/// A fixture from `tests/fixtures/mlflow/`.
pub fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlflow").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

/// Remove the given keys at any depth.
pub fn strip(v: &Value, keys: &[&str]) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter().filter(|(k, _)| !keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), strip(v, keys))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| strip(v, keys)).collect()),
        other => other.clone(),
    }
}

/// Assert two JSON values are equal, ignoring `ignore` keys anywhere.
#[track_caller]
pub fn assert_json_eq(actual: &Value, expected: &Value, ignore: &[&str]) {
    let (a, e) = (strip(actual, ignore), strip(expected, ignore));
    assert!(
        a == e,
        "JSON differs\n  actual:   {}\n  expected: {}",
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&e).unwrap()
    );
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|ev| {
            let lines: Vec<&str> =
                ev.lines().filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))).collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// A YAML document from a JSON value (JSON is YAML).
pub fn yaml(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// Split `bytes` at `cuts` positions chosen by a simple deterministic generator.
pub fn split_points(bytes: &[u8], seed: u64, cuts: usize) -> Vec<Vec<u8>> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut points: Vec<usize> = (0..cuts)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % (bytes.len() as u64 + 1)) as usize
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(bytes[last..p].to_vec());
        last = p;
    }
    out.push(bytes[last..].to_vec());
    out
}
