//! `gemini`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `gemini` provider.
pub struct Gemini;

impl Gemini {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Gemini, FieldError> {
        Ok(Gemini)
    }
}

impl Provider for Gemini {
    fn display_name(&self) -> &'static str {
        "Gemini"
    }
}
