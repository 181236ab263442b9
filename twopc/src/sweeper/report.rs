//! What one sweep did, for the caller's logs, tests and metrics.

use crate::error::TwoPcError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// This instance held the advisory lock and swept. `false` with no errors: another
    /// instance is sweeping.
    pub locked: bool,
    /// Sweeps in a row, this one included, that found the lock held by another session
    /// (0 when this sweep got it).
    pub lock_unavailable_streak: u32,
    /// Participant gids committed (`COMMIT PREPARED`) by this sweep.
    pub committed: Vec<String>,
    /// Participant gids rolled back (`ROLLBACK PREPARED`) by this sweep.
    pub rolled_back: Vec<String>,
    /// Gids that were gone when resolved (42704): someone else finished them.
    pub already_resolved: Vec<String>,
    /// Old gids that could not be resolved this time (see `errors`).
    pub in_doubt: Vec<String>,
    /// Prepared transactions left alone because they are younger than the timeout.
    pub young: usize,
    /// `orochi_` names that are not gids of ours; never touched.
    pub ignored: Vec<String>,
    /// Decision rows garbage-collected.
    pub decisions_deleted: u64,
    pub errors: Vec<TwoPcError>,
}

impl SweepReport {
    /// Whether the sweep changed anything or met a problem (worth an info log line).
    pub fn is_eventful(&self) -> bool {
        !(self.committed.is_empty()
            && self.rolled_back.is_empty()
            && self.already_resolved.is_empty()
            && self.in_doubt.is_empty()
            && self.errors.is_empty()
            && self.decisions_deleted == 0)
    }
}
