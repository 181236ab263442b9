//! The proof a statement is answered exactly: either shard by shard (a fan-out whose
//! rows are concatenated or merged), or on one shard.
//!
//! Why a proof and not a list of refused shapes: a fan-out is only right when every row
//! of the answer is made on exactly one shard, from that shard's rows of a distributed
//! table, and every other distributed row it needs lives on that same shard. A shape the
//! rules below do not prove is refused (0A000), so a new SQL construct can cost a
//! refusal, never a wrong answer. `SELECT EXISTS (SELECT 1 FROM t ...)`, `SELECT k FROM r
//! WHERE k IN (SELECT v FROM t)` or a replicated table left-joined to a distributed one
//! read `t` only under a sublink or on a NULL-extended side: shard by shard, every shard
//! would answer for its own rows of `t` and the client would get one answer per shard.
//!
//! The facts come from the walk (`scope`), per occurrence of a distributed table:
//!
//! - **anchor**: an occurrence a real (not NULL-extended) row of which is part of every
//!   row of a query level's FROM. A table is its own anchor; an inner join or a FROM list
//!   has the anchors of all its items; a LEFT JOIN those of its left side, a RIGHT JOIN
//!   those of its right side, a FULL JOIN none; a subquery or CTE in FROM those of its
//!   query unless it aggregates (GROUP BY, aggregates, DISTINCT, LIMIT/OFFSET, window)
//!   or is a set operation or VALUES. A replicated table, a function, no FROM: none.
//! - **tie** `x → y`: an equality of the keys `x.k = y.k` filters the rows of `x`: it is
//!   an AND-conjunct of the WHERE of `x`'s own query level, or of an ON that filters
//!   `x`'s side (inner join: both sides; LEFT: the right; RIGHT: the left), or `x` is the
//!   subquery side of `k IN (SELECT x.k ...)` used as a filter. Every row of `x` that can
//!   matter then has the key of a row of `y`, so it is on that row's shard. Ties need
//!   equal key types (equal hashing).
//! - **pin** `x ∈ V`: `x.k = v`, `x.k IN (...)`, `x.k = ANY(...)`, `x.k IS NULL` (not on
//!   a NULL-extended side) in such a filtering position: every row of `x` that can matter
//!   is on the shards of `V`. A tie to a pinned occurrence pins.
//!
//! The rules:
//!
//! 1. **Fan-out** (rows made shard by shard, then merged by the top level's merge plan):
//!    some anchor `A` of the statement's top level carries every occurrence, where `A`
//!    carries itself and whatever is tied to an occurrence it carries; and no CTE holding
//!    a distributed table is named twice (each use would pair rows of one shard only).
//!    Every answer row then has exactly one row of `A`, on one shard, and every other
//!    distributed row it depends on is on that shard.
//!    A top level that is `UNION [ALL]` (every set operation of its tree one of them,
//!    each operand a plain query: no aggregates, DISTINCT, LIMIT or window) takes the
//!    rule branch by branch: every branch has an anchor carrying every occurrence
//!    inside it, and together they carry every occurrence. Every answer row then comes
//!    from one branch, on one shard, so the shards' answers are concatenated (`UNION`:
//!    and made distinct by the router, as each shard makes its own).
//! 2. **One shard**: otherwise, when every occurrence is pinned and the pins land on one
//!    shard (checked at Bind, `Routing::SameShard`): that shard holds every distributed row
//!    that can matter.
//! 3. A data-modifying statement inside WITH changes rows whatever the answer rows are:
//!    such a statement takes rule 2 only.
//! 4. Anything else is refused, naming the table and a rewrite.

use super::route::{KeySet, KeyValue};
use super::scope::Walk;

/// What the rules prove about one statement.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No distributed table: any shard answers.
    NoTables,
    /// Rule 1: shard by shard, merged; on the shards of these keys when the anchor is
    /// pinned (every answer row has a row of it, so other shards have none).
    FanOut(Option<KeySet>),
    /// Rule 1 for a top-level `UNION [ALL]`, branch by branch; on the shards of these
    /// keys when every branch's anchor is pinned.
    Concat(Option<KeySet>),
    /// Rule 2: the one shard these key sets all land on.
    OneShard(Vec<KeySet>),
    /// Neither: why, for the 0A000 message.
    Refuse(String),
}

