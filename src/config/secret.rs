//! Secrets in the gateway YAML: API keys, tokens, passwords.
//!
//! A secret field accepts, in this order (MLflow's rules, with docs/mlflow-compat.md#fix-12):
//! 1. `$NAME` or `${NAME}`: the value of environment variable `NAME` (unset or empty is an error);
//! 2. a path to an existing file: the file's content, with surrounding whitespace trimmed;
//! 3. anything else: the literal value.
//!
//! A [`Secret`] never prints its value: `Debug` shows `Secret(***)` and there is no `Display`.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

thread_local! {
    /// Secrets resolved while a configuration is being loaded on this thread (see [`collect`]).
    static COLLECTED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Run `load` and return, beside its result, every secret value resolved meanwhile, so the
/// configuration can scrub them from messages.
pub fn collect<T>(load: impl FnOnce() -> T) -> (T, Vec<String>) {
    COLLECTED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = load();
    let secrets = COLLECTED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, secrets)
}

/// Treat `value` as a secret of the configuration being loaded (scrubbed from messages), e.g.
/// the password inside a URL that was itself resolved as a secret.
pub fn register(value: &str) {
    remember(value);
}

fn remember(value: &str) {
    COLLECTED.with(|c| {
        if let Some(list) = c.borrow_mut().as_mut() {
            list.push(value.to_owned());
        }
    });
}

/// A resolved credential. Read it with [`Secret::expose`] only where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap an already resolved value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value, for building an upstream header or signing a request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the resolved value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Resolve a secret reference as described in the module docs.
///
/// Errors never contain the value itself; they name the variable or the file.
pub fn resolve(input: &str) -> Result<Secret, String> {
    let value = lookup(input)?;
    remember(&value);
    Ok(Secret(value))
}

/// Resolve a reference as [`resolve`] does, without making the whole value a secret of the
/// configuration: for a URL whose only secret parts are its credentials, which the caller
/// registers itself (the rest, host and port, is named in errors).
pub fn resolve_url(input: &str) -> Result<String, String> {
    lookup(input)
}

fn lookup(input: &str) -> Result<String, String> {
    if let Some(rest) = input.strip_prefix('$') {
        let name = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(rest);
        return match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("Environment variable '{name}' is not set")),
        };
    }
    let path = Path::new(input);
    // Over-long or odd strings make `is_file` fail; like MLflow, fall through to a literal.
    if path.is_file() {
        return std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("cannot read the secret file '{input}': {e}"));
    }
    Ok(input.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(s)), "Some(Secret(***))");
    }

    #[test]
    fn env_forms() {
        // PATH is set in every test environment; no need to mutate the process environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(resolve("$PATH").unwrap().expose(), path);
        assert_eq!(resolve("${PATH}").unwrap().expose(), path);
        let err = resolve("$AIGW_SECRET_TEST_UNSET").unwrap_err();
        assert_eq!(err, "Environment variable 'AIGW_SECRET_TEST_UNSET' is not set");
    }

    #[test]
    fn file_is_trimmed_and_missing_path_is_literal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.txt");
        std::fs::write(&p, "file-secret\n").unwrap();
        assert_eq!(resolve(p.to_str().unwrap()).unwrap().expose(), "file-secret");
        assert_eq!(resolve("/not/a/real/path").unwrap().expose(), "/not/a/real/path");
        assert_eq!(resolve("sk-literal").unwrap().expose(), "sk-literal");
    }
}
