//! aigw's own settings: the optional top-level `aigw:` block of the gateway YAML.
//!
//! MLflow ignores unknown top-level keys, so a file with this block still loads in MLflow.
//! Unknown keys inside the block are errors: a typo in a security setting must not pass
//! silently.
//!
//! ```yaml
//! aigw:
//!   max_request_body: 16MiB
//!   max_response_body: 64MiB
//!   auth:
//!     keys:
//!       - {name: team-a, key: $TEAM_A_KEY, endpoints: [chat]}
//!       - {name: ci, sha256: 5e88…}
//!     allow_unauthenticated: false
//!   tls: {cert: /etc/aigw/tls/cert.pem, key: /etc/aigw/tls/key.pem, http2: true}
//!   health_listen: 0.0.0.0:8080
//!   metrics: {enabled: true, listen: 127.0.0.1:9100}
//!   audit: {path: /var/log/aigw/audit.log}   # or stderr (default), or off
//!   limits: {max_header_bytes: 64KiB, max_inflight: 4096, max_connections: 10000,
//!            header_read_timeout_s: 10, body_read_timeout_s: 60, idle_timeout_s: 60, h2_max_streams: 100}
//!   shared_state:                     # counters and budgets in Redis, shared by a fleet
//!     url: $AIGW_REDIS_URL            # redis:// or rediss://; secret rules as for keys
//!     prefix: aigw
//!     timeout_ms: 50
//!     on_unavailable: deny            # or allow
//!   budgets:
//!     - {name: team-a, usd: 500, renewal_period: month, keys: [team-a], endpoints: [chat]}
//!   cors:                             # browsers of these origins may read answers (docs/security.md)
//!     allow_origins: [https://app.example.com]
//!     allow_headers: [x-custom]       # added to the client APIs' own headers
//!     expose_headers: [server-timing] # added to x-request-id, x-ratelimit-*, retry-after
//!     max_age_s: 600
//!     allow_credentials: false
//!   allowed_hosts: [gateway.internal, "*.corp.example"]   # Host names served besides loopback
//!   egress:                           # outbound connections (config/egress.rs)
//!     proxy: $CORP_PROXY              # default: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY
//!     no_proxy: [.corp.example]       # default: NO_PROXY
//!     deny_private: true              # the egress guard (default false)
//!     allow: [10.20.0.0/16]
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::egress::Egress;
use super::fields::{ConfigMap, FieldError};
use super::secret::{self, Secret};

/// Default largest accepted request body: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// Default largest upstream response body buffered for translation: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Settings from the `aigw:` block, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Largest request body accepted on any route (`max_request_body`, bytes or `16MiB`).
    pub max_request_body: usize,
    /// Largest non-streaming upstream response read for translation (`max_response_body`).
    pub max_response_body: usize,
    /// Client authentication.
    pub auth: AuthSettings,
    /// Inbound TLS (bound at start; certificate files are re-read when they change).
    pub tls: Option<TlsSettings>,
    /// A plain-HTTP listener that answers `/health` only (e.g. for a load balancer's checks
    /// when the main listener is TLS); bound at start.
    pub health_listen: Option<String>,
    /// Prometheus metrics.
    pub metrics: MetricsSettings,
    /// The per-request audit log.
    pub audit: AuditSettings,
    /// Request limits against abuse.
    pub limits: LimitSettings,
    /// Where counters and budgets live when they are shared by several instances.
    pub shared_state: Option<SharedState>,
    /// Dollar budgets (`aigw.budgets`).
    pub budgets: Vec<Budget>,
    /// Which web origins may read answers (`aigw.cors`); `None`: no CORS header is sent.
    pub cors: Option<CorsSettings>,
    /// Host names and addresses served besides loopback ones (`aigw.allowed_hosts`: lower
    /// case, no trailing dot, IPv6 without brackets, `*.suffix` for any name under `suffix`).
    pub allowed_hosts: Vec<String>,
    /// Outbound connections: the forward proxy and the egress guard (`aigw.egress`, with the
    /// environment's proxy variables).
    pub egress: Egress,
}

/// Environment variable MLflow reads for its rate-limit storage; a `redis://` or `rediss://`
/// value is aigw's `shared_state.url` when the YAML gives none.
pub const STORAGE_URI_ENV: &str = "MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI";

/// Default `shared_state.timeout_ms`.
pub const DEFAULT_SHARED_TIMEOUT_MS: u64 = 50;

/// What a request gets while the shared state cannot be reached (`shared_state.on_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    /// 503 with `Retry-After` (the default: limits and budgets are never exceeded).
    Deny,
    /// Served, counted in this process alone until the shared state answers again.
    Allow,
}

