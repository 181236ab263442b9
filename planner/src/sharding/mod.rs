//! The sharding planner: statement text → [`ShardPlan`] (which shards, how to merge),
//! pure and cached per pool by statement text. Values of bind parameters are not needed
//! here: a plan names `$n`, and [`resolve`] turns it into shards at Bind.

pub mod ast;
pub mod columns;
pub mod copy;
pub mod dml;
pub mod gather;
pub mod insert;
pub mod literals;
pub mod merge;
pub mod proof;
#[cfg(test)]
mod proof_tests;
pub mod resolve;
pub mod route;
pub mod schema;
pub mod scope;
#[cfg(test)]
mod tests;
pub mod union;

pub use route::{
    AggKind, Col, CopyFormat, CopyIn, CopyKey, Count, KeyAt, KeySet, KeyValue, Kind, Merge,
    Routing, ShardPlan, SortKey,
};
pub use schema::{DistributedTable, ShardingSchema};

use pg_query::protobuf::{Node, ParseResult, SetOperation};
use pg_query::NodeEnum;
use scope::Walk;
use std::sync::Arc;

/// The plan of `sql` on a pool, from the pool's cache when seen before.
pub fn plan(schema: &ShardingSchema, sql: &str) -> Arc<ShardPlan> {
    schema
        .plans
        .get_or_insert_with(sql, || plan_uncached(schema, sql))
}

/// The plan of an `INSERT` without a column list (one whose plan said `needs_columns`),
/// given the table's columns in order as the executor read them from the catalog.
/// Cached by text and columns: a changed column order is a new plan.
pub fn plan_with_columns(schema: &ShardingSchema, sql: &str, columns: &[String]) -> Arc<ShardPlan> {
    let key = format!("{sql}\0{}", columns.join("\0"));
    schema
        .plans
        .get_or_insert_with(&key, || plan_full(schema, sql, Some(columns)))
}

/// The plan of `sql`, computed afresh (no cache): parse, walk, merge plan.
pub fn plan_uncached(schema: &ShardingSchema, sql: &str) -> ShardPlan {
    plan_full(schema, sql, None)
}

/// `columns`: the column order of the table a column-less INSERT names.
fn plan_full(schema: &ShardingSchema, sql: &str, columns: Option<&[String]>) -> ShardPlan {
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        // The server reports the syntax error; any shard will do.
        Err(pg_query::Error::Parse(_)) => return ShardPlan::simple(Kind::Read, Routing::Any),
        // Valid SQL the parser's decoder cannot take (nesting past its limit): it may
        // be a write, so it goes nowhere rather than to an arbitrary shard.
        Err(e) => {
            return ShardPlan::refused(format!(
                "this statement cannot be analysed by the sharding planner ({e}); simplify it, or choose the shard with SET orochi.shard = N"
            ))
        }
    };
    let stmts: Vec<&Node> = parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|s| s.stmt.as_deref())
        .collect();
    let plans: Vec<ShardPlan> = stmts
        .iter()
        .map(|n| plan_node(schema, n, columns))
        .collect();
    let mut plan = match plans.len() {
        0 => ShardPlan::simple(Kind::Session, Routing::Any),
        1 => plans
            .into_iter()
            .next()
            .unwrap_or_else(|| ShardPlan::refused("empty")),
        _ => combine(plans),
    };
    // Safety net: every distributed table the statement names must have been seen by the
    // walk; a shape it does not understand must not be routed by a partial view.
    // Only statements that can nest queries need it (the walk sees every FROM item and
    // DML target of a flat statement): it costs a full copy of the tree.
    let plain_dml = matches!(
        crate::lex::first_keyword(sql).as_str(),
        "select" | "insert" | "update" | "delete" | "values" | "table"
    );
    let nested =
        !plain_dml || count_word(sql, "select") > 1 || crate::lex::contains_word_ci(sql, "with");
    if nested && plan.refuse.is_none() && plan.kind != Kind::Ddl {
        let found = count_distributed(schema, &parsed.protobuf);
        let seen = plans_seen(schema, &stmts);
        if found > seen {
            plan.refuse = Some("this statement's shape is not understood by the sharding planner; choose the shard with SET orochi.shard = N (or a /* orochi.shard = N */ comment)".into());
        }
    }
    plan
}

