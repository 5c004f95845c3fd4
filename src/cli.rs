//! The command line: MLflow's `mlflow gateway start` flags plus the server flags aigw hands to
//! Pingora (`-c`, `-d`, `-u`, `-t`), each described here in aigw's own words and converted to
//! Pingora's [`Opt`] where the server is built ([`Cli::pingora_opt`]).

use std::path::PathBuf;

use clap::Parser;
use pingora::server::configuration::Opt;

/// Environment variable MLflow reads the config path from when `--config-path` is absent.
pub const CONFIG_ENV: &str = "MLFLOW_GATEWAY_CONFIG";

/// aigw — an MLflow AI Gateway compatible LLM gateway on Pingora.
#[derive(Parser, Debug)]
#[command(name = "aigw", version, about)]
pub struct Cli {
    /// The gateway YAML (MLflow AI Gateway format). Defaults to $MLFLOW_GATEWAY_CONFIG.
    #[arg(long = "config-path", env = CONFIG_ENV)]
    pub config_path: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on.
    #[arg(long, default_value_t = 5000)]
    pub port: u16,

    /// Server settings file (threads, pid file, upgrade socket, grace periods; see
    /// conf/pingora.yaml). Without it aigw runs one worker thread per CPU.
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    pub conf: Option<String>,

    /// Run in the background (daemon): fork, detach and write the pid file named in the -c
    /// settings.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Take the listening sockets over from the running aigw (graceful upgrade through the
    /// upgrade socket named in the -c settings) instead of binding them.
    #[arg(short = 'u', long = "upgrade")]
    pub upgrade: bool,

    /// Check the gateway YAML and the -c settings, print the result and exit: 0 when both are
    /// valid, 1 otherwise. Nothing is started.
    #[arg(short = 't', long = "test")]
    pub test: bool,
}

impl Cli {
    /// The listen address, bracketing IPv6 literals.
    pub fn listen_addr(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The server flags as Pingora's options, for building its `Server`.
    pub fn pingora_opt(&self) -> Opt {
        Opt { upgrade: self.upgrade, daemon: self.daemon, nocapture: false, test: self.test, conf: self.conf.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_flags_reach_pingora() {
        let cli = Cli::parse_from(["aigw", "-u", "-d", "-c", "/etc/aigw/pingora.yaml"]);
        let opt = cli.pingora_opt();
        assert!(opt.upgrade && opt.daemon && !opt.test && !opt.nocapture);
        assert_eq!(opt.conf.as_deref(), Some("/etc/aigw/pingora.yaml"));
        let cli = Cli::parse_from(["aigw", "--test", "--conf", "p.yaml", "--upgrade", "--daemon"]);
        let opt = cli.pingora_opt();
        assert!(opt.upgrade && opt.daemon && opt.test);
        assert_eq!(opt.conf.as_deref(), Some("p.yaml"));
        let opt = Cli::parse_from(["aigw"]).pingora_opt();
        assert!(!opt.upgrade && !opt.daemon && !opt.test && opt.conf.is_none());
    }

    #[test]
    fn listen_addr_brackets_ipv6() {
        assert_eq!(Cli::parse_from(["aigw", "--host", "::1", "--port", "8080"]).listen_addr(), "[::1]:8080");
        assert_eq!(Cli::parse_from(["aigw"]).listen_addr(), "127.0.0.1:5000");
    }
}
