//! Stopping and upgrading without dropping requests.
//!
//! Pingora's own sequence: `SIGQUIT` hands the listening sockets to a new process (started with
//! `-u`), keeps accepting for 5 s, then shuts down; `SIGTERM` stops accepting and shuts down;
//! either way it then sleeps the whole `grace_period_seconds` (300 s by default) before exiting,
//! even when idle. aigw adds two things, driven by Pingora's execution phases:
//!
//! * draining starts with the hand-over or the `SIGTERM`: from then on every answer carries
//!   `Connection: close`, so keep-alive clients move to the new process (or notice the stop)
//!   between requests instead of having an idle connection closed under them;
//! * once the grace period starts, the process exits as soon as no request is in flight
//!   (checked every 50 ms, after a 300 ms quiet spell), so an idle gateway stops within a
//!   second and a busy one when its last stream ends; `grace_period_seconds` stays the bound.
//!
//! `SIGINT` stays Pingora's immediate exit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::sync::{Mutex, broadcast};

use super::State;

const POLL: Duration = Duration::from_millis(50);
const QUIET_POLLS: u32 = 6;
/// The longest a stopping process waits for the audit log to be written.
const AUDIT_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The lifecycle service.
pub struct Lifecycle {
    state: Arc<State>,
    phases: Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
}

impl Lifecycle {
    /// Follow `phases` (from `Server::watch_execution_phase`, taken before `run_forever`).
    pub fn new(state: Arc<State>, phases: broadcast::Receiver<ExecutionPhase>) -> Self {
        Lifecycle { state, phases: Mutex::new(Some(phases)) }
    }

    /// Give the audit writer up to [`AUDIT_FLUSH_WAIT`] to write every queued line.
    async fn wait_for_audit(&self) {
        let Some(audit) = &self.state.audit else { return };
        let deadline = tokio::time::Instant::now() + AUDIT_FLUSH_WAIT;
        while !audit.flushed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn exit_when_idle(&self) -> ! {
        let mut quiet = 0;
        loop {
            tokio::time::sleep(POLL).await;
            if self.state.inflight.load(Ordering::Acquire) == 0 {
                quiet += 1;
                if quiet >= QUIET_POLLS {
                    self.wait_for_audit().await;
                    log::info!("no request in flight; exiting");
                    log::logger().flush();
                    std::process::exit(0);
                }
            } else {
                quiet = 0;
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, _shutdown: ShutdownWatch) {
        // This task outlives the shutdown broadcast on purpose: it ends the process.
        let Some(mut phases) = self.phases.lock().await.take() else { return };
        loop {
            match phases.recv().await {
                Ok(ExecutionPhase::GracefulUpgradeTransferringFds) | Ok(ExecutionPhase::GracefulTerminate) => {
                    if !self.state.draining.swap(true, Ordering::AcqRel) {
                        log::info!("draining: answers now close their connections");
                    }
                }
                Ok(ExecutionPhase::ShutdownGracePeriod) => {
                    self.state.draining.store(true, Ordering::Release);
                    log::info!(
                        "waiting for {} request(s) in flight before exiting",
                        self.state.inflight.load(Ordering::Acquire)
                    );
                    self.exit_when_idle().await;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
