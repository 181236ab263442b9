//! Combining shard results: the k-way merge order, DISTINCT, GROUP BY with count/sum/
//! min/max/avg, and OFFSET/LIMIT, over DataRow bodies as the shards sent them. Rows
//! that pass through unchanged are forwarded as the shard's bytes; only aggregates are
//! re-encoded.

use super::cast::Scalar;
use super::numeric::Numeric;
use super::value::{self, canonical, compare, decode, Value};
use crate::planner::sharding::{AggKind, Col, Merge};
use bytes::{BufMut, Bytes, BytesMut};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Type and format of one result column.
#[derive(Debug, Clone, Copy)]
pub struct ColType {
    pub oid: u32,
    pub binary: bool,
}

/// A DataRow body with the position of each value.
#[derive(Debug, Clone)]
pub struct Row {
    pub body: Bytes,
    cols: Vec<Option<(usize, usize)>>,
}

impl Row {
    pub fn parse(body: Bytes) -> Option<Row> {
        let n = u16::from_be_bytes(body.get(0..2)?.try_into().ok()?) as usize;
        let mut cols = Vec::with_capacity(n);
        let mut pos = 2;
        for _ in 0..n {
            let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
            pos += 4;
            if len < 0 {
                cols.push(None);
            } else {
                let l = len as usize;
                body.get(pos..pos + l)?;
                cols.push(Some((pos, pos + l)));
                pos += l;
            }
        }
        Some(Row { body, cols })
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.cols
            .get(i)
            .copied()
            .flatten()
            .map(|(a, b)| &self.body[a..b])
    }

    pub fn width(&self) -> usize {
        self.cols.len()
    }

    /// The DataRow body keeping the first `n` columns.
    pub fn truncated(&self, n: usize) -> Bytes {
        if n >= self.cols.len() {
            return self.body.clone();
        }
        let end = 2 + self.cols[..n]
            .iter()
            .map(|c| 4 + c.map_or(0, |(a, b)| b - a))
            .sum::<usize>();
        let mut b = BytesMut::with_capacity(end);
        b.put_u16(n as u16);
        b.put_slice(&self.body[2..end]);
        b.freeze()
    }
}

pub fn encode_row(values: &[Option<Vec<u8>>]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u16(values.len() as u16);
    for v in values {
        match v {
            None => b.put_i32(-1),
            Some(v) => {
                b.put_i32(v.len() as i32);
                b.put_slice(v);
            }
        }
    }
    b.freeze()
}

/// A merge plan bound to the shard result's columns.
pub struct Bound {
    pub plan: Merge,
    pub types: Vec<ColType>,
    /// Columns the client sees.
    pub visible: usize,
}

impl Bound {
    pub fn index(&self, c: Col) -> usize {
        match c {
            Col::At(i) => i,
            Col::Hidden(j) => self.visible + j,
        }
    }

    /// Checks that every column the merge must look into has a type it understands.
    pub fn check(&self) -> Result<(), String> {
        for k in &self.plan.order {
            let i = self.index(k.col);
            let t = self.types.get(i).ok_or("ORDER BY column out of range")?;
            if !value::orderable(t.oid) {
                return Err(format!(
                    "ORDER BY a column of type oid {} across shards",
                    t.oid
                ));
            }
        }
        if let Some(g) = &self.plan.group {
            for (c, k) in &g.aggs {
                let t = self
                    .types
                    .get(self.index(*c))
                    .ok_or("aggregate column out of range")?;
                let ok = match k {
                    AggKind::Count => t.oid == value::INT8,
                    AggKind::Sum => matches!(t.oid, value::INT8 | value::NUMERIC | value::FLOAT8),
                    AggKind::Avg { .. } => {
                        matches!(t.oid, value::INT8 | value::NUMERIC | value::FLOAT8)
                    }
                    AggKind::Min | AggKind::Max => value::orderable(t.oid),
                    AggKind::BitAnd | AggKind::BitOr => {
                        matches!(t.oid, value::INT2 | value::INT4 | value::INT8)
                    }
                };
                if !ok {
                    return Err(format!(
                        "this aggregate over a column of type oid {} across shards",
                        t.oid
                    ));
                }
            }
        }
        Ok(())
    }

