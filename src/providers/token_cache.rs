//! One cache for credentials that expire: Databricks OAuth M2M tokens, Vertex AI OAuth access
//! tokens, Bedrock's STS role credentials and what AWS's default chain finds all go through
//! [`TokenCache`].
//!
//! The rules, the same for every credential (each was the strictest sensible one of the three
//! implementations this replaces):
//!
//! * **Expiry.** A value fetched with a lifetime of `L` counts from the moment its fetch
//!   *started* (it cannot have been issued earlier), so clock skew and the fetch's own duration
//!   only ever make it expire early, never late.
//! * **Early refresh.** It is renewed [`REFRESH_MARGIN`] (5 minutes) before it expires, or at
//!   half its lifetime when that is sooner (short-lived credentials).
//! * **Serving.** Until then every caller gets it without waiting and without a lock.
//! * **Single flight.** One refresh runs at a time. A caller that finds a refresh running gets
//!   the current value at once if it is still *usable* (valid for at least [`GRACE`], 30 s, or a
//!   tenth of its lifetime when shorter); otherwise it waits for that refresh and takes its
//!   outcome, success or failure, rather than starting another: 16 concurrent callers make one
//!   fetch.
//! * **Timeout.** A refresh gets at most [`REFRESH_TIMEOUT`] (30 s), or the route timeout when
//!   that is shorter; the fetch is handed the limit and must honour it.
//! * **Failure.** A failed refresh serves the current value while it is still usable (and
//!   logs a warning); after that the error goes to the caller. Failures are not cached: the
//!   next caller that needs a value tries again.
//! * **In the background** ([`TokenCache::get_renewing_in_background`], for a cache held in an
//!   `Arc`): a caller that finds the value due but still usable gets it at once, and the
//!   refresh runs in a spawned task (one such task at a time) under the same rules, so no
//!   request waits for a renewal; only a missing or no longer usable value is fetched while
//!   the caller waits.
//!
//! The clock is injectable ([`Clock`]; [`SystemClock`] by default), so the tests check expiry,
//! early refresh, single flight and failures at chosen instants without sleeping.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::error::GatewayError;

/// A value is renewed this long before it expires (at most half its lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Longest time one refresh may take (the route timeout when shorter).
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// A value is usable while at least this much of it is left (a tenth of its lifetime when
/// shorter): what a caller is served while a refresh runs or after one failed.
pub const GRACE: Duration = Duration::from_secs(30);

/// Where the cache reads the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The real, monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A freshly fetched value and how long it is valid.
#[derive(Debug, Clone)]
pub struct Fresh<T> {
    /// The credential.
    pub value: T,
    /// Its lifetime, from the start of the fetch (zero: already expired, served once).
    pub lifetime: Duration,
}

struct Entry<T> {
    value: T,
    /// Renew from here on.
    refresh_at: Instant,
    /// Serve it while a refresh runs or after one failed until here.
    usable_until: Instant,
}

/// How the last refresh ended (kept for the callers that waited for it).
enum Outcome {
    /// Its value is the current entry.
    Stored,
    /// It failed.
    Failed(GatewayError),
}

/// One credential that expires, refreshed early and by one fetch at a time (the rules are in
/// the module documentation).
pub struct TokenCache<T, C = SystemClock> {
    /// Who holds the credential, for logs (`vertex_ai`, `Amazon Bedrock`, …).
    owner: &'static str,
    /// What the credential is, for logs (`token`, `role credentials`, …).
    what: &'static str,
    clock: C,
    current: ArcSwapOption<Entry<T>>,
    /// Held while a refresh runs; the outcome of the last one.
    flight: tokio::sync::Mutex<Option<Outcome>>,
    /// Refreshes finished (changed with `flight` held).
    finished: AtomicU64,
    /// A background refresh task is running.
    renewing: AtomicBool,
}

impl<T, C> std::fmt::Debug for TokenCache<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("owner", &self.owner).field("what", &self.what).finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync> TokenCache<T> {
    /// An empty cache on the real clock; `owner` and `what` name the credential in logs.
    pub fn new(owner: &'static str, what: &'static str) -> Self {
        TokenCache::with_clock(owner, what, SystemClock)
    }
}

impl<T: Clone + Send + Sync, C: Clock> TokenCache<T, C> {
    /// An empty cache reading the time from `clock`.
    pub fn with_clock(owner: &'static str, what: &'static str, clock: C) -> Self {
        TokenCache {
            owner,
            what,
            clock,
            current: ArcSwapOption::empty(),
            flight: tokio::sync::Mutex::new(None),
            finished: AtomicU64::new(0),
            renewing: AtomicBool::new(false),
        }
    }

