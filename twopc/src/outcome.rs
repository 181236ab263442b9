//! What a commit returns to the router: the client-visible result, and what to do with
//! each participant's connection afterwards.

use crate::error::TwoPcError;

/// The client-visible result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Committed on every written shard (some COMMIT PREPARED may still be finished by the
    /// sweeper: see [`Fate::pending_gid`]). The client gets `COMMIT`.
    Committed,
    /// Rolled back everywhere (or left prepared for the sweeper to roll back). The client
    /// gets the error.
    Aborted(TwoPcError),
    /// The commit point's outcome is unknown; the sweeper will settle it one way for all
    /// shards. The client gets the error (SQLSTATE 08007).
    InDoubt(TwoPcError),
}

/// The state a participant's connection was left in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// No transaction open, nothing unusual: may go back to the pool.
    Clean,
    /// Lost, timed out or in an unknown state: close it.
    Broken,
}

/// One participant after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fate {
    pub shard: usize,
    pub connection: ConnState,
    /// A prepared transaction this participant may still hold, left for the sweeper.
    pub pending_gid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    pub resolution: Resolution,
    /// The base gid when two-phase commit was used (two or more written shards).
    pub gid: Option<String>,
    /// One per `written` participant, in the order they were passed.
    pub written: Vec<Fate>,
    /// One per `read_only` participant, in the order they were passed.
    pub read_only: Vec<Fate>,
}

impl CommitOutcome {
    pub fn is_committed(&self) -> bool {
        self.resolution == Resolution::Committed
    }

    /// The error for the client, unless committed.
    pub fn error(&self) -> Option<&TwoPcError> {
        match &self.resolution {
            Resolution::Committed => None,
            Resolution::Aborted(e) | Resolution::InDoubt(e) => Some(e),
        }
    }

    /// `(shard, gid)` of every participant that may still hold a prepared transaction.
    pub fn needs_recovery(&self) -> Vec<(usize, &str)> {
        self.written
            .iter()
            .chain(&self.read_only)
            .filter_map(|f| f.pending_gid.as_deref().map(|g| (f.shard, g)))
            .collect()
    }
}
