//! `bedrock` / `amazon-bedrock`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `bedrock` / `amazon-bedrock` provider.
pub struct Bedrock;

impl Bedrock {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<Bedrock, FieldError> {
        Ok(Bedrock)
    }
}

impl Provider for Bedrock {
    fn display_name(&self) -> &'static str {
        "Amazon Bedrock"
    }
}
