//! Checks that span sections: pools without users (after `users.toml`), sharded
//! tables naming unknown pools or declared twice, shard counts that disagree.

use crate::model::{Pool, ShardedTable};
use crate::pools::PoolSite;
use crate::reader::Ctx;
use crate::routing::TableDecl;
use std::collections::BTreeMap;

pub(crate) fn pools_have_users(
    cx: &mut Ctx,
    pools: &BTreeMap<String, Pool>,
    sites: &BTreeMap<String, PoolSite>,
) {
    for (name, pool) in pools {
        if pool.users.is_empty() {
            cx.error(
                sites.get(name).and_then(|s| s.span.clone()),
                format!(
                    "[pools.{name}]: pool \"{name}\" has no users; add [pools.{name}.users.0] (username, password, pool_size) or a [[users]] entry with database = \"{name}\" in users.toml"
                ),
            );
        }
    }
}

/// The unqualified, lower-cased table name: how statements are matched.
fn table_key(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase()
}

pub(crate) fn sharded_tables(
    cx: &mut Ctx,
    pools: &BTreeMap<String, Pool>,
    decls: Vec<TableDecl>,
) -> Vec<ShardedTable> {
    let mut out: Vec<(ShardedTable, String)> = Vec::new();
    let known = pools
        .keys()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for d in decls {
        let t = &d.table;
        if let Some(p) = &t.pool {
            if !pools.contains_key(p) {
                cx.error(
                    d.pool_span.clone(),
                    format!(
                        "key \"pool\" in {}: unknown pool \"{p}\"; pools are: {known}",
                        d.origin
                    ),
                );
                continue;
            }
        }
        if let Some((n, span)) = &d.shards {
            let applies = pools.values().filter(|p| match &t.pool {
                Some(name) => &p.name == name,
                None => p.shards.len() > 1,
            });
            for p in applies {
                if p.shards.len() != *n {
                    cx.error(
                        span.clone(),
                        format!(
                            "key \"shards\" in {}: table \"{}\" declares {n} shards but pool \"{}\" has {}",
                            d.origin,
                            t.name,
                            p.name,
                            p.shards.len()
                        ),
                    );
                }
            }
        }
        let dup = out
            .iter()
            .find(|(o, _)| table_key(&o.name) == table_key(&t.name) && o.pool == t.pool);
        match dup {
            Some((o, _)) if o.column.eq_ignore_ascii_case(&t.column) && o.data_type == t.data_type => {
                // The same declaration twice (e.g. automatic_sharding_key and a
                // [[sharding.tables]] entry): harmless, keep one.
            }
            Some((o, origin)) => cx.error(
                d.span.clone(),
                format!(
                    "{}: table \"{}\" is already sharded by column \"{}\" ({origin}); a table has one sharding column",
                    d.origin, t.name, o.column
                ),
            ),
            None => out.push((d.table, d.origin)),
        }
    }
    out.into_iter().map(|(t, _)| t).collect()
}
