//! The `aigw` binary.

use std::process::exit;

use clap::Parser;
use pingora::proxy::http_proxy_service;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;

use aigw::cli::Cli;
use aigw::config::GatewayConfig;
use aigw::reload::Reloader;
use aigw::server::{Gateway, Lifecycle, State};
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

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();

    let Some(path) = cli.config_path.clone() else {
        eprintln!("aigw: no gateway configuration: pass --config-path <file> or set {}", aigw::cli::CONFIG_ENV);
        exit(2);
    };
    // Absolute, because a daemon runs from `/`.
    let path = std::path::absolute(&path).unwrap_or(path);
    let config = match GatewayConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aigw: invalid gateway configuration: {e}");
            exit(1);
        }
    };
    if cli.pingora.test {
        println!(
            "aigw: gateway configuration {} is valid ({} endpoints, {} routes)",
            path.display(),
            config.endpoints.len(),
            config.routes.len()
        );
    }

    let listen = cli.listen_addr();
    let server_conf = match server_conf(&cli.pingora) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aigw: invalid Pingora configuration: {e}");
            exit(1);
        }
    };
    let mut server = Server::new_with_opt_and_conf(cli.pingora, server_conf);
    // With -t this validates the Pingora configuration and exits 0.
    server.bootstrap();

    let upstreams = Upstreams::new(&server.configuration, Upstreams::route_timeout_from_env());
    let state = State::new(config, upstreams);
    let phases = server.watch_execution_phase();
    server.add_service(background_service("config reload", Reloader::new(state.clone(), path.clone())));
    server.add_service(background_service("lifecycle", Lifecycle::new(state.clone(), phases)));
    let mut service = http_proxy_service(&server.configuration, Gateway::new(state));
    service.add_tcp(&listen);
    log::info!("aigw {} listening on http://{listen} with {}", env!("CARGO_PKG_VERSION"), path.display());
    server.add_service(service);
    server.run_forever();
}
