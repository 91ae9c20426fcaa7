//! The rules language of BRIEF §8: lexer, parser, type checks and evaluator.
//!
//! ```text
//! predicate  := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | primary
//! primary    := "(" or ")" | ATTR OP value | ATTR "in" "(" value ("," value)* ")" | BOOL_ATTR
//! ATTR       := ":name:" | "::KEY::"            (metadata value of KEY, '' when missing)
//! OP         := "=" | "!=" | "<" | "<=" | ">" | ">="      ("==" and "<>" are accepted too)
//! value      := integer | 'string' | true | false       (\' and \\ escape inside strings)
//! ```
//! Keywords are case-insensitive. Integer attributes take every operator; string and boolean
//! attributes take `=`, `!=` and `in`; a value must have the attribute's type. `:currency:`
//! values are compared upper-case; `:risk_level:` values must be a level. When there is no
//! score (risk level `unknown`), every comparison of `:risk_score:` is false (so is `in`);
//! `not (...)` of it is then true. Errors name what is wrong and the column (1-based, in
//! characters) where it is.

use std::fmt;

/// Longest predicate, in characters, and deepest nesting (parentheses and `not`).
pub const MAX_PREDICATE_CHARS: usize = 2000;
pub const MAX_DEPTH: usize = 32;

pub const RISK_LEVELS: [&str; 5] = ["normal", "elevated", "highest", "not_assessed", "unknown"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Int,
    Str,
    Bool,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Int => "an integer",
            Type::Str => "a string",
            Type::Bool => "a boolean",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Amount,
    Currency,
    Capture,
    RiskScore,
    RiskLevel,
    Source,
    Destination,
    SourceAgeS,
    DestinationAgeS,
    PaymentsPerSourceHourly,
    PaymentsPerSourceDaily,
    AmountPerSourceDaily,
    DeclinesPerSourceHourly,
    DeclinesPerSourceDaily,
    PaymentsPerDestinationHourly,
    SourcesPerDestinationHourly,
    IsNewDestinationForSource,
    Metadata(String),
}

/// The named attributes (`:name:`) and their types.
pub const ATTRIBUTES: [(&str, Type); 17] = [
    ("amount", Type::Int),
    ("currency", Type::Str),
    ("capture", Type::Bool),
    ("risk_score", Type::Int),
    ("risk_level", Type::Str),
    ("source", Type::Str),
    ("destination", Type::Str),
    ("source_age_s", Type::Int),
    ("destination_age_s", Type::Int),
    ("payments_per_source_hourly", Type::Int),
    ("payments_per_source_daily", Type::Int),
    ("amount_per_source_daily", Type::Int),
    ("declines_per_source_hourly", Type::Int),
    ("declines_per_source_daily", Type::Int),
    ("payments_per_destination_hourly", Type::Int),
    ("sources_per_destination_hourly", Type::Int),
    ("is_new_destination_for_source", Type::Bool),
];

impl Attr {
    fn named(name: &str) -> Option<Attr> {
        Some(match name {
            "amount" => Attr::Amount,
            "currency" => Attr::Currency,
            "capture" => Attr::Capture,
            "risk_score" => Attr::RiskScore,
            "risk_level" => Attr::RiskLevel,
            "source" => Attr::Source,
            "destination" => Attr::Destination,
            "source_age_s" => Attr::SourceAgeS,
            "destination_age_s" => Attr::DestinationAgeS,
            "payments_per_source_hourly" => Attr::PaymentsPerSourceHourly,
            "payments_per_source_daily" => Attr::PaymentsPerSourceDaily,
            "amount_per_source_daily" => Attr::AmountPerSourceDaily,
            "declines_per_source_hourly" => Attr::DeclinesPerSourceHourly,
            "declines_per_source_daily" => Attr::DeclinesPerSourceDaily,
            "payments_per_destination_hourly" => Attr::PaymentsPerDestinationHourly,
            "sources_per_destination_hourly" => Attr::SourcesPerDestinationHourly,
            "is_new_destination_for_source" => Attr::IsNewDestinationForSource,
            _ => return None,
        })
    }

