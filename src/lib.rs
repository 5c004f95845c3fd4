//! aigw: an LLM gateway on Cloudflare's Pingora that reads the MLflow AI Gateway YAML, serves
//! MLflow's REST API and an OpenAI-compatible base URL, and translates requests and (streamed)
//! answers to and from every major provider.
//!
//! Where things happen:
//! * [`config`]: the YAML, its validation, secrets, the immutable configuration snapshot;
//! * [`api`]: the route table, local REST answers, error shapes;
//! * [`server`]: the Pingora `ProxyHttp` hooks and the invocation driver;
//! * [`routing`]: name → endpoint (traffic routes, fallback);
//! * [`limits`]: call and token quotas, dollar budgets (reserve, then settle), concurrency caps; in process or shared in Redis;
//! * [`reload`]: hot reload of the YAML;
//! * [`auth`], [`audit`], [`metrics`], [`tls`]: keys, the audit log, Prometheus, inbound TLS;
//! * [`browser`]: what web pages may do (content types, CORS, the Host check);
//! * [`schema`]: MLflow's unified request/response schemas;
//! * [`providers`]: one module per provider (translation + tests);
//! * [`framing`]: upstream stream framings (SSE, NDJSON, AWS event stream) and the stream
//!   decoder interface;
//! * [`upstream`]: base URLs, name resolution, the pooled upstream client.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod browser;
pub mod cli;
pub mod config;
pub mod error;
pub mod framing;
pub mod limits;
pub mod metrics;
pub mod providers;
pub mod reload;
pub mod routing;
pub mod schema;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod upstream;
