//! Per-endpoint quotas (calls and tokens), dollar budgets and concurrency caps.
//!
//! Quotas (`limit: {calls, tokens, renewal_period}`) and budgets (`aigw.budgets`) are exact
//! fixed windows aligned to the wall clock (a `minute` window renews at every whole minute, a
//! `day` window at 00:00 UTC): N calls pass, the N+1-th gets 429 until the window renews.
//! Pingora's `Rate` estimator is not used for them: it is approximate (count-min sketch) and
//! its windows are neither per key nor clock-aligned (docs/limits.md). Counters are keyed by
//! the endpoint's name, the period and the scope (a budget's by its name and period), not by
//! the amounts: a reload that changes `calls` applies the new number to the count so far.
//!
//! Tokens and dollars are not known until the answer ends, so an admission *reserves* an
//! estimate ([`estimate`]) and the request's end *settles* it ([`Limits::settle`]): the
//! reservation is replaced by the real use. All of a request's counters (calls, its token
//! reservation, every budget it is charged to) are decided at once, all or nothing.
//!
//! The counters live in this process (`local.rs`), or, with `aigw.shared_state`, in Redis
//! (`shared.rs`), where every instance of a fleet decides against the same counts, on Redis's
//! clock, in one round trip. When Redis fails, `on_unavailable` decides: `deny` refuses (503),
//! `allow` decides in this process.
//!
//! `limit.key` scopes the counter: `client_ip`, `header:<name>` (e.g. a team header) or
//! `api_key` (the authenticated gateway key). Scope values are hashed (SHA-256), never stored.
//!
//! `limit.max_concurrent` caps requests in flight per endpoint (and scope) in this process,
//! with `pingora_limits::inflight::Inflight`, whose estimate can only be too high.
//!
//! Windows are read from a [`Clock`]: the system clock, or a manual one that tests set to chosen
//! instants (no sleeping to reach or avoid a boundary). In debug builds only, the environment
//! variable [`TEST_NOW_ENV`] stands the clock of the process's [`Limits`] still at an instant
//! (and is passed to Redis in place of its own clock), so integration tests of the real binary
//! never straddle a window boundary.

pub mod estimate;
mod local;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora_limits::inflight::{Guard, Inflight};
use prometheus::IntCounterVec;
use serde_json::{Value, json};

use crate::config::{Budget, Endpoint, GatewayConfig, Limit, LimitScope, OnUnavailable, SharedState};
pub use estimate::Estimate;
use local::Local;
pub use shared::Fault;
use shared::Shared;

/// The state of a call quota after a decision, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Calls per window.
    pub limit: u64,
    /// Calls left in this window.
    pub remaining: u64,
    /// Seconds until the window renews.
    pub reset_secs: u64,
}

/// A call-quota decision (see [`Limits::acquire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call may go ahead (and was counted).
    Allowed(Quota),
    /// The quota is used up.
    Limited(Quota),
}

/// Which kind of counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Calls per window (`limit.calls`).
    Calls,
    /// Prompt plus completion tokens per window (`limit.tokens`).
    Tokens,
    /// Nano-dollars per window (`aigw.budgets`).
    Budget,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Calls => 'c',
            Kind::Tokens => 't',
            Kind::Budget => 'b',
        }
    }
}

/// The identity of one counter in this process.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    /// The endpoint's `limit_id`, or a budget's name.
    id: Arc<str>,
    /// The scope's hash (0: the whole endpoint); a budget's period.
    scope: u64,
}

/// One counter a decision touches.
struct Item<'a> {
    key: Key,
    /// The endpoint's or budget's name (in Redis keys).
    name: &'a str,
    /// The endpoint's scope (in Redis keys); `None` for budgets.
    scope: Option<&'a LimitScope>,
    limit: u64,
    amount: u64,
    period: u64,
}

/// What a store decided.
struct Outcome {
    admitted: bool,
    /// The first item that did not fit (when not admitted).
    failed: usize,
    /// The time the decision was made at.
    now: u64,
    /// Per item: the window index and its count (after adding, when admitted).
    counters: Vec<(u64, u64)>,
}

/// Debug builds only: `AIGW_TEST_LIMITS_NOW=<seconds since the Unix epoch>` stands the quota
/// clock still at that instant (see [`Clock::from_env`]). Release builds ignore it.
pub const TEST_NOW_ENV: &str = "AIGW_TEST_LIMITS_NOW";

