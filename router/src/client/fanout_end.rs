//! How a statement that ran on several shards ends: its per-shard transactions commit
//! together (two-phase commit when enabled, SPEC §4; else best effort) or roll back, or,
//! when it ran inside the client's own transaction, its connections stay with that
//! transaction until the client's COMMIT or ROLLBACK.

use super::job::Job;
use super::shard_stream::{Stream, Trailer};
use super::sharded_path::ShardedPath;
use orochi_twopc::Ahead;
use orochi_wire::PgError;

/// Puts a shard's open transaction in the failed state (a statement of the same
/// transaction failed on another shard).
const ABORT_TX: &str = "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '25P02', MESSAGE = 'the transaction failed on another shard'; END$$";

/// Ends the transactions of a statement whose PREPAREs were pipelined but that will not
/// be committed (sending it to a later shard failed): each stream is read to its end,
/// then rolled back ([`roll_back`]).
pub(super) async fn roll_back_pipelined(streams: &mut [Stream], mut ahead: Ahead) {
    for s in streams.iter_mut() {
        if s.drain().await.is_err() {
            s.co.conn().broken = true;
        } else if let Trailer::Answered(r) = &s.trailer {
            ahead.answer(s.co.pool.shard, r.clone().map_err(crate::twopc::from_pg));
        }
    }
    for s in streams.iter_mut() {
        roll_back(s, Some(&ahead)).await;
    }
}

/// Rolls back one stream's transaction: `ROLLBACK PREPARED` where its pipelined PREPARE
/// answered, else `ROLLBACK`. A connection that cannot is closed; a gid left prepared
/// has no decision row, so the sweeper rolls it back (`timeout_seconds` later).
async fn roll_back(s: &mut Stream, ahead: Option<&Ahead>) {
    if s.co.conn().broken {
        return;
    }
    let gid = ahead.and_then(|a| a.prepared_gid(s.co.pool.shard));
    let sql = match &gid {
        Some(g) => orochi_twopc::sql::rollback_prepared(g),
        None => "ROLLBACK".to_string(),
    };
    match s.co.conn().run_silent(&sql).await {
        Ok(None) => {}
        Ok(Some(e)) if gid.is_some() => {
            tracing::warn!(gid = ?gid, "ROLLBACK PREPARED failed, left to the sweeper: {e}");
        }
        _ => s.co.conn().broken = true,
    }
}

impl ShardedPath<'_> {
    /// When this statement's PREPAREs can go out with it (`orochi_twopc::Ahead`, issue
    /// 16): an autocommit write on two or more shards named by its shard keys, on a
    /// pool whose two-phase commit is set up, with no `query_timeout` running. Not a
    /// write that reaches every shard for want of keys (a bulk UPDATE or DELETE): one
    /// shard's part can take long there, and a PREPARE sent early ages meanwhile, so
    /// past `timeout_seconds` the sweeper would roll it back. Not under a deadline: a
    /// statement abandoned at it has its connections closed, and a shard where it had
    /// finished would keep the prepared transaction, and its locks, until the sweeper.
    pub(super) fn pipelined_prepares(&self, job: &Job, conns: usize) -> Option<Ahead> {
        let sc = self.ctx.user.sharding.as_ref()?;
        let fits = job.write
            && job.wrap
            && job.keyed
            && !job.in_tx
            && conns > 1
            && sc.twopc
            && sc.twopc_ready.get().is_some()
            && self.ctx.deadlines.query().is_none();
        fits.then(|| self.ctx.app.twopc.ahead(&job.shards))
            .flatten()
    }

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
        ahead: Option<Ahead>,
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
                ahead,
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
        if failed {
            for s in streams.iter_mut() {
                roll_back(s, ahead.as_ref()).await;
            }
            return failed;
        }
        for s in streams.iter_mut() {
            if s.co.conn().broken {
                continue;
            }
            match s.co.conn().run_silent("COMMIT").await {
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
