//! A session on a pool with several shards: each statement is planned, and goes to the
//! one shard its keys name (through the ordinary pass-through path), or to several at
//! once through the fan-out executor. `BEGIN` is held back until a statement picks the
//! transaction's shard; a transaction stays on that shard.
//!
//! That path is its own type, `ShardedPath` (`sharded_path.rs`): it borrows the session for one statement
//! (its client, its attached connection, its replies) together with the pool's sharding
//! schema, and the routing, fan-out (`fanout.rs`, `fanout_end.rs`), gather (`gather.rs`),
//! multi-shard transaction (`multi_shard.rs`), split `INSERT` (`split_insert.rs`), `COPY`
//! (`copy_in.rs`) and shard-identity (`shard_identity.rs`) steps are its methods. A
//! single-shard pool never builds one, and the session's own code does not reach into
//! the sharded state except through it (and `shard_switch.rs`).

use super::held_replan::HeldRun;
use super::job::{BindArgs, Job, Route};
use super::reply::{message, ready, refuse, tx_aborted};
use super::sharded_path::ShardedPath;
use super::sharded_tx::{HeldPortal, LocalPortal, Suspended};
use super::split_insert::split_insert;
use crate::error::Result;
use crate::planner::lex::{contains_word_ci, first_keyword};
use crate::planner::sharding::resolve::{resolve, Params, Resolved};
use crate::planner::sharding::{plan, Kind, ShardingSchema};
use orochi_wire::{BackendMessage, PgError};
use std::sync::Arc;

