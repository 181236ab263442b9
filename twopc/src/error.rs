//! Errors of the two-phase commit crate.
//!
//! Two layers: [`ParticipantError`] is what a shard connection reports for one statement
//! (the router builds it from an ErrorResponse or an I/O failure); [`TwoPcError`] is what
//! the coordinator or the sweeper concluded. Every [`TwoPcError`] knows the SQLSTATE the
//! client should see ([`TwoPcError::sqlstate`]); turning it into an ErrorResponse stays in
//! the router's single error module (DESIGN.md).

use std::time::Duration;

/// SQLSTATE of "prepared transaction does not exist": the gid was already resolved.
pub const UNDEFINED_OBJECT: &str = "42704";
/// SQLSTATE of a unique violation: the decision row already exists.
pub const UNIQUE_VIOLATION: &str = "23505";
/// Router-side code for a lost or unresponsive shard connection.
pub const CONNECTION_FAILURE: &str = "08006";
/// The commit was sent but no answer came back: nobody knows yet whether it happened.
pub const TRANSACTION_RESOLUTION_UNKNOWN: &str = "08007";

/// The failure of one statement on one shard connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sqlstate}: {message}")]
pub struct ParticipantError {
    /// SQLSTATE from the server's ErrorResponse, or `08006` for a connection failure.
    pub sqlstate: String,
    pub message: String,
    /// The connection broke (or could not be used): whether the statement ran is unknown,
    /// and the connection must be closed, never returned to a pool.
    pub connection_lost: bool,
}

impl ParticipantError {
    /// An ErrorResponse from the server; the connection itself is still usable.
    pub fn server(sqlstate: impl Into<String>, message: impl Into<String>) -> Self {
        ParticipantError {
            sqlstate: sqlstate.into(),
            message: message.into(),
            connection_lost: false,
        }
    }

    /// The connection failed while the statement was sent or awaited.
    pub fn lost(message: impl Into<String>) -> Self {
        ParticipantError {
            sqlstate: CONNECTION_FAILURE.into(),
            message: message.into(),
            connection_lost: true,
        }
    }

    /// "prepared transaction with identifier ... does not exist".
    pub fn is_undefined_object(&self) -> bool {
        !self.connection_lost && self.sqlstate == UNDEFINED_OBJECT
    }
}

/// What went wrong with a two-phase commit or a recovery sweep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwoPcError {
    /// A shard refused a statement; the client sees that shard's SQLSTATE and message.
    #[error("shard {shard}: {}", source.message)]
    Shard {
        shard: usize,
        source: ParticipantError,
    },
    /// The connection to a shard broke before the commit point.
    #[error("lost the connection to shard {shard} during {step}: {message}")]
    ConnectionLost {
        shard: usize,
        step: &'static str,
        message: String,
    },
    /// A shard did not answer in time; its connection is closed.
    #[error("shard {shard} did not answer {step} within {timeout:?}")]
    Timeout {
        shard: usize,
        step: &'static str,
        timeout: Duration,
    },
    /// The shard's transaction had already failed: `PREPARE TRANSACTION` or `COMMIT`
    /// answered with the tag `ROLLBACK` instead of doing what was asked.
    #[error("the transaction on shard {shard} was already aborted ({step} ended in {tag})")]
    AlreadyAborted {
        shard: usize,
        step: &'static str,
        tag: String,
    },
    /// The decision row already existed: a recovery sweeper decided `abort` first because
    /// the transaction outlived `timeout_seconds`. Everything was rolled back: retry.
    #[error("two-phase commit {base} was aborted by recovery because it exceeded its timeout")]
    Fenced { base: String },
    /// The prepare phase finished after the transaction's deadline; rolled back rather than
    /// racing the sweeper.
    #[error("two-phase commit {base} did not reach its commit point within {timeout:?}")]
    DeadlineExceeded { base: String, timeout: Duration },
    /// The coordinator's COMMIT was sent but its result never came back.
    #[error("the outcome of the commit is unknown ({cause}); it will be resolved by recovery{}", base.as_ref().map(|b| format!(" of {b}")).unwrap_or_default())]
    OutcomeUnknown {
        base: Option<String>,
        shard: usize,
        cause: String,
    },
    /// Two participants for the same shard: a router bug, refused before anything is sent
    /// except ROLLBACK.
    #[error("two participants for shard {0} in one transaction")]
    DuplicateShard(usize),
    /// A prepared transaction name that starts with `orochi_` but is not one of ours.
    #[error("not an orochi two-phase transaction name: {0:?}")]
    BadGid(String),
    /// The sweeper could not use a shard for one step.
    #[error("recovery on shard {shard}, {step}: {source}")]
    Sweep {
        shard: usize,
        step: &'static str,
        source: ParticipantError,
    },
    /// A shard answered something the protocol does not expect.
    #[error("shard {shard} answered {step} with {reply:?}")]
    BadReply {
        shard: usize,
        step: &'static str,
        reply: String,
    },
}

