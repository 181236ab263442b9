//! A router follows a reshard it was not told about (SPEC §10). `reshard cutover` switches
//! the routers listed with `--router`; any other router — not listed, or restarted later
//! with the old configuration — would keep its old map: its writes are refused by the
//! fence on the old shards, but its reads would go on seeing the old shards while the
//! applications write to the new ones.
//!
//! So every pool's shard 0 is asked what `orochi.reshard` records (the decision, and why
//! it cannot misfire during a cutover, is `orochi_reshard::follow`). When this router's
//! side was left, it switches itself exactly as `RESHARD SWITCH` does
//! (`App::switch_shard_map`, which a reload does not undo) and logs it.
//!
//! **No stale read after a cutover.** The follower's session names itself
//! ([`follow::APPLICATION_NAME`]) and listens on [`follow::CHANNEL`]; it asks again at
//! once when notified, else every [`EVERY`]. The tool, once it recorded the phase and
//! before it resumes the listed routers, notifies the side it left and waits until no
//! follower session is connected there any more: an unlisted router has switched by then
//! (and a listed one moved its follower to its new map). So when the listed routers
//! write again on the new side, no connected router still reads the old one. A follower
//! also moves whenever its pool's map changed (a switch, a reload), so it always
//! watches the shard 0 of the map it serves. At start the router runs one round before
//! it accepts clients, so a router started with the old configuration after a cutover
//! serves the new map from its first query.
//!
//! **What stays open: a follower without its connection.** While the follower cannot
//! reach its shard 0 (that server restarting, the network between them down), this
//! router learns nothing of a cutover, and the tool does not wait for it (it waits for
//! the followers that are connected): the router reads the old side until the follower
//! connects again. It never writes there (the old side is fenced). The follower
//! reconnects at once when its connection drops while it waits ([`EVERY`] after a round
//! that failed), then every [`EVERY`], and a session that opens checks before it waits
//! for anything, so the window is the outage of shard 0 plus at most [`EVERY`]. It is
//! not closed because closing it means holding the pool's clients until the map is
//! confirmed: every client of the pool would wait — on every shard, not only shard 0 —
//! for as long as shard 0 is unreachable (with a bound, the window is open again past
//! the bound). Trading the pool's availability for that is not cheap.
//!
//! One dedicated connection per pool with distributed tables (only those can be
//! resharded), to shard 0's primary; a pool never resharded costs one catalog lookup per
//! round. The followers follow the pool set (`pool_tasks`): a sharded pool added by
//! RELOAD gets its follower within a second, and a pool removed loses it (and its
//! connection). Without that, a router whose sharded pool came by RELOAD never followed
//! a cutover it was not told about, and the tool, waiting for followers, never saw one
//! for it.

use crate::app::App;
use crate::backend::conn::ServerConn;
use orochi_reshard::follow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// How often each pool's shard 0 is asked when no notification comes: the longest a
/// router whose follower was not connected at a cutover (shard 0 unreachable, just
/// reconnecting) reads the old shards after it.
pub const EVERY: Duration = Duration::from_millis(500);

/// The first round of every pool, before clients are accepted: at most this long.
const FIRST_ROUND: Duration = Duration::from_secs(2);

/// One follower per pool that has distributed tables, for as long as the pool is
/// configured (RELOAD adds and removes them); each start-up pool's first round is done
/// (or [`FIRST_ROUND`] passed) when this returns.
pub async fn start(app: &Arc<App>) {
    type Firsts = HashMap<String, oneshot::Sender<()>>;
    let mut waits = Vec::new();
    let mut firsts = Firsts::new();
    for (pool, ()) in followed_pools(app) {
        let (tx, rx) = oneshot::channel();
        firsts.insert(pool, tx);
        waits.push(rx);
    }
    let firsts = Mutex::new(firsts);
    crate::pool_tasks::supervise(
        app,
        "reshard follower",
        followed_pools,
        move |app, pool, _: &(), stop| {
            let first = firsts.lock().ok().and_then(|mut f| f.remove(pool));
            tokio::spawn(run(app.clone(), pool.to_string(), stop, first));
        },
    );
    let all = async {
        for rx in waits {
            let _ = rx.await;
        }
    };
    let _ = tokio::time::timeout(FIRST_ROUND, all).await;
}