/// Several statements in one query string: allowed when they all go to one shard.
fn combine(plans: Vec<ShardPlan>) -> ShardPlan {
    let mut sets = Vec::new();
    let mut kind = Kind::Session;
    for p in plans {
        if let Some(r) = p.refuse {
            return ShardPlan::refused(r);
        }
        kind = match (kind, p.kind) {
            (Kind::Ddl, _) | (_, Kind::Ddl) => Kind::Ddl,
            (Kind::Write, _) | (_, Kind::Write) => Kind::Write,
            (Kind::Read, _) | (_, Kind::Read) => Kind::Read,
            _ => Kind::Session,
        };
        match p.routing {
            Routing::Any => {}
            Routing::Keys(k) => sets.push(k),
            Routing::SameShard(v) => sets.extend(v),
            Routing::All => {
                let mut r = ShardPlan::refused("a query string with several statements where one of them needs several shards; send the statements one by one");
                r.kind = kind;
                return r;
            }
        }
    }
    let routing = match sets.len() {
        0 => Routing::Any,
        _ => Routing::SameShard(sets),
    };
    let mut p = ShardPlan::simple(kind, routing);
    p.merge = Err(
        "a query string with several statements across shards; send the statements one by one"
            .into(),
    );
    p
}

/// Occurrences of distributed tables the walk finds in `stmts`.
fn plans_seen(schema: &ShardingSchema, stmts: &[&Node]) -> usize {
    stmts
        .iter()
        .map(|n| walk_of(schema, n).map_or(0, |w| w.occs.len()))
        .sum()
}

fn walk_of<'a>(schema: &'a ShardingSchema, n: &Node) -> Option<Walk<'a>> {
    let mut w = Walk::new(schema);
    build(&mut w, n)?;
    Some(w)
}

/// Every `RangeVar` in the tree naming a distributed table (CTE names excluded).
fn count_distributed(schema: &ShardingSchema, tree: &ParseResult) -> usize {
    fn go(v: &serde_json::Value, schema: &ShardingSchema, ctes: &[String], n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(rv)) = m.get("RangeVar") {
                    let s = rv.get("schemaname").and_then(|x| x.as_str()).unwrap_or("");
                    let r = rv.get("relname").and_then(|x| x.as_str()).unwrap_or("");
                    if schema.table(s, r).is_some()
                        && !(s.is_empty() && ctes.iter().any(|c| c == r))
                    {
                        *n += 1;
                    }
                }
                m.values().for_each(|x| go(x, schema, ctes, n));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| go(x, schema, ctes, n)),
            _ => {}
        }
    }
    fn ctes(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(c)) = m.get("CommonTableExpr") {
                    if let Some(name) = c.get("ctename").and_then(|x| x.as_str()) {
                        out.push(name.to_string());
                    }
                }
                m.values().for_each(|x| ctes(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| ctes(x, out)),
            _ => {}
        }
    }
    let v = serde_json::to_value(tree).unwrap_or_default();
    let mut names = Vec::new();
    ctes(&v, &mut names);
    let mut n = 0;
    go(&v, schema, &names, &mut n);
    n
}

