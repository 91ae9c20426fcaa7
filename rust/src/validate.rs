//! Rules for single fields: Idempotency-Key headers, metadata, booleans and bounded strings.

use crate::errors::{CoreError, CoreResult, code, quoted};
use crate::value::{Value, char_len};

pub const IDEMPOTENCY_KEY_PARAM: &str = "Idempotency-Key";
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_KEY_LEN: usize = 40;
pub const MAX_METADATA_VALUE_LEN: usize = 500;

fn key_invalid(message: &str) -> CoreError {
    CoreError::new(
        code::IDEMPOTENCY_KEY_INVALID,
        Some(IDEMPOTENCY_KEY_PARAM),
        message,
    )
}

/// A key is 1..=255 characters, each printable ASCII (U+0020..=U+007E), with no ", " in it.
pub fn check_idempotency_key(key: Option<&str>, required: bool) -> CoreResult<()> {
    let Some(key) = key else {
        if required {
            return Err(CoreError::new(
                code::IDEMPOTENCY_KEY_MISSING,
                Some(IDEMPOTENCY_KEY_PARAM),
                "An Idempotency-Key header is required for this request.",
            ));
        }
        return Ok(());
    };
    if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(key_invalid(
            "The Idempotency-Key header may only contain printable ASCII characters (space through ~).",
        ));
    }
    // Two Idempotency-Key header lines reach the app joined by ", " (RFC 9110 5.3: the same
    // message as one line with a comma-separated list, and the separator proxies use), so ", "
    // means several keys: which one guards the payment would depend on who reads the header.
    // Refused, like any other ambiguity, rather than picking one. A lone comma stays a valid key
    // character (the brief allows every printable ASCII character).
    if key.contains(", ") {
        return Err(key_invalid(
            "The Idempotency-Key header must hold exactly one key: send the header once, with no \", \" in it.",
        ));
    }
    // All ASCII from here on, so bytes are characters.
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(key_invalid(&format!(
            "The Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters long; got {}.",
            key.len()
        )));
    }
    Ok(())
}

/// [`check_idempotency_key`] for a key of any type: `None` is no key, anything but a `str`
/// is `idempotency_key_invalid`.
pub fn check_idempotency_key_value(key: &Value, required: bool) -> CoreResult<()> {
    match key {
        Value::None => check_idempotency_key(None, required),
        Value::Str(s) => check_idempotency_key(Some(s), required),
        Value::InvalidStr => Err(key_invalid(
            "The Idempotency-Key header may only contain printable ASCII characters (space through ~).",
        )),
        other => Err(key_invalid(&format!(
            "The Idempotency-Key must be a string, not {}.",
            other.kind()
        ))),
    }
}

/// A `bool` (not an `int`), else `parameter_invalid` on `param`.
pub fn bool_param(v: &Value, param: &str) -> CoreResult<bool> {
    v.as_bool().ok_or_else(|| {
        CoreError::parameter(
            Some(param),
            format!(
                "{param} must be a boolean (true or false), not {}.",
                v.kind()
            ),
        )
    })
}

/// A `str` of 1..=`max` code points, else `parameter_invalid` on `param`.
pub fn bounded_str_param<'a>(
    v: &'a Value,
    max: usize,
    param: &str,
    what: &str,
) -> CoreResult<&'a str> {
    match v {
        Value::Str(s) if !s.is_empty() && char_len(s) <= max => Ok(s),
        _ => Err(CoreError::parameter(
            Some(param),
            format!("{param} must be {what}: a non-empty string of at most {max} characters."),
        )),
    }
}

/// `None`, or a `str` of at most `max` code points, else `parameter_invalid` on `param`.
pub fn optional_str_param<'a>(
    v: &'a Value,
    max: usize,
    param: &str,
) -> CoreResult<Option<&'a str>> {
    match v {
        Value::None => Ok(None),
        Value::Str(s) if char_len(s) <= max => Ok(Some(s)),
        Value::Str(_) => Err(CoreError::parameter(
            Some(param),
            format!("{param} must be at most {max} characters long."),
        )),
        Value::InvalidStr => Err(CoreError::parameter(
            Some(param),
            format!("{param} must be valid Unicode text."),
        )),
        other => Err(CoreError::parameter(
            Some(param),
            format!("{param} must be a string or null, not {}.", other.kind()),
        )),
    }
}

fn metadata_error(message: String) -> CoreError {
    CoreError::new(code::METADATA_INVALID, Some("metadata"), message)
}

