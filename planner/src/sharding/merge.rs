//! The merge plan of a SELECT that runs on several shards, and the SQL each shard gets.
//!
//! Shards return rows already filtered, joined and sorted; the router finishes the job:
//! k-way merge for ORDER BY, LIMIT/OFFSET (each shard is asked for LIMIT limit+offset),
//! DISTINCT, and count/sum/min/max/avg with or without GROUP BY (`avg(x)` is asked as
//! `sum(x)` plus a hidden `count(x)`). ORDER BY or GROUP BY expressions missing from the
//! select list are added as hidden trailing columns. Everything else that depends on
//! seeing all rows at once is refused with a reason. A top-level `UNION [ALL]` is
//! planned in `union`.

use super::ast::{expr_key, func_name, has_aggregate, inner, output_name};
use super::route::{AggKind, Col, Count, Grouping, Merge, SortKey};
use pg_query::protobuf::{
    a_const, AConst, AExpr, AExprKind, FuncCall, Integer, LimitOption, Node, ParamRef, ResTarget,
    SelectStmt, SortByDir, SortByNulls,
};
use pg_query::NodeEnum;

fn node(e: NodeEnum) -> Node {
    Node { node: Some(e) }
}

fn is_star(n: &Node) -> bool {
    match inner(n) {
        Some(NodeEnum::ResTarget(r)) => matches!(
            r.val.as_deref().and_then(inner),
            Some(NodeEnum::ColumnRef(c)) if c.fields.iter().any(|f| matches!(inner(f), Some(NodeEnum::AStar(_))))
        ),
        _ => false,
    }
}

struct Target {
    name: String,
    key: String,
}

pub(super) fn count(n: Option<&Node>, what: &str) -> Result<Option<Count>, String> {
    let Some(n) = n else { return Ok(None) };
    match inner(n) {
        Some(NodeEnum::AConst(c)) if c.isnull => Ok(None),
        Some(NodeEnum::AConst(AConst {
            val: Some(a_const::Val::Ival(i)),
            ..
        })) if i.ival >= 0 => Ok(Some(Count::Const(i.ival as u64))),
        Some(NodeEnum::AConst(AConst {
            val: Some(a_const::Val::Fval(f)),
            ..
        })) => f
            .fval
            .parse::<u64>()
            .map(|v| Some(Count::Const(v)))
            .map_err(|_| format!("{what} {} across shards", f.fval)),
        Some(NodeEnum::ParamRef(p)) if p.number > 0 => Ok(Some(Count::Param(p.number as usize))),
        Some(NodeEnum::TypeCast(t)) => count(t.arg.as_deref(), what),
        _ => Err(format!(
            "a computed {what} across shards; use a constant or a parameter"
        )),
    }
}

/// The pure aggregate a select-list entry is, if it is one the router can combine.
fn simple_aggregate(n: &Node) -> Result<Option<(&FuncCall, &'static str)>, String> {
    let Some(NodeEnum::FuncCall(f)) = inner(n) else {
        return Ok(None);
    };
    let name = func_name(&f.funcname);
    let kind = match name.as_str() {
        "count" => "count",
        "sum" => "sum",
        "min" => "min",
        "max" => "max",
        "avg" => "avg",
        // false < true: the AND of the shards' answers is their minimum, the OR their
        // maximum (NULL, a shard with no non-NULL input, is skipped by both).
        "bool_and" | "every" => "min",
        "bool_or" => "max",
        "bit_and" => "bit_and",
        "bit_or" => "bit_or",
        _ => return Ok(None),
    };
    if f.over.is_some() {
        return Ok(None);
    }
    if f.agg_distinct {
        return Err(format!(
            "{name}(DISTINCT ...) across shards: the same value may be counted on several shards; add the shard key to the WHERE clause, or aggregate per shard key with GROUP BY"
        ));
    }
    if !f.agg_order.is_empty() || f.agg_within_group || f.args.len() > 1 {
        return Err(format!("this form of {name}() across shards"));
    }
    Ok(Some((f, kind)))
}

