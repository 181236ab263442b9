//! The route of `INSERT ... VALUES` into a distributed table: the key of every row, so a
//! multi-row INSERT can be split per shard. The key is found by the statement's column
//! list, or, without one, by the table's column order, which only the catalog knows: the
//! plan then says `needs_columns`, the executor reads the order (`pg_attribute`, cached
//! per pool and table) and plans again with [`super::plan_with_columns`]. The planner
//! itself never does I/O.
//!
//! Unlike COPY's implicit column list, INSERT's includes generated columns (the client
//! writes `DEFAULT` for them), so only dropped columns are left out of the order.

use super::ast;
use super::route::{KeySet, Routing, ShardPlan};
use super::schema::ShardingSchema;
use pg_query::NodeEnum;

/// Fills in the route of an INSERT; `columns`: the table's column order, when the
/// statement has no column list and the executor has read it.
pub fn insert_rows(
    schema: &ShardingSchema,
    i: &pg_query::protobuf::InsertStmt,
    plan: &mut ShardPlan,
    columns: Option<&[String]>,
) {
    let Some(rv) = i.relation.as_ref() else {
        return;
    };
    if super::replicated_target(schema, rv, plan, "INSERT into") {
        return;
    }
    let Some(t) = schema.table(&rv.schemaname, &rv.relname) else {
        return;
    };
    let table = &schema.tables[t];
    let refuse = |plan: &mut ShardPlan, m: String| {
        plan.refuse.get_or_insert(m);
    };
    let idx = if i.cols.is_empty() {
        let Some(cols) = columns else {
            plan.needs_columns = Some(qualified(rv));
            plan.routing = Routing::All;
            return;
        };
        cols.iter().position(|c| *c == table.column)
    } else {
        i.cols.iter().position(
            |c| matches!(ast::inner(c), Some(NodeEnum::ResTarget(r)) if r.name == table.column),
        )
    };
    let Some(idx) = idx else {
        return refuse(plan, format!(
            "INSERT into the distributed table \"{}\" must name its shard key column \"{}\" in the column list (INSERT INTO {} ({}, ...) VALUES ...)",
            table.name, table.column, table.name, table.column
        ));
    };
    let rows = match i.select_stmt.as_deref().and_then(|s| s.node.as_ref()) {
        Some(NodeEnum::SelectStmt(s)) if !s.values_lists.is_empty() => &s.values_lists,
        _ => {
            return refuse(plan, format!(
                "INSERT ... SELECT into the distributed table \"{}\": the router cannot see the keys of the rows; insert with VALUES, or choose the shard with SET orochi.shard = N",
                table.name
            ))
        }
    };
    let mut keys = Vec::with_capacity(rows.len());
    let mut width = 0;
    for r in rows {
        let Some(NodeEnum::List(l)) = ast::inner(r) else {
            return;
        };
        width = width.max(l.items.len());
        match l.items.get(idx).and_then(ast::key_value) {
            Some(v) => keys.push(v),
            None => {
                return refuse(plan, format!(
                    "INSERT into \"{}\" with a computed or DEFAULT shard key: the router must know the key; pass \"{}\" as a literal or a parameter",
                    table.name, table.column
                ))
            }
        }
    }
    if let Some(oc) = &i.on_conflict_clause {
        let sets_key = oc.target_list.iter().any(
            |t| matches!(ast::inner(t), Some(NodeEnum::ResTarget(r)) if r.name == table.column),
        );
        if sets_key {
            return refuse(
                plan,
                format!(
                    "ON CONFLICT DO UPDATE of the shard key \"{}\"",
                    table.column
                ),
            );
        }
    }
    plan.routing = Routing::Keys(KeySet {
        ty: table.ty,
        values: keys.clone(),
    });
    plan.insert_rows = Some(keys);
    if let (true, Some(cols)) = (i.cols.is_empty(), columns) {
        if width > cols.len() {
            // More values than columns: a column added since the order was read, or the
            // client's mistake; the executor reads the order again before deciding.
            plan.needs_columns = Some(qualified(rv));
            plan.routing = Routing::All;
            plan.insert_rows = None;
            return;
        }
        plan.insert_columns = Some(cols.iter().take(width).cloned().collect());
    }
}

/// The table as a quoted, possibly schema-qualified name (for `'...'::regclass`).
fn qualified(rv: &pg_query::protobuf::RangeVar) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    if rv.schemaname.is_empty() {
        q(&rv.relname)
    } else {
        format!("{}.{}", q(&rv.schemaname), q(&rv.relname))
    }
}
