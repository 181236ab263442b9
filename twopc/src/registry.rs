//! In-memory list of this router's two-phase transactions, for `SHOW TRANSACTIONS`.
//!
//! It is visibility only, never a source of truth: routers are stateless (SPEC §4) and
//! recovery reads the shards. A transaction is listed from its first PREPARE until it is
//! finished; one that ended with work left for the sweeper (in doubt, or a participant
//! whose COMMIT/ROLLBACK PREPARED failed) stays listed until a sweep of its pool finds none
//! of its gids prepared any more.
//!
//! Times are `tokio::time::Instant` (the std clock in production; the paused test clock
//! in tests).

use crate::phase::Phase;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// One row of `SHOW TRANSACTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInfo {
    pub id: u64,
    pub pool: String,
    /// The base gid (also the decision row's key).
    pub gid: String,
    pub phase: Phase,
    pub started: Instant,
    /// Written shards, ascending; the first is the coordinator.
    pub shards: Vec<usize>,
    pub coordinator: usize,
    /// Participant gids that may still be prepared and are left to the sweeper.
    pub pending: Vec<String>,
}

impl TxnInfo {
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// In doubt, or finished with prepared participants left for recovery.
    pub fn awaiting_recovery(&self) -> bool {
        self.phase == Phase::InDoubt || (self.phase.is_terminal() && !self.pending.is_empty())
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    /// By the router's own sequential ids: ordered, no hashing on the commit path.
    entries: Mutex<BTreeMap<u64, TxnInfo>>,
    next_id: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, TxnInfo>> {
        // A panic while holding the lock cannot leave a half-written entry behind.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every listed transaction, oldest first.
    pub fn snapshot(&self) -> Vec<TxnInfo> {
        let mut v: Vec<TxnInfo> = self.lock().values().cloned().collect();
        v.sort_by_key(|t| (t.started, t.id));
        v
    }

    /// Transactions still running the protocol.
    pub fn in_flight(&self) -> usize {
        self.lock()
            .values()
            .filter(|t| !t.phase.is_terminal())
            .count()
    }

    /// Transactions whose outcome or cleanup waits for the sweeper (the in-doubt gauge).
    pub fn awaiting_recovery(&self) -> usize {
        self.lock()
            .values()
            .filter(|t| t.awaiting_recovery())
            .count()
    }

    pub(crate) fn register(
        &self,
        pool: &str,
        gid: &str,
        shards: Vec<usize>,
        coordinator: usize,
    ) -> Tracked<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            TxnInfo {
                id,
                pool: pool.to_string(),
                gid: gid.to_string(),
                phase: Phase::Active,
                started: Instant::now(),
                shards,
                coordinator,
                pending: Vec::new(),
            },
        );
        Tracked {
            registry: self,
            id,
            phase: Phase::Active,
            finished: false,
        }
    }

    /// Ends tracking of a transaction whose [`Tracked`] was detached (its COMMIT
    /// PREPAREDs ran off the client's path, `unfinished.rs`): forgotten unless something
    /// is left for recovery.
    pub(crate) fn finish_id(&self, id: u64, phase: Phase, pending: Vec<String>) {
        let mut entries = self.lock();
        if pending.is_empty() {
            entries.remove(&id);
        } else if let Some(t) = entries.get_mut(&id) {
            t.phase = phase;
            t.pending = pending;
        }
    }

    /// After a sweep of `pool` that listed every shard at `listed_at`: forgets the
    /// transactions awaiting recovery that started before the listing and none of whose
    /// gids is still prepared. Returns how many were forgotten.
    pub fn reconcile(
        &self,
        pool: &str,
        listed_at: Instant,
        still_prepared: &HashSet<String>,
    ) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, t| {
            !(t.pool == pool
                && t.awaiting_recovery()
                && t.started <= listed_at
                && !still_prepared.contains(&t.gid))
        });
        before - entries.len()
    }
}

/// The registry entry of a running transaction. Dropped without [`Tracked::finish`] (the
/// commit future was abandoned or panicked) after anything was sent, it stays listed as
/// in doubt: its gids may be prepared on the shards.
#[derive(Debug)]
pub(crate) struct Tracked<'r> {
    registry: &'r Registry,
    id: u64,
    phase: Phase,
    finished: bool,
}

