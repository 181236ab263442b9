//! The executor's half of gather-then-answer (see `planner::sharding::gather`): a read
//! the fan-out merge cannot answer exactly fetches the rows of its distributed tables
//! from every shard, and the statement, rewritten over those rows, runs on one shard.
//!
//! A fan-out whose merge finds column types it cannot combine or order (`interval`,
//! `money`, …; the shards' RowDescription says so only once they answered) takes the same
//! path before anything reached the client.
//!
//! It runs outside the client's transaction only (no transaction, or one that has not
//! touched a shard yet and reads at READ COMMITTED, where a statement gets its own
//! snapshot anyway): inside a transaction that wrote, rows gathered on other connections
//! would miss its own writes, so the statement stays refused there.

use super::job::{Extended, Job, Route};
use super::reply::ready;
use super::sharded_path::ShardedPath;
use crate::error::Result;
use crate::planner::sharding::gather::{self, Gather, MAX_BYTES, MAX_ROWS};
use crate::planner::sharding::{plan_uncached, Kind, Routing, ShardingSchema};
use orochi_wire::PgError;
use std::sync::Arc;

enum Gathered {
    Rows(Vec<Vec<String>>),
    /// Past the row or byte budget.
    TooMany,
    Failed(PgError),
}

impl ShardedPath<'_> {
    /// Answers a read the fan-out refused (`why`) by gathering, or refuses it with `why`
    /// when it does not qualify.
    pub(crate) async fn gather_or_refuse(
        &mut self,
        sql: &str,
        kind: Kind,
        why: &str,
        ext: Option<Extended>,
    ) -> Result<Route> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        let extended = ext.is_some();
        let outside_tx = self.back.phase.is_idle()
            && (self.tx().pending_begin.is_none() || self.runs_aside(kind, sql));
        // The rows are read on the router's own connections, without a JWT gateway
        // session's role and claims (row-level security would not apply): refused.
        if kind != Kind::Read || !outside_tx || self.ctx.gateway.is_some() {
            return self.refused(why, extended);
        }
        let Ok(g) = gather::plan(schema, sql) else {
            return self.refused(why, extended);
        };
        let rows = match self.gather_rows(&g).await {
            Err(e) => return self.gave_up(e, extended),
            Ok(Gathered::Rows(r)) => r,
            Ok(Gathered::TooMany) => {
                let m = format!("{why}; answering it exactly needs more than {MAX_ROWS} rows (or {} MiB) of {} from the shards", MAX_BYTES >> 20, g.tables.join(", "));
                return self.refused(&m, extended);
            }
            Ok(Gathered::Failed(e)) => return self.fail(e, extended),
        };
        // By construction the rewritten statement names no distributed table; the
        // planner confirms it (on the same statement without the rows, which are only
        // string constants) before one shard answers for all.
        let check = plan_uncached(schema, &g.rewrite(sql, &[]));
        if check.refuse.is_some() || check.routing != Routing::Any {
            return self.refused(why, extended);
        }
        let rewritten = g.rewrite(sql, &rows);
        tracing::debug!(tables = ?g.tables, "gathered across shards, answered on one");
        Ok(Route::Fanout(Box::new(Job {
            shards: vec![(self.ctx.id as usize) % schema.shards],
            sql: vec![rewritten],
            shard_param_types: None,
            merge: Default::default(),
            write: false,
            wrap: false,
            keyed: false,
            select: true,
            replicated: false,
            copy_in: None,
            extended: ext,
            in_tx: false,
            gather: None,
        })))
    }

    /// A fan-out read the merge could not combine (`why`, from the shards' column
    /// types; nothing was sent yet): gathered and run again on one shard, or refused.
    pub(super) async fn gather_after_merge(&mut self, job: Job, why: String) -> Result<()> {
        let extended = job.extended.is_some();
        // A batched Execute captures the answer; a refusal is emitted the same way.
        let gathers = self.ctx.sharding().is_some() && self.front.capture.is_none();
        let (Some(sql), true) = (job.gather, gathers) else {
            self.emit_error(super::reply::refuse(&why), extended);
            if !extended {
                let status = self.back.local_status();
                self.emit(&ready(status));
            }
            return Ok(());
        };
        match self
            .gather_or_refuse(&sql, Kind::Read, &why, job.extended)
            .await?
        {
            Route::Fanout(gathered) => Box::pin(self.run_fanout(*gathered)).await,
            Route::Shard(_) | Route::Done => Ok(()),
        }
    }

    /// Every shard's rows of the gathered tables, one statement per shard, all shards at
    /// once. The connections are taken first, one shard after the other in shard order
    /// as a fan-out takes them, so the wait ends at the client's cancel or disconnect
    /// (`Err`, `aside_checkout.rs`).
    async fn gather_rows(&mut self, g: &Gather) -> Result<Gathered> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        let unavailable = |shard: usize| {
            PgError::error(
                "08006",
                format!("cannot read the rows this statement needs from shard {shard}"),
            )
        };
        let mut conns = Vec::with_capacity(schema.shards);
        for shard in 0..schema.shards {
            let Some(pool) = self.ctx.user.primary(shard).cloned() else {
                return Ok(Gathered::Failed(unavailable(shard)));
            };
            match self.checkout_aside(&pool).await? {
                Ok(co) => conns.push(co),
                Err(e) => {
                    tracing::warn!(shard, error = %e, "gather: no connection");
                    return Ok(Gathered::Failed(unavailable(shard)));
                }
            }
        }
        let sql: std::sync::Arc<str> = g.shard_sql().into();
        let mut tasks = tokio::task::JoinSet::new();
        for (shard, mut co) in conns.into_iter().enumerate() {
            let sql = sql.clone();
            tasks.spawn(async move {
                let answer = co.conn().query_rows(&sql).await;
                co.release();
                match answer {
                    Ok(Ok((_, got))) => Ok(got),
                    Ok(Err(e)) => Err(e),
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "gather: connection lost");
                        Err(unavailable(shard))
                    }
                }
            });
        }
        let mut out = vec![Vec::new(); g.tables.len()];
        let (mut rows, mut bytes) = (0usize, 0usize);
        let malformed = || PgError::error("08006", "a shard answered the router's gather oddly");
        while let Some(done) = tasks.join_next().await {
            let got = match done {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => return Ok(Gathered::Failed(e)),
                Err(_) => return Ok(Gathered::Failed(malformed())),
            };
            for r in got {
                let mut cells = r.into_iter();
                let table = cells.next().flatten().and_then(|t| t.parse::<usize>().ok());
                let (Some(t), Some(Some(text))) = (table, cells.next()) else {
                    return Ok(Gathered::Failed(malformed()));
                };
                rows += 1;
                bytes += text.len();
                if rows > MAX_ROWS || bytes > MAX_BYTES {
                    return Ok(Gathered::TooMany);
                }
                match out.get_mut(t) {
                    Some(v) => v.push(text),
                    None => return Ok(Gathered::Failed(malformed())),
                }
            }
        }
        Ok(Gathered::Rows(out))
    }
}
