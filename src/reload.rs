//! Hot reload of the gateway YAML.
//!
//! A background service watches the config file's directory (and, when the file is a symlink,
//! its target's directory, followed again after every change) with `notify`. Events are debounced; then the file is read and, if
//! its content changed since the last load, validated and swapped in atomically. Comparing the
//! content instead of event file names makes every kind of update work — in-place edits,
//! atomic renames, Kubernetes ConfigMap symlink swaps (which change `..data`, not the file's
//! own name) — and makes unrelated files in the same directory (a log file) harmless.
//!
//! * An invalid file is logged (what and where, never a secret) and the current configuration
//!   keeps serving; a deleted file keeps it too.
//! * `SIGHUP` forces a reload even when the file is unchanged (it re-reads `$ENV` and file
//!   secrets, e.g. after a key rotation).
//! * Requests in flight finish on the snapshot they started with; quota counters of unchanged
//!   endpoints are kept (they live outside the snapshot).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use crate::server::State;
use crate::snapshot::Snapshot;

/// Quiet time after the last file event before reading the file.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Longest wait after the first event of a burst (a busy directory never goes quiet).
pub const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

/// The reload service.
pub struct Reloader {
    state: Arc<State>,
    path: PathBuf,
    /// Fingerprint of the file as it was when the serving configuration was loaded.
    loaded: Option<u64>,
}

impl Reloader {
    /// Reload `path` into `state`. Call it right after loading the configuration in `state`:
    /// a change made before the watcher is running is then still seen when it starts.
    pub fn new(state: Arc<State>, path: PathBuf) -> Self {
        let loaded = std::fs::read_to_string(&path).ok().map(|t| fingerprint(&t));
        Reloader { state, path, loaded }
    }

    /// Read, validate and swap in the file. `force` reloads even an unchanged file.
    async fn reload(&self, last: &mut Option<u64>, force: bool) {
        let path = self.path.clone();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if last.is_some() {
                    log::warn!("{}: the file was deleted; the current configuration keeps serving", path.display());
                    *last = None;
                }
                return;
            }
            Err(e) => {
                log::warn!("{}: cannot read the file ({e}); the current configuration keeps serving", path.display());
                return;
            }
        };
        let digest = fingerprint(&text);
        if !force && *last == Some(digest) {
            return;
        }
        *last = Some(digest);
        // Parsing reads secret files and may be large: keep it off the async workers.
        let public = self.state.public;
        let parsed = tokio::task::spawn_blocking(move || {
            let snapshot = Snapshot::parse(&text, &path)?;
            // A reload may not drop authentication from a public listener.
            snapshot.config.check_exposure(public)?;
            Ok::<_, crate::config::ConfigError>(snapshot)
        })
        .await;
        let metrics = &self.state.metrics;
        match parsed {
            Ok(Ok(snapshot)) => {
                let config = &snapshot.config;
                let (endpoints, routes) = (config.endpoints.len(), config.routes.len());
                let (listeners_changed, shared_changed) = {
                    let old = &self.state.config.load().config;
                    (
                        old.settings.tls != config.settings.tls
                            || old.settings.health_listen != config.settings.health_listen
                            || old.settings.metrics.listen != config.settings.metrics.listen,
                        self.state.limits.shared_state() != config.settings.shared_state.as_ref(),
                    )
                };
                self.state.upstreams.set_egress(&config.settings.egress);
                self.state.config.store(Arc::new(snapshot));
                metrics.generation.inc();
                metrics.reloads.with_label_values(&["ok"]).inc();
                log::info!(
                    "configuration reloaded from {} (generation {}): {endpoints} endpoints, {routes} routes",
                    self.path.display(),
                    metrics.generation.get()
                );
                if shared_changed {
                    log::warn!(
                        "aigw.shared_state (and MLFLOW_GATEWAY_RATE_LIMITS_STORAGE_URI) is read at start: the change \
                         applies after a restart or upgrade; limits and budgets themselves apply now"
                    );
                }
                if listeners_changed {
                    log::warn!(
                        "aigw.tls, aigw.health_listen and aigw.metrics.listen are bound at start: the change \
                         applies after a restart or upgrade"
                    );
                }
            }
            Ok(Err(e)) => {
                metrics.reloads.with_label_values(&["rejected"]).inc();
                log::error!("configuration reload rejected; the current configuration keeps serving: {e}");
            }
            Err(e) => {
                metrics.reloads.with_label_values(&["rejected"]).inc();
                log::error!("configuration reload failed: {e}");
            }
        }
    }
}

