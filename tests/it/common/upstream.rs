//! A real HTTP/1.1 server on loopback that plays a provider: it records every request it
//! receives and answers from a script, including misbehaviour (hangs, resets, garbage, bodies
//! split at chosen points). Used by the integration tests and by the load benchmark.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A minimal valid OpenAI answer for a request to `target`: an embeddings list, a chat
/// completion or a text completion, by the path.
pub fn openai_answer(target: &str) -> serde_json::Value {
    let path = target.split('?').next().unwrap_or_default();
    if path.ends_with("/embeddings") {
        serde_json::json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
               "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    } else if path.ends_with("/chat/completions") {
        serde_json::json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    } else {
        serde_json::json!({"id": "c", "object": "text_completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream received a JSON body")
    }
}

/// How the upstream answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON answer with `Content-Length`.
    Json(u16, serde_json::Value),
    /// Any status, headers and body pieces; each piece is written after its delay. With
    /// `chunked`, pieces are sent as chunked transfer-encoding chunks, else with `Content-Length`.
    Raw { status: u16, headers: Vec<(String, String)>, pieces: Vec<(Vec<u8>, Duration)>, chunked: bool },
    /// Close the connection without answering.
    Close,
    /// Send the status line and headers of a chunked answer, some body pieces, then close
    /// abruptly (a reset in the middle of the body).
    CutAfter { status: u16, content_type: String, pieces: Vec<Vec<u8>> },
    /// Wait, then answer.
    Delay(Duration, Box<Reply>),
    /// Raw bytes on the wire (not HTTP).
    Garbage(Vec<u8>),
    /// Answer with the inner reply (keep-alive, as far as the client can tell), wait, then
    /// close the connection: a server dropping an idle keep-alive connection.
    CloseAfter(Box<Reply>, Duration),
}

impl Reply {
    /// An SSE answer sent as chunked pieces, one per element, with `delay` between them.
    pub fn sse(pieces: Vec<Vec<u8>>, delay: Duration) -> Reply {
        Reply::Raw {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            pieces: pieces.into_iter().map(|p| (p, delay)).collect(),
            chunked: true,
        }
    }

    /// A body with a content type.
    pub fn body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Raw {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            pieces: vec![(body.into(), Duration::ZERO)],
            chunked: false,
        }
    }
}

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct Shared {
    connections: std::sync::atomic::AtomicUsize,
    closed: std::sync::atomic::AtomicUsize,
    /// Connections the client closed while a reply was still being made (a delay or a pause
    /// between pieces of the answer).
    peer_closed: std::sync::atomic::AtomicUsize,
    log: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Reply>>,
    handler: Mutex<Option<Arc<Handler>>>,
}

