//! Small readers over `pg_query`'s syntax tree: identifiers, literals, parameters, and a
//! location-free fingerprint of an expression (to match `ORDER BY expr` with `SELECT expr`).

use super::route::KeyValue;
use pg_query::protobuf::{a_const, Node};
use pg_query::NodeEnum;

pub fn inner(n: &Node) -> Option<&NodeEnum> {
    n.node.as_ref()
}

pub fn string(n: &Node) -> Option<&str> {
    match inner(n)? {
        NodeEnum::String(s) => Some(&s.sval),
        _ => None,
    }
}

/// The dotted parts of a column reference (`a.b` → ["a", "b"]); `None` for `*`.
pub fn column_ref(n: &Node) -> Option<Vec<&str>> {
    match inner(n)? {
        NodeEnum::ColumnRef(c) => c.fields.iter().map(string).collect(),
        _ => None,
    }
}

/// The last part of a function's (possibly qualified) name, lower-case.
pub fn func_name(names: &[Node]) -> String {
    names
        .last()
        .and_then(string)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// A literal or parameter usable as a key value; casts are looked through (`'42'::int`,
/// `$1::bigint`): the value's text or the parameter is what the key is compared with.
pub fn key_value(n: &Node) -> Option<KeyValue> {
    match inner(n)? {
        NodeEnum::AConst(c) => {
            if c.isnull {
                return Some(KeyValue::Null);
            }
            match c.val.as_ref()? {
                a_const::Val::Ival(i) => Some(KeyValue::Text(i.ival.to_string())),
                a_const::Val::Fval(f) => Some(KeyValue::Text(f.fval.clone())),
                a_const::Val::Sval(s) => Some(KeyValue::Text(s.sval.clone())),
                _ => None,
            }
        }
        NodeEnum::TypeCast(t) if key_cast(t) => key_value(t.arg.as_deref()?),
        NodeEnum::ParamRef(p) if p.number > 0 => Some(KeyValue::Param(p.number as usize)),
        _ => None,
    }
}

/// A cast that keeps a key value as it is: to an integer type, text, varchar or uuid.
/// Other casts change what is compared (`char(n)` drops trailing blanks, `numeric`
/// compares numerically), so their values are not hashed.
pub fn key_cast(t: &pg_query::protobuf::TypeCast) -> bool {
    let Some(tn) = t.type_name.as_ref() else {
        return false;
    };
    if !tn.array_bounds.is_empty() {
        return false;
    }
    key_type_name(&func_name(&tn.names))
}

/// Type names whose values compare like the key's own (integers, text, uuid).
fn key_type_name(name: &str) -> bool {
    matches!(
        name,
        "int2"
            | "int4"
            | "int8"
            | "smallint"
            | "integer"
            | "int"
            | "bigint"
            | "text"
            | "varchar"
            | "uuid"
    )
}

/// The elements of `ANY(...)`: an array parameter, `ARRAY[...]` of literals, or an
/// array literal `'{1,2}'`.
pub fn any_values(n: &Node) -> Option<Vec<KeyValue>> {
    match inner(n)? {
        NodeEnum::ParamRef(p) if p.number > 0 => {
            Some(vec![KeyValue::ParamArray(p.number as usize)])
        }
        NodeEnum::TypeCast(t) => {
            let arg = t.arg.as_deref()?;
            // `'{1,2}'::bigint[]`: an array of a key-compatible element type.
            let elem = t
                .type_name
                .as_ref()
                .map(|tn| func_name(&tn.names))
                .unwrap_or_default();
            if !key_type_name(&elem) {
                return None;
            }
            match inner(arg)? {
                NodeEnum::AConst(_) => match key_value(arg)? {
                    KeyValue::Text(s) => array_literal(&s),
                    _ => None,
                },
                _ => any_values(arg),
            }
        }
        NodeEnum::AArrayExpr(a) => a.elements.iter().map(key_value).collect(),
        NodeEnum::AConst(_) => match key_value(n)? {
            KeyValue::Text(s) => array_literal(&s),
            _ => None,
        },
        _ => None,
    }
}

/// A one-dimensional array literal of plain elements (`{1,2,3}`); anything quoted or
/// nested is left alone (the statement then goes to every shard, which is still right).
pub fn array_literal(s: &str) -> Option<Vec<KeyValue>> {
    let body = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    if body.contains(['"', '{', '\\']) {
        return None;
    }
    if body.trim().is_empty() {
        return Some(vec![]);
    }
    Some(
        body.split(',')
            .map(|e| {
                let e = e.trim();
                if e.eq_ignore_ascii_case("null") {
                    KeyValue::Null
                } else {
                    KeyValue::Text(e.to_string())
                }
            })
            .collect(),
    )
}

/// A fingerprint of an expression that ignores where it was written.
pub fn expr_key(n: &Node) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("location");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(n).unwrap_or_default();
    strip(&mut v);
    v.to_string()
}

