//! SCIM 2.0 filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2), parsed into trees the
//! store turns into SQL and the server applies to resources.
//!
//! Hand-written: the one Rust filter parser on crates.io (`scim-filter`) parses filters
//! but not PATCH paths, is undocumented and unmaintained since early 2024, and brings
//! nom 7 and rust_decimal along; the grammar is small enough to own, tested here.
//!
//! Attribute names are case-insensitive (RFC 7643 §2.1): every name is kept lower-cased.
//! A name may carry its schema URN (`urn:…:enterprise:2.0:User:department`); the URN is
//! kept apart so a resource can find the attribute under its extension.

use serde_json::Value;
use std::fmt;

/// An attribute named by a filter or a path: `[urn:]name[.sub]`, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN it was qualified with, lower-cased.
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// `name` or `name.sub`, without the URN.
    pub fn dotted(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{}.{sub}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

/// A filter's literal: JSON's `false`, `null`, `true`, a number or a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
}

impl Literal {
    /// The literal as text (numbers and booleans written as JSON writes them).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Null => None,
            Self::Bool(b) => Some(b.to_string()),
            Self::Number(n) => Some(n.to_string()),
            Self::Text(t) => Some(t.clone()),
        }
    }

    /// The literal as a JSON value.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::Text(t) => Value::String(t.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Literal),
    /// `emails[type eq "work"]`: some value of a multi-valued attribute matches the inner
    /// filter, whose names are sub-attributes of it.
    Has(AttrPath, Box<Filter>),
}

/// A PATCH operation's `path`: `attrPath[valFilter][.subAttr]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
}

/// What is wrong with a filter or path, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at + 1)
    }
}

impl std::error::Error for SyntaxError {}

/// Deepest nesting of parentheses and `not` accepted: a filter is a query, and a
/// recursive parser must not be driven into its stack's end.
const MAX_DEPTH: usize = 32;
/// Longest filter accepted, in bytes.
pub const MAX_FILTER: usize = 4096;

pub fn parse_filter(text: &str) -> Result<Filter, SyntaxError> {
    let mut parser = Parser::new(text)?;
    let filter = parser.or(0)?;
    parser.end()?;
    Ok(filter)
}

