//! The session's own side of a sharded pool, below the sharded path (`sharded.rs`): which
//! schema plans its statements, the transaction status it reports while no server is
//! attached, and moving its attached connection between the shards of a transaction
//! (`ensure_server` does that; the sharded path only parks and un-parks). Kept on
//! `Session` because the pass-through path uses them too.

use super::session::Session;
use crate::planner::sharding::ShardingSchema;
use std::sync::Arc;

impl Session {
    /// The planner's view of this pool, unless the session chose its shard by hand.
    pub(crate) fn sharding(&self) -> Option<Arc<ShardingSchema>> {
        if self.ctx.shard.is_some() {
            return None;
        }
        self.ctx.user.sharding.clone()
    }

    /// Transaction status the client sees while no server is attached.
    pub(crate) fn local_status(&self) -> u8 {
        let Some(tx) = self.sharded_tx() else {
            return if self.back.phase.is_attached() {
                self.back.tx_status
            } else {
                b'I'
            };
        };
        if tx.tx_poisoned {
            return b'E';
        }
        if self.back.phase.is_attached() {
            return self.back.tx_status;
        }
        match &tx.pending_begin {
            Some(_) if tx.pending_failed => b'E',
            Some(_) => b'T',
            None => b'I',
        }
    }

    /// May the session move to another shard inside its transaction? Only between
    /// statements of an explicit transaction on a sharded pool in transaction mode.
    pub(crate) fn can_switch_shard(&self) -> bool {
        self.sharding().is_some()
            && self.ctx.mode == orochi_config::PoolMode::Transaction
            && ((self.sharded_tx().is_some_and(|t| t.tx_begin.is_some())
                && self.back.tx_status == b'T')
                || (self.sharded_tx().is_none_or(|t| t.tx_begin.is_none())
                    && self.back.tx_status == b'I'
                    && self.back.unsynced))
            && !self.back.phase.copy_in()
            && !self.back.phase.server_skipping()
    }

    /// Before leaving a connection mid-pipeline: ends its extended-protocol batch with a
    /// Sync of our own (inside an explicit transaction that commits nothing) and relays
    /// every answer still owed to the client. `false` when the batch failed there (the
    /// client got the error; its messages up to Sync are skipped, as PostgreSQL would).
    pub(crate) async fn settle_current(&mut self) -> crate::error::Result<bool> {
        if self.front.expect.is_empty() && !self.back.unsynced {
            return Ok(true);
        }
        let sync = orochi_wire::FrontendMessage::Sync.to_frame();
        self.send_server(
            &sync,
            Some(super::expect::Expect::Swallow(super::expect::Term::Ready {
                started: None,
            })),
        );
        self.back.unsynced = false;
        self.back.phase.set_server_skipping(false);
        if let Some(co) = self.back.phase.server_mut() {
            let r = co.conn().write_all(&self.back.sout).await;
            self.back.sout.clear();
            r?;
        }
        while !self.front.expect.is_empty() {
            let Some(co) = self.back.phase.server_mut() else {
                break;
            };
            let f = co.conn().read_frame().await?;
            self.on_server_frame(f)?;
        }
        if self.back.tx_status != b'T' {
            self.front.router_skipping = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Parks the current connection and takes the one already open on `shard`, if any.
    pub(crate) fn switch_to_parked(&mut self, shard: usize) -> bool {
        if let Some(cur) = self.back.phase.detach() {
            self.tx().parked.push(cur);
        }
        let Some(co) = self.tx().take_parked(shard) else {
            return false;
        };
        self.ctx
            .cancel
            .slot
            .set(Some(super::shard_stream::cancel_target(&co)));
        self.back.phase.attach(co);
        self.back.tx_status = b'T';
        true
    }
}