impl TwoPcError {
    /// The SQLSTATE for the client's ErrorResponse.
    pub fn sqlstate(&self) -> &str {
        match self {
            TwoPcError::Shard { source, .. } => &source.sqlstate,
            TwoPcError::ConnectionLost { .. } | TwoPcError::Timeout { .. } => CONNECTION_FAILURE,
            // in_failed_sql_transaction: the client's transaction had failed on that shard.
            TwoPcError::AlreadyAborted { .. } => "25P02",
            // serialization_failure: rolled back everywhere, safe to retry.
            TwoPcError::Fenced { .. } => "40001",
            // query_canceled, as for a statement timeout.
            TwoPcError::DeadlineExceeded { .. } => "57014",
            TwoPcError::OutcomeUnknown { .. } => TRANSACTION_RESOLUTION_UNKNOWN,
            TwoPcError::DuplicateShard(_)
            | TwoPcError::BadGid(_)
            | TwoPcError::Sweep { .. }
            | TwoPcError::BadReply { .. } => "XX000",
        }
    }

    /// The shard the error is about, when there is one.
    pub fn shard(&self) -> Option<usize> {
        match self {
            TwoPcError::Shard { shard, .. }
            | TwoPcError::ConnectionLost { shard, .. }
            | TwoPcError::Timeout { shard, .. }
            | TwoPcError::AlreadyAborted { shard, .. }
            | TwoPcError::OutcomeUnknown { shard, .. }
            | TwoPcError::DuplicateShard(shard)
            | TwoPcError::Sweep { shard, .. }
            | TwoPcError::BadReply { shard, .. } => Some(*shard),
            TwoPcError::Fenced { .. }
            | TwoPcError::DeadlineExceeded { .. }
            | TwoPcError::BadGid(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_errors_keep_the_shard_sqlstate() {
        let e = TwoPcError::Shard {
            shard: 2,
            source: ParticipantError::server("23514", "check violated"),
        };
        assert_eq!(e.sqlstate(), "23514");
        assert_eq!(e.shard(), Some(2));
        assert_eq!(e.to_string(), "shard 2: check violated");
    }

    #[test]
    fn unknown_outcome_is_08007() {
        let e = TwoPcError::OutcomeUnknown {
            base: Some("orochi_a_1_c0".into()),
            shard: 0,
            cause: "connection lost".into(),
        };
        assert_eq!(e.sqlstate(), "08007");
        assert!(e.to_string().contains("orochi_a_1_c0"), "{e}");
    }

    #[test]
    fn lost_connection_is_not_undefined_object() {
        assert!(ParticipantError::server("42704", "gone").is_undefined_object());
        let mut lost = ParticipantError::lost("eof");
        assert!(!lost.is_undefined_object());
        lost.sqlstate = "42704".into();
        assert!(!lost.is_undefined_object());
    }
}