    /// ORDER BY comparison of two rows.
    pub fn cmp_rows(&self, a: &Row, b: &Row) -> Ordering {
        for k in &self.plan.order {
            let i = self.index(k.col);
            let t = self.types[i];
            let o = match (a.get(i), b.get(i)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => {
                    if k.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (Some(_), None) => {
                    if k.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (Some(x), Some(y)) => {
                    let o = match (decode(t.oid, t.binary, x), decode(t.oid, t.binary, y)) {
                        (Some(x), Some(y)) => compare(&x, &y),
                        _ => x.cmp(y),
                    };
                    if k.desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// Equality key of the visible columns (DISTINCT) or of given columns (GROUP BY).
    pub fn key(&self, row: &Row, cols: &[usize]) -> Vec<u8> {
        let mut k = Vec::new();
        for &i in cols {
            match row.get(i) {
                None => k.push(0),
                Some(v) => {
                    k.push(1);
                    let c = canonical(self.types[i].oid, self.types[i].binary, v);
                    k.extend_from_slice(&(c.len() as u32).to_be_bytes());
                    k.extend_from_slice(&c);
                }
            }
        }
        k
    }
}

/// Running state of one aggregate column.
#[derive(Debug, Clone)]
enum Acc {
    Null,
    Int(i64),
    Num(Numeric),
    Float(f64),
    /// min/max keep the winning value's bytes.
    Raw(Vec<u8>),
    /// bit_and/bit_or so far.
    Bits(i64),
}

/// One group: the first row's values, the aggregate states, avg's count states.
type Group = (Vec<Option<Vec<u8>>>, Vec<Acc>, Vec<Acc>);

pub struct Groups {
    order: Vec<Vec<u8>>,
    map: HashMap<Vec<u8>, Group>,
}

impl Groups {
    pub fn new() -> Self {
        Groups {
            order: vec![],
            map: HashMap::new(),
        }
    }

    pub fn add(&mut self, b: &Bound, row: &Row) -> Result<(), String> {
        let Some(g) = &b.plan.group else {
            return Ok(());
        };
        let keys: Vec<usize> = g.keys.iter().map(|c| b.index(*c)).collect();
        let key = b.key(row, &keys);
        let entry = match self.map.get_mut(&key) {
            Some(e) => e,
            None => {
                self.order.push(key.clone());
                let vals = (0..row.width())
                    .map(|i| row.get(i).map(<[u8]>::to_vec))
                    .collect();
                self.map.entry(key).or_insert((
                    vals,
                    vec![Acc::Null; g.aggs.len()],
                    vec![Acc::Null; g.aggs.len()],
                ))
            }
        };
        for (n, (c, kind)) in g.aggs.iter().enumerate() {
            let i = b.index(*c);
            let t = b.types[i];
            combine(&mut entry.1[n], *kind, t, row.get(i))?;
            if let AggKind::Avg { count } = kind {
                let ci = b.index(*count);
                combine(&mut entry.2[n], AggKind::Count, b.types[ci], row.get(ci))?;
            }
        }
        Ok(())
    }

    /// Rows of the groups. With no GROUP BY keys and no rows at all, one row of empty
    /// aggregates (count 0, others NULL), as PostgreSQL answers.
    pub fn finish(mut self, b: &Bound) -> Result<Vec<Row>, String> {
        let Some(g) = &b.plan.group else {
            return Ok(vec![]);
        };
        if self.order.is_empty() && g.keys.is_empty() {
            let width = b.types.len();
            self.order.push(vec![]);
            self.map.insert(
                vec![],
                (
                    vec![None; width],
                    vec![Acc::Null; g.aggs.len()],
                    vec![Acc::Null; g.aggs.len()],
                ),
            );
        }
        let mut out = Vec::with_capacity(self.order.len());
        for k in &self.order {
            let Some((mut vals, accs, counts)) = self.map.remove(k) else {
                continue;
            };
            for (n, (c, kind)) in g.aggs.iter().enumerate() {
                let i = b.index(*c);
                let t = b.types[i];
                vals[i] = match kind {
                    AggKind::Count => Some(encode_int(
                        t,
                        match &accs[n] {
                            Acc::Int(v) => *v,
                            _ => 0,
                        },
                    )),
                    AggKind::Avg { .. } => avg(&accs[n], &counts[n], t)?,
                    _ => finish(&accs[n], t),
                };
            }
            for (c, chain) in &g.casts {
                let i = b.index(*c);
                let Some(raw) = vals[i].take() else { continue };
                let t = b.types[i];
                let is_avg = g
                    .aggs
                    .iter()
                    .any(|(ac, k)| ac == c && matches!(k, AggKind::Avg { .. }));
                let oid = if is_avg { avg_type(t.oid) } else { t.oid };
                let v = decode(oid, t.binary, &raw).ok_or("cannot read a merged value to cast")?;
                let mut s = Scalar::from_value(v, oid).map_err(|(_, m)| m)?;
                for to in chain {
                    s = s.cast(*to).map_err(|(code, m)| format!("{code}:{m}"))?;
                }
                vals[i] = chain.last().map(|to| s.encode(*to, t.binary));
            }
            out.push(Row::parse(encode_row(&vals)).ok_or("internal: bad row")?);
        }
        Ok(out)
    }
}

impl Default for Groups {
    fn default() -> Self {
        Self::new()
    }
}

fn encode_int(t: ColType, v: i64) -> Vec<u8> {
    if t.binary {
        v.to_be_bytes().to_vec()
    } else {
        v.to_string().into_bytes()
    }
}

fn encode_num(t: ColType, n: &Numeric) -> Vec<u8> {
    if t.binary {
        n.to_binary()
    } else {
        n.to_text().into_bytes()
    }
}

fn encode_float(t: ColType, f: f64) -> Vec<u8> {
    if t.binary {
        f.to_be_bytes().to_vec()
    } else {
        value::float8_text(f).into_bytes()
    }
}

fn combine(acc: &mut Acc, kind: AggKind, t: ColType, v: Option<&[u8]>) -> Result<(), String> {
    let Some(v) = v else { return Ok(()) };
    let bad = || format!("cannot read an aggregate value of type oid {}", t.oid);
    let val = decode(t.oid, t.binary, v).ok_or_else(bad)?;
    *acc = match (kind, std::mem::replace(acc, Acc::Null), val) {
        (AggKind::Count | AggKind::Sum | AggKind::Avg { .. }, Acc::Null, Value::Int(x)) => {
            Acc::Int(x)
        }
        (AggKind::Count | AggKind::Sum | AggKind::Avg { .. }, Acc::Int(a), Value::Int(x)) => {
            Acc::Int(a.checked_add(x).ok_or("bigint out of range")?)
        }
        (AggKind::Sum | AggKind::Avg { .. }, Acc::Null, Value::Num(x)) => Acc::Num(x),
        (AggKind::Sum | AggKind::Avg { .. }, Acc::Num(a), Value::Num(x)) => Acc::Num(a.add(&x)),
        (AggKind::Sum | AggKind::Avg { .. }, Acc::Null, Value::Float(x)) => Acc::Float(x),
        (AggKind::Sum | AggKind::Avg { .. }, Acc::Float(a), Value::Float(x)) => Acc::Float(a + x),
        (AggKind::BitAnd | AggKind::BitOr, Acc::Null, Value::Int(x)) => Acc::Bits(x),
        (AggKind::BitAnd, Acc::Bits(a), Value::Int(x)) => Acc::Bits(a & x),
        (AggKind::BitOr, Acc::Bits(a), Value::Int(x)) => Acc::Bits(a | x),
        (AggKind::Min | AggKind::Max, Acc::Null, _) => Acc::Raw(v.to_vec()),
        (AggKind::Min | AggKind::Max, Acc::Raw(cur), x) => {
            let c = decode(t.oid, t.binary, &cur).ok_or_else(bad)?;
            let o = compare(&x, &c);
            let take = if matches!(kind, AggKind::Min) {
                o == Ordering::Less
            } else {
                o == Ordering::Greater
            };
            Acc::Raw(if take { v.to_vec() } else { cur })
        }
        _ => return Err(bad()),
    };
    Ok(())
}

fn finish(acc: &Acc, t: ColType) -> Option<Vec<u8>> {
    match acc {
        Acc::Null => None,
        Acc::Int(v) => Some(encode_int(t, *v)),
        Acc::Num(n) => Some(encode_num(t, n)),
        Acc::Float(f) => Some(encode_float(t, *f)),
        Acc::Raw(r) => Some(r.clone()),
        Acc::Bits(v) => Some(encode_int_as(t, *v)),
    }
}

/// An integer in the column's own type (bit_and/bit_or keep their input's type).
fn encode_int_as(t: ColType, v: i64) -> Vec<u8> {
    match (t.binary, t.oid) {
        (true, value::INT2) => (v as i16).to_be_bytes().to_vec(),
        (true, value::INT4) => (v as i32).to_be_bytes().to_vec(),
        (true, _) => v.to_be_bytes().to_vec(),
        (false, _) => v.to_string().into_bytes(),
    }
}

/// avg = sum / count, typed as PostgreSQL types avg: numeric for integer and numeric
/// input (whose sums arrive as bigint or numeric), float8 for float input.
fn avg(sum: &Acc, count: &Acc, t: ColType) -> Result<Option<Vec<u8>>, String> {
    let n = match count {
        Acc::Int(n) if *n > 0 => *n,
        _ => return Ok(None),
    };
    let out = ColType {
        oid: 0,
        binary: t.binary,
    };
    Ok(match sum {
        Acc::Null => None,
        Acc::Int(s) => Numeric::from_i64(*s)
            .div(&Numeric::from_i64(n))
            .map(|q| encode_num(out, &q)),
        Acc::Num(s) => s.div(&Numeric::from_i64(n)).map(|q| encode_num(out, &q)),
        Acc::Float(s) => Some(encode_float(out, s / n as f64)),
        Acc::Raw(_) | Acc::Bits(_) => return Err("avg of this type across shards".into()),
    })
}

/// The type the client sees for an `avg` column whose shard sum has type `sum_oid`.
pub fn avg_type(sum_oid: u32) -> u32 {
    if sum_oid == value::FLOAT8 || sum_oid == value::FLOAT4 {
        value::FLOAT8
    } else {
        value::NUMERIC
    }
}