/// Walks one statement; `None` for statements without tables to route by. Returns the
/// top query level (the one whose rows are the statement's).
fn build(w: &mut Walk<'_>, n: &Node) -> Option<usize> {
    match n.node.as_ref()? {
        NodeEnum::SelectStmt(s) => Some(w.select(s, None, true)),
        e @ (NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_)) => {
            w.dml(e, None)
        }
        NodeEnum::ExplainStmt(e) => build(w, e.query.as_deref()?),
        NodeEnum::DeclareCursorStmt(d) => build(w, d.query.as_deref()?),
        NodeEnum::CopyStmt(c) => {
            if let Some(q) = c.query.as_deref() {
                return w.query(q, None, true);
            }
            let top = w.select(&Default::default(), None, true);
            if let Some(rv) = &c.relation {
                let a = w.relation(rv, top, false);
                w.anchor(top, a);
            }
            Some(top)
        }
        _ => None,
    }
}

/// Union-find over occurrences joined on their keys; then the statement's routing.
fn routing(w: &Walk<'_>) -> (Routing, Result<(), String>) {
    let schema_ty = |o: usize| w.occs[o].table;
    if w.occs.is_empty() {
        return (Routing::Any, Ok(()));
    }
    let mut parent: Vec<usize> = (0..w.occs.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut r = x;
        while p[r] != r {
            r = p[r];
        }
        p[x] = r;
        r
    }
    let ty = |w: &Walk<'_>, o: usize| -> orochi_config::KeyType { w.schema_table(schema_ty(o)).ty };
    for &(a, b) in &w.edges {
        if ty(w, a) == ty(w, b) {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            parent[ra] = rb;
        }
    }
    let roots: Vec<usize> = (0..w.occs.len()).map(|o| find(&mut parent, o)).collect();
    let mut classes: Vec<(usize, Option<Vec<KeyValue>>)> = Vec::new();
    for &root in &roots {
        if !classes.iter().any(|(r, _)| *r == root) {
            classes.push((root, None));
        }
    }
    for (o, vals) in &w.constraints {
        if let Some((_, c)) = classes.iter_mut().find(|(r, _)| *r == roots[*o]) {
            if c.as_ref().is_none_or(|cur| vals.len() < cur.len()) {
                *c = Some(vals.clone());
            }
        }
    }
    let keyset = |root: usize, vals: Vec<KeyValue>| KeySet {
        ty: ty(w, root),
        values: vals,
    };
    if classes.len() == 1 {
        let (root, c) = classes.remove(0);
        return match c {
            Some(v) => (Routing::Keys(keyset(root, v)), Ok(())),
            None => (Routing::All, Ok(())),
        };
    }
    if classes.iter().all(|(_, c)| c.is_some()) {
        let sets = classes
            .into_iter()
            .map(|(r, c)| keyset(r, c.unwrap_or_default()))
            .collect();
        return (Routing::SameShard(sets), Ok(()));
    }
    let names: Vec<String> = classes
        .iter()
        .map(|(r, _)| format!("\"{}\"", w.schema_table(w.occs[*r].table).name))
        .collect();
    (
        Routing::All,
        Err(format!(
            "the statement combines distributed tables {} without joining them on their shard keys; join them on the key columns (a.key = b.key), or restrict each to one key value",
            names.join(" and ")
        )),
    )
}

