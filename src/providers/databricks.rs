//! `databricks` / `databricks-model-serving`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `databricks` / `databricks-model-serving` provider.
pub struct Databricks;

impl Databricks {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Databricks, FieldError> {
        Ok(Databricks)
    }
}

impl Provider for Databricks {
    fn display_name(&self) -> &'static str {
        "Databricks"
    }
}
