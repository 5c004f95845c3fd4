//! A fast mock provider for the load benchmark (`scripts/bench.sh`): answers from prebuilt
//! bytes, keeps connections alive, and writes streams as separate chunks.
//!
//! ```text
//! cargo run --release --example bench_upstream -- 127.0.0.1:18080
//! ```
//!
//! * `POST /v1/chat/completions`: an OpenAI chat completion, or with `"stream":true` a
//!   20-chunk OpenAI stream (plus the finish, usage and `[DONE]` events);
//! * `POST /v1/embeddings`: one 1536-dimension embedding;
//! * `POST /v1/messages`: an Anthropic message, or a 20-delta Anthropic stream.

// A measuring tool: unwrap, expect and panic stop the run, which is what a failure should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNKS: usize = 20;

struct Answers {
    chat: Vec<u8>,
    chat_stream: Vec<Vec<u8>>,
    embeddings: Vec<u8>,
    messages: Vec<u8>,
    messages_stream: Vec<Vec<u8>>,
}

fn json_response(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

fn answers() -> Answers {
    let words: Vec<String> = (0..CHUNKS).map(|i| format!(" word{i}")).collect();
    let chat = json_response(
        r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"This is a benchmark answer of a typical short length."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}}"#,
    );
    let mut chat_stream =
        vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
    let head = r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"#;
    chat_stream.push(chunk(&format!(
        "data: {head}\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
    )));
    for w in &words {
        chat_stream
            .push(chunk(&format!("data: {head}\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}]}}\n\n")));
    }
    chat_stream.push(chunk(&format!("data: {head}\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n")));
    chat_stream.push(chunk(
        "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":20,\"total_tokens\":32}}\n\n",
    ));
    chat_stream.push(chunk("data: [DONE]\n\n"));
    chat_stream.push(b"0\r\n\r\n".to_vec());

    let vector: Vec<String> = (0..1536).map(|i| format!("{:.8}", ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)).collect();
    let embeddings = json_response(&format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{}]}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":8,"total_tokens":8}}}}"#,
        vector.join(",")
    ));

    let messages = json_response(
        r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-3-5-haiku-latest","content":[{"type":"text","text":"This is a benchmark answer of a typical short length."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":11}}"#,
    );
    let mut messages_stream =
        vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
    messages_stream.push(chunk("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3-5-haiku-latest\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"));
    messages_stream.push(chunk("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"));
    for w in &words {
        messages_stream.push(chunk(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\n\n"
        )));
    }
    messages_stream.push(chunk("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"));
    messages_stream.push(chunk("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n"));
    messages_stream.push(chunk("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    messages_stream.push(b"0\r\n\r\n".to_vec());

    Answers { chat, chat_stream, embeddings, messages, messages_stream }
}

async fn serve(mut sock: TcpStream, answers: Arc<Answers>) {
    let _ = sock.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        // Read one request (header + Content-Length body).
        let (path, stream, consumed) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = req.parse(&buf) {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= head + len {
                    let body = &buf[head..head + len];
                    let stream = memchr::memmem::find(body, b"\"stream\":true").is_some();
                    break (req.path.unwrap_or("").to_owned(), stream, head + len);
                }
            }
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        buf.drain(..consumed);
        let ok = match (path.as_str(), stream) {
            ("/v1/chat/completions", false) => sock.write_all(&answers.chat).await.is_ok(),
            ("/v1/chat/completions", true) => write_pieces(&mut sock, &answers.chat_stream).await,
            ("/v1/embeddings", _) => sock.write_all(&answers.embeddings).await.is_ok(),
            ("/v1/messages", false) => sock.write_all(&answers.messages).await.is_ok(),
            ("/v1/messages", true) => write_pieces(&mut sock, &answers.messages_stream).await,
            _ => sock
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                .await
                .is_ok(),
        };
        if !ok {
            return;
        }
    }
}

async fn write_pieces(sock: &mut TcpStream, pieces: &[Vec<u8>]) -> bool {
    for p in pieces {
        if sock.write_all(p).await.is_err() {
            return false;
        }
    }
    true
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        eprintln!("bench_upstream listening on {addr}");
        let answers = Arc::new(answers());
        loop {
            if let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, answers.clone()));
            }
        }
    });
}
