//! The end of a transaction that spans shards: COMMIT runs two-phase commit over the
//! shards it wrote on (the others just commit), ROLLBACK or a failure rolls back every
//! shard, and the client is answered as by one server. A two-phase COMMIT is answered
//! at its commit point; the COMMIT PREPAREDs finish off the client's path
//! (`pending_commits.rs`, which also says how the client still reads its own writes).

use super::reply::{message, ready};
use super::sharded_path::ShardedPath;
use crate::planner::lex::{contains_word_ci, first_keyword};
use orochi_wire::{BackendMessage, PgError};

impl ShardedPath<'_> {
    /// COMMIT/ROLLBACK of a transaction that spans shards: `Some(commit)`.
    pub(crate) fn ends_multi_shard(&self, sql: &str) -> Option<bool> {
        if self
            .back
            .sharded_tx()
            .is_none_or(|t| t.parked.is_empty() && !t.tx_poisoned)
            || crate::planner::session::has_inner_semicolon(sql)
        {
            return None;
        }
        match first_keyword(sql).as_str() {
            "commit" | "end" if !contains_word_ci(sql, "prepared") => Some(true),
            "rollback" | "abort"
                if !contains_word_ci(sql, "prepared") && !contains_word_ci(sql, "to") =>
            {
                Some(false)
            }
            _ => None,
        }
    }

    /// Ends a transaction spanning shards: two-phase commit over the shards it wrote
    /// on (the others just commit), or rollback everywhere; answers the client.
    /// `implicit`: the end of a pipeline's implicit transaction (the client gets only
    /// ReadyForQuery, or the error and ReadyForQuery).
    pub(crate) async fn finish_multi_shard(
        &mut self,
        commit: bool,
        extended: bool,
        implicit: bool,
    ) {
        self.tx().implicit_multi = false;
        let mut all: Vec<crate::backend::Checkout> = std::mem::take(&mut self.tx().parked);
        all.extend(self.back.phase.detach());
        // A multi-shard statement of this transaction that ended half way (see
        // `ShardedTx::tx_poisoned`) failed it, whatever the connections say.
        let failed_tx = self.back.tx_status == b'E' || std::mem::take(&mut self.tx().tx_poisoned);
        let mut error = None;
        if commit && !failed_tx {
            let pool = self.ctx.user.pool_name.clone();
            let wrote = self.tx().wrote.clone();
            let schema = self.ctx.user.sharding.clone();
            let setup = match schema.as_ref() {
                Some(sc) if sc.twopc && sc.twopc_ready.get().is_none() && wrote.len() > 1 => {
                    match crate::twopc_setup::setup_pool(&self.ctx.user).await {
                        Ok(()) => {
                            let _ = sc.twopc_ready.set(());
                            Ok(())
                        }
                        Err(m) => Err(m),
                    }
                }
                _ => Ok(()),
            };
            let atomic = schema.as_ref().is_some_and(|s| s.twopc);
            if let Err(m) = setup {
                error = Some(PgError::error(
                    "08006",
                    format!("two-phase commit setup failed: {m}"),
                ));
                for co in all.iter_mut() {
                    let _ = co.conn().run_silent("ROLLBACK").await;
                }
            } else if wrote.len() > 1 && !atomic {
                error = Some(PgError::error("0A000", "unsupported cross-shard statement: this transaction wrote on several shards and two-phase commit is disabled; it was rolled back"));
                for co in all.iter_mut() {
                    let _ = co.conn().run_silent("ROLLBACK").await;
                }
            } else {
                let (mut w, mut r): (Vec<_>, Vec<_>) = all
                    .iter_mut()
                    .map(|co| {
                        let shard = co.pool.shard;
                        crate::twopc::ConnParticipant {
                            shard,
                            conn: co.conn(),
                        }
                    })
                    .partition(|p| wrote.contains(&p.shard));
                let (outcome, unfinished) = super::trace::twopc_commit(
                    &self.ctx.app,
                    self.ctx.trace.as_ref(),
                    &pool,
                    &mut w,
                    &mut r,
                    None,
                )
                .await;
                let broken: Vec<usize> = outcome
                    .written
                    .iter()
                    .chain(&outcome.read_only)
                    .filter(|f| f.connection == orochi_twopc::ConnState::Broken)
                    .map(|f| f.shard)
                    .collect();
                drop((w, r));
                for co in all.iter_mut() {
                    if broken.contains(&co.pool.shard) {
                        co.conn().broken = true;
                    }
                }
                if let Some(u) = unfinished {
                    // Committed: the client is answered now; the prepared participants'
                    // COMMIT PREPAREDs finish off its path, on their own connections
                    // (`pending_commits.rs`).
                    let owed: Vec<usize> = u.shards().collect();
                    let (go, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut all)
                        .into_iter()
                        .partition(|co| owed.contains(&co.pool.shard));
                    all = stay;
                    self.back.finish_off_path(&self.ctx.app, u, go);
                }
                match outcome.resolution {
                    orochi_twopc::Resolution::Committed => {
                        if wrote.len() > 1 {
                            self.ctx.app.metrics.twopc_committed(&pool);
                        }
                    }
                    orochi_twopc::Resolution::Aborted(e) => {
                        if wrote.len() > 1 {
                            self.ctx.app.metrics.twopc_rolled_back(&pool);
                        }
                        error = Some(PgError::error(e.sqlstate(), e.to_string()));
                    }
                    orochi_twopc::Resolution::InDoubt(e) => {
                        error = Some(PgError::error(e.sqlstate(), e.to_string()));
                    }
                }
            }
        } else {
            for co in all.iter_mut() {
                match co.conn().run_silent("ROLLBACK").await {
                    Ok(None) => {}
                    _ => co.conn().broken = true,
                }
            }
        }
        for co in all {
            co.release();
        }
        self.back.tx_status = b'I';
        self.tx().end_transaction();
        self.ctx.cancel.slot.set(None);
        self.ctx
            .client
            .info
            .set_state(crate::clients::ClientState::Idle);
        self.ctx.client.info.set_link(None);
        match error {
            Some(e) => {
                let mut b = bytes::BytesMut::new();
                e.encode(&mut b);
                self.front.reply(b.freeze());
                if extended {
                    self.front.router_skipping = true;
                } else {
                    self.front.reply(ready(b'I'));
                }
            }
            None if implicit => self.front.reply(ready(b'I')),
            None => {
                let tag = if commit && !failed_tx {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                self.front
                    .reply(message(BackendMessage::CommandComplete(tag.to_string())));
                if !extended {
                    self.front.reply(ready(b'I'));
                }
            }
        }
    }
}