/// `aigw.shared_state`: a Redis server holding every call and token counter and every budget.
#[derive(Clone, PartialEq)]
pub struct SharedState {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS). A secret.
    pub url: Secret,
    /// The URL without credentials, for logs.
    pub display: String,
    /// Key namespace (`<prefix>:…`), so fleets can share one Redis.
    pub prefix: String,
    /// Longest wait for one Redis round trip.
    pub timeout: Duration,
    /// The failure policy.
    pub on_unavailable: OnUnavailable,
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState")
            .field("url", &self.display)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("on_unavailable", &self.on_unavailable)
            .finish()
    }
}

/// A dollar budget (`aigw.budgets[]`): the spend of the matching requests per window.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Unique name (in 429 messages, `/aigw/usage` and counter keys).
    pub name: String,
    /// US dollars per window.
    pub usd: f64,
    /// The same in nano-dollars (10⁻⁹ USD), as counted.
    pub nanos: u64,
    /// The period as written.
    pub renewal_period: String,
    /// Multiplier of the period unit.
    pub period_count: u64,
    /// The period unit (`second` … `year`; a month is 30 days).
    pub period_unit: &'static str,
    /// Window length in seconds.
    pub period_secs: u64,
    /// Gateway key names it applies to; `None`: every request, with a key or without.
    pub keys: Option<Vec<String>>,
    /// Endpoint or route names it applies to; `None`: every endpoint.
    pub endpoints: Option<Vec<String>>,
}

impl Budget {
    /// Whether a request with gateway key `key`, for `target` (the endpoint or route named)
    /// served by `endpoint`, is charged to this budget.
    pub fn applies(&self, key: Option<&str>, target: Option<&str>, endpoint: &str) -> bool {
        let key_ok = match &self.keys {
            None => true,
            Some(keys) => key.is_some_and(|k| keys.iter().any(|n| n == k)),
        };
        let endpoint_ok = match &self.endpoints {
            None => true,
            Some(names) => names.iter().any(|n| n == endpoint || Some(n.as_str()) == target),
        };
        key_ok && endpoint_ok
    }

    /// `500 USD per 1 month`.
    pub fn describe(&self) -> String {
        format!("{} USD per {} {}", self.usd, self.period_count, self.period_unit)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            auth: AuthSettings::default(),
            tls: None,
            health_listen: None,
            metrics: MetricsSettings { enabled: true, listen: None },
            audit: AuditSettings::Stderr,
            limits: LimitSettings::default(),
            shared_state: None,
            budgets: Vec::new(),
            cors: None,
            allowed_hosts: Vec::new(),
            egress: Egress::default(),
        }
    }
}

/// One gateway API key. Only a SHA-256 digest of the key is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's name: in audit lines, metrics and `limit.key: api_key` counters (never the key).
    pub name: String,
    /// SHA-256 of the key.
    pub digest: [u8; 32],
    /// Endpoints and routes the key may use; `None` means all.
    pub endpoints: Option<Vec<String>>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("digest", &"***")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl ApiKey {
    /// Whether the key may use the endpoint or route `name`.
    pub fn allows(&self, name: &str) -> bool {
        match &self.endpoints {
            None => true,
            Some(list) => list.iter().any(|e| e == "*" || e == name),
        }
    }

    /// Whether the key may use every endpoint and route (needed for what spans all of them,
    /// such as `/metrics` on the main listener).
    pub fn unrestricted(&self) -> bool {
        self.endpoints.as_ref().is_none_or(|list| list.iter().any(|e| e == "*"))
    }
}

/// Client authentication (`aigw.auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// Accepted keys; none means no authentication.
    pub keys: Vec<ApiKey>,
    /// Serve without keys on a non-loopback address (off: aigw refuses, saying why).
    pub allow_unauthenticated: bool,
}

/// Inbound TLS (`aigw.tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Offer HTTP/2 via ALPN (default true).
    pub http2: bool,
}

/// Metrics (`aigw.metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Serve `GET /metrics` (default true).
    pub enabled: bool,
    /// A separate listener for `/metrics` (e.g. an internal address), unauthenticated there;
    /// on the main listener `/metrics` requires a key when keys are configured.
    pub listen: Option<String>,
}

/// Where audit lines go (`aigw.audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSettings {
    /// Not written.
    Off,
    /// Standard error (the journal under systemd). The default.
    Stderr,
    /// A file, reopened when it is rotated away.
    File(PathBuf),
}

/// Limits against abuse (`aigw.limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Largest request line plus headers (431 above).
    pub max_header_bytes: usize,
    /// Requests in flight in the whole gateway (503 above); `None`: unlimited.
    pub max_inflight: Option<usize>,
    /// Open client connections (each further one is answered 503 and closed); `None`:
    /// unlimited.
    pub max_connections: Option<usize>,
    /// Time allowed to receive a whole request header once its first byte arrived (408 and
    /// the connection closed after): against clients that trickle headers (slowloris).
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole request body (408 after).
    pub body_read_timeout: Duration,
    /// How long a client connection may sit idle between requests (HTTP/1: then closed
    /// quietly; HTTP/2: read at start).
    pub idle_timeout: Duration,
    /// Concurrent streams on one HTTP/2 connection.
    pub h2_max_streams: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_header_bytes: 64 * 1024,
            max_inflight: None,
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            h2_max_streams: 100,
        }
    }
}