/// Where [`Limits`] reads the time, in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock (the default); with shared state, Redis's clock.
    #[default]
    System,
    /// A clock that stands still until [`Clock::set`] moves it (it and its clones).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock showing `now`.
    pub fn manual(now: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(now)))
    }

    /// Move a manual clock (and its clones) to `now`. The system clock is not moved.
    pub fn set(&self, now: u64) {
        if let Clock::Manual(t) = self {
            t.store(now, Ordering::Relaxed);
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> u64 {
        match self {
            Clock::System => now_secs(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// A manual clock's time (given to Redis in place of its own clock); `None` for the system
    /// clock.
    fn manual_now(&self) -> Option<u64> {
        match self {
            Clock::System => None,
            Clock::Manual(t) => Some(t.load(Ordering::Relaxed)),
        }
    }

    /// The system clock; in debug builds a manual one at [`TEST_NOW_ENV`]'s instant when that is
    /// set (read once, when the process's [`Limits`] are made).
    pub fn from_env() -> Clock {
        #[cfg(debug_assertions)]
        if let Some(now) = std::env::var(TEST_NOW_ENV).ok().and_then(|v| v.trim().parse().ok()) {
            return Clock::manual(now);
        }
        Clock::System
    }
}

/// What one admission asks for.
pub struct Ask<'a> {
    /// The endpoint to call.
    pub endpoint: &'a Endpoint,
    /// The caller's scope ([`Limits::scope`]).
    pub scope: u64,
    /// The budgets the request is charged to.
    pub budgets: Vec<&'a Budget>,
    /// Its token reservation.
    pub estimate: Estimate,
}

impl Ask<'_> {
    /// Whether the admission touches any counter (else it costs nothing).
    pub fn counts(&self) -> bool {
        !self.budgets.is_empty()
            || self.endpoint.limit.as_ref().is_some_and(|l| l.calls.is_some() || l.tokens.is_some())
    }
}

/// Which counter refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The call quota is used up.
    Calls,
    /// The token reservation does not fit in what is left of `limit` (`used` so far).
    Tokens {
        /// `limit.tokens`.
        limit: u64,
        /// Tokens counted (and reserved) in this window.
        used: u64,
        /// The request's reservation.
        asked: u64,
    },
    /// The budget at this index of [`Ask::budgets`] would be exceeded.
    Budget(usize),
}

/// An admission's answer.
#[derive(Debug)]
pub enum Decision {
    /// Go ahead: the call quota's state, and what to settle when the request ends.
    Admitted(Option<Quota>, Option<Reservation>),
    /// Refused: by what, the call quota's state, and the seconds until that counter renews.
    Refused(Refused, Option<Quota>, u64),
    /// The shared state could not decide and `on_unavailable` is `deny`.
    Unavailable(Fault),
}

/// A counter a reservation holds.
#[derive(Debug)]
struct Held {
    kind: Kind,
    key: Key,
    /// The Redis key, window included, when the shared store decided.
    shared: Option<String>,
    window: u64,
    reserved: u64,
}

/// Tokens and dollars reserved by an admitted request, to be settled when it ends
/// ([`Limits::settle`]).
#[derive(Debug)]
pub struct Reservation {
    held: Vec<Held>,
}

impl Reservation {
    /// The tokens reserved.
    pub fn tokens(&self) -> u64 {
        self.held.iter().filter(|h| h.kind == Kind::Tokens).map(|h| h.reserved).sum()
    }
}

/// What a request really used, to settle its reservation with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spent {
    /// Prompt plus completion tokens.
    pub tokens: u64,
    /// Its cost in nano-dollars.
    pub cost_nanos: u64,
}

/// All quota counters, budgets and concurrency trackers of the process.
pub struct Limits {
    local: Local,
    shared: Option<Arc<Shared>>,
    inflight: Inflight,
    clock: Clock,
}

impl Default for Limits {
    /// In-process limits on [`Clock::from_env`] (the system clock in production).
    fn default() -> Self {
        Limits::with_clock(Clock::from_env())
    }
}

impl Limits {
    /// In-process limits whose windows follow `clock`.
    pub fn with_clock(clock: Clock) -> Limits {
        Limits { local: Local::new(), shared: None, inflight: Inflight::new(), clock }
    }

    /// Limits on [`Clock::from_env`], shared through `shared_state` when given; `errors` counts
    /// the shared store's failures by kind. Fails when the shared state's URL cannot be used.
    pub fn new(shared_state: Option<&SharedState>, errors: IntCounterVec) -> Result<Limits, String> {
        let mut limits = Limits::default();
        if let Some(settings) = shared_state {
            limits.shared = Some(Arc::new(Shared::new(settings, errors)?));
        }
        Ok(limits)
    }

    /// The shared state's settings, when the counters are shared.
    pub fn shared_state(&self) -> Option<&SharedState> {
        self.shared.as_deref().map(|s| &s.settings)
    }

