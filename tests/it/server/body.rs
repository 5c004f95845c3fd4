//! Request bodies of any size up to `max_request_body` work on every route, including `/v1/*`
//! where the endpoint comes from the body (Pingora's 64 KiB pre-read buffer is not enough);
//! larger ones get a 413 JSON and the gateway keeps serving.

use crate::common;
use crate::common::upstream::MockUpstream;
use crate::common::{Gateway, yaml};
use serde_json::{Value, json};

const OK: fn() -> Value = || {
    json!({"id": "x", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
};

async fn gateway(upstream: &MockUpstream, extra: Value) -> Gateway {
    let mut config = json!({"endpoints": [{"name": "chat", "endpoint_type": "llm/v1/chat",
        "model": {"provider": "openai", "name": "gpt-4o-mini",
                  "config": {"openai_api_key": "sk-test", "openai_api_base": format!("{}/v1", upstream.url())}}}]});
    if !extra.is_null() {
        config["aigw"] = extra;
    }
    Gateway::start(&yaml(&config)).await
}

/// A chat request whose body is about `size` bytes, with a recognisable content.
fn big_request(size: usize, model: Option<&str>) -> (Value, String) {
    let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut req = json!({"messages": [{"role": "user", "content": text.clone()}]});
    if let Some(m) = model {
        req["model"] = json!(m);
    }
    (req, text)
}

#[tokio::test]
async fn one_and_eight_mib_bodies_reach_the_upstream_whole() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, Value::Null).await;
    for size in [1 << 20, 8 << 20] {
        let (req, text) = big_request(size, Some("chat"));
        let (status, body) = gw.post("/v1/chat/completions", &req).await;
        assert_eq!(status, 200, "{body}");
        let got = upstream.last().json();
        assert_eq!(got["messages"][0]["content"].as_str().unwrap().len(), text.len());
        assert!(got["messages"][0]["content"] == json!(text), "upstream received the content whole");
        assert_eq!(got["model"], "gpt-4o-mini");
        assert_eq!(upstream.last().header("content-length").unwrap(), upstream.last().body.len().to_string());
    }
    // Native route too.
    let (req, text) = big_request(2 << 20, None);
    let (status, _) = gw.post("/endpoints/chat/invocations", &req).await;
    assert_eq!(status, 200);
    assert_eq!(upstream.last().json()["messages"][0]["content"], json!(text));
}

#[tokio::test]
async fn oversize_body_is_413_and_the_next_request_works() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, Value::Null).await;
    let (req, _) = big_request(17 << 20, Some("chat"));
    let (status, ct, body) = gw.post_raw("/v1/chat/completions", serde_json::to_vec(&req).unwrap()).await;
    assert_eq!(status, 413, "{body}");
    assert!(ct.starts_with("application/json"));
    assert!(body["error"]["message"].as_str().unwrap().contains("too large"), "{body}");
    assert!(upstream.requests().is_empty());

    // Native shape.
    let (req, _) = big_request(17 << 20, None);
    let (status, _, body) = gw.post_raw("/endpoints/chat/invocations", serde_json::to_vec(&req).unwrap()).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("too large"));

    // A fresh connection works.
    let fresh = common::client();
    let r = fresh
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    gw.assert_alive().await;
}

#[tokio::test]
async fn chunked_upload_over_the_configured_limit_is_413() {
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, json!({"max_request_body": "64KiB"})).await;
    // No Content-Length: the limit is found while reading.
    let (req, _) = big_request(100 << 10, Some("chat"));
    let bytes = serde_json::to_vec(&req).unwrap();
    let stream =
        futures_util::stream::iter(bytes.chunks(8192).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Under the limit is fine.
    let (req, _) = big_request(60 << 10, Some("chat"));
    let (status, _) = gw.post("/v1/chat/completions", &req).await;
    assert_eq!(status, 200);
    gw.assert_alive().await;
}