/// The output name PostgreSQL gives a select-list entry without an alias.
pub fn output_name(n: &Node) -> String {
    match inner(n) {
        Some(NodeEnum::ColumnRef(c)) => c
            .fields
            .last()
            .and_then(string)
            .unwrap_or("?column?")
            .to_string(),
        Some(NodeEnum::FuncCall(f)) => func_name(&f.funcname),
        Some(NodeEnum::TypeCast(t)) => match t.arg.as_deref().map(output_name) {
            Some(s) if s != "?column?" => s,
            _ => t
                .type_name
                .as_ref()
                .map(|tn| func_name(&tn.names))
                .unwrap_or_else(|| "?column?".into()),
        },
        _ => "?column?".into(),
    }
}

/// Built-in aggregate functions (lower-case). Calls to these are aggregates; user-defined
/// aggregates cannot be told from functions by syntax (see the README).
pub const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "xmlagg",
    "range_agg",
    "range_intersect_agg",
    "any_value",
];

/// Does the expression contain an aggregate or window call (not looking into subqueries)?
pub fn has_aggregate(n: &Node) -> (bool, bool) {
    let mut agg = false;
    let mut window = false;
    visit_exprs(n, &mut |e| {
        if let NodeEnum::FuncCall(f) = e {
            if f.over.is_some() {
                window = true;
            } else if AGGREGATES.contains(&func_name(&f.funcname).as_str()) {
                agg = true;
            }
        }
    });
    (agg, window)
}

/// Calls `f` on every expression node under `n`, not descending into subqueries.
pub fn visit_exprs(n: &Node, f: &mut dyn FnMut(&NodeEnum)) {
    let Some(e) = inner(n) else { return };
    f(e);
    for c in expr_children(e) {
        visit_exprs(c, f);
    }
}

/// The direct expression children of an expression node (subqueries excluded).
pub fn expr_children(e: &NodeEnum) -> Vec<&Node> {
    let mut v: Vec<&Node> = Vec::new();
    match e {
        NodeEnum::AExpr(a) => {
            v.extend(a.lexpr.as_deref());
            v.extend(a.rexpr.as_deref());
        }
        NodeEnum::BoolExpr(b) => v.extend(b.args.iter()),
        NodeEnum::FuncCall(fc) => {
            v.extend(fc.args.iter());
            v.extend(fc.agg_filter.as_deref());
            v.extend(fc.agg_order.iter());
        }
        NodeEnum::TypeCast(t) => v.extend(t.arg.as_deref()),
        NodeEnum::CollateClause(c) => v.extend(c.arg.as_deref()),
        NodeEnum::CaseExpr(c) => {
            v.extend(c.arg.as_deref());
            v.extend(c.args.iter());
            v.extend(c.defresult.as_deref());
        }
        NodeEnum::CaseWhen(w) => {
            v.extend(w.expr.as_deref());
            v.extend(w.result.as_deref());
        }
        NodeEnum::CoalesceExpr(c) => v.extend(c.args.iter()),
        NodeEnum::MinMaxExpr(m) => v.extend(m.args.iter()),
        NodeEnum::NullTest(t) => v.extend(t.arg.as_deref()),
        NodeEnum::BooleanTest(t) => v.extend(t.arg.as_deref()),
        NodeEnum::List(l) => v.extend(l.items.iter()),
        NodeEnum::RowExpr(r) => v.extend(r.args.iter()),
        NodeEnum::AArrayExpr(a) => v.extend(a.elements.iter()),
        NodeEnum::ResTarget(r) => v.extend(r.val.as_deref()),
        NodeEnum::SortBy(s) => v.extend(s.node.as_deref()),
        NodeEnum::AIndirection(i) => v.extend(i.arg.as_deref()),
        NodeEnum::NamedArgExpr(a) => v.extend(a.arg.as_deref()),
        NodeEnum::GroupingSet(g) => v.extend(g.content.iter()),
        NodeEnum::SubLink(s) => v.extend(s.testexpr.as_deref()),
        _ => {}
    }
    v
}
