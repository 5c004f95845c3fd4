//! Fuzz target `eventstream`: arbitrary bytes through the AWS event-stream decoder
//! (`aigw::framing::eventstream::FrameDecoder`), split at fuzzer-chosen points.
//!
//! Input layout: `[mode] [n] [n × u16 BE cut points] [stream]`. When `mode` is odd, the harness
//! first rewrites both CRC32 checksums of every frame it can delimit, so the fuzzer reaches the
//! header and length checks behind them instead of spending its time on checksums.
//!
//! No panic; errors are fine, but the messages and the error must not depend on the split.

#![no_main]

use aigw::framing::eventstream::{FrameDecoder, Message};
use aigw_fuzz::cases::Input;
use libfuzzer_sys::fuzz_target;

/// Decode the pieces the way the Bedrock stream decoder does: push, drain, finish.
fn decode(pieces: &[&[u8]]) -> (Vec<Message>, Option<String>) {
    let mut d = FrameDecoder::new();
    let mut messages = Vec::new();
    for p in pieces {
        d.push(p);
        loop {
            match d.next_message() {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => {
                    // Once broken, always broken.
                    assert!(d.next_message().is_err(), "the decoder recovered after an error");
                    return (messages, Some(e.0));
                }
            }
        }
    }
    (messages, d.finish().err().map(|e| e.0))
}

/// Rewrite the prelude and message checksums of each frame whose length fits in `body`.
fn fix_checksums(body: &mut [u8]) {
    let mut at = 0;
    while body.len() - at >= 16 {
        let total = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]) as usize;
        let crc = crc32(&body[at..at + 8]);
        body[at + 8..at + 12].copy_from_slice(&crc.to_be_bytes());
        if total < 16 || total > body.len() - at {
            return;
        }
        let end = at + total;
        let crc = crc32(&body[at..end - 4]);
        body[end - 4..end].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// CRC-32 (IEEE), bitwise: the harness does not depend on the decoder's own CRC crate.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let input = Input::parse(rest);
    let mut body = input.body.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut body);
    }
    let whole = decode(&[&body]);
    let split = decode(&aigw_fuzz::cases::split_at(&body, &input.cuts));
    assert_eq!(whole, split, "cuts {:?} changed the outcome", input.cuts);
});
