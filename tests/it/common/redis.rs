//! A real `redis-server` on a free loopback port, for the shared-state tests: started with no
//! persistence (`--save '' --appendonly no`, so a restart comes back empty), optionally with
//! `--requirepass`, stopped by its PID when dropped. When the machine has no `redis-server`,
//! the first test that needs one installs it from Debian's packages (`apt-get install -y
//! redis-server`, with `apt-get update` first if that fails), as `scripts/instructions.sh`
//! does for valgrind.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::free_port;

/// A running `redis-server`, killed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
    /// With TLS only: the CA certificate (PEM) that signed the server's.
    tls_ca: Option<Vec<u8>>,
    dir: tempfile::TempDir,
}

/// The `redis-server` binary, installed when missing (once per test process).
pub fn server_binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| super::debian_binary("redis-server", "redis-server"))
}

impl Redis {
    /// A server without a password.
    pub fn start() -> Redis {
        Redis::start_with(None)
    }

    /// A server that requires `password` (`--requirepass`).
    pub fn start_with(password: Option<&str>) -> Redis {
        Redis::launch_new(password, false)
    }

    /// A server that speaks TLS only, with a certificate for `localhost` signed by a CA of its
    /// own ([`Redis::ca_path`]).
    pub fn start_tls() -> Redis {
        Redis::launch_new(None, true)
    }

    /// The CA certificate file of a TLS server.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn launch_new(password: Option<&str>, tls: bool) -> Redis {
        let mut redis = Redis {
            child: None,
            port: 0,
            password: password.map(str::to_owned),
            tls_ca: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        if tls {
            let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            let d = redis.dir.path();
            std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(d.join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(d.join("key.pem"), key.serialize_pem()).unwrap();
            redis.tls_ca = Some(ca.pem().into_bytes());
        }
        for _ in 0..5 {
            redis.port = free_port();
            if redis.launch() {
                return redis;
            }
        }
        panic!("redis-server did not start; log:\n{}", redis.log());
    }

    /// `redis://127.0.0.1:<port>/0`, with the password when there is one.
    pub fn url(&self) -> String {
        match (&self.password, &self.tls_ca) {
            (_, Some(_)) => format!("rediss://localhost:{}/0", self.port),
            (Some(p), None) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            (None, None) => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Start the server on `self.port`; false when it could not (the port was taken).
    fn launch(&mut self) -> bool {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log");
        let mut cmd = Command::new(server_binary());
        let port = self.port.to_string();
        if self.tls_ca.is_some() {
            let d = self.dir.path();
            cmd.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no", "--tls-cert-file"])
                .arg(d.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(d.join("key.pem"))
                .arg("--tls-ca-cert-file")
                .arg(d.join("ca.pem"));
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let mut child = cmd.spawn().expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers PING.
    fn ping(&self) -> bool {
        self.command(&["PING"]).is_ok_and(|v| v == ::redis::Value::SimpleString("PONG".into()))
    }

    /// Run one command on a fresh connection.
    pub fn command(&self, args: &[&str]) -> ::redis::RedisResult<::redis::Value> {
        if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            return Err(::redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
        }
        let client = match &self.tls_ca {
            Some(ca) => ::redis::Client::build_with_tls(
                self.url(),
                ::redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) },
            )?,
            None => ::redis::Client::open(self.url())?,
        };
        let mut con = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con)
    }

    /// The keys under `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = match self.command(&["KEYS", pattern]) {
            Ok(::redis::Value::Array(items)) => items
                .into_iter()
                .filter_map(|v| match v {
                    ::redis::Value::BulkString(b) => String::from_utf8(b).ok(),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        keys.sort();
        keys
    }

    /// An integer value (0 when absent).
    pub fn int(&self, key: &str) -> i64 {
        match self.command(&["GET", key]) {
            Ok(::redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop the server (by its PID) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port: it comes back empty.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.launch() {
            assert!(Instant::now() < deadline, "redis-server did not restart on port {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Freeze (`SIGSTOP`) or thaw (`SIGCONT`) the server: connected, but silent.
    pub fn pause(&self, paused: bool) {
        if let Some(pid) = self.pid() {
            let sig = if paused { "-STOP" } else { "-CONT" };
            assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.pause(false);
        self.stop();
    }
}