    /// The counter scope for a caller identified by `value` (the client IP, a header value, the
    /// API key name): a hash, the same in every process, so secrets such as keys are never
    /// kept. 0 is the whole endpoint.
    pub fn scope(&self, limit: &Limit, value: impl FnOnce(&LimitScope) -> Option<Vec<u8>>) -> u64 {
        if limit.scope == LimitScope::Endpoint {
            return 0;
        }
        scope_hash(&value(&limit.scope).unwrap_or_default())
    }

    /// Count one call to `endpoint` against its call quota, in this process.
    pub fn acquire(&self, endpoint: &Endpoint, scope: u64) -> Option<Verdict> {
        let limit = endpoint.limit.as_ref()?;
        let calls = limit.calls?;
        let item = calls_item(endpoint, limit, calls, scope);
        let out = self.local.decide(std::slice::from_ref(&item), self.clock.now_secs());
        let quota = quota_of(&item, &out, 0);
        Some(if out.admitted { Verdict::Allowed(quota) } else { Verdict::Limited(quota) })
    }

    /// The state of `endpoint`'s call quota for `scope` without counting a call (for the
    /// `x-ratelimit-*` headers of an answer refused for another reason); `None` when the quota
    /// is shared (that would cost a round trip).
    pub fn peek(&self, endpoint: &Endpoint, scope: u64) -> Option<Quota> {
        if self.shared.is_some() {
            return None;
        }
        let limit = endpoint.limit.as_ref()?;
        let calls = limit.calls?;
        let now = self.clock.now_secs();
        let (_, used) = self.local.peek(&calls_item(endpoint, limit, calls, scope).key, limit.period_secs, now);
        Some(Quota {
            limit: calls,
            remaining: calls.saturating_sub(used),
            reset_secs: reset_secs(limit.period_secs, now),
        })
    }

    /// Decide an admission: every counter of `ask` at once, all or nothing.
    pub async fn admit(&self, ask: &Ask<'_>) -> Decision {
        let items = items(ask);
        if items.is_empty() {
            return Decision::Admitted(None, None);
        }
        if let Some(shared) = &self.shared {
            let counters: Vec<(String, u64, u64, u64)> =
                items.iter().map(|i| (shared_key(shared, i), i.limit, i.amount, i.period)).collect();
            match shared.admit(&counters, self.clock.manual_now()).await {
                Ok(answer) => {
                    if let Some(out) = parse_outcome(&answer, items.len()) {
                        let keys = counters.into_iter().map(|(k, ..)| Some(k)).collect();
                        return decision(&items, &out, keys);
                    }
                    log::warn!("shared state: unexpected answer from the admission script");
                    if shared.settings.on_unavailable == OnUnavailable::Deny {
                        return Decision::Unavailable(Fault::Server);
                    }
                }
                Err(fault) if shared.settings.on_unavailable == OnUnavailable::Deny => {
                    return Decision::Unavailable(fault);
                }
                Err(_) => {}
            }
        }
        let out = self.local.decide(&items, self.clock.now_secs());
        decision(&items, &out, items.iter().map(|_| None).collect())
    }