impl Settings {
    /// Parse the `aigw:` mapping.
    pub fn parse(map: &Map<String, Value>) -> Result<Settings, FieldError> {
        let mut m = ConfigMap::new(map, "aigw");
        let mut s = Settings::default();
        if let Some(v) = m.value("max_request_body") {
            s.max_request_body = parse_size(v).ok_or_else(|| m.error("max_request_body", SIZE_HELP))?;
        }
        if let Some(v) = m.value("max_response_body") {
            s.max_response_body = parse_size(v).ok_or_else(|| m.error("max_response_body", SIZE_HELP))?;
        }
        if let Some(a) = m.map("auth")? {
            s.auth = parse_auth(a)?;
        }
        if let Some(t) = m.map("tls")? {
            let mut t = ConfigMap::new(t, "aigw.tls");
            s.tls = Some(TlsSettings {
                cert: PathBuf::from(t.required_string("cert")?),
                key: PathBuf::from(t.required_string("key")?),
                http2: t.bool("http2")?.unwrap_or(true),
            });
            no_unknown(&t)?;
        }
        s.health_listen = m.string("health_listen")?;
        if let Some(v) = m.value("metrics") {
            s.metrics = match v {
                Value::Bool(b) => MetricsSettings { enabled: *b, listen: None },
                Value::Object(o) => {
                    let mut mm = ConfigMap::new(o, "aigw.metrics");
                    let ms =
                        MetricsSettings { enabled: mm.bool("enabled")?.unwrap_or(true), listen: mm.string("listen")? };
                    no_unknown(&mm)?;
                    ms
                }
                _ => return Err(m.error("metrics", "expected true, false or a mapping {enabled, listen}")),
            };
        }
        if let Some(v) = m.value("audit") {
            s.audit = match v {
                Value::Bool(false) => AuditSettings::Off,
                Value::String(x) if x == "off" => AuditSettings::Off,
                Value::String(x) if x == "stderr" => AuditSettings::Stderr,
                Value::Object(o) => {
                    let mut am = ConfigMap::new(o, "aigw.audit");
                    let a = match am.string("path")? {
                        Some(p) if p == "stderr" => AuditSettings::Stderr,
                        Some(p) => AuditSettings::File(PathBuf::from(p)),
                        None => return Err(am.error("path", "Field required (a file path, or stderr)")),
                    };
                    no_unknown(&am)?;
                    a
                }
                _ => return Err(m.error("audit", "expected off, stderr, or {path: <file>}")),
            };
        }
        if let Some(l) = m.map("limits")? {
            let mut lm = ConfigMap::new(l, "aigw.limits");
            if let Some(v) = lm.value("max_header_bytes") {
                s.limits.max_header_bytes = parse_size(v).ok_or_else(|| lm.error("max_header_bytes", SIZE_HELP))?;
            }
            if let Some(n) = lm.u64("max_inflight")? {
                if n == 0 {
                    return Err(lm.error("max_inflight", "must be at least 1"));
                }
                s.limits.max_inflight = Some(n as usize);
            }
            if let Some(n) = lm.u64("max_connections")? {
                if n == 0 {
                    return Err(lm.error("max_connections", "must be at least 1"));
                }
                s.limits.max_connections = Some(n as usize);
            }
            if let Some(secs) = lm.f64("header_read_timeout_s")? {
                if !(secs > 0.0 && secs <= 3600.0) {
                    return Err(lm.error("header_read_timeout_s", "must be positive and at most 3600"));
                }
                s.limits.header_read_timeout = Duration::from_secs_f64(secs);
            }
            if let Some(secs) = lm.f64("idle_timeout_s")? {
                if !(secs > 0.0 && secs <= 86_400.0) {
                    return Err(lm.error("idle_timeout_s", "must be positive and at most 86400"));
                }
                s.limits.idle_timeout = Duration::from_secs_f64(secs);
            }
            if let Some(secs) = lm.f64("body_read_timeout_s")? {
                if secs <= 0.0 {
                    return Err(lm.error("body_read_timeout_s", "must be positive"));
                }
                s.limits.body_read_timeout = Duration::from_secs_f64(secs);
            }
            if let Some(n) = lm.u64("h2_max_streams")? {
                if n == 0 || n > u64::from(u32::MAX) {
                    return Err(lm.error("h2_max_streams", "must be between 1 and 4294967295"));
                }
                s.limits.h2_max_streams = n as u32;
            }
            no_unknown(&lm)?;
        }
        if let Some(v) = m.value("shared_state") {
            let Value::Object(o) = v else {
                return Err(m.error("shared_state", "expected a mapping {url, prefix, timeout_ms, on_unavailable}"));
            };
            s.shared_state = Some(parse_shared_state(o)?);
        }
        if let Some(e) = m.map("egress")? {
            s.egress = Egress::parse(e)?;
        }
        match m.value("budgets") {
            None => {}
            Some(Value::Array(list)) => {
                for (i, raw) in list.iter().enumerate() {
                    let budget = parse_budget(i, raw)?;
                    if s.budgets.iter().any(|b| b.name == budget.name) {
                        return Err(FieldError::new(
                            format!("aigw.budgets[{i}].name"),
                            format!("duplicate budget name '{}'", budget.name),
                        ));
                    }
                    s.budgets.push(budget);
                }
            }
            Some(_) => {
                return Err(m.error("budgets", "expected a list of {name, usd, renewal_period, keys, endpoints}"));
            }
        }
        if let Some(c) = m.map("cors")? {
            s.cors = Some(parse_cors(c)?);
        }
        if let Some(hosts) = m.string_list("allowed_hosts")? {
            for host in hosts {
                let normal = normalize_host(&host).ok_or_else(|| {
                    m.error(
                        "allowed_hosts",
                        format!(
                            "'{host}' is not a host name or address (give it without scheme, port or path; \
                             *.example.com for every name under example.com)"
                        ),
                    )
                })?;
                s.allowed_hosts.push(normal);
            }
        }
        no_unknown(&m)?;
        Ok(s)
    }

