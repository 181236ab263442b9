//! Column values as the merge compares and combines them: decoded by type OID and
//! format (text or binary), ordered as PostgreSQL orders them (text in byte order, i.e.
//! the C collation), and encoded back for the aggregates the router computes.
//! Types the merge cannot order exactly are refused, never compared approximately.

use super::numeric::Numeric;
use std::cmp::Ordering;

pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const INT8: u32 = 20;
pub const OID: u32 = 26;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const NUMERIC: u32 = 1700;
pub const BOOL: u32 = 16;
pub const TEXT: u32 = 25;
pub const VARCHAR: u32 = 1043;
pub const BPCHAR: u32 = 1042;
pub const NAME: u32 = 19;
pub const CHAR: u32 = 18;
pub const DATE: u32 = 1082;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const UUID: u32 = 2950;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Float(f64),
    Num(Numeric),
    Bool(bool),
    Bytes(&'a [u8]),
    /// Days or microseconds: dates and timestamps.
    Time(i64),
}

/// Can values of this type be ordered by the merge?
pub fn orderable(oid: u32) -> bool {
    matches!(
        oid,
        INT2 | INT4
            | INT8
            | OID
            | FLOAT4
            | FLOAT8
            | NUMERIC
            | BOOL
            | TEXT
            | VARCHAR
            | BPCHAR
            | NAME
            | CHAR
            | DATE
            | TIMESTAMP
            | TIMESTAMPTZ
            | UUID
    )
}

pub fn is_text(oid: u32) -> bool {
    matches!(oid, TEXT | VARCHAR | BPCHAR | NAME | CHAR)
}

fn be<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.try_into().ok()
}

pub fn decode(oid: u32, binary: bool, b: &[u8]) -> Option<Value<'_>> {
    let text = || std::str::from_utf8(b).ok();
    Some(match oid {
        INT2 | INT4 | INT8 | OID if binary => Value::Int(match b.len() {
            2 => i16::from_be_bytes(be(b)?) as i64,
            4 if oid == OID => u32::from_be_bytes(be(b)?) as i64,
            4 => i32::from_be_bytes(be(b)?) as i64,
            8 => i64::from_be_bytes(be(b)?),
            _ => return None,
        }),
        INT2 | INT4 | INT8 | OID => Value::Int(text()?.trim().parse().ok()?),
        FLOAT4 if binary => Value::Float(f32::from_be_bytes(be(b)?) as f64),
        FLOAT8 if binary => Value::Float(f64::from_be_bytes(be(b)?)),
        FLOAT4 | FLOAT8 => Value::Float(match text()? {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            t => t.parse().ok()?,
        }),
        NUMERIC if binary => Value::Num(Numeric::parse_binary(b)?),
        NUMERIC => Value::Num(Numeric::parse_text(text()?)?),
        BOOL if binary => Value::Bool(*b.first()? != 0),
        BOOL => Value::Bool(text()? == "t"),
        DATE if binary => Value::Time(i32::from_be_bytes(be(b)?) as i64),
        DATE => Value::Time(parse_date(text()?)?),
        TIMESTAMP | TIMESTAMPTZ if binary => Value::Time(i64::from_be_bytes(be(b)?)),
        TIMESTAMP | TIMESTAMPTZ => Value::Time(parse_timestamp(text()?)?),
        // bpchar compares without its trailing blanks.
        BPCHAR => Value::Bytes(trim_blanks(b)),
        TEXT | VARCHAR | NAME | CHAR | UUID => Value::Bytes(b),
        _ => return None,
    })
}

fn trim_blanks(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &b[..end]
}

/// PostgreSQL's order of two non-NULL values of one type.
pub fn compare(a: &Value<'_>, b: &Value<'_>) -> Ordering {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        },
        (Value::Num(x), Value::Num(y)) => x.order(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Time(x), Value::Time(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Bytes equal exactly when PostgreSQL's equality says equal (DISTINCT, GROUP BY).
pub fn canonical(oid: u32, binary: bool, b: &[u8]) -> Vec<u8> {
    match decode(oid, binary, b) {
        Some(Value::Num(n)) => n.canonical().into_bytes(),
        Some(Value::Float(0.0)) => b"0".to_vec(),
        Some(Value::Float(f)) if f.is_nan() => b"NaN".to_vec(),
        Some(Value::Float(f)) => f.to_bits().to_be_bytes().to_vec(),
        Some(Value::Bytes(t)) if oid == BPCHAR => t.to_vec(),
        _ => b.to_vec(),
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ISO dates (`DateStyle` ISO, PostgreSQL's default), `BC` and infinities.
fn parse_date(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let mut it = body.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// ISO timestamps with optional fraction and UTC offset, as microseconds since 1970 UTC.
fn parse_timestamp(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let (date, time) = s.split_once(' ')?;
    let (y, rest) = date.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    let y: i64 = y.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    let days = days_from_civil(y, m.parse().ok()?, d.parse().ok()?);
    // time: HH:MM:SS[.ffffff][(+|-)HH[:MM[:SS]]]
    let split = time.find(['+', '-']).unwrap_or(time.len());
    let (clock, off) = time.split_at(split);
    let mut parts = clock.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let mi: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (sec, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let sec: i64 = sec.parse().ok()?;
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").get(..6)?.parse().ok()?
    };
    let mut offset = 0i64;
    if !off.is_empty() {
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let mut p = off[1..].split(':');
        let oh: i64 = p.next()?.parse().ok()?;
        let om: i64 = p.next().map_or(Some(0), |x| x.parse().ok())?;
        let os: i64 = p.next().map_or(Some(0), |x| x.parse().ok())?;
        offset = sign * (oh * 3600 + om * 60 + os);
    }
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset) * 1_000_000) + micros)
}

/// PostgreSQL's text output of a float8 (shortest exact digits; exponent form outside
/// 1e-4 .. 1e15).
pub fn float8_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..15).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_order_across_offsets() {
        let a = parse_timestamp("2024-03-10 01:30:00-08").unwrap();
        let b = parse_timestamp("2024-03-10 03:30:00.5-07").unwrap();
        assert!(a < b);
        assert_eq!(parse_timestamp("1970-01-01 00:00:00+00"), Some(0));
        assert_eq!(parse_date("2000-01-01"), Some(10_957));
        assert!(parse_date("0001-01-01 BC").unwrap() < parse_date("0001-01-01").unwrap());
    }

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(float8_text(1.5), "1.5");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(1.2345e-5), "1.2345e-05");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(1234567890123456.0), "1.234567890123456e+15");
    }
}
