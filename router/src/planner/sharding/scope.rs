//! Which distributed tables a statement reads or writes, which of them are joined on
//! their keys (co-located: they can be answered shard by shard), and which key values
//! restrict them.
//!
//! Every `FROM` occurrence of a distributed table is an *occurrence*; key equalities
//! (`a.k = b.k`, `IN (SELECT k ...)`, `JOIN ... USING (k)`) join occurrences into classes;
//! `k = v`, `k IN (...)`, `k = ANY(...)`, `k IS NULL` in a *restricting* position (an
//! AND-conjunct of the statement's WHERE, of an inner join's ON, or of an EXISTS/IN
//! subquery that itself sits in such a position) restrict a class to the shards of those
//! values. Constants anywhere else (under OR/NOT, in outer-join conditions, in scalar or
//! FROM subqueries) restrict nothing: using them could drop rows.
//!
//! Column names are resolved like PostgreSQL does: a qualified name by the innermost
//! `FROM` item of that name, an unqualified one only within the innermost query level
//! (anything else is left unresolved, which can only widen the route).

use super::ast::{any_values, column_ref, expr_children, has_aggregate, inner, key_value};
use super::route::KeyValue;
use super::schema::{DistributedTable, ShardingSchema};
use pg_query::protobuf::{JoinType, Node, SelectStmt, SetOperation, SubLinkType};
use pg_query::NodeEnum;

pub struct Occ {
    pub table: usize,
    pub scope: usize,
}

struct Scope {
    parent: Option<usize>,
    /// Visible FROM names and the occurrence each one is (None: not distributed).
    items: Vec<(String, Option<usize>)>,
    /// Aggregates, GROUP BY, DISTINCT, LIMIT/OFFSET or window functions: its rows depend
    /// on seeing all rows of its tables.
    aggregated: bool,
}

pub struct Walk<'a> {
    schema: &'a ShardingSchema,
    pub occs: Vec<Occ>,
    scopes: Vec<Scope>,
    pub edges: Vec<(usize, usize)>,
    pub constraints: Vec<(usize, Vec<KeyValue>)>,
    ctes: Vec<String>,
    /// Writes found (DML, also inside CTEs).
    pub writes: bool,
    /// Set when something cannot be routed at all.
    pub refuse: Option<String>,
}

impl<'a> Walk<'a> {
    pub fn new(schema: &'a ShardingSchema) -> Self {
        Walk {
            schema,
            occs: vec![],
            scopes: vec![],
            edges: vec![],
            constraints: vec![],
            ctes: vec![],
            writes: false,
            refuse: None,
        }
    }

    pub fn schema_table(&self, t: usize) -> &DistributedTable {
        &self.schema.tables[t]
    }

    fn new_scope(&mut self, parent: Option<usize>) -> usize {
        self.scopes.push(Scope {
            parent,
            items: vec![],
            aggregated: false,
        });
        self.scopes.len() - 1
    }

    fn refuse(&mut self, msg: impl Into<String>) {
        self.refuse.get_or_insert(msg.into());
    }