    fn ty(&self) -> Type {
        match self {
            Attr::Currency
            | Attr::RiskLevel
            | Attr::Source
            | Attr::Destination
            | Attr::Metadata(_) => Type::Str,
            Attr::Capture | Attr::IsNewDestinationForSource => Type::Bool,
            _ => Type::Int,
        }
    }

    fn show(&self) -> String {
        match self {
            Attr::Metadata(k) => format!("::{k}::"),
            other => {
                let name = ATTRIBUTES
                    .iter()
                    .zip(all_attrs())
                    .find(|(_, a)| a == other)
                    .map_or("?", |((n, _), _)| n);
                format!(":{name}:")
            }
        }
    }
}

fn all_attrs() -> impl Iterator<Item = Attr> {
    ATTRIBUTES.iter().filter_map(|(n, _)| Attr::named(n))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lit {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl Lit {
    fn ty(&self) -> Type {
        match self {
            Lit::Int(_) => Type::Int,
            Lit::Str(_) => Type::Str,
            Lit::Bool(_) => Type::Bool,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Attr, Op, Lit),
    In(Attr, Vec<Lit>),
    Flag(Attr),
}

/// What a rule reads: the payment, its score and its velocity figures.
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub capture: bool,
    pub risk_score: Option<i64>,
    pub risk_level: &'a str,
    pub source: &'a str,
    pub destination: &'a str,
    pub source_age_s: i64,
    pub destination_age_s: i64,
    pub payments_per_source_hourly: i64,
    pub payments_per_source_daily: i64,
    pub amount_per_source_daily: i64,
    pub declines_per_source_hourly: i64,
    pub declines_per_source_daily: i64,
    pub payments_per_destination_hourly: i64,
    pub sources_per_destination_hourly: i64,
    pub is_new_destination_for_source: bool,
    pub metadata: &'a [(String, String)],
}

enum Val<'a> {
    Int(Option<i64>),
    Str(&'a str),
    Bool(bool),
}

impl<'a> Attrs<'a> {
    fn get(&self, attr: &Attr) -> Val<'a> {
        let i = |v: i64| Val::Int(Some(v));
        match attr {
            Attr::Amount => i(self.amount),
            Attr::Currency => Val::Str(self.currency),
            Attr::Capture => Val::Bool(self.capture),
            Attr::RiskScore => Val::Int(self.risk_score),
            Attr::RiskLevel => Val::Str(self.risk_level),
            Attr::Source => Val::Str(self.source),
            Attr::Destination => Val::Str(self.destination),
            Attr::SourceAgeS => i(self.source_age_s),
            Attr::DestinationAgeS => i(self.destination_age_s),
            Attr::PaymentsPerSourceHourly => i(self.payments_per_source_hourly),
            Attr::PaymentsPerSourceDaily => i(self.payments_per_source_daily),
            Attr::AmountPerSourceDaily => i(self.amount_per_source_daily),
            Attr::DeclinesPerSourceHourly => i(self.declines_per_source_hourly),
            Attr::DeclinesPerSourceDaily => i(self.declines_per_source_daily),
            Attr::PaymentsPerDestinationHourly => i(self.payments_per_destination_hourly),
            Attr::SourcesPerDestinationHourly => i(self.sources_per_destination_hourly),
            Attr::IsNewDestinationForSource => Val::Bool(self.is_new_destination_for_source),
            Attr::Metadata(k) => Val::Str(
                self.metadata
                    .iter()
                    .find(|(key, _)| key == k)
                    .map_or("", |(_, v)| v.as_str()),
            ),
        }
    }
}

fn compare<T: PartialOrd>(a: T, op: Op, b: T) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}

fn matches(val: &Val<'_>, op: Op, lit: &Lit) -> bool {
    match (val, lit) {
        (Val::Int(Some(a)), Lit::Int(b)) => compare(*a, op, *b),
        (Val::Str(a), Lit::Str(b)) => compare(*a, op, b.as_str()),
        (Val::Bool(a), Lit::Bool(b)) => compare(*a, op, *b),
        // A missing score compares false; types were checked at parse time.
        _ => false,
    }
}

