//! `[general] log_queries`: one debug line per statement (target `orochi::query`) with
//! pool, user, shard(s), duration and rows, the statement text, and Bind parameter
//! values only with `log_parameters = true` (they may hold personal data).
//!
//! The switches are atomics in the [`App`](crate::app::App), set at start and on RELOAD:
//! the session checks one before it formats, clones or times anything for the log, so
//! with `log_queries = false` (the default) a statement costs one relaxed load. The
//! log filter always lets `orochi::query` through at debug, so turning `log_queries`
//! on shows the lines whatever `log_level` is.

use bytes::Bytes;
use orochi_config::General;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest statement text logged (bytes, cut at a character boundary).
pub const MAX_SQL: usize = 2048;
/// The longest parameter value logged.
pub const MAX_PARAM: usize = 64;
/// Parameters logged per statement.
pub const MAX_PARAMS: usize = 32;

#[derive(Debug, Default)]
pub struct QueryLog {
    on: AtomicBool,
    parameters: AtomicBool,
}

impl QueryLog {
    pub fn new(g: &General) -> Self {
        let q = QueryLog::default();
        q.configure(g);
        q
    }

    /// Applies the (re)loaded settings.
    pub fn configure(&self, g: &General) {
        self.on.store(g.log_queries, Ordering::Relaxed);
        self.parameters
            .store(g.log_queries && g.log_parameters, Ordering::Relaxed);
    }

    #[inline]
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn parameters(&self) -> bool {
        self.parameters.load(Ordering::Relaxed)
    }
}

