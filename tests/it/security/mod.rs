//! Security: gateway API keys (`src/auth.rs`), inbound TLS (`src/tls.rs`), and secret hygiene
//! across every provider and error path.

mod auth;
mod secret_hygiene;
mod tls;