impl Expr {
    pub fn eval(&self, a: &Attrs<'_>) -> bool {
        match self {
            Expr::Or(l, r) => l.eval(a) || r.eval(a),
            Expr::And(l, r) => l.eval(a) && r.eval(a),
            Expr::Not(e) => !e.eval(a),
            Expr::Cmp(attr, op, lit) => matches(&a.get(attr), *op, lit),
            Expr::In(attr, lits) => {
                let v = a.get(attr);
                lits.iter().any(|lit| matches(&v, Op::Eq, lit))
            }
            Expr::Flag(attr) => matches!(a.get(attr), Val::Bool(true)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Attr(String),
    Meta(String),
    Int(i64),
    Str(String),
    True,
    False,
    And,
    Or,
    Not,
    In,
    Op(Op),
    LParen,
    RParen,
    Comma,
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Attr(n) => format!(":{n}:"),
            Tok::Meta(k) => format!("::{k}::"),
            Tok::Int(v) => v.to_string(),
            Tok::Str(s) => crate::errors::quoted(s),
            Tok::True => "true".into(),
            Tok::False => "false".into(),
            Tok::And => "and".into(),
            Tok::Or => "or".into(),
            Tok::Not => "not".into(),
            Tok::In => "in".into(),
            Tok::Op(op) => op.text().into(),
            Tok::LParen => "(".into(),
            Tok::RParen => ")".into(),
            Tok::Comma => ",".into(),
        }
    }
}

/// A parse or type error: the message names the column.
pub type RuleError = String;

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                Tok::Op(Op::Eq)
            }
            '!' => {
                if chars.get(i + 1) != Some(&'=') {
                    return Err(format!(
                        "unexpected '!' at column {col} (did you mean '!=')"
                    ));
                }
                i += 2;
                Tok::Op(Op::Ne)
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    i += 2;
                    Tok::Op(Op::Le)
                }
                Some('>') => {
                    i += 2;
                    Tok::Op(Op::Ne)
                }
                _ => {
                    i += 1;
                    Tok::Op(Op::Lt)
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    Tok::Op(Op::Ge)
                } else {
                    i += 1;
                    Tok::Op(Op::Gt)
                }
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string at column {col}")),
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => match chars.get(i + 1) {
                            Some(&e @ ('\'' | '\\')) => {
                                s.push(e);
                                i += 2;
                            }
                            _ => {
                                return Err(format!(
                                    "unknown escape in string at column {} (only \\' and \\\\)",
                                    i + 1
                                ));
                            }
                        },
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            ':' => {
                if chars.get(i + 1) == Some(&':') {
                    // ::KEY:: — the key runs to the next "::".
                    let start = i + 2;
                    let mut j = start;
                    while j + 1 < chars.len() && !(chars[j] == ':' && chars[j + 1] == ':') {
                        j += 1;
                    }
                    if j + 1 >= chars.len() {
                        return Err(format!("unterminated metadata key at column {col}"));
                    }
                    let key: String = chars[start..j].iter().collect();
                    if key.is_empty() || key.chars().count() > 40 {
                        return Err(format!(
                            "a metadata key must be 1 to 40 characters, at column {col}"
                        ));
                    }
                    i = j + 2;
                    Tok::Meta(key)
                } else {
                    let start = i + 1;
                    let mut j = start;
                    while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                        j += 1;
                    }
                    if j >= chars.len() || chars[j] != ':' || j == start {
                        return Err(format!(
                            "expected an attribute such as :amount: at column {col}"
                        ));
                    }
                    i = j + 1;
                    Tok::Attr(chars[start..j].iter().collect())
                }
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                if chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '.' || *c == '_')
                {
                    return Err(format!("expected an integer at column {col}"));
                }
                let v = text
                    .parse::<i64>()
                    .map_err(|_| format!("integer {text} at column {col} is out of range"))?;
                Tok::Int(v)
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => {
                        return Err(format!(
                            "unexpected word {} at column {col} (attributes are written :name:, strings 'quoted')",
                            crate::errors::quoted(&word)
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unexpected character {} at column {col}",
                    crate::errors::quoted(&other.to_string())
                ));
            }
        };
        out.push((tok, col));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end_col: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end_col, |(_, c)| *c)
    }

    fn unexpected(&self, wanted: &str) -> RuleError {
        match self.peek() {
            None => format!(
                "expected {wanted} at column {} (end of predicate)",
                self.col()
            ),
            Some(t) => format!(
                "expected {wanted} at column {}, found {}",
                self.col(),
                t.show()
            ),
        }
    }

    fn descend(&mut self) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "predicate nests deeper than {MAX_DEPTH} at column {}",
                self.col()
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            self.descend()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let col = self.col();
        let attr = match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.pos += 1;
                self.descend()?;
                let e = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("')'"));
                }
                self.pos += 1;
                return Ok(e);
            }
            Some(Tok::Attr(name)) => Attr::named(&name)
                .ok_or_else(|| format!("unknown attribute :{name}: at column {col}"))?,
            Some(Tok::Meta(key)) => Attr::Metadata(key),
            _ => return Err(self.unexpected("an attribute such as :amount: or '('")),
        };
        self.pos += 1;
        let ty = attr.ty();
        match self.peek().cloned() {
            Some(Tok::Op(op)) => {
                let op_col = self.col();
                if ty != Type::Int && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(format!(
                        "operator {} does not apply to {} ({}) at column {op_col}; use =, != or in",
                        op.text(),
                        attr.show(),
                        ty
                    ));
                }
                self.pos += 1;
                let lit = self.value(&attr)?;
                Ok(Expr::Cmp(attr, op, lit))
            }
            Some(Tok::In) => {
                self.pos += 1;
                if self.peek() != Some(&Tok::LParen) {
                    return Err(self.unexpected("'(' after in"));
                }
                self.pos += 1;
                let mut lits = vec![self.value(&attr)?];
                while self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                    lits.push(self.value(&attr)?);
                }
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("',' or ')'"));
                }
                self.pos += 1;
                Ok(Expr::In(attr, lits))
            }
            _ if ty == Type::Bool => Ok(Expr::Flag(attr)),
            _ => Err(self.unexpected(&format!("an operator after {}", attr.show()))),
        }
    }

    fn value(&mut self, attr: &Attr) -> Result<Lit, RuleError> {
        let col = self.col();
        let lit = match self.peek().cloned() {
            Some(Tok::Int(v)) => Lit::Int(v),
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::True) => Lit::Bool(true),
            Some(Tok::False) => Lit::Bool(false),
            _ => return Err(self.unexpected("a value (an integer, a 'string', true or false)")),
        };
        if lit.ty() != attr.ty() {
            return Err(format!(
                "{} is {} but the value at column {col} is {}",
                attr.show(),
                attr.ty(),
                lit.ty()
            ));
        }
        self.pos += 1;
        Ok(match (attr, lit) {
            (Attr::Currency, Lit::Str(s)) => Lit::Str(s.to_ascii_uppercase()),
            (Attr::RiskLevel, Lit::Str(s)) => {
                if !RISK_LEVELS.contains(&s.as_str()) {
                    return Err(format!(
                        "{} at column {col} is not a risk level ({})",
                        crate::errors::quoted(&s),
                        RISK_LEVELS.join(", ")
                    ));
                }
                Lit::Str(s)
            }
            (_, lit) => lit,
        })
    }
}

