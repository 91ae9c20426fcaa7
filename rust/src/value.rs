//! A plain-Rust picture of a Python argument, taken before any rule is checked.
//!
//! The binding layer turns every argument into a [`Value`] without judging it; the rules (and
//! the order in which they are checked) all live in the core modules, which read `Value`s.
//! Conversion never fails: what the core cannot use becomes a variant that says why.

/// How many containers (lists, tuples, dicts) may be nested inside each other.
pub const MAX_DEPTH: usize = 32;

/// How many values (scalars, containers, dict keys) are read from one argument. A JSON body of
/// 1 MiB holds fewer than 600,000, so no request comes near it; past it the argument is
/// [`Value::TooLarge`], read no further. Without a bound, an argument that is small in memory
/// (40 lists, each holding the next one twice) would be read as 2**40 values.
pub const MAX_VALUES: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Python `None`.
    None,
    Bool(bool),
    /// A Python `int` (not `bool`) that fits in an `i64`.
    Int(i64),
    /// A Python `int` outside the `i64` range.
    BigInt,
    Str(String),
    /// A Python `str` that is not valid Unicode text (it holds unpaired surrogates).
    InvalidStr,
    /// A `list` or a `tuple`.
    List(Vec<Value>),
    /// A `dict`, its entries in iteration order.
    Dict(Vec<(Value, Value)>),
    /// A container nested deeper than [`MAX_DEPTH`] (or inside itself); its content was not read.
    TooDeep,
    /// An argument holding more than [`MAX_VALUES`] values; it was not read to its end.
    TooLarge,
    /// Any other type (`float`, `bytes`, `set`, objects...), with the Python type name.
    Unsupported(String),
}

impl Value {
    /// A `Value::Str` from a `&str`.
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_owned())
    }

    /// A `Value::Dict` from string keys.
    pub fn object<I>(entries: I) -> Value
    where
        I: IntoIterator<Item = (&'static str, Value)>,
    {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (Value::str(k), v))
                .collect(),
        )
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// The integer, when this is an `int` (not a `bool`) within `lo..=hi`.
    pub fn int_in(&self, lo: i64, hi: i64) -> Option<i64> {
        match *self {
            Value::Int(v) if (lo..=hi).contains(&v) => Some(v),
            _ => None,
        }
    }

    /// The text, when this is a valid `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// What kind of value this is, for messages ("a string", "a float", ...).
    pub fn kind(&self) -> String {
        match self {
            Value::None => "null".to_owned(),
            Value::Bool(_) => "a boolean".to_owned(),
            Value::Int(_) | Value::BigInt => "an integer".to_owned(),
            Value::Str(_) | Value::InvalidStr => "a string".to_owned(),
            Value::List(_) => "a list".to_owned(),
            Value::Dict(_) => "an object".to_owned(),
            Value::TooDeep => "a too deeply nested value".to_owned(),
            Value::TooLarge => format!("a value of more than {MAX_VALUES} elements"),
            Value::Unsupported(name) => format!("a value of type '{name}'"),
        }
    }
}

/// Number of Unicode code points (what Python's `len(str)` counts).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_in_checks_type_and_bounds() {
        assert_eq!(Value::Int(5).int_in(0, 10), Some(5));
        assert_eq!(Value::Int(0).int_in(0, 10), Some(0));
        assert_eq!(Value::Int(10).int_in(0, 10), Some(10));
        assert_eq!(Value::Int(11).int_in(0, 10), None);
        assert_eq!(Value::Int(-1).int_in(0, 10), None);
        assert_eq!(Value::Int(i64::MIN).int_in(i64::MIN, 0), Some(i64::MIN));
        assert_eq!(Value::Int(i64::MAX).int_in(0, i64::MAX), Some(i64::MAX));
        assert_eq!(Value::BigInt.int_in(i64::MIN, i64::MAX), None);
        assert_eq!(Value::Bool(true).int_in(0, 10), None);
        assert_eq!(Value::str("1").int_in(0, 10), None);
        assert_eq!(Value::None.int_in(0, 10), None);
    }

    #[test]
    fn accessors() {
        assert_eq!(Value::str("a").as_str(), Some("a"));
        assert_eq!(Value::InvalidStr.as_str(), None);
        assert_eq!(Value::Int(1).as_str(), None);
        assert_eq!(Value::Bool(false).as_bool(), Some(false));
        assert_eq!(Value::Int(0).as_bool(), None);
        assert!(Value::None.is_none());
        assert!(!Value::Int(0).is_none());
    }

    #[test]
    fn object_builds_string_keys() {
        let v = Value::object([("a", Value::Int(1))]);
        assert_eq!(v, Value::Dict(vec![(Value::str("a"), Value::Int(1))]));
    }

    #[test]
    fn kinds() {
        assert_eq!(Value::None.kind(), "null");
        assert_eq!(Value::Bool(true).kind(), "a boolean");
        assert_eq!(Value::BigInt.kind(), "an integer");
        assert_eq!(Value::InvalidStr.kind(), "a string");
        assert_eq!(Value::List(vec![]).kind(), "a list");
        assert_eq!(Value::TooDeep.kind(), "a too deeply nested value");
        assert_eq!(
            Value::TooLarge.kind(),
            "a value of more than 1000000 elements"
        );
        assert_eq!(Value::Dict(vec![]).kind(), "an object");
        assert_eq!(
            Value::Unsupported("float".into()).kind(),
            "a value of type 'float'"
        );
    }

    #[test]
    fn char_len_counts_code_points() {
        assert_eq!(char_len(""), 0);
        assert_eq!(char_len("abc"), 3);
        assert_eq!(char_len("é€😀"), 3);
    }
}
