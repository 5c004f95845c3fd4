//! Fuzz target `responses_request`: arbitrary bytes as an OpenAI Responses request body.
//!
//! `api::responses::parse` must never panic. An error is a 400 in the Responses family whose
//! OpenAI-shaped body is JSON with a message. An accepted body names a model; unless a field
//! only the native Responses API serves was found, its unified translation is a valid chat
//! request (`request_from_value` accepts it unchanged), and the body kept for a native
//! provider is the one sent.

#![no_main]

use aigw::api::responses::parse;
use aigw::error::Family;
use aigw::schema::{EndpointType, request_from_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(parsed) => {
            assert_eq!(parsed.native.get("model"), Some(&Value::String(parsed.model.clone())), "the model is not the one sent");
            let sent: Value = match serde_json::from_slice(data) {
                Ok(v) => v,
                Err(e) => panic!("an accepted body is not JSON: {e}"),
            };
            assert_eq!(Value::Object(parsed.native.clone()), sent, "the native body differs from the one sent");
            if parsed.native_only.is_none() {
                match request_from_value(EndpointType::Chat, Value::Object(parsed.request.body.clone())) {
                    Ok(again) => assert_eq!(again.body, parsed.request.body, "re-validation changed the body"),
                    Err(e) => panic!("the translation is not a valid chat request: {:?}", e.0),
                }
                assert!(!parsed.request.messages().is_empty(), "a translation without messages");
            }
        }
        Err(e) => {
            assert_eq!(e.status_for(Family::Responses), 400, "{e}");
            let body: Value = match serde_json::from_slice(&e.body(Family::Responses)) {
                Ok(v) => v,
                Err(err) => panic!("an error body that is not JSON: {err}"),
            };
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }
});
