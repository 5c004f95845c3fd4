//! The `aigw` binary.

use std::net::{IpAddr, SocketAddr};
use std::process::exit;
use std::sync::Arc;

use clap::Parser;
use pingora::proxy::http_proxy;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use aigw::audit::{AuditWriter, channel};
use aigw::cli::Cli;
use aigw::reload::Reloader;
use aigw::server::conn::Guarded;
use aigw::server::{GatewayProxy, Lifecycle, State};
use aigw::snapshot::Snapshot;
use aigw::tls::{CertStore, CertWatcher};
use aigw::upstream::Upstreams;

/// Pingora's settings: the `-c` file if given, else Pingora's defaults with one worker thread
/// per CPU (Pingora's own default is a single thread).
fn server_conf(opt: &Opt) -> pingora::Result<ServerConf> {
    if opt.conf.is_some() {
        return ServerConf::load_yaml_with_opt_override(opt);
    }
    let mut conf = ServerConf::new_with_opt_override(opt)
        .ok_or_else(|| pingora::Error::explain(pingora::ErrorType::InternalError, "default Pingora configuration"))?;
    conf.threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Ok(conf)
}

/// mimalloc instead of glibc's malloc: the request path allocates many small short-lived
/// objects across worker threads, where glibc's arenas contend (measured: see README,
/// Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether a host name or address is loopback-only.
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn fatal(message: impl std::fmt::Display) -> ! {
    eprintln!("aigw: {message}");
    exit(1);
}

fn parse_listen(what: &str, value: &str) -> SocketAddr {
    value.parse().unwrap_or_else(|_| fatal(format!("{what}: '{value}' is not an address:port")))
}

