//! Incremental decoder for the AWS event-stream binary framing
//! (`application/vnd.amazon.eventstream`), which ConverseStream answers in.
//!
//! A message is:
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (u32 BE, over the 8 bytes before)
//! headers (headers length bytes) | payload | message CRC32 (u32 BE, over everything before it)
//! ```
//!
//! A header is `name length (u8) | name | value type (u8) | value`, the value's size depending
//! on its type (strings and byte arrays carry a u16 BE length). Bytes may arrive split
//! anywhere; both checksums are verified, and a message larger than [`MAX_MESSAGE`] is refused
//! rather than buffered.

use bytes::{Buf, Bytes, BytesMut};

/// The largest message accepted (AWS caps messages at 16 MiB).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024 + 1024;
const PRELUDE: usize = 12;
const MIN_MESSAGE: usize = PRELUDE + 4;

/// A header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Type 0/1.
    Bool(bool),
    /// Types 2 (byte), 3 (short), 4 (integer), 5 (long), 8 (timestamp, ms).
    Int(i64),
    /// Type 6.
    Bytes(Bytes),
    /// Type 7.
    String(String),
    /// Type 9.
    Uuid([u8; 16]),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Headers in wire order.
    pub headers: Vec<(String, HeaderValue)>,
    /// The payload (JSON for Bedrock events).
    pub payload: Bytes,
}

impl Message {
    /// A string header's value.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(k, v)| match v {
            HeaderValue::String(s) if k == name => Some(s.as_str()),
            _ => None,
        })
    }
}

/// A framing error: the stream cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Buffers bytes and yields complete messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    failed: bool,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add bytes as they arrive.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.failed {
            return Err(FrameError("the event stream is unreadable".into()));
        }
        let r = self.try_next();
        if r.is_err() {
            self.failed = true;
            self.buf.clear();
        }
        r
    }

    /// The body ended: anything left over is a truncated message.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            let n = self.buf.len();
            self.buf.clear();
            Err(FrameError(format!("the event stream ended inside a message ({n} bytes left over)")))
        }
    }

    fn try_next(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let total = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let headers_len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        let prelude_crc = u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
        if crc32fast::hash(&self.buf[..8]) != prelude_crc {
            return Err(FrameError("event stream prelude checksum mismatch".into()));
        }
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&total) || headers_len > total - MIN_MESSAGE {
            return Err(FrameError(format!(
                "event stream message of {total} bytes with {headers_len} bytes of headers is not valid"
            )));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let frame = self.buf.split_to(total).freeze();
        let message_crc = u32::from_be_bytes([frame[total - 4], frame[total - 3], frame[total - 2], frame[total - 1]]);
        if crc32fast::hash(&frame[..total - 4]) != message_crc {
            return Err(FrameError("event stream message checksum mismatch".into()));
        }
        let headers = parse_headers(frame.slice(PRELUDE..PRELUDE + headers_len))?;
        let payload = frame.slice(PRELUDE + headers_len..total - 4);
        Ok(Some(Message { headers, payload }))
    }
}

