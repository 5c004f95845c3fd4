//! The shared counter store: Redis (`aigw.shared_state`), for a fleet of gateways that must
//! enforce one limit together.
//!
//! * One connection per process, multiplexed (requests are pipelined on it) and re-established
//!   in the background when it breaks (`redis`'s `ConnectionManager`), created on first use so
//!   that a gateway starts while Redis is down.
//! * Three Lua scripts, sent by their SHA-1 (`EVALSHA`), and whole (`EVAL`) when Redis answers
//!   `NOSCRIPT` (its script cache is empty after a restart): `admit.lua` decides every counter
//!   of one admission at once on Redis's own clock (`TIME`), all or nothing; `settle.lua`
//!   replaces reservations by the real use; `peek.lua` reads counters for `/aigw/usage`.
//! * Every round trip is bounded by `timeout_ms`. A failure is counted in
//!   `aigw_shared_state_errors_total{kind}` and logged once per outage (the URL without its
//!   credentials); the first answer after it is logged too.
//! * An epoch marker (`<prefix>:epoch`, created when absent) tells that Redis came back empty
//!   after this process had used it: the counts so far are lost, which is logged and counted
//!   (`kind="reset"`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus::IntCounterVec;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::SharedState;

const ADMIT: &str = include_str!("admit.lua");
const SETTLE: &str = include_str!("settle.lua");
const PEEK: &str = include_str!("peek.lua");

/// A script and its SHA-1.
struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script { source, sha: redis::Script::new(source).get_hash().to_owned() }
    }
}

/// Why a call to Redis failed (the `kind` label of `aigw_shared_state_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No answer within `timeout_ms`.
    Timeout,
    /// Not connected: refused, reset, closed, or still connecting.
    Connection,
    /// Redis answered with an error (authentication, a script error, out of memory, …).
    Server,
    /// Redis lost its data (came back empty): not a failed call, the counts start again.
    Reset,
}

impl Fault {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Timeout => "timeout",
            Fault::Connection => "connection",
            Fault::Server => "server",
            Fault::Reset => "reset",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fault::Timeout => "did not answer in time",
            Fault::Connection => "cannot be reached",
            Fault::Server => "answered with an error",
            Fault::Reset => "lost its data (restarted empty?): shared counters start again from zero",
        }
    }
}

/// The Redis store of one process.
pub(super) struct Shared {
    pub(super) settings: SharedState,
    client: redis::Client,
    connection: OnceLock<ConnectionManager>,
    admit: Script,
    settle: Script,
    peek: Script,
    /// Set while calls fail (an outage is logged once).
    down: AtomicBool,
    /// Outages that ended: a call that began before the last recovery and fails after it
    /// belongs to the outage before (it is counted, not logged again).
    recoveries: AtomicU64,
    /// Set once this process has seen the epoch marker.
    seen_epoch: AtomicBool,
    /// The value this process writes into an absent epoch marker.
    epoch: String,
    errors: IntCounterVec,
}

impl Shared {
    /// The store for `settings`; `errors` counts failures by kind. Fails when the URL cannot
    /// be used (the message never contains it).
    pub(super) fn new(settings: &SharedState, errors: IntCounterVec) -> Result<Shared, String> {
        let client = redis::Client::open(settings.url.expose())
            .map_err(|e| format!("aigw.shared_state.url ({}): {}", settings.display, e.category()))?;
        Ok(Shared {
            settings: settings.clone(),
            client,
            connection: OnceLock::new(),
            admit: Script::new(ADMIT),
            settle: Script::new(SETTLE),
            peek: Script::new(PEEK),
            down: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
            seen_epoch: AtomicBool::new(false),
            epoch: format!("{:016x}", rand::random::<u64>()),
            errors,
        })
    }

