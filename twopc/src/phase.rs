//! The phases of one two-phase transaction, and which transitions are legal.
//!
//! The coordinator moves through them in order and records each step in the registry,
//! so `SHOW TRANSACTIONS` shows exactly where a transaction is (or was, when it died).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Registered; nothing sent yet.
    Active,
    /// PREPARE TRANSACTION sent to the non-coordinator written shards.
    Preparing,
    /// Decision INSERT and COMMIT on the coordinator: the commit point.
    Deciding,
    /// Past the commit point; COMMIT PREPARED on the others.
    Committing,
    Committed,
    /// Rolling back everything that was prepared or is still open.
    Aborting,
    Aborted,
    /// The coordinator's COMMIT got no answer (or the commit future was abandoned
    /// mid-protocol): only the decision row knows; the sweeper will resolve it.
    InDoubt,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "active",
            Phase::Preparing => "preparing",
            Phase::Deciding => "deciding",
            Phase::Committing => "committing",
            Phase::Committed => "committed",
            Phase::Aborting => "aborting",
            Phase::Aborted => "aborted",
            Phase::InDoubt => "in_doubt",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Committed | Phase::Aborted | Phase::InDoubt)
    }

    /// Whether the protocol allows going from `self` to `next`.
    pub fn can_go_to(self, next: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, next),
            (Active, Preparing)
                | (Active, Aborting)
                | (Preparing, Deciding)
                | (Preparing, Aborting)
                | (Deciding, Committing)
                | (Deciding, Aborting)
                | (Deciding, InDoubt)
                | (Committing, Committed)
                | (Aborting, Aborted)
        )
    }
}

/// Told of every phase a two-phase transaction enters, as it enters it (the router
/// turns them into trace spans). Called on the committing task; must not block.
pub trait PhaseObserver: Send {
    /// `gid` is the transaction's base gid (its decision row's key).
    fn enter(&mut self, phase: Phase, gid: &str);
}

/// The observer of a commit nobody watches.
pub struct NoObserver;

impl PhaseObserver for NoObserver {
    fn enter(&mut self, _phase: Phase, _gid: &str) {}
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Phase::*;
    use super::*;

    #[test]
    fn only_the_protocol_paths_are_allowed() {
        let all = [
            Active, Preparing, Deciding, Committing, Committed, Aborting, Aborted, InDoubt,
        ];
        let allowed: Vec<(Phase, Phase)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_go_to(*b))
            .collect();
        assert_eq!(allowed.len(), 9, "{allowed:?}");
        // Past the commit point there is no way back to aborting.
        assert!(!Committing.can_go_to(Aborting));
        assert!(!InDoubt.can_go_to(Aborting));
        for t in [Committed, Aborted, InDoubt] {
            assert!(t.is_terminal());
            assert!(all.iter().all(|n| !t.can_go_to(*n)));
        }
    }
}
