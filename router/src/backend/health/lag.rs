//! The primary's WAL position over time, from which replica lag is read (see the
//! `health` module doc for why lag is measured this way).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples of the primary's position kept for lag measurement (deduplicated: an idle
/// primary adds none). At 200 ms rounds, over three minutes of steady writing.
const HISTORY_CAP: usize = 1024;

/// The primary's WAL position over time, for lag (see the module doc).
#[derive(Debug, Default)]
pub struct LsnHistory {
    /// (first seen, position), positions strictly increasing.
    samples: VecDeque<(Instant, u64)>,
}

impl LsnHistory {
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The primary was at `lsn` at `at`. Unchanged positions are not recorded: a sample's
    /// time is when the primary was first seen there.
    pub fn record(&mut self, at: Instant, lsn: u64) {
        if self.samples.back().is_some_and(|&(_, l)| l >= lsn) {
            return;
        }
        if self.samples.len() == HISTORY_CAP {
            self.samples.pop_front();
        }
        self.samples.push_back((at, lsn));
    }

    /// Lag of a replica that has replayed up to `replayed`: the time since the primary
    /// was first seen past it; zero when it is not behind. `None` without samples.
    pub fn lag(&self, replayed: u64, now: Instant) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        Some(
            self.samples
                .iter()
                .find(|&&(_, l)| l > replayed)
                .map_or(Duration::ZERO, |&(t, _)| now.saturating_duration_since(t)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_time_since_the_primary_passed_the_replica() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut h = LsnHistory::default();
        assert_eq!(h.lag(5, t0), None);
        h.record(at(0), 100);
        h.record(at(100), 100); // idle primary: not a new sample
        h.record(at(200), 150);
        h.record(at(300), 120); // never backwards
        assert_eq!(h.lag(100, at(1000)), Some(Duration::from_millis(800)));
        assert_eq!(h.lag(99, at(1000)), Some(Duration::from_millis(1000)));
        assert_eq!(h.lag(150, at(1000)), Some(Duration::ZERO));
        assert_eq!(h.lag(400, at(1000)), Some(Duration::ZERO));
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut h = LsnHistory::default();
        for i in 0..(HISTORY_CAP as u64 + 10) {
            h.record(t0 + Duration::from_millis(i), i + 1);
        }
        assert_eq!(h.samples.len(), HISTORY_CAP);
        // Behind the oldest sample: at least as old as that sample.
        assert_eq!(
            h.lag(0, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(10) - Duration::from_millis(10))
        );
    }
}