/// The mock upstream. Answers queued replies first, then the handler's, then 500.
#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockUpstream {
    /// Start on a free loopback port (plain HTTP).
    pub async fn start() -> MockUpstream {
        Self::start_with(None).await
    }

    /// Start with TLS, serving `acceptor`'s certificate.
    pub async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> MockUpstream {
        Self::start_with(Some(acceptor)).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock upstream");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            connections: std::sync::atomic::AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicUsize::new(0),
            peer_closed: std::sync::atomic::AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            handler: Mutex::new(None),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { continue };
                let _ = sock.set_nodelay(true);
                s.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acc) => {
                            if let Ok(stream) = acc.accept(sock).await {
                                serve(stream, s.clone()).await;
                            }
                        }
                        None => serve(sock, s.clone()).await,
                    }
                    s.closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        MockUpstream { addr, shared }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer the next request with `reply` (queued replies go first, in order).
    pub fn push(&self, reply: Reply) {
        self.shared.queue.lock().unwrap().push_back(reply);
    }

    /// Answer every request (after the queue) with what `f` returns.
    pub fn handle(&self, f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.shared.handler.lock().unwrap() = Some(Arc::new(f));
    }

    /// Always answer with this JSON.
    pub fn always_json(&self, status: u16, body: serde_json::Value) {
        self.handle(move |_| Reply::Json(status, body.clone()));
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the upstream received a request")
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections this server has closed (or seen closed) so far.
    pub fn closed(&self) -> usize {
        self.shared.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections the client (the gateway) closed while this server was still answering on
    /// them: during a `Delay` or a pause between the pieces of an answer.
    pub fn peer_closed(&self) -> usize {
        self.shared.peer_closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn clear(&self) {
        self.shared.log.lock().unwrap().clear();
    }
}

/// Wait `d`, unless the client closes the connection first (counted in `peer_closed`; then
/// false: the answer is abandoned).
async fn pause<S: AsyncRead + Unpin>(sock: &mut S, d: Duration, shared: &Shared) -> bool {
    let mut probe = [0u8; 1];
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = sock.read(&mut probe) => {
            shared.peer_closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let Some(req) = read_request(&mut sock, &mut buf).await else { return };
        shared.log.lock().unwrap().push(req.clone());
        let reply = {
            let queued = shared.queue.lock().unwrap().pop_front();
            match queued {
                Some(r) => r,
                None => match shared.handler.lock().unwrap().clone() {
                    Some(h) => h(&req),
                    None => Reply::Json(500, serde_json::json!({"error": {"message": "mock upstream has no reply"}})),
                },
            }
        };
        if !write_reply(&mut sock, reply, &shared).await {
            return;
        }
    }
}

async fn read_request<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>) -> Option<Recorded> {
    let mut tmp = [0u8; 65536];
    // Header.
    let (head_len, method, target, headers) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut hs);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            break (n, req.method?.to_owned(), req.path?.to_owned(), headers);
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    buf.drain(..head_len);
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            let n = sock.read(&mut tmp).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        body.extend(buf.drain(..len));
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let n = sock.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let n = sock.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    Some(Recorded { method, target, headers, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Write one reply; false when the connection must close.
async fn write_reply<S: AsyncRead + AsyncWrite + Unpin>(sock: &mut S, reply: Reply, shared: &Shared) -> bool {
    match reply {
        Reply::Json(status, v) => {
            let body = serde_json::to_vec(&v).unwrap();
            let head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                reason(status),
                body.len()
            );
            sock.write_all(head.as_bytes()).await.is_ok()
                && sock.write_all(&body).await.is_ok()
                && sock.flush().await.is_ok()
        }
        Reply::Raw { status, headers, pieces, chunked } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if chunked {
                head.push_str("transfer-encoding: chunked\r\n\r\n");
            } else {
                let len: usize = pieces.iter().map(|(p, _)| p.len()).sum();
                head.push_str(&format!("content-length: {len}\r\n\r\n"));
            }
            if sock.write_all(head.as_bytes()).await.is_err() || sock.flush().await.is_err() {
                return false;
            }
            for (piece, delay) in pieces {
                if !delay.is_zero() && !pause(sock, delay, shared).await {
                    return false;
                }
                if piece.is_empty() {
                    continue;
                }
                let ok = if chunked {
                    let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                    framed.extend_from_slice(&piece);
                    framed.extend_from_slice(b"\r\n");
                    sock.write_all(&framed).await.is_ok()
                } else {
                    sock.write_all(&piece).await.is_ok()
                };
                if !ok || sock.flush().await.is_err() {
                    return false;
                }
            }
            if chunked && (sock.write_all(b"0\r\n\r\n").await.is_err() || sock.flush().await.is_err()) {
                return false;
            }
            true
        }
        Reply::Close => false,
        Reply::CutAfter { status, content_type, pieces } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n",
                reason(status)
            );
            let _ = sock.write_all(head.as_bytes()).await;
            for piece in pieces {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(&piece);
                framed.extend_from_slice(b"\r\n");
                let _ = sock.write_all(&framed).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        }
        Reply::Delay(d, inner) => pause(sock, d, shared).await && Box::pin(write_reply(sock, *inner, shared)).await,
        Reply::Garbage(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.flush().await;
            false
        }
        Reply::CloseAfter(inner, d) => {
            if Box::pin(write_reply(sock, *inner, shared)).await {
                tokio::time::sleep(d).await;
            }
            false
        }
    }
}
