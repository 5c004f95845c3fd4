//! The gateway YAML (MLflow AI Gateway format): loading, validation and the resulting
//! immutable snapshot that requests are served from.
//!
//! ```yaml
//! endpoints:
//!   - name: chat
//!     endpoint_type: llm/v1/chat
//!     model:
//!       provider: openai
//!       name: gpt-4o-mini
//!       config:
//!         openai_api_key: $OPENAI_API_KEY
//!         temperature: 0.2          # a model default (docs/mlflow-compat.md#fix-5)
//!     limit: {calls: 100, renewal_period: minute}
//! routes:
//!   - name: chat-route
//!     task_type: llm/v1/chat
//!     destinations: [{name: chat, traffic_percentage: 100}]
//! aigw:                              # aigw's own settings; MLflow ignores this key
//!   max_request_body: 16MiB
//! ```
//!
//! Every error names the file, the entry and the field, and never contains a secret.

pub mod egress;
pub mod fields;
pub mod provider_name;
pub mod secret;
pub mod settings;
pub mod url;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

pub use egress::{Egress, NoProxy, ProxyServer};
pub use fields::{ConfigMap, FieldError};
pub use provider_name::ProviderName;
pub use secret::Secret;
pub use settings::{
    ApiKey, AuditSettings, AuthSettings, Budget, CorsSettings, LimitSettings, MetricsSettings, OnUnavailable, Settings,
    SharedState, TlsSettings,
};
pub use url::{BaseUrl, Origin};

use crate::schema::{self, EndpointType};

/// What a provider is told about its endpoint when it is built from `model.config`.
#[derive(Debug, Clone, Copy)]
pub struct EndpointSpec<'a> {
    /// Endpoint name.
    pub name: &'a str,
    /// Position of the endpoint in the file (0-based), the same as [`Endpoint::index`].
    pub index: usize,
    /// The unified API it serves.
    pub endpoint_type: EndpointType,
    /// `model.name`.
    pub model_name: Option<&'a str>,
    /// The provider name as configured.
    pub provider_name: ProviderName,
}

/// Called once per endpoint, in file order, while a configuration is validated: reads the
/// provider's own settings from `model.config` (what it leaves unread becomes model defaults or
/// a warning) and fails with the field at fault. The configuration layer knows no provider; the
/// layer above passes the function that builds them (see `docs/architecture.md`).
pub type ModelBuilder<'b> = dyn FnMut(&EndpointSpec<'_>, &mut ConfigMap<'_>) -> Result<(), FieldError> + 'b;

/// Environment variable that restricts which providers may be configured (comma list).
pub const ALLOWED_PROVIDERS_ENV: &str = "MLFLOW_GATEWAY_ALLOWED_PROVIDERS";

/// A configuration problem, with enough context to find it in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: String,
    /// The entry, e.g. `endpoint 'chat' (endpoints[0])`; empty for file-level problems.
    pub entry: String,
    /// The field inside the entry, e.g. `model.config.openai_api_key`; may be empty.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if !self.entry.is_empty() {
            write!(f, ": {}", self.entry)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A per-endpoint call quota (`limit:`), as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Calls allowed per renewal period (required unless `tokens` is given).
    pub calls: Option<u64>,
    /// Prompt plus completion tokens allowed per renewal period (`limit.tokens`, an aigw
    /// extension).
    pub tokens: Option<u64>,
    /// The period as written (`minute`, `2 minutes`), echoed by the REST API.
    pub renewal_period: String,
    /// Multiplier of the period unit (`2` in `2 minutes`).
    pub period_count: u64,
    /// The period unit (`second`, `minute`, `hour`, `day`, `month`, `year`).
    pub period_unit: &'static str,
    /// Length of one renewal period in seconds.
    pub period_secs: u64,
    /// Optional counter scope (`limit.key`) as written, echoed by the REST API.
    pub key: Option<String>,
    /// What `key` scopes the counter to.
    pub scope: LimitScope,
    /// Cap on requests in flight (`limit.max_concurrent`, an aigw extension).
    pub max_concurrent: Option<u64>,
}

/// What one quota counter covers (`limit.key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitScope {
    /// The whole endpoint (no `key`, MLflow's "max calls per renewal period").
    Endpoint,
    /// Each client IP address (`key: client_ip`).
    ClientIp,
    /// Each value of a request header (`key: header:<name>`).
    Header(http::HeaderName),
    /// Each authenticated gateway API key (`key: api_key`).
    ApiKey,
}

/// Retries of one endpoint's upstream call (the endpoint's `retry:` mapping, an aigw
/// extension): on a connection failure, a timeout, 429 or 5xx, before any byte of the answer
/// reached the client, after an exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff_ms: u64,
    /// Longest wait.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 1, backoff_ms: 200, max_backoff_ms: 5_000 }
    }
}

impl Limit {
    /// MLflow's (slowapi's) description of the call quota, e.g. `2 per 1 minute`.
    pub fn describe(&self) -> String {
        self.describe_amount(self.calls.unwrap_or(0))
    }

    /// `<amount> per <count> <unit>`, e.g. `200000 per 1 minute`.
    pub fn describe_amount(&self, amount: u64) -> String {
        format!("{amount} per {} {}", self.period_count, self.period_unit)
    }
}

/// What an endpoint's model costs (`model.pricing`, an aigw extension), in US dollars per
/// million tokens. A price left out counts as zero (and is warned about at load), except
/// `cached_input`, which defaults to `input`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pricing {
    /// Prompt tokens (cache writes included).
    pub input: Option<f64>,
    /// Completion tokens (reasoning included).
    pub output: Option<f64>,
    /// Prompt tokens read from the provider's cache.
    pub cached_input: Option<f64>,
}

