//! The client side of a request in progress: noticing that the client went away.
//!
//! While the gateway waits on an upstream (connecting, sending, waiting for the answer's head
//! or body, between stream events, in a retry's backoff), the client's connection is watched:
//! when the client closes it (or resets its HTTP/2 stream), the wait is abandoned at once, so
//! the upstream call is cancelled (its connection closed, not pooled) and the request's
//! concurrency slot and in-flight count are released. The request is recorded with status 499
//! and `error: client_closed`.
//!
//! Watching reads the client's connection once its request body has been read whole (Pingora's
//! `read_body_or_idle`): a clean close, a reset, or bytes sent after the body (HTTP/1.1
//! pipelining, which Pingora's own proxy treats the same way) all count as the client having
//! left.

use pingora::proxy::Session;

use crate::error::GatewayError;

/// Resolves when the client has gone away (its request body must have been read whole).
pub async fn gone(session: &mut Session) -> GatewayError {
    loop {
        match session.read_body_or_idle(true).await {
            Err(_) => return GatewayError::client_closed(),
            // Only when a body was still unread, which the pipeline never leaves: keep watching.
            Ok(Some(_)) => continue,
            Ok(None) => return GatewayError::client_closed(),
        }
    }
}

/// `unless_gone!(session, work)`: await `work` unless the client leaves first (then
/// `Err(GatewayError::client_closed())`, and `work` is dropped, cancelling whatever it was
/// doing). A macro, not a function, so that `work` is pinned where it is built: futures of
/// upstream calls are kilobytes, and handing one to a function by value copies it whole.
macro_rules! unless_gone {
    ($session:expr, $work:expr) => {{
        let work = $work;
        tokio::pin!(work);
        tokio::select! {
            biased;
            out = &mut work => Ok(out),
            e = $crate::server::downstream::gone($session) => Err::<_, $crate::error::GatewayError>(e),
        }
    }};
}
pub(crate) use unless_gone;