/// The verdict for a walked statement whose top query level is `top`.
pub fn prove(w: &Walk<'_>, top: usize) -> Verdict {
    let n = w.occs.len();
    if n == 0 {
        return Verdict::NoTables;
    }
    if w.cte_writes {
        // A data-modifying CTE changes rows whatever the outer query returns: only
        // rule 2 keeps every row it changes on the shard the statement runs on.
        return match pinned(w) {
            Some(sets) => Verdict::OneShard(sets),
            None => Verdict::Refuse("a data-modifying statement inside WITH whose keys do not name one shard: restrict every table of the statement to one shard key (WHERE key = ..., or the key in an INSERT's VALUES), or run the statements one by one".into()),
        };
    }
    let shared_cte = w
        .ctes
        .iter()
        .any(|c| c.uses > 1 && c.scope.is_some_and(|s| (0..n).any(|o| w.within(s, o))));
    if !shared_cte {
        if let Some(v) = union_of_fanouts(w, top) {
            return v;
        }
    }
    let anchors = &w.scope(top).anchors;
    let mut best: Option<Vec<bool>> = None;
    if !shared_cte {
        for &a in anchors {
            let carried = closure(w, |o| o == a);
            if carried.iter().all(|&c| c) {
                let pin = pins(w)[a].map(|v| KeySet {
                    ty: w.schema_table(w.occs[a].table).ty,
                    values: v.clone(),
                });
                return Verdict::FanOut(pin);
            }
            if best.as_ref().is_none_or(|b| count(b) < count(&carried)) {
                best = Some(carried);
            }
        }
    }
    if let Some(sets) = pinned(w) {
        return Verdict::OneShard(sets);
    }
    let name = |o: usize| format!("\"{}\"", w.schema_table(w.occs[o].table).name);
    if shared_cte {
        return Verdict::Refuse("a CTE over a distributed table used more than once: each use would only be paired with rows of the same shard; restrict the CTE to one shard key, or write the CTE once".into());
    }
    match best {
        None => {
            let t = name(0);
            Verdict::Refuse(format!("the distributed table {t} is read only inside a subquery, a CTE or the NULL-extended side of an outer join, while the rows of the statement come from a replicated table or from no table: each shard would answer with only its own rows of {t}; restrict {t} to one shard key (WHERE key = ...), or run the subquery on its own first and pass its result as a value"))
        }
        Some(carried) => {
            let a = carried.iter().position(|&c| c).unwrap_or(0);
            let b = carried.iter().position(|&c| !c).unwrap_or(0);
            Verdict::Refuse(format!(
                "the statement combines distributed tables {} and {} without joining them on their shard keys; join them on the key columns (a.key = b.key), or restrict each to one key value",
                name(a),
                name(b)
            ))
        }
    }
}

/// Rule 1 branch by branch, when `top` is a tree of `UNION [ALL]` over plain queries.
fn union_of_fanouts(w: &Walk<'_>, top: usize) -> Option<Verdict> {
    let mut leaves = Vec::new();
    let mut stack = vec![top];
    while let Some(s) = stack.pop() {
        let sc = w.scope(s);
        if sc.branches.is_empty() {
            leaves.push(s);
        } else {
            sc.union_all?;
            stack.extend(&sc.branches);
        }
    }
    if leaves.len() < 2 {
        return None;
    }
    let n = w.occs.len();
    let all_pins = pins(w);
    let mut covered = vec![false; n];
    let mut pin: Option<KeySet> = None;
    let mut pinned = true;
    for b in leaves {
        let sc = w.scope(b);
        if sc.aggregated || sc.setop {
            return None;
        }
        let (a, carried) = sc.anchors.iter().find_map(|&a| {
            let c = closure(w, |o| o == a);
            (0..n).all(|o| !w.within(b, o) || c[o]).then_some((a, c))
        })?;
        covered.iter_mut().zip(&carried).for_each(|(x, &c)| *x |= c);
        let ty = w.schema_table(w.occs[a].table).ty;
        match (all_pins[a], pin.as_mut()) {
            (Some(v), None) if pinned => {
                pin = Some(KeySet {
                    ty,
                    values: v.clone(),
                })
            }
            (Some(v), Some(ks)) if ks.ty == ty => ks.values.extend(v.iter().cloned()),
            _ => pinned = false,
        }
    }
    covered
        .iter()
        .all(|&c| c)
        .then(|| Verdict::Concat(pin.filter(|_| pinned)))
}

fn count(v: &[bool]) -> usize {
    v.iter().filter(|&&c| c).count()
}

/// Occurrences carried by the seeds: the seeds, and whatever is tied to a carried one.
fn closure(w: &Walk<'_>, seed: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut c: Vec<bool> = (0..w.occs.len()).map(seed).collect();
    loop {
        let mut changed = false;
        for &(x, y) in &w.ties {
            if c[y] && !c[x] {
                c[x] = true;
                changed = true;
            }
        }
        if !changed {
            return c;
        }
    }
}

/// The key sets pinning every occurrence, if each one is pinned.
fn pinned(w: &Walk<'_>) -> Option<Vec<KeySet>> {
    let mut sets: Vec<KeySet> = Vec::new();
    for (o, p) in pins(w).into_iter().enumerate() {
        let ks = KeySet {
            ty: w.schema_table(w.occs[o].table).ty,
            values: p?.clone(),
        };
        if !sets.contains(&ks) {
            sets.push(ks);
        }
    }
    Some(sets)
}

/// The pin of every occurrence (its own, or through ties), if it has one.
fn pins<'w>(w: &'w Walk<'_>) -> Vec<Option<&'w Vec<KeyValue>>> {
    let n = w.occs.len();
    let mut pin: Vec<Option<&Vec<KeyValue>>> = vec![None; n];
    for (o, v) in &w.pins {
        if pin[*o].is_none_or(|cur| v.len() < cur.len()) {
            pin[*o] = Some(v);
        }
    }
    loop {
        let mut changed = false;
        for &(x, y) in &w.ties {
            if pin[x].is_none() && pin[y].is_some() {
                pin[x] = pin[y];
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    pin
}