fn plan_node(schema: &ShardingSchema, n: &Node, columns: Option<&[String]>) -> ShardPlan {
    let Some(e) = n.node.as_ref() else {
        return ShardPlan::simple(Kind::Session, Routing::Any);
    };
    use NodeEnum as E;
    let kind = match e {
        E::SelectStmt(s) if s.into_clause.is_some() => {
            return ShardPlan::refused("SELECT INTO on a sharded pool; use CREATE TABLE and INSERT")
        }
        E::SelectStmt(_) => Kind::Read,
        E::InsertStmt(_) | E::UpdateStmt(_) | E::DeleteStmt(_) => Kind::Write,
        E::CopyStmt(c) if c.is_from => Kind::Write,
        E::CopyStmt(_) | E::ExplainStmt(_) | E::DeclareCursorStmt(_) => Kind::Read,
        E::TransactionStmt(_)
        | E::VariableSetStmt(_)
        | E::VariableShowStmt(_)
        | E::DiscardStmt(_)
        | E::PrepareStmt(_)
        | E::DeallocateStmt(_)
        | E::ListenStmt(_)
        | E::UnlistenStmt(_)
        | E::NotifyStmt(_)
        | E::ClosePortalStmt(_)
        | E::FetchStmt(_)
        | E::LoadStmt(_)
        | E::CheckPointStmt(_) => return ShardPlan::simple(Kind::Session, Routing::Any),
        E::ExecuteStmt(_) => return ShardPlan::refused("EXECUTE of an SQL-level prepared statement on a sharded pool: the router cannot see its parameters; use protocol-level prepared statements (every driver does), or choose the shard with SET orochi.shard = N"),
        E::CallStmt(_) | E::DoStmt(_) => return ShardPlan::refused("CALL and DO on a sharded pool: the router cannot tell which shards they touch; choose the shard with SET orochi.shard = N"),
        E::LockStmt(_) => return ShardPlan::simple(Kind::Write, Routing::All),
        _ => return ShardPlan::simple(Kind::Ddl, Routing::All),
    };
    let mut w = Walk::new(schema);
    let Some(top) = build(&mut w, n) else {
        return ShardPlan::simple(kind, Routing::Any);
    };
    let (routing, fanout_ok) = match proof::prove(&w, top) {
        proof::Verdict::NoTables => (Routing::Any, Ok(())),
        proof::Verdict::FanOut(pin) => match (routing(&w), pin) {
            ((Routing::All, Ok(())), Some(ks)) => (Routing::Keys(ks), Ok(())),
            (r, _) => r,
        },
        proof::Verdict::Concat(pin) => (pin.map_or(Routing::All, Routing::Keys), Ok(())),
        proof::Verdict::OneShard(sets) => (
            Routing::SameShard(sets),
            Err("a statement that reads distributed tables only under subqueries, on one shard only".into()),
        ),
        proof::Verdict::Refuse(m) => (Routing::All, Err(m)),
    };
    let mut plan = ShardPlan::simple(if w.writes { Kind::Write } else { kind }, routing);
    plan.refuse = w.refuse.take();
    if let Err(e) = fanout_ok {
        plan.merge = Err(e);
    }
    match e {
        E::SelectStmt(s)
            if plan.merge.is_ok()
                && plan.routing != Routing::Any
                && !one_shard_now(schema, &plan.routing) =>
        {
            let set_op = !matches!(
                SetOperation::try_from(s.op),
                Ok(SetOperation::SetopNone) | Err(_)
            );
            let planned = if set_op {
                union::plan_union(s)
            } else {
                merge::plan_select(s)
            };
            match planned {
                Ok((m, rewritten)) => {
                    plan.merge = Ok(m);
                    plan.fanout_sql = rewritten.and_then(|s| deparse(E::SelectStmt(Box::new(s))));
                }
                Err(e) => plan.merge = Err(e),
            }
        }
        E::InsertStmt(i) => {
            insert::insert_rows(schema, i, &mut plan, columns);
            if plan.insert_rows.is_some() && w.occs.len() > 1 {
                plan.refuse.get_or_insert_with(|| "an INSERT whose VALUES, ON CONFLICT or RETURNING read a distributed table: the rows of that table may be on other shards than the inserted row; read them first and pass the values".into());
            }
        }
        E::DeleteStmt(d) => {
            if let Some(rv) = &d.relation {
                replicated_target(schema, rv, &mut plan, "DELETE from");
            }
        }
        E::UpdateStmt(u) => {
            let Some(rv) = &u.relation else {
                return plan;
            };
            if replicated_target(schema, rv, &mut plan, "UPDATE of") {
                return plan;
            }
            if let Some(t) = schema.table(&rv.schemaname, &rv.relname) {
                let key = &schema.tables[t].column;
                let sets_key = u
                    .target_list
                    .iter()
                    .any(|t| matches!(ast::inner(t), Some(E::ResTarget(r)) if &r.name == key));
                if sets_key {
                    plan.refuse = Some(format!("UPDATE of the shard key column \"{key}\": the row would have to move to another shard; DELETE it and INSERT it again"));
                }
            }
        }
        E::DeclareCursorStmt(_) => {
            plan.merge = Err("a cursor over rows of several shards; restrict its query to one shard key, or run the query without a cursor".into());
        }
        E::ExplainStmt(_) => {
            plan.merge = Err("EXPLAIN of a statement that runs on several shards; EXPLAIN it on one shard with SET orochi.shard = N".into());
        }
        E::CopyStmt(c) if c.is_from => {
            let replicated = c
                .relation
                .as_ref()
                .is_some_and(|rv| replicated_target(schema, rv, &mut plan, "COPY into"));
            copy::plan_copy_in(schema, c, &mut plan, replicated);
        }
        E::CopyStmt(c) => {
            if let Some(q) = c.query.as_deref() {
                if let Some(E::SelectStmt(s)) = q.node.as_ref() {
                    // COPY's rows are concatenated, never merged.
                    let aggregates = s.target_list.iter().any(|t| {
                        let (a, w) = ast::has_aggregate(t);
                        a || w
                    });
                    if !s.sort_clause.is_empty()
                        || s.limit_count.is_some()
                        || s.limit_offset.is_some()
                        || !s.distinct_clause.is_empty()
                        || !s.group_clause.is_empty()
                        || s.having_clause.is_some()
                        || aggregates
                        || !matches!(union::uniform(s), Some(None | Some(true)))
                    {
                        plan.merge = Err("COPY (SELECT ... ORDER BY/LIMIT/DISTINCT/GROUP BY/aggregates/UNION) across shards; run the SELECT instead".into());
                    }
                }
            }
        }
        _ => {}
    }
    plan
}

