//! The session's own side of a sharded pool, below the sharded path (`sharded.rs`):
//! moving its attached connection between the shards of a transaction (`ensure_server`
//! does that; the sharded path only parks and un-parks, `ServerLeg::switch_to_parked`),
//! and settling the current shard's pipeline before it ends. Kept on `Session` because
//! settling relays the server's answers (`relay.rs`), which needs the whole session.

use super::session::Session;

impl Session {
    /// May the session move to another shard inside its transaction? Only between
    /// statements of an explicit transaction on a sharded pool in transaction mode.
    pub(crate) fn can_switch_shard(&self) -> bool {
        self.ctx.sharding().is_some()
            && self.ctx.mode == orochi_config::PoolMode::Transaction
            && ((self.back.sharded_tx().is_some_and(|t| t.tx_begin.is_some())
                && self.back.tx_status == b'T')
                || (self.back.sharded_tx().is_none_or(|t| t.tx_begin.is_none())
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

    /// The client's Sync ends a pipeline whose implicit transaction spans shards: the
    /// current shard's batch is settled here, then the sharded path commits all shards
    /// (two-phase) or rolls them back, and the client gets ReadyForQuery as if one server
    /// had run the pipeline.
    pub(crate) async fn finish_implicit_multi(&mut self) -> crate::error::Result<()> {
        let ok = self.settle_current().await?;
        self.front.router_skipping = false;
        if let Some(mut path) = self.sharded_path() {
            path.tx().implicit_multi = false;
            path.finish_multi_shard(ok, false, true).await;
        }
        Ok(())
    }
}
