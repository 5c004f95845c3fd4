//! aigw's integration tests: one test binary whose modules mirror `src/` (see tests/README.md).
//! Run one module with `cargo test --test it <module path>`, e.g. `cargo test --test it harness`.

mod common;
mod harness;
mod providers;
