//! Prometheus metrics (`GET /metrics`, text format), on the `prometheus` crate.
//!
//! Labels take endpoint and provider names from the configuration only (a request for an
//! unknown name is counted under `endpoint=""`), so cardinality stays bounded.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `aigw_requests_total` | counter | `family`, `endpoint`, `provider`, `status` |
//! | `aigw_request_duration_seconds` | histogram | `family`, `endpoint` |
//! | `aigw_upstream_duration_seconds` | histogram (to the answer's first byte) | `provider` |
//! | `aigw_stream_first_byte_seconds` | histogram (client's view, streams only) | `endpoint` |
//! | `aigw_tokens_total` | counter | `endpoint`, `key` (the gateway key's name, or empty), `kind` (`prompt`, `completion`, `cached`, `reasoning`; cached is part of prompt, reasoning of completion) |
//! | `aigw_cost_usd_total` | counter (US dollars, from the endpoint's `model.pricing`) | `endpoint`, `key` |
//! | `aigw_shared_state_errors_total` | counter (failed calls to `aigw.shared_state`; `reset`: Redis came back empty) | `kind` (`timeout`, `connection`, `server`, `reset`) |
//! | `aigw_rate_limited_total` | counter | `endpoint` |
//! | `aigw_auth_rejected_total` | counter | `reason` (`missing_key`, `invalid_key`, `forbidden`) |
//! | `aigw_rejected_total` | counter | `reason` (`body_too_large`, `header_too_large`, `too_many_inflight`, `concurrency_limit`, `read_timeout`, `header_timeout`, `bad_request`, `refused_request`, `too_many_connections`, `response_too_large`, `shared_state_unavailable`, `content_type`, `cors_preflight`, `host_not_allowed`) |
//! | `aigw_inflight_requests` | gauge | |
//! | `aigw_connections` | gauge (open client connections) | |
//! | `aigw_config_reloads_total` | counter | `outcome` (`ok`, `rejected`) |
//! | `aigw_config_generation` | gauge | |
//! | `aigw_audit_dropped_total` | counter | |
//! | `aigw_client_closed_total` | counter (requests whose client left before the answer was complete; the upstream call was cancelled) | |

use std::sync::LazyLock;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests answered.
    pub requests: IntCounterVec,
    /// Time from the request's start to the end of its answer.
    pub duration: HistogramVec,
    /// Time from sending to the upstream to its answer's header.
    pub upstream_duration: HistogramVec,
    /// Time to the first byte of a streamed answer.
    pub first_byte: HistogramVec,
    /// Tokens reported by providers.
    pub tokens: IntCounterVec,
    /// What the tokens cost, in US dollars.
    pub cost: CounterVec,
    /// Failed calls to the shared state.
    pub shared_state_errors: IntCounterVec,
    /// Requests refused by a quota.
    pub rate_limited: IntCounterVec,
    /// Requests refused by authentication or authorization.
    pub auth_rejected: IntCounterVec,
    /// Requests refused by a protective limit.
    pub rejected: IntCounterVec,
    /// Requests being served.
    pub inflight: IntGauge,
    /// Open client connections.
    pub connections: IntGauge,
    /// Configuration reloads.
    pub reloads: IntCounterVec,
    /// Configuration generation.
    pub generation: IntGauge,
    /// Audit lines dropped because the writer fell behind.
    pub audit_dropped: IntCounter,
    /// Requests whose client closed its connection before the answer was complete.
    pub client_closed: IntCounter,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels)
}

impl Metrics {
    /// Every metric, registered. Names, help texts and labels are constants, so an error here is
    /// a programming error (the tests build the set); it stops the start instead of a request.
    pub fn new() -> prometheus::Result<Self> {
        let m = Metrics {
            registry: Registry::new(),
            requests: counter(
                "aigw_requests_total",
                "Requests answered",
                &["family", "endpoint", "provider", "status"],
            )?,
            duration: histogram("aigw_request_duration_seconds", "Request duration", &["family", "endpoint"])?,
            upstream_duration: histogram(
                "aigw_upstream_duration_seconds",
                "Upstream time to the answer's header",
                &["provider"],
            )?,
            first_byte: histogram(
                "aigw_stream_first_byte_seconds",
                "Time to the first byte of a stream",
                &["endpoint"],
            )?,
            tokens: counter("aigw_tokens_total", "Tokens reported by providers", &["endpoint", "key", "kind"])?,
            cost: CounterVec::new(
                Opts::new("aigw_cost_usd_total", "Cost of the tokens used, in US dollars (model.pricing)"),
                &["endpoint", "key"],
            )?,
            shared_state_errors: counter(
                "aigw_shared_state_errors_total",
                "Failed calls to the shared state (Redis)",
                &["kind"],
            )?,
            rate_limited: counter("aigw_rate_limited_total", "Requests refused by a quota", &["endpoint"])?,
            auth_rejected: counter("aigw_auth_rejected_total", "Requests refused by authentication", &["reason"])?,
            rejected: counter("aigw_rejected_total", "Requests refused by a protective limit", &["reason"])?,
            inflight: IntGauge::new("aigw_inflight_requests", "Requests being served")?,
            connections: IntGauge::new("aigw_connections", "Open client connections")?,
            reloads: counter("aigw_config_reloads_total", "Configuration reloads", &["outcome"])?,
            generation: IntGauge::new("aigw_config_generation", "Configuration generation")?,
            audit_dropped: IntCounter::new("aigw_audit_dropped_total", "Audit lines dropped")?,
            client_closed: IntCounter::new(
                "aigw_client_closed_total",
                "Requests whose client closed its connection before the answer was complete",
            )?,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.upstream_duration.clone()),
            Box::new(m.first_byte.clone()),
            Box::new(m.tokens.clone()),
            Box::new(m.cost.clone()),
            Box::new(m.shared_state_errors.clone()),
            Box::new(m.rate_limited.clone()),
            Box::new(m.auth_rejected.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.inflight.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.reloads.clone()),
            Box::new(m.generation.clone()),
            Box::new(m.audit_dropped.clone()),
            Box::new(m.client_closed.clone()),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        m.generation.set(1);
        Ok(m)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("metrics encoding: {e}");
        }
        out
    }
}

static STATUS: LazyLock<Vec<String>> = LazyLock::new(|| (0..600).map(|s| s.to_string()).collect());

/// A status code as a label value without allocating.
pub fn status_label(status: u16) -> &'static str {
    STATUS.get(usize::from(status)).map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let m = Metrics::new().unwrap();
        m.requests.with_label_values(&["native", "chat", "openai", status_label(200)]).inc();
        m.duration.with_label_values(&["native", "chat"]).observe(0.01);
        m.tokens.with_label_values(&["chat", "", "prompt"]).inc_by(12);
        m.cost.with_label_values(&["chat", "team-a"]).inc_by(0.25);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(
                "aigw_requests_total{endpoint=\"chat\",family=\"native\",provider=\"openai\",status=\"200\"} 1"
            )
        );
        assert!(text.contains("aigw_tokens_total{endpoint=\"chat\",key=\"\",kind=\"prompt\"} 12"));
        assert!(text.contains("aigw_cost_usd_total{endpoint=\"chat\",key=\"team-a\"} 0.25"));
        assert!(text.contains("aigw_config_generation 1"));
        assert!(text.contains("aigw_request_duration_seconds_bucket"));
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(999), "other");
    }
}
