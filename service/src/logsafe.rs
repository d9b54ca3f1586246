//! Values from requests, made safe to log.
//!
//! Logs feed terminals, text files and SIEMs. A value a caller chose (a path, a model id, a token
//! subject) reaches a log line only when it is short and made of printable ASCII without quotes,
//! backslashes or spaces: no forged lines (newlines, escape sequences), no megabyte fields, no
//! text smuggled in (a prompt pasted into a model id). Anything else is logged as
//! `<invalid: N bytes, sha256 XXXXXXXXXXXXXXXX>`, which still lets repeated values be correlated.

use std::fmt;

/// Longest request value logged verbatim unless a caller asks for another bound.
pub const MAX_LOGGED_LEN: usize = 128;

/// True when `value` may be logged verbatim: 1..=`max` bytes, each printable ASCII other than
/// space, `"` and `\`.
pub fn is_log_safe(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// Longest request path logged verbatim.
pub const MAX_LOGGED_PATH: usize = 256;

/// True when `path` may be logged verbatim: 1..=[`MAX_LOGGED_PATH`] bytes of `[A-Za-z0-9/._~-]`
/// (what our routes and ids are made of; no percent-encoded bytes).
pub fn is_log_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_LOGGED_PATH
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'~' | b'-'))
}

/// A request value for a log field (`field = %Untrusted::new(value)`): the value itself when
/// [`is_log_safe`] (or [`is_log_safe_path`] for [`Untrusted::path`]), else its length and a
/// digest prefix.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    value: &'a str,
    safe: bool,
}

impl<'a> Untrusted<'a> {
    /// At most [`MAX_LOGGED_LEN`] bytes verbatim.
    pub fn new(value: &'a str) -> Self {
        Self::with_max(value, MAX_LOGGED_LEN)
    }

    /// At most `max` bytes verbatim.
    pub fn with_max(value: &'a str, max: usize) -> Self {
        Self {
            value,
            safe: is_log_safe(value, max),
        }
    }

    /// A request path: verbatim only when [`is_log_safe_path`].
    pub fn path(value: &'a str) -> Self {
        Self {
            value,
            safe: is_log_safe_path(value),
        }
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.safe {
            f.write_str(self.value)
        } else {
            let d = ring::digest::digest(&ring::digest::SHA256, self.value.as_bytes());
            write!(f, "<invalid: {} bytes, sha256 ", self.value.len())?;
            for b in &d.as_ref()[..8] {
                write!(f, "{b:02x}")?;
            }
            f.write_str(">")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_verbatim() {
        for v in [
            "smollm2-135m-instruct",
            "/v1/chat/completions",
            "auth0|5f1c",
            "alice@example.com",
            "org/model:v1",
        ] {
            assert!(is_log_safe(v, MAX_LOGGED_LEN), "{v}");
            assert_eq!(Untrusted::new(v).to_string(), v);
        }
    }

    #[test]
    fn hostile_values_are_replaced() {
        let long = "a".repeat(MAX_LOGGED_LEN + 1);
        for v in [
            "",
            "two words",
            "line\nforged {\"level\":\"INFO\"}",
            "esc\u{1b}[31m",
            "quote\"",
            "back\\slash",
            "caf\u{e9}",
            long.as_str(),
        ] {
            assert!(!is_log_safe(v, MAX_LOGGED_LEN), "{v:?}");
            let shown = Untrusted::new(v).to_string();
            assert!(shown.starts_with("<invalid: "), "{shown}");
            assert!(!shown.contains(v) || v.is_empty(), "{shown}");
        }
        for p in ["/v1/admin/keys/k%0aforged/revoke", "/v1/a b", "/v1/\"x"] {
            assert!(!is_log_safe_path(p), "{p}");
            assert!(Untrusted::path(p).to_string().starts_with("<invalid: "));
        }
        assert!(is_log_safe_path("/v1/admin/keys/key-1.v2/rotate"));
        assert!(!is_log_safe_path(&format!(
            "/{}",
            "a".repeat(MAX_LOGGED_PATH)
        )));
        // Same value, same digest: repeated values still correlate.
        assert_eq!(
            Untrusted::new("a b").to_string(),
            Untrusted::new("a b").to_string()
        );
        assert_ne!(
            Untrusted::new("a b").to_string(),
            Untrusted::new("a c").to_string()
        );
    }
}
