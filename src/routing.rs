//! Where a request goes: the one place a name (from the URL or from the body's `model`) is
//! resolved to the endpoints that may serve it, in the order they are tried.
//!
//! * an endpoint: itself;
//! * a `TRAFFIC_SPLIT` route: one destination per request by weighted random choice (MLflow's
//!   behaviour: independent draws, destinations with 0 % never chosen);
//! * a `FALLBACK` route: every destination, in order; the next is tried when one fails before
//!   the first byte of its answer reached the client.

use std::sync::Arc;

use rand::Rng;

use crate::config::{Endpoint, RoutingStrategy, Target, TrafficRoute};

/// The endpoints to try for `target`, in order.
pub fn candidates(target: Target<'_>) -> Vec<&Arc<Endpoint>> {
    match target {
        Target::Endpoint(e) => vec![e],
        Target::Route(r) => match r.routing_strategy {
            RoutingStrategy::TrafficSplit => vec![pick(r, rand::thread_rng().gen_range(0..100))],
            RoutingStrategy::Fallback => r.destinations.iter().map(|d| &d.endpoint).collect(),
        },
    }
}

/// The traffic-split destination for a draw in `0..100` (destinations own consecutive ranges
/// of their size).
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
