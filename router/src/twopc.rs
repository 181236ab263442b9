//! Two-phase commit wiring (SPEC §4): the `orochi-twopc` coordinator and sweeper reach
//! shards through the router's connections. A [`ConnParticipant`] is a pooled server
//! connection holding the client's open transaction; [`PoolShards`] opens dedicated
//! connections to a pool's shard primaries for the recovery sweeper (its advisory lock
//! is held per session, so those connections are never pooled).

use crate::app::App;
use crate::backend::conn::{ServerConn, ServerTarget};
use crate::backend::UserPools;
use orochi_twopc::{
    BoxFuture, Participant, ParticipantError, QueryResult, ShardAccess, ShardSession,
};
use std::sync::Arc;
use std::time::Duration;

fn from_pg(e: orochi_wire::PgError) -> ParticipantError {
    ParticipantError::server(e.fields.code.clone(), e.fields.message.clone())
}

/// A pooled connection taking part in a commit.
pub struct ConnParticipant<'a> {
    pub shard: usize,
    pub conn: &'a mut ServerConn,
}

impl Participant for ConnParticipant<'_> {
    fn shard(&self) -> usize {
        self.shard
    }

    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>> {
        Box::pin(async move {
            match self.conn.query_rows(sql).await {
                Ok(Ok((tag, _))) => Ok(tag),
                Ok(Err(e)) => Err(from_pg(e)),
                Err(e) => {
                    self.conn.broken = true;
                    Err(ParticipantError::lost(e.to_string()))
                }
            }
        })
    }
}

/// A dedicated connection of the sweeper.
struct Dedicated(ServerConn);

impl ShardSession for Dedicated {
    fn simple_query<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<QueryResult, ParticipantError>> {
        Box::pin(async move {
            match self.0.query_rows(sql).await {
                Ok(Ok((tag, rows))) => Ok(QueryResult { tag, rows }),
                Ok(Err(e)) => Err(from_pg(e)),
                Err(e) => Err(ParticipantError::lost(e.to_string())),
            }
        })
    }
}

/// The shard primaries of one pool, as the sweeper reaches them.
pub struct PoolShards {
    targets: Vec<Option<ServerTarget>>,
    timeout: Duration,
}

impl PoolShards {
    pub fn new(user: &UserPools) -> Self {
        PoolShards {
            targets: (0..user.shards.len())
                .map(|s| user.primary(s).map(|p| p.target.clone()))
                .collect(),
            timeout: user.pool.connect_timeout,
        }
    }
}

impl ShardAccess for PoolShards {
    fn shard_count(&self) -> usize {
        self.targets.len()
    }

    fn connect(
        &self,
        shard: usize,
    ) -> BoxFuture<'_, Result<Box<dyn ShardSession>, ParticipantError>> {
        Box::pin(async move {
            let t =
                self.targets.get(shard).cloned().flatten().ok_or_else(|| {
                    ParticipantError::lost(format!("shard {shard} has no primary"))
                })?;
            let conn = ServerConn::connect(&t, self.timeout)
                .await
                .map_err(|e| ParticipantError::lost(e.to_string()))?;
            Ok(Box::new(Dedicated(conn)) as Box<dyn ShardSession>)
        })
    }
}

/// Creates the `orochi` schema objects on every shard of a pool (idempotent).
pub async fn setup_pool(user: &UserPools) -> Result<(), String> {
    let access = PoolShards::new(user);
    for s in 0..access.shard_count() {
        let mut session = access
            .connect(s)
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        session
            .simple_query(orochi_twopc::SETUP_SQL)
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
    }
    Ok(())
}

/// One sweeper per sharded pool with two-phase commit enabled, for the life of the
/// process (a reload that changes pools takes effect at the next restart).
pub fn spawn_sweepers(app: &Arc<App>) {
    let config = app.config();
    let tpc = &config.sharding.two_phase_commit;
    if !tpc.enabled {
        return;
    }
    let reg = app.registry.load();
    for (name, users) in reg.dbs.iter() {
        let Some(user) = users.values().next() else {
            continue;
        };
        if user.shards.len() < 2 {
            continue;
        }
        let access = PoolShards::new(user);
        let app2 = app.clone();
        let pool = name.clone();
        let interval = tpc.cleanup_interval;
        tokio::spawn(async move {
            // Our own loop around `sweep`, so every recovery decision reaches the metrics.
            let stop = app2.shutdown.clone();
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let report = app2.twopc.sweep(&pool, &access).await;
                        for _ in &report.committed {
                            app2.metrics.twopc_recovered(&pool, true);
                        }
                        for _ in &report.rolled_back {
                            app2.metrics.twopc_recovered(&pool, false);
                        }
                    }
                }
            }
        });
    }
}