/// A statement sent to one shard whose answer is still coming (single-shard path).
#[derive(Debug)]
pub struct Pending {
    /// The `started` of the statement's `Expect` (matches it at the answer).
    pub started: Instant,
    pub sql: String,
    pub params: Option<String>,
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A binary-format value of type `oid` as text, for the types drivers send in binary
/// most (integers, bool, text-like); `None` for the others.
fn binary_text(oid: u32, v: &[u8]) -> Option<String> {
    Some(match (oid, v.len()) {
        (21, 2) => i16::from_be_bytes(v.try_into().ok()?).to_string(),
        (23, 4) => i32::from_be_bytes(v.try_into().ok()?).to_string(),
        (20, 8) => i64::from_be_bytes(v.try_into().ok()?).to_string(),
        (16, 1) => (v[0] != 0).to_string(),
        // text, varchar, bpchar, name: UTF-8 bytes in either format.
        (25 | 1043 | 1042 | 19, _) => {
            format!("'{}'", truncate(std::str::from_utf8(v).ok()?, MAX_PARAM))
        }
        _ => return None,
    })
}

/// Bind parameter values for the log: text values quoted and truncated, binary ones
/// decoded for common types (`types`: the statement's parameter type OIDs) or shown by
/// size, NULL as NULL; at most [`MAX_PARAMS`].
pub fn format_params(params: &[Option<Bytes>], formats: &[i16], types: &[u32]) -> String {
    let format_of = |i: usize| match formats {
        [] => 0,
        [one] => *one,
        all => all.get(i).copied().unwrap_or(0),
    };
    let mut out: Vec<String> = params
        .iter()
        .take(MAX_PARAMS)
        .enumerate()
        .map(|(i, p)| match p {
            None => format!("${}=NULL", i + 1),
            Some(v) if format_of(i) == 1 => {
                match binary_text(types.get(i).copied().unwrap_or(0), v) {
                    Some(t) => format!("${}={t}", i + 1),
                    None => format!("${}=<{} bytes binary>", i + 1, v.len()),
                }
            }
            Some(v) => format!(
                "${}='{}'",
                i + 1,
                truncate(&String::from_utf8_lossy(v), MAX_PARAM)
            ),
        })
        .collect();
    if params.len() > MAX_PARAMS {
        out.push(format!("… {} more", params.len() - MAX_PARAMS));
    }
    out.join(", ")
}

/// Rows of a CommandComplete tag (`SELECT 3`, `INSERT 0 2`, `UPDATE 7`): its last word.
/// Accepts the tag text or a whole encoded CommandComplete message.
pub fn rows_of_tag(tag: &[u8]) -> Option<u64> {
    let text = match tag {
        [b'C', _, _, _, _, rest @ ..] => rest,
        t => t,
    };
    let text = text.strip_suffix(b"\0").unwrap_or(text);
    std::str::from_utf8(text)
        .ok()?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// One statement's line.
pub struct Line<'a> {
    pub pool: &'a str,
    pub user: &'a str,
    pub shards: &'a [usize],
    pub elapsed: Duration,
    pub rows: Option<u64>,
    pub sql: &'a str,
    pub params: Option<&'a str>,
}

pub fn emit(l: Line<'_>) {
    let shards = l
        .shards
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rows = l.rows.map_or_else(|| "-".to_string(), |r| r.to_string());
    let duration_ms = format!("{:.3}", l.elapsed.as_secs_f64() * 1000.0);
    match l.params {
        Some(p) => {
            tracing::debug!(target: "orochi::query", pool = %l.pool, user = %l.user, shards = %shards, duration_ms = %duration_ms, rows = %rows, params = %p, "query: {}", l.sql)
        }
        None => {
            tracing::debug!(target: "orochi::query", pool = %l.pool, user = %l.user, shards = %shards, duration_ms = %duration_ms, rows = %rows, "query: {}", l.sql)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_tags() {
        assert_eq!(rows_of_tag(b"SELECT 3\0"), Some(3));
        assert_eq!(rows_of_tag(b"INSERT 0 2"), Some(2));
        assert_eq!(rows_of_tag(b"BEGIN"), None);
        let mut msg = vec![b'C', 0, 0, 0, 14];
        msg.extend_from_slice(b"UPDATE 7\0");
        assert_eq!(rows_of_tag(&msg), Some(7));
    }

    #[test]
    fn params_are_truncated_and_binary_is_sized() {
        let long = "x".repeat(100);
        let p = vec![
            Some(Bytes::from_static(b"42")),
            None,
            Some(Bytes::from(long)),
        ];
        let s = format_params(&p, &[], &[]);
        assert!(s.starts_with("$1='42', $2=NULL, $3='xxxx"), "{s}");
        assert!(s.ends_with("…'") && s.len() < 100, "{s}");
        let b = format_params(&[Some(Bytes::from_static(&[0, 0, 0, 1]))], &[1], &[]);
        assert_eq!(b, "$1=<4 bytes binary>");
        let typed = format_params(
            &[
                Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 1, 2])),
                Some(Bytes::from_static(b"abc")),
                Some(Bytes::from_static(&[1])),
                Some(Bytes::from_static(&[0xff, 0xfe])),
            ],
            &[1],
            &[20, 25, 16, 1700],
        );
        assert_eq!(typed, "$1=258, $2='abc', $3=true, $4=<2 bytes binary>");
        let many: Vec<_> = (0..40).map(|_| None).collect();
        assert!(format_params(&many, &[], &[]).ends_with("… 8 more"));
    }

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[test]
    fn switches_follow_the_config() {
        let mut g = orochi_config::Config::from_str_with_env(
            "[general]\n[pools.a.users.0]\nusername='u'\npassword='p'\npool_size=1\n[pools.a.shards.0]\ndatabase='a'\nservers=[['h',5432,'primary']]\n",
            "t.toml",
            &|_| None,
        )
        .unwrap()
        .general
        .clone();
        let q = QueryLog::new(&g);
        assert!(!q.enabled() && !q.parameters());
        g.log_parameters = true;
        q.configure(&g);
        assert!(!q.parameters(), "parameters only with log_queries");
        g.log_queries = true;
        q.configure(&g);
        assert!(q.enabled() && q.parameters());
    }
}
