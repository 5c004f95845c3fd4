//! `palm`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `palm` provider.
pub struct Palm;

impl Palm {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Palm, FieldError> {
        Ok(Palm)
    }
}

impl Provider for Palm {
    fn display_name(&self) -> &'static str {
        "PaLM"
    }
}