    /// Replace `reservation` by what the request `spent`. In this process at once; in Redis
    /// in a task of its own (the answer never waits for it).
    pub fn settle(&self, reservation: Reservation, spent: Spent) {
        let delta = |h: &Held| {
            let actual = if h.kind == Kind::Tokens { spent.tokens } else { spent.cost_nanos };
            (actual as i128 - h.reserved as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
        };
        let mut remote = Vec::new();
        for h in &reservation.held {
            match &h.shared {
                Some(key) => remote.push((key.clone(), delta(h))),
                None => self.local.settle(&h.key, h.window, delta(h)),
            }
        }
        remote.retain(|(_, d)| *d != 0);
        if let (Some(shared), false) = (&self.shared, remote.is_empty()) {
            let shared = shared.clone();
            tokio::spawn(async move {
                // A failure is counted and logged by the store; the reservation then stays.
                let _ = shared.settle(&remote).await;
            });
        }
    }

    /// Enter `endpoint`'s concurrency cap: the guard releases the slot when dropped; `Err` with
    /// the cap when it is full.
    pub fn enter(&self, endpoint: &Endpoint, scope: u64) -> Result<Option<Guard>, u64> {
        let Some(max) = endpoint.limit.as_ref().and_then(|l| l.max_concurrent) else {
            return Ok(None);
        };
        let (guard, count) = self.inflight.incr((&*endpoint.limit_id, scope), 1);
        if count as u64 > max {
            return Err(max);
        }
        Ok(Some(guard))
    }

    /// `GET /aigw/usage`: every budget's spend, and every limited endpoint's calls and tokens
    /// in the current window (per key for `key: api_key`; counters scoped by client address or
    /// header are not listed, their values are not kept).
    pub async fn usage(&self, config: &GatewayConfig) -> Result<Value, Fault> {
        struct Row<'a> {
            endpoint: &'a Endpoint,
            limit: &'a Limit,
            key: Option<&'a str>,
            scope: u64,
        }
        let mut rows = Vec::new();
        for e in &config.endpoints {
            let Some(limit) = &e.limit else { continue };
            if limit.calls.is_none() && limit.tokens.is_none() {
                continue;
            }
            match &limit.scope {
                LimitScope::Endpoint => rows.push(Row { endpoint: e, limit, key: None, scope: 0 }),
                LimitScope::ApiKey => {
                    for k in &config.settings.auth.keys {
                        rows.push(Row { endpoint: e, limit, key: Some(&k.name), scope: scope_hash(k.name.as_bytes()) });
                    }
                }
                LimitScope::ClientIp | LimitScope::Header(_) => {}
            }
        }
        // Every counter to read: (item, period).
        let mut items: Vec<Item<'_>> = Vec::new();
        for r in &rows {
            items.push(calls_item(r.endpoint, r.limit, r.limit.calls.unwrap_or(0), r.scope));
            let mut t = calls_item(r.endpoint, r.limit, r.limit.tokens.unwrap_or(0), r.scope);
            t.key.kind = Kind::Tokens;
            items.push(t);
        }
        for b in &config.settings.budgets {
            items.push(budget_item(b, 0));
        }
        let (now, counts): (u64, Vec<(u64, u64)>) = match &self.shared {
            Some(shared) => {
                let counters: Vec<(String, u64)> = items.iter().map(|i| (shared_key(shared, i), i.period)).collect();
                let answer = shared.peek(&counters, self.clock.manual_now()).await?;
                let now = answer.first().copied().unwrap_or(0).max(0) as u64;
                let counts = (0..items.len())
                    .map(|i| {
                        let at = |j: usize| answer.get(j).copied().unwrap_or(0).max(0) as u64;
                        (at(1 + 2 * i), at(2 + 2 * i))
                    })
                    .collect();
                (now, counts)
            }
            None => {
                let now = self.clock.now_secs();
                (now, items.iter().map(|i| self.local.peek(&i.key, i.period, now)).collect())
            }
        };
        let resets_at = |window: u64, period: u64| {
            crate::audit::rfc3339(UNIX_EPOCH + Duration::from_secs((window + 1) * period.max(1)))
        };
        let mut limits = Vec::new();
        for (n, r) in rows.iter().enumerate() {
            let (window, calls_used) = counts[2 * n];
            let (_, tokens_used) = counts[2 * n + 1];
            let mut row = json!({
                "endpoint": r.endpoint.name,
                "calls": r.limit.calls, "calls_used": r.limit.calls.map(|_| calls_used),
                "tokens": r.limit.tokens, "tokens_used": r.limit.tokens.map(|_| tokens_used),
                "renewal_period": r.limit.renewal_period,
                "resets_at": resets_at(window, r.limit.period_secs),
            });
            if let Some(k) = r.key {
                row["key"] = json!(k);
            }
            limits.push(row);
        }
        let budgets: Vec<Value> = config
            .settings
            .budgets
            .iter()
            .enumerate()
            .map(|(n, b)| {
                let (window, spent) = counts[2 * rows.len() + n];
                json!({
                    "name": b.name, "usd": b.usd, "spent_usd": spent as f64 / 1e9,
                    "renewal_period": b.renewal_period, "resets_at": resets_at(window, b.period_secs),
                })
            })
            .collect();
        Ok(json!({
            "time": crate::audit::rfc3339(UNIX_EPOCH + Duration::from_secs(now)),
            "shared": self.shared.is_some(),
            "budgets": budgets,
            "limits": limits,
        }))
    }
}

/// The stable hash of a scope value (never 0, which is the whole endpoint).
fn scope_hash(value: &[u8]) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, value);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first) | 1
}

fn calls_item<'a>(endpoint: &'a Endpoint, limit: &'a Limit, calls: u64, scope: u64) -> Item<'a> {
    Item {
        key: Key { kind: Kind::Calls, id: endpoint.limit_id.clone(), scope },
        name: &endpoint.name,
        scope: Some(&limit.scope),
        limit: calls,
        amount: 1,
        period: limit.period_secs.max(1),
    }
}

fn budget_item(budget: &Budget, cost: u64) -> Item<'_> {
    Item {
        key: Key { kind: Kind::Budget, id: Arc::from(budget.name.as_str()), scope: budget.period_secs },
        name: &budget.name,
        scope: None,
        limit: budget.nanos,
        amount: cost,
        period: budget.period_secs.max(1),
    }
}

