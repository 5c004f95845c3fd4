//! The REST surface (`src/api/`): MLflow's recorded REST session, listings, `/v1/models`, and
//! bad client input answered with clear errors in each route family's shape.

mod anthropic_native;
mod anthropic_translated;
mod bad_input;
mod responses_native;
mod responses_translated;
mod rest;
