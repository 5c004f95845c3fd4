//! Operating a running gateway: hot reload (`src/reload.rs`), graceful upgrade and stop with
//! real processes and signals (`src/server/lifecycle.rs`, `systemd/aigw.service`).

mod reload;
mod upgrade;
