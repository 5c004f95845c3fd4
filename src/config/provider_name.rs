//! Provider names as written in `model.provider`, with MLflow's matching rules.

use std::fmt;

macro_rules! provider_names {
    ($($variant:ident => $value:literal, $member:literal;)*) => {
        /// Every provider name the gateway YAML accepts (MLflow's `Provider` enum plus `mock`).
        ///
        /// Aliases are distinct names (the `provider` field of a chat answer echoes the name as
        /// configured, e.g. `amazon-bedrock`); [`ProviderName::canonical`] folds them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProviderName {
            $(#[doc = concat!("`", $value, "`")] $variant,)*
        }

        impl ProviderName {
            /// All names, in MLflow's enum order.
            pub const ALL: &'static [ProviderName] = &[$(ProviderName::$variant,)*];

            /// The canonical spelling (`amazon-bedrock`, `vertex_ai`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(ProviderName::$variant => $value,)* }
            }

            /// MLflow's enum member name (`AMAZON_BEDROCK`), used for matching.
            fn member(self) -> &'static str {
                match self { $(ProviderName::$variant => $member,)* }
            }
        }
    };
}

provider_names! {
    OpenAi => "openai", "OPENAI";
    Azure => "azure", "AZURE";
    Anthropic => "anthropic", "ANTHROPIC";
    Cohere => "cohere", "COHERE";
    Ai21Labs => "ai21labs", "AI21LABS";
    MlflowModelServing => "mlflow-model-serving", "MLFLOW_MODEL_SERVING";
    MosaicMl => "mosaicml", "MOSAICML";
    HuggingFaceTgi => "huggingface-text-generation-inference", "HUGGINGFACE_TEXT_GENERATION_INFERENCE";
    Palm => "palm", "PALM";
    Gemini => "gemini", "GEMINI";
    Bedrock => "bedrock", "BEDROCK";
    AmazonBedrock => "amazon-bedrock", "AMAZON_BEDROCK";
    Databricks => "databricks", "DATABRICKS";
    DatabricksModelServing => "databricks-model-serving", "DATABRICKS_MODEL_SERVING";
    Mistral => "mistral", "MISTRAL";
    TogetherAi => "togetherai", "TOGETHERAI";
    LiteLlm => "litellm", "LITELLM";
    Groq => "groq", "GROQ";
    DeepSeek => "deepseek", "DEEPSEEK";
    Xai => "xai", "XAI";
    OpenRouter => "openrouter", "OPENROUTER";
    Ollama => "ollama", "OLLAMA";
    VertexAi => "vertex_ai", "VERTEX_AI";
    Portkey => "portkey", "PORTKEY";
    SapAiCore => "sap-ai-core", "SAP_AI_CORE";
    Typesafe => "typesafe", "TYPESAFE";
    Mock => "mock", "MOCK";
}

impl ProviderName {
    /// Match a configured value the way MLflow does: `-` becomes `_`, then upper-case, then it
    /// must equal an enum member name. So `OpenAI`, `Amazon_Bedrock` and
    /// `huggingface_text_generation_inference` are accepted.
    pub fn parse(value: &str) -> Option<ProviderName> {
        let key = value.replace('-', "_").to_ascii_uppercase();
        ProviderName::ALL.iter().copied().find(|p| p.member() == key)
    }

    /// Fold aliases: `amazon-bedrock` → `bedrock`, `databricks-model-serving` → `databricks`.
    /// (`azure` stays: it is its own name that still needs `openai_api_type`.)
    pub fn canonical(self) -> ProviderName {
        match self {
            ProviderName::AmazonBedrock => ProviderName::Bedrock,
            ProviderName::DatabricksModelServing => ProviderName::Databricks,
            other => other,
        }
    }

    /// The `Provider.X` spelling MLflow uses in some messages.
    pub fn enum_repr(self) -> String {
        format!("Provider.{}", self.member())
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_matching_rules() {
        assert_eq!(ProviderName::parse("OpenAI"), Some(ProviderName::OpenAi));
        assert_eq!(ProviderName::parse("Amazon_Bedrock"), Some(ProviderName::AmazonBedrock));
        assert_eq!(ProviderName::parse("amazon-bedrock").unwrap().as_str(), "amazon-bedrock");
        assert_eq!(ProviderName::parse("huggingface_text_generation_inference"), Some(ProviderName::HuggingFaceTgi));
        assert_eq!(ProviderName::parse("vertex-ai"), Some(ProviderName::VertexAi));
        assert_eq!(ProviderName::parse("azuread"), None);
        assert_eq!(ProviderName::parse("my_provider"), None);
        assert_eq!(ProviderName::OpenAi.enum_repr(), "Provider.OPENAI");
    }

    /// `ALL` holds every variant once, in declaration order. The `match` has no wildcard arm, so
    /// a variant added to the enum does not compile until it is listed here (and the count check
    /// then needs it in `ALL`, which tests derive their per-provider tables from).
    #[test]
    fn all_lists_every_variant_once() {
        use ProviderName as P;
        let position = |p: ProviderName| match p {
            P::OpenAi => 0,
            P::Azure => 1,
            P::Anthropic => 2,
            P::Cohere => 3,
            P::Ai21Labs => 4,
            P::MlflowModelServing => 5,
            P::MosaicMl => 6,
            P::HuggingFaceTgi => 7,
            P::Palm => 8,
            P::Gemini => 9,
            P::Bedrock => 10,
            P::AmazonBedrock => 11,
            P::Databricks => 12,
            P::DatabricksModelServing => 13,
            P::Mistral => 14,
            P::TogetherAi => 15,
            P::LiteLlm => 16,
            P::Groq => 17,
            P::DeepSeek => 18,
            P::Xai => 19,
            P::OpenRouter => 20,
            P::Ollama => 21,
            P::VertexAi => 22,
            P::Portkey => 23,
            P::SapAiCore => 24,
            P::Typesafe => 25,
            P::Mock => 26,
        };
        let positions: Vec<usize> = ProviderName::ALL.iter().map(|&p| position(p)).collect();
        assert_eq!(positions, (0..27).collect::<Vec<_>>());
        for &p in ProviderName::ALL {
            assert_eq!(ProviderName::parse(p.as_str()), Some(p), "{p} parses back to itself");
        }
    }
}
