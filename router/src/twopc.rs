//! Two-phase commit wiring (SPEC §4): the `orochi-twopc` coordinator and sweeper reach
//! shards through the router's connections. A [`ConnParticipant`] is a pooled server
//! connection holding the client's open transaction; [`PoolShards`] opens dedicated
//! connections to a pool's shard primaries for the recovery sweeper (its advisory lock
//! is held per session, so those connections are never pooled). The sweeper looks each
//! shard's primary up when it connects, through the same role detection the pools use,
//! so recovery follows a failover without a restart.

use crate::app::App;
use crate::backend::conn::{ServerConn, ServerTarget};
use crate::backend::UserPools;
use orochi_twopc::{
    BoxFuture, Participant, ParticipantError, QueryResult, ShardAccess, ShardSession,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) fn from_pg(e: orochi_wire::PgError) -> ParticipantError {
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

/// Where the shard primaries of one pool are.
enum Primaries {
    /// Known now (setup: one short use).
    Fixed(Vec<Option<ServerTarget>>),
    /// Looked up in the router's current registry at every connection (the sweeper: it
    /// runs for the life of the process and must follow promotions and reloads).
    Live { app: Arc<App>, pool: String },
}

/// The shard primaries of one pool, as the sweeper reaches them.
pub struct PoolShards {
    primaries: Primaries,
    shards: usize,
    timeout: Duration,
}

fn primaries(user: &UserPools) -> Vec<Option<ServerTarget>> {
    (0..user.shards.len())
        .map(|s| user.primary(s).map(|p| (*p.target).clone()))
        .collect()
}

impl PoolShards {
    pub fn new(user: &UserPools) -> Self {
        PoolShards {
            primaries: Primaries::Fixed(primaries(user)),
            shards: user.shards.len(),
            timeout: user.pool.connect_timeout,
        }
    }

    /// As [`PoolShards::new`], logging in as another role (`orochi-router setup
    /// --admin-user`).
    pub fn with_login(user: &UserPools, name: &str, password: Option<String>) -> Self {
        let mut shards = Self::new(user);
        if let Primaries::Fixed(targets) = &mut shards.primaries {
            for t in targets.iter_mut().flatten() {
                t.user = name.to_string();
                t.password = password.clone();
            }
        }
        shards
    }

    /// Follows `pool`'s current primaries in `app`'s registry.
    pub fn live(app: &Arc<App>, pool: &str, user: &UserPools) -> Self {
        PoolShards {
            primaries: Primaries::Live {
                app: app.clone(),
                pool: pool.to_string(),
            },
            shards: user.shards.len(),
            timeout: user.pool.connect_timeout,
        }
    }

    fn target(&self, shard: usize) -> Option<ServerTarget> {
        match &self.primaries {
            Primaries::Fixed(t) => t.get(shard).cloned().flatten(),
            Primaries::Live { app, pool } => {
                let reg = app.registry.load();
                let user = reg.dbs.get(pool)?.values().next()?;
                user.primary(shard).map(|p| (*p.target).clone())
            }
        }
    }
}

impl ShardAccess for PoolShards {
    /// For the sweeper, the pool's shard count now: a reshard's switch (`RESHARD
    /// SWITCH`, or a router following one) changes it while the process runs, and a
    /// sweep over the count at startup would never look at the shards added.
    fn shard_count(&self) -> usize {
        match &self.primaries {
            Primaries::Fixed(_) => self.shards,
            Primaries::Live { app, pool } => app
                .registry
                .load()
                .dbs
                .get(pool)
                .and_then(|users| users.values().next())
                .map_or(0, |u| u.shards.len()),
        }
    }

    fn connect(
        &self,
        shard: usize,
    ) -> BoxFuture<'_, Result<Box<dyn ShardSession>, ParticipantError>> {
        Box::pin(async move {
            let t = self
                .target(shard)
                .ok_or_else(|| ParticipantError::lost(format!("shard {shard} has no primary")))?;
            let conn = ServerConn::connect(&t, self.timeout)
                .await
                .map_err(|e| ParticipantError::lost(e.to_string()))?;
            Ok(Box::new(Dedicated(conn)) as Box<dyn ShardSession>)
        })
    }
}

