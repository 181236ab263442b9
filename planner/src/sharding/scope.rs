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
    /// On the nullable side of an outer join: its columns can be NULL-extended.
    pub nullable: bool,
}

pub struct Scope {
    pub parent: Option<usize>,
    /// Visible FROM names and the occurrence each one is (None: not distributed).
    items: Vec<(String, Option<usize>)>,
    /// Aggregates, GROUP BY, DISTINCT, LIMIT/OFFSET or window functions: its rows depend
    /// on seeing all rows of its tables.
    pub aggregated: bool,
    /// A set operation (UNION, INTERSECT, EXCEPT) or a VALUES list.
    pub setop: bool,
    /// A set operation's two operand queries (their scopes), and `Some(all)` when it is
    /// `UNION [ALL]` (None for INTERSECT/EXCEPT).
    pub branches: Vec<usize>,
    pub union_all: Option<bool>,
    /// Occurrences a real (not NULL-extended) row of which is part of every row of this
    /// query level's FROM (see `proof`).
    pub anchors: Vec<usize>,
}

/// A CTE: its query's scope and how many times a FROM clause names it.
pub struct Cte {
    pub name: String,
    /// The query level whose WITH defines it.
    pub owner: usize,
    pub scope: Option<usize>,
    pub uses: usize,
}

