//! An error the router answers itself inside a transaction fails that transaction, as
//! any error does in PostgreSQL.
//!
//! The router refuses some statements without sending them (a cross-shard statement it
//! cannot answer, a 2PC gid, a JWT gateway rule, `LISTEN` in transaction mode…). On
//! PostgreSQL an error inside `BEGIN … COMMIT` leaves the transaction failed: every
//! later statement gets 25P02 and `COMMIT` rolls back. Without this, the server's
//! transaction never heard of the error, so an application that caught it and went on
//! to `COMMIT` had the transaction's earlier writes committed — writes PostgreSQL
//! would have rolled back.
//!
//! So the session sends the server a statement that always fails (a syntax error:
//! parsed, never run, nothing to undo; its answer is swallowed) before the client's next
//! message. From then on the server itself keeps PostgreSQL's rules (25P02, the COMMIT
//! that answers ROLLBACK, savepoints that can still recover), and a transaction across
//! shards sees the failure at its end (`multi_shard.rs`: the attached shard reports
//! `E`).
//!
//! Only a transaction the server holds open between messages: an explicit one whose
//! last ReadyForQuery said `T`, with no answer of the server still owed (else that
//! status may be stale: a pipelined COMMIT not yet answered). An extended-protocol
//! pipeline the server is in the middle of (messages sent since the last Sync) is left
//! alone: a message injected there would have its error relayed as the client's; the
//! README lists it.

use super::expect::{Expect, Term};
use super::session::Session;
use orochi_wire::FrontendMessage;

/// The statement that fails the server's transaction: a syntax error, so PostgreSQL
/// neither plans nor runs it, and its log names the router.
const FAILS: &str = "orochi_router_refused_a_statement_of_this_transaction";

impl Session {
    /// Fails the server's transaction (see the module doc), once per router error.
    pub(crate) fn fail_server_tx(&mut self) {
        self.front.fail_server_tx = false;
        if !self.back.holds_open_tx() {
            return;
        }
        FrontendMessage::Query(FAILS.into()).encode(&mut self.back.sout);
        self.front
            .expect
            .push_back(Expect::Swallow(Term::Ready { started: None }));
    }
}