fn hidden_target(n: Node, j: usize) -> Node {
    node(NodeEnum::ResTarget(Box::new(ResTarget {
        name: format!("_orochi_h{j}"),
        val: Some(Box::new(n)),
        ..Default::default()
    })))
}

/// Builds the merge plan of a top-level SELECT without a set operation (those are
/// `union::plan_union`'s) and, when the shards need a different statement, that
/// statement.
pub fn plan_select(s: &SelectStmt) -> Result<(Merge, Option<SelectStmt>), String> {
    if s.having_clause.is_some() {
        return Err("HAVING across shards; filter the grouped rows in the application, or add the shard key to the WHERE clause".into());
    }
    if s.limit_option == LimitOption::WithTies as i32 {
        return Err("FETCH ... WITH TIES across shards".into());
    }
    if !s.window_clause.is_empty() {
        return Err("window functions across shards: each shard only sees its own rows; add the shard key to the WHERE clause or compute the window in the application".into());
    }
    for n in s
        .target_list
        .iter()
        .chain(&s.sort_clause)
        .chain(&s.group_clause)
    {
        if let Some(c) = non_c_collation(n) {
            return Err(format!("COLLATE \"{c}\" in a merged ORDER BY, GROUP BY or aggregate across shards: the router compares text in byte order (the C collation); sort in the application or restrict the query to one shard key"));
        }
    }
    let distinct = match s.distinct_clause.as_slice() {
        [] => false,
        [d] if d.node.is_none() => true,
        _ => return Err("DISTINCT ON across shards; use DISTINCT or GROUP BY".into()),
    };
    let mut out = s.clone();
    let mut merge = Merge {
        distinct,
        ..Merge::default()
    };
    let star = s.target_list.iter().any(is_star);
    let mut targets = Vec::new();
    let mut grouping = !s.group_clause.is_empty();
    for t in &s.target_list {
        let Some(NodeEnum::ResTarget(r)) = inner(t) else {
            return Err("an unexpected select list".into());
        };
        let Some(v) = r.val.as_deref() else {
            return Err("an unexpected select list".into());
        };
        let (agg, window) = has_aggregate(v);
        if window {
            return Err("window functions across shards: each shard only sees its own rows; add the shard key to the WHERE clause or compute the window in the application".into());
        }
        grouping |= agg;
        targets.push(Target {
            name: if r.name.is_empty() {
                output_name(v)
            } else {
                r.name.clone()
            },
            key: expr_key(v),
        });
    }
    let mut hidden: Vec<Node> = Vec::new();
    // Resolves an ORDER BY / GROUP BY item to a column, adding a hidden one if allowed.
    let resolve = |n: &Node, hidden: &mut Vec<Node>, may_add: bool| -> Result<Col, String> {
        if let Some(NodeEnum::AConst(AConst {
            val: Some(a_const::Val::Ival(Integer { ival })),
            ..
        })) = inner(n)
        {
            return match *ival {
                i if i >= 1 => Ok(Col::At(i as usize - 1)),
                _ => Err("an ORDER BY position out of range".into()),
            };
        }
        if !star {
            if let Some(NodeEnum::ColumnRef(c)) = inner(n) {
                if let [one] = c.fields.as_slice() {
                    if let Some(name) = super::ast::string(one) {
                        let hits: Vec<usize> = (0..targets.len())
                            .filter(|&i| targets[i].name == name)
                            .collect();
                        if let [i] = hits.as_slice() {
                            return Ok(Col::At(*i));
                        }
                    }
                }
            }
            let key = expr_key(n);
            if let Some(i) = targets.iter().position(|t| t.key == key) {
                return Ok(Col::At(i));
            }
        }
        if !may_add {
            return Err("an ORDER BY expression that is not in the select list, with DISTINCT or aggregates, across shards; add it to the select list".into());
        }
        hidden.push(n.clone());
        Ok(Col::Hidden(hidden.len() - 1))
    };
    if grouping {
        if star {
            return Err("SELECT * with aggregates across shards".into());
        }
        if distinct {
            return Err("DISTINCT with aggregates across shards".into());
        }
        let mut keys = Vec::new();
        let mut aggs = Vec::new();
        let mut casts = Vec::new();
        for (i, t) in s.target_list.iter().enumerate() {
            let Some(NodeEnum::ResTarget(r)) = inner(t) else {
                continue;
            };
            let Some(full) = r.val.as_deref() else {
                continue;
            };
            // `agg(...)::type...`: the shards return the aggregate, the router casts.
            let (core, chain) = peel_casts(full);
            let mut v = full;
            if !chain.is_empty() && simple_aggregate(core)?.is_some() {
                let mut to = Vec::new();
                for tn in chain.iter().rev() {
                    match crate::codec::cast::CastTo::from_type_name(tn) {
                        Some(c) => to.push(c),
                        None => return Err(format!("a cast to {tn} over an aggregate across shards; cast in the application, or to int, bigint, numeric, float8 or text")),
                    }
                }
                casts.push((Col::At(i), to));
                let mut rt = r.clone();
                rt.name = targets[i].name.clone();
                rt.val = Some(Box::new(core.clone()));
                out.target_list[i] = node(NodeEnum::ResTarget(rt));
                v = core;
            }
            match simple_aggregate(v)? {
                Some((f, kind)) => {
                    let k = match kind {
                        "count" => AggKind::Count,
                        "sum" => AggKind::Sum,
                        "min" => AggKind::Min,
                        "max" => AggKind::Max,
                        "bit_and" => AggKind::BitAnd,
                        "bit_or" => AggKind::BitOr,
                        _ => {
                            // avg(x) → sum(x) here, count(x) hidden.
                            let mut sum = (*f).clone();
                            sum.funcname = vec![node(NodeEnum::String(pg_query::protobuf::String {
                                sval: "sum".into(),
                            }))];
                            let mut cnt = (*f).clone();
                            cnt.funcname = vec![node(NodeEnum::String(pg_query::protobuf::String {
                                sval: "count".into(),
                            }))];
                            let mut rt = r.clone();
                            rt.name = targets[i].name.clone();
                            rt.val = Some(Box::new(node(NodeEnum::FuncCall(Box::new(sum)))));
                            out.target_list[i] = node(NodeEnum::ResTarget(rt));
                            hidden.push(node(NodeEnum::FuncCall(Box::new(cnt))));
                            AggKind::Avg {
                                count: Col::Hidden(hidden.len() - 1),
                            }
                        }
                    };
                    aggs.push((Col::At(i), k));
                }
                None if has_aggregate(v).0 => {
                    return Err(format!(
                        "\"{}\" across shards: only plain count, sum, min, max, avg, bool_and/bool_or/every and bit_and/bit_or can be combined; select the aggregates themselves and compute the expression in the application",
                        targets[i].name
                    ))
                }
                None => keys.push(Col::At(i)),
            }
        }
        for g in &s.group_clause {
            if matches!(inner(g), Some(NodeEnum::GroupingSet(_))) {
                return Err("GROUPING SETS, ROLLUP and CUBE across shards".into());
            }
            let c = resolve(g, &mut hidden, true)?;
            if !keys.contains(&c) {
                keys.push(c);
            }
        }
        for sb in &s.sort_clause {
            let Some(NodeEnum::SortBy(b)) = inner(sb) else {
                continue;
            };
            let Some(n) = b.node.as_deref() else { continue };
            let col = resolve(n, &mut hidden, false)?;
            merge
                .order
                .push(sort_key(col, b.sortby_dir, b.sortby_nulls)?);
        }
        merge.limit = count(s.limit_count.as_deref(), "LIMIT")?;
        merge.offset = count(s.limit_offset.as_deref(), "OFFSET")?;
        merge.group = Some(Grouping { keys, aggs, casts });
        out.sort_clause.clear();
        out.limit_count = None;
        out.limit_offset = None;
    } else {
        for sb in &s.sort_clause {
            let Some(NodeEnum::SortBy(b)) = inner(sb) else {
                continue;
            };
            let Some(n) = b.node.as_deref() else { continue };
            let col = resolve(n, &mut hidden, !distinct)?;
            merge
                .order
                .push(sort_key(col, b.sortby_dir, b.sortby_nulls)?);
        }
        merge.limit = count(s.limit_count.as_deref(), "LIMIT")?;
        merge.offset = count(s.limit_offset.as_deref(), "OFFSET")?;
        // Each shard returns at most limit + offset rows; the router skips the offset.
        out.limit_offset = None;
        out.limit_count = shard_limit(&merge);
    }
    merge.hidden = hidden.len();
    for (j, h) in hidden.into_iter().enumerate() {
        out.target_list.push(hidden_target(h, j));
    }
    let changed = out != *s;
    Ok((merge, changed.then_some(out)))
}

