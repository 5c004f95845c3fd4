//! aigw's integration tests: one test binary whose modules mirror `src/` (the table is in
//! tests/README.md). They start the real `aigw` binary (`common::Gateway`) against mock
//! upstreams that speak each provider's wire format (`common::upstream::MockUpstream`).
//!
//! Run one module with `cargo test --test it <module path>`, e.g.
//! `cargo test --test it providers::anthropic`.

// Helpers outside #[test] functions may unwrap, expect and panic too: a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod audit;
mod common;
mod config;
mod harness;
mod layers;
mod limits;
mod metrics;
mod ops;
mod properties;
mod provider_matrix;
mod providers;
mod routing;
mod sdk;
mod security;
mod server;
mod upstream;
