//! Upstream faults: timeouts → 504, refused/reset/garbage → 502, unusable bodies → 502,
//! upstream errors relayed with their status and message; on streams, an error before the
//! first byte is a proper HTTP error and an error after it is one error event. HTTPS upstreams
//! are verified against the system roots (here a private CA via `SSL_CERT_FILE`) with SNI = host.

use std::io::Write;
use std::time::Duration;

use super::{NATIVE, V1, chat, chat_ok, config, tls_acceptor, v1_chat};
use crate::common;
use crate::common::upstream::{MockUpstream, Reply};
use crate::common::{Gateway, free_port, sse_data};
use serde_json::{Value, json};

#[tokio::test]
async fn timeouts_are_504() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start_with(
        &config(&format!("{}/v1", upstream.url())),
        &[("MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS", "1")],
        &[],
    )
    .await;
    upstream.push(Reply::Delay(Duration::from_secs(3), Box::new(Reply::Json(200, chat_ok()))));
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 504, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("did not answer within 1 s"), "{body}");

    upstream.push(Reply::Delay(Duration::from_secs(3), Box::new(Reply::Json(200, chat_ok()))));
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["type"], "timeout_error");

    // A stream that stalls after its first event: the client gets that event, then one error event.
    upstream.push(Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![
            (b"data: {\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n".to_vec(), Duration::ZERO),
            (b"data: [DONE]\n\n".to_vec(), Duration::from_secs(3)),
        ],
        chunked: true,
    });
    let (status, _, text) = gw.post_text(V1, &v1_chat(true)).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(err["error"]["type"], "timeout_error", "{text}");
    assert!(!text.contains("[DONE]"));
    gw.assert_alive().await;
}

#[tokio::test]
async fn unreachable_upstreams_are_502() {
    // Nothing listens on this port.
    let gw = Gateway::start(&config(&format!("http://127.0.0.1:{}/v1", free_port()))).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("connection refused"), "{body}");
    let (status, body) = gw.post(V1, &v1_chat(true)).await;
    assert_eq!(status, 502, "a failing stream request is a JSON error, not an empty 200: {body}");
    assert_eq!(body["error"]["type"], "bad_gateway_error");
    gw.assert_alive().await;

    let gw = Gateway::start(&config("http://no-such-host.invalid/v1")).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("cannot resolve"), "{body}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn broken_answers_are_502() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Close, "connection"),
        (Reply::Garbage(b"SSH-2.0-OpenSSH_9.0\r\n".to_vec()), "invalid HTTP answer"),
        (
            Reply::CutAfter {
                status: 200,
                content_type: "application/json".into(),
                pieces: vec![b"{\"id\": \"x\", \"choi".to_vec()],
            },
            "connection",
        ),
        (Reply::body(200, "text/html", "<html>maintenance</html>"), "Received content type: text/html"),
        (Reply::body(200, "application/json", "{\"choices\": [tru"), "cannot read"),
        (Reply::body(200, "application/json", "[1, 2]"), "cannot read"),
    ];
    for (reply, needle) in cases {
        upstream.push(reply.clone());
        let (status, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 502, "{reply:?}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{reply:?}: {detail}");
        gw.assert_alive().await;
    }
    // Works again afterwards.
    upstream.push(Reply::Json(200, chat_ok()));
    let (status, _) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn upstream_errors_are_relayed_with_status_and_message() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;

    upstream.push(Reply::Json(
        429,
        json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests"}}),
    ));
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!((status, body), (429, json!({"detail": "Rate limit reached for gpt-4o-mini"})));

    upstream.push(Reply::Json(
        429,
        json!({"error": {"message": "Rate limit reached for gpt-4o-mini", "type": "requests"}}),
    ));
    let (status, body) = gw.post(V1, &v1_chat(false)).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["message"], "Rate limit reached for gpt-4o-mini");

    upstream.push(Reply::body(503, "text/plain", "upstream overloaded"));
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!((status, body), (503, json!({"detail": {"message": "upstream overloaded"}})));

    // MLflow crashes with a 500 on {"error": "<string>"}; aigw relays it.
    upstream.push(Reply::Json(500, json!({"error": "internal failure"})));
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!((status, body), (500, json!({"detail": "internal failure"})));

    // On a stream request an upstream error arrives before any byte was sent: HTTP error, JSON.
    upstream.push(Reply::Json(401, json!({"error": {"message": "Incorrect API key provided"}})));
    let (status, ct, text) = gw.post_text(V1, &v1_chat(true)).await;
    assert_eq!(status, 401, "{text}");
    assert!(ct.starts_with("application/json"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["message"], "Incorrect API key provided");
    gw.assert_alive().await;
}