    /// The connection, created (not yet connected) on first use, inside the runtime of the
    /// caller, where its driver task then runs.
    fn connection(&self) -> Result<ConnectionManager, Fault> {
        if let Some(c) = self.connection.get() {
            return Ok(c.clone());
        }
        let timeout = self.settings.timeout;
        let config = ConnectionManagerConfig::new()
            // Connecting (TCP and TLS) may take longer than one round trip; requests meanwhile
            // wait at most `timeout_ms` each and then follow the failure policy.
            .set_connection_timeout(Some(Duration::from_secs(2).max(timeout)))
            // The client's own bound (500 ms by default) would cut a longer timeout_ms short.
            .set_response_timeout(Some(timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(3);
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(|e| {
            log::error!("shared state {}: {}", self.settings.display, e.category());
            Fault::Connection
        })?;
        Ok(self.connection.get_or_init(|| manager).clone())
    }

    /// Run `script` on `keys` and `args`: `EVALSHA`, then `EVAL` when Redis does not have it.
    /// Each round trip waits at most `timeout_ms`.
    async fn run(&self, script: &Script, keys: &[String], args: &[String]) -> Result<Vec<i64>, Fault> {
        let generation = self.recoveries.load(Ordering::Acquire);
        let mut conn = self.connection().map_err(|f| self.failed(f, "client", generation))?;
        let timeout = self.settings.timeout;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.sha).arg(keys.len()).arg(keys).arg(args);
        let first = tokio::time::timeout(timeout, cmd.query_async::<Vec<i64>>(&mut conn)).await;
        let result = match first {
            Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(script.source).arg(keys.len()).arg(keys).arg(args);
                tokio::time::timeout(timeout, cmd.query_async::<Vec<i64>>(&mut conn)).await
            }
            other => other,
        };
        match result {
            Ok(Ok(v)) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    self.recoveries.fetch_add(1, Ordering::AcqRel);
                    log::info!("shared state {}: answering again", self.settings.display);
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                let fault = if e.is_timeout() {
                    Fault::Timeout
                } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
                    Fault::Connection
                } else {
                    Fault::Server
                };
                Err(self.failed(fault, e.category(), generation))
            }
            Err(_) => Err(self.failed(Fault::Timeout, "timeout", generation)),
        }
    }

    /// Count a failure of a call that began in recovery `generation`; log the first of an
    /// outage.
    fn failed(&self, fault: Fault, category: &str, generation: u64) -> Fault {
        self.errors.with_label_values(&[fault.as_str()]).inc();
        if self.recoveries.load(Ordering::Acquire) != generation {
            return fault;
        }
        if !self.down.swap(true, Ordering::AcqRel) {
            let policy = match self.settings.on_unavailable {
                crate::config::OnUnavailable::Deny => "requests that need it are refused (503) until it answers",
                crate::config::OnUnavailable::Allow => {
                    "requests are served and counted in this process until it answers"
                }
            };
            log::warn!("shared state {} {} ({category}); {policy}", self.settings.display, fault.describe());
        }
        fault
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.settings.prefix)
    }

    /// Decide one admission: `counters` are (key without window, limit, amount, period);
    /// `now` is a test clock's time (`None`: Redis's clock). Returns the script's answer.
    pub(super) async fn admit(
        &self,
        counters: &[(String, u64, u64, u64)],
        now: Option<u64>,
    ) -> Result<Vec<i64>, Fault> {
        let mut keys = Vec::with_capacity(counters.len() + 1);
        keys.push(self.key("epoch"));
        let mut args = Vec::with_capacity(2 + 3 * counters.len());
        args.push(self.epoch.clone());
        args.push(now.map(|n| n.to_string()).unwrap_or_default());
        for (key, limit, amount, period) in counters {
            keys.push(key.clone());
            args.push(limit.to_string());
            args.push(amount.to_string());
            args.push(period.max(&1).to_string());
        }
        // Only a call that began after the marker was seen can tell that it vanished (calls of
        // the very first moments race to create it).
        let seen_before = self.seen_epoch.load(Ordering::Acquire);
        let answer = self.run(&self.admit, &keys, &args).await?;
        if answer.get(3) == Some(&1) && seen_before {
            self.errors.with_label_values(&[Fault::Reset.as_str()]).inc();
            log::warn!("shared state {} {}", self.settings.display, Fault::Reset.describe());
        }
        self.seen_epoch.store(true, Ordering::Release);
        Ok(answer)
    }

    /// Add `delta` to each counter (key with its window).
    pub(super) async fn settle(&self, counters: &[(String, i64)]) -> Result<(), Fault> {
        let keys: Vec<String> = counters.iter().map(|(k, _)| k.clone()).collect();
        let args: Vec<String> = counters.iter().map(|(_, d)| d.to_string()).collect();
        self.run(&self.settle, &keys, &args).await.map(drop)
    }

    /// Read counters (keys without window, periods) at `now` (`None`: Redis's clock): the time,
    /// then (window, count) per counter.
    pub(super) async fn peek(&self, counters: &[(String, u64)], now: Option<u64>) -> Result<Vec<i64>, Fault> {
        let keys: Vec<String> = counters.iter().map(|(k, _)| k.clone()).collect();
        let mut args = vec![now.map(|n| n.to_string()).unwrap_or_default()];
        args.extend(counters.iter().map(|(_, p)| p.max(&1).to_string()));
        self.run(&self.peek, &keys, &args).await
    }

    /// The key of a counter without its window: `<prefix>:<rest>`.
    pub(super) fn counter_key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{rest}", self.settings.prefix)
    }
}