impl Pricing {
    /// The cost in nano-dollars (10⁻⁹ USD, rounded up) of `prompt` tokens of which `cached`
    /// were cache reads, and `completion` tokens.
    pub fn cost_nanos(&self, prompt: u64, cached: u64, completion: u64) -> u64 {
        let input = self.input.unwrap_or(0.0);
        let cached_price = self.cached_input.unwrap_or(input);
        let cached = cached.min(prompt);
        // USD per million tokens = 1000 nano-dollars per token.
        let nanos = ((prompt - cached) as f64 * input
            + cached as f64 * cached_price
            + completion as f64 * self.output.unwrap_or(0.0))
            * 1000.0;
        if nanos.is_finite() && nanos > 0.0 { nanos.ceil().min(u64::MAX as f64) as u64 } else { 0 }
    }
}

/// One configured endpoint.
pub struct Endpoint {
    /// Unique name, used in URLs and as the `/v1` model name.
    pub name: String,
    /// Which unified API it serves.
    pub endpoint_type: EndpointType,
    /// `model.name`, if given.
    pub model_name: Option<String>,
    /// The provider name as configured (after MLflow's normalisation).
    pub provider_name: ProviderName,
    /// Position in the file (0-based): the provider built for it is found by this index.
    pub index: usize,
    /// Call and token quota.
    pub limit: Option<Limit>,
    /// What the model costs (`model.pricing`), for budgets and the usage ledger.
    pub pricing: Option<Pricing>,
    /// Request parameters from `model.config` used when a request leaves them unset.
    pub defaults: Map<String, Value>,
    /// Retries of the upstream call.
    pub retry: RetryPolicy,
    /// Total time one upstream call to this endpoint may take, streams included (the
    /// endpoint's `timeout_s`, an aigw extension); `None`: `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`.
    /// Each retry and each fallback destination gets its own.
    pub timeout: Option<std::time::Duration>,
    /// The raw proxy route forwards this endpoint's POST, PUT and PATCH bodies whatever their
    /// content type (`proxy_any_content_type: true`, an aigw extension; docs/security.md,
    /// "Content types"); by default only bodies declared JSON.
    pub proxy_any_content_type: bool,
    /// Identity of this endpoint's quota counters: the name, the period and the scope (not the
    /// amounts), so a reload that keeps them keeps the count, and a changed amount applies to
    /// the count so far.
    pub limit_id: Arc<str>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("endpoint_type", &self.endpoint_type)
            .field("model_name", &self.model_name)
            .field("provider", &self.provider_name)
            .field("limit", &self.limit)
            .field("pricing", &self.pricing)
            .field("defaults", &self.defaults)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("proxy_any_content_type", &self.proxy_any_content_type)
            .finish_non_exhaustive()
    }
}

/// How a traffic route picks a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingStrategy {
    /// Weighted random choice per request (MLflow's only strategy).
    TrafficSplit,
    /// Destinations in order: the next one is tried when one fails with a connection error,
    /// a timeout, 429 or 5xx before the first byte reached the client (an aigw extension).
    Fallback,
}

impl RoutingStrategy {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingStrategy::TrafficSplit => "TRAFFIC_SPLIT",
            RoutingStrategy::Fallback => "FALLBACK",
        }
    }
}

/// One destination of a traffic route.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The endpoint's name.
    pub name: String,
    /// Share of traffic, 0..=100.
    pub traffic_percentage: u32,
    /// The endpoint itself.
    pub endpoint: Arc<Endpoint>,
}

/// A traffic route (`routes:`), invocable by name like an endpoint.
#[derive(Debug)]
pub struct TrafficRoute {
    /// Unique name (shared namespace with endpoints).
    pub name: String,
    /// The endpoint type every destination has.
    pub task_type: EndpointType,
    /// Where requests go.
    pub destinations: Vec<Destination>,
    /// How a destination is chosen.
    pub routing_strategy: RoutingStrategy,
}

/// What a name resolves to.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A plain endpoint.
    Endpoint(&'a Arc<Endpoint>),
    /// A traffic route over endpoints.
    Route(&'a Arc<TrafficRoute>),
}

impl Target<'_> {
    /// The endpoint's or route's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Endpoint(e) => &e.name,
            Target::Route(r) => &r.name,
        }
    }

    /// The endpoint type requests to this target must have.
    pub fn endpoint_type(&self) -> EndpointType {
        match self {
            Target::Endpoint(e) => e.endpoint_type,
            Target::Route(r) => r.task_type,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Endpoint(usize),
    Route(usize),
}

/// A validated gateway configuration: what one request is served from. Immutable; a reload
/// builds a new one and swaps it in atomically.
pub struct GatewayConfig {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Endpoints in file order.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Traffic routes in file order.
    pub routes: Vec<Arc<TrafficRoute>>,
    /// aigw's own settings (`aigw:` block).
    pub settings: Settings,
    names: HashMap<String, Slot>,
    /// Every resolved secret value (for [`GatewayConfig::redact`]); never printed.
    secrets: Vec<String>,
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("path", &self.path)
            .field("endpoints", &self.endpoints)
            .field("routes", &self.routes)
            .field("settings", &self.settings)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .finish()
    }
}

