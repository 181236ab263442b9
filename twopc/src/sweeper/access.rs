//! How the sweeper reaches shards: [`ShardAccess`] opens [`ShardSession`]s.
//!
//! Unlike a [`crate::Participant`], a session has no client transaction: it runs
//! autocommit statements and returns rows. The router implements it over a dedicated
//! connection to each shard's primary. The sweeper holds its advisory lock as a *session*
//! lock on shard 0, so that a router killed mid-sweep releases it with its socket:
//! **dropping a session must close its connection** (or the router must
//! `pg_advisory_unlock_all()` before reusing it).

use crate::error::ParticipantError;
use crate::participant::BoxFuture;

/// The result of one simple query: its CommandComplete tag and rows, as text
/// (`None` = SQL NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub tag: String,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryResult {
    /// The first column of the first row, when it is not NULL.
    pub fn first_value(&self) -> Option<&str> {
        self.rows.first()?.first()?.as_deref()
    }
}

/// One connection to one shard's primary, in autocommit mode.
pub trait ShardSession: Send {
    /// Runs `sql` with the simple query protocol. Errors as for
    /// [`crate::Participant::execute`]: ErrorResponse → [`ParticipantError::server`], I/O
    /// failure → [`ParticipantError::lost`].
    fn simple_query<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<QueryResult, ParticipantError>>;
}

/// The shards of one pool.
pub trait ShardAccess: Send + Sync {
    /// Shards are numbered `0..shard_count()`.
    fn shard_count(&self) -> usize;

    /// A new session on `shard`'s primary.
    fn connect(
        &self,
        shard: usize,
    ) -> BoxFuture<'_, Result<Box<dyn ShardSession>, ParticipantError>>;
}