/// The counters of an admission, in the order they are checked: calls, tokens, budgets.
fn items<'a>(ask: &Ask<'a>) -> Vec<Item<'a>> {
    let mut items = Vec::new();
    if let Some(limit) = &ask.endpoint.limit {
        if let Some(calls) = limit.calls {
            items.push(calls_item(ask.endpoint, limit, calls, ask.scope));
        }
        if let Some(tokens) = limit.tokens {
            let mut t = calls_item(ask.endpoint, limit, tokens, ask.scope);
            t.key.kind = Kind::Tokens;
            t.amount = ask.estimate.total();
            items.push(t);
        }
    }
    let cost = ask.endpoint.pricing.map_or(0, |p| p.cost_nanos(ask.estimate.input, 0, ask.estimate.output));
    items.extend(ask.budgets.iter().map(|b| budget_item(b, cost)));
    items
}

/// A counter's Redis key without its window: `<prefix>:c:<endpoint>:<period>:<scope>` (calls;
/// `t` for tokens), `<prefix>:b:<budget>:<period>`.
fn shared_key(shared: &Shared, item: &Item<'_>) -> String {
    let kind = item.key.kind.letter();
    match item.scope {
        None => shared.counter_key(format_args!("{kind}:{}:{}", item.name, item.period)),
        Some(scope) => {
            let tag: &str = match scope {
                LimitScope::Endpoint => "all",
                LimitScope::ClientIp => "ip",
                LimitScope::ApiKey => "key",
                LimitScope::Header(h) => h.as_str(),
            };
            shared.counter_key(format_args!("{kind}:{}:{}:{tag}:{:016x}", item.name, item.period, item.key.scope))
        }
    }
}

/// The admission script's answer as an [`Outcome`].
fn parse_outcome(answer: &[i64], n: usize) -> Option<Outcome> {
    if answer.len() != 4 + 2 * n {
        return None;
    }
    let u = |v: i64| v.max(0) as u64;
    Some(Outcome {
        admitted: answer[0] == 1,
        failed: (u(answer[1]) as usize).saturating_sub(1),
        now: u(answer[2]),
        counters: (0..n).map(|i| (u(answer[4 + 2 * i]), u(answer[5 + 2 * i]))).collect(),
    })
}

fn reset_secs(period: u64, now: u64) -> u64 {
    let period = period.max(1);
    (now / period + 1) * period - now
}

/// The call quota's state (item `i` must be the calls counter).
fn quota_of(item: &Item<'_>, out: &Outcome, i: usize) -> Quota {
    let used = out.counters.get(i).map_or(0, |c| c.1);
    Quota {
        limit: item.limit,
        remaining: item.limit.saturating_sub(used),
        reset_secs: reset_secs(item.period, out.now),
    }
}