impl ShardedPath<'_> {
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT while no shard is chosen yet: answered here
    /// and replayed on the shard the transaction lands on. Returns the command tag, or
    /// the error PostgreSQL would answer (a savepoint that does not exist).
    pub(crate) fn local_transaction(
        &mut self,
        sql: &str,
    ) -> Option<std::result::Result<&'static str, PgError>> {
        if self.back.phase.is_attached() || crate::planner::session::has_inner_semicolon(sql) {
            return None;
        }
        self.tx().held_command(sql)
    }

    /// Decides where a statement goes; fans it out when it needs several shards.
    /// `ext`: the held-back Bind of an extended-protocol statement.
    pub(crate) async fn route_sharded(
        &mut self,
        sql: &str,
        ext: Option<BindArgs<'_>>,
    ) -> Result<Route> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        let extended = ext.is_some();
        if self.tx().tx_poisoned || (self.tx().pending_failed && self.back.phase.is_idle()) {
            self.front.router_error(self.back, tx_aborted(), extended);
            return Ok(Route::Done);
        }
        // Simple protocol with inlined values: routed by the statement's shape, planned
        // once, when its keys name one shard.
        if ext.is_none() {
            if let Some((s, kind)) = crate::planner::sharding::literals::one_shard(schema, sql) {
                if !self.runs_aside(kind, sql) {
                    if kind == Kind::Write && !self.tx().wrote.contains(&s) {
                        self.tx().wrote.push(s);
                    }
                    return Ok(Route::Shard(s));
                }
            }
        }
        let mut p = plan(schema, sql);
        if let Some(table) = p.needs_columns.clone() {
            // INSERT without a column list: the key's place comes from the catalog.
            let mut fresh = false;
            loop {
                let cols = match self.table_columns(&table, fresh).await {
                    Ok(Ok(c)) => c,
                    Err(e) => return self.gave_up(e, extended),
                    Ok(Err(e)) => return self.fail(e, extended),
                };
                p = crate::planner::sharding::plan_with_columns(schema, sql, &cols);
                // Rows narrower than the table (trailing DEFAULTs, or a column dropped
                // since the order was read: the key may have moved) or wider (a column
                // added): read the order again.
                let narrow = p
                    .insert_columns
                    .as_ref()
                    .is_some_and(|c| c.len() < cols.len());
                if !(narrow || p.needs_columns.is_some()) || fresh {
                    break;
                }
                fresh = true;
            }
            if p.needs_columns.is_some() {
                let e = PgError::error("42601", "INSERT has more expressions than target columns");
                return self.fail(e, extended);
            }
        }
        if p.kind == Kind::Ddl {
            schema.columns.clear();
        }
        let params = ext
            .map(|x| Params {
                values: x.params,
                formats: x.param_formats,
            })
            .unwrap_or_default();
        if let Some(r) = &p.refuse {
            return self
                .gather_or_refuse(sql, p.kind, r, ext.map(BindArgs::to_extended))
                .await;
        }
        let shards = match resolve(&p.routing, schema.shards, params) {
            Ok(r) => r,
            // Keys on different shards in tables not joined on them: a read is gathered.
            Err(m) => {
                return self
                    .gather_or_refuse(sql, p.kind, &m, ext.map(BindArgs::to_extended))
                    .await
            }
        };
        let aside = self.runs_aside(p.kind, sql);
        let shards = match shards {
            Resolved::Any
                if self.back.phase.is_idle()
                    && self.tx().pending_begin.is_some()
                    && (p.kind == Kind::Read || first_keyword(sql) == "show") =>
            {
                // A read that needs no particular shard, before the transaction picked
                // one: answered aside, so the transaction can still go where its keys say.
                return Ok(Route::Fanout(Box::new(Job {
                    shards: vec![(self.ctx.id as usize) % schema.shards],
                    sql: vec![sql.to_string()],
                    shard_param_types: None,
                    merge: Default::default(),
                    write: false,
                    wrap: false,
                    keyed: false,
                    select: false,
                    replicated: false,
                    copy_in: None,
                    extended: ext.map(BindArgs::to_extended),
                    in_tx: false,
                    gather: None,
                })));
            }
            Resolved::Any => {
                return Ok(Route::Shard(match self.back.phase.server() {
                    Some(co) => co.pool.shard,
                    None => (self.ctx.id as usize) % schema.shards,
                }))
            }
            Resolved::Shards(v) if v.len() == 1 && !aside => {
                if matches!(p.kind, Kind::Write | Kind::Ddl) && !self.tx().wrote.contains(&v[0]) {
                    self.tx().wrote.push(v[0]);
                }
                return Ok(Route::Shard(v[0]));
            }
            Resolved::Shards(v) => v,
        };
        let write = matches!(p.kind, Kind::Write | Kind::Ddl);
        let merge = match &p.merge {
            Ok(m) => m.clone(),
            Err(m) => {
                return self
                    .gather_or_refuse(sql, p.kind, m, ext.map(BindArgs::to_extended))
                    .await
            }
        };
        // Several shards inside the client's transaction: the statement joins it on
        // every shard it needs (transaction pooling, explicit transactions).
        // (A plain read before the transaction touched any shard runs aside, as a
        // one-shard one does: READ COMMITTED gives it its own snapshot anyway.)
        let in_tx = (self.tx().pending_begin.is_some() && !aside)
            || (self.back.phase.is_attached() && self.back.tx_status != b'I');
        if in_tx {
            if self.ctx.mode != orochi_config::PoolMode::Transaction
                || (self.tx().tx_begin.is_none() && self.tx().pending_begin.is_none())
            {
                let s = self.back.phase.server().map_or(0, |c| c.pool.shard);
                return self.refused(&format!("this transaction runs on shard {s}; a single statement that needs several shards cannot join it here (only explicit transactions in transaction pooling mode can span shards): split it per shard key, or run it outside the transaction"), extended);
            }
            if self.back.tx_status == b'E' && self.back.phase.is_attached() {
                self.front.router_error(self.back, tx_aborted(), extended);
                return Ok(Route::Done);
            }
        }
        if write && !schema.twopc && !schema.best_effort {
            return self.refused("a write that touches several shards would not be atomic: two-phase commit is disabled ([sharding.two_phase_commit] enabled = false); restrict it to one shard key, enable two-phase commit, or set best_effort = true to allow non-atomic multi-shard writes", extended);
        }
        if p.copy_in.is_some() && extended {
            return self.refused("COPY FROM STDIN across shards through the extended query protocol; send the COPY as a simple query (every driver's COPY API does)", extended);
        }
        if !self.front.expect.is_empty() || self.back.unsynced && self.back.phase.is_attached() {
            return self.refused("a multi-shard statement pipelined behind a statement still running on one shard; send a Sync first", extended);
        }
        // ORDER BY and min/max compare values in the router: text in byte order.
        let compares = !merge.order.is_empty()
            || merge.group.as_ref().is_some_and(|g| {
                g.aggs.iter().any(|(_, k)| {
                    matches!(
                        k,
                        crate::planner::sharding::AggKind::Min
                            | crate::planner::sharding::AggKind::Max
                    )
                })
            });
        let byte_order = match compares {
            true => self.text_order_ok().await,
            false => Ok(true),
        };
        match byte_order {
            Ok(true) => {}
            Err(e) => return self.gave_up(e, extended),
            Ok(false) => return self.refused("ORDER BY, min or max across shards on a database whose collation is not C (or whose collation could not be read): the router compares text in byte order; use C-collation databases for sharded pools", extended),
        }
        if shards.len() > 1 {
            match self.distinct_shards().await {
                Ok(Ok(())) => {}
                Ok(Err(m)) => return self.refused(&m, extended),
                Err(e) => return self.gave_up(e, extended),
            }
        }
        let client_types = ext.map_or(&[][..], |x| x.param_types);
        let split = match split_insert(&p, sql, &shards, schema, params, client_types) {
            Ok(v) => v,
            Err(m) => return self.refused(&m, extended),
        };
        let job = Job {
            shards,
            sql: split.sql,
            shard_param_types: split.param_types,
            merge,
            write,
            wrap: write && transactional(sql) && !in_tx,
            keyed: matches!(p.routing, crate::planner::sharding::Routing::Keys(_)),
            select: p.kind == Kind::Read && first_keyword(sql) != "copy",
            replicated: p.replicated,
            copy_in: p.copy_in.clone(),
            extended: ext.map(BindArgs::to_extended),
            in_tx,
            gather: (p.kind == Kind::Read && !in_tx).then(|| sql.to_string()),
        };
        Ok(Route::Fanout(Box::new(job)))
    }

    /// Inside a transaction that has not touched a shard yet, plain reads (READ
    /// COMMITTED: each statement sees its own snapshot anyway) run aside, so the
    /// transaction's writes can still pick their shard.
    pub(crate) fn runs_aside(&self, kind: Kind, sql: &str) -> bool {
        !matches!(kind, Kind::Write | Kind::Ddl)
            && self.back.phase.is_idle()
            && self
                .back
                .sharded_tx()
                .and_then(|t| t.pending_begin.as_deref())
                .is_some_and(|b| {
                    !contains_word_ci(b, "repeatable") && !contains_word_ci(b, "serializable")
                })
            && crate::planner::rw::is_read(sql)
    }

    pub(crate) fn refused(&mut self, msg: &str, extended: bool) -> Result<Route> {
        self.fail(refuse(msg), extended)
    }

    /// The statement ends with the router's error `e`. Inside a transaction no shard
    /// has seen yet, that fails the transaction, as any error does in PostgreSQL, and
    /// the ReadyForQuery that follows (simple protocol) already says `E`.
    pub(crate) fn fail(&mut self, e: PgError, extended: bool) -> Result<Route> {
        self.fail_held_back();
        self.front.router_error(self.back, e, extended);
        Ok(Route::Done)
    }

    /// Marks a held-back transaction (BEGIN answered here, no shard chosen yet) failed.
    pub(crate) fn fail_held_back(&mut self) {
        if self.back.phase.is_idle() {
            self.tx().fail_held();
        }
    }

    /// Whether text sorts in byte order on this pool's databases (C or POSIX collation);
    /// asked once per pool. `Err`: the client gave up while the router waited for a
    /// connection (`aside_checkout.rs`).
    async fn text_order_ok(&mut self) -> Result<bool> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        if let Some(v) = schema.c_collation.get() {
            return Ok(*v);
        }
        let Some(pool) = self.ctx.user.primary(0).cloned() else {
            return Ok(false);
        };
        let Ok(mut co) = self.checkout_aside(&pool).await? else {
            return Ok(false);
        };
        let ok = match co
            .conn()
            .query_one("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            .await
        {
            Ok(Some(c)) => c == "C" || c == "POSIX" || c.starts_with("C."),
            _ => return Ok(false),
        };
        co.release();
        let _ = schema.c_collation.set(ok);
        Ok(ok)
    }

    /// Local answer of a held-back transaction command (simple protocol).
    pub(crate) fn answer_local(&mut self, tag: &str) {
        self.front
            .reply(message(BackendMessage::CommandComplete(tag.to_string())));
        let status = self.back.local_status();
        self.front.reply(ready(status));
    }
}