#[tokio::test]
async fn stream_cut_mid_way_ends_with_one_error_event() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let first = b"data: {\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_vec();
    for path in [NATIVE, V1] {
        upstream.push(Reply::CutAfter {
            status: 200,
            content_type: "text/event-stream".into(),
            pieces: vec![first.clone(), b"data: {\"id\":\"s\",\"cre".to_vec()],
        });
        let body = if path == V1 { v1_chat(true) } else { chat(true) };
        let (status, _, text) = gw.post_text(path, &body).await;
        assert_eq!(status, 200);
        let events = sse_data(&text);
        assert_eq!(events.len(), 2, "{path}: {text}");
        let chunk: Value = serde_json::from_str(&events[0]).unwrap();
        assert_eq!(chunk["choices"][0]["delta"]["content"], "Hel");
        let err: Value = serde_json::from_str(&events[1]).unwrap();
        assert!(err["error"]["message"].is_string(), "{text}");
        assert!(err["error"]["type"].is_string(), "{text}");
        assert!(!text.contains("[DONE]"), "an errored stream does not claim completion");
    }
    // An upstream error event inside the stream is passed on the same way.
    upstream.push(Reply::sse(
        vec![
            first.clone(),
            b"data: {\"error\": {\"message\": \"The server had an error\", \"type\": \"server_error\"}}\n\n".to_vec(),
        ],
        Duration::ZERO,
    ));
    let (_, _, text) = gw.post_text(V1, &v1_chat(true)).await;
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("The server had an error"));
    gw.assert_alive().await;
}

#[tokio::test]
async fn gzip_answers_are_decoded() {
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&serde_json::to_vec(&chat_ok()).unwrap()).unwrap();
    let gz = enc.finish().unwrap();
    upstream.push(Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into()), ("content-encoding".into(), "gzip".into())],
        pieces: vec![(gz[..10].to_vec(), Duration::ZERO), (gz[10..].to_vec(), Duration::from_millis(5))],
        chunked: true,
    });
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "ok");
    assert_eq!(upstream.last().header("accept-encoding"), Some("identity"));
}

#[tokio::test]
async fn keep_alive_to_the_upstream_is_reused() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, chat_ok());
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    for _ in 0..5 {
        let (status, _) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(upstream.requests().len(), 5);
    assert_eq!(upstream.connections(), 1, "the pooled upstream connection is reused");
}

#[tokio::test]
async fn https_upstream_with_system_roots_and_sni() {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca, sni) = tls_acceptor(dir.path(), &["localhost"]);
    let upstream = MockUpstream::start_tls(acceptor).await;
    upstream.always_json(200, chat_ok());
    let port = upstream.addr.port();
    let ca = ca.to_str().unwrap();

    // The name in the certificate: verified and answered, with SNI = the host.
    let gw = Gateway::start_with(&config(&format!("https://localhost:{port}/v1")), &[("SSL_CERT_FILE", ca)], &[]).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    assert_eq!(upstream.last().header("host"), Some(format!("localhost:{port}").as_str()));
    assert_eq!(sni.lock().unwrap().as_slice(), [Some("localhost".to_owned())]);

    // An address the certificate does not name: refused, 502, no request reaches the server.
    upstream.clear();
    let gw = Gateway::start_with(&config(&format!("https://127.0.0.1:{port}/v1")), &[("SSL_CERT_FILE", ca)], &[]).await;
    let (status, body) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{body}");
    assert!(upstream.requests().is_empty());

    // Without the CA in the trust store: refused too.
    let gw = Gateway::start(&config(&format!("https://localhost:{port}/v1"))).await;
    let (status, _) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 502);
    gw.assert_alive().await;
}