    /// `shared_state` from `MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI` when the YAML has none and
    /// the variable holds a `redis://` or `rediss://` URL (other storage URIs, such as MLflow's
    /// `memory://`, mean "in process").
    pub fn shared_state_from_env(&mut self) -> Result<(), FieldError> {
        if self.shared_state.is_some() {
            return Ok(());
        }
        if let Some(url) = std::env::var(STORAGE_URI_ENV).ok().filter(|u| is_redis_url(u.trim())) {
            let url = secret::resolve_url(url.trim()).map_err(|e| FieldError::new(STORAGE_URI_ENV, e))?;
            self.shared_state = Some(shared_state_defaults(Secret::new(url), STORAGE_URI_ENV)?);
        }
        Ok(())
    }
}

fn is_redis_url(url: &str) -> bool {
    let lower = url.get(..9).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("redis://") || lower.starts_with("rediss://")
}

/// The URL with its user, password and query left out: `redis://host:6379/0`.
fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    format!("{scheme}://{rest}")
}

/// The password inside a Redis URL, if any (so that it too is scrubbed from messages).
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    Some(userinfo.split_once(':').map_or(userinfo, |(_, p)| p)).filter(|p| !p.is_empty())
}

fn shared_state_defaults(url: Secret, field: &str) -> Result<SharedState, FieldError> {
    if !is_redis_url(url.expose()) {
        return Err(FieldError::new(field, "expected a redis:// or rediss:// URL"));
    }
    // Only the URL's credentials (and its query, which may carry them) are secrets: the rest,
    // scheme, host, port and database, is what messages name (`display`).
    if let Some(password) = url_password(url.expose()) {
        secret::register(password);
    }
    if let Some((_, query)) = url.expose().split_once('?').filter(|(_, q)| !q.is_empty()) {
        secret::register(query);
    }
    Ok(SharedState {
        display: display_url(url.expose()),
        url,
        prefix: "aigw".into(),
        timeout: Duration::from_millis(DEFAULT_SHARED_TIMEOUT_MS),
        on_unavailable: OnUnavailable::Deny,
    })
}

fn parse_shared_state(map: &Map<String, Value>) -> Result<SharedState, FieldError> {
    let mut m = ConfigMap::new(map, "aigw.shared_state");
    let url = match m.string("url")? {
        Some(url) => Secret::new(secret::resolve_url(&url).map_err(|e| m.error("url", e))?),
        None => match std::env::var(STORAGE_URI_ENV).ok().filter(|u| is_redis_url(u.trim())) {
            Some(url) => Secret::new(secret::resolve_url(url.trim()).map_err(|e| m.error("url", e))?),
            None => {
                return Err(
                    m.error("url", format!("Field required (a redis:// or rediss:// URL, or {STORAGE_URI_ENV})"))
                );
            }
        },
    };
    let mut s = shared_state_defaults(url, &m.path("url"))?;
    if let Some(prefix) = m.string("prefix")? {
        if prefix.is_empty()
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(m.error("prefix", "expected a non-empty name of [A-Za-z0-9_.:-]"));
        }
        s.prefix = prefix;
    }
    if let Some(ms) = m.u64("timeout_ms")? {
        if !(1..=60_000).contains(&ms) {
            return Err(m.error("timeout_ms", "must be between 1 and 60000"));
        }
        s.timeout = Duration::from_millis(ms);
    }
    if let Some(policy) = m.string("on_unavailable")? {
        s.on_unavailable = match policy.as_str() {
            "deny" => OnUnavailable::Deny,
            "allow" => OnUnavailable::Allow,
            _ => return Err(m.error("on_unavailable", "expected deny or allow")),
        };
    }
    no_unknown(&m)?;
    Ok(s)
}

