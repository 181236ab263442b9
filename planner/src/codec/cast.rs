//! Casts applied by the router to merged aggregates (`count(*)::int`,
//! `sum(x)::int8::text`): the shards return the aggregate itself, the router combines
//! it and then casts, as PostgreSQL would cast the single-server value. Only casts
//! whose PostgreSQL semantics are reproduced exactly are accepted (integer widths with
//! their range errors, numeric rounding half away from zero, float rounding half to
//! even, float8, numeric, and text output).

use super::numeric::Numeric;
use super::value::{self, Value};
use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive};

/// A cast the router applies to a merged aggregate: the planner finds it over an
/// aggregate (`count(*)::int`), the executor applies it after merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTo {
    Int2,
    Int4,
    Int8,
    Numeric,
    Float8,
    Text,
}

impl CastTo {
    /// The cast target a type name means, if the router can apply it.
    pub fn from_type_name(name: &str) -> Option<CastTo> {
        Some(match name {
            "int2" | "smallint" => CastTo::Int2,
            "int4" | "int" | "integer" => CastTo::Int4,
            "int8" | "bigint" => CastTo::Int8,
            "numeric" | "decimal" => CastTo::Numeric,
            "float8" => CastTo::Float8,
            "text" => CastTo::Text,
            _ => return None,
        })
    }

    pub fn oid(self) -> u32 {
        match self {
            CastTo::Int2 => value::INT2,
            CastTo::Int4 => value::INT4,
            CastTo::Int8 => value::INT8,
            CastTo::Numeric => value::NUMERIC,
            CastTo::Float8 => value::FLOAT8,
            CastTo::Text => value::TEXT,
        }
    }

    pub fn size(self) -> i16 {
        match self {
            CastTo::Int2 => 2,
            CastTo::Int4 => 4,
            CastTo::Int8 | CastTo::Float8 => 8,
            CastTo::Numeric | CastTo::Text => -1,
        }
    }
}

/// A merged value on its way through the casts.
#[derive(Debug, Clone)]
pub enum Scalar {
    Int(i64),
    Num(Numeric),
    Float(f64),
    Text(String),
}

