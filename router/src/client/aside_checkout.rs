//! The router's own questions to a shard, asked on a client's behalf: the one-time
//! checks of a sharded pool (are the shards distinct, do they sort text in byte order),
//! a table's column order for an `INSERT` without a column list, and a gather's rows.
//!
//! They wait for a connection as the client's statements do (`checkout_wait.rs`): a
//! client that cancels while one waits gets its 57014, and one that closes its socket
//! leaves the queue. Before, they took connections with a bare `Pool::checkout`, so such
//! a client stayed queued until `query_wait_timeout` and its statement then ran anyway
//! (the cancel was forgotten by the time the statement's own checkout came).
//!
//! Two outcomes are kept apart, as the callers treat them differently: the pool cannot
//! lend a connection (each caller has its own answer: a check not judged, a refusal, an
//! `08006`), and the client gave up (the statement ends here, whatever the caller was
//! about to do).

use super::checkout_wait::checkout_or_give_up;
use super::job::Route;
use super::sharded_path::ShardedPath;
use crate::backend::pool::{Checkout, ServerPool};
use crate::error::{Result, RouterError};
use std::sync::Arc;

impl ShardedPath<'_> {
    /// A connection of `pool` for the router's own question. `Ok(Err)`: the pool could
    /// not lend one; `Err`: the client cancelled or left while it waited (hand it to
    /// `gave_up`).
    pub(crate) async fn checkout_aside(
        &mut self,
        pool: &Arc<ServerPool>,
    ) -> Result<std::result::Result<Checkout, RouterError>> {
        let checkout = std::pin::pin!(pool.checkout());
        let wait = checkout_or_give_up(
            checkout,
            &self.ctx.client.info,
            &self.ctx.cancel.slot,
            &self.front.stream,
        );
        match wait.await {
            Ok((co, _)) => Ok(Ok(co)),
            Err(e) if gave_up(&e) => Err(e),
            Err(e) => Ok(Err(e)),
        }
    }

    /// The statement ends because its client gave up while the router waited for a
    /// connection of its own: the cancel's 57014 is answered (and fails a held-back
    /// transaction, as any error there does); a closed client ends the session.
    pub(crate) fn gave_up(&mut self, e: RouterError, extended: bool) -> Result<Route> {
        self.fail_held_back();
        self.front
            .checkout_failed(self.back, self.ctx.id, e, extended)?;
        Ok(Route::Done)
    }
}

/// Whether `e` is `checkout_or_give_up`'s own ending (a cancel, a closed client) rather
/// than the pool's failure to lend.
fn gave_up(e: &RouterError) -> bool {
    match e {
        RouterError::ClientIo(_) => true,
        RouterError::Pg(pg) => pg.fields.code == "57014",
        _ => false,
    }
}