    /// A query (SELECT or, in a CTE, DML). Returns its scope.
    pub fn query(&mut self, n: &Node, parent: Option<usize>, restricting: bool) -> Option<usize> {
        match inner(n)? {
            NodeEnum::SelectStmt(s) => Some(self.select(s, parent, restricting)),
            NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) => {
                self.writes = true;
                self.refuse("a data-modifying statement inside WITH on a sharded pool");
                None
            }
            _ => None,
        }
    }

    pub fn select(&mut self, s: &SelectStmt, parent: Option<usize>, restricting: bool) -> usize {
        let scope = self.new_scope(parent);
        if let Some(w) = &s.with_clause {
            for c in &w.ctes {
                if let Some(NodeEnum::CommonTableExpr(cte)) = inner(c) {
                    self.ctes.push(cte.ctename.clone());
                    if let Some(q) = cte.ctequery.as_deref() {
                        self.query(q, Some(scope), false);
                    }
                }
            }
        }
        if !matches!(
            SetOperation::try_from(s.op),
            Ok(SetOperation::SetopNone) | Err(_)
        ) {
            if let Some(l) = &s.larg {
                self.select(l, Some(scope), restricting);
            }
            if let Some(r) = &s.rarg {
                self.select(r, Some(scope), restricting);
            }
            return scope;
        }
        if !s.values_lists.is_empty() {
            for v in &s.values_lists {
                self.sublinks(v, scope);
            }
        }
        for f in &s.from_clause {
            self.from_item(f, scope, restricting);
        }
        if let Some(w) = s.where_clause.as_deref() {
            self.conds(w, scope, restricting);
        }
        let mut aggregated = !s.group_clause.is_empty()
            || s.having_clause.is_some()
            || !s.distinct_clause.is_empty()
            || s.limit_count.is_some()
            || s.limit_offset.is_some();
        for t in s.target_list.iter().chain(s.sort_clause.iter()) {
            let (a, w) = has_aggregate(t);
            aggregated |= a || w;
            self.sublinks(t, scope);
        }
        for n in s.group_clause.iter().chain(s.having_clause.as_deref()) {
            self.sublinks(n, scope);
        }
        self.scopes[scope].aggregated = aggregated;
        scope
    }

    /// A distributed table named by `rv`, as a new occurrence visible in `scope`.
    pub fn relation(&mut self, rv: &pg_query::protobuf::RangeVar, scope: usize) -> Option<usize> {
        let visible = rv
            .alias
            .as_ref()
            .map(|a| a.aliasname.clone())
            .unwrap_or_else(|| rv.relname.clone());
        let occ = if rv.schemaname.is_empty() && self.ctes.contains(&rv.relname) {
            None
        } else {
            self.schema.table(&rv.schemaname, &rv.relname).map(|table| {
                self.occs.push(Occ { table, scope });
                self.occs.len() - 1
            })
        };
        self.scopes[scope].items.push((visible, occ));
        occ
    }

    pub fn from_item(&mut self, n: &Node, scope: usize, restricting: bool) {
        match inner(n) {
            Some(NodeEnum::RangeVar(rv)) => {
                self.relation(rv, scope);
            }
            Some(NodeEnum::RangeSubselect(rs)) => {
                if let Some(q) = rs.subquery.as_deref() {
                    self.query(q, Some(scope), false);
                }
                let name = rs
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                self.scopes[scope].items.push((name, None));
            }
            Some(NodeEnum::JoinExpr(j)) => {
                let inner_join = matches!(JoinType::try_from(j.jointype), Ok(JoinType::JoinInner));
                let before = self.scopes[scope].items.len();
                if let Some(l) = j.larg.as_deref() {
                    self.from_item(l, scope, restricting && inner_join);
                }
                let mid = self.scopes[scope].items.len();
                if let Some(r) = j.rarg.as_deref() {
                    self.from_item(r, scope, restricting && inner_join);
                }
                let after = self.scopes[scope].items.len();
                for u in &j.using_clause {
                    let Some(col) = super::ast::string(u) else {
                        continue;
                    };
                    let side = |w: &Self, range: std::ops::Range<usize>| -> Vec<usize> {
                        w.scopes[scope].items[range]
                            .iter()
                            .filter_map(|(_, o)| *o)
                            .filter(|&o| w.schema.tables[w.occs[o].table].column == col)
                            .collect()
                    };
                    let (l, r) = (side(self, before..mid), side(self, mid..after));
                    if let ([l], [r]) = (l.as_slice(), r.as_slice()) {
                        self.edges.push((*l, *r));
                    }
                }
                if let Some(q) = j.quals.as_deref() {
                    self.conds(q, scope, restricting && inner_join);
                }
            }
            Some(NodeEnum::RangeFunction(rf)) => {
                for f in &rf.functions {
                    self.sublinks(f, scope);
                }
                let name = rf
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                self.scopes[scope].items.push((name, None));
            }
            _ => {}
        }
    }

    /// The occurrence whose key column `n` names, if it is one.
    fn key_column(&self, n: &Node, scope: usize) -> Option<usize> {
        let parts = column_ref(n)?;
        let is_key = |o: usize, col: &str| self.schema.tables[self.occs[o].table].column == col;
        match parts.as_slice() {
            [col] => {
                let found: Vec<usize> = self.scopes[scope]
                    .items
                    .iter()
                    .filter_map(|(_, o)| *o)
                    .filter(|&o| is_key(o, col))
                    .collect();
                match found.as_slice() {
                    [o] => Some(*o),
                    _ => None,
                }
            }
            [.., qual, col] => {
                let mut s = Some(scope);
                while let Some(cur) = s {
                    if let Some((_, o)) =
                        self.scopes[cur].items.iter().rev().find(|(n, _)| n == qual)
                    {
                        return o.filter(|&o| is_key(o, col));
                    }
                    s = self.scopes[cur].parent;
                }
                None
            }
            _ => None,
        }
    }

    fn constrain(&mut self, occ: usize, values: Vec<KeyValue>, restricting: bool) {
        if restricting {
            self.constraints.push((occ, values));
        }
    }

    /// A WHERE/ON condition.
    pub fn conds(&mut self, n: &Node, scope: usize, restricting: bool) {
        use pg_query::protobuf::{AExprKind, BoolExprType};
        match inner(n) {
            Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
                for a in &b.args {
                    self.conds(a, scope, restricting);
                }
            }
            Some(NodeEnum::AExpr(a))
                if super::ast::func_name(&a.name) == "="
                    && (a.kind == AExprKind::AexprOp as i32
                        || a.kind == AExprKind::AexprIn as i32
                        || a.kind == AExprKind::AexprOpAny as i32) =>
            {
                let (Some(l), Some(r)) = (a.lexpr.as_deref(), a.rexpr.as_deref()) else {
                    return;
                };
                let (lk, rk) = (self.key_column(l, scope), self.key_column(r, scope));
                if a.kind == AExprKind::AexprOp as i32 {
                    match (lk, rk) {
                        (Some(x), Some(y)) => self.edges.push((x, y)),
                        (Some(x), None) => {
                            if let Some(v) = key_value(r) {
                                self.constrain(x, vec![v], restricting);
                            }
                        }
                        (None, Some(y)) => {
                            if let Some(v) = key_value(l) {
                                self.constrain(y, vec![v], restricting);
                            }
                        }
                        _ => {}
                    }
                } else if let Some(x) = lk {
                    let values = if a.kind == AExprKind::AexprIn as i32 {
                        match inner(r) {
                            Some(NodeEnum::List(list)) => {
                                list.items.iter().map(key_value).collect::<Option<Vec<_>>>()
                            }
                            _ => None,
                        }
                    } else {
                        any_values(r)
                    };
                    if let Some(v) = values {
                        self.constrain(x, v, restricting);
                    }
                }
                self.sublinks(l, scope);
                self.sublinks(r, scope);
            }
            Some(NodeEnum::NullTest(t)) if t.nulltesttype == 1 => {
                // IS NULL: a NULL key hashes to shard 0 in PostgreSQL's partitioning.
                if let Some(x) = t.arg.as_deref().and_then(|a| self.key_column(a, scope)) {
                    self.constrain(x, vec![KeyValue::Null], restricting);
                }
            }
            Some(NodeEnum::SubLink(s)) => {
                let kind = SubLinkType::try_from(s.sub_link_type);
                let restricts = restricting
                    && matches!(
                        kind,
                        Ok(SubLinkType::ExistsSublink | SubLinkType::AnySublink)
                    )
                    && (s.oper_name.is_empty() || super::ast::func_name(&s.oper_name) == "=");
                let Some(sub) = s.subselect.as_deref() else {
                    return;
                };
                let Some(sub_scope) = self.query(sub, Some(scope), restricts) else {
                    return;
                };
                if let (true, Some(t)) = (restricts, s.testexpr.as_deref()) {
                    self.sublinks(t, scope);
                    // `k IN (SELECT k2 FROM ...)` joins the two keys.
                    if let (Some(x), Some(NodeEnum::SelectStmt(sel))) =
                        (self.key_column(t, scope), inner(sub))
                    {
                        if let [one] = sel.target_list.as_slice() {
                            if let Some(NodeEnum::ResTarget(rt)) = inner(one) {
                                if let Some(y) = rt
                                    .val
                                    .as_deref()
                                    .and_then(|v| self.key_column(v, sub_scope))
                                {
                                    self.edges.push((x, y));
                                }
                            }
                        }
                    }
                } else if let Some(t) = s.testexpr.as_deref() {
                    self.sublinks(t, scope);
                }
            }
            Some(_) => self.sublinks(n, scope),
            None => {}
        }
    }

    /// Subqueries anywhere inside an expression: walked, restricting nothing.
    pub fn sublinks(&mut self, n: &Node, scope: usize) {
        let Some(e) = inner(n) else { return };
        if let NodeEnum::SubLink(s) = e {
            if let Some(sub) = s.subselect.as_deref() {
                self.query(sub, Some(scope), false);
            }
        }
        for c in expr_children(e) {
            self.sublinks(c, scope);
        }
    }

    /// Scopes (other than `top`) whose rows depend on all rows of their distributed
    /// tables, with the occurrences under them (their own and nested ones).
    pub fn aggregated_scopes(&self, top: usize) -> Vec<Vec<usize>> {
        let under = |s: usize, o: usize| {
            let mut cur = Some(self.occs[o].scope);
            while let Some(c) = cur {
                if c == s {
                    return true;
                }
                cur = self.scopes[c].parent;
            }
            false
        };
        (0..self.scopes.len())
            .filter(|&s| s != top && self.scopes[s].aggregated)
            .map(|s| (0..self.occs.len()).filter(|&o| under(s, o)).collect())
            .filter(|v: &Vec<usize>| !v.is_empty())
            .collect()
    }
}