/// The LIMIT each shard gets: limit + offset (the router skips the offset itself).
pub(super) fn shard_limit(merge: &Merge) -> Option<Box<Node>> {
    match (merge.limit, merge.offset) {
        (None, _) => None,
        (Some(l), None) => Some(Box::new(count_node(l))),
        (Some(Count::Const(l)), Some(Count::Const(o))) => {
            Some(Box::new(count_node(Count::Const(l.saturating_add(o)))))
        }
        (Some(l), Some(o)) => Some(Box::new(node(NodeEnum::AExpr(Box::new(AExpr {
            kind: AExprKind::AexprOp as i32,
            name: vec![node(NodeEnum::String(pg_query::protobuf::String {
                sval: "+".into(),
            }))],
            lexpr: Some(Box::new(count_node(l))),
            rexpr: Some(Box::new(count_node(o))),
            ..Default::default()
        }))))),
    }
}

/// The expression under a chain of casts, and the cast type names (outermost first).
fn peel_casts(n: &Node) -> (&Node, Vec<String>) {
    let mut cur = n;
    let mut names = Vec::new();
    while let Some(NodeEnum::TypeCast(t)) = inner(cur) {
        let Some(arg) = t.arg.as_deref() else { break };
        let name = t.type_name.as_ref().map(|tn| {
            if tn.array_bounds.is_empty() && tn.typmods.is_empty() {
                func_name(&tn.names)
            } else {
                "a modified type".to_string()
            }
        });
        names.push(name.unwrap_or_default());
        cur = arg;
    }
    (cur, names)
}