fn parse_budget(index: usize, raw: &Value) -> Result<Budget, FieldError> {
    let prefix = format!("aigw.budgets[{index}]");
    let Value::Object(map) = raw else {
        return Err(FieldError::new(prefix, "expected a mapping {name, usd, renewal_period, keys, endpoints}"));
    };
    let mut m = ConfigMap::new(map, prefix);
    let name = m.required_string("name")?;
    if !super::is_valid_name(&name) {
        return Err(m.error("name", format!("'{name}' is not a valid budget name ([A-Za-z0-9_.-]+)")));
    }
    let usd = m.f64("usd")?.ok_or_else(|| m.error("usd", "Field required (US dollars per renewal period)"))?;
    let nanos = usd * 1e9;
    if nanos >= 9.0e15 {
        return Err(m.error("usd", "must be below 9,000,000"));
    }
    let renewal_period = m.required_string("renewal_period")?;
    let (period_count, period_unit, unit_secs) = super::parse_period(&renewal_period).ok_or_else(|| {
        m.error(
            "renewal_period",
            "expected second, minute, hour, day, month or year, optionally with a count ('2 days')",
        )
    })?;
    let keys = m.string_list("keys")?;
    let endpoints = m.string_list("endpoints")?;
    no_unknown(&m)?;
    Ok(Budget {
        name,
        usd,
        nanos: nanos.round() as u64,
        renewal_period,
        period_count,
        period_unit,
        period_secs: period_count.saturating_mul(unit_secs),
        keys,
        endpoints,
    })
}

/// `aigw.cors` (docs/security.md, "CORS").
#[derive(Debug, Clone, PartialEq)]
pub struct CorsSettings {
    /// Origins whose pages may read answers (`scheme://host[:port]`, lower case), unless
    /// `any_origin`.
    pub allow_origins: Vec<String>,
    /// `allow_origins: ['*']`: every origin (never with credentials).
    pub any_origin: bool,
    /// Request headers a page may send besides [`CorsSettings::BASE_HEADERS`] (lower case).
    pub allow_headers: Vec<String>,
    /// `allow_headers: ['*']`: any request header.
    pub any_header: bool,
    /// The `Access-Control-Expose-Headers` value: [`CorsSettings::BASE_EXPOSED`] and the
    /// configured `expose_headers`.
    pub expose_headers: String,
    /// How long a browser may cache a preflight's answer (`max_age_s`, default 600).
    pub max_age_s: u64,
    /// Whether pages may send cookies and HTTP authentication (`allow_credentials`).
    pub allow_credentials: bool,
}

impl CorsSettings {
    /// The request headers the client APIs themselves use, always allowed.
    pub const BASE_HEADERS: &'static [&'static str] =
        &["authorization", "content-type", "x-api-key", "anthropic-version", "anthropic-beta", "x-request-id"];
    /// The answer headers always exposed to pages.
    pub const BASE_EXPOSED: &'static str =
        "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after";

    /// Whether a page may send the request header `name` (any case).
    pub fn allows_header(&self, name: &str) -> bool {
        self.any_header
            || Self::BASE_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
            || self.allow_headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

fn parse_cors(map: &Map<String, Value>) -> Result<CorsSettings, FieldError> {
    let mut m = ConfigMap::new(map, "aigw.cors");
    let origins = m.string_list("allow_origins")?.unwrap_or_default();
    if origins.is_empty() {
        return Err(m.error("allow_origins", "list at least one origin (https://app.example.com), or '*'"));
    }
    let any_origin = origins.iter().any(|o| o == "*");
    if any_origin && origins.len() > 1 {
        return Err(m.error("allow_origins", "'*' must stand alone"));
    }
    let mut allow_origins = Vec::new();
    if !any_origin {
        for origin in &origins {
            let normal = normalize_origin(origin).ok_or_else(|| {
                m.error(
                    "allow_origins",
                    format!(
                        "'{origin}' is not an origin: give scheme://host[:port] without a path \
                         (https://app.example.com); 'null' is never allowed"
                    ),
                )
            })?;
            allow_origins.push(normal);
        }
    }
    let headers = m.string_list("allow_headers")?.unwrap_or_default();
    let any_header = headers.iter().any(|h| h == "*");
    let mut allow_headers = Vec::new();
    for h in headers.iter().filter(|h| *h != "*") {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(m.error("allow_headers", format!("'{h}' is not a header name")));
        }
        allow_headers.push(h.to_ascii_lowercase());
    }
    let mut expose_headers = CorsSettings::BASE_EXPOSED.to_owned();
    for h in m.string_list("expose_headers")?.unwrap_or_default() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(m.error("expose_headers", format!("'{h}' is not a header name")));
        }
        let h = h.to_ascii_lowercase();
        if !expose_headers.split(", ").any(|e| e == h) {
            expose_headers.push_str(", ");
            expose_headers.push_str(&h);
        }
    }
    let max_age_s = m.u64("max_age_s")?.unwrap_or(600);
    if max_age_s > 86_400 {
        return Err(m.error("max_age_s", "must be at most 86400"));
    }
    let allow_credentials = m.bool("allow_credentials")?.unwrap_or(false);
    if allow_credentials && any_origin {
        return Err(m.error(
            "allow_credentials",
            "cannot be combined with allow_origins: ['*'] (browsers refuse it); list the origins",
        ));
    }
    no_unknown(&m)?;
    Ok(CorsSettings {
        allow_origins,
        any_origin,
        allow_headers,
        any_header,
        expose_headers,
        max_age_s,
        allow_credentials,
    })
}