impl GatewayConfig {
    /// Load and validate a file; `build` reads each endpoint's provider settings.
    pub fn load(path: &Path, build: &mut ModelBuilder<'_>) -> Result<GatewayConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            entry: String::new(),
            field: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(&text, path, build)
    }

    /// Validate YAML text; `path` is used in messages and kept for reloads; `build` reads each
    /// endpoint's provider settings.
    pub fn parse(text: &str, path: &Path, build: &mut ModelBuilder<'_>) -> Result<GatewayConfig, ConfigError> {
        let (loaded, mut secrets) = secret::collect(|| Loader::new(path).load(text, build));
        let mut config = loaded?;
        // Short values would scrub ordinary words; real credentials are long.
        secrets.retain(|s| s.len() >= 8);
        secrets.sort_unstable_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        config.secrets = secrets;
        Ok(config)
    }

    /// Replace every configured secret in `text` with `***` (defence in depth for messages
    /// that carry upstream text, which could echo a credential).
    pub fn redact(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for s in &self.secrets {
            let current = out.as_deref().unwrap_or(text);
            if current.contains(s.as_str()) {
                out = Some(current.replace(s.as_str(), "***"));
            }
        }
        out
    }

    /// Resolve an endpoint or traffic-route name.
    pub fn target(&self, name: &str) -> Option<Target<'_>> {
        match self.names.get(name)? {
            Slot::Endpoint(i) => self.endpoints.get(*i).map(Target::Endpoint),
            Slot::Route(i) => self.routes.get(*i).map(Target::Route),
        }
    }

    /// Look up an endpoint (not a route) by name.
    pub fn endpoint(&self, name: &str) -> Option<&Arc<Endpoint>> {
        match self.target(name)? {
            Target::Endpoint(e) => Some(e),
            Target::Route(_) => None,
        }
    }

    /// Whether the gateway may serve this configuration on `public` (non-loopback) listeners:
    /// without keys only when `aigw.auth.allow_unauthenticated` says so.
    pub fn check_exposure(&self, public: bool) -> Result<(), ConfigError> {
        if public && self.settings.auth.keys.is_empty() && !self.settings.auth.allow_unauthenticated {
            return Err(ConfigError {
                file: self.path.display().to_string(),
                entry: String::new(),
                field: "aigw.auth".into(),
                message: "no API keys are configured, so aigw serves only loopback addresses. Add keys \
                          (aigw.auth.keys) or set aigw.auth.allow_unauthenticated: true to serve \
                          unauthenticated on a public address"
                    .into(),
            });
        }
        Ok(())
    }

    /// Look up a traffic route by name.
    pub fn route(&self, name: &str) -> Option<&Arc<TrafficRoute>> {
        match self.target(name)? {
            Target::Route(r) => Some(r),
            Target::Endpoint(_) => None,
        }
    }
}

/// The YAML text as a JSON value, read the way the gateway has always read it: YAML 1.2 core
/// types (only `true`/`false` are booleans, `0755` and `1_000` stay text, `.inf` is null),
/// anchors and aliases, and merge keys (`<<: *defaults`, `<<: [*a, *b]`; the mapping's own keys
/// win, then the earlier merged mapping), as PyYAML reads them for MLflow. Duplicate keys and
/// several documents are errors. An error says where (line, column) and what is wrong,
/// without quoting the source line (it may hold a secret).
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    let options = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        non_finite_float_policy: serde_saphyr::options::NonFiniteFloatPolicy::PassThrough,
        merge_keys: serde_saphyr::options::MergeKeyPolicy::Merge,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        // The parser's hints name its own API; the operator gets the finding and its place.
        e.without_snippet()
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
            .replace("; use from_str_multiple or from_str_multiple_with_options", " (one document per file)")
    })
}

/// Validation state for one file.
struct Loader {
    file: String,
    path: PathBuf,
    allowed: Option<Vec<ProviderName>>,
}

/// Pydantic's message for a mapping that was expected.
const NOT_A_MAPPING: &str = "Input should be a valid dictionary";

impl Loader {
    fn new(path: &Path) -> Self {
        let allowed = std::env::var(ALLOWED_PROVIDERS_ENV).ok().map(|list| {
            list.split(',').filter_map(|p| ProviderName::parse(p.trim())).map(ProviderName::canonical).collect()
        });
        Loader { file: path.display().to_string(), path: path.to_path_buf(), allowed }
    }

