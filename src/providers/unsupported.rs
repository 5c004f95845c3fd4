//! Provider names MLflow accepts that aigw does not serve, with an error that says what to do
//! instead, and (until their modules land) the providers not yet translated.

use std::sync::Arc;

use super::{EndpointSpec, Provider};
use crate::config::{ConfigMap, FieldError, ProviderName};

/// Reject the provider at load time, or build a placeholder for one not yet translated.
pub fn build(spec: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>) -> Result<Arc<dyn Provider>, FieldError> {
    let _ = cfg;
    match spec.provider_name {
        ProviderName::LiteLlm => Err(FieldError::new(
            "model.provider",
            "provider 'litellm' runs the LiteLLM Python library inside MLflow's process, which aigw \
             cannot do. Run a LiteLLM proxy server instead and reach it with `provider: openai` and \
             `openai_api_base: http://<litellm-proxy>/v1` (its key in `openai_api_key`).",
        )),
        ProviderName::SapAiCore | ProviderName::Typesafe => Err(FieldError::new(
            "model.provider",
            format!(
                "provider '{}' is only usable through MLflow's server-integrated gateway (judges and \
                 pass-through routes); aigw does not serve it",
                spec.provider_name
            ),
        )),
        other => Ok(Arc::new(Pending(other))),
    }
}

/// A provider whose translation has not landed yet: every call answers 501.
struct Pending(ProviderName);

impl Provider for Pending {
    fn display_name(&self) -> &'static str {
        self.0.as_str()
    }
}
