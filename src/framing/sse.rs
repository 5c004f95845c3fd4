//! Server-sent events: an incremental parser for upstream streams, and [`SseStream`], the
//! [`StreamDecoder`] that drives a provider's [`SseTranslate`] with it.
//!
//! The parser follows the SSE specification's line rules: lines end in `\n`, `\r\n` or `\r`
//! (a `\r\n` split across two chunks is one line ending), `field: value` with one optional space
//! after the colon, `:` comment lines, `data` lines of one event joined with `\n`, and an empty
//! line dispatching the event. Upstream bytes may be split at any point; the parser gives the same
//! events for every split (a property test checks this). One line, and the data of one event,
//! may be at most [`SseParser::set_max_event`] bytes (the server sets `aigw.max_response_body`):
//! an upstream cannot make the gateway buffer without bound.
//!
//! ```
//! use aigw::framing::sse::SseParser;
//! let mut p = SseParser::new();
//! let mut got = Vec::new();
//! p.feed(b"event: ping\ndata: {\"a\"", |e| got.push((e.event.to_owned(), e.data.to_owned()))).unwrap();
//! p.feed(b":1}\r\n\r\n", |e| got.push((e.event.to_owned(), e.data.to_owned()))).unwrap();
//! assert_eq!(got, vec![("ping".to_owned(), "{\"a\":1}".to_owned())]);
//! ```
//!
//! The end of a stream is checked by [`SseStream`]: a stream that stops before its provider's
//! end marker ([`SseTranslate::complete`]) fails with [`incomplete`] instead of passing for a
//! whole answer. (The gateway's own output framing, `data: {json}` events and `[DONE]`, is
//! written by `api::encode`.)

use super::{EventTooLarge, StreamDecoder, event_too_large, incomplete};
use crate::error::GatewayError;
use crate::schema::{Chunk, Usage};

/// One dispatched event. Borrowed from the parser; copy what you keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` field, empty when absent (the spec's default type is `message`).
    pub event: &'a str,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
}

/// Incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    /// The unfinished line.
    line: Vec<u8>,
    /// Data of the event being built.
    data: Vec<u8>,
    /// Event type of the event being built.
    event: Vec<u8>,
    /// Whether any `data:` line was seen for the event being built.
    has_data: bool,
    /// The previous chunk ended with `\r`, so a leading `\n` belongs to that line ending.
    after_cr: bool,
    /// The longest line, and the most data of one event, accepted (bytes).
    max: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            has_data: false,
            after_cr: false,
            max: usize::MAX,
        }
    }
}

impl SseParser {
    /// A parser at the start of a stream, without a size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept lines, and event data, of at most `bytes` bytes; a longer one fails
    /// [`feed`](Self::feed) or [`finish`](Self::finish) with [`EventTooLarge`] before it is
    /// buffered.
    pub fn set_max_event(&mut self, bytes: usize) {
        self.max = bytes;
    }

