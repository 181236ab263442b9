//! `orochi-router shard-for`: which shard a key value lands on, computed exactly as the
//! router routes it (and as PostgreSQL's `PARTITION BY HASH` places it).

use orochi_config::{Config, KeyType};

/// Where the shard count and key type come from.
pub enum Source<'a> {
    /// A sharded table of a config: its type, and its pool's shard count.
    Table { config: &'a Config, table: &'a str },
    /// Given on the command line.
    Explicit { shards: usize, ty: KeyType },
}

pub fn parse_type(s: &str) -> Result<KeyType, String> {
    match s.to_ascii_lowercase().as_str() {
        "bigint" | "int8" => Ok(KeyType::BigInt),
        "integer" | "int" | "int4" => Ok(KeyType::Integer),
        "smallint" | "int2" => Ok(KeyType::SmallInt),
        "text" | "varchar" => Ok(KeyType::Text),
        "uuid" => Ok(KeyType::Uuid),
        other => Err(format!(
            "unknown key type \"{other}\" (valid: bigint, integer, smallint, text, uuid)"
        )),
    }
}

fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Resolves the key type and shard count.
pub fn resolve(src: Source) -> Result<(KeyType, usize), String> {
    match src {
        Source::Explicit { shards, ty } => Ok((ty, shards)),
        Source::Table { config, table } => {
            let t = config
                .sharding
                .tables
                .iter()
                .find(|t| unqualified(&t.name).eq_ignore_ascii_case(unqualified(table)))
                .ok_or_else(|| {
                    format!("table \"{table}\" is not a sharded table in this configuration")
                })?;
            let pool = match &t.pool {
                Some(p) => config.pools.get(p),
                None => config.pools.values().find(|p| p.shards.len() > 1),
            }
            .ok_or_else(|| format!("no sharded pool found for table \"{table}\""))?;
            Ok((t.data_type, pool.shards.len()))
        }
    }
}

/// The shard of each value, in order.
pub fn shards_of(ty: KeyType, shards: usize, values: &[String]) -> Result<Vec<usize>, String> {
    values
        .iter()
        .map(|v| {
            orochi_sharding::shard_for_text_value(ty, v, shards)
                .map_err(|e| format!("value \"{v}\": {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_and_bad_values() {
        let (ty, n) = resolve(Source::Explicit {
            shards: 4,
            ty: KeyType::BigInt,
        })
        .unwrap();
        let s = shards_of(ty, n, &["1".into(), "2".into(), "-7".into()]).unwrap();
        assert!(s.iter().all(|&x| x < 4));
        assert!(shards_of(ty, n, &["x".into()]).is_err());
        assert!(parse_type("float").is_err());
    }
}
