//! Two-phase-commit recovery before a cutover (SPEC §10 step 2: "require no prepared
//! transactions (run 2PC recovery first)"). A prepared transaction left by a router that
//! died between PREPARE and COMMIT PREPARED holds its rows' locks and its changes out of
//! the WAL the new shards replicate; a cutover must not begin with one pending.
//!
//! The routers' own sweeper settles those in time; `cutover` runs the same sweep at once
//! (the `orochi-twopc` crate's [`TwoPc::sweep`], over sessions of this tool), so an
//! operator does not wait for the next round or does the routers' work by hand. It
//! resolves exactly what a router's sweeper would: gids of the `orochi_` shape older than
//! the pool's `[sharding.two_phase_commit] timeout`, by the decision recorded on their
//! coordinator shard (commit if one says so, else an `abort` is recorded first, fencing
//! a late coordinator). Foreign prepared transactions are never touched: they still
//! make `cutover` refuse, naming them.

use crate::conn::{self, Conn};
use crate::topology::{Endpoint, Login};
use orochi_twopc::{
    BoxFuture, ParticipantError, QueryResult, Settings, ShardAccess, ShardSession, TwoPc,
};
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// The serving side's shards, reached with the tool's login; each sweep session is a new
/// connection (the sweeper holds a session advisory lock on shard 0).
struct Shards<'a> {
    eps: &'a [Endpoint],
    login: &'a Login,
}

struct Session(Conn);

impl ShardSession for Session {
    fn simple_query<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<QueryResult, ParticipantError>> {
        Box::pin(async move {
            let msgs =
                self.0
                    .client
                    .simple_query(sql)
                    .await
                    .map_err(|e| match e.as_db_error() {
                        Some(d) => ParticipantError::server(d.code().code(), d.message()),
                        None => ParticipantError::lost(e.to_string()),
                    })?;
            let mut out = QueryResult {
                tag: String::new(),
                rows: Vec::new(),
            };
            for m in msgs {
                match m {
                    SimpleQueryMessage::Row(r) => out
                        .rows
                        .push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
                    SimpleQueryMessage::CommandComplete(n) => out.tag = n.to_string(),
                    _ => {}
                }
            }
            Ok(out)
        })
    }
}

impl ShardAccess for Shards<'_> {
    fn shard_count(&self) -> usize {
        self.eps.len()
    }

    fn connect(
        &self,
        shard: usize,
    ) -> BoxFuture<'_, Result<Box<dyn ShardSession>, ParticipantError>> {
        Box::pin(async move {
            let ep = self
                .eps
                .get(shard)
                .ok_or_else(|| ParticipantError::lost(format!("no shard {shard}")))?;
            let c = conn::connect(ep, self.login, &format!("shard {shard}"))
                .await
                .map_err(|e| ParticipantError::lost(e.to_string()))?;
            Ok(Box::new(Session(c)) as Box<dyn ShardSession>)
        })
    }
}

/// One recovery sweep of the serving side; prints what it settled and any problem.
/// Whatever it could not settle is left for the prepared-transaction check that follows,
/// which refuses the cutover naming it.
pub async fn sweep(pool: &str, eps: &[Endpoint], login: &Login, timeout: Duration) {
    // Used only for gids this instance would create; it creates none.
    let twopc = TwoPc::new(Settings::new("reshard", timeout));
    let report = twopc.sweep(pool, &Shards { eps, login }).await;
    for g in &report.committed {
        println!(
            "2PC recovery: committed prepared transaction {g} (its coordinator decided commit)"
        );
    }
    for g in &report.rolled_back {
        println!("2PC recovery: rolled back prepared transaction {g} (no commit decision)");
    }
    if !report.locked && report.errors.is_empty() {
        // Another sweeper (a router's) holds the lock and is at it: the check waits.
        println!("2PC recovery: a router's sweeper is running; leaving it to that one");
    }
    for e in &report.errors {
        eprintln!("2PC recovery: {e}");
    }
}