    /// Feed the next chunk; `on_event` is called for every event completed by it. After an
    /// error the stream cannot be parsed further (the buffers are released).
    pub fn feed(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) -> Result<(), EventTooLarge> {
        if chunk.is_empty() {
            // Keep a pending `\r`: its `\n` may still come.
            return Ok(());
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', chunk) {
            let ending = chunk[pos];
            if self.line.len() + pos > self.max {
                return Err(self.too_large());
            }
            let r = if self.line.is_empty() {
                self.process_line(&chunk[..pos], &mut on_event)
            } else {
                self.line.extend_from_slice(&chunk[..pos]);
                let line = std::mem::take(&mut self.line);
                let r = self.process_line(&line, &mut on_event);
                self.line = line;
                self.line.clear();
                r
            };
            r?;
            chunk = &chunk[pos + 1..];
            if ending == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        if self.line.len() + chunk.len() > self.max {
            return Err(self.too_large());
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    /// The stream ended: dispatch an event left without its final blank line (lenient, as
    /// upstreams sometimes end with `data: …\n` only).
    pub fn finish(&mut self, mut on_event: impl FnMut(Event<'_>)) -> Result<(), EventTooLarge> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut on_event)?;
        }
        self.dispatch(&mut on_event);
        Ok(())
    }

    /// Release the buffers (they may be large) and report the limit.
    fn too_large(&mut self) -> EventTooLarge {
        self.line = Vec::new();
        self.data = Vec::new();
        self.event = Vec::new();
        self.has_data = false;
        EventTooLarge { limit: self.max }
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(Event<'_>)) -> Result<(), EventTooLarge> {
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + usize::from(self.has_data) + value.len() > self.max {
                    return Err(self.too_large());
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            _ => {} // id, retry and unknown fields are not used by any provider
        }
        Ok(())
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if self.has_data {
            let data = String::from_utf8_lossy(&self.data);
            let event = String::from_utf8_lossy(&self.event);
            on_event(Event { event: &event, data: &data });
        }
        self.data.clear();
        self.event.clear();
        self.has_data = false;
    }
}

/// The translation of one provider's SSE stream, event by event. [`SseStream`] feeds it: the
/// parsing, the any-split handling, the size limit, the completeness check and the error
/// plumbing are shared; a provider implements [`SseTranslate::event`] and
/// [`SseTranslate::complete`] and, when it needs to, [`SseTranslate::end`] and
/// [`SseTranslate::usage`].
pub trait SseTranslate: Send {
    /// Translate one upstream event (`event` is empty without an `event:` line); push the
    /// unified chunks it completes to `out`. An error ends the stream with one error event.
    fn event(&mut self, event: &str, data: &str, out: &mut Vec<Chunk>) -> Result<(), GatewayError>;

    /// Whether the events so far include the provider's end of stream (OpenAI's `[DONE]` or a
    /// choice's `finish_reason`, Gemini's `finishReason`, Anthropic's `message_delta` or
    /// `message_stop`). When the upstream body ends without it, the stream ends with the
    /// [`incomplete`] error instead of passing for a whole answer.
    fn complete(&self) -> bool;

    /// The upstream body ended: flush anything held back (before the completeness check).
    fn end(&mut self, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let _ = out;
        Ok(())
    }

    /// Token usage reported so far.
    fn usage(&self) -> Option<&Usage> {
        None
    }
}

/// A [`StreamDecoder`] for an SSE upstream: an [`SseParser`] driving an [`SseTranslate`].
pub struct SseStream<T> {
    parser: SseParser,
    translate: T,
    error: Option<GatewayError>,
}

impl<T: SseTranslate> SseStream<T> {
    /// Decode with `translate`.
    pub fn new(translate: T) -> Self {
        SseStream { parser: SseParser::new(), translate, error: None }
    }

    fn run(&mut self, chunk: Option<&[u8]>, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let (translate, error) = (&mut self.translate, &mut self.error);
        let mut on_event = |e: Event<'_>| {
            if error.is_none()
                && let Err(x) = translate.event(e.event, e.data, out)
            {
                *error = Some(x);
            }
        };
        let parsed = match chunk {
            Some(c) => self.parser.feed(c, &mut on_event),
            None => self.parser.finish(&mut on_event),
        };
        // An event's error came before the line that was too long.
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        parsed.map_err(|e| event_too_large(e.limit))
    }
}

impl<T: SseTranslate> StreamDecoder for SseStream<T> {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        self.run(Some(chunk), out)
    }

    fn finish(&mut self, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        self.run(None, out)?;
        self.translate.end(out)?;
        if self.translate.complete() { Ok(()) } else { Err(incomplete()) }
    }

    fn usage(&self) -> Option<&Usage> {
        self.translate.usage()
    }

    fn set_max_event(&mut self, bytes: usize) {
        self.parser.set_max_event(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push((e.event.to_owned(), e.data.to_owned()))).unwrap();
        }
        p.finish(|e| out.push((e.event.to_owned(), e.data.to_owned()))).unwrap();
        out
    }

    #[test]
    fn lines_and_event_data_are_capped() {
        let limit = 16;
        let ok = |chunks: &[&[u8]]| {
            let mut p = SseParser::new();
            p.set_max_event(limit);
            let mut n = 0;
            for c in chunks {
                p.feed(c, |_| n += 1)?;
            }
            p.finish(|_| n += 1).map(|()| n)
        };
        // Exactly at the limit: a 16-byte line, and 16 bytes of data over two lines.
        assert_eq!(ok(&[b"data: 0123456789\n\n"]), Ok(1));
        assert_eq!(ok(&[b"data: 0123456\ndata: 01234567\n\n"]), Ok(1));
        let err = Err(EventTooLarge { limit });
        // One line too long, whole in one chunk, or arriving in pieces without its line end.
        assert_eq!(ok(&[b"data: 0123456789a\n\n"]), err);
        assert_eq!(ok(&[b"data: 01234", b"56789", b"a"]), err);
        // Data lines of one event that together exceed the limit.
        assert_eq!(ok(&[b"data: 01234567\ndata: 01234567\n\n"]), err);
        // Many small events are fine: the limit is per event.
        assert_eq!(ok(&[b"data: 0123456789\n\n".repeat(100).as_slice()]), Ok(100));
    }

    #[test]
    fn an_unending_line_is_refused_before_it_is_buffered() {
        let mut p = SseParser::new();
        p.set_max_event(1024);
        let piece = [b'x'; 100];
        assert_eq!(p.feed(b"data: ", |_| {}), Ok(()));
        let mut fed = 6;
        let err = loop {
            match p.feed(&piece, |_| {}) {
                Ok(()) => fed += piece.len(),
                Err(e) => break e,
            }
            assert!(fed <= 1024, "{fed} bytes buffered past the limit");
        };
        assert_eq!(err.limit, 1024);
        assert!(p.line.capacity() == 0 && p.data.capacity() == 0, "the buffers are released");
    }

    /// Counts events; complete once it saw `end`.
    struct Counting {
        events: usize,
        complete: bool,
    }

    impl SseTranslate for Counting {
        fn event(&mut self, _event: &str, data: &str, _out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
            self.events += 1;
            self.complete |= data == "end";
            Ok(())
        }

        fn complete(&self) -> bool {
            self.complete
        }
    }

    #[test]
    fn stream_decoder_checks_size_and_completeness() {
        let decoder = || SseStream::new(Counting { events: 0, complete: false });
        let mut out = Vec::new();

        let mut d = decoder();
        d.set_max_event(32);
        let e = d.feed(&[b'y'; 40], &mut out).unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (502, Some("response_too_large")));
        assert!(e.message().contains("larger than 32 bytes"), "{}", e.message());

        let mut d = decoder();
        d.feed(b"data: a\n\ndata: b\n\n", &mut out).unwrap();
        let e = d.finish(&mut out).unwrap_err();
        assert_eq!((e.status, e.message()), (502, "upstream stream ended before it was complete".to_owned()));

        let mut d = decoder();
        d.feed(b"data: a\n\ndata: end", &mut out).unwrap();
        assert!(d.finish(&mut out).is_ok(), "the last event may end without its blank line");
        assert_eq!(d.translate.events, 2);
    }