/// SIGHUP reloads the gateway YAML, but its handler is installed only when the reload service
/// starts (after Pingora's daemon fork). Until then the default action would kill the
/// process, so a SIGHUP that arrives early is ignored instead (the reload service checks the
/// file once when it starts anyway).
fn ignore_early_sighup() {
    // SAFETY: installs the SIG_IGN disposition for one signal; no handler code runs.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

fn main() {
    ignore_early_sighup();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // A panic's message may carry request data: log where it happened, not what it said.
    let with_messages = std::env::var_os("AIGW_LOG_PANIC_MESSAGES").is_some();
    std::panic::set_hook(Box::new(move |info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        if with_messages {
            log::error!("panic in thread '{thread}' at {at}: {}", info);
        } else {
            log::error!("panic in thread '{thread}' at {at} (message not logged; set AIGW_LOG_PANIC_MESSAGES=1)");
        }
    }));
    let cli = Cli::parse();

    let Some(path) = cli.config_path.clone() else {
        eprintln!("aigw: no gateway configuration: pass --config-path <file> or set {}", aigw::cli::CONFIG_ENV);
        // `-t` answers 0 (valid) or 1 (not); a usage error otherwise.
        exit(if cli.test { 1 } else { 2 });
    };
    // Absolute, because a daemon runs from `/`.
    let path = std::path::absolute(&path).unwrap_or(path);
    let snapshot = Snapshot::load(&path).unwrap_or_else(|e| fatal(format!("invalid gateway configuration: {e}")));
    let config = &snapshot.config;
    let settings = config.settings.clone();

    // No keys: loopback only, unless the operator explicitly allows otherwise.
    let public = !is_loopback(&cli.host);
    if let Err(e) = config.check_exposure(public) {
        fatal(format!("refusing to listen on {}: {e}", cli.listen_addr()));
    }
    let health_addr = settings.health_listen.as_deref().map(|a| parse_listen("aigw.health_listen", a));
    let metrics_addr = settings.metrics.listen.as_deref().map(|a| parse_listen("aigw.metrics.listen", a));
    let certs = settings
        .tls
        .as_ref()
        .map(|t| CertStore::open(&t.cert, &t.key).unwrap_or_else(|e| fatal(format!("aigw.tls: {e}"))));
    if cli.test {
        println!(
            "aigw: gateway configuration {} is valid ({} endpoints, {} routes)",
            path.display(),
            config.endpoints.len(),
            config.routes.len()
        );
    }

    let listen = cli.listen_addr();
    // A fresh start binds its own sockets (an upgrade gets them from the running process, and
    // `-t` only checks): a port already in use must stop the start with a clear error. Left to
    // Pingora, it retries for 30 s, its service thread panics, and the process stays up
    // listening on nothing (which a supervisor would take for a running gateway).
    if !cli.test && !cli.upgrade {
        let mut addrs = vec![listen.clone()];
        addrs.extend(health_addr.map(|a| a.to_string()));
        addrs.extend(metrics_addr.map(|a| a.to_string()));
        for addr in &addrs {
            if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
                fatal(format!("cannot listen on {addr}: {e}"));
            }
        }
    }
    let opt = cli.pingora_opt();
    let server_conf = server_conf(&opt).unwrap_or_else(|e| fatal(format!("invalid Pingora configuration: {e}")));
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    // With -t this validates the Pingora configuration and exits 0.
    server.bootstrap();

    let upstreams = Upstreams::new(&server.configuration, Upstreams::route_timeout_from_env());
    let (sink, audit_rx) = channel();
    let mut state = State::new(snapshot, upstreams).unwrap_or_else(|e| fatal(e));
    state.audit = Some(sink);
    state.public = public;
    state.health_addr = health_addr;
    state.metrics_addr = metrics_addr;
    let state = Arc::new(state);

    let phases = server.watch_execution_phase();
    server.add_service(background_service("config reload", Reloader::new(state.clone(), path.clone())));
    server.add_service(background_service("lifecycle", Lifecycle::new(state.clone(), phases)));
    let (for_settings, for_draining) = (state.clone(), state.clone());
    let audit = AuditWriter::new(
        audit_rx,
        Box::new(move || for_settings.config.load().config.settings.audit.clone()),
        Box::new(move || for_draining.draining.load(std::sync::atomic::Ordering::Acquire)),
    );
    server.add_service(background_service("audit", audit));

    let mut proxy = http_proxy(&server.configuration, GatewayProxy::new(state.clone()));
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(settings.limits.h2_max_streams);
    proxy.h2_options = Some(h2);
    let mut options = pingora::apps::HttpServerOptions::default();
    // HTTP/2 connections with nothing in flight close like idle HTTP/1 ones.
    options.h2_idle_timeout = Some(settings.limits.idle_timeout);
    proxy.server_options = Some(options);
    // Header deadline, JSON for Pingora's own refusals, connection cap: server::conn.
    let mut service = Service::new("aigw".to_owned(), Guarded::new(proxy, state));
    let scheme = match &certs {
        Some(store) => {
            let tls_conf = settings.tls.as_ref().unwrap_or_else(|| fatal("aigw.tls vanished"));
            let mut tls = pingora::listeners::tls::TlsSettings::intermediate(
                &tls_conf.cert.display().to_string(),
                &tls_conf.key.display().to_string(),
            )
            .unwrap_or_else(|e| fatal(format!("aigw.tls: {}", e.etype.as_str())));
            tls.set_cert_resolver(store.clone());
            if tls_conf.http2 {
                tls.enable_h2();
            }
            service.add_tls_with_settings(&listen, None, tls);
            server.add_service(background_service("tls reload", CertWatcher(store.clone())));
            "https"
        }
        None => {
            service.add_tcp(&listen);
            "http"
        }
    };
    if let Some(addr) = health_addr {
        service.add_tcp(&addr.to_string());
        log::info!("health-only listener on http://{addr}/health");
    }
    if let Some(addr) = metrics_addr {
        service.add_tcp(&addr.to_string());
        log::info!("metrics listener on http://{addr}/metrics");
        if !addr.ip().is_loopback() {
            log::warn!("aigw.metrics.listen {addr} is not loopback and serves /metrics without a key");
        }
    }
    if settings.auth.keys.is_empty() {
        if public {
            log::warn!(
                "no API keys configured and aigw.auth.allow_unauthenticated is set: anyone who reaches {listen} can use every endpoint"
            );
        } else {
            log::info!("no API keys configured: serving unauthenticated, on loopback only");
        }
    } else {
        log::info!("{} API key(s) configured; every route but /health needs one", settings.auth.keys.len());
    }
    log::info!("aigw {} listening on {scheme}://{listen} with {}", env!("CARGO_PKG_VERSION"), path.display());
    server.add_service(service);
    server.run_forever();
}