/// A write whose target is a replicated table runs on every shard, so that every copy
/// stays the same; one that also reads distributed rows would write different rows on
/// each shard and is refused. Returns whether `rv` is replicated.
pub(super) fn replicated_target(
    schema: &ShardingSchema,
    rv: &pg_query::protobuf::RangeVar,
    plan: &mut ShardPlan,
    what: &str,
) -> bool {
    if schema.table(&rv.schemaname, &rv.relname).is_some() {
        return false;
    }
    if plan.routing == Routing::Any {
        plan.routing = Routing::All;
        plan.replicated = true;
    } else {
        plan.refuse.get_or_insert_with(|| format!("{what} the replicated table \"{}\" using rows of a distributed table: every shard would write different rows; read the distributed rows first, then write the values", rv.relname));
    }
    true
}

/// Whether literal keys already pin the statement to one shard (its merge plan is then
/// never needed: skipping it keeps cold planning of point lookups cheap).
fn one_shard_now(schema: &ShardingSchema, routing: &Routing) -> bool {
    let Routing::Keys(ks) = routing else {
        return false;
    };
    if !ks
        .values
        .iter()
        .all(|v| matches!(v, KeyValue::Text(_) | KeyValue::Null))
    {
        return false;
    }
    matches!(
        resolve::resolve(routing, schema.shards, Default::default()),
        Ok(resolve::Resolved::Shards(v)) if v.len() == 1
    )
}

/// How often `word` occurs as a whole word, ignoring case.
fn count_word(sql: &str, word: &str) -> usize {
    let lower = sql.to_ascii_lowercase();
    let b = lower.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    lower
        .match_indices(word)
        .filter(|(i, _)| {
            (*i == 0 || !is_ident(b[*i - 1])) && b.get(i + word.len()).is_none_or(|c| !is_ident(*c))
        })
        .count()
}

/// SQL text of a statement node.
pub fn deparse(e: NodeEnum) -> Option<String> {
    e.deparse(Default::default()).ok()
}