/// A cheap content fingerprint (not security relevant).
fn fingerprint(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// What to watch for `path`: the directories holding each link of the way to the file — the
/// path itself, every symlink it goes through (the file's, and any directory's on the way, as
/// in `/etc/aigw/gateway.yaml -> /srv/cfg/current/gateway.yaml` with `current -> releases/v2`),
/// and the final file — and the names in them whose change matters. Kubernetes' atomic-update
/// entries (`..data`, `..2024_…`) always matter (see [`is_relevant`]); events that name only
/// other files (a log file in the same directory) are ignored.
fn watch_set(path: &Path) -> (Vec<PathBuf>, Vec<std::ffi::OsString>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    let mut add = |entry: &Path| {
        let (Some(parent), Some(name)) = (entry.parent(), entry.file_name()) else { return };
        let dir = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.to_path_buf() };
        // Watched by what the directory is now (a symlinked directory's target changes when
        // the link is repointed, and the watch must follow).
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    let mut next = Some(path.to_path_buf());
    // Bounded like the kernel's own symlink resolution.
    for _ in 0..40 {
        let Some(p) = next.take() else { break };
        add(&p);
        // Symlinked directories on the way to `p`.
        for ancestor in p.ancestors().skip(1) {
            if std::fs::symlink_metadata(ancestor).is_ok_and(|m| m.file_type().is_symlink()) {
                add(ancestor);
            }
        }
        if let Ok(target) = std::fs::read_link(&p) {
            next = Some(if target.is_absolute() { target } else { p.parent().unwrap_or(Path::new(".")).join(target) });
        }
    }
    if let Ok(real) = std::fs::canonicalize(path) {
        add(&real);
    }
    (dirs, names)
}

fn is_relevant(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    event.paths.is_empty()
        || event.paths.iter().any(|p| match p.file_name() {
            Some(n) => names.iter().any(|m| m == n) || n.to_string_lossy().starts_with(".."),
            None => true,
        })
}

/// Watch the directories `path` needs (see [`watch_set`]) and keep `names` current: a
/// symlink may be repointed to a file of another name or in another directory, which later
/// edits must still reach. Directories no longer needed are unwatched. True when a directory
/// was added: a change made in it before its watch began was missed, so the caller checks the
/// file once more.
fn rewatch(
    watcher: &mut Option<notify::RecommendedWatcher>,
    path: &Path,
    names: &std::sync::RwLock<Vec<std::ffi::OsString>>,
    dirs: &mut Vec<PathBuf>,
) -> bool {
    use notify::Watcher;
    let (wanted, fresh) = watch_set(path);
    match names.write() {
        Ok(mut n) => *n = fresh,
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
    let Some(w) = watcher.as_mut() else { return false };
    for dir in dirs.iter().filter(|d| !wanted.contains(d)) {
        let _ = w.unwatch(dir); // it may be gone already (a replaced ConfigMap revision)
    }
    let mut added = false;
    for dir in wanted.iter().filter(|d| !dirs.contains(d)) {
        match w.watch(dir, notify::RecursiveMode::NonRecursive) {
            Ok(()) => added = true,
            Err(e) => log::error!("cannot watch {} for configuration changes: {e}", dir.display()),
        }
    }
    *dirs = wanted;
    added
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let (tx, mut events) = mpsc::channel::<()>(64);
        let names = Arc::new(std::sync::RwLock::new(Vec::new()));
        let seen = names.clone();
        // Created here, after Pingora's daemon fork: a watcher thread made before it is lost.
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && !ev.kind.is_access()
                && seen.read().is_ok_and(|names| is_relevant(&ev, &names))
            {
                let _ = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                log::error!("cannot watch the configuration for changes ({e}); SIGHUP still reloads");
                None
            }
        };
        let mut dirs = Vec::new();
        rewatch(&mut watcher, &self.path, &names, &mut dirs);
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("cannot handle SIGHUP: {e}");
                None
            }
        };
        // The file may have changed between the start-up load and the watcher's start.
        let mut last = self.loaded;
        self.reload(&mut last, false).await;
        loop {
            // A newly watched directory may have changed before its watch began (the link
            // repointed meanwhile is caught by its own event): check once more. Bounded.
            for _ in 0..4 {
                if !rewatch(&mut watcher, &self.path, &names, &mut dirs) {
                    break;
                }
                self.reload(&mut last, false).await;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    log::info!("SIGHUP: reloading {}", self.path.display());
                    self.reload(&mut last, true).await;
                }
                Some(()) = events.recv() => {
                    // Debounce: editors and deploy tools write in bursts.
                    let until = tokio::time::Instant::now() + DEBOUNCE_MAX;
                    while let Ok(Some(())) = tokio::time::timeout_at(until.min(tokio::time::Instant::now() + DEBOUNCE), events.recv()).await {}
                    self.reload(&mut last, false).await;
                }
            }
        }
    }
}