/// A sweep that resolved prepared transactions: a `2pc.sweep` span (a trace of its
/// own) with one `2pc.recover` child per participant gid committed or rolled back.
fn trace_recoveries(
    t: &crate::otel::Tracing,
    pool: &str,
    started: std::time::SystemTime,
    report: &orochi_twopc::SweepReport,
) {
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry::KeyValue;
    if report.committed.is_empty() && report.rolled_back.is_empty() && report.in_doubt.is_empty() {
        return;
    }
    let sweep = t.past(
        &opentelemetry::Context::new(),
        "2pc.sweep",
        started,
        vec![KeyValue::new("db.namespace", pool.to_string())],
    );
    let cx = opentelemetry::Context::new().with_span(sweep);
    let outcomes = report
        .committed
        .iter()
        .map(|g| (g, "commit"))
        .chain(report.rolled_back.iter().map(|g| (g, "abort")))
        .chain(report.in_doubt.iter().map(|g| (g, "in_doubt")));
    for (gid, decision) in outcomes {
        let mut span = t.past(
            &cx,
            "2pc.recover",
            started,
            vec![
                KeyValue::new("orochi.gid", gid.clone()),
                KeyValue::new("orochi.decision", decision),
            ],
        );
        if decision == "in_doubt" {
            crate::otel::fail_span(&mut span, "not resolved by this sweep");
        }
    }
    cx.span().end();
}

/// One sweeper per sharded pool while two-phase commit is enabled. The set follows
/// RELOAD (`pool_tasks`): a sharded pool added later gets its sweeper within a second, a
/// new `cleanup_interval_seconds` restarts the sweepers with it, and turning 2PC off
/// stops them.
pub fn spawn_sweepers(app: &Arc<App>) {
    crate::pool_tasks::supervise(app, "2PC recovery sweeper", sweeper_pools, spawn_sweeper);
}

/// The pools that want a sweeper now, with their sweep interval.
fn sweeper_pools(app: &App) -> Vec<(String, Duration)> {
    let reg = app.registry.load();
    let tpc = &reg.config.sharding.two_phase_commit;
    if !tpc.enabled {
        return Vec::new();
    }
    reg.dbs
        .iter()
        .filter(|(_, users)| users.values().next().is_some_and(|u| u.shards.len() >= 2))
        .map(|(name, _)| (name.clone(), tpc.cleanup_interval))
        .collect()
}

fn spawn_sweeper(app: &Arc<App>, pool: &str, interval: &Duration, stop: CancellationToken) {
    let Some(user) = app
        .registry
        .load()
        .dbs
        .get(pool)
        .and_then(|users| users.values().next().cloned())
    else {
        return;
    };
    let access = PoolShards::live(app, pool, &user);
    let app2 = app.clone();
    let pool = pool.to_string();
    let interval = *interval;
    tokio::spawn(async move {
        // Our own loop around `sweep`, so every recovery decision reaches the metrics.
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let started = std::time::SystemTime::now();
                    let report = app2.twopc.sweep(&pool, &access).await;
                    if let Some(t) = app2.otel.get() {
                        trace_recoveries(t, &pool, started, &report);
                    }
                    for _ in &report.committed {
                        app2.metrics.twopc_recovered(&pool, true);
                    }
                    for _ in &report.rolled_back {
                        app2.metrics.twopc_recovered(&pool, false);
                    }
                    if report.lock_unavailable_streak >= orochi_twopc::sweeper::LOCK_MISSES_WARN {
                        app2.metrics.twopc_sweeper_lock_unavailable(&pool);
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sweeper's view follows a shard-map switch (2 → 4 shards).
    #[tokio::test]
    async fn the_live_shard_count_follows_a_switch() {
        let text = "[general]\n[pools.p]\n[pools.p.users.0]\nusername = \"u\"\npassword = \"p\"\n\
                    [pools.p.shards.0]\ndatabase = \"d0\"\nservers = [[\"127.0.0.1\", 1, \"primary\"]]\n\
                    [pools.p.shards.1]\ndatabase = \"d1\"\nservers = [[\"127.0.0.1\", 1, \"primary\"]]\n";
        let config = orochi_config::Config::from_str_with_env(text, "t.toml", &|_| None)
            .expect("valid config");
        let app = App::new(config, None);
        let user = app.registry.load().dbs["p"]["u"].clone();
        let live = PoolShards::live(&app, "p", &user);
        let fixed = PoolShards::new(&user);
        assert_eq!((live.shard_count(), fixed.shard_count()), (2, 2));
        let map: Vec<String> = (0..4)
            .map(|i| format!(r#"{{"database":"n{i}","servers":[["127.0.0.1",1,"primary"]]}}"#))
            .collect();
        app.switch_shard_map("p", &format!("[{}]", map.join(",")))
            .expect("switched");
        assert_eq!(live.shard_count(), 4, "the sweeper sees the new shards");
        assert_eq!(
            fixed.shard_count(),
            2,
            "setup's one-off view stays as taken"
        );
        assert!(live.target(3).is_some());
    }
}
