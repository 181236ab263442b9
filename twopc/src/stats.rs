//! Counters the router exports to Prometheus (SPEC §6), as plain atomics: updating them
//! costs one relaxed add, and this crate needs no metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// Two-phase transactions that passed their commit point
    /// (`orochi_pgdog_2pc_commits_total`).
    pub commits: AtomicU64,
    /// Two-phase transactions rolled back (`orochi_pgdog_2pc_rollbacks_total`).
    pub rollbacks: AtomicU64,
    /// Two-phase transactions whose coordinator COMMIT went unanswered.
    pub in_doubt: AtomicU64,
    /// Prepared participants the sweeper committed.
    pub recovered_commits: AtomicU64,
    /// Prepared participants the sweeper rolled back.
    pub recovered_rollbacks: AtomicU64,
    /// Sweeps that ran (held the lock).
    pub sweeps: AtomicU64,
    /// Errors met by sweeps.
    pub sweep_errors: AtomicU64,
    /// Gauge: our prepared transactions still on the shards after the last sweep.
    pub prepared_pending: AtomicU64,
}

/// A consistent-enough copy for rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub commits: u64,
    pub rollbacks: u64,
    pub in_doubt: u64,
    pub recovered_commits: u64,
    pub recovered_rollbacks: u64,
    pub sweeps: u64,
    pub sweep_errors: u64,
    pub prepared_pending: u64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            commits: get(&self.commits),
            rollbacks: get(&self.rollbacks),
            in_doubt: get(&self.in_doubt),
            recovered_commits: get(&self.recovered_commits),
            recovered_rollbacks: get(&self.recovered_rollbacks),
            sweeps: get(&self.sweeps),
            sweep_errors: get(&self.sweep_errors),
            prepared_pending: get(&self.prepared_pending),
        }
    }
}
