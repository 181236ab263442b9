//! Properties of parsing and shard choice over arbitrary inputs (no server needed).

use orochi_config::KeyType;
use orochi_sharding::{
    format_uuid, parse_binary, parse_text, shard_for, shard_for_text_value, ShardKey,
};
use proptest::prelude::*;

fn int_type() -> impl Strategy<Value = (KeyType, i64)> {
    prop_oneof![
        any::<i16>().prop_map(|v| (KeyType::SmallInt, i64::from(v))),
        any::<i32>().prop_map(|v| (KeyType::Integer, i64::from(v))),
        any::<i64>().prop_map(|v| (KeyType::BigInt, v)),
    ]
}

fn any_key() -> impl Strategy<Value = (KeyType, Vec<u8>)> {
    prop_oneof![
        int_type().prop_map(|(ty, v)| (ty, v.to_string().into_bytes())),
        "[^\u{0}]{0,80}".prop_map(|s| (KeyType::Text, s.into_bytes())),
        any::<[u8; 16]>().prop_map(|u| (KeyType::Uuid, format_uuid(&u).into_bytes())),
    ]
}

proptest! {
    #[test]
    fn ints_round_trip_through_text((ty, v) in int_type(), lead in "[ \t\n]{0,2}", trail in "[ \t\n]{0,2}", plus in any::<bool>()) {
        let sign = if v >= 0 && plus { "+" } else { "" };
        let text = format!("{lead}{sign}{v}{trail}");
        prop_assert_eq!(parse_text(ty, text.as_bytes()), Ok(ShardKey::Int(v)));
    }

    #[test]
    fn ints_binary_agrees_with_text((ty, v) in int_type()) {
        let text = v.to_string();
        let from_text = parse_text(ty, text.as_bytes());
        let wide = v.to_be_bytes();
        prop_assert_eq!(parse_binary(ty, &wide), from_text.clone());
        if let Ok(narrow) = i32::try_from(v) {
            let bytes = narrow.to_be_bytes();
            prop_assert_eq!(parse_binary(ty, &bytes), from_text.clone());
        }
        if let Ok(narrow) = i16::try_from(v) {
            let bytes = narrow.to_be_bytes();
            prop_assert_eq!(parse_binary(ty, &bytes), from_text);
        }
    }

    #[test]
    fn ints_out_of_range_are_rejected(v in any::<i64>()) {
        let text = v.to_string();
        prop_assert_eq!(parse_text(KeyType::Integer, text.as_bytes()).is_ok(), i32::try_from(v).is_ok());
        prop_assert_eq!(parse_text(KeyType::SmallInt, text.as_bytes()).is_ok(), i16::try_from(v).is_ok());
    }

    #[test]
    fn uuid_spellings_agree(u in any::<[u8; 16]>()) {
        let canonical = format_uuid(&u);
        let plain: String = canonical.chars().filter(|c| *c != '-').collect();
        for spelling in [canonical.clone(), canonical.to_uppercase(), format!("{{{canonical}}}"), plain] {
            prop_assert_eq!(parse_text(KeyType::Uuid, spelling.as_bytes()), Ok(ShardKey::Uuid(u)));
        }
        prop_assert_eq!(parse_binary(KeyType::Uuid, &u), Ok(ShardKey::Uuid(u)));
    }

    #[test]
    fn text_is_taken_verbatim(s in "[^\u{0}]{0,200}") {
        prop_assert_eq!(parse_text(KeyType::Text, s.as_bytes()), Ok(ShardKey::Text(s.as_bytes())));
        prop_assert_eq!(parse_binary(KeyType::Text, s.as_bytes()), Ok(ShardKey::Text(s.as_bytes())));
    }

    #[test]
    fn shard_is_below_shard_count_and_stable((ty, text) in any_key(), shards in 1usize..1000) {
        let key = parse_text(ty, &text);
        prop_assert!(key.is_ok());
        let key = key.unwrap_or(ShardKey::Null);
        let shard = shard_for(&key, shards);
        prop_assert!(matches!(shard, Ok(s) if s < shards));
        prop_assert_eq!(shard_for(&key.to_owned_key().as_key(), shards), shard.clone());
        let text = String::from_utf8_lossy(&text).into_owned();
        prop_assert_eq!(shard_for_text_value(ty, &text, shards), shard);
    }

    #[test]
    fn arbitrary_bytes_never_panic(ty in prop_oneof![Just(KeyType::BigInt), Just(KeyType::Integer), Just(KeyType::SmallInt), Just(KeyType::Text), Just(KeyType::Uuid)], bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = parse_text(ty, &bytes);
        let _ = parse_binary(ty, &bytes);
    }
}