    fn err(&self, entry: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.clone(), entry: entry.into(), field: field.into(), message: message.into() }
    }

    fn load(&self, text: &str, build: &mut ModelBuilder<'_>) -> Result<GatewayConfig, ConfigError> {
        let root = parse_yaml(text).map_err(|e| self.err("", "", format!("not a valid YAML file: {e}")))?;
        let Value::Object(root) = root else {
            return Err(self.err(
                "",
                "",
                "The gateway configuration is invalid: the top level must be a mapping with an \
                 'endpoints' list",
            ));
        };

        let mut settings = match root.get("aigw") {
            None | Some(Value::Null) => Settings::default(),
            Some(Value::Object(m)) => Settings::parse(m).map_err(|e| self.err("", e.field, e.message))?,
            Some(_) => return Err(self.err("aigw", "", NOT_A_MAPPING)),
        };
        settings.shared_state_from_env().map_err(|e| self.err("", e.field, e.message))?;
        settings.egress.from_env(|name| std::env::var(name).ok()).map_err(|e| self.err("", e.field, e.message))?;

        let raw_endpoints = match root.get("endpoints") {
            Some(Value::Array(list)) => list.as_slice(),
            None | Some(Value::Null) => {
                return Err(self.err("", "endpoints", "Field required"));
            }
            Some(_) => return Err(self.err("", "endpoints", "Input should be a valid list")),
        };
        let raw_routes = match root.get("routes") {
            Some(Value::Array(list)) => list.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err(self.err("", "routes", "Input should be a valid list")),
        };

        let mut names: HashMap<String, Slot> = HashMap::new();
        let mut endpoints = Vec::with_capacity(raw_endpoints.len());
        for (i, raw) in raw_endpoints.iter().enumerate() {
            let endpoint = self.endpoint(i, raw, build, &settings.egress)?;
            if names.insert(endpoint.name.clone(), Slot::Endpoint(i)).is_some() {
                return Err(self.duplicate(&format!("endpoint '{}' (endpoints[{i}])", endpoint.name)));
            }
            endpoints.push(Arc::new(endpoint));
        }
        let mut routes = Vec::with_capacity(raw_routes.len());
        for (i, raw) in raw_routes.iter().enumerate() {
            let route = self.route(i, raw, &names, &endpoints)?;
            if names.insert(route.name.clone(), Slot::Route(i)).is_some() {
                return Err(self.duplicate(&format!("route '{}' (routes[{i}])", route.name)));
            }
            routes.push(Arc::new(route));
        }

        for (i, key) in settings.auth.keys.iter().enumerate() {
            for name in key.endpoints.iter().flatten() {
                if name != "*" && !names.contains_key(name) {
                    return Err(self.err(
                        "",
                        format!("aigw.auth.keys[{i}].endpoints"),
                        format!("key '{}' lists '{name}', which is neither an endpoint nor a route", key.name),
                    ));
                }
            }
        }
        for (i, budget) in settings.budgets.iter().enumerate() {
            for name in budget.endpoints.iter().flatten() {
                if !names.contains_key(name) {
                    return Err(self.err(
                        "",
                        format!("aigw.budgets[{i}].endpoints"),
                        format!("budget '{}' lists '{name}', which is neither an endpoint nor a route", budget.name),
                    ));
                }
            }
            for key in budget.keys.iter().flatten() {
                if !settings.auth.keys.iter().any(|k| &k.name == key) {
                    return Err(self.err(
                        "",
                        format!("aigw.budgets[{i}].keys"),
                        format!("budget '{}' lists '{key}', which is not a key name of aigw.auth.keys", budget.name),
                    ));
                }
            }
        }
        if !settings.budgets.is_empty() {
            for e in endpoints.iter().filter(|e| e.pricing.is_none()) {
                if settings.budgets.iter().any(|b| b.endpoints.as_ref().is_none_or(|n| n.contains(&e.name))) {
                    log::warn!(
                        "{}: endpoint '{}' has no model.pricing: its calls cost 0 against budgets",
                        self.file,
                        e.name
                    );
                }
            }
        }
        Ok(GatewayConfig { path: self.path.clone(), endpoints, routes, settings, names, secrets: Vec::new() })
    }

    fn duplicate(&self, entry: &str) -> ConfigError {
        self.err(
            entry,
            "name",
            "Duplicate names found in endpoint / route configurations. Please remove the \
             duplicate endpoint / route name from the configuration to ensure that endpoints / \
             routes are created properly.",
        )
    }

    fn endpoint(
        &self,
        index: usize,
        raw: &Value,
        build: &mut ModelBuilder<'_>,
        egress: &Egress,
    ) -> Result<Endpoint, ConfigError> {
        let mut entry = format!("endpoints[{index}]");
        let Value::Object(map) = raw else {
            return Err(self.err(entry, "", NOT_A_MAPPING));
        };
        let name = match map.get("name") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(self.err(entry, "name", "Field required")),
            Some(_) => return Err(self.err(entry, "name", "Input should be a valid string")),
        };
        entry = format!("endpoint '{name}' ({entry})");
        if !is_valid_name(&name) {
            return Err(self.err(entry, "name", invalid_name_message(&name)));
        }
        if map.contains_key("route_type") {
            return Err(self.err(
                entry,
                "route_type",
                "The 'route_type' configuration key is not supported in the configuration \
                 file. Use 'endpoint_type' instead.",
            ));
        }
        let endpoint_type = match map.get("endpoint_type") {
            Some(Value::String(s)) => EndpointType::parse(s)
                .ok_or_else(|| self.err(&entry, "endpoint_type", format!("The route_type '{s}' is not supported.")))?,
            None | Some(Value::Null) => return Err(self.err(entry, "endpoint_type", "Field required")),
            Some(other) => {
                return Err(self.err(entry, "endpoint_type", format!("The route_type '{other}' is not supported.")));
            }
        };

        let model = match map.get("model") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) => return Err(self.err(entry, "model", "Field required")),
            Some(_) => return Err(self.err(entry, "model", NOT_A_MAPPING)),
        };
        let provider_value = match model.get("provider") {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => return Err(self.err(entry, "model.provider", "Field required")),
            Some(_) => return Err(self.err(entry, "model.provider", "Input should be a valid string")),
        };
        let provider_name = ProviderName::parse(provider_value).ok_or_else(|| {
            self.err(&entry, "model.provider", format!("The provider '{provider_value}' is not supported."))
        })?;
        if let Some(allowed) = &self.allowed
            && !allowed.contains(&provider_name.canonical())
        {
            return Err(self.err(
                entry,
                "model.provider",
                format!(
                    "Provider '{provider_value}' is not allowed by the current gateway provider \
                     policy ({ALLOWED_PROVIDERS_ENV})."
                ),
            ));
        }
        let model_name = match model.get("name") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(self.err(entry, "model.name", "Input should be a valid string")),
        };
        let empty = Map::new();
        let config = match model.get("config") {
            Some(Value::Object(m)) => m,
            None | Some(Value::Null) if provider_name == ProviderName::Mock => &empty,
            None | Some(Value::Null) => {
                return Err(self.err(
                    entry,
                    "model.config",
                    format!(
                        "A config must be supplied when setting a provider. The provider entry \
                         for {} is incorrect.",
                        provider_name.enum_repr()
                    ),
                ));
            }
            Some(_) => return Err(self.err(entry, "model.config", NOT_A_MAPPING)),
        };

        let spec = EndpointSpec { name: &name, index, endpoint_type, model_name: model_name.as_deref(), provider_name };
        let mut cfg = ConfigMap::new(config, "model.config");
        build(&spec, &mut cfg).map_err(|e| self.err(&entry, e.field, e.message))?;
        // The egress guard refuses a provider address written as a private IP literal now,
        // rather than on every request.
        if let Some(e) = egress.literal_refusal(&ConfigMap::new(config, "model.config"), config) {
            return Err(self.err(entry, e.field, e.message));
        }

        // What the provider did not read: request parameters become defaults, the rest is
        // ignored with a warning (MLflow ignores unknown keys silently).
        let mut defaults = Map::new();
        for (key, value) in cfg.unread() {
            match schema::validate_default(endpoint_type, key, value) {
                Ok(Some(v)) => {
                    defaults.insert(key.clone(), v);
                }
                Ok(None) => log::warn!(
                    "{}: {entry}: model.config.{key} is neither a setting of provider '{}' nor a \
                     request parameter; ignored",
                    self.file,
                    provider_name
                ),
                Err(message) => return Err(self.err(entry, format!("model.config.{key}"), message)),
            }
        }

        let limit = match map.get("limit") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(parse_limit(m).map_err(|e| self.err(&entry, e.field, e.message))?),
            Some(_) => return Err(self.err(entry, "limit", NOT_A_MAPPING)),
        };
        if let Some(Limit { key: Some(key), scope: LimitScope::Endpoint, .. }) = &limit {
            log::warn!(
                "{}: {entry}: limit.key '{key}' is not a scope aigw knows (client_ip, header:<name>, \
                 api_key); the counter covers the whole endpoint",
                self.file
            );
        }
        let retry = match map.get("retry") {
            None | Some(Value::Null) => RetryPolicy::default(),
            Some(Value::Object(m)) => parse_retry(m).map_err(|e| self.err(&entry, e.field, e.message))?,
            Some(_) => return Err(self.err(entry, "retry", NOT_A_MAPPING)),
        };
        let timeout = match map.get("timeout_s") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(secs) if secs > 0.0 && secs <= 86_400.0 => Some(std::time::Duration::from_secs_f64(secs)),
                _ => {
                    return Err(self.err(entry, "timeout_s", "must be a number of seconds, above 0 and at most 86400"));
                }
            },
        };
        let proxy_any_content_type = match map.get("proxy_any_content_type") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(self.err(entry, "proxy_any_content_type", "Input should be a valid boolean")),
        };
        let limit_id: Arc<str> = match &limit {
            Some(l) => format!("{name}\u{0}{}/{:?}", l.period_secs, l.scope).into(),
            None => name.as_str().into(),
        };
        let pricing = match model.get("pricing") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(parse_pricing(m).map_err(|e| self.err(&entry, e.field, e.message))?),
            Some(_) => return Err(self.err(entry, "model.pricing", NOT_A_MAPPING)),
        };
        if let Some(p) = &pricing {
            for (field, price) in [("input", p.input), ("output", p.output)] {
                if price.is_none() {
                    log::warn!(
                        "{}: {entry}: model.pricing.{field} is not set; those tokens cost 0 against budgets",
                        self.file
                    );
                }
            }
        }

        Ok(Endpoint {
            name,
            endpoint_type,
            model_name,
            provider_name,
            index,
            limit,
            pricing,
            defaults,
            retry,
            timeout,
            proxy_any_content_type,
            limit_id,
        })
    }

    fn route(
        &self,
        index: usize,
        raw: &Value,
        names: &HashMap<String, Slot>,
        endpoints: &[Arc<Endpoint>],
    ) -> Result<TrafficRoute, ConfigError> {
        let mut entry = format!("routes[{index}]");
        let Value::Object(map) = raw else {
            return Err(self.err(entry, "", NOT_A_MAPPING));
        };
        let name = match map.get("name") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(self.err(entry, "name", "Field required")),
            Some(_) => return Err(self.err(entry, "name", "Input should be a valid string")),
        };
        entry = format!("route '{name}' ({entry})");
        // docs/mlflow-compat.md#fix-12: route names are URL path segments too, so validate them like endpoints.
        if !is_valid_name(&name) {
            return Err(self.err(entry, "name", invalid_name_message(&name)));
        }
        let task_type = match map.get("task_type") {
            Some(Value::String(s)) => EndpointType::parse(s)
                .ok_or_else(|| self.err(&entry, "task_type", format!("The route_type '{s}' is not supported.")))?,
            None | Some(Value::Null) => return Err(self.err(entry, "task_type", "Field required")),
            Some(_) => return Err(self.err(entry, "task_type", "Input should be a valid string")),
        };
        let routing_strategy = match map.get("routing_strategy") {
            None | Some(Value::Null) => RoutingStrategy::TrafficSplit,
            Some(Value::String(s)) if s == "TRAFFIC_SPLIT" => RoutingStrategy::TrafficSplit,
            Some(Value::String(s)) if s == "FALLBACK" => RoutingStrategy::Fallback,
            Some(other) => {
                return Err(self.err(
                    entry,
                    "routing_strategy",
                    format!("Input should be 'TRAFFIC_SPLIT' or 'FALLBACK', got {other}"),
                ));
            }
        };
        let fallback = routing_strategy == RoutingStrategy::Fallback;
        let raw_destinations = match map.get("destinations") {
            Some(Value::Array(list)) => list,
            None | Some(Value::Null) => return Err(self.err(entry, "destinations", "Field required")),
            Some(_) => return Err(self.err(entry, "destinations", "Input should be a valid list")),
        };
        let mut destinations = Vec::with_capacity(raw_destinations.len());
        let mut total: u64 = 0;
        for (j, raw_dest) in raw_destinations.iter().enumerate() {
            let field = format!("destinations[{j}]");
            let Value::Object(dest) = raw_dest else {
                return Err(self.err(entry, field, NOT_A_MAPPING));
            };
            let dest_name = match dest.get("name") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => return Err(self.err(entry, format!("{field}.name"), "Field required")),
                Some(_) => return Err(self.err(entry, format!("{field}.name"), "Input should be a valid string")),
            };
            let percentage = match dest.get("traffic_percentage") {
                // A fallback route tries destinations in order; shares do not apply.
                None | Some(Value::Null) if fallback => 0,
                None | Some(Value::Null) => {
                    return Err(self.err(entry, format!("{field}.traffic_percentage"), "Field required"));
                }
                Some(v) => as_percentage(v).ok_or_else(|| {
                    self.err(
                        &entry,
                        format!("{field}.traffic_percentage"),
                        "The route destination traffic percentage must between 0 and 100.",
                    )
                })?,
            };
            let endpoint = match names.get(&dest_name) {
                Some(Slot::Endpoint(i)) => endpoints[*i].clone(),
                _ => {
                    return Err(self.err(
                        entry,
                        format!("{field}.name"),
                        format!(
                            "The route destination name must be a endpoint name, but the route \
                             '{name}' has an invalid destination name '{dest_name}'."
                        ),
                    ));
                }
            };
            if endpoint.endpoint_type != task_type {
                return Err(self.err(
                    entry,
                    format!("{field}.name"),
                    format!(
                        "The route destination endpoint types in the route '{name}' must have \
                         endpoint type '{}' but got endpoint type '{}'.",
                        task_type.as_str(),
                        endpoint.endpoint_type.as_str()
                    ),
                ));
            }
            total += u64::from(percentage);
            destinations.push(Destination { name: dest_name, traffic_percentage: percentage, endpoint });
        }
        if fallback && destinations.is_empty() {
            return Err(self.err(entry, "destinations", "a FALLBACK route needs at least one destination"));
        }
        if !fallback && total != 100 {
            return Err(self.err(
                entry,
                "destinations",
                format!(
                    "For each route configuration, the traffic percentage sum of destinations \
                     must be 100, but got invalid configuration of route '{name}'."
                ),
            ));
        }
        Ok(TrafficRoute { name, task_type, destinations, routing_strategy })
    }
}