/// SQLSTATE and message of a failed cast.
pub type CastError = (&'static str, String);

impl Scalar {
    pub fn from_value(v: Value<'_>, oid: u32) -> Result<Scalar, CastError> {
        Ok(match v {
            Value::Int(i) => Scalar::Int(i),
            Value::Num(n) => Scalar::Num(n),
            Value::Float(f) => Scalar::Float(f),
            Value::Bytes(b) if value::is_text(oid) => {
                Scalar::Text(String::from_utf8_lossy(b).into_owned())
            }
            _ => {
                return Err((
                    "0A000",
                    format!("a cast of a merged value of type oid {oid}"),
                ))
            }
        })
    }

    pub fn cast(self, to: CastTo) -> Result<Scalar, CastError> {
        let range = |v: i64| -> Result<Scalar, CastError> {
            let (lo, hi, name) = match to {
                CastTo::Int2 => (i16::MIN as i64, i16::MAX as i64, "smallint"),
                CastTo::Int4 => (i32::MIN as i64, i32::MAX as i64, "integer"),
                _ => (i64::MIN, i64::MAX, "bigint"),
            };
            if v < lo || v > hi {
                return Err(("22003", format!("{name} out of range")));
            }
            Ok(Scalar::Int(v))
        };
        let out_of_range = || -> CastError {
            let name = match to {
                CastTo::Int2 => "smallint",
                CastTo::Int4 => "integer",
                _ => "bigint",
            };
            ("22003", format!("{name} out of range"))
        };
        match to {
            CastTo::Int2 | CastTo::Int4 | CastTo::Int8 => match self {
                Scalar::Int(v) => range(v),
                Scalar::Num(Numeric::Finite(v, s)) => {
                    let d = BigInt::from(10u32).pow(s);
                    let (q, r) = (&v / &d, &v % &d);
                    let twice = r.abs() * 2u32;
                    let q = if twice >= d {
                        if v.is_negative() {
                            q - 1
                        } else {
                            q + 1
                        }
                    } else {
                        q
                    };
                    range(q.to_i64().ok_or_else(out_of_range)?)
                }
                Scalar::Num(_) => {
                    Err(("0A000", "cannot convert NaN or Infinity to integer".into()))
                }
                Scalar::Float(f) if f.is_finite() => {
                    let r = f.round_ties_even();
                    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&r) {
                        return Err(out_of_range());
                    }
                    range(r as i64)
                }
                Scalar::Float(_) => Err(out_of_range()),
                Scalar::Text(t) => t
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| {
                        (
                            "22P02",
                            format!("invalid input syntax for type integer: \"{t}\""),
                        )
                    })
                    .and_then(range),
            },
            CastTo::Numeric => match self {
                Scalar::Int(v) => Ok(Scalar::Num(Numeric::from_i64(v))),
                Scalar::Num(n) => Ok(Scalar::Num(n)),
                Scalar::Text(t) => Numeric::parse_text(&t).map(Scalar::Num).ok_or_else(|| {
                    (
                        "22P02",
                        format!("invalid input syntax for type numeric: \"{t}\""),
                    )
                }),
                Scalar::Float(_) => Err((
                    "0A000",
                    "a float-to-numeric cast of a merged aggregate".into(),
                )),
            },
            CastTo::Float8 => match self {
                Scalar::Int(v) => Ok(Scalar::Float(v as f64)),
                Scalar::Num(n) => match n {
                    Numeric::NaN => Ok(Scalar::Float(f64::NAN)),
                    Numeric::PosInf => Ok(Scalar::Float(f64::INFINITY)),
                    Numeric::NegInf => Ok(Scalar::Float(f64::NEG_INFINITY)),
                    n => n.to_text().parse().map(Scalar::Float).map_err(|_| {
                        (
                            "22003",
                            "value out of range for type double precision".into(),
                        )
                    }),
                },
                Scalar::Float(f) => Ok(Scalar::Float(f)),
                Scalar::Text(t) => t.trim().parse().map(Scalar::Float).map_err(|_| {
                    (
                        "22P02",
                        format!("invalid input syntax for type double precision: \"{t}\""),
                    )
                }),
            },
            CastTo::Text => Ok(Scalar::Text(match self {
                Scalar::Int(v) => v.to_string(),
                Scalar::Num(n) => n.to_text(),
                Scalar::Float(f) => value::float8_text(f),
                Scalar::Text(t) => t,
            })),
        }
    }

    /// Wire bytes of the value as type `to`, text or binary.
    pub fn encode(&self, to: CastTo, binary: bool) -> Vec<u8> {
        match (self, binary) {
            (Scalar::Int(v), true) => match to {
                CastTo::Int2 => (*v as i16).to_be_bytes().to_vec(),
                CastTo::Int4 => (*v as i32).to_be_bytes().to_vec(),
                _ => v.to_be_bytes().to_vec(),
            },
            (Scalar::Int(v), false) => v.to_string().into_bytes(),
            (Scalar::Num(n), true) => n.to_binary(),
            (Scalar::Num(n), false) => n.to_text().into_bytes(),
            (Scalar::Float(f), true) => f.to_be_bytes().to_vec(),
            (Scalar::Float(f), false) => value::float8_text(*f).into_bytes(),
            (Scalar::Text(t), _) => t.clone().into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casts_follow_postgres() {
        let n = |s: &str| Scalar::Num(Numeric::parse_text(s).unwrap());
        let int = |s: Scalar| match s.cast(CastTo::Int4) {
            Ok(Scalar::Int(v)) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(int(n("2.5")), 3);
        assert_eq!(int(n("-2.5")), -3);
        assert_eq!(int(Scalar::Float(2.5)), 2);
        assert_eq!(int(Scalar::Float(3.5)), 4);
        assert_eq!(
            Scalar::Int(1 << 40).cast(CastTo::Int4).unwrap_err().0,
            "22003"
        );
        match Scalar::Int(5005000)
            .cast(CastTo::Int8)
            .unwrap()
            .cast(CastTo::Text)
            .unwrap()
        {
            Scalar::Text(t) => assert_eq!(t, "5005000"),
            other => panic!("{other:?}"),
        }
    }
}
