//! The one error type of the core: a machine code, the field it concerns and a human sentence.

use std::fmt;

/// Machine-readable error codes (the `code` attribute of `CoreError` in Python).
pub mod code {
    pub const AMOUNT_INVALID: &str = "amount_invalid";
    pub const AMOUNT_TOO_SMALL: &str = "amount_too_small";
    pub const CURRENCY_INVALID: &str = "currency_invalid";
    pub const PARAMETER_INVALID: &str = "parameter_invalid";
    pub const SAME_ACCOUNT: &str = "same_account";
    pub const METADATA_INVALID: &str = "metadata_invalid";
    pub const IDEMPOTENCY_KEY_MISSING: &str = "idempotency_key_missing";
    pub const IDEMPOTENCY_KEY_INVALID: &str = "idempotency_key_invalid";
    pub const MODEL_INVALID: &str = "model_invalid";
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// The message of the error that replaces a panic.
pub const INTERNAL_ERROR_MESSAGE: &str = "internal error in paysvc core";

/// A validation failure: `code` says what went wrong, `param` which field, `message` explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    pub code: &'static str,
    pub param: Option<String>,
    pub message: String,
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn new(code: &'static str, param: Option<&str>, message: impl Into<String>) -> Self {
        CoreError {
            code,
            param: param.map(str::to_owned),
            message: message.into(),
        }
    }

    /// `parameter_invalid` for `param`.
    pub fn parameter(param: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(code::PARAMETER_INVALID, param, message)
    }

    /// The error reported instead of a panic.
    pub fn internal() -> Self {
        Self::new(code::INTERNAL_ERROR, None, INTERNAL_ERROR_MESSAGE)
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CoreError {}

/// Runs `f`, turning a panic into [`CoreError::internal`]: no panic leaves the core.
pub fn catch_panics<T>(f: impl FnOnce() -> CoreResult<T>) -> CoreResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(CoreError::internal()))
}

/// The longest part of a client-supplied string that is echoed in a message.
const QUOTE_MAX_CHARS: usize = 40;

/// Quotes a client-supplied string for an error message: single quotes, control characters,
/// quotes and backslashes escaped, cut after 40 characters with an ellipsis.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4 * QUOTE_MAX_CHARS) + 8);
    out.push('\'');
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The repr Python gives a string (quotes chosen and characters escaped the same way).
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || (0x7f..0xa0).contains(&u32::from(c)) => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_message() {
        let e = CoreError::new(code::AMOUNT_INVALID, Some("amount"), "bad amount");
        assert_eq!(e.to_string(), "bad amount");
        assert_eq!(e.param.as_deref(), Some("amount"));
        assert_eq!(e.code, "amount_invalid");
    }

    #[test]
    fn parameter_and_internal() {
        let e = CoreError::parameter(None, "x");
        assert_eq!((e.code, e.param), ("parameter_invalid", None));
        let e = CoreError::internal();
        assert_eq!(e.code, "internal_error");
        assert_eq!(e.param, None);
        assert_eq!(e.message, "internal error in paysvc core");
    }

    #[test]
    fn panics_become_internal_errors() {
        assert_eq!(catch_panics(|| Ok(3)), Ok(3));
        let e = CoreError::parameter(Some("x"), "m");
        assert_eq!(catch_panics(|| Err::<(), _>(e.clone())), Err(e));
        let r: CoreResult<i64> = catch_panics(|| panic!("boom"));
        assert_eq!(r, Err(CoreError::internal()));
        let r: CoreResult<i64> = catch_panics(|| {
            let v: Vec<i64> = Vec::new();
            Ok(v[std::hint::black_box(3)])
        });
        assert_eq!(r.unwrap_err().code, "internal_error");
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr(""), "''");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(py_repr("a\\b\n\r\t"), "'a\\\\b\\n\\r\\t'");
        assert_eq!(py_repr("\u{0}\u{1f}\u{7f}\u{9f}"), "'\\x00\\x1f\\x7f\\x9f'");
        assert_eq!(py_repr("é€😀"), "'é€😀'");
    }

    #[test]
    fn quoted_escapes_and_truncates() {
        assert_eq!(quoted("abc"), "'abc'");
        assert_eq!(quoted(""), "''");
        assert_eq!(quoted("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(quoted("a\nb\tc\rd"), "'a\\nb\\tc\\rd'");
        assert_eq!(quoted("\u{1}\u{7f}"), "'\\u{0001}\\u{007f}'");
        assert_eq!(quoted("é€"), "'é€'");
        let long = "x".repeat(41);
        assert_eq!(quoted(&long), format!("'{}…'", "x".repeat(40)));
        let exact = "y".repeat(40);
        assert_eq!(quoted(&exact), format!("'{exact}'"));
    }
}
