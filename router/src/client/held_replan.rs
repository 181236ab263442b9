//! A multi-shard portal held from its Bind to its Execute is planned again when the
//! pool's shard map changed in between.
//!
//! The Bind of a statement that needs several shards is answered by the router
//! (BindComplete) and its plan — shard numbers of the map of that moment — waits for the
//! Execute. A reshard cutover can pause the pool between the two: the session then waits
//! at the pause gate before the Execute, takes the new map, and the held plan would run
//! its old shard numbers against the new map's databases (a read of 2 → 3 shards would
//! miss the third; the gate cannot say `MapChanged` here, since the Execute itself was
//! not planned yet). Nothing of the portal was sent to a shard, so its statement is
//! routed again with the Bind's parameters against the map the session now uses.
//!
//! If the new map puts the statement on one shard, the portal would have to become an
//! ordinary Bind on that shard, whose BindComplete the client already had: that case
//! keeps 40001 (run it again), still before anything was sent.

use super::job::{Job, Route};
use super::sharded_path::ShardedPath;
use super::sharded_tx::HeldPortal;
use crate::error::{Result, RouterError};

impl ShardedPath<'_> {
    /// The job to run for a held portal at its Execute: its own when the shard count
    /// is the one it was planned with, else planned again. `None`: answered here (an
    /// error, the client skips to Sync).
    pub(crate) async fn held_job(&mut self, h: HeldPortal) -> Result<Option<Box<Job>>> {
        if h.shards == self.schema.shards {
            return Ok(Some(h.job));
        }
        tracing::debug!(
            client = self.s.id,
            from = h.shards,
            to = self.schema.shards,
            "held portal planned again: the shard map changed since its Bind"
        );
        let wrote = self.tx().wrote.len();
        match self.route_sharded(&h.query, h.job.extended.clone()).await? {
            Route::Fanout(job) => Ok(Some(job)),
            Route::Done => Ok(None),
            Route::Shard(_) => {
                // Not run: not a participant of the transaction either.
                self.tx().wrote.truncate(wrote);
                let e = RouterError::MapChanged.to_client().expect("a client error");
                self.s.router_error(e, true);
                Ok(None)
            }
        }
    }
}
