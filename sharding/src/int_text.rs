//! PostgreSQL's text input syntax for `smallint`, `integer` and `bigint`.
//!
//! Accepts what PostgreSQL 16+ accepts (a superset of 15): optional C-locale whitespace around
//! the value, an optional sign, decimal digits, or `0x`/`0o`/`0b` prefixed digits, with single
//! underscores between digits. Accepting the newer syntax is harmless with an older server: it
//! rejects the statement itself, whereas refusing it would break valid statements on newer ones.

use crate::error::shown;
use crate::Error;

/// C `isspace` in the C locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn digit_value(byte: u8, radix: u32) -> Option<u64> {
    char::from(byte).to_digit(radix).map(u64::from)
}

enum Failure {
    Syntax,
    Range,
}

/// Parses an integer that must lie in `min..=max` (the column type's range).
pub(crate) fn parse_int(text: &[u8], ty: &'static str, min: i64, max: i64) -> Result<i64, Error> {
    parse_magnitude(text, min, max).map_err(|failure| match failure {
        Failure::Syntax => Error::InvalidSyntax {
            ty,
            input: shown(text),
        },
        Failure::Range => Error::OutOfRange {
            ty,
            input: shown(text),
        },
    })
}

fn parse_magnitude(text: &[u8], min: i64, max: i64) -> Result<i64, Failure> {
    let mut pos = 0;
    while text.get(pos).copied().is_some_and(is_space) {
        pos += 1;
    }
    let negative = match text.get(pos) {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    let (radix, prefixed) = match (text.get(pos), text.get(pos + 1)) {
        (Some(b'0'), Some(b'x' | b'X')) => (16, true),
        (Some(b'0'), Some(b'o' | b'O')) => (8, true),
        (Some(b'0'), Some(b'b' | b'B')) => (2, true),
        _ => (10, false),
    };
    if prefixed {
        pos += 2;
    }
    let first_digit = pos;
    let mut magnitude: u64 = 0;
    loop {
        match text.get(pos).copied() {
            Some(byte) if digit_value(byte, radix).is_some() => {
                let digit = digit_value(byte, radix).unwrap_or_default();
                magnitude = magnitude
                    .checked_mul(u64::from(radix))
                    .and_then(|m| m.checked_add(digit))
                    .ok_or(Failure::Range)?;
                pos += 1;
            }
            Some(b'_') => {
                // Not first (decimal only; `0x_1F` is valid), and followed by a digit.
                if !prefixed && pos == first_digit {
                    return Err(Failure::Syntax);
                }
                pos += 1;
                match text.get(pos).copied() {
                    Some(byte) if digit_value(byte, radix).is_some() => {}
                    _ => return Err(Failure::Syntax),
                }
            }
            _ => break,
        }
    }
    if pos == first_digit {
        return Err(Failure::Syntax);
    }
    while text.get(pos).copied().is_some_and(is_space) {
        pos += 1;
    }
    if pos != text.len() {
        return Err(Failure::Syntax);
    }
    let value = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    if value < i128::from(min) || value > i128::from(max) {
        return Err(Failure::Range);
    }
    i64::try_from(value).map_err(|_| Failure::Range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int4(text: &str) -> Result<i64, Error> {
        parse_int(text.as_bytes(), "integer", i32::MIN.into(), i32::MAX.into())
    }

    #[test]
    fn accepts_postgres_forms() {
        assert_eq!(int4("42"), Ok(42));
        assert_eq!(int4("  -42\t\n"), Ok(-42));
        assert_eq!(int4("+7"), Ok(7));
        assert_eq!(int4("007"), Ok(7));
        assert_eq!(int4("-2147483648"), Ok(-2_147_483_648));
        assert_eq!(int4("2147483647"), Ok(2_147_483_647));
        assert_eq!(int4("0x1F"), Ok(31));
        assert_eq!(int4("-0X80000000"), Ok(i64::from(i32::MIN)));
        assert_eq!(int4("0o17"), Ok(15));
        assert_eq!(int4("0b101"), Ok(5));
        assert_eq!(int4("1_000_000"), Ok(1_000_000));
        assert_eq!(int4("0x_1F"), Ok(31));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "", " ", "-", "+", "1 2", "1.0", "1e3", "abc", "--1", "+-1", "_1", "1_", "1__0", "0x",
            "0x_", "0b2", "0o8", "1\0", "１", "0x1G", "- 1",
        ] {
            assert!(
                matches!(int4(bad), Err(Error::InvalidSyntax { .. })),
                "{bad:?} -> {:?}",
                int4(bad)
            );
        }
    }

    #[test]
    fn rejects_out_of_range() {
        for bad in [
            "2147483648",
            "-2147483649",
            "0x80000000",
            "99999999999999999999999",
        ] {
            assert!(matches!(int4(bad), Err(Error::OutOfRange { .. })), "{bad}");
        }
        assert_eq!(
            parse_int(b"-9223372036854775808", "bigint", i64::MIN, i64::MAX),
            Ok(i64::MIN)
        );
        assert!(parse_int(b"9223372036854775808", "bigint", i64::MIN, i64::MAX).is_err());
    }
}