/// An origin as browsers send it: `scheme://host[:port]`, lower case; `None` for anything else
/// (a path, even `/`; userinfo; `null`, which sandboxed pages and local files share).
fn normalize_origin(origin: &str) -> Option<String> {
    let o = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = o.split_once("://")?;
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest_ok =
        !rest.is_empty() && !rest.bytes().any(|b| matches!(b, b'/' | b'?' | b'#' | b'@') || b.is_ascii_whitespace());
    (scheme_ok && rest_ok).then_some(o)
}

/// Normalise an `aigw.allowed_hosts` entry: lower case, no trailing dot, an IPv6 address
/// without brackets; `*.suffix` kept as `*.suffix`. `None` for something that is not a bare
/// host (a scheme, a port, a path).
pub fn normalize_host(entry: &str) -> Option<String> {
    let e = entry.trim().to_ascii_lowercase();
    let e = e.strip_suffix('.').unwrap_or(&e);
    let bare = e.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(e);
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Some(bare.to_owned());
    }
    let name = e.strip_prefix("*.").unwrap_or(e);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| e.to_owned())
}

fn no_unknown(m: &ConfigMap<'_>) -> Result<(), FieldError> {
    match m.unread().next() {
        Some((key, _)) => Err(m.error(key, "unknown setting")),
        None => Ok(()),
    }
}