pub fn parse_path(text: &str) -> Result<PatchPath, SyntaxError> {
    let mut parser = Parser::new(text)?;
    let attr = parser.attr_path()?;
    let filter = if parser.eat(b'[') {
        if attr.sub.is_some() {
            return Err(parser.error("a value filter follows the attribute, not its sub-attribute"));
        }
        let inner = parser.or(1)?;
        parser.expect(b']')?;
        Some(inner)
    } else {
        None
    };
    let attr = if filter.is_some() && parser.eat(b'.') {
        let sub = parser.name()?;
        AttrPath {
            sub: Some(sub),
            ..attr
        }
    } else {
        attr
    };
    parser.end()?;
    Ok(PatchPath { attr, filter })
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, SyntaxError> {
        if text.len() > MAX_FILTER {
            return Err(SyntaxError {
                at: MAX_FILTER,
                message: format!("is longer than {MAX_FILTER} bytes"),
            });
        }
        Ok(Self { text, at: 0 })
    }

    fn error(&self, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            at: self.text[..self.at].chars().count(),
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.at = self.text.len() - trimmed.len();
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.rest().bytes().next()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), SyntaxError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{}`", byte as char)))
        }
    }

    fn end(&mut self) -> Result<(), SyntaxError> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.error("unexpected text"))
        }
    }

    /// The next word (letters, digits, and the characters of names and URNs), not taken.
    fn word(&mut self) -> &'a str {
        self.skip_space();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-$:.".contains(c)))
            .unwrap_or(rest.len());
        &rest[..len]
    }

    /// Takes the next word if it is `keyword` (any case) followed by a boundary.
    fn keyword(&mut self, keyword: &str) -> bool {
        if self.word().eq_ignore_ascii_case(keyword) {
            self.at += keyword.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self, depth: usize) -> Result<Filter, SyntaxError> {
        let mut left = self.and(depth)?;
        while self.keyword("or") {
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, SyntaxError> {
        let mut left = self.unary(depth)?;
        while self.keyword("and") {
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format!("nests deeper than {MAX_DEPTH} levels")));
        }
        if self.keyword("not") {
            self.expect(b'(')?;
            let inner = self.or(depth + 1)?;
            self.expect(b')')?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.eat(b'(') {
            let inner = self.or(depth + 1)?;
            self.expect(b')')?;
            return Ok(inner);
        }
        let attr = self.attr_path()?;
        if self.eat(b'[') {
            if attr.sub.is_some() {
                return Err(
                    self.error("a value filter follows the attribute, not its sub-attribute")
                );
            }
            let inner = self.or(depth + 1)?;
            self.expect(b']')?;
            return Ok(Filter::Has(attr, Box::new(inner)));
        }
        if self.keyword("pr") {
            return Ok(Filter::Present(attr));
        }
        let word = self.word();
        let op = CompareOp::parse(word).ok_or_else(|| {
            if word.is_empty() {
                self.error("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)")
            } else {
                self.error(format!("`{word}` is not an operator"))
            }
        })?;
        self.at += word.len();
        let value = self.literal()?;
        Ok(Filter::Compare(attr, op, value))
    }

    fn literal(&mut self) -> Result<Literal, SyntaxError> {
        match self.peek() {
            Some(b'"') => {
                let rest = self.rest();
                // Find the closing quote, skipping escaped characters; serde_json decodes.
                let bytes = rest.as_bytes();
                let mut i = 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return Err(self.error("a string is not closed"));
                }
                let text: String = serde_json::from_str(&rest[..=i])
                    .map_err(|_| self.error("a string has a bad escape"))?;
                self.at += i + 1;
                Ok(Literal::Text(text))
            }
            Some(_) => {
                let word = self.word();
                let value = match word {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    "null" => Literal::Null,
                    _ => match serde_json::from_str::<Value>(word) {
                        Ok(Value::Number(n)) => Literal::Number(n),
                        _ => {
                            return Err(self.error(
                                "expected a value: a \"string\", a number, true, false or null",
                            ));
                        }
                    },
                };
                self.at += word.len();
                Ok(value)
            }
            None => Err(self.error("expected a value")),
        }
    }

    /// `[urn:]name[.sub]`.
    fn name(&mut self) -> Result<String, SyntaxError> {
        let word = self.word();
        let valid = word
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c));
        if !valid {
            return Err(self.error("expected an attribute name"));
        }
        self.at += word.len();
        Ok(word.to_ascii_lowercase())
    }

    fn attr_path(&mut self) -> Result<AttrPath, SyntaxError> {
        let word = self.word();
        if word.is_empty() {
            return Err(self.error("expected an attribute name"));
        }
        let start = self.at;
        let (urn, local) = match word.rsplit_once(':') {
            Some((urn, local)) if word.to_ascii_lowercase().starts_with("urn:") => {
                (Some(urn.to_ascii_lowercase()), local)
            }
            Some(_) => return Err(self.error("a schema URN starts with `urn:`")),
            None => (None, word),
        };
        let (name, sub) = match local.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (local, None),
        };
        let valid = |part: &str| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c))
        };
        if !valid(name) || !sub.is_none_or(valid) {
            return Err(self.error(format!("`{word}` is not an attribute path")));
        }
        self.at = start + word.len();
        Ok(AttrPath {
            urn,
            name: name.to_ascii_lowercase(),
            sub: sub.map(str::to_ascii_lowercase),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.into(),
            sub: sub.map(Into::into),
        }
    }

    fn text(t: &str) -> Literal {
        Literal::Text(t.into())
    }

    #[test]
    fn parses_comparisons_of_every_operator() {
        for (word, op) in [
            ("eq", CompareOp::Eq),
            ("NE", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("Ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ] {
            assert_eq!(
                parse_filter(&format!("userName {word} \"a\\\"b\"")).unwrap(),
                Filter::Compare(attr("username", None), op, text("a\"b"))
            );
        }
        assert_eq!(
            parse_filter("title pr").unwrap(),
            Filter::Present(attr("title", None))
        );
        assert_eq!(
            parse_filter("active eq true").unwrap(),
            Filter::Compare(attr("active", None), CompareOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse_filter("meta.lastModified gt \"2011-05-13T04:42:34Z\"").unwrap(),
            Filter::Compare(
                attr("meta", Some("lastmodified")),
                CompareOp::Gt,
                text("2011-05-13T04:42:34Z")
            )
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_group() {
        let f = parse_filter("a eq 1 or b eq 2 and c eq 3").unwrap();
        let Filter::Or(_, right) = f else {
            panic!("or at the top: {f:?}")
        };
        assert!(matches!(*right, Filter::And(..)));
        let f = parse_filter("(a eq 1 or b eq 2) and not (c pr)").unwrap();
        let Filter::And(left, right) = f else {
            panic!("and at the top")
        };
        assert!(matches!(*left, Filter::Or(..)));
        assert!(matches!(*right, Filter::Not(..)));
    }

    #[test]
    fn parses_value_paths_and_urns() {
        assert_eq!(
            parse_filter("emails[type eq \"work\" and value co \"@example.com\"]").unwrap(),
            Filter::Has(
                attr("emails", None),
                Box::new(Filter::And(
                    Box::new(Filter::Compare(
                        attr("type", None),
                        CompareOp::Eq,
                        text("work")
                    )),
                    Box::new(Filter::Compare(
                        attr("value", None),
                        CompareOp::Co,
                        text("@example.com")
                    )),
                ))
            )
        );
        let f = parse_filter(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"X\"",
        )
        .unwrap();
        let Filter::Compare(path, ..) = f else {
            panic!()
        };
        assert_eq!(
            path.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user")
        );
        assert_eq!(path.name, "department");
    }

    #[test]
    fn parses_patch_paths() {
        let p = parse_path("emails[type eq \"work\"].value").unwrap();
        assert_eq!(p.attr, attr("emails", Some("value")));
        assert!(p.filter.is_some());
        let p = parse_path("members[value eq \"2819c223\"]").unwrap();
        assert_eq!(p.attr, attr("members", None));
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr, attr("name", Some("givenname")));
        assert!(p.filter.is_none());
        let p =
            parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
                .unwrap();
        assert_eq!(p.attr.dotted(), "manager.value");
        assert!(p.attr.urn.is_some());
    }

    #[test]
    fn refuses_malformed_input_with_a_position() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq \"open",
            "userName eq bare",
            "(userName eq \"a\"",
            "not userName eq \"a\"",
            "emails[type eq \"work\"",
            "userName eq \"a\" and",
            "userName eq \"a\" extra",
            "9lives eq 1",
            "a:b eq 1",
            "emails.value[type eq \"x\"]",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(&deep).is_err());
        assert!(parse_filter(&"a".repeat(MAX_FILTER + 1)).is_err());
        let err = parse_filter("userName eq \"a\" extra").unwrap_err();
        assert_eq!(err.at, 16);
        for bad in ["", "emails[", "emails[type eq \"w\"]x", "name.", "a b"] {
            assert!(parse_path(bad).is_err(), "{bad:?} parsed");
        }
    }
}
