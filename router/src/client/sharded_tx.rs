//! The state of a client's transaction on a sharded pool, in one place: the BEGIN held
//! back until a statement picks a shard, the other shards' connections of a transaction
//! that spans shards, the shards written (two-phase commit's participants), and the
//! extended protocol's held portals. A pool with one shard never touches it.
//!
//! Its own type, so the sharded path's state is reset, inspected and reasoned about as
//! one thing rather than as ten loose fields of the session.

use super::job::Job;
use crate::backend::Checkout;
use crate::planner::lex::{contains_word_ci, first_word};
use crate::planner::savepoint::{savepoint_command, Savepoint};
use orochi_wire::PgError;

/// A sharded pool's transaction state (all empty outside a transaction).
#[derive(Default)]
pub(crate) struct ShardedTx {
    /// A BEGIN (plus savepoints) answered locally, replayed on the shard
    /// the transaction's first statement goes to.
    pub(crate) pending_begin: Option<String>,
    /// A held-back transaction saw a router error: only ROLLBACK is accepted.
    pub(crate) pending_failed: bool,
    /// The savepoints of the held-back transaction, oldest first, as PostgreSQL names
    /// them: `RELEASE` and `ROLLBACK TO` one it never took fail as on PostgreSQL.
    pub(crate) pending_savepoints: Vec<String>,
    /// Extended protocol: a Bind held back until Execute (fan-out).
    pub(crate) held: Option<HeldPortal>,
    /// A bound transaction command answered locally.
    pub(crate) local_portal: Option<LocalPortal>,
    /// The other shards' connections of a transaction that spans shards
    /// (each inside the same transaction), while `server` serves the current one.
    pub(crate) parked: Vec<Checkout>,
    /// The BEGIN of the current explicit transaction, replayed on each shard it reaches.
    pub(crate) tx_begin: Option<String>,
    /// The transaction spanning shards is a pipeline's implicit one (no BEGIN from the
    /// client): the router made it explicit and commits it at the client's Sync.
    pub(crate) implicit_multi: bool,
    /// Shards the current transaction wrote on (two-phase commit participants).
    pub(crate) wrote: Vec<usize>,
    /// A multi-shard result fetched in batches (Execute with a row limit).
    pub(crate) suspended: Option<Suspended>,
    /// A statement joining the client's transaction on several shards is running, or
    /// stopped half way (a checkout or a connection failed before its connections were
    /// settled back into the transaction): until COMMIT/ROLLBACK, which then roll back
    /// every shard, everything gets 25P02 — never a partial commit.
    pub(crate) tx_poisoned: bool,
    /// COMMIT PREPAREDs of this client's committed transactions still running off its
    /// path (`pending_commits.rs`): its next statement waits for them. Outlives the
    /// transaction that made them.
    pub(crate) pending_commits: Vec<super::pending_commit::PendingCommit>,
}

impl ShardedTx {
    /// Nothing of a transaction is kept: no BEGIN waiting for its shard, no savepoint,
    /// portal or parked connection, no commit still finishing, not failed. A statement
    /// then routes as if the session were new (`query_now.rs`).
    pub(crate) fn at_rest(&self) -> bool {
        self.pending_begin.is_none()
            && !self.pending_failed
            && self.pending_savepoints.is_empty()
            && self.held.is_none()
            && self.local_portal.is_none()
            && self.parked.is_empty()
            && self.tx_begin.is_none()
            && !self.implicit_multi
            && self.suspended.is_none()
            && !self.tx_poisoned
            && self.pending_commits.is_empty()
    }

