//! Per-endpoint call quotas and concurrency caps.
//!
//! Quotas (`limit: {calls, renewal_period}`) are exact fixed windows aligned to the wall clock
//! (a `minute` window renews at every whole minute, a `day` window at 00:00 UTC): N calls pass,
//! the N+1-th gets 429 until the window renews. Pingora's `Rate` estimator is not used for them:
//! it is approximate (count-min sketch) and its windows are neither per key nor clock-aligned
//! (docs/limits.md). Counters are keyed by the endpoint name and its limit, so a reload that
//! leaves an endpoint's limit unchanged keeps its count, and a changed limit starts afresh.
//!
//! `limit.key` scopes the counter: `client_ip`, `header:<name>` (e.g. the gateway API key's
//! header) or `api_key` (the authenticated gateway key). Scope values are hashed, never stored.
//!
//! `limit.max_concurrent` caps requests in flight per endpoint (and scope) with
//! `pingora_limits::inflight::Inflight`, whose estimate can only be too high.
//!
//! Counters live in this process: a graceful upgrade starts the new process at zero, and
//! instances behind a load balancer count separately.
//!
//! Windows are read from a [`Clock`]: the system clock, or a manual one that tests set to chosen
//! instants (no sleeping to reach or avoid a boundary). In debug builds only, the environment
//! variable [`TEST_NOW_ENV`] stands the clock of the process's [`Limits`] still at an instant,
//! so integration tests of the real binary never straddle a window boundary.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use pingora_limits::inflight::{Guard, Inflight};

use crate::config::{Endpoint, Limit, LimitScope};

const SHARDS: usize = 16;
/// Entries a shard may hold before stale windows are swept.
const SWEEP_AT: usize = 4096;

/// The state of a quota after a decision, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Calls per window.
    pub limit: u64,
    /// Calls left in this window.
    pub remaining: u64,
    /// Seconds until the window renews.
    pub reset_secs: u64,
}

/// A quota decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The call may go ahead (and was counted).
    Allowed(Quota),
    /// The quota is used up.
    Limited(Quota),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    /// Endpoint name and its limit, e.g. `chat\u{0}100/60`.
    id: Arc<str>,
    /// Hash of the scope value (0 for the whole endpoint).
    scope: u64,
}

struct Window {
    index: u64,
    count: u64,
}

/// Debug builds only: `AIGW_TEST_LIMITS_NOW=<seconds since the Unix epoch>` stands the quota
/// clock still at that instant (see [`Clock::from_env`]). Release builds ignore it.
pub const TEST_NOW_ENV: &str = "AIGW_TEST_LIMITS_NOW";

/// Where [`Limits`] reads the time, in whole seconds since the Unix epoch.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock (the default).
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

/// All quota counters and concurrency trackers of the process.
pub struct Limits {
    shards: Vec<Mutex<HashMap<Key, Window>>>,
    hasher: std::collections::hash_map::RandomState,
    inflight: Inflight,
    clock: Clock,
}

impl Default for Limits {
    /// Limits on [`Clock::from_env`] (the system clock in production).
    fn default() -> Self {
        Limits::with_clock(Clock::from_env())
    }
}

impl Limits {
    /// Limits whose windows follow `clock`.
    pub fn with_clock(clock: Clock) -> Limits {
        Limits {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            inflight: Inflight::new(),
            clock,
        }
    }

    /// The counter scope for a caller identified by `value` (the client IP, a header value, the
    /// API key name): a hash, so secrets such as keys are never kept. 0 is the whole endpoint.
    pub fn scope(&self, limit: &Limit, value: impl FnOnce(&LimitScope) -> Option<Vec<u8>>) -> u64 {
        if limit.scope == LimitScope::Endpoint {
            return 0;
        }
        // Reserve 0 for endpoint-wide counters.
        self.hasher.hash_one(value(&limit.scope).unwrap_or_default()) | 1
    }

    /// Count one call to `endpoint` against its quota.
    pub fn acquire(&self, endpoint: &Endpoint, scope: u64) -> Option<Verdict> {
        let limit = endpoint.limit.as_ref()?;
        Some(self.acquire_at(&endpoint.limit_id, limit, scope, self.clock.now_secs()))
    }

    /// The state of `endpoint`'s quota for `scope` without counting a call (for the
    /// `x-ratelimit-*` headers of an answer refused for another reason).
    pub fn peek(&self, endpoint: &Endpoint, scope: u64) -> Option<Quota> {
        let limit = endpoint.limit.as_ref()?;
        Some(self.peek_at(&endpoint.limit_id, limit, scope, self.clock.now_secs()))
    }

