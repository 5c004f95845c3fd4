//! `vertex_ai`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `vertex_ai` provider.
pub struct VertexAi;

impl VertexAi {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<VertexAi, FieldError> {
        Ok(VertexAi)
    }
}

impl Provider for VertexAi {
    fn display_name(&self) -> &'static str {
        "Vertex AI"
    }
}
