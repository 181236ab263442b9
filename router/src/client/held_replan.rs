//! A multi-shard portal held from its Bind to its Execute is planned again when the
//! pool's shard map changed in between, or while its Execute waited.
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
//! The pause can also begin after that gate, while the Execute plans (a catalog read on
//! a busy shard 0) or just before its checkouts: the fan-out's own gate then says
//! `MapChanged`, before it took or sent anything, and the portal is planned again in
//! the same way — as often as cutovers keep ending under it, up to
//! [`super::replan::MAX_REPLANS`]. Each run of the job passes the gate first, so no
//! shard is ever sent a plan of a map that is not the session's.
//!
//! If the new map puts the statement on one shard, the portal runs as a fan-out to that
//! one shard: the statement, unchanged, with the Bind's parameters and formats on its
//! own connection (Parse, Bind, Describe, Execute, Sync), every row and the shard's own
//! tag passed on as they are — what a Bind and Execute on that shard return. The
//! client's BindComplete was sent at its Bind and is not repeated. Inside the client's
//! transaction it joins it on that shard, as the multi-shard plan would have.

use super::job::{Extended, Job, Route};
use super::replan::MAX_REPLANS;
use super::sharded_path::ShardedPath;
use super::sharded_tx::HeldPortal;
use crate::error::{Result, RouterError};

/// What a held portal is run for.
#[derive(Clone, Copy)]
pub(crate) enum HeldRun {
    /// Its Execute; `max_rows` > 0 fetches the result in batches.
    Execute { max_rows: i32 },
    /// Its description only, owed at Sync (Describe without Execute): no rows.
    Describe,
}

impl ShardedPath<'_> {
    /// Runs a held portal against the map the session uses when it reaches its shards,
    /// planning it again each time that map is not the one it was planned with.
    pub(crate) async fn run_held(&mut self, h: HeldPortal, run: HeldRun) -> Result<()> {
        let HeldPortal { job, query, shards } = h;
        let (ext, write, in_tx) = (job.extended.clone(), job.write, job.in_tx);
        let mut planned = Some((job, shards));
        for _ in 0..=MAX_REPLANS {
            let job = match planned.take() {
                Some((job, n)) if n == self.schema.shards => job,
                _ => {
                    tracing::debug!(
                        client = self.ctx.id,
                        to = self.schema.shards,
                        "held portal planned again: the shard map changed since its Bind"
                    );
                    match self.replan(&query, &ext, write, in_tx).await? {
                        Some(job) => job,
                        None => return Ok(()),
                    }
                }
            };
            match self.run_held_job(*job, run).await {
                // Nothing was taken or sent; the session took the new map.
                Err(RouterError::MapChanged) => match self.ctx.user.sharding.clone() {
                    Some(schema) => self.schema = schema,
                    None => break,
                },
                r => return r,
            }
        }
        let e = RouterError::MapChanged.to_client().expect("a client error");
        self.emit_error(e, true);
        Ok(())
    }

    /// The portal's statement routed again on `self.schema`; `write` and `in_tx` are
    /// the held plan's (the same statement, in the same transaction state). `None`:
    /// answered here (an error, the client skips to Sync).
    async fn replan(
        &mut self,
        query: &str,
        ext: &Option<Extended>,
        write: bool,
        in_tx: bool,
    ) -> Result<Option<Box<Job>>> {
        let wrote = self.tx().wrote.len();
        match self
            .route_sharded(query, ext.as_ref().map(Extended::args))
            .await?
        {
            Route::Fanout(job) => Ok(Some(job)),
            Route::Done => Ok(None),
            Route::Shard(s) => {
                // Not a participant yet: the fan-out notes the shard if it writes in the
                // client's transaction, as it does for several.
                self.tx().wrote.truncate(wrote);
                Ok(Some(Box::new(Job {
                    shards: vec![s],
                    sql: vec![query.to_string()],
                    shard_param_types: None,
                    // No merge: the shard's answer as it is.
                    merge: Default::default(),
                    write,
                    // One shard: its own Sync commits it (or the client's transaction
                    // keeps it).
                    wrap: false,
                    keyed: false,
                    // The shard's own tag, not one the router counts.
                    select: false,
                    replicated: false,
                    copy_in: None,
                    extended: ext.clone(),
                    in_tx,
                    gather: None,
                })))
            }
        }
    }

    async fn run_held_job(&mut self, mut job: Job, run: HeldRun) -> Result<()> {
        let max_rows = match run {
            HeldRun::Describe => {
                job.merge.limit = Some(crate::planner::sharding::Count::Const(0));
                job.merge.offset = None;
                0
            }
            HeldRun::Execute { max_rows } => max_rows,
        };
        if max_rows <= 0 {
            return self.run_fanout(job).await;
        }
        // Fetched in batches: run it whole, then hand out max_rows at a time.
        self.front.capture = Some(bytes::BytesMut::new());
        let r = self.run_fanout(job).await;
        let buf = self.front.capture.take().unwrap_or_default();
        r?;
        self.suspend(buf, max_rows);
        Ok(())
    }
}
