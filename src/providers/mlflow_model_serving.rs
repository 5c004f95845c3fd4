//! `mlflow-model-serving`: placeholder until the provider's translation lands (every call answers 501).

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError};

/// The `mlflow-model-serving` provider.
pub struct MlflowModelServing;

impl MlflowModelServing {
    /// Build from `model.config`.
    pub fn from_config(_spec: &EndpointSpec<'_>, _cfg: &mut ConfigMap<'_>) -> Result<MlflowModelServing, FieldError> {
        Ok(MlflowModelServing)
    }
}

impl Provider for MlflowModelServing {
    fn display_name(&self) -> &'static str {
        "MLflow Model Serving"
    }
}
