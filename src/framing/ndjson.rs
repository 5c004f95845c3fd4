//! Newline-delimited JSON (Cohere's v1 streams): [`NdjsonLines`] frames whole lines out of
//! bytes split anywhere, and [`NdjsonStream`] is the [`StreamDecoder`] that hands them to a
//! provider's [`LineTranslate`].
//!
//! Such streams are served as `application/stream+json` (Cohere) or `application/x-ndjson`:
//! the first is JSON by its `+json` suffix but a stream all the same, so
//! [`NdjsonStream::is_whole_json`] does not take it for a whole JSON answer.

use super::{EventTooLarge, StreamDecoder, event_too_large, incomplete, is_json, media_type};
use crate::error::GatewayError;
use crate::schema::{Chunk, Usage};

/// Incremental framing of newline-delimited JSON: complete lines (without the line ending and
/// surrounding whitespace) are handed out as soon as their `\n` arrives, however the bytes are
/// split; the last line may end without `\n`. A line longer than the limit
/// ([`NdjsonLines::set_max_line`]) is refused before it is buffered.
#[derive(Debug)]
pub struct NdjsonLines {
    partial: Vec<u8>,
    max: usize,
}

impl Default for NdjsonLines {
    fn default() -> Self {
        NdjsonLines { partial: Vec::new(), max: usize::MAX }
    }
}

impl NdjsonLines {
    /// Accept lines of at most `bytes` bytes (without the line ending).
    pub fn set_max_line(&mut self, bytes: usize) {
        self.max = bytes;
    }

    /// Feed the next bytes; `on_line` gets every non-empty line they complete. After an error
    /// the stream cannot be read further (the buffer is released).
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) -> Result<(), EventTooLarge> {
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            if self.partial.len() + pos > self.max {
                return Err(self.too_large());
            }
            if self.partial.is_empty() {
                let line = chunk[..pos].trim_ascii();
                if !line.is_empty() {
                    on_line(line);
                }
            } else {
                self.partial.extend_from_slice(&chunk[..pos]);
                let line = std::mem::take(&mut self.partial);
                let t = line.trim_ascii();
                if !t.is_empty() {
                    on_line(t);
                }
                self.partial = line;
                self.partial.clear();
            }
            chunk = &chunk[pos + 1..];
        }
        if self.partial.len() + chunk.len() > self.max {
            return Err(self.too_large());
        }
        self.partial.extend_from_slice(chunk);
        Ok(())
    }

    fn too_large(&mut self) -> EventTooLarge {
        self.partial = Vec::new();
        EventTooLarge { limit: self.max }
    }

    /// The stream ended: hand out a last line left without its `\n`.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) {
        let line = std::mem::take(&mut self.partial);
        let t = line.trim_ascii();
        if !t.is_empty() {
            on_line(t);
        }
    }
}

/// The translation of one provider's NDJSON stream, line by line. [`NdjsonStream`] feeds it:
/// the framing, the size limit, the completeness check and the error plumbing are shared.
pub trait LineTranslate: Send {
    /// Translate one line (trimmed, never empty); push the unified chunks it completes to
    /// `out`. An error ends the stream with one error event; no later line is translated.
    fn line(&mut self, line: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError>;

    /// Whether the lines so far include the provider's end of stream (Cohere's `stream-end`).
    /// When the upstream body ends without it, the stream ends with the [`incomplete`] error.
    fn complete(&self) -> bool;

    /// Token usage reported so far.
    fn usage(&self) -> Option<&Usage> {
        None
    }
}

/// A [`StreamDecoder`] for an NDJSON upstream: [`NdjsonLines`] driving a [`LineTranslate`].
pub struct NdjsonStream<T> {
    lines: NdjsonLines,
    translate: T,
    error: Option<GatewayError>,
}

impl<T: LineTranslate> NdjsonStream<T> {
    /// Decode with `translate`.
    pub fn new(translate: T) -> Self {
        NdjsonStream { lines: NdjsonLines::default(), translate, error: None }
    }

    /// The capacity of the unfinished line's buffer (released after an error).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.lines.partial.capacity()
    }
}

impl<T: LineTranslate> StreamDecoder for NdjsonStream<T> {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let (translate, error) = (&mut self.translate, &mut self.error);
        let framed = self.lines.feed(chunk, |line| {
            if error.is_none()
                && let Err(e) = translate.line(line, out)
            {
                *error = Some(e);
            }
        });
        // A line's error came before the line that was too long.
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        framed.map_err(|e| event_too_large(e.limit))
    }

    fn finish(&mut self, out: &mut Vec<Chunk>) -> Result<(), GatewayError> {
        let (translate, error) = (&mut self.translate, &mut self.error);
        self.lines.finish(|line| {
            if error.is_none()
                && let Err(e) = translate.line(line, out)
            {
                *error = Some(e);
            }
        });
        self.error.take().map_or(Ok(()), Err)?;
        if self.translate.complete() { Ok(()) } else { Err(incomplete()) }
    }

    fn usage(&self) -> Option<&Usage> {
        self.translate.usage()
    }

    fn set_max_event(&mut self, bytes: usize) {
        self.lines.set_max_line(bytes);
    }

    /// `application/stream+json` is JSON by its suffix, but a stream.
    fn is_whole_json(&self, content_type: &str) -> bool {
        is_json(content_type) && !media_type(content_type).eq_ignore_ascii_case("application/stream+json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Lines come out whole and in order, whatever the split and line endings.
        #[test]
        fn ndjson_lines_roundtrip(lines in proptest::collection::vec("[a-z{}\":é ]{1,12}", 1..8), crlf in any::<bool>(), seed in any::<u64>()) {
            let ending = if crlf { "\r\n" } else { "\n" };
            let text: String = lines.iter().map(|l| format!("{l}{ending}")).collect();
            let bytes = text.as_bytes();
            let mut got = Vec::new();
            let mut framing = NdjsonLines::default();
            let mut s = seed | 1;
            let mut i = 0;
            while i < bytes.len() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                let n = 1 + (s % 5) as usize;
                let end = (i + n).min(bytes.len());
                framing.feed(&bytes[i..end], |l| got.push(String::from_utf8(l.to_vec()).unwrap())).unwrap();
                i = end;
            }
            framing.finish(|l| got.push(String::from_utf8(l.to_vec()).unwrap()));
            let want: Vec<String> = lines.iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
