//! Typed, located access to one TOML table, with unknown-key detection.
//!
//! Hand-written instead of `serde` + `deny_unknown_fields` because serde stops at the
//! first error and loses positions; here every key read is recorded, every problem is
//! pushed to [`Ctx`] with its span, and [`Section::finish`] reports whatever keys
//! nobody asked for as "unknown key", with a "did you mean" hint.

use crate::error::{ConfigError, ConfigWarning};
use crate::source::SourceFile;
use std::ops::Range;
use std::time::Duration;
use toml_edit::{Item, TableLike, Value};

pub(crate) type Span = Option<Range<usize>>;

/// Collects errors and warnings for one source file.
pub(crate) struct Ctx<'s> {
    pub src: &'s SourceFile,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl<'s> Ctx<'s> {
    pub fn new(src: &'s SourceFile) -> Self {
        Ctx {
            src,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            location: self.src.locate(span),
            message: message.into(),
        });
    }

    pub fn warn(&mut self, span: Span, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            location: self.src.locate(span),
            message: message.into(),
        });
    }
}

/// One table of the document (standard, implicit, array element or inline).
pub(crate) struct Section<'a> {
    /// Display path, e.g. `pools.app.users.0` (shown as `[pools.app.users.0]`).
    pub path: String,
    table: &'a dyn TableLike,
    /// Header (or key) span: where "missing key"-style errors point.
    pub span: Span,
    /// Every key the code asked about, present or not: the valid key set.
    asked: Vec<String>,
}

/// One element of a keyed (`[x.0]`) or array (`[[x]]`) collection.
pub(crate) struct Entry<'a> {
    /// The table key in keyed form (`"0"`), `None` in array form.
    pub label: Option<String>,
    /// Span of the label key in keyed form.
    pub label_span: Span,
    pub section: Section<'a>,
}

pub(crate) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => value_type_name(v),
    }
}

pub(crate) fn value_type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

impl<'a> Section<'a> {
    pub fn new(path: impl Into<String>, table: &'a dyn TableLike, span: Span) -> Self {
        Section {
            path: path.into(),
            table,
            span,
            asked: Vec::new(),
        }
    }

    /// `[path]`, for messages.
    pub fn name(&self) -> String {
        format!("[{}]", self.path)
    }

