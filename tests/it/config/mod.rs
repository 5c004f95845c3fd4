//! The gateway YAML (`src/config/`, `src/cli.rs`): MLflow's recorded validation cases, `aigw -t`,
//! secrets as they reach the upstream, example configurations, provider policies.

mod cli;
mod validation;