/// MLflow's endpoint-name rule: `[a-zA-Z0-9_\-.]+` (the message omits the dot, the check allows it).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn invalid_name_message(name: &str) -> String {
    format!(
        "The route name provided contains disallowed characters for a url endpoint. '{name}' is \
         invalid. Names cannot contain spaces or any non alphanumeric characters other than \
         hyphen and underscore."
    )
}

fn as_percentage(v: &Value) -> Option<u32> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (f.fract() == 0.0 && (0.0..=100.0).contains(&f)).then_some(f as u32)
}

const LIMIT_PARSE_ERROR: &str = "Failed to parse the rate limit configuration. Please make sure \
    limit.calls is a positive number and limit.renewal_period is a right granularity (second, \
    minute, hour, day, month or year, optionally with a count such as '2 minutes')";

/// Parse `limit: {calls, renewal_period, key}` with the python `limits` library's rules.
fn parse_limit(map: &Map<String, Value>) -> Result<Limit, FieldError> {
    let mut m = ConfigMap::new(map, "limit");
    let tokens = m.u64("tokens")?;
    let calls = match m.value("calls") {
        None if tokens.is_some() => None,
        None => return Err(m.error("calls", "Field required")),
        Some(v) => Some(fields::as_u64(v).ok_or_else(|| m.error("calls", LIMIT_PARSE_ERROR))?),
    };
    let renewal_period = m.required_string("renewal_period")?;
    let (period_count, period_unit, unit_secs) =
        parse_period(&renewal_period).ok_or_else(|| m.error("renewal_period", LIMIT_PARSE_ERROR))?;
    let key = match m.value("key") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let scope = match key.as_deref().map(str::trim) {
        None => LimitScope::Endpoint,
        Some("client_ip" | "ip" | "remote_address" | "remote_addr") => LimitScope::ClientIp,
        Some("api_key") => LimitScope::ApiKey,
        Some(k) => match k.strip_prefix("header:") {
            Some(h) => LimitScope::Header(
                http::HeaderName::from_bytes(h.trim().as_bytes())
                    .map_err(|_| m.error("key", format!("'{h}' is not a valid header name")))?,
            ),
            // MLflow accepts and ignores any key; keep such files loading.
            None => LimitScope::Endpoint,
        },
    };
    let max_concurrent = m.u64("max_concurrent")?;
    if max_concurrent == Some(0) {
        return Err(m.error("max_concurrent", "must be at least 1"));
    }
    Ok(Limit {
        calls,
        tokens,
        renewal_period,
        period_count,
        period_unit,
        period_secs: period_count.saturating_mul(unit_secs),
        key,
        scope,
        max_concurrent,
    })
}