    /// A router error while the transaction is held back (no shard has seen it yet)
    /// fails it, as any error fails a transaction in PostgreSQL.
    pub(crate) fn fail_held(&mut self) {
        self.pending_failed |= self.pending_begin.is_some();
    }

    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT / RELEASE while no shard is chosen yet: kept
    /// here (to be replayed on the shard the transaction lands on) and answered with the
    /// returned tag, or refused as PostgreSQL would (`Err`: the transaction is failed
    /// now). `None`: not such a command, or one that needs a shard.
    pub(crate) fn held_command(&mut self, sql: &str) -> Option<Result<&'static str, PgError>> {
        // Lower-cased on the stack: every Bind of an idle client passes here (issue 16).
        let w = first_word(sql);
        let mut low = [0u8; 9];
        let kw = low.get_mut(..w.len())?;
        kw.copy_from_slice(w.as_bytes());
        kw.make_ascii_lowercase();
        let kw = std::str::from_utf8(kw).ok()?;
        let tag = match kw {
            "begin" | "start" => {
                if self.pending_begin.is_none() {
                    self.pending_begin = Some(sql.trim().trim_end_matches(';').to_string());
                    self.pending_failed = false;
                    self.pending_savepoints.clear();
                }
                if kw == "start" {
                    "START TRANSACTION"
                } else {
                    "BEGIN"
                }
            }
            "commit" | "end" if !contains_word_ci(sql, "prepared") => {
                let failed = self.pending_failed;
                self.end_held();
                if failed {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                }
            }
            "rollback" | "abort" if !contains_word_ci(sql, "prepared") => {
                if contains_word_ci(sql, "to") {
                    self.pending_begin.as_ref()?;
                    return self.savepoint(sql);
                }
                self.end_held();
                "ROLLBACK"
            }
            // In a failed transaction PostgreSQL refuses them (25P02): not answered here.
            "savepoint" | "release" if !self.pending_failed => {
                self.pending_begin.as_ref()?;
                return self.savepoint(sql);
            }
            _ => return None,
        };
        Some(Ok(tag))
    }

    /// SAVEPOINT, RELEASE or ROLLBACK TO in a held-back transaction. `None`: not one the
    /// parser reads (a syntax error, reported by the ordinary path).
    fn savepoint(&mut self, sql: &str) -> Option<Result<&'static str, PgError>> {
        let cmd = savepoint_command(sql)?;
        let (name, tag) = match &cmd {
            Savepoint::Take(n) => (n, "SAVEPOINT"),
            Savepoint::Release(n) => (n, "RELEASE"),
            Savepoint::RollbackTo(n) => (n, "ROLLBACK"),
        };
        let found = self.pending_savepoints.iter().rposition(|s| s == name);
        match (&cmd, found) {
            (Savepoint::Take(n), _) => self.pending_savepoints.push(n.clone()),
            (_, None) => {
                self.pending_failed = true;
                return Some(Err(PgError::error(
                    "3B001",
                    format!("savepoint \"{name}\" does not exist"),
                )));
            }
            // RELEASE ends the savepoint and every later one; ROLLBACK TO keeps it.
            (Savepoint::Release(_), Some(i)) => self.pending_savepoints.truncate(i),
            (Savepoint::RollbackTo(_), Some(i)) => {
                self.pending_savepoints.truncate(i + 1);
                self.pending_failed = false;
            }
        }
        let p = self.pending_begin.as_mut()?;
        p.push_str("; ");
        p.push_str(sql.trim().trim_end_matches(';'));
        Some(Ok(tag))
    }

    /// The held-back transaction ended (COMMIT or ROLLBACK answered here).
    fn end_held(&mut self) {
        self.pending_begin = None;
        self.pending_failed = false;
        self.pending_savepoints.clear();
    }

    /// The BEGIN to run on a shard the transaction reaches.
    pub(crate) fn begin_text(&self) -> String {
        self.tx_begin
            .clone()
            .or_else(|| self.pending_begin.clone())
            .unwrap_or_else(|| "BEGIN".into())
    }

    /// The held BEGIN, now sent to the transaction's first shard: it becomes the
    /// transaction's BEGIN, replayed on each further shard.
    pub(crate) fn start_on_shard(&mut self) -> Option<String> {
        let begin = self.pending_begin.take()?;
        self.pending_savepoints.clear();
        self.tx_begin = Some(begin.clone());
        Some(begin)
    }

    /// The transaction ended (committed or rolled back everywhere).
    pub(crate) fn end_transaction(&mut self) {
        self.tx_begin = None;
        self.wrote.clear();
        self.end_held();
    }

    /// Forgets the extended protocol's held portals.
    pub(crate) fn drop_portals(&mut self) {
        self.held = None;
        self.local_portal = None;
    }

    /// Takes the transaction's parked connection to `shard`, if it has one.
    pub(crate) fn take_parked(&mut self, shard: usize) -> Option<Checkout> {
        let i = self.parked.iter().position(|c| c.pool.shard == shard)?;
        Some(self.parked.remove(i))
    }
}

/// Held-back Bind of a statement that will be fanned out at Execute.
pub(crate) struct HeldPortal {
    /// Boxed: a `Job` is hundreds of bytes, and every session carries this field.
    pub job: Box<Job>,
    /// The statement, planned again at Execute if the shard map changed (`held_replan`).
    pub query: String,
    /// The shard count of the map `job` was planned with.
    pub shards: usize,
}

/// The rest of a multi-shard result the client fetches in batches.
pub(crate) struct Suspended {
    pub rows: std::collections::VecDeque<bytes::Bytes>,
    /// CommandComplete (or the error) once every row was fetched.
    pub tail: bytes::Bytes,
}

/// A local answer for a held-back transaction command in the extended protocol.
#[derive(Debug, Clone)]
pub(crate) struct LocalPortal {
    pub tag: &'static str,
    /// COMMIT (`true`) or ROLLBACK of a transaction spanning shards.
    pub finish: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::ShardedTx;

    fn tag(tx: &mut ShardedTx, sql: &str) -> Option<&'static str> {
        tx.held_command(sql).map(|r| r.expect("no error"))
    }

    #[test]
    fn transaction_commands_are_told_by_their_first_word_in_any_case() {
        let mut tx = ShardedTx::default();
        assert_eq!(tag(&mut tx, "/* app */ Begin;"), Some("BEGIN"));
        assert_eq!(tx.pending_begin.as_deref(), Some("/* app */ Begin"));
        assert_eq!(tag(&mut tx, "SAVEPOINT a"), Some("SAVEPOINT"));
        assert_eq!(tag(&mut tx, "cOmMiT"), Some("COMMIT"));
        assert!(tx.pending_begin.is_none());
        assert_eq!(
            tag(&mut tx, "  start transaction isolation level serializable"),
            Some("START TRANSACTION")
        );
        assert_eq!(tag(&mut tx, "ABORT"), Some("ROLLBACK"));
        assert_eq!(tag(&mut tx, "end"), Some("COMMIT"));
        for other in [
            "SELECT 1",
            "COMMIT PREPARED 'g'",
            "checkpoint",
            "beginning_of_a_very_long_word",
            "ébegin",
            "",
        ] {
            assert_eq!(tag(&mut tx, other), None, "{other}");
        }
    }
}