/// `None` or a `dict` of at most 50 entries, each key a `str` of 1..=40 code points and each
/// value a `str` of at most 500 code points. Returns the entries in order (none for `None`).
pub fn validate_metadata(v: &Value) -> CoreResult<Vec<(String, String)>> {
    let entries = match v {
        Value::None => return Ok(Vec::new()),
        Value::Dict(entries) => entries,
        other => {
            return Err(metadata_error(format!(
                "metadata must be an object of string keys and string values, not {}.",
                other.kind()
            )));
        }
    };
    if entries.len() > MAX_METADATA_KEYS {
        return Err(metadata_error(format!(
            "metadata can have at most {MAX_METADATA_KEYS} keys; got {}.",
            entries.len()
        )));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (k, val) in entries {
        let key = match k {
            Value::Str(s) => s,
            Value::InvalidStr => {
                return Err(metadata_error(
                    "metadata keys must be valid Unicode text.".to_owned(),
                ));
            }
            other => {
                return Err(metadata_error(format!(
                    "metadata keys must be strings, not {}.",
                    other.kind()
                )));
            }
        };
        if key.is_empty() {
            return Err(metadata_error(
                "metadata keys must not be empty.".to_owned(),
            ));
        }
        if char_len(key) > MAX_METADATA_KEY_LEN {
            return Err(metadata_error(format!(
                "metadata key {} is longer than {MAX_METADATA_KEY_LEN} characters.",
                quoted(key)
            )));
        }
        let value = match val {
            Value::Str(s) => s,
            Value::InvalidStr => {
                return Err(metadata_error(format!(
                    "metadata value for key {} must be valid Unicode text.",
                    quoted(key)
                )));
            }
            other => {
                return Err(metadata_error(format!(
                    "metadata value for key {} must be a string, not {}.",
                    quoted(key),
                    other.kind()
                )));
            }
        };
        if char_len(value) > MAX_METADATA_VALUE_LEN {
            return Err(metadata_error(format!(
                "metadata value for key {} is longer than {MAX_METADATA_VALUE_LEN} characters.",
                quoted(key)
            )));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

/// Metadata entries as a JSON object value (for fingerprints).
pub fn metadata_value(entries: &[(String, String)]) -> Value {
    Value::Dict(
        entries
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_err(key: &str) -> &'static str {
        check_idempotency_key(Some(key), true).unwrap_err().code
    }

    #[test]
    fn idempotency_key_presence() {
        let e = check_idempotency_key(None, true).unwrap_err();
        assert_eq!(e.code, "idempotency_key_missing");
        assert_eq!(e.param.as_deref(), Some("Idempotency-Key"));
        assert_eq!(
            e.message,
            "An Idempotency-Key header is required for this request."
        );
        assert_eq!(check_idempotency_key(None, false), Ok(()));
    }

    #[test]
    fn idempotency_key_length() {
        assert_eq!(check_idempotency_key(Some("a"), true), Ok(()));
        assert_eq!(check_idempotency_key(Some(&"k".repeat(255)), false), Ok(()));
        assert_eq!(key_err(""), "idempotency_key_invalid");
        assert_eq!(key_err(&"k".repeat(256)), "idempotency_key_invalid");
        let e = check_idempotency_key(Some(""), false).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("Idempotency-Key"));
    }

    #[test]
    fn idempotency_key_characters() {
        assert_eq!(check_idempotency_key(Some(" "), true), Ok(()));
        assert_eq!(check_idempotency_key(Some("~"), true), Ok(()));
        assert_eq!(check_idempotency_key(Some(" !azAZ09~{}"), true), Ok(()));
        assert_eq!(check_idempotency_key(Some("a,b"), true), Ok(()));
        assert_eq!(check_idempotency_key(Some(","), true), Ok(()));
        for bad in [
            "a\u{1f}",
            "\u{7f}",
            "caf\u{e9}",
            "tab\t",
            "nl\n",
            "\u{0}",
            "😀",
            "a, b",
            ", ",
        ] {
            assert_eq!(key_err(bad), "idempotency_key_invalid", "{bad:?}");
        }
    }

    #[test]
    fn idempotency_key_values() {
        assert_eq!(check_idempotency_key_value(&Value::None, false), Ok(()));
        assert_eq!(
            check_idempotency_key_value(&Value::None, true)
                .unwrap_err()
                .code,
            "idempotency_key_missing"
        );
        assert_eq!(
            check_idempotency_key_value(&Value::str("k-1"), true),
            Ok(())
        );
        for bad in [
            Value::Int(1),
            Value::InvalidStr,
            Value::Bool(true),
            Value::List(vec![]),
        ] {
            let e = check_idempotency_key_value(&bad, false).unwrap_err();
            assert_eq!(e.code, "idempotency_key_invalid", "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(bool_param(&Value::Bool(true), "capture"), Ok(true));
        assert_eq!(bool_param(&Value::Bool(false), "capture"), Ok(false));
        for bad in [
            Value::Int(1),
            Value::Int(0),
            Value::None,
            Value::str("true"),
        ] {
            let e = bool_param(&bad, "capture").unwrap_err();
            assert_eq!(
                (e.code, e.param.as_deref()),
                ("parameter_invalid", Some("capture"))
            );
        }
    }

    #[test]
    fn bounded_strings() {
        let ok = |v: &Value| bounded_str_param(v, 3, "source", "an account id").map(str::to_owned);
        assert_eq!(ok(&Value::str("a")), Ok("a".to_owned()));
        assert_eq!(ok(&Value::str("ééé")), Ok("ééé".to_owned()));
        for bad in [
            Value::str(""),
            Value::str("abcd"),
            Value::None,
            Value::Int(1),
            Value::InvalidStr,
        ] {
            let e = ok(&bad).unwrap_err();
            assert_eq!(
                (e.code, e.param.as_deref()),
                ("parameter_invalid", Some("source"))
            );
        }
        assert_eq!(optional_str_param(&Value::None, 2, "d"), Ok(None));
        assert_eq!(optional_str_param(&Value::str(""), 2, "d"), Ok(Some("")));
        assert_eq!(
            optional_str_param(&Value::str("€€"), 2, "d"),
            Ok(Some("€€"))
        );
        for bad in [Value::str("abc"), Value::Int(1), Value::InvalidStr] {
            let e = optional_str_param(&bad, 2, "d").unwrap_err();
            assert_eq!(e.param.as_deref(), Some("d"));
        }
    }

    fn meta(entries: Vec<(Value, Value)>) -> Value {
        Value::Dict(entries)
    }

    fn meta_err(v: &Value) -> String {
        let e = validate_metadata(v).unwrap_err();
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("metadata_invalid", Some("metadata"))
        );
        e.message
    }

    #[test]
    fn metadata_ok() {
        assert_eq!(validate_metadata(&Value::None), Ok(vec![]));
        assert_eq!(validate_metadata(&meta(vec![])), Ok(vec![]));
        let m = meta(vec![
            (Value::str(&"é".repeat(40)), Value::str(&"€".repeat(500))),
            (Value::str("b"), Value::str("")),
        ]);
        let got = validate_metadata(&m).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("b".to_owned(), String::new()));
        let fifty = meta(
            (0..50)
                .map(|i| (Value::Str(format!("k{i}")), Value::str("v")))
                .collect(),
        );
        assert_eq!(validate_metadata(&fifty).unwrap().len(), 50);
    }

    #[test]
    fn metadata_limits() {
        let fifty_one = meta(
            (0..51)
                .map(|i| (Value::Str(format!("k{i}")), Value::str("v")))
                .collect(),
        );
        assert!(meta_err(&fifty_one).contains("at most 50 keys"));
        let long_key = meta(vec![(Value::str(&"k".repeat(41)), Value::str("v"))]);
        assert!(meta_err(&long_key).contains("is longer than 40 characters"));
        let long_value = meta(vec![(Value::str("x"), Value::str(&"v".repeat(501)))]);
        assert_eq!(
            meta_err(&long_value),
            "metadata value for key 'x' is longer than 500 characters."
        );
        let empty_key = meta(vec![(Value::str(""), Value::str("v"))]);
        assert!(meta_err(&empty_key).contains("must not be empty"));
    }

    #[test]
    fn metadata_types() {
        for bad in [
            Value::Int(1),
            Value::str("x"),
            Value::List(vec![]),
            meta(vec![(Value::Int(1), Value::str("v"))]),
            meta(vec![(Value::InvalidStr, Value::str("v"))]),
            meta(vec![(Value::str("k"), Value::Int(1))]),
            meta(vec![(Value::str("k"), Value::None)]),
            meta(vec![(Value::str("k"), Value::InvalidStr)]),
            meta(vec![(Value::str("k"), Value::Dict(vec![]))]),
        ] {
            meta_err(&bad);
        }
        let named = meta(vec![
            (Value::str("ok"), Value::str("v")),
            (Value::str("count"), Value::Int(3)),
        ]);
        assert_eq!(
            meta_err(&named),
            "metadata value for key 'count' must be a string, not an integer."
        );
    }

    #[test]
    fn metadata_as_value() {
        let v = metadata_value(&[("a".into(), "b".into())]);
        assert_eq!(v, Value::Dict(vec![(Value::str("a"), Value::str("b"))]));
    }
}
