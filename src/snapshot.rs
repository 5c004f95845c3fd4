//! What one request is served from: the validated gateway YAML ([`GatewayConfig`]) and the
//! provider built for each of its endpoints. Immutable; a reload builds a new snapshot and swaps
//! it in whole, and a request keeps the snapshot it started with to its end (its audit line
//! included).
//!
//! This layer sits above `config` (which knows no provider) and `providers` (which know no
//! server): loading a file validates the YAML and, for each endpoint, lets its provider read
//! `model.config` ([`providers::build`]).
//!
//! ```
//! use aigw::snapshot::Snapshot;
//! let yaml = "endpoints:\n  - name: chat\n    endpoint_type: llm/v1/chat\n    model: {provider: mock, name: m}\n";
//! let snapshot = Snapshot::parse(yaml, std::path::Path::new("gateway.yaml")).unwrap();
//! let chat = snapshot.config.endpoint("chat").unwrap();
//! assert_eq!(snapshot.provider(chat).unwrap().display_name(), "Mock");
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::config::{ConfigError, ConfigMap, Endpoint, EndpointSpec, FieldError, GatewayConfig};
use crate::error::GatewayError;
use crate::providers::{self, Provider};

/// A validated configuration and its providers.
pub struct Snapshot {
    /// The gateway YAML.
    pub config: GatewayConfig,
    /// The provider of `config.endpoints[i]` at index `i`.
    providers: Vec<Arc<dyn Provider>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Load and validate a file.
    pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
        let mut built = Vec::new();
        let config = GatewayConfig::load(path, &mut |spec, cfg| build_into(&mut built, spec, cfg))?;
        Ok(Snapshot { config, providers: built })
    }

    /// Validate YAML text (`path` is used in messages and kept for reloads).
    pub fn parse(text: &str, path: &Path) -> Result<Snapshot, ConfigError> {
        let mut built = Vec::new();
        let config = GatewayConfig::parse(text, path, &mut |spec, cfg| build_into(&mut built, spec, cfg))?;
        Ok(Snapshot { config, providers: built })
    }

    /// The provider serving `endpoint` (an endpoint of this snapshot).
    pub fn provider(&self, endpoint: &Endpoint) -> Result<&dyn Provider, GatewayError> {
        self.providers.get(endpoint.index).map(|p| &**p).ok_or_else(|| {
            GatewayError::internal(format!("endpoint '{}' has no provider in this configuration", endpoint.name))
        })
    }
}

/// Build `spec`'s provider into `built` at its index (endpoints are validated in file order).
fn build_into(
    built: &mut Vec<Arc<dyn Provider>>,
    spec: &EndpointSpec<'_>,
    cfg: &mut ConfigMap<'_>,
) -> Result<(), FieldError> {
    let provider = providers::build(spec, cfg)?;
    if built.len() != spec.index {
        return Err(FieldError {
            field: "model".into(),
            message: format!("internal error: endpoint {} validated out of order", spec.index),
        });
    }
    built.push(provider);
    Ok(())
}
