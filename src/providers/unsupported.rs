//! Provider names MLflow accepts that aigw does not serve, with an error that says what to do
//! instead.

use super::FieldError;
use crate::config::ProviderName;

/// The load-time error for a provider aigw does not serve.
pub fn rejection(name: ProviderName) -> FieldError {
    match name {
        ProviderName::LiteLlm => FieldError::new(
            "model.provider",
            "provider 'litellm' runs the LiteLLM Python library inside MLflow's process, which aigw \
             cannot do. Run a LiteLLM proxy server instead and reach it with `provider: openai` and \
             `openai_api_base: http://<litellm-proxy>/v1` (its key in `openai_api_key`).",
        ),
        other => FieldError::new(
            "model.provider",
            format!(
                "provider '{other}' is only usable through MLflow's server-integrated gateway (judges and \
                 pass-through routes); aigw does not serve it"
            ),
        ),
    }
}
