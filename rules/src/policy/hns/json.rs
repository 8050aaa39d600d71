//! JSON with positions: serde_json validates a document (and gives syntax errors their
//! line and column) but keeps no positions, so a small scanner indexes the validated
//! text with the byte span of every value, and [`Reader`] reads fields from it into raw
//! policy values, reporting what is wrong (or unused) at the field's place.
//!
//! HNS and its clients are case-insensitive about keys (`Type`, `type`; `ID`, `Id`), so
//! keys are matched without regard to case.

use std::ops::Range;

use toml::Spanned;

use super::super::diag::Diagnostics;
use super::super::values::{Items, Scalar};

/// A JSON value with the byte span it occupies (in the diagnostics' offset space).
#[derive(Debug)]
pub(crate) struct Json {
    pub span: Range<usize>,
    pub value: J,
}

#[derive(Debug)]
pub(crate) enum J {
    Null,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Array(Vec<Json>),
    /// Keys in file order, each with its span.
    Object(Vec<(String, Range<usize>, Json)>),
}

impl Json {
    pub fn kind(&self) -> &'static str {
        match self.value {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Int(_) => "an integer",
            J::Float => "a number",
            J::Str(_) => "a string",
            J::Array(_) => "an array",
            J::Object(_) => "an object",
        }
    }

    /// A field of an object, matched without regard to case.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.fields()
            .iter()
            .find(|(k, _, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, _, v)| v)
    }

    /// A field spelled exactly so (CNI configurations are case-sensitive: `type` is the
    /// plugin, `Type` an HNS network's type).
    pub fn get_exact(&self, key: &str) -> Option<&Json> {
        self.fields()
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }

    /// The first of `keys` present.
    pub fn get_any(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().find_map(|k| self.get(k))
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn fields(&self) -> &[(String, Range<usize>, Json)] {
        match &self.value {
            J::Object(fields) => fields,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match &self.value {
            J::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self.value, J::Object(_))
    }

    /// Whether the value says something: not null, false, 0, "" or empty.
    pub fn is_set(&self) -> bool {
        match &self.value {
            J::Null | J::Bool(false) | J::Int(0) => false,
            J::Str(s) => !s.trim().is_empty(),
            J::Array(a) => !a.is_empty(),
            J::Object(o) => !o.is_empty(),
            _ => true,
        }
    }

    /// Every string in the value, depth first.
    pub fn strings<'a>(&'a self, out: &mut Vec<(&'a str, Range<usize>)>) {
        match &self.value {
            J::Str(s) => out.push((s, self.span.clone())),
            J::Array(a) => a.iter().for_each(|v| v.strings(out)),
            J::Object(o) => o.iter().for_each(|(_, _, v)| v.strings(out)),
            _ => {}
        }
    }
}

/// Indexes JSON text that serde_json has already accepted. Returns `None` rather than
/// panicking if the text is not what it expects.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    /// Offset of the text in the diagnostics' offset space.
    base: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str, base: usize) -> Self {
        Scanner { text, pos: 0, base }
    }

    fn skip_ws(&mut self) {
        let rest = self.text.get(self.pos..).unwrap_or("");
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == b).then(|| self.pos += 1)
    }

    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        while *bytes.get(i)? != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        self.pos = i + 1;
        serde_json::from_str(self.text.get(start..self.pos)?).ok()
    }

    /// `{...}` or `[...]`: items separated by commas up to `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.pos += 1;
        self.skip_ws();
        if self.peek()? == close {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b if b == close => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn word(&mut self) -> J {
        let rest = self.text.get(self.pos..).unwrap_or("");
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        self.pos += len;
        match word {
            "null" => J::Null,
            "true" => J::Bool(true),
            "false" => J::Bool(false),
            _ => word.parse::<i128>().map_or(J::Float, J::Int),
        }
    }

    pub fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > 64 {
            return None;
        }
        self.skip_ws();
        let start = self.pos;
        let value = match self.peek()? {
            b'{' => {
                let mut fields = Vec::new();
                self.items(b'}', |s| {
                    s.skip_ws();
                    let key_start = s.pos;
                    let key = s.string()?;
                    let key_span = s.base + key_start..s.base + s.pos;
                    s.eat(b':')?;
                    fields.push((key, key_span, s.value(depth + 1)?));
                    Some(())
                })?;
                J::Object(fields)
            }
            b'[' => {
                let mut items = Vec::new();
                self.items(b']', |s| {
                    items.push(s.value(depth + 1)?);
                    Some(())
                })?;
                J::Array(items)
            }
            b'"' => J::Str(self.string()?),
            _ => self.word(),
        };
        Some(Json {
            span: self.base + start..self.base + self.pos,
            value,
        })
    }
}

/// Reads the fields of JSON objects into raw values, reporting what is wrong.
pub(crate) struct Reader<'d, 'a> {
    pub d: &'d mut Diagnostics<'a>,
}

