//! A router follows a reshard it was not told about (SPEC §10). `reshard cutover` switches
//! the routers listed with `--router`; any other router — not listed, or restarted later
//! with the old configuration — would keep its old map: its writes are refused by the
//! fence on the old shards, but its reads would go on seeing data that stopped changing.
//!
//! So every pool's shard 0 is asked, every [`EVERY`], what `orochi.reshard` records (the
//! decision, and why it cannot misfire during a cutover, is `orochi_reshard::follow`).
//! When this router's side was left, it switches itself exactly as `RESHARD SWITCH` does
//! (`App::switch_shard_map`, which a reload does not undo) and logs it. The check holds one
//! dedicated connection per pool (the 2PC sweeper's kind, to the current primary) and
//! reconnects after a switch or an error; a pool never resharded costs one catalog lookup
//! per round; pools without distributed tables are not asked. A router started with the old configuration follows at its first round.

use crate::app::App;
use crate::twopc::PoolShards;
use orochi_twopc::{ShardAccess, ShardSession};
use std::sync::Arc;
use std::time::Duration;

/// How often each pool's shard 0 is asked: the longest a router not listed in a cutover
/// reads the old shards after it.
pub const EVERY: Duration = Duration::from_millis(500);

/// One follower per pool that has distributed tables (only those can be resharded), for
/// the life of the process.
pub fn spawn(app: &Arc<App>) {
    let reg = app.registry.load();
    for (name, users) in reg.dbs.iter() {
        let Some(user) = users.values().next() else {
            continue;
        };
        if orochi_reshard::topology::tables_of(&reg.config, name).is_empty() {
            continue;
        }
        let access = PoolShards::live(app, name, user);
        tokio::spawn(follow(app.clone(), name.clone(), access));
    }
}

async fn follow(app: Arc<App>, pool: String, access: PoolShards) {
    let stop = app.shutdown.clone();
    let mut session: Option<Box<dyn ShardSession>> = None;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if session.is_none() {
            match access.connect(0).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    tracing::debug!(pool = %pool, "reshard follow: shard 0 unreachable: {e}");
                    continue;
                }
            }
        }
        let Some(s) = session.as_mut() else { continue };
        match check(&app, &pool, s.as_mut()).await {
            Ok(false) => {}
            // Switched (the next round asks the new shard 0) or failed: a new connection.
            Ok(true) => session = None,
            Err(e) => {
                tracing::debug!(pool = %pool, "reshard follow: {e}");
                session = None;
            }
        }
    }
}

/// One round; true when the router switched.
async fn check(app: &App, pool: &str, s: &mut dyn ShardSession) -> Result<bool, String> {
    use orochi_reshard::follow;
    let has = s
        .simple_query(follow::PROBE_SQL)
        .await
        .map_err(|e| e.to_string())?;
    if has.first_value() != Some("t") {
        return Ok(false);
    }
    let rows = s
        .simple_query(&follow::state_sql(pool))
        .await
        .map_err(|e| e.to_string())?
        .rows;
    let current: Vec<String> = match app.config().pools.get(pool) {
        Some(p) => p.shards.iter().map(|s| s.database.clone()).collect(),
        None => return Ok(false),
    };
    let Some(f) = follow::decide(&rows, &current) else {
        return Ok(false);
    };
    let now = app
        .switch_shard_map(pool, &f.map_json)
        .map_err(|e| format!("switch to the map of reshard {}: {e}", f.id))?;
    tracing::warn!(
        pool = %pool,
        reshard = %f.id,
        phase = f.phase,
        databases = %now.join(","),
        "this router was not switched by the reshard's cutover; following the map recorded on the shards"
    );
    Ok(true)
}