    /// The current value, refreshed with `fetch` when it is missing or due. `route_timeout`
    /// caps the refresh's time limit ([`REFRESH_TIMEOUT`]), which `fetch` is given.
    pub async fn get<F, Fut>(&self, route_timeout: Duration, fetch: F) -> Result<T, GatewayError>
    where
        F: FnOnce(Duration) -> Fut,
        Fut: Future<Output = Result<Fresh<T>, GatewayError>>,
    {
        let now = self.clock.now();
        // Fresh: served at once. Due but still usable: kept in case a refresh is running.
        let usable = match self.current.load().as_ref() {
            Some(e) if now < e.refresh_at => return Ok(e.value.clone()),
            Some(e) if now < e.usable_until => Some(e.value.clone()),
            _ => None,
        };
        let seen = self.finished.load(Ordering::Acquire);
        let mut flight = match self.flight.try_lock() {
            Ok(guard) => guard,
            // A refresh is running: a still-usable value is served without waiting.
            Err(_running) => match usable {
                Some(value) => return Ok(value),
                None => self.flight.lock().await,
            },
        };
        let now = self.clock.now();
        if let Some(e) = self.current.load().as_ref()
            && now < e.refresh_at
        {
            return Ok(e.value.clone());
        }
        if self.finished.load(Ordering::Acquire) != seen {
            // A refresh ended while this call waited: share its outcome rather than fetch again.
            match &*flight {
                Some(Outcome::Failed(e)) => return self.fallback(e.clone(), now),
                Some(Outcome::Stored) => {
                    if let Some(e) = self.current.load().as_ref() {
                        return Ok(e.value.clone());
                    }
                }
                None => {}
            }
        }
        let started = self.clock.now();
        let result = fetch(route_timeout.min(REFRESH_TIMEOUT)).await;
        self.finished.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(fresh) => {
                let margin = REFRESH_MARGIN.min(fresh.lifetime / 2);
                let grace = GRACE.min(fresh.lifetime / 10);
                let expires_at = started + fresh.lifetime;
                self.current.store(Some(Arc::new(Entry {
                    value: fresh.value.clone(),
                    refresh_at: expires_at - margin,
                    usable_until: expires_at - grace,
                })));
                *flight = Some(Outcome::Stored);
                Ok(fresh.value)
            }
            Err(e) => {
                *flight = Some(Outcome::Failed(e.clone()));
                self.fallback(e, self.clock.now())
            }
        }
    }

    /// The value while it is fresh (not yet due for renewal), without waiting: the fast path of
    /// a caller that builds its fetch only when one is needed.
    pub fn fresh(&self) -> Option<T> {
        let now = self.clock.now();
        self.current.load().as_ref().filter(|e| now < e.refresh_at).map(|e| e.value.clone())
    }

    /// After a failed refresh: the current value while it is usable, else the error.
    fn fallback(&self, error: GatewayError, now: Instant) -> Result<T, GatewayError> {
        match self.current.load().as_ref() {
            Some(e) if now < e.usable_until => {
                log::warn!(
                    "{}: {} renewal failed, using the current {} until expiry: {}",
                    self.owner,
                    self.what,
                    self.what,
                    error.message()
                );
                Ok(e.value.clone())
            }
            _ => Err(error),
        }
    }
}

impl<T: Clone + Send + Sync + 'static, C: Clock + 'static> TokenCache<T, C> {
    /// Like [`TokenCache::get`], with the renewal off the caller's path: a value that is due
    /// but still usable is returned at once while `fetch` runs in a spawned task (one at a
    /// time; its failure is logged and the next caller tries again). A missing or unusable
    /// value is fetched while the caller waits, as with `get`.
    pub async fn get_renewing_in_background<F, Fut>(
        self: &Arc<Self>,
        route_timeout: Duration,
        fetch: F,
    ) -> Result<T, GatewayError>
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fresh<T>, GatewayError>> + Send + 'static,
    {
        let now = self.clock.now();
        let usable = match self.current.load().as_ref() {
            Some(e) if now < e.refresh_at => return Ok(e.value.clone()),
            Some(e) if now < e.usable_until => e.value.clone(),
            _ => return self.get(route_timeout, fetch).await,
        };
        if !self.renewing.swap(true, Ordering::AcqRel) {
            /// Clears `renewing` when the task ends, however it ends.
            struct Done<T: Clone + Send + Sync, C: Clock>(Arc<TokenCache<T, C>>);
            impl<T: Clone + Send + Sync, C: Clock> Drop for Done<T, C> {
                fn drop(&mut self) {
                    self.0.renewing.store(false, Ordering::Release);
                }
            }
            let done = Done(self.clone());
            tokio::spawn(async move {
                // A failure is logged by `get`'s fallback while the current value is usable.
                let _ = done.0.get(route_timeout, fetch).await;
                drop(done);
            });
        }
        Ok(usable)
    }
}