    fn ask(&mut self, key: &str) -> Option<&'a Item> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
        self.table.get(key)
    }

    /// The keys present, in document order.
    pub fn keys(&self) -> Vec<String> {
        self.table.iter().map(|(k, _)| k.to_string()).collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub fn key_span(&self, key: &str) -> Span {
        self.table.get_key_value(key).and_then(|(k, _)| k.span())
    }

    /// Span of a key's value, falling back to the key, then the section.
    pub fn value_span(&self, key: &str) -> Span {
        self.table
            .get(key)
            .and_then(|i| i.span())
            .or_else(|| self.key_span(key))
            .or_else(|| self.span.clone())
    }

    /// Span to point at for a key: the key itself if present, else the section header.
    pub fn at(&self, key: &str) -> Span {
        self.key_span(key).or_else(|| self.span.clone())
    }

    /// Accept keys without acting on them (documented in `accepted`).
    pub fn accept(&mut self, keys: &[&str]) {
        for k in keys {
            self.ask(k);
        }
    }

    fn wrong_type(&self, cx: &mut Ctx, key: &str, expected: &str, item: &Item) {
        cx.error(
            self.value_span(key),
            format!(
                "key \"{key}\" in {}: expected {expected}, found {}",
                self.name(),
                type_name(item)
            ),
        );
    }

    pub fn item(&mut self, key: &str) -> Option<&'a Item> {
        self.ask(key)
    }

    pub fn string(&mut self, cx: &mut Ctx, key: &str) -> Option<String> {
        let item = self.ask(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong_type(cx, key, "a string", item);
                None
            }
        }
    }

    pub fn bool(&mut self, cx: &mut Ctx, key: &str) -> Option<bool> {
        let item = self.ask(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.wrong_type(cx, key, "a boolean (true or false)", item);
                None
            }
        }
    }

    pub fn int(&mut self, cx: &mut Ctx, key: &str) -> Option<i64> {
        let item = self.ask(key)?;
        match item.as_integer() {
            Some(i) => Some(i),
            None => {
                self.wrong_type(cx, key, "an integer", item);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int_in(&mut self, cx: &mut Ctx, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.int(cx, key)?;
        if v < min || v > max {
            cx.error(
                self.value_span(key),
                format!(
                    "key \"{key}\" in {}: {v} is out of range ({min}..={max})",
                    self.name()
                ),
            );
            return None;
        }
        Some(v)
    }

    pub fn count(&mut self, cx: &mut Ctx, key: &str, min: i64) -> Option<usize> {
        self.int_in(cx, key, min, i64::from(u32::MAX))
            .and_then(|v| usize::try_from(v).ok())
    }

    /// A non-negative number of milliseconds.
    pub fn millis(&mut self, cx: &mut Ctx, key: &str) -> Option<Duration> {
        self.int_in(cx, key, 0, i64::MAX)
            .map(|v| Duration::from_millis(v.unsigned_abs()))
    }

    /// A non-negative number of seconds.
    pub fn seconds(&mut self, cx: &mut Ctx, key: &str) -> Option<Duration> {
        self.int_in(cx, key, 0, i64::MAX)
            .map(|v| Duration::from_secs(v.unsigned_abs()))
    }

    /// A TCP port; `allow_zero` for listeners (0 = let the OS pick, useful in tests).
    pub fn port(&mut self, cx: &mut Ctx, key: &str, allow_zero: bool) -> Option<u16> {
        let v = self.int(cx, key)?;
        let min = if allow_zero { 0 } else { 1 };
        match u16::try_from(v) {
            Ok(p) if i64::from(p) >= min => Some(p),
            _ => {
                cx.error(
                    self.value_span(key),
                    format!(
                        "key \"{key}\" in {}: {v} is not a valid port ({min}-65535)",
                        self.name()
                    ),
                );
                None
            }
        }
    }

    /// A string from a closed set (case-insensitive); the error lists the valid values.
    pub fn choice<T: Copy>(&mut self, cx: &mut Ctx, key: &str, options: &[(&str, T)]) -> Option<T> {
        let s = self.string(cx, key)?;
        match lookup_choice(&s, options) {
            Some(v) => Some(v),
            None => {
                cx.error(
                    self.value_span(key),
                    format!(
                        "key \"{key}\" in {}: unknown value \"{s}\"; expected one of: {}",
                        self.name(),
                        list_choices(options)
                    ),
                );
                None
            }
        }
    }

    /// A sub-table (`[a.b]`, implicit, or inline `{ ... }`).
    pub fn section(&mut self, cx: &mut Ctx, key: &str) -> Option<Section<'a>> {
        let item = self.ask(key)?;
        let path = format!("{}.{key}", self.path);
        let path = path.trim_start_matches('.').to_string();
        match as_table_like(item) {
            Some(t) => {
                let span = item.span().or_else(|| self.key_span(key));
                Some(Section::new(path, t, span))
            }
            None => {
                self.wrong_type(cx, key, "a table", item);
                None
            }
        }
    }

    /// A collection written either keyed (`[x.key.0]`, `[x.key.1]`) or as an array
    /// (`[[x.key]]`, or `key = [{...}, {...}]`).
    pub fn entries(&mut self, cx: &mut Ctx, key: &str) -> Vec<Entry<'a>> {
        let Some(item) = self.ask(key) else {
            return Vec::new();
        };
        let base = format!("{}.{key}", self.path);
        let base = base.trim_start_matches('.').to_string();
        let mut out = Vec::new();
        match item {
            Item::Table(_) | Item::Value(Value::InlineTable(_)) => {
                let Some(t) = as_table_like(item) else {
                    return out;
                };
                for (label, child) in t.iter() {
                    let label_span = t.get_key_value(label).and_then(|(k, _)| k.span());
                    let path = format!("{base}.{label}");
                    match as_table_like(child) {
                        Some(ct) => {
                            let span = child.span().or_else(|| label_span.clone());
                            out.push(Entry {
                                label: Some(label.to_string()),
                                label_span,
                                section: Section::new(path, ct, span),
                            });
                        }
                        None => cx.error(
                            child.span().or(label_span),
                            format!("[{path}]: expected a table, found {}", type_name(child)),
                        ),
                    }
                }
            }
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    out.push(Entry {
                        label: None,
                        label_span: None,
                        section: Section::new(format!("{base}[{i}]"), t, t.span()),
                    });
                }
            }
            Item::Value(Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    match v.as_inline_table() {
                        Some(t) => out.push(Entry {
                            label: None,
                            label_span: None,
                            section: Section::new(format!("{base}[{i}]"), t, v.span()),
                        }),
                        None => cx.error(
                            v.span(),
                            format!(
                                "key \"{key}\" in {}: element {i} must be a table, found {}",
                                self.name(),
                                value_type_name(v)
                            ),
                        ),
                    }
                }
            }
            other => self.wrong_type(cx, key, "tables", other),
        }
        out
    }

    /// Report every key present that nobody asked for.
    pub fn finish(self, cx: &mut Ctx) {
        for (key, _) in self.table.iter() {
            if self.asked.iter().any(|k| k == key) {
                continue;
            }
            let hint = suggest(key, &self.asked)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            let path = if self.path.is_empty() {
                "the top level".to_string()
            } else {
                self.name()
            };
            cx.error(
                self.key_span(key).or_else(|| self.span.clone()),
                format!("unknown key \"{key}\" in {path}{hint}"),
            );
        }
    }
}

pub(crate) fn as_table_like(item: &Item) -> Option<&dyn TableLike> {
    match item {
        Item::Table(t) => Some(t),
        Item::Value(Value::InlineTable(t)) => Some(t),
        _ => None,
    }
}

pub(crate) fn lookup_choice<T: Copy>(s: &str, options: &[(&str, T)]) -> Option<T> {
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
        .map(|(_, v)| *v)
}

pub(crate) fn list_choices<T>(options: &[(&str, T)]) -> String {
    options
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest known key within a small edit distance, for "did you mean".
fn suggest<'k>(key: &str, known: &'k [String]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_pick_the_nearest_key() {
        let known = vec!["pool_size".to_string(), "min_pool_size".to_string()];
        assert_eq!(suggest("pool_sizee", &known), Some("pool_size"));
        assert_eq!(suggest("min_pool_siz", &known), Some("min_pool_size"));
        assert_eq!(suggest("completely_else", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
