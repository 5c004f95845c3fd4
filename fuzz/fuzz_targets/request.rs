//! Fuzz target `request`: arbitrary bytes as a unified request body, for each endpoint type.
//!
//! `schema::parse_request` must never panic. An error is a non-empty FastAPI list whose items
//! have `type`, `loc` (starting with `"body"`) and `msg`. An accepted body must serialise, and
//! validating it again (`request_from_value`, as a traffic route's fallback re-sends it) must
//! accept it unchanged.

#![no_main]

use aigw::schema::{EndpointType, ValidationErrors, parse_request, request_from_value};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check_errors(t: EndpointType, errors: &ValidationErrors) {
    assert!(!errors.0.is_empty(), "{t}: an empty error list");
    for item in &errors.0 {
        let ok = item.get("type").is_some_and(Value::is_string)
            && item.get("msg").is_some_and(Value::is_string)
            && item.get("loc").and_then(Value::as_array).and_then(|l| l.first()).and_then(Value::as_str)
                == Some("body");
        assert!(ok, "{t}: malformed error item {item}");
    }
    let (summary, _) = errors.summary();
    assert!(!summary.is_empty(), "{t}: empty summary");
}

fuzz_target!(|data: &[u8]| {
    for t in [EndpointType::Chat, EndpointType::Completions, EndpointType::Embeddings] {
        match parse_request(t, data) {
            Ok(req) => {
                let bytes = match serde_json::to_vec(&req.body) {
                    Ok(b) => b,
                    Err(e) => panic!("{t}: an accepted body does not serialise: {e}"),
                };
                let _ = (req.stream(), req.messages().len());
                match request_from_value(t, Value::Object(req.body.clone())) {
                    Ok(again) => assert_eq!(again.body, req.body, "{t}: re-validation changed the body"),
                    Err(e) => panic!("{t}: re-validation rejected an accepted body: {:?}", e.0),
                }
                if let Err(e) = parse_request(t, &bytes) {
                    panic!("{t}: the serialised body is rejected: {:?}", e.0);
                }
            }
            Err(errors) => check_errors(t, &errors),
        }
    }
});
