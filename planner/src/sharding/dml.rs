//! INSERT, UPDATE and DELETE in the walk (`scope`): as the statement itself, or inside
//! WITH. The target is an occurrence and an anchor of the statement's query level (its
//! RETURNING rows are its rows); `UPDATE ... FROM` and `DELETE ... USING` items join it
//! like a FROM list; the WHERE filters them. Inside WITH only a distributed target is
//! walked (a replicated table's copies must all change, and the statement runs on one
//! shard); an INSERT there is pinned by the keys of its VALUES rows, so `proof` can tell
//! whether the whole statement stays on one shard.

use super::ast::{inner, key_value};
use super::scope::Walk;
use pg_query::protobuf::{Node, WithClause};
use pg_query::NodeEnum;

/// The expressions of a RETURNING clause.
fn returning(r: &Option<pg_query::protobuf::ReturningClause>) -> &[Node] {
    r.as_ref().map_or(&[], |r| &r.exprs)
}

impl Walk<'_> {
    /// Walks a data-modifying statement; `parent`: the query level of the WITH it is
    /// in (`None`: the statement itself). Returns its query level.
    pub fn dml(&mut self, e: &NodeEnum, parent: Option<usize>) -> Option<usize> {
        let nested = parent.is_some();
        let top = self.new_scope(parent);
        self.writes = true;
        let (rv, with) = match e {
            NodeEnum::InsertStmt(i) => (i.relation.as_ref(), &i.with_clause),
            NodeEnum::UpdateStmt(u) => (u.relation.as_ref(), &u.with_clause),
            NodeEnum::DeleteStmt(d) => (d.relation.as_ref(), &d.with_clause),
            _ => return None,
        };
        self.with(with, top);
        let target = rv.and_then(|rv| {
            let a = self.relation(rv, top, false);
            self.anchor(top, a.clone());
            a.first().copied()
        });
        if nested && target.is_none() {
            self.refuse("a data-modifying statement on a replicated table inside WITH: every shard's copy must change, so it cannot share a statement with distributed tables; run it on its own");
        }
        match e {
            NodeEnum::InsertStmt(i) => {
                if let Some(sel) = i.select_stmt.as_deref() {
                    self.query(sel, Some(top), false);
                }
                if let (Some(o), true) = (target, nested) {
                    self.pin_insert(i, o);
                }
                for t in returning(&i.returning_clause) {
                    self.sublinks(t, top);
                }
            }
            NodeEnum::UpdateStmt(u) => {
                self.joined(&u.from_clause, u.where_clause.as_deref(), top, !nested);
                for t in u.target_list.iter().chain(returning(&u.returning_clause)) {
                    self.sublinks(t, top);
                }
            }
            NodeEnum::DeleteStmt(d) => {
                self.joined(&d.using_clause, d.where_clause.as_deref(), top, !nested);
                for t in returning(&d.returning_clause) {
                    self.sublinks(t, top);
                }
            }
            _ => {}
        }
        Some(top)
    }

    fn with(&mut self, w: &Option<WithClause>, top: usize) {
        if let Some(wc) = w {
            self.with_clause(wc, top);
        }
    }

    /// `UPDATE ... FROM` / `DELETE ... USING` items and the WHERE.
    fn joined(&mut self, items: &[Node], wh: Option<&Node>, top: usize, restricting: bool) {
        for f in items {
            let a = self.from_item(f, top, restricting, false);
            self.anchor(top, a);
        }
        if let Some(wh) = wh {
            let conf = self.own_occs(top);
            self.conds(wh, top, restricting, &conf);
        }
    }

    /// An INSERT inside WITH writes only the rows of its VALUES: the target is pinned to
    /// their keys when the column list names the key and every key is a value.
    fn pin_insert(&mut self, i: &pg_query::protobuf::InsertStmt, o: usize) {
        let key = &self.schema_table(self.occs[o].table).column;
        let Some(idx) = i
            .cols
            .iter()
            .position(|c| matches!(inner(c), Some(NodeEnum::ResTarget(r)) if &r.name == key))
        else {
            return;
        };
        let Some(NodeEnum::SelectStmt(s)) = i.select_stmt.as_deref().and_then(inner) else {
            return;
        };
        let keys: Option<Vec<_>> = s
            .values_lists
            .iter()
            .map(|r| match inner(r) {
                Some(NodeEnum::List(l)) => l.items.get(idx).and_then(key_value),
                _ => None,
            })
            .collect();
        if let Some(k) = keys.filter(|k| !k.is_empty()) {
            self.pins.push((o, k));
        }
    }
}
