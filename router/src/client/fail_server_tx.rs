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
//! Two cases. A transaction the server holds open between messages (an explicit one
//! whose last ReadyForQuery said `T`, with no answer of the server still owed, else that
//! status may be stale: a pipelined COMMIT not yet answered) gets the statement as a
//! simple Query. An extended-protocol pipeline the server is in the middle of (messages
//! sent since the last Sync: on PostgreSQL the error would have failed the pipeline's
//! implicit transaction, or the explicit one it runs in) gets it as a Parse, ahead of the
//! client's Sync: the server answers it with an ErrorResponse, the relay swallows that
//! (`Term::Fail`), the pipeline's earlier statements roll back at the Sync and its
//! ReadyForQuery says what PostgreSQL's would. Should an earlier message of the pipeline
//! fail on the server after all (its answer was still on its way), the server skips the
//! Parse and answers nothing for it; that error is relayed, and the relay drops the
//! `Fail` entry with the rest of the pipeline's, as it drops the router's own error: the
//! client sees the one error PostgreSQL would have sent.

use super::expect::{Expect, Term};
use super::session::Session;
use orochi_wire::FrontendMessage;

/// The statement that fails the server's transaction: a syntax error, so PostgreSQL
/// neither plans nor runs it, and its log names the router.
const FAILS: &str = "orochi_router_refused_a_statement_of_this_transaction";

/// The name of the failing Parse sent into a pipeline.
const FAILED_PARSE: &str = "orochi_router_failed";

/// Whether a server error answers the statement above: not the client's error, so not
/// counted as one sent to a client (it never is). By the statement's name in the
/// message, which PostgreSQL quotes in any language.
pub(crate) fn is_ours(fields: &orochi_wire::ErrorFields) -> bool {
    fields.code == "42601" && fields.message.contains(FAILS)
}

impl Session {
    /// Fails the server's transaction (see the module doc), once per router error.
    pub(crate) fn fail_server_tx(&mut self) {
        self.front.fail_server_tx = false;
        if self.back.mid_pipeline() {
            // Named, so the client's unnamed statement survives (a failed Parse of the
            // unnamed statement drops it); nothing of that name is ever created.
            FrontendMessage::Parse {
                name: FAILED_PARSE.into(),
                query: FAILS.into(),
                param_types: vec![],
            }
            .encode(&mut self.back.sout);
            self.front.expect.push_back(Expect::Swallow(Term::Fail));
        } else if self.back.holds_open_tx() {
            FrontendMessage::Query(FAILS.into()).encode(&mut self.back.sout);
            self.front
                .expect
                .push_back(Expect::Swallow(Term::Ready { started: None }));
        }
    }
}
