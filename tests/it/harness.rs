//! The test harness's own guarantees (tests/it/common): a gateway port is never one that `bind(0)`
//! hands to mock upstreams, and `Gateway::start` only returns once the answering socket is the
//! gateway process's own (a run of `vertex_ai` once talked to another test's token server that
//! had been given the gateway's released port, while the gateway waited for it).

use crate::common::{Gateway, free_port, listens_on};

#[test]
fn gateway_ports_are_outside_the_ephemeral_range() {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let ports: std::collections::HashSet<u16> = (0..64).map(|_| free_port()).collect();
    assert!(ports.iter().all(|&p| (10_000..low).contains(&p)), "{ports:?}");
    assert!(ports.len() > 32, "ports are spread out: {ports:?}");
    // A mock upstream's port (bind 0) is ephemeral, so never one of those.
    let mock = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    assert!(mock >= low, "{mock}");
}

#[tokio::test]
async fn a_started_gateway_owns_its_listening_socket() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    assert_eq!(listens_on(std::process::id(), held_port), Some(true));

    let gw = Gateway::start("endpoints: [{name: chat, endpoint_type: llm/v1/chat, model: {provider: mock}}]").await;
    assert_eq!(listens_on(gw.pid(), gw.port), Some(true));
    assert_eq!(listens_on(gw.pid(), held_port), Some(false));
    assert_eq!(listens_on(std::process::id(), gw.port), Some(false));
    gw.assert_alive().await;
}
