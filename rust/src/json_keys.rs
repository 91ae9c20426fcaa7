//! Duplicate object keys in a JSON text.
//!
//! RFC 8259 leaves a repeated name's meaning open, and parsers disagree (the first wins in some,
//! the last in others), so a gateway or a log that reads the first `amount` could see another
//! payment than the one executed. The API refuses such bodies. The Python decoder (msgspec)
//! keeps the last value silently, so this scan runs beside it, on a text msgspec has already
//! accepted as valid JSON: it only tracks strings, nesting and the keys of each open object, and
//! never fails on input it does not understand (it then reports no duplicate).

use std::borrow::Cow;
use std::collections::HashSet;

/// Objects with more keys than this are checked with a hash set, so a huge one stays linear.
const LINEAR_KEYS: usize = 16;

/// The path of the first repeated key (`metadata.a`, `rules[1].fixed`), or `None`.
pub fn first_duplicate_key(text: &[u8]) -> Option<String> {
    let mut scan = Scan {
        text,
        at: 0,
        stack: Vec::new(),
    };
    scan.run()
}

enum Frame<'a> {
    /// An object: its keys so far (the last one names the value being read), whether a key comes next.
    /// Most objects are small, where a list beats a hash set; `many` takes over past [`LINEAR_KEYS`].
    Object {
        keys: Vec<Cow<'a, [u8]>>,
        many: Option<HashSet<Cow<'a, [u8]>>>,
        expect_key: bool,
    },
    /// An array: the index of the current element.
    Array { index: usize },
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    stack: Vec<Frame<'a>>,
}

impl<'a> Scan<'a> {
    fn run(&mut self) -> Option<String> {
        while self.at < self.text.len() {
            match self.text[self.at] {
                b'{' => {
                    self.stack.push(Frame::Object {
                        keys: Vec::new(),
                        many: None,
                        expect_key: true,
                    });
                    self.at += 1;
                }
                b'[' => {
                    self.stack.push(Frame::Array { index: 0 });
                    self.at += 1;
                }
                b'}' | b']' => {
                    self.stack.pop();
                    self.at += 1;
                }
                b',' => {
                    match self.stack.last_mut() {
                        Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                        Some(Frame::Array { index }) => *index += 1,
                        None => {}
                    }
                    self.at += 1;
                }
                b'"' => {
                    let is_key = matches!(
                        self.stack.last(),
                        Some(Frame::Object {
                            expect_key: true,
                            ..
                        })
                    );
                    let (raw, escaped) = self.string()?;
                    if !is_key {
                        continue;
                    }
                    let key: Cow<'a, [u8]> = if escaped {
                        Cow::Owned(unescape(raw))
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if let Some(Frame::Object {
                        keys,
                        many,
                        expect_key,
                    }) = self.stack.last_mut()
                    {
                        *expect_key = false;
                        let repeated = match many {
                            Some(set) => !set.insert(key.clone()),
                            None => keys.contains(&key),
                        };
                        keys.push(key);
                        if many.is_none() && keys.len() > LINEAR_KEYS {
                            *many = Some(keys.iter().cloned().collect());
                        }
                        if repeated {
                            return Some(self.path());
                        }
                    }
                }
                _ => self.at += 1,
            }
        }
        None
    }

    /// Skips the string starting at the opening quote: its raw contents and whether it has escapes;
    /// `None` if it never closes.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let text = self.text;
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        while end < text.len() {
            match text[end] {
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                b'"' => {
                    self.at = end + 1;
                    return Some((&text[start..end], escaped));
                }
                _ => end += 1,
            }
        }
        None
    }

    /// The path of the innermost object's last key: the enclosing keys and indexes, then that key.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Object { keys, .. } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    if let Some(key) = keys.last() {
                        path.push_str(&String::from_utf8_lossy(key));
                    }
                }
                Frame::Array { index } => path.push_str(&format!("[{index}]")),
            }
        }
        path
    }
}

/// The UTF-8 text of a JSON string's contents (escapes decoded; a lone surrogate becomes U+FFFD).
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        if raw[at] != b'\\' || at + 1 >= raw.len() {
            out.push(raw[at]);
            at += 1;
            continue;
        }
        let simple = match raw[at + 1] {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            at += 2;
            continue;
        }
        // \uXXXX, possibly a surrogate pair.
        let unit = hex4(raw, at + 2);
        at += 6;
        let code = match unit {
            Some(high @ 0xD800..=0xDBFF) => match (raw.get(at), raw.get(at + 1)) {
                (Some(b'\\'), Some(b'u')) => match hex4(raw, at + 2) {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        at += 6;
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    _ => 0xFFFD,
                },
                _ => 0xFFFD,
            },
            Some(unit) => unit,
            None => 0xFFFD,
        };
        let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    out
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::first_duplicate_key;

    fn dup(text: &str) -> Option<String> {
        first_duplicate_key(text.as_bytes())
    }

    #[test]
    fn no_duplicates() {
        assert_eq!(
            dup(r#"{"amount":1,"currency":"USD","metadata":{"amount":"x"}}"#),
            None
        );
        assert_eq!(dup(r#"[{"a":1},{"a":2}]"#), None);
        assert_eq!(dup(r#"{"a":"\"a\"","b":["a","a"]}"#), None);
        assert_eq!(dup(r#"{}"#), None);
        assert_eq!(dup(r#""a""#), None);
    }

    #[test]
    fn top_level_duplicate() {
        assert_eq!(
            dup(r#"{"amount":1,"currency":"USD","amount":2}"#).as_deref(),
            Some("amount")
        );
    }

    #[test]
    fn nested_duplicates_name_their_path() {
        assert_eq!(
            dup(r#"{"metadata":{"k":"1","k":"2"}}"#).as_deref(),
            Some("metadata.k")
        );
        assert_eq!(
            dup(r#"{"rules":[{"fixed":1},{"fixed":1,"fixed":2}]}"#).as_deref(),
            Some("rules[1].fixed")
        );
        assert_eq!(
            dup(r#"{"payments":[{"a":{"b":1}},{"a":{"b":1,"c":{},"b":2}}]}"#).as_deref(),
            Some("payments[1].a.b")
        );
    }

    #[test]
    fn escaped_keys_compare_by_their_text() {
        assert_eq!(
            dup(r#"{"amount":1,"\u0061mount":2}"#).as_deref(),
            Some("amount")
        );
        assert_eq!(dup(r#"{"\ud83d\ude00":1,"😀":2}"#).as_deref(), Some("😀"));
        assert_eq!(dup(r#"{"a\"b":1,"a\u0022b":2}"#).as_deref(), Some("a\"b"));
        assert_eq!(dup(r#"{"a\\":1,"a":2}"#), None);
    }

    #[test]
    fn many_keys_stay_linear_and_are_still_checked() {
        let keys: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":1")).collect();
        let text = format!("{{\"metadata\":{{{}}}}}", keys.join(","));
        assert_eq!(dup(&text), None);
        let text = format!("{{\"metadata\":{{{},\"k7\":2}}}}", keys.join(","));
        assert_eq!(dup(&text).as_deref(), Some("metadata.k7"));
    }

    #[test]
    fn broken_text_reports_nothing_and_never_panics() {
        for text in [
            "{\"a",
            "{\"a\\",
            "\"\\u12",
            "}}]]",
            "{\"a\\ud800\":1,\"a\\ud800\":2}",
        ] {
            let _ = first_duplicate_key(text.as_bytes());
        }
        assert_eq!(dup("{\"a\":1,\"a"), None);
    }
}