fn parse_auth(map: &Map<String, Value>) -> Result<AuthSettings, FieldError> {
    let mut m = ConfigMap::new(map, "aigw.auth");
    let mut auth =
        AuthSettings { allow_unauthenticated: m.bool("allow_unauthenticated")?.unwrap_or(false), ..Default::default() };
    let keys = match m.value("keys") {
        None => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => return Err(m.error("keys", "expected a list of {name, key | sha256, endpoints}")),
    };
    for (i, raw) in keys.iter().enumerate() {
        let prefix = format!("aigw.auth.keys[{i}]");
        let Value::Object(k) = raw else {
            return Err(FieldError::new(prefix, "expected a mapping {name, key | sha256, endpoints}"));
        };
        let mut km = ConfigMap::new(k, prefix);
        let name = km.required_string("name")?;
        if !super::is_valid_name(&name) {
            return Err(km.error("name", format!("'{name}' is not a valid key name ([A-Za-z0-9_.-]+)")));
        }
        if auth.keys.iter().any(|k| k.name == name) {
            return Err(km.error("name", format!("duplicate key name '{name}'")));
        }
        let digest = match (km.secret("key")?, km.string("sha256")?) {
            (Some(secret), None) => {
                if secret.expose().len() < 16 {
                    return Err(km.error("key", "a gateway key must be at least 16 characters"));
                }
                sha256(secret.expose().as_bytes())
            }
            (None, Some(hex)) => parse_digest(&hex).ok_or_else(|| km.error("sha256", "expected 64 hex digits"))?,
            (Some(_), Some(_)) => return Err(km.error("key", "give either key or sha256, not both")),
            (None, None) => return Err(km.error("key", "Field required (key or sha256)")),
        };
        let endpoints = km.string_list("endpoints")?;
        no_unknown(&km)?;
        auth.keys.push(ApiKey { name, digest, endpoints });
    }
    no_unknown(&m)?;
    Ok(auth)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

const SIZE_HELP: &str = "expected a positive size in bytes, or with a unit: 512KiB, 16MiB, 1GiB";

/// A byte size: an integer, or a number with `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB` (all binary).
pub fn parse_size(v: &Value) -> Option<usize> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let num: u64 = num.parse().ok()?;
            let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            num.checked_mul(mult)?
        }
        _ => return None,
    };
    (n > 0).then(|| usize::try_from(n).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Settings, FieldError> {
        Settings::parse(v.as_object().unwrap())
    }

    #[test]
    fn cors_and_hosts() {
        let s = parse(json!({"cors": {"allow_origins": ["HTTPS://App.Example.com", "http://localhost:3000"],
                                      "allow_headers": ["X-Custom"], "expose_headers": ["Server-Timing", "x-request-id"]},
                             "allowed_hosts": ["Gateway.Internal.", "[FD00::1]", "*.Corp.Example"]}))
        .unwrap();
        let cors = s.cors.unwrap();
        assert_eq!(cors.allow_origins, ["https://app.example.com", "http://localhost:3000"]);
        assert!(
            cors.allows_header("x-custom") && cors.allows_header("Authorization") && !cors.allows_header("x-other")
        );
        assert_eq!(cors.expose_headers, format!("{}, server-timing", CorsSettings::BASE_EXPOSED));
        assert_eq!((cors.max_age_s, cors.allow_credentials, cors.any_origin), (600, false, false));
        assert_eq!(s.allowed_hosts, ["gateway.internal", "fd00::1", "*.corp.example"]);
        for (bad, field) in [
            (json!({"cors": {"allow_origins": ["*"], "allow_credentials": true}}), "aigw.cors.allow_credentials"),
            (json!({"cors": {"allow_origins": ["https://a.example/"]}}), "aigw.cors.allow_origins"),
            (json!({"cors": {"allow_origins": ["null"]}}), "aigw.cors.allow_origins"),
            (json!({"cors": {"allow_origins": []}}), "aigw.cors.allow_origins"),
            (json!({"cors": {"allow_origins": ["*", "https://a.example"]}}), "aigw.cors.allow_origins"),
            (json!({"cors": {"allow_origins": ["*"], "allow_headers": ["a b"]}}), "aigw.cors.allow_headers"),
            (json!({"cors": {"allow_origins": ["*"], "max_age_s": 100000}}), "aigw.cors.max_age_s"),
            (json!({"allowed_hosts": ["x:5000"]}), "aigw.allowed_hosts"),
        ] {
            assert_eq!(parse(bad.clone()).unwrap_err().field, field, "{bad}");
        }
        for bad in ["https://x", "x:5000", "x/y", "", "*", "*.", "a..b", "user@x"] {
            assert_eq!(normalize_host(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&json!(1024)), Some(1024));
        assert_eq!(parse_size(&json!("16MiB")), Some(16 << 20));
        assert_eq!(parse_size(&json!("512 KB")), Some(512 << 10));
        assert_eq!(parse_size(&json!("0")), None);
        assert_eq!(parse_size(&json!("12 parsecs")), None);
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        assert_eq!(parse(json!({"max_request_bdy": 5})).unwrap_err().field, "aigw.max_request_bdy");
        assert_eq!(parse(json!({"limits": {"max_inflite": 5}})).unwrap_err().field, "aigw.limits.max_inflite");
        assert_eq!(
            parse(json!({"auth": {"keys": [{"name": "a", "key": "0123456789abcdef", "endpoint": ["x"]}]}}))
                .unwrap_err()
                .field,
            "aigw.auth.keys[0].endpoint"
        );
    }

    #[test]
    fn keys_keep_only_a_digest() {
        let s = parse(json!({"auth": {"keys": [
            {"name": "a", "key": "sk-gateway-key-0001", "endpoints": ["chat"]},
            {"name": "b", "sha256": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"}
        ]}}))
        .unwrap();
        assert_eq!(s.auth.keys[0].digest, sha256(b"sk-gateway-key-0001"));
        assert!(s.auth.keys[0].allows("chat") && !s.auth.keys[0].allows("other"));
        assert!(s.auth.keys[1].allows("anything"));
        assert_eq!(s.auth.keys[1].digest, sha256(b"password"));
        assert!(!format!("{s:?}").contains("sk-gateway"));
        assert!(!format!("{s:?}").contains("5e8848"));
    }

    #[test]
    fn key_errors() {
        let e = |v| parse(json!({"auth": {"keys": [v]}})).unwrap_err().message;
        assert!(e(json!({"name": "a"})).contains("key or sha256"));
        assert!(e(json!({"name": "a", "key": "short"})).contains("16 characters"));
        assert!(e(json!({"name": "a", "sha256": "xyz"})).contains("64 hex"));
        assert!(e(json!({"name": "a b", "key": "0123456789abcdef"})).contains("not a valid key name"));
        let e = parse(
            json!({"auth": {"keys": [{"name": "a", "key": "0123456789abcdef"}, {"name": "a", "key": "0123456789abcdeg"}]}}),
        );
        assert!(e.unwrap_err().message.contains("duplicate"));
    }

    #[test]
    fn shared_state_and_budgets() {
        let s =
            parse(json!({"shared_state": {"url": "redis://:sekrit-redis-pass@127.0.0.1:6379/0", "prefix": "fleet-a",
                                               "timeout_ms": 20, "on_unavailable": "allow"},
                             "budgets": [{"name": "team-a", "usd": 500, "renewal_period": "month", "keys": ["team-a"]},
                                         {"name": "all", "usd": 0.5, "renewal_period": "2 days"}]}))
            .unwrap();
        let shared = s.shared_state.unwrap();
        assert_eq!(shared.display, "redis://127.0.0.1:6379/0");
        assert_eq!((shared.prefix.as_str(), shared.timeout), ("fleet-a", Duration::from_millis(20)));
        assert_eq!(shared.on_unavailable, OnUnavailable::Allow);
        assert!(!format!("{shared:?}").contains("sekrit"));
        assert_eq!(s.budgets[0].nanos, 500_000_000_000);
        assert_eq!(s.budgets[0].period_secs, 30 * 86_400);
        assert_eq!(s.budgets[1].period_secs, 2 * 86_400);
        assert_eq!(s.budgets[0].describe(), "500 USD per 1 month");
        let e = |v| parse(v).unwrap_err();
        assert_eq!(e(json!({"shared_state": {"url": "http://x"}})).field, "aigw.shared_state.url");
        assert_eq!(
            e(json!({"shared_state": {"url": "redis://x", "on_unavailable": "maybe"}})).field,
            "aigw.shared_state.on_unavailable"
        );
        assert_eq!(e(json!({"shared_state": {"url": "redis://x", "timeout": 5}})).field, "aigw.shared_state.timeout");
        assert_eq!(
            e(json!({"budgets": [{"name": "a", "usd": -1, "renewal_period": "day"}]})).field,
            "aigw.budgets[0].usd"
        );
        assert_eq!(
            e(json!({"budgets": [{"name": "a", "usd": 1, "renewal_period": "week"}]})).field,
            "aigw.budgets[0].renewal_period"
        );
        assert_eq!(
            e(json!({"budgets": [{"name": "a", "usd": 1, "renewal_period": "day", "key": ["x"]}]})).field,
            "aigw.budgets[0].key"
        );
        assert!(e(json!({"budgets": [{"name": "a", "usd": 1, "renewal_period": "day"}, {"name": "a", "usd": 2, "renewal_period": "day"}]}))
            .message.contains("duplicate"));
        assert_eq!(display_url("rediss://user:p%40ss@cache.internal:6380/2?x=1"), "rediss://cache.internal:6380/2");
        assert_eq!(url_password("redis://user:pw@h"), Some("pw"));
        assert_eq!(url_password("redis://h:1"), None);
    }

    /// Only a Redis URL's password (and query) become secrets to scrub: the host and port stay
    /// readable in messages that name the shared state.
    #[test]
    fn redis_urls_keep_their_host_readable() {
        let (s, secrets) = secret::collect(|| {
            parse(json!({"shared_state": {"url": "redis://:sekrit-redis-pass@127.0.0.1:6379/0?tok=abc"}})).unwrap()
        });
        assert_eq!(s.shared_state.unwrap().display, "redis://127.0.0.1:6379/0");
        assert!(secrets.iter().any(|v| v == "sekrit-redis-pass"), "{secrets:?}");
        assert!(secrets.iter().any(|v| v == "tok=abc"), "{secrets:?}");
        assert!(!secrets.iter().any(|v| v.contains("127.0.0.1")), "the host is not a secret: {secrets:?}");
        let (_, secrets) =
            secret::collect(|| parse(json!({"shared_state": {"url": "redis://cache.internal:6379"}})).unwrap());
        assert!(secrets.is_empty(), "{secrets:?}");
    }

    #[test]
    fn sections() {
        let s = parse(json!({"audit": "off", "metrics": false, "tls": {"cert": "c.pem", "key": "k.pem"},
                             "limits": {"max_header_bytes": "16KiB", "max_inflight": 10, "body_read_timeout_s": 5,
                                        "max_connections": 3, "header_read_timeout_s": 2.5, "idle_timeout_s": 30}}))
        .unwrap();
        assert_eq!(s.audit, AuditSettings::Off);
        assert!(!s.metrics.enabled);
        assert!(s.tls.unwrap().http2);
        assert_eq!(s.limits.max_header_bytes, 16 << 10);
        assert_eq!(s.limits.max_inflight, Some(10));
        assert_eq!(s.limits.max_connections, Some(3));
        assert_eq!(s.limits.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(s.limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(
            parse(json!({"audit": {"path": "/var/log/a.log"}})).unwrap().audit,
            AuditSettings::File("/var/log/a.log".into())
        );
    }
}
