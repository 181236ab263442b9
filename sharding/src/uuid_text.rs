//! PostgreSQL's text input syntax for `uuid`.
//!
//! 32 hex digits in either case, optionally inside `{}`, with an optional hyphen after any group
//! of four digits (so the standard 8-4-4-4-12 form, no hyphens, and other groupings all parse);
//! no whitespace anywhere, as PostgreSQL's `uuid_in`.

use crate::error::shown;
use crate::Error;

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

pub(crate) fn parse_uuid(text: &[u8]) -> Result<[u8; 16], Error> {
    let syntax = || Error::InvalidSyntax {
        ty: "uuid",
        input: shown(text),
    };
    let mut pos = 0;
    let braces = text.first() == Some(&b'{');
    if braces {
        pos += 1;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        let high = text.get(pos).copied().and_then(hex).ok_or_else(syntax)?;
        let low = text
            .get(pos + 1)
            .copied()
            .and_then(hex)
            .ok_or_else(syntax)?;
        *slot = (high << 4) | low;
        pos += 2;
        if i % 2 == 1 && i < 15 && text.get(pos) == Some(&b'-') {
            pos += 1;
        }
    }
    if braces {
        if text.get(pos) != Some(&b'}') {
            return Err(syntax());
        }
        pos += 1;
    }
    if pos != text.len() {
        return Err(syntax());
    }
    Ok(out)
}

/// The canonical text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case).
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANON: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

    #[test]
    fn accepts_postgres_forms() {
        let want = parse_uuid(CANON.as_bytes());
        assert!(want.is_ok());
        for form in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            "{a0eebc999c0b4ef8bb6d6bb9bd380a11}",
        ] {
            assert_eq!(parse_uuid(form.as_bytes()), want, "{form}");
        }
        assert_eq!(want.map(|u| format_uuid(&u)), Ok(CANON.to_string()));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "{}",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert!(parse_uuid(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
