//! Security: gateway API keys (`src/auth.rs`), inbound TLS (`src/tls.rs`), what web browsers
//! may do (`src/browser.rs`), and secret hygiene across every provider and error path.

mod auth;
mod browser;
mod secret_hygiene;
mod tls;
