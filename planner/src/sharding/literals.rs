//! Routing simple-protocol statements without planning each literal afresh. Plans are
//! cached by statement text, and `... WHERE aid = 42` and `... WHERE aid = 43` are two
//! texts: a client that inlines its values (pgbench `-M simple`, many ORMs) would pay a
//! cold parse per statement. Here the constants are lifted out (`aid = $1`), the
//! parameterised text is planned once, and the literals are resolved as text-format
//! parameters, exactly as a Bind's would be.
//!
//! Only the narrow, safe case is answered: a statement whose keys put it on exactly one
//! shard. Anything else (several shards, a merge, a refusal, a statement the lifting
//! could change: strings with backslashes or a type prefix, dollar quotes, existing
//! parameters) returns `None` and takes the ordinary path with the original text; the
//! statement sent to the shard is always the client's own text.

use super::resolve::{resolve, Params, Resolved};
use super::route::{Kind, Routing};
use super::{plan, ShardingSchema};
use bytes::Bytes;

/// A statement with its constants lifted out.
#[derive(Debug, PartialEq, Eq)]
pub struct Lifted {
    /// The text with `$1`, `$2`, … where the constants were.
    pub text: String,
    /// The constants' values, as text-format parameters.
    pub values: Vec<Option<Bytes>>,
}

/// The one shard a simple-protocol statement goes to, and its kind, when its keys say
/// so; `None`: plan the statement itself.
pub fn one_shard(schema: &ShardingSchema, sql: &str) -> Option<(usize, Kind)> {
    let lifted = lift(sql)?;
    if lifted.values.is_empty() {
        return None;
    }
    let p = plan(schema, &lifted.text);
    if p.refuse.is_some()
        || !matches!(p.kind, Kind::Read | Kind::Write)
        || !matches!(p.routing, Routing::Keys(_) | Routing::SameShard(_))
        || p.copy_in.is_some()
    {
        return None;
    }
    let params = Params {
        values: &lifted.values,
        formats: &[],
    };
    match resolve(&p.routing, schema.shards, params).ok()? {
        Resolved::Shards(v) if v.len() == 1 => Some((v[0], p.kind)),
        _ => None,
    }
}

fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Lifts the numeric and plain string constants out of `sql`; `None` when the text has
/// something the lifting could misread.
pub fn lift(sql: &str) -> Option<Lifted> {
    let b = sql.as_bytes();
    if b.contains(&b'$') {
        return None;
    }
    let mut text = String::with_capacity(sql.len() + 8);
    let mut values = Vec::new();
    // The byte right before position `i` (prefixes like E'' and identifiers like t1).
    let before = |i: usize| if i == 0 { b' ' } else { b[i - 1] };
    let mut i = 0;
    let mut copied = 0;
    let mut lifted =
        |text: &mut String, from: usize, to: usize, value: String, copied: &mut usize| {
            text.push_str(&sql[*copied..from]);
            values.push(Some(Bytes::from(value)));
            text.push('$');
            text.push_str(&values.len().to_string());
            *copied = to;
        };
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'"' {
                        if b.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            b'\'' => {
                // A prefixed literal (E'', B'', X'', N'', U&''): left alone, and so is
                // the whole statement. (A typed one, `date '...'`, becomes `date $1`,
                // which does not parse: the ordinary path takes it.)
                if ident_byte(before(i)) || before(i) == b'&' {
                    return None;
                }
                let start = i;
                let mut value = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\\') => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                            value.push(b'\'');
                            i += 2;
                        }
                        Some(b'\'') => break,
                        Some(&x) => {
                            value.push(x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                // Arrays are read by another parser at plan time; adjacent strings
                // concatenate: both left to the ordinary path.
                if value.first() == Some(&b'{') {
                    return None;
                }
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) == Some(&b'\'') {
                    return None;
                }
                let value = String::from_utf8(value).ok()?;
                lifted(&mut text, start, i, value, &mut copied);
                continue;
            }
            b'0'..=b'9' if !ident_byte(before(i)) && before(i) != b'.' => {
                let mut start = i;
                // A sign right after `=`, `(`, `,`, `<`, `>` belongs to the constant
                // (PostgreSQL folds `= -5` into the constant -5).
                let mut k = i;
                while k > 0 && b[k - 1].is_ascii_whitespace() {
                    k -= 1;
                }
                if k > 0 && b[k - 1] == b'-' && k == i {
                    let mut m = k - 1;
                    while m > 0 && b[m - 1].is_ascii_whitespace() {
                        m -= 1;
                    }
                    if m > 0 && matches!(b[m - 1], b'=' | b'(' | b',' | b'<' | b'>') {
                        start = k - 1;
                    }
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    return None;
                }
                if b.get(i).is_some_and(|&x| ident_byte(x) || x == b'.') {
                    return None;
                }
                // `-7::bigint` is `-(7::bigint)` to PostgreSQL: the sign stays outside.
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if matches!(b.get(j), Some(b':' | b'[')) {
                    start = start.max(k);
                }
                let value = sql[start..i].to_string();
                lifted(&mut text, start, i, value, &mut copied);
                continue;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) && !ident_byte(before(i)) => {
                return None;
            }
            _ => {}
        }
        i += 1;
    }
    text.push_str(&sql[copied..]);
    Some(Lifted { text, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifted(sql: &str) -> Option<(String, Vec<String>)> {
        lift(sql).map(|l| {
            (
                l.text,
                l.values
                    .into_iter()
                    .map(|v| String::from_utf8(v.unwrap().to_vec()).unwrap())
                    .collect(),
            )
        })
    }

    #[test]
    fn constants_become_parameters() {
        assert_eq!(
            lifted("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
            Some((
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".into(),
                vec!["12345".into()]
            ))
        );
        assert_eq!(
            lifted("select * from t where k in (1, -2,3) and s = 'it''s' limit 10"),
            Some((
                "select * from t where k in ($1, $2,$3) and s = $4 limit $5".into(),
                vec![
                    "1".into(),
                    "-2".into(),
                    "3".into(),
                    "it's".into(),
                    "10".into()
                ]
            ))
        );
        // Subtraction keeps its operator; decimals and casts are lifted whole; a sign
        // before a cast stays outside it, as PostgreSQL parses it.
        assert_eq!(
            lifted("SELECT a - 1, 2.5::numeric FROM t WHERE k = -7 OR k = -8::int"),
            Some((
                "SELECT a - $1, $2::numeric FROM t WHERE k = $3 OR k = -$4::int".into(),
                vec!["1".into(), "2.5".into(), "-7".into(), "8".into()]
            ))
        );
        // Identifiers, quoted identifiers and comments are not constants.
        assert_eq!(
            lifted("SELECT t1.c2 FROM \"t 3\" /* 4 '5' */ WHERE x9 = 6 -- 7\n"),
            Some((
                "SELECT t1.c2 FROM \"t 3\" /* 4 '5' */ WHERE x9 = $1 -- 7\n".into(),
                vec!["6".into()]
            ))
        );
    }

    #[test]
    fn what_could_be_misread_is_left_alone() {
        for sql in [
            "SELECT * FROM t WHERE k = $1",
            "SELECT $$a$$",
            "SELECT * FROM t WHERE k = E'\\x41'",
            "SELECT * FROM t WHERE s = 'a\\b'",
            "SELECT * FROM t WHERE k = ANY('{1,2}')",
            "SELECT * FROM t WHERE s = 'a' 'b'",
            "SELECT * FROM t WHERE k = 1e5",
            "SELECT * FROM t WHERE k = .5",
            "SELECT * FROM t WHERE k = 0x1F",
            "SELECT * FROM t WHERE s = 'open",
        ] {
            assert_eq!(lifted(sql), None, "{sql}");
        }
    }
}
