//! [`TwoPc`]: the per-router-instance handle the router keeps in an `Arc`.
//!
//! It owns what must be shared by every commit and sweep of one process: the gid
//! sequence (shared across pools, since several pools' shards may live in one PostgreSQL
//! cluster and gids are unique per cluster), the registry, the counters, the fault points
//! and the (reloadable) timeout. It holds no connection and no durable state.

use crate::faults::Faults;
use crate::gid::{random_instance_id, GidGenerator};
use crate::registry::Registry;
use crate::stats::Stats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Settings of one router instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Part of every gid; must differ between router instances sharing shards.
    pub instance_id: String,
    /// `timeout_seconds`: each protocol step's deadline, the budget to reach the commit
    /// point, and the age after which the sweeper resolves a prepared transaction.
    pub timeout: Duration,
}

impl Settings {
    pub fn new(instance_id: impl Into<String>, timeout: Duration) -> Self {
        Settings {
            instance_id: instance_id.into(),
            timeout,
        }
    }

    /// From `[general] instance_id` (random when unset) and `[sharding.two_phase_commit]`.
    pub fn from_config(instance_id: Option<&str>, tpc: &orochi_config::TwoPhaseCommit) -> Self {
        let id = instance_id
            .map(str::to_string)
            .unwrap_or_else(random_instance_id);
        Settings::new(id, tpc.timeout)
    }
}

#[derive(Debug)]
pub struct TwoPc {
    pub(crate) gids: GidGenerator,
    timeout_ms: AtomicU64,
    pub(crate) registry: Registry,
    pub(crate) stats: Stats,
    pub(crate) faults: Faults,
    /// Per pool: sweeps in a row that found the advisory lock taken.
    lock_misses: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl TwoPc {
    /// Fault points armed from `OROCHI_2PC_FAULT`, if set.
    pub fn new(settings: Settings) -> Self {
        Self::with_faults(settings, Faults::from_env())
    }

    pub fn with_faults(settings: Settings, faults: Faults) -> Self {
        Self::with_generator(GidGenerator::new(&settings.instance_id), settings, faults)
    }

    /// With a fixed gid sequence start (tests).
    pub fn with_generator(gids: GidGenerator, settings: Settings, faults: Faults) -> Self {
        TwoPc {
            gids,
            timeout_ms: AtomicU64::new(duration_ms(settings.timeout)),
            registry: Registry::default(),
            lock_misses: Default::default(),
            stats: Stats::default(),
            faults,
        }
    }

    pub fn instance_id(&self) -> &str {
        self.gids.instance()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    /// On config reload; applies to commits and sweeps that start afterwards.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms
            .store(duration_ms(timeout), Ordering::Relaxed);
    }

    /// How long decision rows are kept after no shard needs them any more: twice the
    /// timeout, so a coordinator that was fenced (its decision row says abort) can never
    /// find the row gone and write `commit` in its place — it gives up at its own
    /// deadline, one timeout after preparing, long before the row may be collected —
    /// and never less than the floor `orochi.forget_decisions` enforces. (Asking for
    /// younger rows made every sweep list up to 15 minutes of decisions that the
    /// function then refused to delete: the soak saw the router's memory grow with them.)
    pub fn decision_retention(&self) -> Duration {
        (self.timeout() * 2).max(Duration::from_secs(crate::setup::FORGET_FLOOR_SECS.into()))
    }

    /// Records whether `pool`'s sweep missed the lock; returns the current streak.
    pub(crate) fn lock_misses(&self, pool: &str, missed: bool) -> u32 {
        let mut m = self.lock_misses.lock().unwrap_or_else(|e| e.into_inner());
        if !missed {
            m.remove(pool);
            return 0;
        }
        let n = m.entry(pool.to_string()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tpc(timeout_s: u64) -> orochi_config::TwoPhaseCommit {
        orochi_config::TwoPhaseCommit {
            enabled: true,
            timeout: Duration::from_secs(timeout_s),
            cleanup_interval: Duration::from_secs(60),
            best_effort: false,
        }
    }

    #[test]
    fn settings_from_config() {
        let s = Settings::from_config(Some("eu_1"), &tpc(12));
        assert_eq!(s, Settings::new("eu_1", Duration::from_secs(12)));
        let r = Settings::from_config(None, &tpc(30));
        assert_eq!(r.instance_id.len(), 8);
        assert_ne!(
            r.instance_id,
            Settings::from_config(None, &tpc(30)).instance_id
        );
    }

    #[test]
    fn timeout_is_reloadable_and_sets_the_retention() {
        let t = TwoPc::with_faults(Settings::new("i", Duration::from_secs(30)), Faults::off());
        assert_eq!(t.instance_id(), "i");
        // Twice the timeout, but never below the function's 15-minute floor.
        assert_eq!(t.decision_retention(), Duration::from_secs(900));
        t.set_timeout(Duration::from_secs(5));
        assert_eq!(t.timeout(), Duration::from_secs(5));
        assert_eq!(t.decision_retention(), Duration::from_secs(900));
        t.set_timeout(Duration::from_secs(600));
        assert_eq!(t.decision_retention(), Duration::from_secs(1200));
    }
}
