//! Duplicate object keys in a JSON text.
//!
//! RFC 8259 leaves a repeated name's meaning open, and parsers disagree (the first wins in some,
//! the last in others), so a gateway or a log that reads the first `amount` could see another
//! payment than the one executed. The API refuses such bodies. The Python decoder (msgspec)
//! keeps the last value silently, so this scan runs beside it, on a text msgspec has already
//! accepted as valid JSON: it only tracks strings, nesting and the keys of each open object, and
//! never fails on input it does not understand (it then reports no duplicate).

use std::collections::HashSet;

/// The path of the first repeated key (`metadata.a`, `rules[1].fixed`), or `None`.
pub fn first_duplicate_key(text: &[u8]) -> Option<String> {
    let mut scan = Scan {
        text,
        at: 0,
        stack: Vec::new(),
    };
    scan.run()
}

enum Frame {
    /// An object: the keys seen, the last key (the path of its value), whether a key comes next.
    Object {
        keys: HashSet<String>,
        last: String,
        expect_key: bool,
    },
    /// An array: the index of the current element.
    Array { index: usize },
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    stack: Vec<Frame>,
}

impl Scan<'_> {
    fn run(&mut self) -> Option<String> {
        while self.at < self.text.len() {
            let byte = self.text[self.at];
            match byte {
                b'{' => {
                    self.stack.push(Frame::Object {
                        keys: HashSet::new(),
                        last: String::new(),
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
                    let string = self.string()?;
                    if let Some(Frame::Object {
                        keys,
                        last,
                        expect_key,
                    }) = self.stack.last_mut()
                        && *expect_key
                    {
                        *expect_key = false;
                        if !keys.insert(string.clone()) {
                            return Some(self.path(&string));
                        }
                        *last = string;
                    }
                }
                _ => self.at += 1,
            }
        }
        None
    }

    /// Reads the string starting at the opening quote; `None` if it never closes.
    fn string(&mut self) -> Option<String> {
        let start = self.at + 1;
        let mut end = start;
        let mut escaped = false;
        while end < self.text.len() {
            match self.text[end] {
                b'\\' => {
                    escaped = true;
                    end += 2;
                    continue;
                }
                b'"' => break,
                _ => end += 1,
            }
        }
        if end >= self.text.len() {
            return None;
        }
        self.at = end + 1;
        let raw = &self.text[start..end];
        Some(if escaped {
            unescape(raw)
        } else {
            String::from_utf8_lossy(raw).into_owned()
        })
    }

    /// The path of `key` in the innermost object: the enclosing keys and indexes, then `key`.
    fn path(&self, key: &str) -> String {
        let mut path = String::new();
        let depth = self.stack.len();
        for (level, frame) in self.stack.iter().enumerate() {
            match frame {
                Frame::Object { last, .. } => {
                    let name = if level + 1 == depth { key } else { last };
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                }
                Frame::Array { index } => {
                    path.push_str(&format!("[{index}]"));
                }
            }
        }
        path
    }
}

/// The text of a JSON string's contents (escapes decoded; a lone surrogate becomes U+FFFD).
fn unescape(raw: &[u8]) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
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
