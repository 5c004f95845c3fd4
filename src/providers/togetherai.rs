//! `togetherai`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `togetherai` provider.
pub struct TogetherAi;

impl TogetherAi {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<TogetherAi, FieldError> {
        Ok(TogetherAi)
    }
}

impl Provider for TogetherAi {
    fn display_name(&self) -> &'static str {
        "TogetherAI"
    }
}
