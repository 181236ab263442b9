//! The COMMIT PREPAREDs a client's two-phase commit still owes, finished off its path,
//! and the wait that keeps the client from ever seeing its own writes missing.
//!
//! A cross-shard COMMIT is answered at the commit point: as soon as the coordinator's
//! COMMIT (which holds the decision row) has answered, the outcome is durable and the
//! client gets `COMMIT`. The prepared participants' COMMIT PREPAREDs then run in a
//! task of their own ([`ServerLeg::finish_off_path`]), on the very connections that
//! prepared them: those stay checked out of their pools until their COMMIT PREPARED has
//! answered, so no other client is ever lent a connection with work still owed on it.
//! If one fails (the shard died, the timeout passed), the gid stays prepared and the
//! recovery sweeper commits it, as when a COMMIT PREPARED failed on the client's path.
//!
//! Read-your-writes. Until a participant's COMMIT PREPARED is done, its writes are
//! invisible on that shard (and its row locks still held). The session keeps a handle
//! on each such task, and before it handles any further client message that could
//! reach a shard it waits for all of them ([`Session::await_pending_commits`]). Only a
//! lone `BEGIN`/`START TRANSACTION` (a transaction's snapshot is taken by its first
//! statement, not by BEGIN; on a sharded pool BEGIN is not even sent yet), a Sync and a
//! Flush pass without waiting. So a later statement of the same client connection
//! always runs after every COMMIT PREPARED of its previous transactions has answered,
//! and sees its writes. The wait usually costs nothing: the commit was overlapped with
//! the client reading `COMMIT` and sending its next statement.
//!
//! What this does not cover: other client connections (even of the same application)
//! may see the coordinator's writes before a participant's, as with any two-phase
//! commit between COMMIT PREPAREDs; and a participant whose COMMIT PREPARED failed is
//! invisible until the sweeper commits it (`timeout_seconds` later), for this client
//! too (that was so before as well: a failed COMMIT PREPARED was left to the sweeper).

use super::pending_commit::PendingCommit;
use super::server_leg::ServerLeg;
use super::session::Session;
use crate::app::App;
use crate::backend::Checkout;

impl ServerLeg {
    /// COMMIT PREPARED for each gid of `unfinished`, in a task of its own, on `cos` (the
    /// participants that prepared them; each is released when its answer is in, or
    /// closed when it failed). The session's next statement waits for it.
    pub(crate) fn finish_off_path(
        &mut self,
        app: &std::sync::Arc<App>,
        unfinished: orochi_twopc::Unfinished,
        mut cos: Vec<Checkout>,
    ) {
        let shards: Vec<usize> = unfinished.shards().collect();
        let app = app.clone();
        let task = tokio::spawn(async move {
            let mut parts: Vec<crate::twopc::ConnParticipant<'_>> = cos
                .iter_mut()
                .map(|co| crate::twopc::ConnParticipant {
                    shard: co.pool.shard,
                    conn: co.conn(),
                })
                .collect();
            let fates = app.twopc.finish(unfinished, &mut parts).await;
            drop(parts);
            for (mut co, fate) in cos.into_iter().zip(fates) {
                if fate.connection == orochi_twopc::ConnState::Broken {
                    co.conn().broken = true;
                }
                co.release();
            }
        });
        self.tx()
            .pending_commits
            .push(PendingCommit { shards, task });
    }
}

impl Session {
    /// Whether COMMIT PREPAREDs of this client's transactions may still be running.
    pub(crate) fn has_pending_commits(&self) -> bool {
        self.back
            .sharded_tx()
            .is_some_and(|t| !t.pending_commits.is_empty())
    }

    /// Waits until every COMMIT PREPARED of this client's earlier transactions has
    /// answered (or failed and was left to the sweeper).
    pub(crate) async fn await_pending_commits(&mut self) {
        let pending = std::mem::take(&mut self.back.tx().pending_commits);
        for p in pending {
            if let Err(e) = p.task.await {
                tracing::warn!(client = self.ctx.id, shards = ?p.shards, "COMMIT PREPARED task ended abnormally: {e}");
            }
        }
    }
}