#[tokio::test]
async fn stream_events_are_relayed_while_the_upstream_is_still_sending() {
    // Two events at once, then the upstream holds the stream for a minute: the client must get
    // both translated events long before that (aigw batches only what has already arrived).
    let upstream = MockUpstream::start().await;
    let gw = Gateway::start(&config(&format!("{}/v1", upstream.url()))).await;
    let event = |text: &str| {
        format!("data: {{\"id\":\"s\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
            .into_bytes()
    };
    upstream.push(Reply::Raw {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        pieces: vec![
            (event("one"), Duration::ZERO),
            (event("two"), Duration::ZERO),
            (b"data: [DONE]\n\n".to_vec(), Duration::from_secs(60)),
        ],
        chunked: true,
    });
    let mut response = gw.client.post(gw.url(V1)).json(&v1_chat(true)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut received = String::new();
    let both = tokio::time::timeout(Duration::from_secs(20), async {
        while !received.contains("\"two\"") {
            let Some(bytes) = response.chunk().await.unwrap() else { break };
            received.push_str(&String::from_utf8_lossy(&bytes));
        }
    })
    .await;
    assert!(both.is_ok(), "events held back until the upstream finished: {received:?}");
    let events = sse_data(&received);
    assert_eq!(events.len(), 2, "{received}");
    assert!(events[0].contains("\"one\"") && events[1].contains("\"two\""), "{received}");
    drop(response);
    gw.assert_alive().await;
}

/// An upstream that read the whole request and then closed the connection without answering
/// may have acted on it (a billed completion): the client gets a 502, and the request is not
/// sent again on another connection.
#[tokio::test]
async fn a_request_the_upstream_read_is_never_sent_twice() {
    let upstream = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pingora_conf = super::one_worker(dir.path());
    let gw =
        Gateway::start_with(&config(&format!("{}/v1", upstream.url())), &[], &["-c", pingora_conf.to_str().unwrap()])
            .await;
    // The first request leaves the connection pooled, alive.
    upstream.push(Reply::Json(200, chat_ok()));
    let (status, _) = gw.post(NATIVE, &chat(false)).await;
    assert_eq!(status, 200);
    // The second goes out on that connection; the upstream reads all of it, then closes.
    upstream.push(Reply::Close);
    // Were it sent again, this would answer it.
    upstream.always_json(200, chat_ok());
    let (status, ct, text) = gw.post_text(NATIVE, &chat(false)).await;
    assert_eq!(status, 502, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["detail"].as_str().unwrap().contains("connection"), "{body}");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2, "the upstream saw the second request exactly once");
    assert_eq!(requests[1].json()["messages"][0]["content"], "hi");
    assert_eq!(upstream.connections(), 1, "no second connection was opened to resend it");

    // The same on /v1, for a stream request: a JSON error, no stream.
    upstream.clear();
    upstream.push(Reply::Close);
    let (status, ct, text) = gw.post_text(V1, &v1_chat(true)).await;
    assert_eq!(status, 502, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["type"], "bad_gateway_error", "{body}");
    assert_eq!(upstream.requests().len(), 1, "sent once");
    gw.assert_alive().await;
}

/// Wait until the mock upstream has closed `n` connections and its FIN has reached the gateway's
/// socket (no socket is ESTABLISHED to the upstream any more).
async fn until_closed(upstream: &MockUpstream, n: usize) {
    let ten = Duration::from_secs(10);
    common::wait_until(ten, "the mock upstream closes the connection", || upstream.closed() >= n).await;
    let port = upstream.addr.port();
    common::wait_until(ten, "the gateway's side sees the close", || common::connected_to(port) != Some(true)).await;
}

/// A pooled connection the upstream closed while it was idle is not used: the next request
/// succeeds on a new connection (and, above, nothing is resent after a write, so using the
/// dead connection would have been a 502). Over TLS too, where the liveness check reads through
/// rustls, and a live pooled connection (with the server's session tickets unread) is reused.
#[tokio::test]
async fn a_pooled_connection_closed_while_idle_is_not_used() {
    let plain = MockUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca, _) = tls_acceptor(dir.path(), &["localhost"]);
    let tls = MockUpstream::start_tls(acceptor).await;
    let ca = ca.to_str().unwrap();
    let pingora_conf = super::one_worker(dir.path());
    let pingora_conf = pingora_conf.to_str().unwrap();
    for (upstream, base) in
        [(&plain, format!("{}/v1", plain.url())), (&tls, format!("https://localhost:{}/v1", tls.addr.port()))]
    {
        let gw = Gateway::start_with(&config(&base), &[("SSL_CERT_FILE", ca)], &["-c", pingora_conf]).await;
        upstream.always_json(200, chat_ok());
        // Live pooled connections are reused.
        for _ in 0..3 {
            assert_eq!(gw.post(NATIVE, &chat(false)).await.0, 200, "{base}");
        }
        assert_eq!(upstream.connections(), 1, "{base}: the pooled connection is reused");
        // Answered, then closed by the upstream while idle in the gateway's pool.
        upstream.push(Reply::CloseAfter(Box::new(Reply::Json(200, chat_ok())), Duration::from_millis(200)));
        let (status, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 200, "{base}: {body}");
        until_closed(upstream, 1).await;
        let (status, body) = gw.post(NATIVE, &chat(false)).await;
        assert_eq!(status, 200, "{base}: the closed connection was not used: {body}\n{}", gw.logs());
        assert_eq!(upstream.requests().len(), 5, "{base}: every request was sent once");
        assert_eq!(upstream.connections(), 2, "{base}: a new connection replaced the closed one");
        gw.assert_alive().await;
    }
}
