//! The coordinator's only way to reach a shard: a [`Participant`].
//!
//! The router implements it over a pooled server connection that already holds the
//! client's open transaction; this crate never touches a socket. Methods return boxed
//! futures (not `async fn`) so the trait stays object-safe: a router may pass
//! `Box<dyn Participant>` as easily as a concrete type.
//!
//! Contract for implementors:
//! - `execute` runs one statement with the simple query protocol and returns the
//!   CommandComplete tag (`"PREPARE TRANSACTION"`, `"COMMIT"`, `"ROLLBACK"`, ...). The tag
//!   matters: PostgreSQL answers `PREPARE TRANSACTION` or `COMMIT` in a failed transaction
//!   with the tag `ROLLBACK` and no error, and the coordinator must see that.
//! - NoticeResponses (e.g. "there is no transaction in progress") are not errors.
//! - An ErrorResponse becomes [`ParticipantError::server`]; any I/O failure becomes
//!   [`ParticipantError::lost`].
//! - If the coordinator drops the future (its timeout fired) or reports the connection as
//!   broken in the outcome, the connection's state is unknown: close it, never pool it.

use crate::error::ParticipantError;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed, sendable future borrowing from `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One shard's connection taking part in a commit.
pub trait Participant: Send {
    /// Index of the shard this connection belongs to.
    fn shard(&self) -> usize;

    /// Runs `sql` and returns its command tag.
    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>>;
}

impl<T: Participant + ?Sized> Participant for Box<T> {
    fn shard(&self) -> usize {
        (**self).shard()
    }
    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>> {
        (**self).execute(sql)
    }
}

impl<T: Participant + ?Sized> Participant for &mut T {
    fn shard(&self) -> usize {
        (**self).shard()
    }
    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>> {
        (**self).execute(sql)
    }
}

/// How one statement ended, as far as the coordinator is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepError {
    /// ErrorResponse; the connection is fine.
    Server(ParticipantError),
    /// The connection broke; the statement may or may not have run.
    Lost(ParticipantError),
    /// No answer within the deadline; treated like a lost connection.
    Timeout,
}

/// Runs one statement under a timeout.
pub(crate) async fn run_step<P: Participant + ?Sized>(
    p: &mut P,
    sql: &str,
    timeout: Duration,
) -> Result<String, StepError> {
    match tokio::time::timeout(timeout, p.execute(sql)).await {
        Ok(Ok(tag)) => Ok(tag),
        Ok(Err(e)) if e.connection_lost => Err(StepError::Lost(e)),
        Ok(Err(e)) => Err(StepError::Server(e)),
        Err(_) => Err(StepError::Timeout),
    }
}
