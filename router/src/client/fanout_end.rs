//! How a statement that ran on several shards ends: its per-shard transactions commit
//! together (two-phase commit when enabled, SPEC §4; else best effort) or roll back, or,
//! when it ran inside the client's own transaction, its connections stay with that
//! transaction until the client's COMMIT or ROLLBACK.

use super::job::Job;
use super::shard_stream::Stream;
use super::sharded_path::ShardedPath;
use orochi_wire::PgError;

/// Puts a shard's open transaction in the failed state (a statement of the same
/// transaction failed on another shard).
const ABORT_TX: &str = "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '25P02', MESSAGE = 'the transaction failed on another shard'; END$$";

impl ShardedPath<'_> {
    /// After a statement that joined the client's transaction: every connection stays
    /// with the transaction (parked; the first serves next). A failed statement fails
    /// the whole transaction, as on one server: the shards where it did not fail are
    /// put in the failed state too, so everything until ROLLBACK gets 25P02 and COMMIT
    /// rolls back everywhere.
    pub(super) async fn keep_in_transaction(
        &mut self,
        job: &Job,
        streams: Vec<Stream>,
        failed: bool,
    ) {
        if self.tx().tx_begin.is_none() {
            self.tx().tx_begin = self.tx().pending_begin.take();
        }
        self.tx().pending_begin = None;
        for mut s in streams {
            if failed && !s.co.conn().broken {
                let conn = s.co.conn();
                if !matches!(conn.run_silent(ABORT_TX).await, Ok(Some(_))) {
                    conn.broken = true;
                }
            }
            self.tx().parked.push(s.co);
        }
        if job.write {
            for &s in &job.shards {
                if !self.tx().wrote.contains(&s) {
                    self.tx().wrote.push(s);
                }
            }
        }
        if let Some(&first) = job.shards.first() {
            self.back.switch_to_parked(first, &self.ctx.cancel);
        }
        self.back.tx_status = if failed { b'E' } else { b'T' };
        // Settled: the servers' own state says whether the transaction failed.
        self.tx().tx_poisoned = false;
    }

    /// Ends the transactions a multi-shard write opened: two-phase commit when enabled
    /// (SPEC §4), else best effort (every shard commits in turn; any failure before
    /// that rolls back all). Returns whether the statement failed (the client was told).
    pub(super) async fn commit_fanout(
        &mut self,
        job: &Job,
        streams: &mut Vec<Stream>,
        mut failed: bool,
    ) -> bool {
        let extended = job.extended.is_some();
        let schema = self.ctx.user.sharding.clone();
        let atomic = schema.as_ref().is_some_and(|s| s.twopc) && streams.len() > 1;
        if atomic && !failed {
            if let Some(sc) = &schema {
                if sc.twopc_ready.get().is_none() {
                    match crate::twopc_setup::setup_pool(&self.ctx.user).await {
                        Ok(()) => {
                            let _ = sc.twopc_ready.set(());
                        }
                        Err(m) => {
                            self.emit_error(
                                PgError::error(
                                    "08006",
                                    format!("two-phase commit setup failed: {m}"),
                                ),
                                extended,
                            );
                            failed = true;
                        }
                    }
                }
            }
        }
        if atomic && !failed {
            let pool = self.ctx.user.pool_name.clone();
            let mut parts: Vec<crate::twopc::ConnParticipant<'_>> = streams
                .iter_mut()
                .zip(&job.shards)
                .map(|(s, &shard)| crate::twopc::ConnParticipant {
                    shard,
                    conn: s.co.conn(),
                })
                .collect();
            let (outcome, unfinished) = super::trace::twopc_commit(
                &self.ctx.app,
                self.ctx.trace.as_ref(),
                &pool,
                &mut parts,
                &mut [],
            )
            .await;
            drop(parts);
            for (s, fate) in streams.iter_mut().zip(&outcome.written) {
                if fate.connection == orochi_twopc::ConnState::Broken {
                    s.co.conn().broken = true;
                }
            }
            if let Some(u) = unfinished {
                // The prepared participants' connections go with their COMMIT PREPAREDs,
                // off the client's path (`pending_commits.rs`); the caller releases the rest.
                let owed: Vec<usize> = u.shards().collect();
                let (go, stay): (Vec<_>, Vec<_>) = std::mem::take(streams)
                    .into_iter()
                    .zip(&job.shards)
                    .partition(|(_, shard)| owed.contains(shard));
                *streams = stay.into_iter().map(|(s, _)| s).collect();
                self.back.finish_off_path(
                    &self.ctx.app,
                    u,
                    go.into_iter().map(|(s, _)| s.co).collect(),
                );
            }
            match outcome.resolution {
                orochi_twopc::Resolution::Committed => self.ctx.app.metrics.twopc_committed(&pool),
                orochi_twopc::Resolution::Aborted(e) => {
                    self.ctx.app.metrics.twopc_rolled_back(&pool);
                    self.emit_error(PgError::error(e.sqlstate(), e.to_string()), extended);
                    failed = true;
                }
                orochi_twopc::Resolution::InDoubt(e) => {
                    self.emit_error(PgError::error(e.sqlstate(), e.to_string()), extended);
                    failed = true;
                }
            }
            return failed;
        }
        let verb = if failed { "ROLLBACK" } else { "COMMIT" };
        for s in streams.iter_mut() {
            if s.co.conn().broken {
                continue;
            }
            match s.co.conn().run_silent(verb).await {
                Ok(None) => {}
                Ok(Some(e)) if !failed => {
                    // Best effort: shards committed before this one stay committed.
                    self.emit_error(e, extended);
                    failed = true;
                }
                _ => s.co.conn().broken = true,
            }
        }
        failed
    }
}
