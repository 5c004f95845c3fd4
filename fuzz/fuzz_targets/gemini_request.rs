//! Fuzz target `gemini_request`: arbitrary bytes as a Gemini `GenerateContentRequest` body.
//!
//! `api::gemini::parse` must never panic. A refusal is a 400 on the Gemini client API whose
//! Google-shaped body (`{"error": {"code", "message", "status"}}`) is JSON with a message. An
//! accepted body keeps the body as sent (for a provider that speaks Gemini's API) and, unless a
//! feature only Google serves was found, translates into a chat request that serialises and
//! validates again unchanged, with at least one message.

#![no_main]

use aigw::api::gemini::parse;
use aigw::error::Family;
use aigw::schema::{EndpointType, request_from_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let stream = data.first().is_some_and(|b| b & 1 == 1);
    match parse("chat", data, stream) {
        Ok(parsed) => {
            assert_eq!(parsed.model, "chat", "the URL names the endpoint");
            let sent: Value = match serde_json::from_slice(data) {
                Ok(v) => v,
                Err(e) => panic!("an accepted body is not JSON: {e}"),
            };
            assert_eq!(Value::Object(parsed.native.clone()), sent, "the native body differs from the one sent");
            assert_eq!(parsed.request.stream(), stream, "the method decides the stream");
            if parsed.native_only.is_none() {
                match request_from_value(EndpointType::Chat, Value::Object(parsed.request.body.clone())) {
                    Ok(again) => assert_eq!(again.body, parsed.request.body, "re-validation changed the body"),
                    Err(e) => panic!("the translation is not a valid chat request: {:?}", e.0),
                }
                assert!(!parsed.request.messages().is_empty(), "a translation without messages");
            }
        }
        Err(e) => {
            assert_eq!(e.status_for(Family::Gemini), 400, "{e}");
            let body: Value = match serde_json::from_slice(&e.body(Family::Gemini)) {
                Ok(v) => v,
                Err(err) => panic!("an error body that is not JSON: {err}"),
            };
            assert_eq!(body["error"]["status"], Value::from("INVALID_ARGUMENT"), "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }
});