impl Tracked<'_> {
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn set_phase(&mut self, next: Phase) {
        debug_assert!(
            self.phase.can_go_to(next),
            "illegal 2PC transition {} -> {next}",
            self.phase
        );
        self.phase = next;
        if let Some(t) = self.registry.lock().get_mut(&self.id) {
            t.phase = next;
        }
    }

    /// Hands the entry over to [`Registry::finish_id`]: it stays listed in its current
    /// phase until then.
    pub(crate) fn detach(mut self) -> u64 {
        self.finished = true;
        self.id
    }

    /// Ends tracking: forgotten unless something is left for recovery.
    pub(crate) fn finish(mut self, pending: Vec<String>) {
        self.finished = true;
        let mut entries = self.registry.lock();
        if pending.is_empty() && self.phase != Phase::InDoubt {
            entries.remove(&self.id);
        } else if let Some(t) = entries.get_mut(&self.id) {
            t.phase = self.phase;
            t.pending = pending;
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut entries = self.registry.lock();
        if self.phase == Phase::Active {
            entries.remove(&self.id);
        } else if let Some(t) = entries.get_mut(&self.id) {
            t.phase = Phase::InDoubt;
            if let Ok(base) = crate::gid::parse_base(&t.gid) {
                t.pending = t
                    .shards
                    .iter()
                    .filter(|s| **s != t.coordinator)
                    .map(|s| base.participant(*s))
                    .collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_cleanly_is_forgotten_left_work_is_kept() {
        let r = Registry::default();
        let mut a = r.register("app", "orochi_i_1_c0", vec![0, 1], 0);
        a.set_phase(Phase::Preparing);
        assert_eq!(r.in_flight(), 1);
        assert_eq!(r.snapshot()[0].phase, Phase::Preparing);
        a.set_phase(Phase::Deciding);
        a.set_phase(Phase::Committing);
        a.set_phase(Phase::Committed);
        a.finish(vec![]);
        assert!(r.snapshot().is_empty());

        let mut b = r.register("app", "orochi_i_2_c0", vec![0, 1], 0);
        b.set_phase(Phase::Preparing);
        b.set_phase(Phase::Deciding);
        b.set_phase(Phase::Committing);
        b.set_phase(Phase::Committed);
        b.finish(vec!["orochi_i_2_c0_s1".into()]);
        let snap = r.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].pending, vec!["orochi_i_2_c0_s1".to_string()]);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.awaiting_recovery(), 1);
    }

    #[test]
    fn abandoned_mid_protocol_becomes_in_doubt() {
        let r = Registry::default();
        {
            let mut t = r.register("app", "orochi_i_5_c1", vec![1, 2, 3], 1);
            t.set_phase(Phase::Preparing);
        }
        let snap = r.snapshot();
        assert_eq!(snap[0].phase, Phase::InDoubt);
        assert_eq!(
            snap[0].pending,
            vec![
                "orochi_i_5_c1_s2".to_string(),
                "orochi_i_5_c1_s3".to_string()
            ]
        );
        // Never started: nothing to keep.
        drop(r.register("app", "orochi_i_6_c0", vec![0, 1], 0));
        assert_eq!(r.snapshot().len(), 1);
    }

    #[test]
    fn reconcile_forgets_only_resolved_older_entries_of_the_pool() {
        let r = Registry::default();
        for (pool, gid) in [
            ("app", "orochi_i_1_c0"),
            ("app", "orochi_i_2_c0"),
            ("other", "orochi_i_3_c0"),
        ] {
            let mut t = r.register(pool, gid, vec![0, 1], 0);
            t.set_phase(Phase::Preparing);
            t.set_phase(Phase::Deciding);
            t.set_phase(Phase::InDoubt);
            t.finish(vec![format!("{gid}_s1")]);
        }
        std::thread::sleep(Duration::from_millis(2));
        let listed_at = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        let mut late = r.register("app", "orochi_i_4_c0", vec![0, 1], 0);
        late.set_phase(Phase::Preparing);
        late.set_phase(Phase::Deciding);
        late.set_phase(Phase::InDoubt);
        late.finish(vec!["orochi_i_4_c0_s1".into()]);

        let still: HashSet<String> = ["orochi_i_2_c0".to_string()].into();
        assert_eq!(r.reconcile("app", listed_at, &still), 1);
        let left: Vec<String> = r.snapshot().into_iter().map(|t| t.gid).collect();
        assert_eq!(
            left,
            vec!["orochi_i_2_c0", "orochi_i_3_c0", "orochi_i_4_c0"]
        );
    }
}
