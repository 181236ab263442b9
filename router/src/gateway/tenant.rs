//! Tenant pinning (`tenant_claim`): the claim's value is the shard key of the pool's
//! distributed tables keyed by a column of the claim's name, so the session belongs on
//! the shard that value hashes to, and nowhere else.
//!
//! The session is pinned the way `SET orochi.shard` pins one (every statement goes to
//! that shard through the single-shard path, so a statement that would fan out runs on
//! the tenant's shard only), and the manual overrides themselves are refused. Before a
//! statement runs, its keys are checked with the sharding planner: a key that hashes
//! to another shard is refused with 42501, and, when every distributed table of the
//! pool is keyed by the claim's column, so is a literal key naming another tenant on
//! the same shard. Bound parameters are checked at Bind (by shard, and by value when
//! sent as text). Whatever slips past (an expression the planner cannot evaluate) can
//! only reach rows on the tenant's own shard, where the RLS policy on the claims
//! decides. `COPY ... FROM STDIN` into a distributed table is refused: its rows are
//! not read by the router on this path.

use crate::planner::sharding::resolve::{resolve, Params, Resolved};
use crate::planner::sharding::{plan, KeySet, KeyValue, Routing, ShardingSchema};
use orochi_config::KeyType;
use orochi_sharding::{parse_binary, parse_text, shard_for_text_value};

/// The session's tenant on a sharded pool.
#[derive(Debug, Clone)]
pub struct Pin {
    pub value: String,
    pub ty: KeyType,
    pub shard: usize,
    /// Every distributed table is keyed by the claim's column: keys are tenants.
    pub keys_are_tenants: bool,
}

impl Pin {
    /// Where `value` lives in `schema` (tables keyed by a column named `claim`).
    pub fn new(schema: &ShardingSchema, claim: &str, value: &str) -> Result<Pin, String> {
        let claim = claim.to_ascii_lowercase();
        let ty = schema
            .tables
            .iter()
            .find(|t| t.column == claim)
            .map(|t| t.ty)
            .ok_or_else(|| format!("no distributed table is keyed by \"{claim}\""))?;
        let shard = shard_for_text_value(ty, value, schema.shards)
            .map_err(|e| format!("tenant \"{value}\" is not a valid {ty:?} key: {e}"))?;
        Ok(Pin {
            value: value.to_string(),
            ty,
            shard,
            keys_are_tenants: schema.tables.iter().all(|t| t.column == claim),
        })
    }

    /// Why `sql` (with `params` once bound) may not run for this tenant, if it may not.
    pub fn refuse(
        &self,
        schema: &ShardingSchema,
        sql: &str,
        params: Option<Params<'_>>,
    ) -> Option<String> {
        let p = plan(schema, sql);
        if p.copy_in.is_some() {
            return Some("COPY FROM STDIN into a distributed table is not available through the JWT gateway; use INSERT".into());
        }
        let sets: Vec<&KeySet> = match &p.routing {
            Routing::Keys(k) => vec![k],
            Routing::SameShard(v) => v.iter().collect(),
            Routing::Any | Routing::All => return None,
        };
        for ks in sets {
            let known: Vec<KeyValue> = ks
                .values
                .iter()
                .filter(|v| params.is_some() || matches!(v, KeyValue::Text(_)))
                .cloned()
                .collect();
            if known.is_empty() {
                continue;
            }
            if self.keys_are_tenants {
                if let Some(other) = self.other_tenant(ks.ty, &known, params) {
                    return Some(format!("permission denied: the statement names tenant {other}; this session belongs to tenant {}", self.value));
                }
            }
            let one = KeySet {
                ty: ks.ty,
                values: known,
            };
            if let Ok(Resolved::Shards(v)) = resolve(
                &Routing::Keys(one),
                schema.shards,
                params.unwrap_or_default(),
            ) {
                if let Some(s) = v.iter().find(|s| **s != self.shard) {
                    return Some(format!("permission denied: the statement's keys belong to shard {s}, another tenant's; this session belongs to tenant {} on shard {}", self.value, self.shard));
                }
            }
        }
        None
    }

    /// A key value (literal or text/binary parameter) that is not this tenant.
    fn other_tenant(
        &self,
        ty: KeyType,
        values: &[KeyValue],
        params: Option<Params<'_>>,
    ) -> Option<String> {
        let own = parse_text(ty, self.value.as_bytes()).ok()?;
        for v in values {
            let (shown, key) = match v {
                KeyValue::Text(t) => (t.clone(), parse_text(ty, t.as_bytes()).ok()),
                KeyValue::Param(i) => {
                    let p = params?;
                    let Some(Some(b)) = p.values.get(i.checked_sub(1)?) else {
                        continue;
                    };
                    let key = if p.format(i - 1) == 1 {
                        parse_binary(ty, b).ok()
                    } else {
                        parse_text(ty, b).ok()
                    };
                    (format!("${i}"), key)
                }
                _ => continue,
            };
            if key.is_some_and(|k| k != own) {
                return Some(shown);
            }
        }
        None
    }
}
