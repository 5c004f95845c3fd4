//! Typed access to one YAML mapping (a provider's `model.config`, `aws_config`, the `aigw:`
//! settings block) that remembers which keys were read, so the rest can be reported or used as
//! model defaults, and that names the field in every error.

use serde_json::{Map, Value};

use super::secret::{self, Secret};
use crate::config::BaseUrl;

/// A problem with one field, relative to the endpoint (e.g. `model.config.openai_api_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, empty when the problem is with the entry as a whole.
    pub field: String,
    /// What is wrong. Never contains a secret value.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// The message pydantic gives for a required field that is absent.
pub const FIELD_REQUIRED: &str = "Field required";

const NOT_A_STRING_KEY: &str = "The api key provided is not a string. Please provide either an \
    environment variable key, a path to a file containing the api key, or the api key itself";

/// A mapping being read field by field.
pub struct ConfigMap<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    used: Vec<&'a str>,
}

impl<'a> ConfigMap<'a> {
    /// Read `map`, whose fields are reported as `<prefix>.<key>`.
    pub fn new(map: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        ConfigMap { map, prefix: prefix.into(), used: Vec::new() }
    }

    /// The dotted path of `key` in this mapping.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}.{key}", self.prefix) }
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> FieldError {
        FieldError::new(self.path(key), message)
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.push(k.as_str());
        if v.is_null() { None } else { Some(v) }
    }

    /// Whether `key` is present with a non-null value (does not mark it as read).
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// A secret field (see [`secret::resolve`]); absent or null gives `None`.
    pub fn secret(&mut self, key: &str) -> Result<Option<Secret>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => secret::resolve(s).map(Some).map_err(|m| self.error(key, m)),
            Some(_) => Err(self.error(key, NOT_A_STRING_KEY)),
        }
    }

    /// A required secret field.
    pub fn required_secret(&mut self, key: &str) -> Result<Secret, FieldError> {
        self.secret(key)?.ok_or_else(|| self.error(key, FIELD_REQUIRED))
    }

    /// A string field; absent or null gives `None`.
    pub fn string(&mut self, key: &str) -> Result<Option<String>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.error(key, "Input should be a valid string")),
        }
    }

    /// A required string field.
    pub fn required_string(&mut self, key: &str) -> Result<String, FieldError> {
        self.string(key)?.ok_or_else(|| self.error(key, FIELD_REQUIRED))
    }

    /// A base URL field (`http://` or `https://`).
    pub fn url(&mut self, key: &str) -> Result<Option<BaseUrl>, FieldError> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => BaseUrl::parse(&s).map(Some).map_err(|m| self.error(key, m)),
        }
    }

    /// A non-negative integer field (integral floats and numeric strings are accepted, as
    /// pydantic's lax mode does).
    pub fn u64(&mut self, key: &str) -> Result<Option<u64>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => {
                as_u64(v).map(Some).ok_or_else(|| self.error(key, "Input should be a valid non-negative integer"))
            }
        }
    }

    /// A non-negative number field.
    pub fn f64(&mut self, key: &str) -> Result<Option<f64>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                .map(Some)
                .ok_or_else(|| self.error(key, "Input should be a valid non-negative number")),
        }
    }

    /// A boolean field (`true/false`, and the strings pydantic accepts).
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "y" | "t" => Ok(Some(true)),
                "false" | "no" | "off" | "0" | "n" | "f" => Ok(Some(false)),
                _ => Err(self.error(key, "Input should be a valid boolean")),
            },
            Some(_) => Err(self.error(key, "Input should be a valid boolean")),
        }
    }

    /// A nested mapping field.
    pub fn map(&mut self, key: &str) -> Result<Option<&'a Map<String, Value>>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.error(key, "Input should be a valid dictionary")),
        }
    }

    /// A list of strings field.
    pub fn string_list(&mut self, key: &str) -> Result<Option<Vec<String>>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| self.error(key, "Input should be a list of strings")),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()))
            }
            Some(_) => Err(self.error(key, "Input should be a list of strings")),
        }
    }

    /// Any JSON value, unchecked.
    pub fn value(&mut self, key: &str) -> Option<&'a Value> {
        self.take(key)
    }

    /// The keys that were not read, in file order.
    pub fn unread(&self) -> impl Iterator<Item = (&'a String, &'a Value)> + '_ {
        self.map.iter().filter(|(k, _)| !self.used.contains(&k.as_str()))
    }
}

/// A non-negative integer from a JSON value, with pydantic's lax coercions.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => {
            n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19).map(|f| f as u64))
        }
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
