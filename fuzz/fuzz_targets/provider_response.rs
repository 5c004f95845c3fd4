//! Fuzz target `provider_response`: arbitrary bytes as a provider's 2xx JSON answer.
//!
//! Input layout: `[case] [n] [n × u16 BE cut points] [body]`. `case` picks one of
//! `aigw_fuzz::cases::cases().response` (every provider × every endpoint type it serves ×
//! request variants, prepared with `aigw::providers::prepare`); the body goes to the
//! exchange's `Decoder::Json` closure, or is cut into one body per upstream call for a
//! `Decoder::JsonMany` fan-out (Bedrock Titan embeddings).
//!
//! No panic; an answer must be JSON; an error must carry a 4xx/5xx status.

#![no_main]

use aigw_fuzz::cases::{Input, cases, run_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let list = &cases().response;
    let case = &list[pick as usize % list.len()];
    let _ = run_response(case, &Input::parse(rest));
});
