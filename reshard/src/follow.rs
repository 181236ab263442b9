//! How a router that was not listed in `cutover --router` (or was restarted with the old
//! configuration) finds the map that serves its pool: it reads `orochi.reshard` on its
//! own shard 0 and switches itself (SPEC §10: "it follows the new map recorded on the
//! shards"). Without this it would keep reading the old shards after a cutover: its
//! writes are refused by the fence, but its reads would be stale.
//!
//! The router runs [`probe_sql`] (a table-free check, so pools that were never resharded
//! log no errors on their servers) and, when the state table exists, [`state_sql`]; it
//! hands the rows to [`decide`]. The decision is here, next to the phases and the fence
//! it relies on, so the router only wires it.
//!
//! **When a side is left.** A row says which side its shard is on and the phase. The
//! router moves only when its side is *fenced* and the phase says the other side serves
//! (`cutover`/`completed` for old shards; `copying`, `caught_up`, `reversed` or
//! `cancelled` for new ones, which `start` fences until the cutover and `cancel` leaves
//! fenced). Both must hold: the
//! tool unfences the side it moves to and switches the listed routers before recording
//! the phase, so during a cutover or a reverse a listed, already switched router sees an
//! unfenced side with the previous phase and stays; an unlisted one sees its side fenced
//! and follows once the phase is recorded. A cutover that aborts never records its phase.
//!
//! **At once, not at the next poll.** The tool notifies [`CHANNEL`] on the side it left
//! once the phase is recorded and, before it resumes the listed routers, waits until no
//! session named [`APPLICATION_NAME`] is connected there (each follower either switched,
//! or was switched by the tool and moved to its new shard 0): no router that is
//! following reads the old side once the listed ones write on the new one.

use crate::quote::lit;
use crate::state::Phase;
use crate::topology::{ShardSpec, Spec};

/// The channel a router's follower listens on (on its pool's shard 0) and the tool
/// notifies once it recorded a cutover or a reverse: followers look at once.
pub const CHANNEL: &str = "orochi_reshard";

/// The `application_name` of a follower's session: the tool waits until no session of
/// that name is connected to the side it left before it resumes the listed routers.
pub const APPLICATION_NAME: &str = "orochi-router reshard follow";

/// Whether the state table exists on this shard (one boolean, never an error).
pub const PROBE_SQL: &str = "SELECT to_regclass('orochi.reshard') IS NOT NULL";

/// Every reshard of `pool` recorded on this shard, newest first: id, side, phase, spec,
/// and whether this shard carries the reshard's fence.
pub fn state_sql(pool: &str) -> String {
    format!(
        "SELECT r.id, r.side, r.phase, r.spec::text,
                EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                        WHERE t.tgname = 'orochi_rs_' || r.id || '_fence')::text
         FROM orochi.reshard r WHERE r.pool = {} ORDER BY r.updated_at DESC",
        lit(pool)
    )
}

/// Where a router must go: the reshard that moved the pool and the serving map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub id: String,
    pub phase: &'static str,
    pub shards: Vec<ShardSpec>,
    /// The map as `RESHARD SWITCH` takes it.
    pub map_json: String,
}

/// From the rows of [`state_sql`] (text columns, as a simple query returns them) and the
/// databases of the router's current map: the map to switch to, if this router's side
/// no longer serves.
pub fn decide(rows: &[Vec<Option<String>>], current: &[String]) -> Option<Follow> {
    for r in rows {
        let col = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
        let (side, fenced) = (col(1), col(4) == "true");
        let Some(phase) = Phase::parse(&col(2)) else {
            continue;
        };
        let Ok(spec) = serde_json::from_str::<Spec>(&col(3)) else {
            continue;
        };
        let (mine, serving) = match (side.as_str(), phase) {
            ("old", Phase::CutOver | Phase::Completed) => (&spec.old, &spec.new),
            // Before the first cutover (the new side fenced since `start`), after a
            // reverse, or after a cancel: a router started with TARGET.toml goes to the
            // old shards.
            ("new", Phase::Copying | Phase::CaughtUp | Phase::Reversed | Phase::Cancelled) => {
                (&spec.new, &spec.old)
            }
            _ => continue,
        };
        let names: Vec<&String> = mine.iter().map(|s| &s.database).collect();
        if !fenced || names != current.iter().collect::<Vec<_>>() {
            continue;
        }
        let map_json = serde_json::to_string(serving).ok()?;
        return Some(Follow {
            id: spec.id.clone(),
            phase: phase.as_str(),
            shards: serving.clone(),
            map_json,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        let s = |d: &str| ShardSpec {
            database: d.into(),
            servers: vec![("h".into(), 5432, "primary".into())],
        };
        Spec {
            id: "abcd0123".into(),
            pool: "app".into(),
            old: vec![s("o0"), s("o1")],
            new: vec![s("n0"), s("n1"), s("n2")],
            tables: vec![],
        }
    }

    fn row(side: &str, phase: &str, fenced: bool) -> Vec<Option<String>> {
        vec![
            Some("abcd0123".into()),
            Some(side.into()),
            Some(phase.into()),
            Some(serde_json::to_string(&spec()).unwrap()),
            Some(fenced.to_string()),
        ]
    }

    #[test]
    fn a_fenced_old_side_follows_the_recorded_phase_and_nothing_else_moves() {
        let old = vec!["o0".to_string(), "o1".to_string()];
        let new = vec!["n0".to_string(), "n1".to_string(), "n2".to_string()];
        let f = decide(&[row("old", "cutover", true)], &old).unwrap();
        assert_eq!(f.shards, spec().new);
        assert!(f.map_json.contains("\"n2\""));
        assert!(decide(&[row("old", "completed", true)], &old).is_some());
        let back = decide(&[row("new", "reversed", true)], &new).unwrap();
        assert_eq!(back.shards, spec().old);
        // Started with the target map before the cutover or after a cancel: back to
        // the old shards.
        for phase in ["copying", "caught_up", "cancelled"] {
            let f = decide(&[row("new", phase, true)], &new).unwrap();
            assert_eq!(f.shards, spec().old);
        }
        // Mid-cutover (switched, phase not yet recorded) and mid-reverse: unfenced, stay.
        assert_eq!(decide(&[row("new", "caught_up", false)], &new), None);
        assert_eq!(decide(&[row("old", "cutover", false)], &old), None);
        // Before a cutover, after a cancel, or a map that is not this side: stay.
        assert_eq!(decide(&[row("old", "caught_up", true)], &old), None);
        assert_eq!(decide(&[row("old", "cancelled", false)], &old), None);
        assert_eq!(decide(&[row("old", "cutover", true)], &new), None);
        assert_eq!(decide(&[vec![None; 5]], &old), None);
    }
}
