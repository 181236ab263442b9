//! Two shards of a pool must be two databases. PgCat users list one database behind
//! several endpoints as several shards ("DNS resiliency", seed 001), which PgCat gets
//! away with because unrouted queries go to its default shard; here a statement over
//! several shards would run on that database once per endpoint (a replicated write
//! applied twice, a count doubled, or shards waiting on each other's row locks). Before
//! the first statement that needs several shards, the router asks every shard's primary
//! which database it is (cluster system identifier and database oid) and refuses
//! multi-shard statements when two answers are the same.

use super::session::Session;
use crate::planner::sharding::ShardingSchema;

const IDENTITY: &str = "SELECT system_identifier::text || '/' || \
    (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())::text \
    FROM pg_catalog.pg_control_system()";

impl Session {
    /// `Err` names two shards that are one database. Learned once per pool; a shard that
    /// refuses to say (no right to read the control data) is not judged, and one that is
    /// unreachable is asked again before the next multi-shard statement.
    pub(crate) async fn distinct_shards(&mut self, schema: &ShardingSchema) -> Result<(), String> {
        if let Some(r) = schema.distinct.get() {
            return r.clone();
        }
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut complete = true;
        for k in 0..schema.shards {
            let Some(pool) = self.user.primary(k).cloned() else {
                complete = false;
                continue;
            };
            let answer = match pool.checkout().await {
                Ok((mut co, _)) => co.conn().query_rows(IDENTITY).await.ok(),
                Err(_) => None,
            };
            let id = match answer {
                // Unreachable now: asked again before the next multi-shard statement.
                None => {
                    complete = false;
                    continue;
                }
                // The server refuses (no right to read the control data): not judged,
                // and not asked again on every statement.
                Some(Err(_)) => continue,
                Some(Ok((_, rows))) => match rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next().flatten())
                {
                    Some(id) => id,
                    None => continue,
                },
            };
            if let Some((_, first)) = seen.iter().find(|(i, _)| *i == id) {
                let m = format!(
                    "shards {first} and {k} of pool \"{}\" are the same database (system identifier/database oid {id}), so a statement over several shards would run on it twice; list endpoints of one database as servers of one shard (role \"auto\"), not as shards",
                    self.user.pool_name
                );
                tracing::error!(pool = %self.user.pool_name, "{m}");
                let _ = schema.distinct.set(Err(m.clone()));
                return Err(m);
            }
            seen.push((id, k));
        }
        if complete {
            let _ = schema.distinct.set(Ok(()));
        }
        Ok(())
    }
}
