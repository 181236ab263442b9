//! Key values as they arrive: SQL text (literals, text-format parameters, COPY text fields)
//! or binary-format bind parameters and COPY binary fields.
//!
//! Text follows PostgreSQL's input functions, so a value the server would reject as the column
//! type is an error here too. Text keys must be valid UTF-8 without NUL: the router assumes
//! `client_encoding` = server encoding = UTF8, because the server hashes bytes after conversion.

use orochi_config::KeyType;

use crate::int_text::parse_int;
use crate::uuid_text::parse_uuid;
use crate::{hash::shard_for, Error, ShardKey};

/// PostgreSQL's name for the key type, as used in its error messages.
pub fn type_name(ty: KeyType) -> &'static str {
    match ty {
        KeyType::BigInt => "bigint",
        KeyType::Integer => "integer",
        KeyType::SmallInt => "smallint",
        KeyType::Text => "text",
        KeyType::Uuid => "uuid",
    }
}

fn checked_text(bytes: &[u8]) -> Result<&[u8], Error> {
    if bytes.contains(&0) || std::str::from_utf8(bytes).is_err() {
        return Err(Error::InvalidEncoding);
    }
    Ok(bytes)
}

/// Decodes a key from PostgreSQL's text representation of a `ty` value.
pub fn parse_text(ty: KeyType, text: &[u8]) -> Result<ShardKey<'_>, Error> {
    let name = type_name(ty);
    match ty {
        KeyType::BigInt => parse_int(text, name, i64::MIN, i64::MAX).map(ShardKey::Int),
        KeyType::Integer => {
            parse_int(text, name, i32::MIN.into(), i32::MAX.into()).map(ShardKey::Int)
        }
        KeyType::SmallInt => {
            parse_int(text, name, i16::MIN.into(), i16::MAX.into()).map(ShardKey::Int)
        }
        KeyType::Text => checked_text(text).map(ShardKey::Text),
        KeyType::Uuid => parse_uuid(text).map(ShardKey::Uuid),
    }
}

/// Decodes a key from a binary-format value (network byte order).
///
/// Integer columns take a 2-, 4- or 8-byte integer whatever the column width, since the width
/// follows the parameter's declared type, and all widths hash alike. A value outside the
/// column's range is not an error here: the server decides (no row matches, or an insert fails).
pub fn parse_binary(ty: KeyType, bytes: &[u8]) -> Result<ShardKey<'_>, Error> {
    match ty {
        KeyType::BigInt | KeyType::Integer | KeyType::SmallInt => {
            let value = match *bytes {
                [a, b] => i64::from(i16::from_be_bytes([a, b])),
                [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
                [a, b, c, d, e, f, g, h] => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
                _ => {
                    return Err(Error::BinaryLength {
                        ty: type_name(ty),
                        expected: "2, 4 or 8",
                        got: bytes.len(),
                    })
                }
            };
            Ok(ShardKey::Int(value))
        }
        KeyType::Text => checked_text(bytes).map(ShardKey::Text),
        KeyType::Uuid => <[u8; 16]>::try_from(bytes)
            .map(ShardKey::Uuid)
            .map_err(|_| Error::BinaryLength {
                ty: "uuid",
                expected: "16",
                got: bytes.len(),
            }),
    }
}

/// The shard of a key given as text (the `orochi-router shard-for` command, `SET` overrides).
pub fn shard_for_text_value(ty: KeyType, text: &str, shards: usize) -> Result<usize, Error> {
    shard_for(&parse_text(ty, text.as_bytes())?, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ranges_follow_the_column_type() {
        assert_eq!(
            parse_text(KeyType::SmallInt, b"-32768"),
            Ok(ShardKey::Int(-32768))
        );
        assert!(matches!(
            parse_text(KeyType::SmallInt, b"32768"),
            Err(Error::OutOfRange { ty: "smallint", .. })
        ));
        assert!(parse_text(KeyType::Integer, b"2147483648").is_err());
        assert_eq!(
            parse_text(KeyType::BigInt, b"2147483648"),
            Ok(ShardKey::Int(2_147_483_648))
        );
    }

    #[test]
    fn text_keys_must_be_utf8_without_nul() {
        assert_eq!(parse_text(KeyType::Text, b""), Ok(ShardKey::Text(b"")));
        assert_eq!(
            parse_text(KeyType::Text, " ü ".as_bytes()),
            Ok(ShardKey::Text(" ü ".as_bytes()))
        );
        assert_eq!(
            parse_text(KeyType::Text, b"a\0b"),
            Err(Error::InvalidEncoding)
        );
        assert_eq!(
            parse_binary(KeyType::Text, b"\xff"),
            Err(Error::InvalidEncoding)
        );
    }

    #[test]
    fn binary_lengths() {
        assert_eq!(
            parse_binary(KeyType::BigInt, &[0xff, 0xfe]),
            Ok(ShardKey::Int(-2))
        );
        assert_eq!(
            parse_binary(KeyType::SmallInt, &(-5i64).to_be_bytes()),
            Ok(ShardKey::Int(-5))
        );
        assert!(parse_binary(KeyType::Integer, &[1, 2, 3]).is_err());
        assert!(parse_binary(KeyType::Uuid, &[0; 15]).is_err());
        assert_eq!(
            parse_binary(KeyType::Uuid, &[7; 16]),
            Ok(ShardKey::Uuid([7; 16]))
        );
    }

    #[test]
    fn shard_for_text_value_checks_input_and_shards() {
        assert!(shard_for_text_value(KeyType::BigInt, "x", 4).is_err());
        assert_eq!(
            shard_for_text_value(KeyType::BigInt, "1", 0),
            Err(Error::NoShards)
        );
        let shard = shard_for_text_value(KeyType::BigInt, "12345", 7);
        assert!(matches!(shard, Ok(s) if s < 7));
    }
}