/// A clock for tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::Clock;

    /// A clock the tests move by hand.
    #[derive(Debug, Clone)]
    pub(crate) struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        /// A clock standing at the real now.
        pub(crate) fn new() -> Self {
            ManualClock(Arc::new(Mutex::new(Instant::now())))
        }

        /// Move it forward.
        pub(crate) fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ManualClock;
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const HOUR: Duration = Duration::from_secs(3600);
    const ROUTE: Duration = Duration::from_secs(300);

    fn cache() -> (TokenCache<String, ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        (TokenCache::with_clock("test", "token", clock.clone()), clock)
    }

    /// A fetch that counts its calls and answers `value` valid for `lifetime`, or fails.
    fn fetch(
        calls: &AtomicUsize,
        answer: Result<(&str, Duration), &str>,
    ) -> impl FnOnce(Duration) -> std::future::Ready<Result<Fresh<String>, GatewayError>> {
        calls.fetch_add(1, Ordering::SeqCst);
        let answer =
            answer.map(|(v, lifetime)| Fresh { value: v.to_owned(), lifetime }).map_err(GatewayError::bad_gateway);
        move |_| std::future::ready(answer)
    }

    /// Due but usable: served at once, renewed by one background task; unusable: waited for.
    #[tokio::test]
    async fn renewal_in_the_background() {
        let clock = ManualClock::new();
        let cache = Arc::new(TokenCache::with_clock("test", "token", clock.clone()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let counted = |value: &'static str, calls: &Arc<AtomicUsize>, gate: &tokio::sync::watch::Receiver<bool>| {
            let (calls, mut gate) = (calls.clone(), gate.clone());
            move |_: Duration| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
                Ok(Fresh { value: value.to_owned(), lifetime: HOUR })
            }
        };
        release.send(true).unwrap();
        assert_eq!(cache.get_renewing_in_background(ROUTE, counted("a", &calls, &gate)).await.unwrap(), "a");
        release.send(false).unwrap();
        // Due (5 minutes before expiry), still usable: "a" at once, however many callers; one
        // renewal runs, held at the gate.
        clock.advance(HOUR - Duration::from_secs(200));
        for _ in 0..5 {
            assert_eq!(cache.get_renewing_in_background(ROUTE, counted("b", &calls, &gate)).await.unwrap(), "a");
        }
        assert_eq!(cache.fresh(), None);
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for _ in 0..100 {
            if cache.fresh().is_some() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(cache.fresh().as_deref(), Some("b"));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one background renewal");
        // Past usable: the caller waits for the fetch.
        clock.advance(HOUR);
        assert_eq!(cache.get_renewing_in_background(ROUTE, counted("c", &calls, &gate)).await.unwrap(), "c");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn values_are_served_until_due_then_refreshed_early() {
        let (cache, clock) = cache();
        let calls = AtomicUsize::new(0);
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("a", HOUR)))).await.unwrap(), "a");
        // Fresh for 55 minutes: served without a fetch (the fetch given here would say "b").
        clock.advance(Duration::from_secs(54 * 60));
        let unused = AtomicUsize::new(0);
        assert_eq!(cache.get(ROUTE, fetch(&unused, Ok(("b", HOUR)))).await.unwrap(), "a");
        // Five minutes before expiry: renewed.
        clock.advance(Duration::from_secs(60));
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("b", HOUR)))).await.unwrap(), "b");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Short-lived values are renewed at half their lifetime.
        let (cache, clock) = self::cache();
        cache.get(ROUTE, fetch(&calls, Ok(("s", Duration::from_secs(10))))).await.unwrap();
        clock.advance(Duration::from_millis(4999));
        assert_eq!(cache.get(ROUTE, fetch(&unused, Ok(("t", HOUR)))).await.unwrap(), "s");
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("t", HOUR)))).await.unwrap(), "t");
    }

    #[tokio::test]
    async fn a_value_that_arrives_expired_serves_its_caller_once() {
        let (cache, _clock) = cache();
        let calls = AtomicUsize::new(0);
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("old", Duration::ZERO)))).await.unwrap(), "old");
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("new", HOUR)))).await.unwrap(), "new");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_the_current_value_while_it_is_usable() {
        let (cache, clock) = cache();
        let calls = AtomicUsize::new(0);
        cache.get(ROUTE, fetch(&calls, Ok(("a", HOUR)))).await.unwrap();
        // Due (56 minutes in), the refresh fails: 4 minutes are left, more than the grace.
        clock.advance(Duration::from_secs(56 * 60));
        assert_eq!(cache.get(ROUTE, fetch(&calls, Err("down"))).await.unwrap(), "a");
        // 30 s before expiry it is no longer usable: the error reaches the caller.
        clock.advance(Duration::from_secs(3 * 60 + 30));
        let e = cache.get(ROUTE, fetch(&calls, Err("still down"))).await.unwrap_err();
        assert_eq!((e.status, e.message()), (502, "still down".to_owned()));
        // Failures are not cached: the next call fetches again.
        assert_eq!(cache.get(ROUTE, fetch(&calls, Ok(("b", HOUR)))).await.unwrap(), "b");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // With nothing cached, a failure is the caller's error.
        let (cache, _clock) = self::cache();
        assert_eq!(cache.get(ROUTE, fetch(&calls, Err("no"))).await.unwrap_err().message(), "no");
    }

    #[tokio::test]
    async fn the_fetch_gets_the_shorter_of_the_route_timeout_and_the_refresh_timeout() {
        let (cache, _clock) = cache();
        let seen = std::sync::Mutex::new(Vec::new());
        for route in [Duration::from_secs(300), Duration::from_secs(5)] {
            let _ = cache
                .get(route, |limit| {
                    seen.lock().unwrap().push(limit);
                    std::future::ready(Err::<Fresh<String>, _>(GatewayError::bad_gateway("x")))
                })
                .await;
        }
        assert_eq!(*seen.lock().unwrap(), [REFRESH_TIMEOUT, Duration::from_secs(5)]);
    }

    /// Runs `callers` concurrent `get`s whose fetch (only one may run) waits until released,
    /// then answers `answer`. Returns what each caller got and how many fetches ran.
    async fn concurrent(
        cache: &TokenCache<String, ManualClock>,
        callers: usize,
        answer: Result<&'static str, &'static str>,
    ) -> (Vec<Result<String, GatewayError>>, usize) {
        let calls = AtomicUsize::new(0);
        let gate = tokio::sync::Semaphore::new(0);
        let getters = futures::future::join_all((0..callers).map(|_| {
            cache.get(ROUTE, |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                let gate = &gate;
                async move {
                    let _permit = gate.acquire().await.unwrap();
                    answer.map(|v| Fresh { value: v.to_owned(), lifetime: HOUR }).map_err(GatewayError::bad_gateway)
                }
            })
        }));
        let opener = async {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            gate.add_permits(callers);
        };
        let (results, ()) = tokio::join!(getters, opener);
        (results, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let (cache, clock) = cache();
        let (got, fetches) = concurrent(&cache, 16, Ok("a")).await;
        assert_eq!(fetches, 1);
        assert!(got.iter().all(|r| r.as_deref() == Ok("a")), "{got:?}");

        // A failing fetch is shared too: one fetch, sixteen errors, nothing cached.
        let (cache2, _) = self::cache();
        let (got, fetches) = concurrent(&cache2, 16, Err("down")).await;
        assert_eq!(fetches, 1);
        assert!(got.iter().all(|r| r.as_ref().is_err_and(|e| e.message() == "down")), "{got:?}");

        // Due for refresh while still usable: one caller refreshes, the others are served the
        // current value at once.
        clock.advance(Duration::from_secs(56 * 60));
        let (got, fetches) = concurrent(&cache, 16, Ok("b")).await;
        assert_eq!(fetches, 1);
        assert_eq!(got.iter().filter(|r| r.as_deref() == Ok("b")).count(), 1, "{got:?}");
        assert_eq!(got.iter().filter(|r| r.as_deref() == Ok("a")).count(), 15, "{got:?}");
        assert_eq!(cache.get(ROUTE, |_| std::future::ready(Err(GatewayError::bad_gateway("x")))).await.unwrap(), "b");
    }
}
