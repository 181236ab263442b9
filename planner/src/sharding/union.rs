//! The merge plan of a top-level `UNION ALL` (or `UNION`) that runs on several shards.
//!
//! Why it can be merged: the proof (`proof`, rule 1 branch by branch) has shown that
//! every row of every branch is made on one shard from that shard's rows, so the shards'
//! answers together are exactly the union's rows: concatenated for `UNION ALL`; for
//! `UNION` each shard already removed its own duplicates and the router removes those
//! across shards (the DISTINCT merge). What applies to the whole union is merged as for
//! a plain SELECT: ORDER BY (by output column name or position: PostgreSQL allows
//! nothing else there) as a k-way merge, LIMIT/OFFSET with each shard asked for
//! limit + offset rows. Only a tree of one kind qualifies: `a UNION b UNION ALL c` means
//! `(a UNION b) UNION ALL c`, which no single DISTINCT pass reproduces.

use super::ast::{inner, output_name, string};
use super::merge::{count, non_c_collation, shard_limit, sort_key};
use super::route::{Col, Merge};
use pg_query::protobuf::{a_const, AConst, Integer, LimitOption, Node, SelectStmt, SetOperation};
use pg_query::NodeEnum;

/// `Some(all)` when every set operation of the tree under `s` is `UNION` with the same
/// `ALL`; None when it mixes them or holds INTERSECT/EXCEPT.
pub(super) fn uniform(s: &SelectStmt) -> Option<Option<bool>> {
    match SetOperation::try_from(s.op) {
        Ok(SetOperation::SetopNone) => Some(None),
        Ok(SetOperation::SetopUnion) => {
            let kind = Some(s.all);
            for arg in [&s.larg, &s.rarg].into_iter().flatten() {
                match uniform(arg)? {
                    None => {}
                    k if k == kind => {}
                    _ => return None,
                }
            }
            Some(kind)
        }
        _ => None,
    }
}

/// The select-list names of the union's output: its leftmost operand's (None for `*`).
fn output_names(s: &SelectStmt) -> Option<Vec<String>> {
    let mut left = s;
    while let Some(l) = left.larg.as_deref() {
        left = l;
    }
    left.target_list
        .iter()
        .map(|t| match inner(t) {
            Some(NodeEnum::ResTarget(r)) => match r.val.as_deref() {
                Some(v) if !star(v) => Some(if r.name.is_empty() {
                    output_name(v)
                } else {
                    r.name.clone()
                }),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn star(v: &Node) -> bool {
    matches!(inner(v), Some(NodeEnum::ColumnRef(c)) if c.fields.iter().any(|f| matches!(inner(f), Some(NodeEnum::AStar(_)))))
}

/// The merge plan of a set operation at the top of a statement, and the statement each
/// shard runs when it differs.
pub fn plan_union(s: &SelectStmt) -> Result<(Merge, Option<SelectStmt>), String> {
    let refuse = "UNION/INTERSECT/EXCEPT over distributed tables across shards; run each part on its own, or restrict every part to one shard key";
    let Some(Some(all)) = uniform(s) else {
        return Err(refuse.into());
    };
    if s.limit_option == LimitOption::WithTies as i32 {
        return Err("FETCH ... WITH TIES across shards".into());
    }
    for n in &s.sort_clause {
        if let Some(c) = non_c_collation(n) {
            return Err(format!("COLLATE \"{c}\" in a merged ORDER BY across shards: the router compares text in byte order (the C collation); sort in the application or restrict the query to one shard key"));
        }
    }
    let names = output_names(s);
    let mut merge = Merge {
        distinct: !all,
        ..Merge::default()
    };
    for sb in &s.sort_clause {
        let Some(NodeEnum::SortBy(b)) = inner(sb) else {
            continue;
        };
        let Some(n) = b.node.as_deref() else { continue };
        let col = match inner(n) {
            Some(NodeEnum::AConst(AConst {
                val: Some(a_const::Val::Ival(Integer { ival })),
                ..
            })) if *ival >= 1 => Col::At(*ival as usize - 1),
            Some(NodeEnum::ColumnRef(c)) => {
                let name = match c.fields.as_slice() {
                    [one] => string(one),
                    _ => None,
                };
                let hits: Vec<usize> = match (&names, name) {
                    (Some(names), Some(name)) => {
                        (0..names.len()).filter(|&i| names[i] == name).collect()
                    }
                    _ => vec![],
                };
                match hits.as_slice() {
                    [i] => Col::At(*i),
                    _ => return Err("an ORDER BY of a UNION across shards that names no single output column; order by the column's position".into()),
                }
            }
            _ => {
                return Err(
                    "an ORDER BY expression over a UNION across shards; order by output columns"
                        .into(),
                )
            }
        };
        merge
            .order
            .push(sort_key(col, b.sortby_dir, b.sortby_nulls)?);
    }
    merge.limit = count(s.limit_count.as_deref(), "LIMIT")?;
    merge.offset = count(s.limit_offset.as_deref(), "OFFSET")?;
    let mut out = s.clone();
    out.limit_offset = None;
    out.limit_count = shard_limit(&merge);
    let changed = out != *s;
    Ok((merge, changed.then_some(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(sql: &str) -> SelectStmt {
        let p = pg_query::parse(sql, 0).unwrap();
        match p.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
        {
            Some(NodeEnum::SelectStmt(s)) => (**s).clone(),
            _ => panic!("not a select"),
        }
    }

    #[test]
    fn union_all_orders_and_limits_over_the_whole_union() {
        let (m, out) = plan_union(&select(
            "SELECT id, 'a' AS src FROM t UNION ALL SELECT id, 'b' FROM u ORDER BY src DESC, 1 LIMIT 5 OFFSET 10",
        ))
        .unwrap();
        assert!(!m.distinct);
        assert_eq!(
            m.order.iter().map(|k| (k.col, k.desc)).collect::<Vec<_>>(),
            vec![(Col::At(1), true), (Col::At(0), false)]
        );
        let out = crate::sharding::deparse(NodeEnum::SelectStmt(Box::new(out.unwrap()))).unwrap();
        assert!(out.ends_with("ORDER BY src DESC, 1 LIMIT 15"), "{out}");
    }

    #[test]
    fn union_is_made_distinct_by_the_router() {
        let (m, out) = plan_union(&select(
            "SELECT a FROM t UNION SELECT b FROM u UNION SELECT c FROM v",
        ))
        .unwrap();
        assert!(m.distinct && m.order.is_empty() && out.is_none());
    }

    #[test]
    fn mixed_or_other_set_operations_are_not_merged() {
        for sql in [
            "SELECT a FROM t UNION SELECT b FROM u UNION ALL SELECT c FROM v",
            "SELECT a FROM t UNION ALL (SELECT b FROM u UNION SELECT c FROM v)",
            "SELECT a FROM t INTERSECT SELECT b FROM u",
            "SELECT a FROM t EXCEPT ALL SELECT b FROM u",
            "SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY a + 1",
            "SELECT * FROM t UNION ALL SELECT * FROM u ORDER BY a",
            "SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY 1 FETCH FIRST 3 ROWS WITH TIES",
        ] {
            assert!(plan_union(&select(sql)).is_err(), "{sql}");
        }
        assert!(plan_union(&select(
            "SELECT * FROM t UNION ALL SELECT * FROM u ORDER BY 1"
        ))
        .is_ok());
    }
}
