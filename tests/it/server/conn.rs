//! The per-connection guard (`src/server/conn.rs`): the request-header deadline, JSON bodies for
//! what Pingora refuses before a request exists, the connection cap and the idle timeout.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Gateway, free_port, yaml};
use serde_json::{Value, json};

fn mock(name: &str) -> Value {
    json!({"name": name, "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"reply": format!("from {name}")}}})
}

fn ask() -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}]})
}

/// Send `request` on a fresh connection and read the answer until the server closes (or 10 s).
fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(request).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of a raw HTTP/1.1 answer.
fn raw_body(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Before a request reaches the gateway: a header trickled in too slowly gets a JSON 408 and
/// the connection closes (an idle kept-alive connection does not); what Pingora refuses itself
/// (malformed request line, too many headers) gets its status with a JSON body in the route
/// family's shape; each is counted.
#[tokio::test]
async fn header_deadline_and_json_for_unreadable_requests() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")],
        "aigw": {"limits": {"header_read_timeout_s": 1}}})))
    .await;
    // Slowloris: one header byte every 200 ms keeps each read under Pingora's per-read timeout.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    let mut trickle = sock.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle().take(100) {
            std::thread::sleep(Duration::from_millis(200));
            if trickle.write_all(&[*b]).is_err() {
                return true;
            }
        }
        false
    });
    sock.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
    assert!(raw_body(&answer)["error"]["message"].as_str().unwrap().contains("did not arrive within 1 s"), "{answer}");
    assert!(writer.join().unwrap(), "the connection was closed on the slow client");

    // A kept-alive connection may sit idle between requests longer than the header deadline.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let get = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut buf = [0u8; 4096];
    for round in 0..2 {
        if round == 1 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        sock.write_all(get).unwrap();
        let n = sock.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
    }

    // Pingora's own refusals, now JSON: a malformed request line (MLflow's shape) ...
    let answer = raw_exchange(gw.port, b"GARBAGE\x01 LINE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(raw_body(&answer)["detail"].as_str().unwrap().contains("could not be read"), "{answer}");
    // ... and more than 256 headers on a /v1 path (OpenAI's shape).
    let mut many = b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..300 {
        many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answer = raw_exchange(gw.port, &many);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(raw_body(&answer)["error"]["type"], "invalid_request_error", "{answer}");

    gw.assert_alive().await;
    let text = gw.client.get(gw.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("aigw_rejected_total{reason=\"header_timeout\"} 1"), "{text}");
    assert!(text.contains("aigw_rejected_total{reason=\"bad_request\"} 2"), "{text}");
}

/// `aigw.limits.max_connections`: a connection over the cap gets a JSON 503 and is closed;
/// once connections close, new ones are served again.
#[tokio::test]
async fn connection_cap() {
    let health_port = free_port();
    let gw = Gateway::start(&yaml(&json!({"endpoints": [mock("chat")], "aigw": {
        "health_listen": format!("127.0.0.1:{health_port}"), "limits": {"max_connections": 3}}})))
    .await;
    let mut open = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut buf = [0u8; 1024];
        match sock.read(&mut buf) {
            Ok(n) if n > 0 => {
                refused = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
                break;
            }
            _ => open.push(sock),
        }
    }
    let refused = refused.expect("a connection over the cap was refused");
    assert!(open.len() <= 3 && !open.is_empty(), "{} connections were kept", open.len());
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(raw_body(&refused)["detail"].as_str().unwrap().contains("too many open connections"), "{refused}");
    // The health-only listener still answers while the main one is full.
    let health = common::client().get(format!("http://127.0.0.1:{health_port}/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Ok(r) = common::client().get(gw.url("/metrics")).send().await
            && r.status().is_success()
        {
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "never served again after the connections closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("aigw_rejected_total{reason=\"too_many_connections\"}"), "{text}");
    assert!(text.contains("aigw_connections "), "{text}");
}

/// `aigw.limits.idle_timeout_s`: a connection with no request in progress is closed, before
/// its first request and after one alike; a request in progress longer than that is not cut.
#[tokio::test]
async fn idle_connections_are_closed() {
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        {"name": "slow", "endpoint_type": "llm/v1/chat", "model": {"provider": "mock", "config": {"latency_ms": 2000}}}],
        "aigw": {"limits": {"idle_timeout_s": 1}}})))
    .await;
    let closed_within = |sock: &mut std::net::TcpStream| {
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        matches!(sock.read(&mut buf), Ok(0))
    };
    // Never sent anything.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    assert!(closed_within(&mut silent), "an idle new connection was closed");
    // Idle after a request (Pingora alone would keep it forever).
    let mut used = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    used.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    used.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = used.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut used), "an idle kept-alive connection was closed");
    // A request that takes longer than the idle timeout is answered (a fresh client: the
    // harness's pooled connection was closed while this test blocked the runtime).
    let r = common::client().post(gw.url("/endpoints/slow/invocations")).json(&ask()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
