//! A multi-row INSERT whose rows land on several shards becomes one INSERT per shard with
//! that shard's rows (naming the table's columns when the client's INSERT has no column
//! list, so an order read from a stale cache fails instead of misplacing rows). With bind parameters every shard statement keeps the client's
//! parameter list (no renumbering); a parameter only other shards' rows use gets an
//! explicit type the value is always valid for (`text` for a text value, `bytea` for a
//! binary one), so PostgreSQL need not infer a type for a parameter it never sees used.

use super::sharded_path::ShardedPath;
use crate::planner::sharding::resolve::{resolve, Params, Resolved};
use crate::planner::sharding::{KeySet, Routing, ShardPlan, ShardingSchema};
use std::collections::BTreeSet;
use std::sync::Arc;

const TEXT: u32 = 25;
const BYTEA: u32 = 17;

/// The statement per target shard.
pub(crate) struct Split {
    /// SQL for each shard of the route (one entry: the same SQL everywhere).
    pub sql: Vec<String>,
    /// Parameter types for each shard's Parse, when they differ from the client's.
    pub param_types: Option<Vec<Vec<u32>>>,
}

pub(crate) fn split_insert(
    p: &ShardPlan,
    sql: &str,
    shards: &[usize],
    schema: &ShardingSchema,
    params: Params<'_>,
    client_types: &[u32],
) -> Result<Split, String> {
    let sql = p.fanout_sql.clone().unwrap_or_else(|| sql.to_string());
    let whole = |sql| Split {
        sql: vec![sql],
        param_types: None,
    };
    let (Some(rows), Routing::Keys(ks)) = (&p.insert_rows, &p.routing) else {
        return Ok(whole(sql));
    };
    let mut per: Vec<Vec<usize>> = vec![vec![]; shards.len()];
    for (i, v) in rows.iter().enumerate() {
        let one = KeySet {
            ty: ks.ty,
            values: vec![v.clone()],
        };
        let s = match resolve(&Routing::Keys(one), schema.shards, params)? {
            Resolved::Shards(v) if v.len() == 1 => v[0],
            _ => return Err("an INSERT row whose key the router cannot place".into()),
        };
        let idx = shards
            .iter()
            .position(|x| *x == s)
            .ok_or("internal: shard not in route")?;
        per[idx].push(i);
    }
    let parsed = pg_query::parse(&sql, 0).map_err(|e| e.to_string())?;
    let Some(pg_query::NodeEnum::InsertStmt(ins)) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|s| s.stmt.as_ref())
        .and_then(|n| n.node.clone())
    else {
        return Err("internal: not an INSERT".into());
    };
    let mut out = Vec::new();
    let mut types = Vec::new();
    let mut ins = ins;
    if let (true, Some(cols)) = (ins.cols.is_empty(), p.insert_columns.as_ref()) {
        ins.cols = cols
            .iter()
            .map(|c| pg_query::protobuf::Node {
                node: Some(pg_query::NodeEnum::ResTarget(Box::new(
                    pg_query::protobuf::ResTarget {
                        name: c.clone(),
                        ..Default::default()
                    },
                ))),
            })
            .collect();
    }
    for idxs in per {
        let mut i2 = (*ins).clone();
        if let Some(sel) = i2.select_stmt.as_mut() {
            if let Some(pg_query::NodeEnum::SelectStmt(s)) = sel.node.as_mut() {
                let all = std::mem::take(&mut s.values_lists);
                s.values_lists = idxs.iter().filter_map(|&i| all.get(i).cloned()).collect();
            }
        }
        if !params.values.is_empty() {
            types.push(shard_param_types(&i2, params, client_types));
        }
        out.push(
            crate::planner::sharding::deparse(pg_query::NodeEnum::InsertStmt(Box::new(i2)))
                .ok_or("internal: cannot write the split INSERT")?,
        );
    }
    Ok(Split {
        sql: out,
        param_types: (!types.is_empty()).then_some(types),
    })
}

impl ShardedPath<'_> {
    /// The column order of `table` (quoted, possibly qualified) for an INSERT without a
    /// column list: from the pool's cache (unless `fresh`), else from shard 0's catalog. Dropped columns
    /// are left out; generated ones stay (the INSERT names them with DEFAULT). The outer
    /// `Err`: the client gave up while the router waited for a connection
    /// (`aside_checkout.rs`).
    pub(crate) async fn table_columns(
        &mut self,
        table: &str,
        fresh: bool,
    ) -> crate::error::Result<Result<std::sync::Arc<Vec<String>>, orochi_wire::PgError>> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        if let Some(c) = schema.columns.get(table).filter(|_| !fresh) {
            return Ok(Ok(c));
        }
        let unavailable = |e: String| {
            orochi_wire::PgError::error(
                "08006",
                format!("cannot read the columns of {table} from shard 0: {e}"),
            )
        };
        let Some(pool) = self.ctx.user.primary(0).cloned() else {
            return Ok(Err(unavailable("no primary".into())));
        };
        let mut co = match self.checkout_aside(&pool).await? {
            Ok(co) => co,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a table's columns from shard 0");
                return Ok(Err(unavailable("no connection".into())));
            }
        };
        let sql = format!(
            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = '{}'::regclass \
             AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            table.replace('\'', "''")
        );
        let answer = co.conn().query_rows(&sql).await;
        co.release();
        match answer {
            Ok(Ok((_, rows))) => {
                let cols = rows
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().flatten())
                    .collect();
                Ok(Ok(schema.columns.put(table, cols)))
            }
            Ok(Err(e)) => Ok(Err(e)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a table's columns from shard 0");
                Ok(Err(unavailable("the connection was lost".into())))
            }
        }
    }
}

/// The client's parameter types, with a type of our own for every parameter this
/// shard's statement does not use.
fn shard_param_types(
    stmt: &pg_query::protobuf::InsertStmt,
    params: Params<'_>,
    client_types: &[u32],
) -> Vec<u32> {
    let used = param_refs(stmt);
    (0..params.values.len())
        .map(|i| {
            if used.contains(&(i + 1)) {
                client_types.get(i).copied().unwrap_or(0)
            } else if params.format(i) == 1 {
                BYTEA
            } else {
                TEXT
            }
        })
        .collect()
}

/// The `$n` a statement uses.
fn param_refs(stmt: &pg_query::protobuf::InsertStmt) -> BTreeSet<usize> {
    fn go(v: &serde_json::Value, out: &mut BTreeSet<usize>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(p)) = m.get("ParamRef") {
                    if let Some(n) = p.get("number").and_then(|n| n.as_u64()) {
                        out.insert(n as usize);
                    }
                }
                m.values().for_each(|x| go(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| go(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    go(&serde_json::to_value(stmt).unwrap_or_default(), &mut out);
    out
}
