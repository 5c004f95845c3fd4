//! `ai21labs`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `ai21labs` provider.
pub struct Ai21Labs;

impl Ai21Labs {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Ai21Labs, FieldError> {
        Ok(Ai21Labs)
    }
}

impl Provider for Ai21Labs {
    fn display_name(&self) -> &'static str {
        "AI21 Labs"
    }
}