/// Parse `model.pricing: {input, output, cached_input}` (USD per million tokens).
fn parse_pricing(map: &Map<String, Value>) -> Result<Pricing, FieldError> {
    let mut m = ConfigMap::new(map, "model.pricing");
    let p = Pricing { input: m.f64("input")?, output: m.f64("output")?, cached_input: m.f64("cached_input")? };
    if let Some((key, _)) = m.unread().next() {
        return Err(m.error(key, "unknown price (input, output, cached_input: USD per million tokens)"));
    }
    Ok(p)
}

/// Parse an endpoint's `retry: {max_attempts, backoff_ms, max_backoff_ms}`.
fn parse_retry(map: &Map<String, Value>) -> Result<RetryPolicy, FieldError> {
    let mut m = ConfigMap::new(map, "retry");
    let mut p = RetryPolicy::default();
    if let Some(n) = m.u64("max_attempts")? {
        if !(1..=10).contains(&n) {
            return Err(m.error("max_attempts", "must be between 1 and 10"));
        }
        p.max_attempts = n as u32;
    }
    if let Some(ms) = m.u64("backoff_ms")? {
        p.backoff_ms = ms;
    }
    if let Some(ms) = m.u64("max_backoff_ms")? {
        p.max_backoff_ms = ms;
    }
    if p.backoff_ms > p.max_backoff_ms {
        return Err(m.error("backoff_ms", "must not exceed max_backoff_ms"));
    }
    if let Some((key, _)) = m.unread().next() {
        return Err(m.error(key, "unknown setting (max_attempts, backoff_ms, max_backoff_ms)"));
    }
    Ok(p)
}