fn parse_headers(mut b: Bytes) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    let short = || FrameError("event stream header block is truncated".into());
    let mut out = Vec::new();
    while b.has_remaining() {
        let name_len = b.get_u8() as usize;
        if b.remaining() < name_len + 1 {
            return Err(short());
        }
        let name = String::from_utf8(b.split_to(name_len).to_vec())
            .map_err(|_| FrameError("event stream header name is not UTF-8".into()))?;
        let kind = b.get_u8();
        let need = |b: &Bytes, n: usize| if b.remaining() < n { Err(short()) } else { Ok(()) };
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => {
                need(&b, 1)?;
                HeaderValue::Int(b.get_i8() as i64)
            }
            3 => {
                need(&b, 2)?;
                HeaderValue::Int(b.get_i16() as i64)
            }
            4 => {
                need(&b, 4)?;
                HeaderValue::Int(b.get_i32() as i64)
            }
            5 | 8 => {
                need(&b, 8)?;
                HeaderValue::Int(b.get_i64())
            }
            6 | 7 => {
                need(&b, 2)?;
                let n = b.get_u16() as usize;
                need(&b, n)?;
                let v = b.split_to(n);
                if kind == 6 {
                    HeaderValue::Bytes(v)
                } else {
                    HeaderValue::String(
                        String::from_utf8(v.to_vec())
                            .map_err(|_| FrameError("event stream header value is not UTF-8".into()))?,
                    )
                }
            }
            9 => {
                need(&b, 16)?;
                let mut u = [0u8; 16];
                b.copy_to_slice(&mut u);
                HeaderValue::Uuid(u)
            }
            other => return Err(FrameError(format!("event stream header '{name}' has unknown type {other}"))),
        };
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encode one message (string headers only), as AWS does.
    pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (k, v) in headers {
            h.push(k.len() as u8);
            h.extend_from_slice(k.as_bytes());
            h.push(7);
            h.extend_from_slice(&(v.len() as u16).to_be_bytes());
            h.extend_from_slice(v.as_bytes());
        }
        frame(&h, payload)
    }

    /// One message around an already encoded header block `h` (any header types, or a broken
    /// block) and `payload`, with both CRCs.
    fn frame(h: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = PRELUDE + h.len() + payload.len() + 4;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(h);
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// An `event` message as Bedrock sends it.
    pub(crate) fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode(
            &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
        )
    }

    fn drain(d: &mut FrameDecoder) -> Result<Vec<Message>, FrameError> {
        let mut out = Vec::new();
        while let Some(m) = d.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn decodes_one_message() {
        let bytes = event("contentBlockDelta", r#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#);
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        let msgs = drain(&mut d).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].header_str(":event-type"), Some("contentBlockDelta"));
        assert_eq!(msgs[0].header_str(":message-type"), Some("event"));
        assert_eq!(&msgs[0].payload[..], br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#);
        d.finish().unwrap();
    }

    #[test]
    fn all_header_types() {
        // bool true, bool false, byte, short, int, long, bytes, string, timestamp, uuid
        let mut h = Vec::new();
        let name = |h: &mut Vec<u8>, n: &str, t: u8| {
            h.push(n.len() as u8);
            h.extend_from_slice(n.as_bytes());
            h.push(t);
        };
        name(&mut h, "t", 0);
        name(&mut h, "f", 1);
        name(&mut h, "b", 2);
        h.push(0xff);
        name(&mut h, "s", 3);
        h.extend_from_slice(&(-2i16).to_be_bytes());
        name(&mut h, "i", 4);
        h.extend_from_slice(&7i32.to_be_bytes());
        name(&mut h, "l", 5);
        h.extend_from_slice(&(1i64 << 40).to_be_bytes());
        name(&mut h, "y", 6);
        h.extend_from_slice(&2u16.to_be_bytes());
        h.extend_from_slice(&[1, 2]);
        name(&mut h, "z", 7);
        h.extend_from_slice(&1u16.to_be_bytes());
        h.push(b'x');
        name(&mut h, "ts", 8);
        h.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        name(&mut h, "u", 9);
        h.extend_from_slice(&[9u8; 16]);
        let msg = frame(&h, &[]);

        let mut d = FrameDecoder::new();
        d.push(&msg);
        let m = d.next_message().unwrap().unwrap();
        let values: Vec<&HeaderValue> = m.headers.iter().map(|(_, v)| v).collect();
        assert_eq!(
            values,
            vec![
                &HeaderValue::Bool(true),
                &HeaderValue::Bool(false),
                &HeaderValue::Int(-1),
                &HeaderValue::Int(-2),
                &HeaderValue::Int(7),
                &HeaderValue::Int(1 << 40),
                &HeaderValue::Bytes(Bytes::from_static(&[1, 2])),
                &HeaderValue::String("x".into()),
                &HeaderValue::Int(1_700_000_000_000),
                &HeaderValue::Uuid([9u8; 16]),
            ]
        );
        assert!(m.payload.is_empty());
    }

    #[test]
    fn bad_checksums_are_errors() {
        let good = event("messageStop", r#"{"stopReason":"end_turn"}"#);

        let mut bad_payload = good.clone();
        let n = bad_payload.len();
        bad_payload[n - 6] ^= 1;
        let mut d = FrameDecoder::new();
        d.push(&bad_payload);
        assert!(d.next_message().unwrap_err().0.contains("message checksum"));
        // Once broken, always broken.
        assert!(d.next_message().is_err());

        let mut bad_prelude = good.clone();
        bad_prelude[9] ^= 1;
        let mut d = FrameDecoder::new();
        d.push(&bad_prelude[..12]);
        assert!(d.next_message().unwrap_err().0.contains("prelude checksum"));
    }

    #[test]
    fn absurd_lengths_are_errors() {
        for (total, headers) in [(8u32, 0u32), (u32::MAX, 0), (20, 10)] {
            let mut msg = Vec::new();
            msg.extend_from_slice(&total.to_be_bytes());
            msg.extend_from_slice(&headers.to_be_bytes());
            let crc = crc32fast::hash(&msg);
            msg.extend_from_slice(&crc.to_be_bytes());
            let mut d = FrameDecoder::new();
            d.push(&msg);
            assert!(d.next_message().unwrap_err().0.contains("not valid"), "{total} {headers}");
        }
    }

    #[test]
    fn truncated_header_block_is_an_error() {
        // A string header claiming 100 bytes inside a 10-byte block.
        let h = [1u8, b'k', 7, 0, 100, b'a', b'b', b'c', b'd', b'e'];
        let msg = frame(&h, &[]);
        let mut d = FrameDecoder::new();
        d.push(&msg);
        assert!(d.next_message().unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn truncated_stream_is_an_error_at_finish() {
        let msg = event("messageStart", r#"{"role":"assistant"}"#);
        let mut d = FrameDecoder::new();
        d.push(&msg[..msg.len() - 3]);
        assert_eq!(d.next_message().unwrap(), None);
        assert!(d.finish().unwrap_err().0.contains("ended inside a message"));
        // Only the prelude.
        let mut d = FrameDecoder::new();
        d.push(&msg[..5]);
        assert_eq!(d.next_message().unwrap(), None);
        assert!(d.finish().is_err());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_messages(
            texts in proptest::collection::vec("[a-zA-Z0-9 éß\"\\\\]{0,40}", 1..8),
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let mut wire = Vec::new();
            for t in &texts {
                let payload = serde_json::json!({"delta": {"text": t}, "contentBlockIndex": 0}).to_string();
                wire.extend(event("contentBlockDelta", &payload));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain([wire.len()]) {
                d.push(&wire[start..c]);
                start = c;
                got.extend(drain(&mut d).unwrap());
            }
            d.finish().unwrap();
            prop_assert_eq!(got.len(), texts.len());
            for (m, t) in got.iter().zip(&texts) {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                prop_assert_eq!(v["delta"]["text"].as_str(), Some(t.as_str()));
            }
        }
    }
}
