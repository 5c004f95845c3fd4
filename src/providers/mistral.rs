//! `mistral`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `mistral` provider.
pub struct Mistral;

impl Mistral {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Mistral, FieldError> {
        Ok(Mistral)
    }
}

impl Provider for Mistral {
    fn display_name(&self) -> &'static str {
        "Mistral"
    }
}