/// Statements PostgreSQL refuses inside a transaction block (run on each shard alone).
fn transactional(sql: &str) -> bool {
    let kw = first_keyword(sql);
    !(matches!(kw.as_str(), "vacuum" | "checkpoint" | "reindex" | "cluster")
        || contains_word_ci(sql, "concurrently")
        || (matches!(kw.as_str(), "create" | "drop" | "alter")
            && (contains_word_ci(sql, "database")
                || contains_word_ci(sql, "tablespace")
                || contains_word_ci(sql, "system"))))
}

impl ShardedPath<'_> {
    /// A Parse on a sharded pool, answered here: the statement is noted and prepared on
    /// a shard when a Bind sends it there (its parameters pick the shard). Never waits,
    /// so the session handles it in place (`Session::sharded_parse_now`).
    ///
    /// `words`: the text's `STATEMENT_WORDS`, when the caller screened it already.
    pub(crate) fn sharded_parse(
        &mut self,
        name: &str,
        query: &str,
        param_types: &[u32],
        words: Option<u16>,
    ) {
        use crate::statements::StatementRegistry;
        if name.is_empty() {
            self.state.unnamed = Some(match words {
                Some(w) => StatementRegistry::unnamed_screened(query, param_types, w),
                None => StatementRegistry::unnamed(query, param_types),
            });
            self.back.phase.set_unnamed_on_server(false);
        } else if self.state.statements.contains_key(name) {
            self.fail_held_back();
            self.front.router_error(
                self.back,
                PgError::error(
                    "42P05",
                    format!("prepared statement \"{name}\" already exists"),
                ),
                true,
            );
            return;
        } else {
            let stmt = self.ctx.app.statements.get(query, param_types);
            self.state.statements.insert(name.to_string(), stmt);
        }
        self.front.reply(message(BackendMessage::ParseComplete));
    }

    /// The extended protocol on a sharded pool. `Ok(None)`: take the ordinary path;
    /// `Ok(Some(None))`: answered here; `Ok(Some(Some(s)))`: ordinary path on shard `s`.
    pub(crate) async fn sharded_extended(
        &mut self,
        msg: &orochi_wire::FrontendMessage,
    ) -> Result<Option<Option<usize>>> {
        use orochi_wire::FrontendMessage as M;
        let idle = self.back.phase.is_idle();
        match msg {
            M::Parse {
                name,
                query,
                param_types,
            } => {
                self.sharded_parse(name, query, param_types, None);
                Ok(Some(None))
            }
            M::Bind {
                statement,
                param_formats,
                params,
                result_formats,
                ..
            } => {
                let stmt = if statement.is_empty() {
                    self.state.unnamed.clone()
                } else {
                    self.state.statements.get(statement).cloned()
                };
                let Some(stmt) = stmt else { return Ok(None) };
                self.tx().drop_portals();
                self.tx().suspended = None;
                if let Some(commit) = self.ends_multi_shard(&stmt.query) {
                    self.tx().local_portal = Some(LocalPortal {
                        tag: if commit { "COMMIT" } else { "ROLLBACK" },
                        finish: Some(commit),
                    });
                    self.front.reply(message(BackendMessage::BindComplete));
                    return Ok(Some(None));
                }
                if idle {
                    match self.local_transaction(&stmt.query) {
                        Some(Ok(tag)) => {
                            self.tx().local_portal = Some(LocalPortal { tag, finish: None });
                            self.front.reply(message(BackendMessage::BindComplete));
                            return Ok(Some(None));
                        }
                        // Refused at Bind (PostgreSQL refuses at Execute): the batch
                        // skips to its Sync either way.
                        Some(Err(e)) => return self.fail(e, true).map(|_| Some(None)),
                        None => {}
                    }
                }
                let ext = BindArgs {
                    param_types: &stmt.param_types,
                    param_formats,
                    params,
                    result_formats,
                    describe: false,
                };
                match self.route_sharded(&stmt.query, Some(ext)).await? {
                    Route::Done => Ok(Some(None)),
                    Route::Shard(s) => Ok(Some(Some(s))),
                    Route::Fanout(job) => {
                        let (query, shards) = (stmt.query.clone(), self.schema.shards);
                        self.tx().held = Some(HeldPortal { job, query, shards });
                        self.front.reply(message(BackendMessage::BindComplete));
                        Ok(Some(None))
                    }
                }
            }
            M::Describe { kind: b'P', .. }
                if self.tx().held.is_some() || self.tx().local_portal.is_some() =>
            {
                if let Some(h) = self.tx().held.as_mut() {
                    if let Some(x) = h.job.extended.as_mut() {
                        x.describe = true;
                    }
                } else {
                    self.front.reply(message(BackendMessage::NoData));
                }
                Ok(Some(None))
            }
            M::Describe { kind: b'S', name } if idle => {
                self.describe_aside(name).await?;
                Ok(Some(None))
            }
            M::Execute { max_rows, .. } if self.tx().held.is_some() => {
                if let Some(h) = self.tx().held.take() {
                    let run = HeldRun::Execute {
                        max_rows: *max_rows,
                    };
                    self.run_held(h, run).await?;
                }
                Ok(Some(None))
            }
            M::Execute { max_rows, .. } if self.tx().suspended.is_some() => {
                self.serve_suspended(*max_rows);
                Ok(Some(None))
            }
            M::Execute { .. } if self.tx().local_portal.is_some() => {
                match self.tx().local_portal.take() {
                    Some(LocalPortal {
                        finish: Some(commit),
                        ..
                    }) => self.finish_multi_shard(commit, true, false).await,
                    Some(l) => self
                        .front
                        .reply(message(BackendMessage::CommandComplete(l.tag.to_string()))),
                    None => {}
                }
                Ok(Some(None))
            }
            M::Close { kind: b'P', .. }
                if self.tx().held.is_some() || self.tx().local_portal.is_some() =>
            {
                self.tx().drop_portals();
                self.front.reply(message(BackendMessage::CloseComplete));
                Ok(Some(None))
            }
            _ => Ok(None),
        }
    }

    /// A whole result captured for an Execute with a row limit: its head goes out, its
    /// rows wait to be fetched `max_rows` at a time.
    pub(crate) fn suspend(&mut self, mut buf: bytes::BytesMut, max_rows: i32) {
        let mut head = bytes::BytesMut::new();
        let mut rows = std::collections::VecDeque::new();
        let mut tail = bytes::BytesMut::new();
        while let Ok(Some(f)) = orochi_wire::decode_frame(&mut buf, usize::MAX) {
            match f.tag {
                b'D' => {
                    let mut b = bytes::BytesMut::new();
                    f.encode(&mut b);
                    rows.push_back(b.freeze());
                }
                b'T' | b'n' | b'N' if tail.is_empty() => f.encode(&mut head),
                _ => f.encode(&mut tail),
            }
        }
        self.emit(&head);
        self.tx().suspended = Some(Suspended {
            rows,
            tail: tail.freeze(),
        });
        self.serve_suspended(max_rows);
    }

    /// Sends up to `max_rows` rows of a suspended result (all when 0), then
    /// PortalSuspended, or the final CommandComplete when none are left.
    fn serve_suspended(&mut self, max_rows: i32) {
        let Some(mut s) = self.tx().suspended.take() else {
            return;
        };
        let n = if max_rows <= 0 {
            usize::MAX
        } else {
            max_rows as usize
        };
        let mut out = bytes::BytesMut::new();
        for _ in 0..n {
            match s.rows.pop_front() {
                Some(r) => out.extend_from_slice(&r),
                None => break,
            }
        }
        let done = s.rows.is_empty();
        if done {
            out.extend_from_slice(&s.tail);
        } else {
            out.extend_from_slice(&[b's', 0, 0, 0, 4]);
            self.tx().suspended = Some(s);
        }
        self.emit(&out);
    }

    /// Describes a statement on any shard without tying the session to that shard (the
    /// statement's parameters, which pick the shard, are not known yet).
    async fn describe_aside(&mut self, name: &str) -> Result<()> {
        let shared = Arc::clone(&self.schema);
        let schema: &ShardingSchema = &shared;
        use orochi_wire::FrontendMessage as M;
        let stmt = if name.is_empty() {
            self.state.unnamed.clone()
        } else {
            self.state.statements.get(name).cloned()
        };
        let Some(stmt) = stmt else {
            self.fail_held_back();
            self.front.router_error(
                self.back,
                PgError::error(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                ),
                true,
            );
            return Ok(());
        };
        let shard = (self.ctx.id as usize) % schema.shards;
        let target = self.ctx.target_for_read();
        let checkout = std::pin::pin!(self.ctx.checkout_traced(shard, target));
        let wait = super::checkout_wait::checkout_or_give_up(
            checkout,
            &self.ctx.client.info,
            &self.ctx.cancel.slot,
            &self.front.stream,
        );
        let mut co = match wait.await {
            Ok((co, _)) => co,
            Err(e) => return self.front.checkout_failed(self.back, self.ctx.id, e, true),
        };
        if let Err(e) = self
            .state
            .apply_params(&mut co, self.ctx, &mut self.front.out)
            .await
        {
            return self.front.checkout_failed(self.back, self.ctx.id, e, true);
        }
        let mut b = bytes::BytesMut::new();
        M::Parse {
            name: String::new(),
            query: stmt.query.clone(),
            param_types: stmt.param_types.clone(),
        }
        .encode(&mut b);
        M::Describe {
            kind: b'S',
            name: String::new(),
        }
        .encode(&mut b);
        M::Sync.encode(&mut b);
        let conn = co.conn();
        conn.write_all(&b).await?;
        let mut out = bytes::BytesMut::new();
        let mut failed = false;
        loop {
            let f = conn.read_frame().await?;
            match f.tag {
                b't' | b'T' | b'n' => f.encode(&mut out),
                b'E' => {
                    failed = true;
                    f.encode(&mut out);
                }
                b'Z' => break,
                _ => {}
            }
        }
        co.release();
        self.front.reply(out.freeze());
        if failed {
            self.front.router_skipping = true;
        }
        Ok(())
    }

    /// At Sync: a held-back fan-out that was described but never executed still owes
    /// its description; run it (rows are not sent without an Execute, so none are).
    pub(crate) async fn finish_held(&mut self) -> Result<()> {
        if self.back.sharded.is_none() {
            // Nothing was ever held (not a sharded pool, or nothing sharded ran yet).
            return Ok(());
        }
        self.tx().local_portal = None;
        if self.back.local_status() == b'I' {
            // The implicit transaction ends at Sync, and its portals with it.
            self.tx().suspended = None;
        }
        if let Some(h) = self.tx().held.take() {
            if h.job.extended.as_ref().is_some_and(|x| x.describe) {
                self.run_held(h, HeldRun::Describe).await?;
            }
        }
        Ok(())
    }
}
