//! Bedrock error paths: upstream errors in Bedrock's shape (`{"message"}` with
//! `x-amzn-errortype`) relayed with their status and message, exceptions and damaged frames
//! inside a ConverseStream answer, 501 for streamed completions, 422 for provider rules, all
//! before or without hanging the client.

use common::bedrock as bedrock_util;
#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use bedrock_util::{
    chat, config, converse_ok, endpoint, env_with, event_frame, event_stream_reply, exception_frame, start,
};
use common::sse_data;
use common::upstream::{MockUpstream, Reply};
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const CHAT: &str = "/endpoints/chat/invocations";

fn aws(base: &str) -> Value {
    json!({"aws_config": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "secret", "aws_region": "us-east-1"},
           "bedrock_api_base": base})
}

fn bedrock_error(status: u16, error_type: &str, message: &str) -> Reply {
    Reply::Raw {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-amzn-errortype".into(), format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")),
            ("x-amzn-requestid".into(), "3f1c2e4a-0000-4000-8000-000000000000".into()),
        ],
        pieces: vec![(json!({ "message": message }).to_string().into_bytes(), Duration::ZERO)],
        chunked: false,
    }
}

async fn gateway(upstream: &MockUpstream) -> common::Gateway {
    let base = upstream.url();
    start(
        &config(&[
            endpoint("chat", "llm/v1/chat", MODEL, aws(&base)),
            endpoint("titan", "llm/v1/completions", "amazon.titan-text-express-v1", aws(&base)),
            endpoint("llama", "llm/v1/completions", "meta.llama3-8b-instruct-v1:0", aws(&base)),
            endpoint("llama-chat", "llm/v1/chat", "meta.llama3-8b-instruct-v1:0", aws(&base)),
            endpoint("emb", "llm/v1/embeddings", "amazon.titan-embed-text-v1", aws(&base)),
        ]),
        &env_with(&[]),
    )
    .await
}

fn stream_request() -> Value {
    let mut r = chat("hi");
    r["stream"] = json!(true);
    r
}

#[tokio::test]
async fn validation_exception_is_400_with_the_message() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let message =
        "Malformed input request: #: extraneous key [foo] is not permitted, please reformat your input and try again.";
    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, body) = gw.post(CHAT, &chat("hi")).await;
    assert_eq!((status, body), (400, json!({ "detail": message })));

    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, body) = gw
        .post("/v1/chat/completions", &json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], message);

    // Streams: an error before the first byte is a proper HTTP error, not an empty 200.
    upstream.push(bedrock_error(400, "ValidationException", message));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({ "detail": message }));
    gw.assert_alive().await;
}

#[tokio::test]
async fn throttling_exception_is_429_on_every_call_type() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let message = "Too many requests, please wait before trying again.";

    upstream.push(bedrock_error(429, "ThrottlingException", message));
    assert_eq!(gw.post(CHAT, &chat("hi")).await, (429, json!({ "detail": message })));

    upstream.push(bedrock_error(429, "ThrottlingException", message));
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (429, json!({ "detail": message })));

    // A fan-out fails as a whole when one call fails.
    upstream.handle(move |r| {
        if r.json()["inputText"] == "b" {
            bedrock_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        } else {
            Reply::Json(200, json!({"embedding": [0.1], "inputTextTokenCount": 1}))
        }
    });
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": ["a", "b", "c"]})).await;
    assert_eq!((status, body), (429, json!({ "detail": message })));
    gw.assert_alive().await;
}

#[tokio::test]
async fn stream_exception_after_the_first_event_is_one_error_event() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let mut wire = event_frame(&json!({"messageStart": {"role": "assistant"}}));
    wire.extend(event_frame(&json!({"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}})));
    wire.extend(exception_frame("modelStreamErrorException", "The model stopped unexpectedly."));
    // Split inside the exception frame too.
    let cut = wire.len() - 20;
    upstream.push(event_stream_reply(vec![wire[..cut].to_vec(), wire[cut..].to_vec()]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "Hel");
    let err: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(err["error"]["message"], "The model stopped unexpectedly. (modelStreamErrorException)");

    // On /v1 the same, without [DONE] after the error.
    upstream.push(event_stream_reply(vec![wire.clone()]));
    let mut req = stream_request();
    req["model"] = json!("chat");
    let (status, _, text) = gw.post_text("/v1/chat/completions", &req).await;
    assert_eq!(status, 200);
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(text.contains("modelStreamErrorException"), "{text}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn damaged_or_truncated_streams_end_with_an_error_event() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let good = event_frame(&json!({"contentBlockDelta": {"delta": {"text": "ok"}, "contentBlockIndex": 0}}));
    let stop = event_frame(&json!({"messageStop": {"stopReason": "end_turn"}}));

    // A flipped payload bit: the message checksum fails.
    let mut bad = stop.clone();
    let n = bad.len();
    bad[n - 8] ^= 0x01;
    upstream.push(event_stream_reply(vec![good.clone(), bad]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("checksum"), "{text}");

    // The body ends inside a frame.
    upstream.push(event_stream_reply(vec![good.clone(), stop[..stop.len() - 5].to_vec()]));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[1].contains("ended inside a message"), "{text}");

    // Not event-stream at all (an HTML error page from a proxy, say).
    upstream.push(Reply::body(200, "text/html", "<html><body>oops</body></html>"));
    let (status, _, text) = gw.post_text(CHAT, &stream_request()).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    assert_eq!(events.len(), 1, "{text}");
    assert!(events[0].contains("\"error\""), "{text}");
    gw.assert_alive().await;
}

#[tokio::test]
async fn completions_streaming_is_501_without_an_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p", "stream": true})).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(body["detail"], "The completions streaming route is not implemented for Amazon Bedrock models.");
    let (status, _) = gw.post("/v1/completions", &json!({"model": "titan", "prompt": "p", "stream": true})).await;
    assert_eq!(status, 501);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn provider_rules_are_422_without_an_upstream_call() {
    let upstream = MockUpstream::start().await;
    let gw = gateway(&upstream).await;
    let (status, body) = gw.post("/endpoints/llama/invocations", &json!({"prompt": "p"})).await;
    assert_eq!((status, body), (422, json!({"detail": "Unknown Amazon Bedrock model type None"})));
    let (status, body) = gw.post("/endpoints/titan/invocations", &json!({"prompt": "p", "n": 2})).await;
    assert_eq!((status, body), (422, json!({"detail": "'n' must be '1' for AWS Titan models. Received value: '2'."})));
    let bad_args = json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
    ]});
    let (status, body) = gw.post(CHAT, &bad_args).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = gw.post("/endpoints/emb/invocations", &json!({"input": [1, 2, 3]})).await;
    assert_eq!(status, 422, "{body}");
    assert!(upstream.requests().is_empty());

    // Chat goes through Converse for any model family.
    upstream.push(Reply::Json(200, converse_ok("llama says hi")));
    let (status, body) = gw.post("/endpoints/llama-chat/invocations", &chat("hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "llama says hi");
    assert_eq!(upstream.last().target, "/model/meta.llama3-8b-instruct-v1%3A0/converse");
}