/// A `COLLATE` other than "C"/"POSIX" inside an expression.
pub(super) fn non_c_collation(n: &Node) -> Option<String> {
    let mut found = None;
    super::ast::visit_exprs(n, &mut |e| {
        if let NodeEnum::CollateClause(c) = e {
            let name = func_name(&c.collname);
            if !matches!(name.as_str(), "c" | "posix") {
                found.get_or_insert(name);
            }
        }
    });
    found
}

fn count_node(c: Count) -> Node {
    match c {
        Count::Const(v) => match i32::try_from(v) {
            Ok(i) => node(NodeEnum::AConst(AConst {
                val: Some(a_const::Val::Ival(Integer { ival: i })),
                ..Default::default()
            })),
            Err(_) => node(NodeEnum::AConst(AConst {
                val: Some(a_const::Val::Fval(pg_query::protobuf::Float {
                    fval: v.to_string(),
                })),
                ..Default::default()
            })),
        },
        Count::Param(n) => node(NodeEnum::ParamRef(ParamRef {
            number: n as i32,
            ..Default::default()
        })),
    }
}

pub(super) fn sort_key(col: Col, dir: i32, nulls: i32) -> Result<SortKey, String> {
    let desc = dir == SortByDir::SortbyDesc as i32;
    if dir == SortByDir::SortbyUsing as i32 {
        return Err("ORDER BY ... USING across shards".into());
    }
    // PostgreSQL: NULLs sort as larger than every value unless told otherwise.
    let nulls_first = match SortByNulls::try_from(nulls) {
        Ok(SortByNulls::SortbyNullsFirst) => true,
        Ok(SortByNulls::SortbyNullsLast) => false,
        _ => desc,
    };
    Ok(SortKey {
        col,
        desc,
        nulls_first,
    })
}
