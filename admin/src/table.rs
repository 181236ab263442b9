//! A result set as the console sends it: typed columns, text-format values.
//!
//! Every value goes out in text format, as PgBouncer does; the type OIDs only tell
//! clients how to parse (psql aligns numbers right, drivers decode to ints).

use bytes::Bytes;
use orochi_wire::backend::FieldDescription;
use orochi_wire::BackendMessage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Column types the console uses, with PostgreSQL's OIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Text,
    Int4,
    Int8,
    /// PgBouncer sends its 64-bit statistics as `numeric`.
    Numeric,
    Float8,
}

impl ColType {
    pub fn oid(self) -> u32 {
        match self {
            ColType::Text => 25,
            ColType::Int4 => 23,
            ColType::Int8 => 20,
            ColType::Numeric => 1700,
            ColType::Float8 => 701,
        }
    }
    fn size(self) -> i16 {
        match self {
            ColType::Text | ColType::Numeric => -1,
            ColType::Int4 => 4,
            ColType::Int8 | ColType::Float8 => 8,
        }
    }
}

/// A result set under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<(&'static str, ColType)>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, ColType)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; its length must match the columns (checked in debug builds and tests).
    pub fn push(&mut self, row: Vec<Option<String>>) {
        debug_assert_eq!(row.len(), self.columns.len(), "row width");
        self.rows.push(row);
    }

    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(n, _)| *n).collect()
    }

    /// RowDescription, DataRows and CommandComplete `SHOW`.
    pub fn into_messages(self) -> Vec<BackendMessage> {
        let mut out = Vec::with_capacity(self.rows.len() + 2);
        out.push(BackendMessage::RowDescription(
            self.columns
                .iter()
                .map(|(name, ty)| FieldDescription {
                    name: (*name).to_string(),
                    table_oid: 0,
                    column: 0,
                    type_oid: ty.oid(),
                    type_size: ty.size(),
                    type_modifier: -1,
                    format: 0,
                })
                .collect(),
        ));
        for row in self.rows {
            out.push(BackendMessage::DataRow(
                row.into_iter().map(|v| v.map(Bytes::from)).collect(),
            ));
        }
        out.push(BackendMessage::CommandComplete("SHOW".into()));
        out
    }
}

/// Value helpers: every column value is text.
pub fn text(s: impl Into<String>) -> Option<String> {
    Some(s.into())
}

pub fn num(n: impl std::fmt::Display) -> Option<String> {
    Some(n.to_string())
}

/// `yes`/`no` as PgBouncer's `changeable`; `1`/`0` for its int flags use [`flag`].
pub fn yes_no(b: bool) -> Option<String> {
    text(if b { "yes" } else { "no" })
}

pub fn flag(b: bool) -> Option<String> {
    num(u8::from(b))
}

/// Seconds with millisecond precision, for float8 columns.
pub fn seconds(d: Duration) -> Option<String> {
    Some(format!("{:.3}", d.as_secs_f64()))
}

/// PgBouncer's timestamp format, in UTC: `2024-01-31 23:59:59 UTC`.
pub fn timestamp(t: SystemTime) -> Option<String> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm). Hand-written to avoid a date crate for one format.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_like_pgbouncer() {
        assert_eq!(timestamp(UNIX_EPOCH).unwrap(), "1970-01-01 00:00:00 UTC");
        // date -u -d @1709251199 → 2024-02-29 23:59:59 (leap day)
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(timestamp(t).unwrap(), "2024-02-29 23:59:59 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(951_868_800); // 2000-03-01
        assert_eq!(timestamp(t).unwrap(), "2000-03-01 00:00:00 UTC");
    }

    #[test]
    fn messages_have_types_and_tag() {
        let mut t = Table::new(&[("a", ColType::Text), ("b", ColType::Numeric)]);
        t.push(vec![text("x"), None]);
        let m = t.into_messages();
        assert_eq!(m.len(), 3);
        match &m[0] {
            BackendMessage::RowDescription(f) => {
                assert_eq!(f[1].name, "b");
                assert_eq!(f[1].type_oid, 1700);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            m[1],
            BackendMessage::DataRow(vec![Some(Bytes::from_static(b"x")), None])
        );
        assert_eq!(m[2], BackendMessage::CommandComplete("SHOW".into()));
    }
}
