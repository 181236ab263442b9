//! PostgreSQL `numeric` as the merge needs it: exact sums and `avg` division with the
//! result scale PostgreSQL picks (`select_div_scale`), text and binary forms.
//! Hand-written because no crate speaks PostgreSQL's base-10000 wire format and its
//! division scale rule, and sums must stay exact at any precision.

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, ToPrimitive, Zero};
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numeric {
    NegInf,
    /// `digits × 10^-scale`.
    Finite(BigInt, u32),
    PosInf,
    NaN,
}

fn pow10(n: u32) -> BigInt {
    BigInt::from(10u32).pow(n)
}

impl Numeric {
    pub fn from_i64(v: i64) -> Self {
        Numeric::Finite(BigInt::from(v), 0)
    }

    pub fn parse_text(s: &str) -> Option<Self> {
        let s = s.trim();
        match s {
            "NaN" => return Some(Numeric::NaN),
            "Infinity" | "+Infinity" => return Some(Numeric::PosInf),
            "-Infinity" => return Some(Numeric::NegInf),
            _ => {}
        }
        if s.contains(['e', 'E']) {
            return None;
        }
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = format!("{int}{frac}");
        let v: BigInt = digits.parse().ok()?;
        Some(Numeric::Finite(v, frac.len() as u32))
    }

    pub fn parse_binary(b: &[u8]) -> Option<Self> {
        let rd = |i: usize| -> Option<u16> {
            Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
        };
        let ndigits = rd(0)? as usize;
        let weight = rd(2)? as i16 as i32;
        let sign = rd(4)?;
        let dscale = rd(6)? as u32;
        match sign {
            0xC000 => return Some(Numeric::NaN),
            0xD000 => return Some(Numeric::PosInf),
            0xF000 => return Some(Numeric::NegInf),
            _ => {}
        }
        let mut v = BigInt::zero();
        for i in 0..ndigits {
            let d = rd(8 + 2 * i)?;
            let e = 4 * (weight - i as i32) + dscale as i32;
            if e >= 0 {
                v += BigInt::from(d) * pow10(e as u32);
            } else {
                v += BigInt::from(d) / pow10((-e) as u32);
            }
        }
        if sign == 0x4000 {
            v = -v;
        }
        Some(Numeric::Finite(v, dscale))
    }

