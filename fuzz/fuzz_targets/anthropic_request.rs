//! Fuzz target `anthropic_request`: arbitrary bytes as an Anthropic Messages request body.
//!
//! `api::anthropic::parse` must never panic. A refusal is a 400 on the Anthropic client API
//! with a message. An accepted body has a `model`, its unified request serialises and validates
//! again unchanged (`request_from_value`), the body as sent is kept whole, and the
//! `count_tokens` estimate of it is at least the per-request minimum.

#![no_main]

use aigw::api::anthropic::{count_tokens_estimate, parse};
use aigw::error::Family;
use aigw::schema::{EndpointType, request_from_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(parsed) => {
            if let Err(e) = serde_json::to_vec(&parsed.request.body) {
                panic!("an accepted request does not serialise: {e}");
            }
            match request_from_value(EndpointType::Chat, Value::Object(parsed.request.body.clone())) {
                Ok(again) => assert_eq!(again.body, parsed.request.body, "re-validation changed the body"),
                Err(e) => panic!("re-validation rejected an accepted request: {:?}", e.0),
            }
            assert_eq!(
                parsed.native.get("model").and_then(Value::as_str),
                Some(parsed.model.as_str()),
                "native is the body as sent"
            );
            assert!(count_tokens_estimate(&parsed.native) >= 8, "below the per-request minimum");
        }
        Err(e) => {
            assert_eq!(e.status_for(Family::Anthropic), 400, "a refusal that is not a 400: {e}");
            assert!(!e.message().is_empty(), "a refusal without a message");
            let body: Value = match serde_json::from_slice(&e.body(Family::Anthropic)) {
                Ok(v) => v,
                Err(err) => panic!("the error body is not JSON: {err}"),
            };
            assert_eq!(body["type"], "error");
        }
    }
});
