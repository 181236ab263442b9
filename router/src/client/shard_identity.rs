//! Two shards of a pool must be two databases. PgCat users list one database behind
//! several endpoints as several shards ("DNS resiliency", seed 001), which PgCat gets
//! away with because unrouted queries go to its default shard; here a statement over
//! several shards would run on that database once per endpoint (a replicated write
//! applied twice, a count doubled, or shards waiting on each other's row locks).
//!
//! The test asks each server something only that server can answer. Before the first
//! statement that needs several shards, the router holds one connection to every shard's
//! primary at once and reads each one's backend pid and start time; then every shard is
//! asked whether a backend with an earlier shard's pid *and* start time is connected to
//! its own database (`pg_stat_activity`). Only the very same database sees it: servers
//! that share a system identifier and database oids (copies of one data directory, a
//! volume snapshot, a promoted streaming replica) have backends of their own. Two
//! databases of one server are told apart by the database oid. The connections are all
//! the server user's, whose own sessions it may always see in `pg_stat_activity`.
//!
//! One-shard statements never need this and never run it.

use super::sharded_path::ShardedPath;
use crate::planner::sharding::ShardingSchema;
use std::sync::Arc;

/// This connection's backend: pid and start time in microseconds since the epoch
/// (`extract` is numeric, so the value is exact).
const MARKER: &str = "SELECT pg_backend_pid()::text, (extract(epoch FROM backend_start) * 1000000)::bigint::text FROM pg_catalog.pg_stat_activity WHERE pid = pg_backend_pid()";

/// Which of the `(shard, pid, start)` markers name a backend of this same database.
fn visible(markers: &[(usize, String, String)]) -> String {
    let values: Vec<String> = markers
        .iter()
        .map(|(k, pid, start)| format!("({k}, {pid}::int, {start}::bigint)"))
        .collect();
    format!(
        "SELECT v.k::text FROM (VALUES {}) v(k, pid, start) WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = v.pid AND (extract(epoch FROM a.backend_start) * 1000000)::bigint = v.start AND a.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) ORDER BY 1 LIMIT 1",
        values.join(", ")
    )
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() < 24 && s.bytes().all(|b| b.is_ascii_digit())
}

impl ShardedPath<'_> {
    /// `Ok(Err)` names two shards that are one database. Learned once per pool; a shard
    /// that refuses to say is not judged, and one that is unreachable is asked again
    /// before the next multi-shard statement. `Err`: the client gave up while the router
    /// waited for a connection (`aside_checkout.rs`).
    pub(crate) async fn distinct_shards(&mut self) -> crate::error::Result<Result<(), String>> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        if let Some(r) = schema.distinct.get() {
            return Ok(r.clone());
        }
        let mut complete = true;
        // Every shard's connection stays checked out until all were asked, so the
        // backends named by the markers are alive while the others look for them.
        let mut held = Vec::new();
        let mut markers: Vec<(usize, String, String)> = Vec::new();
        for k in 0..schema.shards {
            let Some(pool) = self.ctx.user.primary(k).cloned() else {
                complete = false;
                continue;
            };
            let Ok(mut co) = self.checkout_aside(&pool).await? else {
                complete = false;
                continue;
            };
            let answer = co.conn().query_rows(MARKER).await;
            let row = match answer {
                Ok(Ok((_, rows))) => rows.into_iter().next(),
                Ok(Err(_)) => None,
                Err(_) => {
                    complete = false;
                    continue;
                }
            };
            if !markers.is_empty() {
                match co.conn().query_rows(&visible(&markers)).await {
                    Ok(Ok((_, rows))) => {
                        if let Some(first) = rows.first().and_then(|r| r.first().cloned().flatten())
                        {
                            let m = format!(
                                "shards {first} and {k} of pool \"{}\" are the same database (a backend of shard {first}'s connection is connected to shard {k}'s database), so a statement over several shards would run on it twice; list endpoints of one database as servers of one shard (role \"auto\"), not as shards",
                                self.ctx.user.pool_name
                            );
                            tracing::error!(pool = %self.ctx.user.pool_name, "{m}");
                            let _ = schema.distinct.set(Err(m.clone()));
                            return Ok(Err(m));
                        }
                    }
                    Ok(Err(_)) => {}
                    Err(_) => complete = false,
                }
            }
            if let Some([Some(pid), Some(start)]) = row.as_deref() {
                if is_number(pid) && is_number(start) {
                    markers.push((k, pid.clone(), start.clone()));
                }
            }
            held.push(co);
        }
        for co in held {
            co.release();
        }
        if complete {
            let _ = schema.distinct.set(Ok(()));
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_names_pid_start_and_database() {
        let q = visible(&[(0, "12".into(), "1700000000000001".into())]);
        assert!(
            q.contains("(VALUES (0, 12::int, 1700000000000001::bigint))"),
            "{q}"
        );
        assert!(q.contains("a.datid = "));
        assert!(!is_number("1; DROP") && is_number("42"));
    }
}
