//! `huggingface-text-generation-inference`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `huggingface-text-generation-inference` provider.
pub struct HuggingFaceTgi;

impl HuggingFaceTgi {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<HuggingFaceTgi, FieldError> {
        Ok(HuggingFaceTgi)
    }
}

impl Provider for HuggingFaceTgi {
    fn display_name(&self) -> &'static str {
        "Hugging Face Text Generation Inference"
    }
}
