//! Fuzz target `sse`: arbitrary bytes through `aigw::framing::sse::SseParser`, split at fuzzer-chosen
//! points (input layout: `[n] [n × u16 BE cut points] [stream]`, see `aigw_fuzz::cases::Input`).
//!
//! No panic; the events must be the same as when the whole stream is fed at once (splitting
//! must not change events); an event type never contains a line ending.

#![no_main]

use aigw_fuzz::cases::{Input, sse_events};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let whole = sse_events(&[input.body]);
    for (event, _) in &whole {
        assert!(!event.contains(['\r', '\n']), "event type with a line ending: {event:?}");
    }
    let split = sse_events(&input.pieces());
    assert_eq!(whole, split, "cuts {:?} changed the events", input.cuts);
});