/// Parses and type-checks a predicate.
pub fn parse(src: &str) -> Result<Expr, RuleError> {
    let n = src.chars().count();
    if n > MAX_PREDICATE_CHARS {
        return Err(format!(
            "predicate is {n} characters long; at most {MAX_PREDICATE_CHARS}"
        ));
    }
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err("predicate is empty".to_owned());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end_col: n + 1,
        depth: 0,
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.unexpected("'and', 'or' or the end"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attrs<'static> {
        static META: std::sync::LazyLock<Vec<(String, String)>> =
            std::sync::LazyLock::new(|| vec![("channel".into(), "web".into())]);
        Attrs {
            amount: 5000,
            currency: "USD",
            capture: true,
            risk_score: Some(80),
            risk_level: "highest",
            source: "acct_a",
            destination: "acct_b",
            source_age_s: 100,
            destination_age_s: 1000,
            payments_per_source_hourly: 3,
            payments_per_source_daily: 10,
            amount_per_source_daily: 20_000,
            declines_per_source_hourly: 1,
            declines_per_source_daily: 2,
            payments_per_destination_hourly: 7,
            sources_per_destination_hourly: 4,
            is_new_destination_for_source: true,
            metadata: &META,
        }
    }

    fn t(src: &str) -> bool {
        parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .eval(&attrs())
    }

    fn e(src: &str) -> String {
        parse(src).unwrap_err()
    }

    #[test]
    fn operators_on_ints() {
        assert!(t(":amount: = 5000"));
        assert!(t(":amount: == 5000"));
        assert!(!t(":amount: != 5000"));
        assert!(t(":amount: <> 1"));
        assert!(t(":amount: < 5001"));
        assert!(!t(":amount: < 5000"));
        assert!(t(":amount: <= 5000"));
        assert!(t(":amount: > 4999"));
        assert!(!t(":amount: > 5000"));
        assert!(t(":amount: >= 5000"));
        assert!(t(":amount: > -1"));
        assert!(t(":risk_score: >= 75"));
        assert!(t(":payments_per_source_hourly: = 3"));
        assert!(t(":payments_per_source_daily: = 10"));
        assert!(t(":amount_per_source_daily: = 20000"));
        assert!(t(":declines_per_source_daily: = 2"));
        assert!(t(":declines_per_source_hourly: = 1"));
        assert!(t(":source_age_s: < 3600"));
        assert!(t(":destination_age_s: = 1000"));
        assert!(t(":payments_per_destination_hourly: = 7"));
        assert!(t(":sources_per_destination_hourly: = 4"));
    }

    #[test]
    fn strings_bools_metadata() {
        assert!(t(":currency: = 'usd'"));
        assert!(t(":currency: in ('EUR', 'USD')"));
        assert!(!t(":currency: in ('EUR')"));
        assert!(t(":risk_level: = 'highest'"));
        assert!(t(":source: = 'acct_a'"));
        assert!(t(":destination: != 'acct_a'"));
        assert!(t(":capture: = true"));
        assert!(t(":capture:"));
        assert!(t(":is_new_destination_for_source:"));
        assert!(t(":is_new_destination_for_source: = true"));
        assert!(!t("not :is_new_destination_for_source:"));
        assert!(t("::channel:: = 'web'"));
        assert!(t("::missing:: = ''"));
        assert!(t("::odd key-1:: = ''"));
        assert!(t(":amount: in (1, 5000, 7)"));
        assert!(!t("::channel:: != 'web'"));
    }

    #[test]
    fn precedence() {
        // not > and > or
        assert!(t(":amount: = 1 and :amount: = 2 or :amount: = 5000"));
        assert!(!t(":amount: = 1 and (:amount: = 2 or :amount: = 5000)"));
        assert!(t(":amount: = 5000 or :amount: = 1 and :amount: = 2"));
        assert!(!t("not :amount: = 5000 or :amount: = 1"));
        assert!(t("not (:amount: = 5000 and :amount: = 1)"));
        assert!(t("not not :capture:"));
        assert!(t(":amount: = 5000 AND :currency: = 'USD' Or :amount: = 1"));
    }

    #[test]
    fn missing_score_compares_false() {
        let mut a = attrs();
        a.risk_score = None;
        for src in [
            ":risk_score: >= 0",
            ":risk_score: < 100",
            ":risk_score: != 5",
            ":risk_score: in (1)",
        ] {
            assert!(!parse(src).unwrap().eval(&a), "{src}");
        }
        assert!(parse("not :risk_score: > 50").unwrap().eval(&a));
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(e(":foo: > 1"), "unknown attribute :foo: at column 1");
        assert_eq!(
            e(":amount: > 1 and :foo: = 1"),
            "unknown attribute :foo: at column 18"
        );
        assert!(
            e(":currency: = 5")
                .contains(":currency: is a string but the value at column 14 is an integer")
        );
        assert!(e(":amount: = 'x'").contains(":amount: is an integer"));
        assert!(e(":capture: = 1").contains("a boolean"));
        assert!(e(":currency: < 'USD'").contains("operator < does not apply to :currency:"));
        assert!(e(":risk_level: = 'hi'").contains("not a risk level"));
        assert_eq!(
            e(":amount: >"),
            "expected a value (an integer, a 'string', true or false) at column 11 (end of predicate)"
        );
        assert!(e(":amount:").contains("expected an operator after :amount:"));
        assert!(e(":amount: = 1 :amount: = 2").contains("column 14"));
        assert!(e("(:amount: = 1").contains("expected ')'"));
        assert!(e(":currency: = 'USD").contains("unterminated string at column 14"));
        assert!(e("amount > 1").contains("unexpected word 'amount' at column 1"));
        assert!(e(":amount: = 1.5").contains("expected an integer at column 12"));
        assert!(e(":amount: = 99999999999999999999").contains("out of range"));
        assert!(e(":amount: ! 1").contains("'!'"));
        assert!(e(":amount: in 1").contains("'(' after in"));
        assert!(e(":amount: in (1,)").contains("expected a value"));
        assert!(e("").contains("empty"));
        assert!(e("   ").contains("empty"));
        assert!(e("::k").contains("unterminated metadata key"));
        assert!(e(": amount:").contains("expected an attribute"));
        assert!(e(":amount: = 1 # x").contains("unexpected character '#' at column 14"));
        assert!(e(&"(".repeat(40)).contains("deeper than 32"));
        assert!(e(&"x".repeat(2001)).contains("at most 2000"));
        assert!(e("and").contains("expected an attribute"));
    }

    #[test]
    fn strings_escape() {
        let p = parse(r"::k:: = 'it\'s \\ ok'").unwrap();
        assert_eq!(
            p,
            Expr::Cmp(
                Attr::Metadata("k".into()),
                Op::Eq,
                Lit::Str(r"it's \ ok".into())
            )
        );
        assert!(e(r"::k:: = 'a\n'").contains("unknown escape"));
    }

    #[test]
    fn random_input_never_panics() {
        // Token soup: every fragment the lexer knows, glued at random; each result is Ok or Err.
        const PARTS: [&str; 24] = [
            ":amount:",
            ":currency:",
            ":risk_level:",
            "::k::",
            ":capture:",
            " and ",
            " or ",
            "not ",
            " in ",
            "(",
            ")",
            ",",
            "=",
            "!=",
            "<",
            ">=",
            "5",
            "-7",
            "'USD'",
            "'x",
            "true",
            ":",
            "::",
            "é",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        let mut ok = 0;
        for _ in 0..20_000 {
            let n = next() % 12;
            let src: String = (0..n).map(|_| PARTS[next() % PARTS.len()]).collect();
            if let Ok(e) = parse(&src) {
                ok += 1;
                let _ = e.eval(&attrs());
            }
        }
        assert!(ok > 20, "{ok}");
        // Long flat chains are fine (the depth limit is for nesting).
        let chain = vec![":amount: > 1"; 110].join(" and ");
        assert!(parse(&chain).unwrap().eval(&attrs()));
    }

    #[test]
    fn show_names() {
        assert_eq!(
            Attr::PaymentsPerSourceDaily.show(),
            ":payments_per_source_daily:"
        );
        assert_eq!(Attr::Metadata("x".into()).show(), "::x::");
    }
}
