//! Stage "plan": the endpoints that may serve a resolved target, in the order they are tried,
//! each with its provider (see [`crate::routing`] for how a traffic route picks them).

use std::sync::Arc;

use crate::config::{Endpoint, Target};
use crate::error::GatewayError;
use crate::providers::Provider;
use crate::routing;
use crate::snapshot::Snapshot;

/// One endpoint to try and the provider serving it.
pub struct Candidate<'s> {
    /// The endpoint (a traffic route's destination, or the target itself).
    pub endpoint: &'s Arc<Endpoint>,
    /// Its provider.
    pub provider: &'s dyn crate::providers::Provider,
}

/// The candidates for `target`, in order.
pub fn candidates<'s>(snapshot: &'s Snapshot, target: Target<'s>) -> Result<Vec<Candidate<'s>>, GatewayError> {
    routing::candidates(target)
        .into_iter()
        .map(|endpoint| {
            let provider: &dyn Provider = snapshot.provider(endpoint)?;
            Ok(Candidate { endpoint, provider })
        })
        .collect()
}