/// The decision for `items` given a store's outcome; `keys` are the Redis keys (without window)
/// when Redis decided.
fn decision(items: &[Item<'_>], out: &Outcome, keys: Vec<Option<String>>) -> Decision {
    let quota = items.first().filter(|i| i.key.kind == Kind::Calls).map(|i| quota_of(i, out, 0));
    if !out.admitted {
        let item = &items[out.failed.min(items.len() - 1)];
        let refused = match item.key.kind {
            Kind::Calls => Refused::Calls,
            Kind::Tokens => Refused::Tokens {
                limit: item.limit,
                used: out.counters.get(out.failed).map_or(0, |c| c.1),
                asked: item.amount,
            },
            Kind::Budget => Refused::Budget(out.failed - items.iter().filter(|i| i.key.kind != Kind::Budget).count()),
        };
        return Decision::Refused(refused, quota, reset_secs(item.period, out.now));
    }
    let held: Vec<Held> = items
        .iter()
        .zip(keys)
        .zip(&out.counters)
        .filter(|((item, _), _)| item.key.kind != Kind::Calls)
        .map(|((item, key), &(window, _))| Held {
            kind: item.key.kind,
            key: item.key.clone(),
            shared: key.map(|k| format!("{k}:{window}")),
            window,
            reserved: item.amount,
        })
        .collect();
    Decision::Admitted(quota, (!held.is_empty()).then_some(Reservation { held }))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pricing;

    /// An endpoint with `limit` (YAML flow mapping) and optional pricing, as the configuration
    /// loads it.
    fn endpoint_with(limit: &str, pricing: &str) -> Arc<Endpoint> {
        let text = format!(
            "endpoints: [{{name: e, endpoint_type: llm/v1/chat, model: {{provider: mock{pricing}}}, limit: {limit}}}]"
        );
        let config =
            crate::config::GatewayConfig::parse(&text, std::path::Path::new("limits.yaml"), &mut |_, _| Ok(()))
                .unwrap();
        config.endpoint("e").unwrap().clone()
    }

    /// An endpoint limited to `calls` per `renewal_period`.
    fn endpoint(calls: u64, renewal_period: &str) -> Arc<Endpoint> {
        endpoint_with(&format!("{{calls: {calls}, renewal_period: '{renewal_period}'}}"), "")
    }

    fn quota(limit: u64, remaining: u64, reset_secs: u64) -> Quota {
        Quota { limit, remaining, reset_secs }
    }

    fn budget(name: &str, usd: f64, keys: Option<&[&str]>, endpoints: Option<&[&str]>) -> Budget {
        Budget {
            name: name.into(),
            usd,
            nanos: (usd * 1e9) as u64,
            renewal_period: "day".into(),
            period_count: 1,
            period_unit: "day",
            period_secs: 86_400,
            keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
            endpoints: endpoints.map(|k| k.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn exact_fixed_window_aligned_to_the_clock() {
        let t = 1_699_999_990; // 10 s into a minute window (1_699_999_980 is a multiple of 60)
        let clock = Clock::manual(t);
        let limits = Limits::with_clock(clock.clone());
        let ep = endpoint(2, "minute");
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 1, 50))));
        clock.set(t + 1);
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 0, 49))));
        clock.set(t + 2);
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Limited(quota(2, 0, 48))));
        // Another scope has its own counter.
        assert!(matches!(limits.acquire(&ep, 7), Some(Verdict::Allowed(_))));
        // Looking does not count.
        assert_eq!(limits.peek(&ep, 0), Some(quota(2, 0, 48)));
        assert_eq!(limits.peek(&ep, 9), Some(quota(2, 2, 48)));
        // The next window renews.
        clock.set(t + 50);
        assert_eq!(limits.peek(&ep, 0).unwrap().remaining, 2);
        assert!(matches!(limits.acquire(&ep, 0), Some(Verdict::Allowed(_))));
    }

    /// Every period, through the public API on a manual clock: a window opens full at its first
    /// second, `reset_secs` (the `x-ratelimit-reset` and `Retry-After` value) counts down to 1 at
    /// its last second, and the next window starts afresh exactly at the boundary. Windows are
    /// aligned to the Unix epoch: "2 minutes" renews at every even minute, "month" is 30 days.
    #[test]
    fn every_period_renews_exactly_at_its_boundary() {
        for (period, secs) in [
            ("second", 1),
            ("minute", 60),
            ("2 minutes", 120),
            ("hour", 3_600),
            ("3 hours", 10_800),
            ("day", 86_400),
            ("month", 30 * 86_400),
            ("year", 360 * 86_400),
        ] {
            let ep = endpoint(2, period);
            let start = 1_700_000_000 / secs * secs;
            let clock = Clock::manual(start);
            let limits = Limits::with_clock(clock.clone());
            assert_eq!(limits.peek(&ep, 0), Some(quota(2, 2, secs)), "{period}");
            assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 1, secs))), "{period}");
            clock.set(start + secs - 1);
            assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 0, 1))), "{period}");
            assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Limited(quota(2, 0, 1))), "{period}");
            assert_eq!(limits.peek(&ep, 0), Some(quota(2, 0, 1)), "{period}");
            clock.set(start + secs);
            assert_eq!(limits.peek(&ep, 0), Some(quota(2, 2, secs)), "{period}: renewed");
            assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 1, secs))), "{period}");
            clock.set(start + secs + secs / 2);
            assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(2, 0, secs - secs / 2))), "{period}");
        }
    }

    /// A day window renews at 00:00 UTC: 2023-11-14T23:59:59Z is its last second.
    #[test]
    fn a_day_renews_at_midnight_utc() {
        let ep = endpoint(1, "day");
        let midnight = 1_700_006_400; // 2023-11-15T00:00:00Z
        let clock = Clock::manual(midnight - 1);
        let limits = Limits::with_clock(clock.clone());
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(1, 0, 1))));
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Limited(quota(1, 0, 1))));
        clock.set(midnight);
        assert_eq!(limits.acquire(&ep, 0), Some(Verdict::Allowed(quota(1, 0, 86_400))));
    }

    /// An endpoint without a limit has no quota; a manual clock's clones move together.
    #[test]
    fn unlimited_endpoints_and_manual_clocks() {
        let text = "endpoints: [{name: e, endpoint_type: llm/v1/chat, model: {provider: mock}}]";
        let config =
            crate::config::GatewayConfig::parse(text, std::path::Path::new("limits.yaml"), &mut |_, _| Ok(())).unwrap();
        let limits = Limits::with_clock(Clock::manual(5));
        assert_eq!(limits.acquire(config.endpoint("e").unwrap(), 0), None);
        assert_eq!(limits.peek(config.endpoint("e").unwrap(), 0), None);
        let clock = Clock::manual(5);
        clock.clone().set(7);
        assert_eq!(clock.now_secs(), 7);
    }

    #[test]
    fn zero_calls_always_limited() {
        let limits = Limits::default();
        assert!(matches!(limits.acquire(&endpoint(0, "second"), 0), Some(Verdict::Limited(_))));
    }

    #[test]
    fn parallel_callers_get_exactly_the_quota() {
        let limits = Arc::new(Limits::with_clock(Clock::manual(7200)));
        let ep = endpoint(100, "hour");
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (limits, ep) = (limits.clone(), ep.clone());
                    s.spawn(move || {
                        (0..50).filter(|_| matches!(limits.acquire(&ep, 0), Some(Verdict::Allowed(_)))).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
    }

    /// A reload that changes only the amount keeps the count (the counter's identity is the
    /// endpoint, period and scope); a changed period starts a new one.
    #[test]
    fn a_changed_amount_applies_to_the_count_so_far() {
        let limits = Limits::with_clock(Clock::manual(1_700_000_010));
        assert!(matches!(limits.acquire(&endpoint(2, "day"), 0), Some(Verdict::Allowed(_))));
        assert!(matches!(limits.acquire(&endpoint(2, "day"), 0), Some(Verdict::Allowed(_))));
        assert!(matches!(limits.acquire(&endpoint(2, "day"), 0), Some(Verdict::Limited(_))));
        assert_eq!(limits.acquire(&endpoint(3, "day"), 0), Some(Verdict::Allowed(quota(3, 0, 6390))));
        assert!(matches!(limits.acquire(&endpoint(1, "day"), 0), Some(Verdict::Limited(_))));
        assert!(matches!(limits.acquire(&endpoint(1, "hour"), 0), Some(Verdict::Allowed(_))));
    }

    /// Reserve, then settle: the reservation counts until the request ends, then the real use
    /// replaces it; a reservation that does not fit is refused and counts nothing, calls
    /// included.
    #[test]
    fn tokens_reserve_then_settle() {
        run(async {
            let limits = Limits::with_clock(Clock::manual(1_700_000_010));
            let ep = endpoint_with("{calls: 10, tokens: 1000, renewal_period: day}", "");
            let ask =
                |input, output| Ask { endpoint: &ep, scope: 0, budgets: vec![], estimate: Estimate { input, output } };
            let Decision::Admitted(Some(q), Some(r)) = limits.admit(&ask(100, 500)).await else { panic!() };
            assert_eq!((q.remaining, r.tokens()), (9, 600));
            // 600 reserved: 500 more do not fit, and nothing was counted (calls neither).
            let Decision::Refused(refused, Some(q2), reset) = limits.admit(&ask(100, 400)).await else { panic!() };
            assert_eq!(refused, Refused::Tokens { limit: 1000, used: 600, asked: 500 });
            assert_eq!((q2.remaining, reset), (9, 6390));
            // The answer used 150 tokens: 850 are left.
            limits.settle(r, Spent { tokens: 150, cost_nanos: 0 });
            let Decision::Admitted(Some(q3), Some(r2)) = limits.admit(&ask(350, 500)).await else { panic!() };
            assert_eq!(q3.remaining, 8);
            // A request that used more than it reserved counts what it used.
            limits.settle(r2, Spent { tokens: 900, cost_nanos: 0 });
            assert!(matches!(
                limits.admit(&ask(0, 0)).await,
                Decision::Refused(Refused::Tokens { used: 1050, .. }, ..)
            ));
            // A reservation larger than the limit never fits.
            let fresh = Limits::with_clock(Clock::manual(1_700_000_010));
            assert!(matches!(fresh.admit(&ask(1000, 1)).await, Decision::Refused(Refused::Tokens { .. }, ..)));
        });
    }

    #[test]
    fn budgets_reserve_the_estimated_cost_and_settle_the_real_one() {
        run(async {
            let limits = Limits::with_clock(Clock::manual(1_700_000_010));
            // $1 per million input tokens, $2 per million output tokens.
            let ep = endpoint_with("{calls: 100, renewal_period: day}", ", pricing: {input: 1, output: 2}");
            let b = budget("team", 0.01, None, None); // 10,000,000 nano-dollars
            let ask = |input, output| Ask {
                endpoint: &ep,
                scope: 0,
                budgets: vec![&b],
                estimate: Estimate { input, output },
            };
            // 1,000 in + 2,000 out = 1,000 * 1000 + 2,000 * 2000 = 5,000,000 nano-dollars.
            let Decision::Admitted(_, Some(r)) = limits.admit(&ask(1000, 2000)).await else { panic!() };
            let Decision::Admitted(_, Some(r2)) = limits.admit(&ask(1000, 2000)).await else { panic!() };
            let Decision::Refused(Refused::Budget(0), _, reset) = limits.admit(&ask(0, 1)).await else { panic!() };
            assert_eq!(reset, 6390);
            limits.settle(r, Spent { tokens: 0, cost_nanos: 1_000_000 });
            limits.settle(r2, Spent { tokens: 0, cost_nanos: 1_000_000 });
            // 2,000,000 spent: 8,000,000 left.
            assert!(matches!(limits.admit(&ask(0, 4000)).await, Decision::Admitted(..)));
            assert!(matches!(limits.admit(&ask(0, 1)).await, Decision::Refused(Refused::Budget(0), ..)));
            let report = limits
                .usage(&crate::config::GatewayConfig::parse(
                    "endpoints: [{name: e, endpoint_type: llm/v1/chat, model: {provider: mock}}]\naigw: {budgets: [{name: team, usd: 0.01, renewal_period: day}]}",
                    std::path::Path::new("u.yaml"),
                    &mut |_, _| Ok(()),
                ).unwrap())
                .await
                .unwrap();
            assert_eq!(report["budgets"][0]["spent_usd"], json!(0.01));
            assert_eq!(report["budgets"][0]["resets_at"], "2023-11-15T00:00:00.000Z");
        });
    }

    #[test]
    fn budgets_match_by_key_and_endpoint_or_route() {
        let all = budget("all", 1.0, None, None);
        let team = budget("team", 1.0, Some(&["team-a"]), Some(&["chat", "chat-route"]));
        assert!(all.applies(None, None, "x"));
        assert!(team.applies(Some("team-a"), Some("chat"), "chat"));
        assert!(team.applies(Some("team-a"), Some("chat-route"), "backup"), "a route named by the budget");
        assert!(!team.applies(Some("team-b"), Some("chat"), "chat"));
        assert!(!team.applies(None, Some("chat"), "chat"), "no key, not a listed key");
        assert!(!team.applies(Some("team-a"), Some("other"), "other"));
    }

    #[test]
    fn cost_prices_cached_input_on_its_own() {
        let p = Pricing { input: Some(0.15), output: Some(0.60), cached_input: Some(0.075) };
        // 1,000 prompt tokens of which 400 cached, 100 completion tokens:
        // 600 * 150 + 400 * 75 + 100 * 600 = 90,000 + 30,000 + 60,000 nano-dollars.
        assert_eq!(p.cost_nanos(1000, 400, 100), 180_000);
        // Without a cached price, cache reads cost the input price; a missing price is zero.
        let p = Pricing { input: Some(1.0), output: None, cached_input: None };
        assert_eq!(p.cost_nanos(10, 5, 1000), 10_000);
        assert_eq!(Pricing::default().cost_nanos(10, 0, 10), 0);
        // Fractions of a nano-dollar round up.
        assert_eq!(Pricing { input: Some(0.0001), ..Pricing::default() }.cost_nanos(1, 0, 0), 1);
    }

    /// Several counters in one decision: all are added or none, whatever the order of their
    /// shards; the same decision from many threads never passes a limit.
    #[test]
    fn one_decision_is_all_or_nothing_across_threads() {
        run(async {
            let limits = Arc::new(Limits::with_clock(Clock::manual(1_700_000_010)));
            let ep = endpoint_with("{calls: 1000, tokens: 500, renewal_period: day}", ", pricing: {input: 1000}");
            let b = budget("b", 1.0, None, None);
            let admitted: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let (limits, ep, b) = (limits.clone(), ep.clone(), b.clone());
                        s.spawn(move || {
                            run(async {
                                let mut n = 0;
                                for _ in 0..50 {
                                    let ask = Ask {
                                        endpoint: &ep,
                                        scope: 0,
                                        budgets: vec![&b],
                                        estimate: Estimate { input: 7, output: 0 },
                                    };
                                    n += usize::from(matches!(limits.admit(&ask).await, Decision::Admitted(..)));
                                }
                                n
                            })
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            // Tokens allow 71 (7 * 71 = 497); the budget ($1, 7,000,000 nano-dollars each) 142.
            assert_eq!(admitted, 71);
            let ask = Ask { endpoint: &ep, scope: 0, budgets: vec![&b], estimate: Estimate { input: 0, output: 0 } };
            let Decision::Admitted(Some(q), _) = limits.admit(&ask).await else { panic!() };
            assert_eq!(q.remaining, 1000 - 72, "refused decisions counted no call");
        });
    }
}
