//! What the client believes its server session holds, which the router makes every
//! connection it lends look like: the settings (`params.rs`), the prepared statements
//! (protocol-level, the unnamed one, SQL-level `PREPARE`), the ParameterStatus values the
//! client was told (`reported.rs`), and the session effects of statements whose outcome
//! is not known yet.
//!
//! None of it depends on which server is attached. Its own type so that the sharded path
//! (`sharded_path.rs`) borrows it next to the other parts of the session, instead of the
//! whole session.

use super::params::SessionParams;
use super::reported::Reported;
use crate::planner::SessionOp;
use crate::statements::PreparedStatement;
use std::collections::HashMap;
use std::sync::Arc;

/// A client's prepared statements by name.
pub(crate) type StatementNames =
    HashMap<String, Arc<PreparedStatement>, foldhash::fast::RandomState>;

/// The client's session as PostgreSQL would keep it.
pub(crate) struct SessionState {
    pub(crate) params: SessionParams,
    /// ParameterStatus values the client has been told.
    pub(crate) reported: Reported,
    /// Protocol-level prepared statements by the client's name, looked up on every Bind.
    /// Hashed with foldhash (seeded per process and per map) rather than SipHash: about
    /// 150 instructions less a Bind (issue 16, `-M prepared`). Every session's map has a
    /// seed of its own and holds only that client's names, so a client choosing
    /// colliding names could slow only its own session.
    pub(crate) statements: StatementNames,
    pub(crate) unnamed: Option<Arc<PreparedStatement>>,
    /// SQL-level prepared statements: name -> PREPARE text.
    pub(crate) sql_prepared: HashMap<String, String>,
    /// Router statements kept prepared per server connection (`max_prepared_statements`).
    /// A `u32`, so that it shares a word with the two flags below (every idle client
    /// carries this struct).
    pub(crate) max_prepared: u32,
    /// Session effects of statements whose outcome is not known yet.
    pub(crate) pending_ops: Vec<SessionOp>,
    /// A server error answered the client's own request (not one the router injected)
    /// since the last ReadyForQuery: its pending effects may not have happened.
    pub(crate) tx_error: bool,
    /// A ROLLBACK completed since the last ReadyForQuery: the pending effects were undone.
    pub(crate) last_tag_rollback: bool,
}

impl SessionState {
    pub(crate) fn new(params: SessionParams, max_prepared: usize) -> Self {
        SessionState {
            params,
            reported: Reported::default(),
            statements: StatementNames::default(),
            unnamed: None,
            sql_prepared: HashMap::new(),
            max_prepared: u32::try_from(max_prepared).unwrap_or(u32::MAX),
            pending_ops: Vec::new(),
            tx_error: false,
            last_tag_rollback: false,
        }
    }
}
