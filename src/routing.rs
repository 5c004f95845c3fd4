//! Where a request goes: the one place a name (from the URL or from the body's `model`) is
//! resolved to the endpoint that serves it.
//!
//! A traffic route picks one destination per request by weighted random choice (MLflow's
//! `TRAFFIC_SPLIT`): independent draws, destinations with 0 % never chosen.

use std::sync::Arc;

use rand::Rng;

use crate::config::{Endpoint, Target, TrafficRoute};

/// The endpoint that serves a request for `target`.
pub fn destination(target: Target<'_>) -> &Arc<Endpoint> {
    match target {
        Target::Endpoint(e) => e,
        Target::Route(r) => pick(r, rand::thread_rng().gen_range(0..100)),
    }
}

/// The destination for a draw in `0..100` (destinations own consecutive ranges of their size).
pub fn pick(route: &TrafficRoute, draw: u32) -> &Arc<Endpoint> {
    let mut upper = 0;
    for d in &route.destinations {
        upper += d.traffic_percentage;
        if draw < upper {
            return &d.endpoint;
        }
    }
    // Percentages sum to 100 (validated at load), so this is not reached; stay total anyway.
    &route.destinations[route.destinations.len() - 1].endpoint
}
