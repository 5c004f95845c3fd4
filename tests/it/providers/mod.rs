//! One module per provider, as in `src/providers/`: each holds that provider's MLflow fixture
//! replays, its tests through the real gateway and its error paths. The cross-provider matrix is
//! `provider_matrix`.

mod ai21labs;
mod anthropic;
mod bedrock;
mod cohere;
mod databricks;
mod gemini;
mod huggingface;
mod mistral;
mod mlflow_model_serving;
mod mosaicml;
mod openai;
mod openai_compatible;
mod palm;
mod togetherai;
mod vertex_ai;
