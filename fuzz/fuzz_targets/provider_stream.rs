//! Fuzz target `provider_stream`: arbitrary bytes as a provider's streamed answer.
//!
//! Input layout: `[case] [n] [n × u16 BE cut points] [body]`. `case` picks one of
//! `aigw_fuzz::cases::cases().stream` (every provider and endpoint type that streams, prepared
//! with `aigw::providers::prepare`); the body is fed to the exchange's `StreamDecoder` in the
//! pieces the cut points make, then `finish`, stopping at the first error as the server does.
//!
//! No panic; the output must be whole `data: <json>\n\n` events; an error must carry a
//! 4xx/5xx status; and the split must not change the output or the error.

#![no_main]

use aigw_fuzz::cases::{Input, cases, run_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let list = &cases().stream;
    let case = &list[pick as usize % list.len()];
    let input = Input::parse(rest);
    let whole = run_stream(case, &[input.body]);
    let split = run_stream(case, &input.pieces());
    assert_eq!(whole, split, "{}: cuts {:?} changed the outcome", case.label, input.cuts);
});