impl Reader<'_, '_> {
    pub fn string(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<String>> {
        let v = obj.get(key)?;
        match &v.value {
            J::Str(s) => Some(Spanned::new(v.span.clone(), s.clone())),
            J::Null => None,
            _ => {
                let msg = format!("{key} must be a string, not {}", v.kind());
                self.d.error(v.span.clone(), object, msg);
                None
            }
        }
    }

    /// The first of several spellings of a string field.
    pub fn string_any(
        &mut self,
        obj: &Json,
        object: &str,
        keys: &[&str],
    ) -> Option<Spanned<String>> {
        keys.iter().find_map(|k| self.string(obj, object, k))
    }

    pub fn required(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<String>> {
        let s = self.string(obj, object, key);
        if s.is_none() && obj.get(key).is_none() {
            self.d
                .error(obj.span.clone(), object, format!("missing field `{key}`"));
        }
        s
    }

    pub fn int(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<i64>> {
        let v = obj.get(key)?;
        let n = match &v.value {
            J::Int(n) => Some(*n),
            J::Str(s) => s.trim().parse::<i128>().ok(),
            J::Null => return None,
            _ => None,
        };
        match n.and_then(|n| i64::try_from(n).ok()) {
            Some(n) => Some(Spanned::new(v.span.clone(), n)),
            None => {
                self.d
                    .error(v.span.clone(), object, format!("{key} must be an integer"));
                None
            }
        }
    }

    pub fn bool(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<bool>> {
        let v = obj.get(key)?;
        match &v.value {
            J::Bool(b) => Some(Spanned::new(v.span.clone(), *b)),
            J::Null => None,
            _ => {
                let msg = format!("{key} must be true or false, not {}", v.kind());
                self.d.error(v.span.clone(), object, msg);
                None
            }
        }
    }

    /// A list of strings and integers: an array, or one value (strings may hold
    /// comma-separated items, as HNS writes them).
    pub fn items(&mut self, obj: &Json, object: &str, key: &str) -> Option<Spanned<Items>> {
        let v = obj.get(key)?;
        let list: Vec<&Json> = match &v.value {
            J::Array(items) => items.iter().collect(),
            J::Null => return None,
            _ => vec![v],
        };
        let mut out = Vec::new();
        for item in list {
            match &item.value {
                J::Str(s) => out.push(Spanned::new(item.span.clone(), Scalar::Str(s.clone()))),
                J::Int(n) => out.push(Spanned::new(item.span.clone(), Scalar::Int(*n))),
                _ => {
                    let msg = format!("{key}: expected strings or integers, not {}", item.kind());
                    self.d.error(item.span.clone(), object, msg);
                }
            }
        }
        Some(Spanned::new(v.span.clone(), Items::from_spanned(out)))
    }

    pub fn items_any(&mut self, obj: &Json, object: &str, keys: &[&str]) -> Option<Spanned<Items>> {
        keys.iter().find_map(|k| self.items(obj, object, k))
    }

    /// A name from `choices`, matched without regard to case.
    pub fn choice<T: Copy>(
        &mut self,
        obj: &Json,
        object: &str,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<Spanned<T>> {
        let s = self.string(obj, object, key)?;
        let found = choices
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.get_ref()));
        if let Some(&(_, t)) = found {
            return Some(Spanned::new(s.span(), t));
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let msg = format!(
            "unknown {key} `{}`, expected one of {}",
            s.get_ref(),
            names.join(", ")
        );
        self.d.error(s.span(), object, msg);
        None
    }

    /// Refuses keys outside `known`: inside a policy a typo must not pass silently.
    pub fn only(&mut self, obj: &Json, object: &str, known: &[&str]) {
        for (k, span, _) in obj.fields() {
            if !known.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                let msg = format!("unknown field `{k}`, expected one of {}", known.join(", "));
                self.d.error(span.clone(), object, msg);
            }
        }
    }

    pub fn array<'j>(&mut self, obj: &'j Json, object: &str, key: &str) -> &'j [Json] {
        match obj.get(key) {
            Some(Json {
                value: J::Array(items),
                ..
            }) => items,
            Some(Json { value: J::Null, .. }) | None => &[],
            Some(v) => {
                self.d
                    .error(v.span.clone(), object, format!("{key} must be an array"));
                &[]
            }
        }
    }

    /// Warns about every set field of `obj` that Strata does not use: those of `unused`
    /// with their reason, and any other field outside `known`.
    pub fn rest(&mut self, obj: &Json, object: &str, known: &[&str], unused: &[(&str, &str)]) {
        for (k, span, v) in obj.fields() {
            if known.iter().any(|n| n.eq_ignore_ascii_case(k)) || !v.is_set() {
                continue;
            }
            let msg = match unused.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
                Some((_, why)) => format!("`{k}` is not used: {why}"),
                None => format!("unknown field `{k}` is not used"),
            };
            self.d.warning(span.clone(), object, msg);
        }
    }
}