pub struct Walk<'a> {
    schema: &'a ShardingSchema,
    pub occs: Vec<Occ>,
    scopes: Vec<Scope>,
    pub edges: Vec<(usize, usize)>,
    pub constraints: Vec<(usize, Vec<KeyValue>)>,
    /// `(x, y)`: every row of occurrence `x` that can matter has the key of a row of `y`
    /// that can matter (an equality of the keys filters `x`'s rows; see `proof`).
    pub ties: Vec<(usize, usize)>,
    /// `(x, values)`: every row of `x` that can matter has its key among `values`.
    pub pins: Vec<(usize, Vec<KeyValue>)>,
    pub ctes: Vec<Cte>,
    /// Writes found (DML, also inside CTEs).
    pub writes: bool,
    /// A data-modifying statement inside WITH (allowed on one shard only).
    pub cte_writes: bool,
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
            ties: vec![],
            pins: vec![],
            ctes: vec![],
            writes: false,
            cte_writes: false,
            refuse: None,
        }
    }

    pub fn schema_table(&self, t: usize) -> &DistributedTable {
        &self.schema.tables[t]
    }

    pub fn scope(&self, s: usize) -> &Scope {
        &self.scopes[s]
    }

    pub fn scope_count(&self) -> usize {
        self.scopes.len()
    }

    /// Whether occurrence `o` lives in scope `s` or in a scope nested in it.
    pub fn within(&self, s: usize, o: usize) -> bool {
        let mut cur = Some(self.occs[o].scope);
        while let Some(c) = cur {
            if c == s {
                return true;
            }
            cur = self.scopes[c].parent;
        }
        false
    }

    pub(super) fn new_scope(&mut self, parent: Option<usize>) -> usize {
        self.scopes.push(Scope {
            parent,
            items: vec![],
            aggregated: false,
            setop: false,
            branches: vec![],
            union_all: None,
            anchors: vec![],
        });
        self.scopes.len() - 1
    }

    /// Occurrences of this scope's own FROM (those a WHERE of this scope filters).
    pub fn own_occs(&self, scope: usize) -> Vec<usize> {
        (0..self.occs.len())
            .filter(|&o| self.occs[o].scope == scope)
            .collect()
    }

    /// The anchors a query's rows carry when it is used as a FROM item: none when it
    /// aggregates (a group's rows may come from several shards) or is a set operation.
    fn anchors_of(&self, scope: usize) -> Vec<usize> {
        let s = &self.scopes[scope];
        if s.aggregated || s.setop {
            return vec![];
        }
        s.anchors.clone()
    }

    /// Adds anchors to a query level's FROM (a DML target, its USING/FROM items).
    pub fn anchor(&mut self, scope: usize, a: Vec<usize>) {
        self.scopes[scope].anchors.extend(a);
    }

    fn same_type(&self, x: usize, y: usize) -> bool {
        self.schema.tables[self.occs[x].table].ty == self.schema.tables[self.occs[y].table].ty
    }

    /// `x.k = y.k` filters the rows of the occurrences in `conf`.
    fn tie(&mut self, x: usize, y: usize, conf: &[usize]) {
        if x == y || !self.same_type(x, y) {
            return;
        }
        if conf.contains(&x) {
            self.ties.push((x, y));
        }
        if conf.contains(&y) {
            self.ties.push((y, x));
        }
    }

    pub(super) fn refuse(&mut self, msg: impl Into<String>) {
        self.refuse.get_or_insert(msg.into());
    }

    /// A query (SELECT or, in a CTE, DML). Returns its scope.
    pub fn query(&mut self, n: &Node, parent: Option<usize>, restricting: bool) -> Option<usize> {
        match inner(n)? {
            NodeEnum::SelectStmt(s) => Some(self.select(s, parent, restricting)),
            e @ (NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_)) => {
                self.cte_writes = true;
                self.dml(e, parent)
            }
            _ => None,
        }
    }

    pub fn select(&mut self, s: &SelectStmt, parent: Option<usize>, restricting: bool) -> usize {
        let scope = self.new_scope(parent);
        if let Some(w) = &s.with_clause {
            self.with_clause(w, scope);
        }
        let op = SetOperation::try_from(s.op);
        if !matches!(op, Ok(SetOperation::SetopNone) | Err(_)) {
            self.scopes[scope].setop = true;
            self.scopes[scope].union_all =
                matches!(op, Ok(SetOperation::SetopUnion)).then_some(s.all);
            for arg in [&s.larg, &s.rarg].into_iter().flatten() {
                let b = self.select(arg, Some(scope), restricting);
                self.scopes[scope].branches.push(b);
            }
            return scope;
        }
        if !s.values_lists.is_empty() {
            self.scopes[scope].setop = true;
            for v in &s.values_lists {
                self.sublinks(v, scope);
            }
        }
        for f in &s.from_clause {
            let a = self.from_item(f, scope, restricting, false);
            self.scopes[scope].anchors.extend(a);
        }
        if let Some(w) = s.where_clause.as_deref() {
            let conf = self.own_occs(scope);
            self.conds(w, scope, restricting, &conf);
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

    /// The CTEs of a WITH clause, visible in `scope` and the levels under it; in its
    /// own query only under WITH RECURSIVE (otherwise the name there is a table's).
    pub fn with_clause(&mut self, w: &pg_query::protobuf::WithClause, scope: usize) {
        for c in &w.ctes {
            if let Some(NodeEnum::CommonTableExpr(cte)) = inner(c) {
                let mut me = Cte {
                    name: cte.ctename.clone(),
                    owner: scope,
                    scope: None,
                    uses: 0,
                };
                if w.recursive {
                    let at = self.ctes.len();
                    self.ctes.push(me);
                    if let Some(q) = cte.ctequery.as_deref() {
                        self.ctes[at].scope = self.query(q, Some(scope), false);
                    }
                } else {
                    me.scope = cte
                        .ctequery
                        .as_deref()
                        .and_then(|q| self.query(q, Some(scope), false));
                    self.ctes.push(me);
                }
            }
        }
    }

    /// The CTE an unqualified name in `scope` means: the innermost one visible there.
    fn cte(&self, name: &str, scope: usize) -> Option<usize> {
        let mut s = Some(scope);
        while let Some(cur) = s {
            if let Some(c) = self
                .ctes
                .iter()
                .rposition(|c| c.owner == cur && c.name == name)
            {
                return Some(c);
            }
            s = self.scopes[cur].parent;
        }
        None
    }

    /// A table named by `rv` in a FROM clause of `scope` (a CTE's name included); a
    /// distributed one becomes a new occurrence. Returns the anchors it brings.
    pub fn relation(
        &mut self,
        rv: &pg_query::protobuf::RangeVar,
        scope: usize,
        nullable: bool,
    ) -> Vec<usize> {
        let visible = rv
            .alias
            .as_ref()
            .map(|a| a.aliasname.clone())
            .unwrap_or_else(|| rv.relname.clone());
        let cte = if rv.schemaname.is_empty() {
            self.cte(&rv.relname, scope)
        } else {
            None
        };
        let (occ, anchors) = match cte {
            Some(c) => {
                self.ctes[c].uses += 1;
                let a = self.ctes[c]
                    .scope
                    .map(|s| self.anchors_of(s))
                    .unwrap_or_default();
                (None, a)
            }
            None => match self.schema.table(&rv.schemaname, &rv.relname) {
                Some(table) => {
                    self.occs.push(Occ {
                        table,
                        scope,
                        nullable,
                    });
                    let o = self.occs.len() - 1;
                    (Some(o), vec![o])
                }
                None => (None, vec![]),
            },
        };
        self.scopes[scope].items.push((visible, occ));
        anchors
    }

    /// A FROM item of `scope`; returns its anchors: occurrences a real row of which is
    /// part of every row the item produces. `nullable`: the item is on the nullable side
    /// of an outer join.
    pub fn from_item(
        &mut self,
        n: &Node,
        scope: usize,
        restricting: bool,
        nullable: bool,
    ) -> Vec<usize> {
        match inner(n) {
            Some(NodeEnum::RangeVar(rv)) => self.relation(rv, scope, nullable),
            Some(NodeEnum::RangeSubselect(rs)) => {
                let sub = rs
                    .subquery
                    .as_deref()
                    .and_then(|q| self.query(q, Some(scope), false));
                let name = rs
                    .alias
                    .as_ref()
                    .map(|a| a.aliasname.clone())
                    .unwrap_or_default();
                self.scopes[scope].items.push((name, None));
                sub.map(|s| self.anchors_of(s)).unwrap_or_default()
            }
            Some(NodeEnum::JoinExpr(j)) => {
                let jt = JoinType::try_from(j.jointype);
                let inner_join = matches!(jt, Ok(JoinType::JoinInner));
                let (left_null, right_null) = match jt {
                    Ok(JoinType::JoinInner) => (false, false),
                    Ok(JoinType::JoinLeft) => (false, true),
                    Ok(JoinType::JoinRight) => (true, false),
                    _ => (true, true),
                };
                let before = self.scopes[scope].items.len();
                let o0 = self.occs.len();
                let la = match j.larg.as_deref() {
                    Some(l) => {
                        self.from_item(l, scope, restricting && inner_join, nullable || left_null)
                    }
                    None => vec![],
                };
                let mid = self.scopes[scope].items.len();
                let o1 = self.occs.len();
                let ra = match j.rarg.as_deref() {
                    Some(r) => {
                        self.from_item(r, scope, restricting && inner_join, nullable || right_null)
                    }
                    None => vec![],
                };
                let after = self.scopes[scope].items.len();
                let o2 = self.occs.len();
                // The ON clause filters the rows of each side the join does not preserve:
                // both of an inner join, the right of a LEFT, the left of a RIGHT join.
                let mut conf: Vec<usize> = vec![];
                if !right_null {
                    conf.extend(o0..o1);
                }
                if !left_null {
                    conf.extend(o1..o2);
                }
                conf.retain(|&o| self.occs[o].scope == scope);
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
                        self.tie(*l, *r, &conf);
                    }
                }
                if let Some(q) = j.quals.as_deref() {
                    self.conds(q, scope, restricting && inner_join, &conf);
                }
                match jt {
                    Ok(JoinType::JoinInner) => la.into_iter().chain(ra).collect(),
                    Ok(JoinType::JoinLeft) => la,
                    Ok(JoinType::JoinRight) => ra,
                    _ => vec![],
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
                vec![]
            }
            _ => vec![],
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

    fn constrain(&mut self, occ: usize, values: Vec<KeyValue>, restricting: bool, conf: &[usize]) {
        if conf.contains(&occ) {
            self.pins.push((occ, values.clone()));
        }
        if restricting {
            self.constraints.push((occ, values));
        }
    }

    /// A WHERE/ON condition of `scope`: its AND-conjuncts filter the rows of the
    /// occurrences in `conf` (see `proof`); `restricting`: they also restrict the
    /// statement's rows.
    pub fn conds(&mut self, n: &Node, scope: usize, restricting: bool, conf: &[usize]) {
        use pg_query::protobuf::{AExprKind, BoolExprType};
        match inner(n) {
            Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
                for a in &b.args {
                    self.conds(a, scope, restricting, conf);
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
                        (Some(x), Some(y)) => {
                            self.edges.push((x, y));
                            self.tie(x, y, conf);
                        }
                        (Some(x), None) => {
                            if let Some(v) = key_value(r) {
                                self.constrain(x, vec![v], restricting, conf);
                            }
                        }
                        (None, Some(y)) => {
                            if let Some(v) = key_value(l) {
                                self.constrain(y, vec![v], restricting, conf);
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
                        self.constrain(x, v, restricting, conf);
                    }
                }
                self.sublinks(l, scope);
                self.sublinks(r, scope);
            }
            Some(NodeEnum::NullTest(t)) if t.nulltesttype == 1 => {
                // IS NULL: a NULL key hashes to shard 0 in PostgreSQL's partitioning. Not
                // for a NULL-extended side of an outer join: its unmatched rows pass too.
                if let Some(x) = t.arg.as_deref().and_then(|a| self.key_column(a, scope)) {
                    if !self.occs[x].nullable {
                        self.constrain(x, vec![KeyValue::Null], restricting, conf);
                    }
                }
            }
            Some(NodeEnum::SubLink(s)) => {
                let kind = SubLinkType::try_from(s.sub_link_type);
                let any_eq = matches!(kind, Ok(SubLinkType::AnySublink))
                    && (s.oper_name.is_empty() || super::ast::func_name(&s.oper_name) == "=");
                let restricts =
                    restricting && (any_eq || matches!(kind, Ok(SubLinkType::ExistsSublink)));
                let Some(sub) = s.subselect.as_deref() else {
                    return;
                };
                let Some(sub_scope) = self.query(sub, Some(scope), restricts) else {
                    return;
                };
                let Some(t) = s.testexpr.as_deref() else {
                    return;
                };
                self.sublinks(t, scope);
                // `k IN (SELECT k2 FROM ...)` as a filter joins the two keys: only rows of
                // the subquery whose key equals `k` can make it true.
                if !any_eq {
                    return;
                }
                let (Some(x), Some(NodeEnum::SelectStmt(sel))) =
                    (self.key_column(t, scope), inner(sub))
                else {
                    return;
                };
                let [one] = sel.target_list.as_slice() else {
                    return;
                };
                let Some(NodeEnum::ResTarget(rt)) = inner(one) else {
                    return;
                };
                let Some(y) = rt
                    .val
                    .as_deref()
                    .and_then(|v| self.key_column(v, sub_scope))
                else {
                    return;
                };
                if self.occs[y].scope != sub_scope || self.scopes[sub_scope].aggregated {
                    return;
                }
                self.edges.push((x, y));
                if self.same_type(x, y) {
                    self.ties.push((y, x));
                    if conf.contains(&x) {
                        self.ties.push((x, y));
                    }
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
}