/// The pools that want a follower now: those with distributed tables.
fn followed_pools(app: &App) -> Vec<(String, ())> {
    let reg = app.registry.load();
    reg.dbs
        .keys()
        .filter(|name| !orochi_reshard::topology::tables_of(&reg.config, name).is_empty())
        .map(|name| (name.clone(), ()))
        .collect()
}

/// The follower's session: shard 0 of the map it was opened under.
struct Session {
    conn: ServerConn,
    map: Vec<String>,
}

/// The databases of `pool`'s map now.
fn current_map(app: &App, pool: &str) -> Option<Vec<String>> {
    map_in(&app.config(), pool)
}

/// The databases of `pool`'s map in `config`.
fn map_in(config: &orochi_config::Config, pool: &str) -> Option<Vec<String>> {
    let p = config.pools.get(pool)?;
    Some(p.shards.iter().map(|s| s.database.clone()).collect())
}

async fn open(app: &App, pool: &str) -> Result<Session, String> {
    let (target, timeout, map) = {
        let reg = app.registry.load();
        let user = reg
            .dbs
            .get(pool)
            .and_then(|u| u.values().next())
            .ok_or("the pool is gone")?;
        let target = user
            .primary(0)
            .map(|p| p.target.clone())
            .ok_or("shard 0 has no primary")?;
        let map = map_in(&reg.config, pool).ok_or("the pool is gone")?;
        (target, user.pool.connect_timeout, map)
    };
    let mut conn = ServerConn::connect_named(&target, timeout, Some(follow::APPLICATION_NAME))
        .await
        .map_err(|e| e.to_string())?;
    query(&mut conn, &format!("LISTEN {}", follow::CHANNEL)).await?;
    Ok(Session { conn, map })
}

async fn query(conn: &mut ServerConn, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    match conn.query_rows(sql).await {
        Ok(Ok((_, rows))) => Ok(rows),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The follower of `pool` until `stop` (the pool left the configuration, or shutdown).
/// `first` is told when the first round is done.
async fn run(
    app: Arc<App>,
    pool: String,
    stop: CancellationToken,
    mut first: Option<oneshot::Sender<()>>,
) {
    let mut session: Option<Session> = None;
    loop {
        // Switched (by RESHARD SWITCH, a reload or this follower): watch the new shard 0.
        if session
            .as_ref()
            .is_some_and(|s| Some(&s.map) != current_map(&app, &pool).as_ref())
        {
            session = None;
        }
        if session.is_none() {
            match open(&app, &pool).await {
                Ok(s) => session = Some(s),
                Err(e) => tracing::debug!(pool = %pool, "reshard follow: shard 0: {e}"),
            }
        }
        let mut notified = false;
        if let Some(s) = session.as_mut() {
            match check(&app, &pool, &mut s.conn).await {
                Ok(false) => {}
                // Switched: the next round opens a session on the new shard 0.
                Ok(true) => session = None,
                Err(e) => {
                    tracing::debug!(pool = %pool, "reshard follow: {e}");
                    session = None;
                }
            }
        }
        if let Some(tx) = first.take() {
            let _ = tx.send(());
        }
        // A notification (or anything the server sends) wakes the next round early.
        let wait = async {
            match session.as_mut() {
                Some(s) => match tokio::time::timeout(EVERY, s.conn.read_frame()).await {
                    Ok(Ok(_)) => notified = true,
                    Ok(Err(e)) => {
                        tracing::debug!(pool = %pool, "reshard follow: {e}");
                        session = None;
                    }
                    Err(_) => {}
                },
                None => tokio::time::sleep(EVERY).await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wait => {}
        }
        if notified {
            tracing::debug!(pool = %pool, "reshard follow: notified");
        }
    }
}

/// One round; true when the router switched.
async fn check(app: &App, pool: &str, conn: &mut ServerConn) -> Result<bool, String> {
    let has = query(conn, follow::PROBE_SQL).await?;
    if has
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .as_deref()
        != Some("t")
    {
        return Ok(false);
    }
    let rows = query(conn, &follow::state_sql(pool)).await?;
    let Some(current) = current_map(app, pool) else {
        return Ok(false);
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