    #[test]
    fn basic_events() {
        let got = parse_all(&[b"data: a\n\ndata: b\ndata: c\n\n: comment\n\nevent: x\ndata:d\n\n"]);
        assert_eq!(got, vec![(String::new(), "a".into()), (String::new(), "b\nc".into()), ("x".into(), "d".into())]);
    }

    #[test]
    fn crlf_and_cr_endings() {
        assert_eq!(parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"]).len(), 3);
        // CR at the end of one chunk, LF at the start of the next: one line ending.
        assert_eq!(parse_all(&[b"data: a\r", b"\n\r", b"\n"]), vec![(String::new(), "a".into())]);
        // An empty chunk between the two halves of a CRLF changes nothing.
        assert_eq!(parse_all(&[b"data: \r", b"", b"\ndata: b\r\n\r\n"]), vec![(String::new(), "\nb".into())]);
    }

    #[test]
    fn unterminated_last_event_is_flushed() {
        assert_eq!(parse_all(&[b"data: [DONE]"]), vec![(String::new(), "[DONE]".into())]);
        assert!(parse_all(&[b"event: ping\n"]).is_empty());
    }

    /// An SSE stream built from events, with a chosen line ending.
    fn stream_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<(String, String)>)> {
        let data = "[a-zA-Z0-9{}\":, ]{0,20}";
        let event = prop::collection::vec((prop::option::of("[a-z_]{1,8}"), prop::collection::vec(data, 1..3)), 0..6);
        (event, prop::sample::select(vec!["\n", "\r\n", "\r"])).prop_map(|(events, eol)| {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            for (ev, lines) in events {
                if let Some(e) = &ev {
                    bytes.extend_from_slice(format!("event: {e}{eol}").as_bytes());
                }
                for l in &lines {
                    bytes.extend_from_slice(format!("data: {l}{eol}").as_bytes());
                }
                bytes.extend_from_slice(format!(": keep-alive{eol}{eol}").as_bytes());
                expected.push((ev.unwrap_or_default(), lines.join("\n")));
            }
            (bytes, expected)
        })
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events((bytes, expected) in stream_strategy(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&bytes[last..p]);
                last = p;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(parse_all(&chunks), expected);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), split in 0usize..512) {
            let split = split.min(bytes.len());
            let _ = parse_all(&[&bytes[..split], &bytes[split..]]);
        }
    }
}
