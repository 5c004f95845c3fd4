//! The command line: MLflow's `mlflow gateway start` flags plus Pingora's own.

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

    /// Pingora's options: -c <pingora.yaml>, -d (daemon), -u (upgrade), -t (test the
    /// configuration and exit).
    #[command(flatten)]
    pub pingora: Opt,
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
}
