//! aigw's own settings: the optional top-level `aigw:` block of the gateway YAML.
//!
//! MLflow ignores unknown top-level keys, so a file with this block still loads in MLflow.

use serde_json::{Map, Value};

use super::fields::{ConfigMap, FieldError};

/// Default largest accepted request body: 16 MiB.
pub const DEFAULT_MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;
/// Default largest upstream response body buffered for translation: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

/// Settings from the `aigw:` block, with their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Largest request body accepted on any route (`max_request_body`, bytes or `16MiB`).
    pub max_request_body: usize,
    /// Largest non-streaming upstream response read for translation (`max_response_body`).
    pub max_response_body: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_request_body: DEFAULT_MAX_REQUEST_BODY, max_response_body: DEFAULT_MAX_RESPONSE_BODY }
    }
}

impl Settings {
    /// Parse the `aigw:` mapping. Unknown keys are an error here: this block is ours, and a
    /// typo in a security or limit setting must not pass silently.
    pub fn parse(map: &Map<String, Value>) -> Result<Settings, FieldError> {
        let mut m = ConfigMap::new(map, "");
        let mut s = Settings::default();
        if let Some(v) = m.value("max_request_body") {
            s.max_request_body = parse_size(v).ok_or_else(|| m.error("max_request_body", SIZE_HELP))?;
        }
        if let Some(v) = m.value("max_response_body") {
            s.max_response_body = parse_size(v).ok_or_else(|| m.error("max_response_body", SIZE_HELP))?;
        }
        if let Some((key, _)) = m.unread().next() {
            return Err(m.error(key, "unknown setting"));
        }
        Ok(s)
    }
}

const SIZE_HELP: &str = "expected a positive size in bytes, or with a unit: 512KiB, 16MiB, 1GiB";

/// A byte size: an integer, or a number with `B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB` (all binary).
pub fn parse_size(v: &Value) -> Option<usize> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let num: u64 = num.parse().ok()?;
            let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            num.checked_mul(mult)?
        }
        _ => return None,
    };
    (n > 0).then(|| usize::try_from(n).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&json!(1024)), Some(1024));
        assert_eq!(parse_size(&json!("16MiB")), Some(16 << 20));
        assert_eq!(parse_size(&json!("512 KB")), Some(512 << 10));
        assert_eq!(parse_size(&json!("0")), None);
        assert_eq!(parse_size(&json!("12 parsecs")), None);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let m = json!({"max_request_bdy": 5});
        let err = Settings::parse(m.as_object().unwrap()).unwrap_err();
        assert_eq!(err.field, "max_request_bdy");
    }
}
