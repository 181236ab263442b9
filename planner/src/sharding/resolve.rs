//! Turns a plan's routing into shards once the values are known: literals at plan time,
//! bind parameters (text or binary) at Bind. A value the router cannot hash exactly (say
//! `id = 1.0` for a bigint key, which PostgreSQL compares numerically) widens the route to
//! every shard rather than guessing.

use super::route::{KeySet, KeyValue, Routing};
use orochi_sharding::{parse_binary, parse_text, shard_for, ShardKey};

/// Bind parameters: values and their format codes as the Bind message gave them.
#[derive(Clone, Copy, Default)]
pub struct Params<'a> {
    pub values: &'a [Option<bytes::Bytes>],
    pub formats: &'a [i16],
}

impl Params<'_> {
    /// The format code of parameter `i` (0-based).
    pub fn format(&self, i: usize) -> i16 {
        match self.formats {
            [] => 0,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(0),
        }
    }
}

/// Where a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Any single shard.
    Any,
    /// These shards (sorted, at least one).
    Shards(Vec<usize>),
}

/// Which shards hold the keys of a set; `None` = cannot tell (every shard).
fn key_shards(ks: &KeySet, n: usize, params: Params<'_>) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    let mut add = |key: ShardKey<'_>| -> Option<()> {
        let s = shard_for(&key, n).ok()?;
        if !out.contains(&s) {
            out.push(s);
        }
        Some(())
    };
    for v in &ks.values {
        match v {
            KeyValue::Null => add(ShardKey::Null)?,
            KeyValue::Text(t) => add(parse_text(ks.ty, t.as_bytes()).ok()?)?,
            KeyValue::Param(p) => match params.values.get(p.checked_sub(1)?)? {
                None => add(ShardKey::Null)?,
                Some(b) if params.format(p - 1) == 1 => add(parse_binary(ks.ty, b).ok()?)?,
                Some(b) => add(parse_text(ks.ty, b).ok()?)?,
            },
            KeyValue::ParamArray(p) => {
                let Some(b) = params.values.get(p.checked_sub(1)?)?.as_ref() else {
                    continue; // = ANY(NULL) matches nothing
                };
                if params.format(p - 1) == 1 {
                    for e in binary_array(b)? {
                        match e {
                            None => {}
                            Some(e) => add(parse_binary(ks.ty, e).ok()?)?,
                        }
                    }
                } else {
                    for e in text_array(b)? {
                        match e {
                            None => {}
                            Some(e) => add(parse_text(ks.ty, e.as_bytes()).ok()?)?,
                        }
                    }
                }
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

pub fn resolve(routing: &Routing, n: usize, params: Params<'_>) -> Result<Resolved, String> {
    let all = || Resolved::Shards((0..n).collect());
    Ok(match routing {
        Routing::Any => Resolved::Any,
        Routing::All => all(),
        Routing::Keys(ks) => match key_shards(ks, n, params) {
            None => all(),
            Some(v) if v.is_empty() => Resolved::Any,
            Some(v) => Resolved::Shards(v),
        },
        Routing::SameShard(sets) => {
            let mut shard = None;
            for ks in sets {
                match key_shards(ks, n, params).as_deref() {
                    Some([]) => {}
                    Some([s]) if shard.is_none_or(|x| x == *s) => shard = Some(*s),
                    _ => return Err("the distributed tables of this statement are restricted to keys on different shards and are not joined on their keys; join them on the key columns, or split the statement".into()),
                }
            }
            match shard {
                Some(s) => Resolved::Shards(vec![s]),
                None if sets.is_empty() => return Err("statement not routable".into()),
                None => Resolved::Any,
            }
        }
    })
}

/// Elements of a one-dimensional binary array (`None` = NULL element).
pub fn binary_array(b: &[u8]) -> Option<Vec<Option<&[u8]>>> {
    let rd =
        |i: usize| -> Option<i32> { Some(i32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
    let ndim = rd(0)?;
    if ndim == 0 {
        return Some(vec![]);
    }
    if ndim != 1 {
        return None;
    }
    let len = usize::try_from(rd(12)?).ok()?;
    let mut pos = 20;
    let mut out = Vec::with_capacity(len.min(4096));
    for _ in 0..len {
        let l = rd(pos)?;
        pos += 4;
        if l < 0 {
            out.push(None);
        } else {
            let l = l as usize;
            out.push(Some(b.get(pos..pos + l)?));
            pos += l;
        }
    }
    Some(out)
}

/// Elements of a one-dimensional text array literal, quotes and backslashes decoded.
pub fn text_array(b: &[u8]) -> Option<Vec<Option<String>>> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let body = s.strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if body.trim().is_empty() {
        return Some(out);
    }
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut cur = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => cur.push(chars.next()?),
                    '"' => break,
                    c => cur.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return None;
                }
                chars.next();
                if c == '\\' {
                    cur.push(chars.next()?);
                } else {
                    cur.push(c);
                }
            }
            cur = cur.trim_end().to_string();
        }
        out.push(if !quoted && cur.eq_ignore_ascii_case("null") {
            None
        } else {
            Some(cur)
        });
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}
