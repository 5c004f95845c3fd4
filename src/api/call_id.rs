//! Gemini's thought signatures carried inside tool-call ids, for the client APIs whose tool calls
//! have no field for them (Anthropic's `tool_use` blocks, the Responses API's `function_call`
//! items).
//!
//! Gemini 3 refuses a conversation whose function calls come back without the
//! `thoughtSignature` it gave them. A unified tool call has `thought_signature`; when it is set,
//! the id a client sees is `<id>` + [`SEPARATOR`] + the signature's UTF-8 bytes in URL-safe
//! base64 without padding, so the id stays within `[A-Za-z0-9_-]` (Anthropic's rule for tool
//! ids). The client sends that id back (`tool_use.id`, `tool_result.tool_use_id`,
//! `function_call.call_id`, `function_call_output.call_id`), and [`split`] gives the unified id
//! and the signature again. An id without the separator, or whose tail is not such an
//! encoding, is an ordinary id.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Between the id and the encoded signature. Tool-call ids providers make (`call_…`,
/// `toolu_…`, `fc_…`, MLflow's `call_<md5>`) never contain it.
pub const SEPARATOR: &str = "__ts__";

/// The id a client sees for a call with this id and thought signature.
pub fn join<'a>(id: &'a str, signature: Option<&str>) -> Cow<'a, str> {
    match signature {
        Some(sig) => {
            let mut out = String::with_capacity(id.len() + SEPARATOR.len() + sig.len().div_ceil(3) * 4);
            out.push_str(id);
            out.push_str(SEPARATOR);
            URL_SAFE_NO_PAD.encode_string(sig.as_bytes(), &mut out);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(id),
    }
}

/// A client's call id as the unified id and the thought signature it carries, if any.
pub fn split(id: &str) -> (&str, Option<String>) {
    if let Some((head, tail)) = id.split_once(SEPARATOR)
        && let Ok(bytes) = URL_SAFE_NO_PAD.decode(tail)
        && let Ok(signature) = String::from_utf8(bytes)
    {
        return (head, Some(signature));
    }
    (id, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let sig = "CiQBfakeGeminiThoughtSignature0123456789==";
        let joined = join("call_1", Some(sig));
        assert!(joined.starts_with("call_1__ts__"), "{joined}");
        assert!(joined.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{joined}");
        assert_eq!(split(&joined), ("call_1", Some(sig.to_owned())));
        // Bytes that base64 writes as `-` and `_`.
        let odd = "\u{fb}\u{ff}?>";
        assert_eq!(split(&join("x", Some(odd))), ("x", Some(odd.to_owned())));
        assert_eq!(join("call_1", None), "call_1");
    }

    #[test]
    fn ordinary_ids_stay_whole() {
        assert_eq!(split("toolu_01ABC"), ("toolu_01ABC", None));
        assert_eq!(split(""), ("", None));
        // A tail that is not base64 of UTF-8 text: not a signature.
        assert_eq!(split("a__ts__!!"), ("a__ts__!!", None));
        assert_eq!(split("a__ts__w"), ("a__ts__w", None));
        // An empty signature round-trips as empty.
        assert_eq!(split(&join("a", Some(""))), ("a", Some(String::new())));
    }
}
