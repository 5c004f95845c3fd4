//! A real forward proxy for the egress tests: Debian's `tinyproxy` on a free loopback port, in
//! the foreground, with a configuration file the test writes (optionally `BasicAuth`; no
//! `ConnectPort` line, so CONNECT is allowed to every port, plain-HTTP upstreams' included),
//! logging each request line (`LogLevel Connect`), stopped by its PID when dropped. Installed
//! from Debian's packages when the machine has none (`common::debian_binary`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::free_port;

/// A running `tinyproxy`, killed on drop.
pub struct Tinyproxy {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| super::debian_binary("tinyproxy", "tinyproxy"))
}

impl Tinyproxy {
    /// A proxy without authentication.
    pub fn start() -> Tinyproxy {
        Tinyproxy::start_with(None)
    }

    /// A proxy that wants `user` and `password` (Basic) in `Proxy-Authorization`.
    pub fn start_with(auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("tinyproxy.conf");
            let mut text = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 100\n\
                 Allow 127.0.0.1\nDisableViaHeader Yes\n",
                dir.path().join("tinyproxy.log").display()
            );
            if let Some((user, password)) = auth {
                text.push_str(&format!("BasicAuth {user} {password}\n"));
            }
            std::fs::write(&conf, text).expect("tinyproxy.conf");
            let out = std::fs::File::create(dir.path().join("stdout.log")).expect("log");
            let mut child = Command::new(binary())
                .arg("-d")
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("spawn tinyproxy");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken meanwhile: another one
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Tinyproxy { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "tinyproxy did not start; its output:\n{}",
            std::fs::read_to_string(dir.path().join("stdout.log")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://user:password@127.0.0.1:<port>`
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// What the proxy logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }

    /// The `host:port` of every CONNECT request the proxy received, in order.
    pub fn connects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| {
                l.split_once("): CONNECT ").map(|(_, rest)| rest.split(' ').next().unwrap_or("").to_owned())
            })
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
