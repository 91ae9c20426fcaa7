//! Request fingerprints: SHA-256 of the method, the path and the canonical JSON of the body.
//!
//! The canonical JSON is byte for byte what Python writes with
//! `json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::errors::{CoreError, CoreResult};
use crate::value::{MAX_DEPTH, MAX_VALUES, Value};

fn body_error(message: impl Into<String>) -> CoreError {
    CoreError::parameter(None, message)
}

/// Appends `s` as a JSON string literal, escaped as Python's `json` module does with
/// `ensure_ascii=False`: `\" \\ \n \r \t \b \f`, other characters below U+0020 as `\u00XX`
/// (lower-case hex), everything else (DEL and all non-ASCII) as is.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    // Most strings need no escape at all: copy them whole (measured: a 37-character account id
    // took about 270 ns char by char, most of a fingerprint's time).
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `depth` is the number of containers around `v`.
fn write_value(out: &mut String, v: &Value, depth: usize) -> CoreResult<()> {
    let too_deep = || {
        body_error(format!(
            "The request body is nested more than {MAX_DEPTH} levels deep."
        ))
    };
    match v {
        Value::None => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => {
            // Writing into a String cannot fail.
            let _ = write!(out, "{i}");
        }
        Value::Str(s) => write_json_string(out, s),
        Value::BigInt => {
            return Err(body_error(
                "The request body contains an integer outside the 64-bit range.",
            ));
        }
        Value::InvalidStr => {
            return Err(body_error(
                "The request body contains a string that is not valid Unicode (an unpaired surrogate).",
            ));
        }
        Value::TooDeep => return Err(too_deep()),
        Value::TooLarge => {
            return Err(body_error(format!(
                "The request body holds more than {MAX_VALUES} values."
            )));
        }
        Value::Unsupported(name) => {
            return Err(body_error(format!(
                "The request body contains a value of type '{name}'; only null, booleans, \
                 integers, strings, lists and objects with string keys are allowed."
            )));
        }
        Value::List(items) => {
            if depth >= MAX_DEPTH {
                return Err(too_deep());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Dict(entries) => {
            if depth >= MAX_DEPTH {
                return Err(too_deep());
            }
            let mut sorted = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                match k {
                    Value::Str(s) => sorted.push((s.as_str(), v)),
                    Value::InvalidStr => return write_value(out, k, depth),
                    _ => {
                        return Err(body_error(format!(
                            "The request body contains an object key that is {}; keys must be strings.",
                            k.kind()
                        )));
                    }
                }
            }
            // Byte order of UTF-8 is code point order, which is how Python sorts `str`.
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_value(out, v, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The canonical JSON text of `body`; `parameter_invalid` (no param) for what JSON cannot hold.
pub fn canonical_json(body: &Value) -> CoreResult<String> {
    let mut out = String::with_capacity(256);
    write_value(&mut out, body, 0)?;
    Ok(out)
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Lower-case hex SHA-256 of `METHOD + "\n" + path + "\n" + canonical_json(body)`.
/// `method` must be ASCII (it is upper-cased); see [`fingerprint_values`].
pub fn fingerprint(method: &str, path: &str, body: &Value) -> CoreResult<String> {
    let json = canonical_json(body)?;
    Ok(digest(&method.to_ascii_uppercase(), path, &json))
}

/// The fields of a payment request's body, already validated (see `plans::prepare_payment`).
pub struct PaymentBody<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub source: &'a str,
    pub destination: &'a str,
    pub capture: bool,
    pub description: Option<&'a str>,
    pub metadata: &'a [(String, String)],
    pub expires_in_s: Option<i64>,
}

/// `fingerprint("POST", path, body)` of a payment body, written straight from its fields instead of
/// through a [`Value`] tree (measured: building and dropping the tree was about a quarter of
/// `prepare_payment`). Keys in sorted order, as `canonical_json` writes them; the tests hold the
/// two to the same bytes.
pub fn payment_fingerprint(path: &str, body: &PaymentBody<'_>) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{{\"amount\":{},\"capture\":{},\"currency\":",
        body.amount, body.capture
    );
    write_json_string(&mut out, body.currency);
    out.push_str(",\"description\":");
    match body.description {
        Some(d) => write_json_string(&mut out, d),
        None => out.push_str("null"),
    }
    out.push_str(",\"destination\":");
    write_json_string(&mut out, body.destination);
    out.push_str(",\"expires_in_s\":");
    match body.expires_in_s {
        Some(e) => {
            let _ = write!(out, "{e}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"metadata\":{");
    let mut entries: Vec<&(String, String)> = body.metadata.iter().collect();
    if entries.len() > 1 {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, k);
        out.push(':');
        write_json_string(&mut out, v);
    }
    out.push_str("},\"source\":");
    write_json_string(&mut out, body.source);
    out.push('}');
    digest("POST", path, &out)
}

/// `method` is upper-case already.
fn digest(method: &str, path: &str, json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(json.as_bytes());
    hex_lower(&hasher.finalize())
}

/// `fingerprint(method, path, body)` for arguments of any type: `method` must be an ASCII
/// string (an HTTP method name), `path` a string.
pub fn fingerprint_values(method: &Value, path: &Value, body: &Value) -> CoreResult<String> {
    let method = match method {
        Value::Str(m) if m.is_ascii() => m,
        _ => {
            return Err(CoreError::parameter(
                Some("method"),
                "method must be an HTTP method name in ASCII, such as POST.",
            ));
        }
    };
    let path = path.as_str().ok_or_else(|| {
        CoreError::parameter(
            Some("path"),
            "path must be a string (the request path, such as /v1/payments).",
        )
    })?;
    fingerprint(method, path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    fn json(v: &Value) -> String {
        canonical_json(v).unwrap()
    }

    fn nested_lists(n: usize) -> Value {
        let mut v = Value::Int(1);
        for _ in 0..n {
            v = Value::List(vec![v]);
        }
        v
    }

    #[test]
    fn scalars() {
        assert_eq!(json(&Value::None), "null");
        assert_eq!(json(&Value::Bool(true)), "true");
        assert_eq!(json(&Value::Bool(false)), "false");
        assert_eq!(json(&Value::Int(0)), "0");
        assert_eq!(json(&Value::Int(-17)), "-17");
        assert_eq!(json(&Value::Int(i64::MAX)), "9223372036854775807");
        assert_eq!(json(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(json(&s("")), "\"\"");
    }

    #[test]
    fn string_escapes_match_python() {
        assert_eq!(json(&s("a\"b\\c")), r#""a\"b\\c""#);
        assert_eq!(json(&s("\n\r\t\u{8}\u{c}")), r#""\n\r\t\b\f""#);
        assert_eq!(json(&s("\u{0}\u{1}\u{1f}")), r#""\u0000\u0001\u001f""#);
        assert_eq!(json(&s("\u{1b}\u{0b}")), r#""\u001b\u000b""#);
        assert_eq!(json(&s("\u{7f}")), "\"\u{7f}\"");
        assert_eq!(json(&s("é€😀\u{2028}\u{fffe}")), "\"é€😀\u{2028}\u{fffe}\"");
        assert_eq!(json(&s("/<>&'")), "\"/<>&'\"");
    }

    #[test]
    fn containers_sorted_and_compact() {
        let v = Value::Dict(vec![
            (
                s("b"),
                Value::List(vec![Value::Int(1), Value::None, s("x")]),
            ),
            (s("a"), Value::Dict(vec![])),
            (s("é"), Value::Bool(true)),
            (s("Z"), Value::List(vec![])),
            (s("ab"), Value::Int(2)),
        ]);
        assert_eq!(
            json(&v),
            r#"{"Z":[],"a":{},"ab":2,"b":[1,null,"x"],"é":true}"#
        );
    }

    #[test]
    fn keys_sort_by_code_point() {
        // U+FB01 sorts before U+1F600 both in UTF-8 bytes and in code points (UTF-16 would not).
        let v = Value::Dict(vec![
            (s("😀"), Value::Int(1)),
            (s("ﬁ"), Value::Int(2)),
            (s("\u{7f}"), Value::Int(3)),
            (s(""), Value::Int(4)),
        ]);
        assert_eq!(json(&v), "{\"\":4,\"\u{7f}\":3,\"ﬁ\":2,\"😀\":1}");
    }

    #[test]
    fn key_order_does_not_matter() {
        let a = Value::Dict(vec![(s("x"), Value::Int(1)), (s("y"), Value::Int(2))]);
        let b = Value::Dict(vec![(s("y"), Value::Int(2)), (s("x"), Value::Int(1))]);
        assert_eq!(
            fingerprint("POST", "/p", &a).unwrap(),
            fingerprint("POST", "/p", &b).unwrap()
        );
    }

    #[test]
    fn depth_limit() {
        assert!(canonical_json(&nested_lists(MAX_DEPTH)).is_ok());
        let e = canonical_json(&nested_lists(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!((e.code, e.param), ("parameter_invalid", None));
        let mut d = Value::None;
        for _ in 0..=MAX_DEPTH {
            d = Value::Dict(vec![(s("k"), d)]);
        }
        assert!(canonical_json(&d).is_err());
        assert!(canonical_json(&Value::List(vec![Value::TooDeep])).is_err());
    }

    #[test]
    fn unsupported_values() {
        for bad in [
            Value::BigInt,
            Value::InvalidStr,
            Value::TooDeep,
            Value::TooLarge,
            Value::List(vec![Value::TooLarge]),
            Value::Unsupported("float".into()),
            Value::List(vec![Value::Int(1), Value::Unsupported("bytes".into())]),
            Value::Dict(vec![(Value::Int(1), Value::Int(1))]),
            Value::Dict(vec![(Value::None, Value::Int(1))]),
            Value::Dict(vec![(Value::InvalidStr, Value::Int(1))]),
            Value::Dict(vec![(s("k"), Value::BigInt)]),
        ] {
            let e = canonical_json(&bad).unwrap_err();
            assert_eq!(
                (e.code, e.param.clone()),
                ("parameter_invalid", None),
                "{bad:?}"
            );
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn known_digests() {
        // printf 'POST\n/v1/payments\n{"a":1}' | sha256sum
        let body = Value::Dict(vec![(s("a"), Value::Int(1))]);
        assert_eq!(
            fingerprint("post", "/v1/payments", &body).unwrap(),
            "98482f14f0c38a774016e604a73a6d6e6309989fa5722fa94cb2fc11ea2e8360"
        );
    }

    #[test]
    fn digest_shape_and_method_case() {
        let f = fingerprint("PoSt", "/x", &Value::None).unwrap();
        assert_eq!(f.len(), 64);
        assert!(
            f.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(f, fingerprint("POST", "/x", &Value::None).unwrap());
        assert_ne!(f, fingerprint("POST", "/y", &Value::None).unwrap());
        assert_ne!(f, fingerprint("PUT", "/x", &Value::None).unwrap());
    }

    #[test]
    fn method_and_path_arguments() {
        let ok = fingerprint_values(&s("get"), &s("/a"), &Value::Int(1)).unwrap();
        assert_eq!(ok, fingerprint("GET", "/a", &Value::Int(1)).unwrap());
        for bad in [Value::None, Value::Int(1), s("PÖST"), Value::InvalidStr] {
            let e = fingerprint_values(&bad, &s("/a"), &Value::None).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("method"));
            assert_eq!(e.code, "parameter_invalid");
        }
        for bad in [Value::None, Value::Int(1), Value::InvalidStr] {
            let e = fingerprint_values(&s("POST"), &bad, &Value::None).unwrap_err();
            assert_eq!(e.param.as_deref(), Some("path"));
        }
        let e = fingerprint_values(&s("POST"), &s("/"), &Value::BigInt).unwrap_err();
        assert_eq!(e.param, None);
        // an empty method and a path with non-ASCII text are fine
        assert!(fingerprint_values(&s(""), &s("/é"), &Value::None).is_ok());
    }

    #[test]
    fn payment_body_matches_the_generic_writer() {
        let metadata = [
            ("z\"k".to_owned(), "v\n1".to_owned()),
            ("a".to_owned(), "\u{1F600}".to_owned()),
            ("\u{FB01}".to_owned(), String::new()),
        ];
        for (description, expires_in_s, capture, meta) in [
            (Some("order \"42\"\t"), None, true, &metadata[..]),
            (None, Some(3600), false, &metadata[..0]),
            (Some(""), Some(1), false, &metadata[1..]),
        ] {
            let body = PaymentBody {
                amount: 9_007_199_254_740_993,
                currency: "USD",
                source: "acct_1",
                destination: "acct_\\2",
                capture,
                description,
                metadata: meta,
                expires_in_s,
            };
            let tree = Value::object([
                ("amount", Value::Int(body.amount)),
                ("currency", Value::str(body.currency)),
                ("source", Value::str(body.source)),
                ("destination", Value::str(body.destination)),
                ("capture", Value::Bool(capture)),
                ("description", description.map_or(Value::None, Value::str)),
                (
                    "metadata",
                    Value::Dict(
                        meta.iter()
                            .map(|(k, v)| (Value::str(k), Value::str(v)))
                            .collect(),
                    ),
                ),
                ("expires_in_s", expires_in_s.map_or(Value::None, Value::Int)),
            ]);
            assert_eq!(
                payment_fingerprint("/v1/payments", &body),
                fingerprint("POST", "/v1/payments", &tree).unwrap()
            );
        }
    }

    #[test]
    fn hex() {
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex_lower(&[]), "");
    }
}
