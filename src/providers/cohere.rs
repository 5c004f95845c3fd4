//! `cohere`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `cohere` provider.
pub struct Cohere;

impl Cohere {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Cohere, FieldError> {
        Ok(Cohere)
    }
}

impl Provider for Cohere {
    fn display_name(&self) -> &'static str {
        "Cohere"
    }
}
