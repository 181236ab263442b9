//! One participant as the coordinator sees it: its role, its gid, and what its
//! connection's transaction is known to be after each statement.
//!
//! Every statement result goes through one `after_*` method, which is the single place
//! that decides (a) the new state — and so whether the connection is reusable and whether
//! a prepared transaction may be left behind — and (b) the error the client would see.

use crate::error::{TwoPcError, UNIQUE_VIOLATION};
use crate::outcome::{ConnState, Fate};
use crate::participant::{Participant, StepError};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Lowest written shard of a 2PC: holds the decision row, commits instead of preparing.
    Coordinator,
    /// Another written shard of a 2PC: prepared, then committed or rolled back by gid.
    Prepared,
    /// The only written shard: plain COMMIT.
    Sole,
    /// Read-only: plain COMMIT.
    ReadOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// The client's transaction is open on the connection.
    Open,
    /// A statement failed; the transaction is aborted (or already ended). ROLLBACK cleans it.
    Failed,
    /// Prepared under the slot's gid; the connection itself is idle.
    Prepared,
    /// Nothing open, nothing prepared.
    Ended,
    /// Connection lost or timed out. `maybe_prepared`: the gid may exist on the shard.
    Lost { maybe_prepared: bool },
}

pub(crate) const PREPARE_TAG: &str = "PREPARE TRANSACTION";
pub(crate) const COMMIT_TAG: &str = "COMMIT";

pub(crate) struct Slot<'a, P: ?Sized> {
    pub p: &'a mut P,
    pub shard: usize,
    pub role: Role,
    pub gid: Option<String>,
    pub state: TxnState,
}

impl<'a, P: Participant + ?Sized> Slot<'a, P> {
    pub fn new(p: &'a mut P, role: Role) -> Self {
        let shard = p.shard();
        Slot {
            p,
            shard,
            role,
            gid: None,
            state: TxnState::Open,
        }
    }

    fn error(&self, step: &'static str, e: StepError, timeout: Duration) -> TwoPcError {
        match e {
            StepError::Server(source) => TwoPcError::Shard {
                shard: self.shard,
                source,
            },
            StepError::Lost(source) => TwoPcError::ConnectionLost {
                shard: self.shard,
                step,
                message: source.message,
            },
            StepError::Timeout => TwoPcError::Timeout {
                shard: self.shard,
                step,
                timeout,
            },
        }
    }

    /// After `PREPARE TRANSACTION`.
    pub fn after_prepare(
        &mut self,
        r: Result<String, StepError>,
        timeout: Duration,
    ) -> Option<TwoPcError> {
        match r {
            Ok(tag) if tag == PREPARE_TAG => {
                self.state = TxnState::Prepared;
                None
            }
            Ok(tag) => {
                // PostgreSQL rolled the (already failed) transaction back instead.
                self.state = TxnState::Ended;
                Some(TwoPcError::AlreadyAborted {
                    shard: self.shard,
                    step: PREPARE_TAG,
                    tag,
                })
            }
            Err(StepError::Server(e)) => {
                // A failed PREPARE TRANSACTION is a ROLLBACK; we still send one to be sure.
                self.state = TxnState::Failed;
                Some(self.error(PREPARE_TAG, StepError::Server(e), timeout))
            }
            Err(e) => {
                self.state = TxnState::Lost {
                    maybe_prepared: true,
                };
                Some(self.error(PREPARE_TAG, e, timeout))
            }
        }
    }

    /// After a plain `COMMIT` (read-only, sole writer, or the coordinator's commit point).
    pub fn after_commit(
        &mut self,
        r: Result<String, StepError>,
        timeout: Duration,
    ) -> Option<TwoPcError> {
        match r {
            Ok(tag) if tag == COMMIT_TAG => {
                self.state = TxnState::Ended;
                None
            }
            Ok(tag) => {
                self.state = TxnState::Ended;
                Some(TwoPcError::AlreadyAborted {
                    shard: self.shard,
                    step: COMMIT_TAG,
                    tag,
                })
            }
            Err(StepError::Server(e)) => {
                self.state = TxnState::Failed;
                Some(self.error(COMMIT_TAG, StepError::Server(e), timeout))
            }
            Err(e) => {
                self.state = TxnState::Lost {
                    maybe_prepared: false,
                };
                Some(self.error(COMMIT_TAG, e, timeout))
            }
        }
    }

    /// After the coordinator's decision INSERT and COMMIT, sent as one message
    /// ([`crate::sql::decide_and_commit`]): a unique violation means a sweeper fenced
    /// this transaction with `abort` (the COMMIT was skipped; the transaction is failed);
    /// anything else is read as the answer to the COMMIT, the commit point. Without an
    /// answer the commit may have happened: the connection is lost and the outcome in
    /// doubt, as for a plain COMMIT.
    pub fn after_decide_and_commit(
        &mut self,
        r: Result<String, StepError>,
        timeout: Duration,
        base: &str,
    ) -> Option<TwoPcError> {
        match r {
            Err(StepError::Server(e)) if e.sqlstate == UNIQUE_VIOLATION => {
                self.state = TxnState::Failed;
                Some(TwoPcError::Fenced {
                    base: base.to_string(),
                })
            }
            r => self.after_commit(r, timeout),
        }
    }

    /// After `ROLLBACK` (of an open or failed transaction).
    pub fn after_rollback(&mut self, r: Result<String, StepError>) -> Result<(), StepError> {
        match r {
            Ok(_) => {
                self.state = TxnState::Ended;
                Ok(())
            }
            Err(e) => {
                self.state = TxnState::Lost {
                    maybe_prepared: false,
                };
                Err(e)
            }
        }
    }

    /// After `COMMIT PREPARED` / `ROLLBACK PREPARED` of this slot's gid. "Does not exist"
    /// means someone (the sweeper) resolved it already.
    pub fn after_resolve(
        &mut self,
        r: Result<String, StepError>,
        step: &'static str,
        timeout: Duration,
    ) -> Option<TwoPcError> {
        match r {
            Ok(_) => {
                self.state = TxnState::Ended;
                None
            }
            Err(StepError::Server(e)) if e.is_undefined_object() => {
                self.state = TxnState::Ended;
                None
            }
            Err(StepError::Server(e)) => {
                // Still prepared; the connection is fine.
                Some(self.error(step, StepError::Server(e), timeout))
            }
            Err(e) => {
                self.state = TxnState::Lost {
                    maybe_prepared: true,
                };
                Some(self.error(step, e, timeout))
            }
        }
    }

    pub fn fate(&self) -> Fate {
        let (connection, pending) = match self.state {
            TxnState::Ended => (ConnState::Clean, false),
            TxnState::Prepared => (ConnState::Clean, true),
            TxnState::Lost { maybe_prepared } => (ConnState::Broken, maybe_prepared),
            // Never left like this by the coordinator; if it were, the state is unknown.
            TxnState::Open | TxnState::Failed => (ConnState::Broken, false),
        };
        Fate {
            shard: self.shard,
            connection,
            pending_gid: if pending { self.gid.clone() } else { None },
        }
    }
}
