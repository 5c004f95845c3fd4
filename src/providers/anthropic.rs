//! `anthropic`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `anthropic` provider.
pub struct Anthropic;

impl Anthropic {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Anthropic, FieldError> {
        Ok(Anthropic)
    }
}

impl Provider for Anthropic {
    fn display_name(&self) -> &'static str {
        "Anthropic"
    }
}