/// Bodies over 2 MiB on the other invocation routes: `/v1/embeddings` and `/v1/completions`
/// (endpoint taken from the body's `model`, which comes after the big field here) and
/// `/gateway/{name}/invocations`, each arriving whole upstream with an exact `Content-Length`.
#[tokio::test]
async fn bodies_over_two_mib_on_v1_embeddings_completions_and_gateway_route() {
    let upstream = MockUpstream::start().await;
    upstream.handle(|r| common::upstream::Reply::Json(200, common::upstream::openai_answer(&r.target)));
    let base = format!("{}/v1", upstream.url());
    let ep = |name: &str, ty: &str| {
        json!({"name": name, "endpoint_type": ty,
               "model": {"provider": "openai", "name": format!("{name}-model"), "config": {"openai_api_key": "sk-test", "openai_api_base": base}}})
    };
    let gw = Gateway::start(&yaml(&json!({"endpoints": [
        ep("emb", "llm/v1/embeddings"), ep("cmp", "llm/v1/completions"), ep("chat", "llm/v1/chat")
    ]})))
    .await;
    let text = |size: usize, seed: u8| -> String {
        (0..size).map(|i| (b'a' + ((i + seed as usize) % 26) as u8) as char).collect()
    };

    // `model` last in the JSON text, after ~2.5 MiB: the endpoint is only known once the whole body is read.
    let input = [text(1 << 20, 1), text(3 << 19, 2)];
    let body = format!(r#"{{"input": {}, "model": "emb"}}"#, serde_json::to_string(&input).unwrap()).into_bytes();
    assert!(body.len() > 2 << 20);
    let (status, _, answer) = gw.post_raw("/v1/embeddings", body).await;
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/embeddings");
    assert_eq!(sent.json(), json!({"model": "emb-model", "input": input}), "upstream received the inputs whole");
    assert_eq!(sent.header("content-length").unwrap(), sent.body.len().to_string());

    let prompt = text((2 << 20) + 12345, 3);
    let body = format!(r#"{{"prompt": {}, "max_tokens": 5, "model": "cmp"}}"#, serde_json::to_string(&prompt).unwrap());
    let (status, _, answer) = gw.post_raw("/v1/completions", body.into_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/completions");
    assert!(sent.json()["prompt"] == json!(prompt), "upstream received the prompt whole");
    assert_eq!(sent.json()["model"], "cmp-model");
    assert_eq!(sent.header("content-length").unwrap(), sent.body.len().to_string());

    let (req, content) = big_request(3 << 20, None);
    let (status, answer) = gw.post("/gateway/chat/invocations", &req).await;
    assert_eq!(status, 200, "{answer}");
    let sent = upstream.last();
    assert_eq!(sent.target, "/v1/chat/completions");
    assert!(sent.json()["messages"][0]["content"] == json!(content), "upstream received the message whole");
    assert_eq!(sent.header("content-length").unwrap(), sent.body.len().to_string());
    assert_eq!(upstream.requests().len(), 3);
}

/// Compressed request bodies (`Content-Encoding: gzip` or `zstd`, as MLflow 3's server accepts
/// zstd) are decompressed before anything else; the decompressed size is held to
/// `max_request_body` (a decompression bomb gets 413 and nothing reaches the upstream); other
/// encodings get 415 in the client API's shape.
#[tokio::test]
async fn compressed_bodies_are_decompressed_within_the_limit() {
    use std::io::Write;
    let upstream = MockUpstream::start().await;
    upstream.always_json(200, OK());
    let gw = gateway(&upstream, json!({"max_request_body": "1MiB"})).await;
    let (req, text) = big_request(200 * 1024, Some("chat"));
    let plain = serde_json::to_vec(&req).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let zst = zstd::stream::encode_all(&plain[..], 3).unwrap();
    for (encoding, body) in [("gzip", gz.finish().unwrap()), ("zstd", zst)] {
        let r = gw
            .client
            .post(gw.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{encoding}");
        let sent = upstream.last();
        assert_eq!(sent.json()["messages"][0]["content"], json!(text), "{encoding}: the upstream got the text");
        assert!(sent.header("content-encoding").is_none());
    }
    let calls = upstream.requests().len();

    // 64 MiB of JSON whitespace in a few kilobytes: refused at 1 MiB of output.
    let mut bomb = b"{\"model\":\"chat\",\"messages\":[]".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
    bomb.push(b'}');
    let bomb = zstd::stream::encode_all(&bomb[..], 19).unwrap();
    assert!(bomb.len() < 64 << 10);
    let r = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("decompressed"), "{body}");

    let r = gw
        .client
        .post(gw.url("/endpoints/chat/invocations"))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let body: Value = r.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("'br' is not supported"), "{body}");
    assert_eq!(upstream.requests().len(), calls, "nothing more reached the upstream");
    gw.assert_alive().await;
}