    /// Base-10000 digits, weight of the first, in PostgreSQL's layout.
    fn groups(v: &BigInt, scale: u32) -> (Vec<u16>, i32) {
        let s = v.abs().to_string();
        let s = if (s.len() as u32) <= scale {
            format!("{}{s}", "0".repeat(scale as usize - s.len() + 1))
        } else {
            s
        };
        let (int, frac) = s.split_at(s.len() - scale as usize);
        let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
        let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let mut groups: Vec<u16> = int
            .as_bytes()
            .chunks(4)
            .chain(frac.as_bytes().chunks(4))
            .map(|c| std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0))
            .collect();
        let mut weight = (int.len() / 4) as i32 - 1;
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        (groups, weight)
    }

    pub fn to_binary(&self) -> Vec<u8> {
        let (groups, weight, sign, dscale) = match self {
            Numeric::NaN => (vec![], 0, 0xC000u16, 0u32),
            Numeric::PosInf => (vec![], 0, 0xD000, 0),
            Numeric::NegInf => (vec![], 0, 0xF000, 0),
            Numeric::Finite(v, s) => {
                let (g, w) = Self::groups(v, *s);
                let sign = if v.sign() == Sign::Minus { 0x4000 } else { 0 };
                (g, w, sign, *s)
            }
        };
        let mut out = Vec::with_capacity(8 + 2 * groups.len());
        out.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        out.extend_from_slice(&(weight as i16).to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(dscale as u16).to_be_bytes());
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    pub fn to_text(&self) -> String {
        match self {
            Numeric::NaN => "NaN".into(),
            Numeric::PosInf => "Infinity".into(),
            Numeric::NegInf => "-Infinity".into(),
            Numeric::Finite(v, scale) => {
                let neg = v.sign() == Sign::Minus;
                let s = v.abs().to_string();
                let scale = *scale as usize;
                let s = if s.len() <= scale {
                    format!("{}{s}", "0".repeat(scale - s.len() + 1))
                } else {
                    s
                };
                let (i, f) = s.split_at(s.len() - scale);
                let body = if scale == 0 {
                    i.to_string()
                } else {
                    format!("{i}.{f}")
                };
                if neg {
                    format!("-{body}")
                } else {
                    body
                }
            }
        }
    }

    fn aligned(a: &BigInt, sa: u32, b: &BigInt, sb: u32) -> (BigInt, BigInt, u32) {
        let s = sa.max(sb);
        (a * pow10(s - sa), b * pow10(s - sb), s)
    }

    /// PostgreSQL's `numeric_add`: infinities and NaN included.
    pub fn add(&self, o: &Numeric) -> Numeric {
        use Numeric::*;
        match (self, o) {
            (NaN, _) | (_, NaN) => NaN,
            (PosInf, NegInf) | (NegInf, PosInf) => NaN,
            (PosInf, _) | (_, PosInf) => PosInf,
            (NegInf, _) | (_, NegInf) => NegInf,
            (Finite(a, sa), Finite(b, sb)) => {
                let (a, b, s) = Self::aligned(a, *sa, b, *sb);
                Finite(a + b, s)
            }
        }
    }

    /// Total order of PostgreSQL's numeric comparison (NaN above +Infinity).
    pub fn order(&self, o: &Numeric) -> Ordering {
        use Numeric::*;
        let rank = |n: &Numeric| match n {
            NegInf => 0,
            Finite(..) => 1,
            PosInf => 2,
            NaN => 3,
        };
        match (self, o) {
            (Finite(a, sa), Finite(b, sb)) => {
                let (a, b, _) = Self::aligned(a, *sa, b, *sb);
                a.cmp(&b)
            }
            _ => rank(self).cmp(&rank(o)),
        }
    }

    /// A form equal for equal values (1.0 and 1.00): for DISTINCT and GROUP BY.
    pub fn canonical(&self) -> String {
        match self {
            Numeric::Finite(v, s) => {
                let (mut v, mut s) = (v.clone(), *s);
                let ten = BigInt::from(10);
                while s > 0 && (&v % &ten).is_zero() {
                    v /= &ten;
                    s -= 1;
                }
                Numeric::Finite(v, s).to_text()
            }
            other => other.to_text(),
        }
    }

    /// `sum / count` as PostgreSQL's `numeric_div` computes it (used by `avg`).
    pub fn div(&self, o: &Numeric) -> Option<Numeric> {
        use Numeric::*;
        let (Finite(x, s1), Finite(y, s2)) = (self, o) else {
            return Some(match (self, o) {
                (NaN, _) | (_, NaN) => NaN,
                (PosInf | NegInf, PosInf | NegInf) => NaN,
                (PosInf, Finite(y, _)) => {
                    if y.is_negative() {
                        NegInf
                    } else {
                        PosInf
                    }
                }
                (NegInf, Finite(y, _)) => {
                    if y.is_negative() {
                        PosInf
                    } else {
                        NegInf
                    }
                }
                _ => Finite(BigInt::zero(), 0),
            });
        };
        if y.is_zero() {
            return None;
        }
        let (g1, w1) = Self::groups(x, *s1);
        let (g2, w2) = Self::groups(y, *s2);
        let (fd1, w1) = g1.first().map_or((0, 0), |d| (*d, w1));
        let (fd2, w2) = g2.first().map_or((0, 0), |d| (*d, w2));
        let mut qweight = w1 - w2;
        if fd1 <= fd2 {
            qweight -= 1;
        }
        let rscale = (16 - qweight * 4)
            .max(*s1 as i32)
            .max(*s2 as i32)
            .clamp(0, 1000) as u32;
        let num = x * pow10(*s2 + rscale);
        let den = y * pow10(*s1);
        let neg = num.is_negative() != den.is_negative();
        let (n, d) = (num.abs(), den.abs());
        let q = (n * 2u32 + &d) / (d * 2u32);
        Some(Finite(if neg { -q } else { q }, rscale))
    }

    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Numeric::Finite(v, s) => Some(v.to_f64()? / 10f64.powi(*s as i32)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Numeric {
        Numeric::parse_text(s).unwrap()
    }

    #[test]
    fn text_and_binary_round_trip() {
        for s in [
            "0",
            "1.50",
            "-12345.6789",
            "0.0001",
            "100000000",
            "-0.5",
            "12345678901234567890.123",
        ] {
            let v = n(s);
            assert_eq!(v.to_text(), s);
            assert_eq!(Numeric::parse_binary(&v.to_binary()).unwrap(), v, "{s}");
        }
        // PostgreSQL's own binary form of 1234.5 (numeric_send): 2 digits, weight 0, dscale 1.
        assert_eq!(
            n("1234.5").to_binary(),
            vec![0, 2, 0, 0, 0, 0, 0, 1, 4, 210, 19, 136]
        );
    }

    #[test]
    fn avg_scale_matches_postgres() {
        // SELECT avg(x) FROM (VALUES (1),(2)) → 1.5000000000000000
        assert_eq!(n("3").div(&n("2")).unwrap().to_text(), "1.5000000000000000");
        // avg of 10, 20, 30 → 20.0000000000000000
        assert_eq!(
            n("60").div(&n("3")).unwrap().to_text(),
            "20.0000000000000000"
        );
        // avg(numeric(10,2)) of 1.10 and 2.25 → 1.6750000000000000 (checked on PostgreSQL 15)
        assert_eq!(
            n("3.35").div(&n("2")).unwrap().to_text(),
            "1.6750000000000000"
        );
        assert_eq!(
            n("-7").div(&n("3")).unwrap().to_text(),
            "-2.3333333333333333"
        );
        assert_eq!(n("1.10").add(&n("2.255")).to_text(), "3.355");
        assert_eq!(n("2.50").canonical(), "2.5");
    }
}