    fn peek_at(&self, id: &Arc<str>, limit: &Limit, scope: u64, now: u64) -> Quota {
        let (key, index, reset_secs) = window(id, limit, scope, now);
        let used = self.shard(&key).get(&key).filter(|w| w.index == index).map_or(0, |w| w.count);
        Quota { limit: limit.calls, remaining: limit.calls.saturating_sub(used), reset_secs }
    }

    fn acquire_at(&self, id: &Arc<str>, limit: &Limit, scope: u64, now: u64) -> Verdict {
        let (key, index, reset_secs) = window(id, limit, scope, now);
        let mut map = self.shard(&key);
        if map.len() >= SWEEP_AT {
            // Windows that ended are worth nothing; drop them (bounded memory with many callers).
            map.retain(|_, w| w.index >= index);
        }
        let w = map.entry(key).or_insert(Window { index, count: 0 });
        if w.index != index {
            *w = Window { index, count: 0 };
        }
        if w.count >= limit.calls {
            return Verdict::Limited(Quota { limit: limit.calls, remaining: 0, reset_secs });
        }
        w.count += 1;
        Verdict::Allowed(Quota { limit: limit.calls, remaining: limit.calls - w.count, reset_secs })
    }

    /// The locked shard holding `key`'s counter.
    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        match shard.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
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
}

/// The counter key of `id`/`scope`, the index of the window `now` falls in, and the seconds
/// until that window renews.
fn window(id: &Arc<str>, limit: &Limit, scope: u64, now: u64) -> (Key, u64, u64) {
    let period = limit.period_secs.max(1);
    let index = now / period;
    (Key { id: id.clone(), scope }, index, (index + 1) * period - now)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(calls: u64, period_secs: u64) -> Limit {
        Limit {
            calls,
            renewal_period: "minute".into(),
            period_count: 1,
            period_unit: "minute",
            period_secs,
            key: None,
            scope: LimitScope::Endpoint,
            max_concurrent: None,
        }
    }

    #[test]
    fn exact_fixed_window_aligned_to_the_clock() {
        let limits = Limits::default();
        let id: Arc<str> = Arc::from("chat\u{0}2/60");
        let l = limit(2, 60);
        let t = 1_699_999_990; // 10 s into a minute window (1_699_999_980 is a multiple of 60)
        assert_eq!(
            limits.acquire_at(&id, &l, 0, t),
            Verdict::Allowed(Quota { limit: 2, remaining: 1, reset_secs: 50 })
        );
        assert_eq!(
            limits.acquire_at(&id, &l, 0, t + 1),
            Verdict::Allowed(Quota { limit: 2, remaining: 0, reset_secs: 49 })
        );
        assert_eq!(
            limits.acquire_at(&id, &l, 0, t + 2),
            Verdict::Limited(Quota { limit: 2, remaining: 0, reset_secs: 48 })
        );
        // Another scope has its own counter.
        assert!(matches!(limits.acquire_at(&id, &l, 7, t + 2), Verdict::Allowed(_)));
        // Looking does not count.
        assert_eq!(limits.peek_at(&id, &l, 0, t + 2), Quota { limit: 2, remaining: 0, reset_secs: 48 });
        assert_eq!(limits.peek_at(&id, &l, 9, t + 2), Quota { limit: 2, remaining: 2, reset_secs: 48 });
        // The next window renews.
        assert_eq!(limits.peek_at(&id, &l, 0, t + 50).remaining, 2);
        assert!(matches!(limits.acquire_at(&id, &l, 0, t + 50), Verdict::Allowed(_)));
    }

    /// An endpoint limited to `calls` per `renewal_period`, as the configuration loads it.
    fn endpoint(calls: u64, renewal_period: &str) -> Arc<Endpoint> {
        let text = format!(
            "endpoints: [{{name: e, endpoint_type: llm/v1/chat, model: {{provider: mock}}, \
             limit: {{calls: {calls}, renewal_period: '{renewal_period}'}}}}]"
        );
        let config =
            crate::config::GatewayConfig::parse(&text, std::path::Path::new("limits.yaml"), &mut |_, _| Ok(()))
                .unwrap();
        config.endpoint("e").unwrap().clone()
    }

    fn quota(limit: u64, remaining: u64, reset_secs: u64) -> Quota {
        Quota { limit, remaining, reset_secs }
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
        let id: Arc<str> = Arc::from("x");
        assert!(matches!(limits.acquire_at(&id, &limit(0, 1), 0, 5), Verdict::Limited(_)));
    }

    #[test]
    fn parallel_callers_get_exactly_the_quota() {
        let limits = Arc::new(Limits::default());
        let id: Arc<str> = Arc::from("par");
        let l = Arc::new(limit(100, 3600));
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (limits, id, l) = (limits.clone(), id.clone(), l.clone());
                    s.spawn(move || {
                        (0..50).filter(|_| matches!(limits.acquire_at(&id, &l, 0, 7200), Verdict::Allowed(_))).count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 100);
    }
}
