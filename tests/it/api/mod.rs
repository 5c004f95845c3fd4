//! The REST surface (`src/api/`): MLflow's recorded REST session, listings, `/v1/models`, and
//! bad client input answered with clear errors in each client API's shape.

mod anthropic_native;
mod anthropic_translated;
mod bad_input;
mod gemini_native;
mod gemini_translated;
mod mlflow3_routes;
mod responses_native;
mod responses_translated;
mod rest;