/// `[N ]unit[s]`, case-insensitive; units as in the `limits` library (month = 30 days, year =
/// 12 months). Returns (count, unit, seconds per unit).
pub fn parse_period(text: &str) -> Option<(u64, &'static str, u64)> {
    const UNITS: &[(&str, u64)] = &[
        ("second", 1),
        ("minute", 60),
        ("hour", 3_600),
        ("day", 86_400),
        ("month", 30 * 86_400),
        ("year", 12 * 30 * 86_400),
    ];
    let t = text.trim().to_ascii_lowercase();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let count = if digits == 0 { 1 } else { t[..digits].parse().ok()? };
    if count == 0 {
        return None;
    }
    let word = t[digits..].trim_start();
    let word = word.strip_suffix('s').unwrap_or(word);
    UNITS.iter().find(|(unit, _)| *unit == word).map(|(unit, secs)| (count, *unit, *secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("minute"), Some((1, "minute", 60)));
        assert_eq!(parse_period("2 minutes"), Some((2, "minute", 60)));
        assert_eq!(parse_period("Hour"), Some((1, "hour", 3600)));
        assert_eq!(parse_period("days"), Some((1, "day", 86_400)));
        assert_eq!(parse_period("week"), None);
        assert_eq!(parse_period("min"), None);
        assert_eq!(parse_period("10s"), None);
        assert_eq!(parse_period("0 seconds"), None);
    }

    #[test]
    fn yaml_types_like_before() {
        let v = parse_yaml("a: yes\nb: on\nc: ~\nd: 0x10\ne: 1e3\nf: 010\ng: 1_000\nh: True\ni: .inf\n1: k\n").unwrap();
        let want = serde_json::json!({"a": "yes", "b": "on", "c": null, "d": 16, "e": 1000.0, "f": "010",
                                      "g": "1_000", "h": true, "i": null, "1": "k"});
        assert_eq!(v, want);
        assert_eq!(parse_yaml("").unwrap(), Value::Null);
        assert_eq!(parse_yaml("k: &k v\nm: *k\n").unwrap(), serde_json::json!({"k": "v", "m": "v"}));
    }

    #[test]
    fn yaml_merge_keys() {
        let v = parse_yaml("d: &d {a: 1, b: 2}\nx:\n  <<: *d\n  b: 3\n").unwrap();
        assert_eq!(v["x"], serde_json::json!({"a": 1, "b": 3}));
        // Several mappings: the mapping's own keys win, then the earlier merged mapping.
        let v = parse_yaml("p: &p {a: 1, b: 1}\nq: &q {b: 2, c: 2}\nx:\n  <<: [*p, *q]\n  c: 3\n").unwrap();
        assert_eq!(v["x"], serde_json::json!({"a": 1, "b": 1, "c": 3}));
        let e = parse_yaml("a: &a 1\nb:\n  <<: *a\n").unwrap_err();
        assert!(e.contains("merge") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn yaml_errors_say_where_but_quote_nothing() {
        let e = parse_yaml("endpoints:\n  - {name: a, key: sk-secret-0123456789\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("sk-secret"), "{e}");
        let e = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e, "duplicate mapping key: a at line 2, column 1");
        let e = parse_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.starts_with("multiple YAML documents detected (one document per file)"), "{e}");
        assert!(parse_yaml("a: *nope\n").unwrap_err().contains("unknown anchor"));
    }

    /// A config that shares settings through an anchor and merge keys loads to the same
    /// endpoints as the one that spells every entry out.
    #[test]
    fn anchors_and_merge_keys_load_like_the_spelled_out_config() {
        let merged = r#"
x-openai: &openai
  provider: openai
  config: &openai_config
    openai_api_key: sk-merge-test-0123456789
    openai_api_base: http://127.0.0.1:9/v1
x-limit: &limit {calls: 10, renewal_period: minute}
x-retry: &retry {retry: {max_attempts: 3, backoff_ms: 100}}
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      <<: *openai
      name: gpt-4o-mini
    limit: *limit
  - <<: *retry
    name: chat-warm
    endpoint_type: llm/v1/chat
    model:
      <<: *openai
      name: gpt-4o-mini
      config:
        <<: *openai_config
        temperature: 0.9
    limit:
      <<: *limit
      calls: 20
  - <<: [*retry, {endpoint_type: llm/v1/embeddings, timeout_s: 5}]
    name: emb
    model: {<<: *openai, name: text-embedding-3-small}
"#;
        let spelled = r#"
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {openai_api_key: sk-merge-test-0123456789, openai_api_base: http://127.0.0.1:9/v1}
    limit: {calls: 10, renewal_period: minute}
  - name: chat-warm
    endpoint_type: llm/v1/chat
    retry: {max_attempts: 3, backoff_ms: 100}
    model:
      provider: openai
      name: gpt-4o-mini
      config: {openai_api_key: sk-merge-test-0123456789, openai_api_base: http://127.0.0.1:9/v1, temperature: 0.9}
    limit: {calls: 20, renewal_period: minute}
  - name: emb
    endpoint_type: llm/v1/embeddings
    retry: {max_attempts: 3, backoff_ms: 100}
    timeout_s: 5
    model:
      provider: openai
      name: text-embedding-3-small
      config: {openai_api_key: sk-merge-test-0123456789, openai_api_base: http://127.0.0.1:9/v1}
"#;
        let path = Path::new("gateway.yaml");
        // A provider's part: it reads its key (a secret) and base URL.
        let mut openai = |_: &EndpointSpec<'_>, cfg: &mut ConfigMap<'_>| {
            cfg.required_secret("openai_api_key")?;
            cfg.url("openai_api_base").map(drop)
        };
        let a = GatewayConfig::parse(merged, path, &mut openai).unwrap();
        let b = GatewayConfig::parse(spelled, path, &mut openai).unwrap();
        assert_eq!(a.endpoints.len(), 3);
        assert_eq!(format!("{:?}", a.endpoints), format!("{:?}", b.endpoints));
        assert_eq!(a.endpoints[1].defaults.get("temperature"), Some(&serde_json::json!(0.9)));
        assert_eq!(a.endpoints[1].limit.as_ref().and_then(|l| l.calls), Some(20));
        // The same credentials were configured (they are what gets scrubbed from messages).
        let text = "key sk-merge-test-0123456789";
        assert_eq!(a.redact(text), b.redact(text));
        assert!(a.redact(text).is_some());
    }

    #[test]
    fn pricing_token_limits_and_budgets_are_validated() {
        let load = |text: &str| GatewayConfig::parse(text, Path::new("g.yaml"), &mut |_, _| Ok(()));
        let ep = |extra: &str| {
            format!("endpoints: [{{name: chat, endpoint_type: llm/v1/chat, model: {{provider: mock{extra}}}}}]")
        };
        let c = load(&ep(", pricing: {input: 0.15, output: 0.6, cached_input: 0.075}")).unwrap();
        assert_eq!(
            c.endpoints[0].pricing,
            Some(Pricing { input: Some(0.15), output: Some(0.6), cached_input: Some(0.075) })
        );
        let e = load(&ep(", pricing: {input: 1, outptu: 2}")).unwrap_err();
        assert_eq!((e.field.as_str(), e.entry.as_str()), ("model.pricing.outptu", "endpoint 'chat' (endpoints[0])"));
        assert_eq!(load(&ep(", pricing: {input: -1}")).unwrap_err().field, "model.pricing.input");
        assert_eq!(load(&ep(", pricing: 3")).unwrap_err().field, "model.pricing");
        // A token limit needs no call limit; a limit with neither is refused.
        let text = "endpoints: [{name: chat, endpoint_type: llm/v1/chat, model: {provider: mock}, limit: {tokens: 100, renewal_period: minute}}]";
        let l = load(text).unwrap().endpoints[0].limit.clone().unwrap();
        assert_eq!((l.calls, l.tokens), (None, Some(100)));
        let text = "endpoints: [{name: chat, endpoint_type: llm/v1/chat, model: {provider: mock}, limit: {renewal_period: minute}}]";
        assert_eq!(load(text).unwrap_err().field, "limit.calls");
        // Budgets name endpoints or routes that exist, and keys that exist.
        let e = load(&format!(
            "{}\naigw: {{budgets: [{{name: b, usd: 1, renewal_period: day, endpoints: [nope]}}]}}",
            ep("")
        ))
        .unwrap_err();
        assert_eq!(e.field, "aigw.budgets[0].endpoints");
        let e =
            load(&format!("{}\naigw: {{budgets: [{{name: b, usd: 1, renewal_period: day, keys: [nobody]}}]}}", ep("")))
                .unwrap_err();
        assert_eq!(e.field, "aigw.budgets[0].keys");
        assert!(e.message.contains("'nobody'"), "{e}");
    }

    #[test]
    fn names() {
        assert!(is_valid_name("a.b-c_D1"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(""));
    }
}
