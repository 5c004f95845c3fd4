//! `mosaicml`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `mosaicml` provider.
pub struct MosaicMl;

impl MosaicMl {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<MosaicMl, FieldError> {
        Ok(MosaicMl)
    }
}

impl Provider for MosaicMl {
    fn display_name(&self) -> &'static str {
        "MosaicML"
    }
}
