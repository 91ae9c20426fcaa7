//! The checks of the risk functions' arguments, read by the binding without judging them (like
//! every core function: a wrong type is a `CoreError` naming the parameter, never a crash).

use crate::errors::{CoreError, CoreResult};
use crate::value::Value;

/// An argument that may be `bytes` (account ids, states, model files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A Python `bytes` (exactly that type).
    Bytes(Vec<u8>),
    Value(Value),
}

fn invalid(param: &str, what: &str, got: &str) -> CoreError {
    CoreError::parameter(Some(param), format!("{param} must be {what}, not {got}."))
}

fn kind_of(i: &Input) -> String {
    match i {
        Input::Bytes(_) => "bytes".to_owned(),
        Input::Value(v) => v.kind(),
    }
}

pub fn int(v: &Value, param: &str) -> CoreResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(invalid(param, "a 64-bit integer", &other.kind())),
    }
}

pub fn int_of(i: &Input, param: &str) -> CoreResult<i64> {
    match i {
        Input::Value(v) => int(v, param),
        other => Err(invalid(param, "a 64-bit integer", &kind_of(other))),
    }
}

pub fn str_of<'a>(i: &'a Input, param: &str) -> CoreResult<&'a str> {
    match i {
        Input::Value(Value::Str(s)) => Ok(s),
        other => Err(invalid(param, "a string", &kind_of(other))),
    }
}

pub fn opt_str_of<'a>(i: &'a Input, param: &str) -> CoreResult<Option<&'a str>> {
    match i {
        Input::Value(Value::None) => Ok(None),
        Input::Value(Value::Str(s)) => Ok(Some(s)),
        other => Err(invalid(param, "a string or None", &kind_of(other))),
    }
}

pub fn bool_of(i: &Input, param: &str) -> CoreResult<bool> {
    match i {
        Input::Value(Value::Bool(b)) => Ok(*b),
        other => Err(invalid(param, "a boolean", &kind_of(other))),
    }
}

pub fn bytes_of<'a>(i: &'a Input, param: &str) -> CoreResult<&'a [u8]> {
    match i {
        Input::Bytes(b) => Ok(b),
        other => Err(invalid(param, "bytes", &kind_of(other))),
    }
}

pub fn opt_bytes_of<'a>(i: &'a Input, param: &str) -> CoreResult<Option<&'a [u8]>> {
    match i {
        Input::Bytes(b) => Ok(Some(b)),
        Input::Value(Value::None) => Ok(None),
        other => Err(invalid(param, "bytes or None", &kind_of(other))),
    }
}

/// `None` or a dict of string keys and values (the payment's metadata, checked as the API does).
pub fn metadata_of(i: &Input) -> CoreResult<Vec<(String, String)>> {
    match i {
        Input::Value(v) => crate::validate::validate_metadata(v),
        other => Err(CoreError::new(
            crate::errors::code::METADATA_INVALID,
            Some("metadata"),
            format!(
                "metadata must be an object of string keys and string values, not {}.",
                kind_of(other)
            ),
        )),
    }
}

fn items<'a>(v: &'a Value, param: &str, what: &str) -> CoreResult<&'a [Value]> {
    match v {
        Value::List(items) => Ok(items),
        other => Err(invalid(param, what, &other.kind())),
    }
}

/// A list of predicate strings; a non-string is `rules[i].predicate` like a bad predicate.
pub fn predicates_of(i: &Input) -> CoreResult<Vec<&str>> {
    let Input::Value(v) = i else {
        return Err(invalid("predicates", "a list of strings", &kind_of(i)));
    };
    items(v, "predicates", "a list of strings")?
        .iter()
        .enumerate()
        .map(|(n, p)| match p {
            Value::Str(s) => Ok(s.as_str()),
            other => Err(invalid(
                &format!("rules[{n}].predicate"),
                "a string",
                &other.kind(),
            )),
        })
        .collect()
}

/// A list of `(id, action, predicate)` strings.
pub fn rules_of(i: &Input) -> CoreResult<Vec<(String, String, String)>> {
    let what = "a list of (id, action, predicate) string triples";
    let Input::Value(v) = i else {
        return Err(invalid("rules", what, &kind_of(i)));
    };
    items(v, "rules", what)?
        .iter()
        .enumerate()
        .map(|(n, rule)| {
            let param = format!("rules[{n}]");
            match items(rule, &param, "an (id, action, predicate) triple")? {
                [Value::Str(id), Value::Str(action), Value::Str(predicate)] => {
                    Ok((id.clone(), action.clone(), predicate.clone()))
                }
                _ => Err(CoreError::parameter(
                    Some(&param),
                    format!("{param} must be an (id, action, predicate) triple of strings."),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: Value) -> Input {
        Input::Value(x)
    }

    #[test]
    fn scalars() {
        assert_eq!(int_of(&v(Value::Int(3)), "n"), Ok(3));
        let e = int_of(&v(Value::BigInt), "now_s").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("now_s"));
        assert!(e.message.contains("now_s must be a 64-bit integer"));
        assert!(
            int_of(&Input::Bytes(vec![]), "n")
                .unwrap_err()
                .message
                .contains("not bytes")
        );
        assert_eq!(str_of(&v(Value::str("a")), "s"), Ok("a"));
        assert!(str_of(&v(Value::InvalidStr), "s").is_err());
        assert_eq!(opt_str_of(&v(Value::None), "s"), Ok(None));
        assert_eq!(bool_of(&v(Value::Bool(true)), "b"), Ok(true));
        assert!(bool_of(&v(Value::Int(1)), "b").is_err());
        assert_eq!(bytes_of(&Input::Bytes(vec![1]), "b"), Ok(&[1u8][..]));
        assert!(bytes_of(&v(Value::str("x")), "b").is_err());
        assert_eq!(opt_bytes_of(&v(Value::None), "b"), Ok(None));
        assert_eq!(metadata_of(&v(Value::None)), Ok(vec![]));
        assert_eq!(
            metadata_of(&Input::Bytes(vec![])).unwrap_err().code,
            "metadata_invalid"
        );
    }

    #[test]
    fn lists() {
        let p = v(Value::List(vec![Value::str("a"), Value::Int(1)]));
        assert_eq!(
            predicates_of(&p).unwrap_err().param.as_deref(),
            Some("rules[1].predicate")
        );
        let r = v(Value::List(vec![Value::List(vec![
            Value::str("rule_1"),
            Value::str("block"),
            Value::str(":amount: > 1"),
        ])]));
        assert_eq!(rules_of(&r).unwrap()[0].1, "block");
        let bad = v(Value::List(vec![Value::List(vec![Value::str("x")])]));
        assert_eq!(
            rules_of(&bad).unwrap_err().param.as_deref(),
            Some("rules[0]")
        );
        assert_eq!(
            rules_of(&v(Value::TooLarge)).unwrap_err().param.as_deref(),
            Some("rules")
        );
    }
}
