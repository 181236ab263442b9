//! Running one statement on several shards at once and answering with one result: the
//! statement goes to every shard before any answer is read (they run concurrently), then
//! the shard streams are merged as the plan says (concatenation and k-way ORDER BY merge
//! stream; aggregates wait for every row). An error on any shard is that shard's error to
//! the client, and a write is rolled back on every shard. Multi-shard writes run only
//! when the pool opted into best-effort commits (atomic commit is two-phase commit's job).

use super::job::Job;
use super::shard_stream::{cancel_target, Event, Merged, Stream, Trailer};
use super::sharded_path::ShardedPath;
use super::tags::sum_tags;
use crate::backend::registry::Target;
use crate::backend::Checkout;
use crate::error::{Result, RouterError};
use crate::fanout::merge::{avg_type, Bound, ColType, Groups, Row};
use crate::planner::sharding::{AggKind, Count};
use bytes::{Bytes, BytesMut};
use orochi_wire::backend::FieldDescription;
use orochi_wire::{BackendMessage, Frame, FrontendMessage, PgError};
use std::collections::HashSet;

fn count_value(c: Option<Count>, params: &[Option<Bytes>], formats: &[i16]) -> Option<u64> {
    match c? {
        Count::Const(v) => Some(v),
        Count::Param(n) => {
            let v = params.get(n - 1)?.as_ref()?;
            let binary = match formats {
                [] => false,
                [f] => *f == 1,
                fs => fs.get(n - 1) == Some(&1),
            };
            if binary {
                match v.len() {
                    8 => u64::try_from(i64::from_be_bytes(v[..].try_into().ok()?)).ok(),
                    4 => u64::try_from(i32::from_be_bytes(v[..].try_into().ok()?)).ok(),
                    2 => u64::try_from(i16::from_be_bytes(v[..].try_into().ok()?)).ok(),
                    _ => None,
                }
            } else {
                std::str::from_utf8(v).ok()?.trim().parse().ok()
            }
        }
    }
}

/// Fields of a RowDescription body.
fn fields(f: &Frame) -> Option<Vec<FieldDescription>> {
    match BackendMessage::decode(f).ok()? {
        BackendMessage::RowDescription(v) => Some(v),
        _ => None,
    }
}

impl ShardedPath<'_> {
    /// Sends `bytes` to the client in order with anything still pending.
    pub(crate) fn emit(&mut self, b: &[u8]) {
        if let Some(c) = self.front.capture.as_mut() {
            c.extend_from_slice(b);
            return;
        }
        // Captured output goes out through here again (`Session::suspend`): counted then.
        self.front.note_errors(b);
        if self.front.expect.is_empty() {
            self.front.out.extend_from_slice(b);
        } else {
            self.front
                .expect
                .push_back(super::expect::Expect::Emit(Bytes::copy_from_slice(b)));
        }
    }

    async fn emit_flush(&mut self) -> Result<()> {
        if self.front.capture.is_none()
            && self.front.expect.is_empty()
            && self.front.out.len() > 64 * 1024
        {
            let r =
                tokio::io::AsyncWriteExt::write_all(&mut self.front.stream, &self.front.out).await;
            self.front.out.clear();
            r.map_err(RouterError::ClientIo)?;
        }
        Ok(())
    }

    /// Takes one connection per shard, with this client's settings applied. For a job
    /// inside the client's transaction, a shard the transaction already uses gives its
    /// connection; `true` marks a connection that must first join the transaction.
    pub(super) async fn fanout_checkouts(
        &mut self,
        job: &Job,
    ) -> Result<Vec<(usize, Checkout, bool)>> {
        let target = if job.write {
            Target::Primary
        } else {
            self.ctx.target_for_read()
        };
        // What the statement leaves on each shard's session, as on one server.
        let dirty = job.sql.iter().any(|q| {
            crate::planner::analyze(q)
                .ops
                .iter()
                .any(|o| !matches!(o, crate::planner::SessionOp::Execute { .. }))
        });
        let mut out = Vec::with_capacity(job.shards.len());
        self.ctx
            .pause_gate(true, self.back.holds_no_connection(), &self.front.stream)
            .await?;
        if job.in_tx {
            if let Some(cur) = self.back.phase.detach() {
                self.tx().parked.push(cur);
            }
        }
        for &s in &job.shards {
            let held = job
                .in_tx
                .then(|| self.tx().parked.iter().position(|c| c.pool.shard == s))
                .flatten();
            let (mut co, joins) = match held {
                Some(i) => (self.tx().parked.remove(i), false),
                None => {
                    let (mut co, _) = super::checkout_wait::checkout_or_give_up(
                        std::pin::pin!(self.ctx.checkout_traced(s, target)),
                        &self.ctx.client.info,
                        &self.ctx.cancel.slot,
                        &self.front.stream,
                    )
                    .await?;
                    self.state
                        .apply_params(&mut co, self.ctx, &mut self.front.out)
                        .await?;
                    (co, job.in_tx)
                }
            };
            co.conn().dirty |= dirty;
            co.pool
                .stats
                .queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.push((s, co, joins));
        }
        Ok(out)
    }

    /// Runs `job` and answers the client (for a simple query, up to ReadyForQuery).
    pub(crate) async fn run_fanout(&mut self, mut job: Job) -> Result<()> {
        if let Some(spec) = job.copy_in.take() {
            return self.run_copy_in(job, spec).await;
        }
        let extended = job.extended.is_some();
        let log_started = self
            .ctx
            .app
            .query_log
            .enabled()
            .then(std::time::Instant::now);
        self.ctx
            .app
            .metrics
            .cross_shard_query(&self.ctx.user.pool_name);
        let poisoned = self.tx().tx_poisoned;
        self.tx().tx_poisoned |= job.in_tx;
        let conns = match self.fanout_checkouts(&job).await {
            Ok(c) => c,
            // Said by the pause gate before anything was taken or sent: the transaction
            // is as it was, and the caller plans the statement again (`replan.rs`,
            // `held_replan.rs`).
            Err(RouterError::MapChanged) => {
                self.tx().tx_poisoned = poisoned;
                return Err(RouterError::MapChanged);
            }
            Err(e) => return self.fanout_failed(e, extended),
        };
        let begin = self.tx().begin_text();
        let mut ahead = self.pipelined_prepares(&job, conns.len());
        let mut streams = Vec::with_capacity(conns.len());
        // One span per shard under the client's transaction (ended when dropped).
        let mut shard_spans = Vec::new();
        for (i, (shard, mut co, joins)) in conns.into_iter().enumerate() {
            shard_spans.extend(self.ctx.trace_child(
                "shard",
                vec![
                    opentelemetry::KeyValue::new("orochi.shard", shard as i64),
                    opentelemetry::KeyValue::new("server.address", co.pool.target.addr()),
                ],
            ));
            let sql = job
                .sql
                .get(i)
                .or(job.sql.first())
                .cloned()
                .unwrap_or_default();
            let mut b = BytesMut::new();
            let mut readies = 1;
            if joins {
                FrontendMessage::Query(begin.clone()).encode(&mut b);
                readies += 1;
            }
            if job.write && job.wrap && !job.in_tx {
                FrontendMessage::Query("BEGIN".into()).encode(&mut b);
                readies += 1;
            }
            let lead = readies - 1;
            match &job.extended {
                None => FrontendMessage::Query(sql).encode(&mut b),
                Some(x) => {
                    let param_types = job
                        .shard_param_types
                        .as_ref()
                        .and_then(|t| t.get(i))
                        .unwrap_or(&x.param_types)
                        .clone();
                    FrontendMessage::Parse {
                        name: String::new(),
                        query: sql,
                        param_types,
                    }
                    .encode(&mut b);
                    FrontendMessage::Bind {
                        portal: String::new(),
                        statement: String::new(),
                        param_formats: x.param_formats.clone(),
                        params: x.params.clone(),
                        result_formats: x.result_formats.clone(),
                    }
                    .encode(&mut b);
                    FrontendMessage::Describe {
                        kind: b'P',
                        name: String::new(),
                    }
                    .encode(&mut b);
                    FrontendMessage::Execute {
                        portal: String::new(),
                        max_rows: 0,
                    }
                    .encode(&mut b);
                    FrontendMessage::Sync.encode(&mut b);
                }
            }
            let mut trailer = Trailer::None;
            if let Some(prepare) = ahead.as_ref().and_then(|a| a.prepare_sql(shard)) {
                orochi_wire::frontend::encode_query(&prepare, &mut b);
                readies += 1;
                trailer = Trailer::Pending;
            }
            if let Err(e) = co.conn().write_all(&b).await {
                if let Some(a) = ahead.take() {
                    // What went out on the other shards may be prepared by now.
                    super::fanout_end::roll_back_pipelined(&mut streams, a).await;
                }
                return self.fanout_failed(e, extended);
            }
            streams.push(Stream {
                co,
                readies,
                lead,
                trailer,
                complete: false,
                copy_in: false,
            });
        }
        // A cancel from the client reaches every shard's backend while they run.
        let restore = self.ctx.cancel.slot.get_all();
        self.ctx
            .cancel
            .slot
            .set_all(streams.iter().map(|s| cancel_target(&s.co)).collect());
        let r = match self.ctx.deadlines.query() {
            None => self.merge_streams(&job, &mut streams).await,
            Some(d) => {
                match tokio::time::timeout(d, self.merge_streams(&job, &mut streams)).await {
                    Ok(r) => r,
                    Err(_) => {
                        // query_timeout: every shard's connection is cancelled and closed.
                        for s in streams.iter_mut() {
                            super::deadline::abandon(&mut s.co);
                        }
                        drop(streams);
                        return Err(self.ctx.on_expired(
                            super::deadline::Wait::Query,
                            self.back,
                            self.front,
                        ));
                    }
                }
            }
        };
        self.ctx.cancel.slot.set_all(restore);
        // Every stream back to ReadyForQuery; writes committed or rolled back.
        let mut failed = !matches!(r, Ok(Merged::Tag(_)));
        for s in streams.iter_mut() {
            if s.drain().await.is_err() {
                s.co.conn().broken = true;
                failed = true;
            }
            if let (Some(a), Trailer::Answered(r)) = (ahead.as_mut(), &s.trailer) {
                a.answer(s.co.pool.shard, r.clone().map_err(crate::twopc::from_pg));
            }
        }
        if failed && !job.in_tx {
            // A read answered aside while the client's BEGIN is held back (no shard
            // chosen yet) failed: so did the transaction, as in PostgreSQL (25P02 for
            // what follows until ROLLBACK).
            self.fail_held_back();
        }
        for span in shard_spans.iter_mut() {
            if failed {
                crate::otel::fail_span(span, "the statement failed");
            }
        }
        drop(shard_spans);
        if job.in_tx {
            self.keep_in_transaction(&job, streams, failed).await;
            if let (false, Ok(Merged::Tag(tag))) = (failed, &r) {
                self.emit(tag);
            }
        } else {
            if job.write && job.wrap {
                failed = self.commit_fanout(&job, &mut streams, failed, ahead).await;
            }
            if let (false, Ok(Merged::Tag(tag))) = (failed, &r) {
                self.emit(tag);
            }
            Stream::release_all(streams);
        }
        if let Some(t) = log_started {
            let tag = match (&r, failed) {
                (Ok(Merged::Tag(tag)), false) => Some(&tag[..]),
                _ => None,
            };
            let values = self.ctx.app.query_log.parameters();
            super::statement_log::log_fanout(&self.ctx.user, values, &job, t, tag);
        }
        match r {
            Err(e) => self.fanout_failed(e, extended),
            Ok(Merged::Unmergeable(why)) => self.gather_after_merge(job, why).await,
            Ok(_) => {
                if !extended {
                    let status = self.back.local_status();
                    self.emit(&super::reply::ready(status));
                }
                Ok(())
            }
        }
    }

    pub(super) fn emit_error(&mut self, e: PgError, extended: bool) {
        let mut b = BytesMut::new();
        e.encode(&mut b);
        self.emit(&b);
        if extended {
            self.front.router_skipping = true;
        }
    }

    pub(super) fn fanout_failed(&mut self, e: RouterError, extended: bool) -> Result<()> {
        if matches!(e, RouterError::MapChanged) && !extended {
            // Planned again by the caller (`on_client_frame`).
            return Err(e);
        }
        match e.to_client() {
            Some(pg) if !matches!(e, RouterError::ShuttingDown | RouterError::ClientIo(_)) => {
                tracing::warn!(client = self.ctx.id, error = %e, "cross-shard statement failed");
                self.emit_error(pg, extended);
                if !extended {
                    let status = self.back.local_status();
                    self.emit(&super::reply::ready(status));
                }
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// The merge proper.
    async fn merge_streams(&mut self, job: &Job, streams: &mut [Stream]) -> Result<Merged> {
        let extended = job.extended.is_some();
        let mut notices = BytesMut::new();
        // 1. Every shard's first answer.
        let mut heads = Vec::with_capacity(streams.len());
        for s in streams.iter_mut() {
            heads.push(s.next(&mut notices).await?);
        }
        self.emit(&notices.split());
        if let Some(Event::Error(f)) = heads.iter().find(|e| matches!(e, Event::Error(_))) {
            let f = f.clone();
            let mut b = BytesMut::new();
            f.encode(&mut b);
            self.emit(&b);
            if extended {
                self.front.router_skipping = true;
            }
            return Ok(Merged::Sent);
        }
        let header = heads.iter().find_map(|e| match e {
            Event::Header(f) => Some(f.clone()),
            _ => None,
        });
        let (params, formats) = job
            .extended
            .as_ref()
            .map(|x| (x.params.as_slice(), x.param_formats.as_slice()))
            .unwrap_or((&[], &[]));
        let offset = count_value(job.merge.offset, params, formats).unwrap_or(0);
        let limit = count_value(job.merge.limit, params, formats);
        let mut sent: u64 = 0;
        let mut skipped: u64 = 0;
        let mut tags: Vec<String> = Vec::new();
        let mut copy_header_sent = false;

        let bound = match &header {
            Some(h) => {
                let Some(fs) = fields(h) else {
                    return Err(RouterError::Pg(PgError::error(
                        "08P01",
                        "bad RowDescription from a shard",
                    )));
                };
                let types: Vec<ColType> = fs
                    .iter()
                    .map(|f| ColType {
                        oid: f.type_oid,
                        binary: f.format == 1,
                    })
                    .collect();
                let visible = fs.len().saturating_sub(job.merge.hidden);
                let bound = Bound {
                    plan: job.merge.clone(),
                    types,
                    visible,
                };
                if let Err(m) = bound.check() {
                    return Ok(Merged::Unmergeable(format!(
                        "{m} is not supported by the router"
                    )));
                }
                let mut out_fields: Vec<FieldDescription> = fs[..visible].to_vec();
                if let Some(g) = &job.merge.group {
                    for (c, k) in &g.aggs {
                        if let AggKind::Avg { .. } = k {
                            let i = bound.index(*c);
                            if let Some(f) = out_fields.get_mut(i) {
                                f.type_oid = avg_type(f.type_oid);
                                f.type_size = if f.type_oid == crate::fanout::value::FLOAT8 {
                                    8
                                } else {
                                    -1
                                };
                                f.type_modifier = -1;
                            }
                        }
                    }
                    for (c, chain) in &g.casts {
                        if let (Some(f), Some(to)) =
                            (out_fields.get_mut(bound.index(*c)), chain.last())
                        {
                            f.type_oid = to.oid();
                            f.type_size = to.size();
                            f.type_modifier = -1;
                        }
                    }
                }
                if job.extended.as_ref().is_none_or(|x| x.describe) {
                    let mut b = BytesMut::new();
                    BackendMessage::RowDescription(out_fields).encode(&mut b);
                    self.emit(&b);
                }
                Some(bound)
            }
            None => {
                if job.extended.as_ref().is_some_and(|x| x.describe)
                    && heads.iter().any(|e| matches!(e, Event::NoData))
                {
                    self.emit(&super::reply::message(BackendMessage::NoData));
                }
                None
            }
        };
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let visible_cols: Vec<usize> = bound.as_ref().map_or(vec![], |b| (0..b.visible).collect());
        // Offers one merged row to the client (DISTINCT, OFFSET, LIMIT).
        let mut offer = |this: &mut ShardedPath<'_>, row: &Row, b: &Bound| {
            if limit.is_some_and(|l| sent >= l) {
                return;
            }
            if b.plan.distinct && !seen.insert(b.key(row, &visible_cols)) {
                return;
            }
            if skipped < offset {
                skipped += 1;
                return;
            }
            sent += 1;
            let body = row.truncated(b.visible);
            let mut out = BytesMut::with_capacity(body.len() + 5);
            Frame::new(b'D', body).encode(&mut out);
            this.emit(&out);
        };
        // Reads a shard's next row; `None` at its end (tag kept).
        async fn next_row(
            s: &mut Stream,
            notices: &mut BytesMut,
            tags: &mut Vec<String>,
        ) -> Result<std::result::Result<Option<Row>, Frame>> {
            loop {
                match s.next(notices).await? {
                    Event::Row(b) => {
                        return Ok(Ok(Some(Row::parse(b).ok_or_else(|| {
                            RouterError::Pg(PgError::error("08P01", "bad DataRow from a shard"))
                        })?)))
                    }
                    Event::Complete(t) => {
                        tags.push(t);
                        return Ok(Ok(None));
                    }
                    Event::Error(f) => return Ok(Err(f)),
                    _ => {}
                }
            }
        }
        macro_rules! shard_error {
            ($f:expr) => {{
                let mut b = BytesMut::new();
                $f.encode(&mut b);
                self.emit(&b);
                if extended {
                    self.front.router_skipping = true;
                }
                return Ok(Merged::Sent);
            }};
        }
        match &bound {
            Some(b) if b.plan.group.is_some() => {
                let mut groups = Groups::new();
                for s in streams.iter_mut() {
                    loop {
                        match next_row(s, &mut notices, &mut tags).await? {
                            Ok(Some(r)) => {
                                if let Err(m) = groups.add(b, &r) {
                                    self.emit_error(PgError::error("22003", m), extended);
                                    return Ok(Merged::Sent);
                                }
                            }
                            Ok(None) => break,
                            Err(f) => shard_error!(f),
                        }
                    }
                }
                let mut rows = match groups.finish(b) {
                    Ok(r) => r,
                    Err(m) => {
                        // Cast errors carry their SQLSTATE: "22003:integer out of range".
                        let e = match m.split_once(':') {
                            Some((code, msg)) if code.len() == 5 => PgError::error(code, msg),
                            _ => PgError::error("0A000", m),
                        };
                        self.emit_error(e, extended);
                        return Ok(Merged::Sent);
                    }
                };
                if !b.plan.order.is_empty() {
                    rows.sort_by(|x, y| b.cmp_rows(x, y));
                }
                for r in &rows {
                    offer(self, r, b);
                }
            }
            Some(b) if !b.plan.order.is_empty() => {
                let mut heads: Vec<Option<Row>> = Vec::with_capacity(streams.len());
                for s in streams.iter_mut() {
                    match next_row(s, &mut notices, &mut tags).await? {
                        Ok(r) => heads.push(r),
                        Err(f) => shard_error!(f),
                    }
                }
                loop {
                    let mut best: Option<usize> = None;
                    for (i, h) in heads.iter().enumerate() {
                        if let Some(r) = h {
                            let better = match best.and_then(|j| heads[j].as_ref()) {
                                None => true,
                                Some(cur) => b.cmp_rows(r, cur) == std::cmp::Ordering::Less,
                            };
                            if better {
                                best = Some(i);
                            }
                        }
                    }
                    let Some(i) = best else { break };
                    if let Some(r) = heads[i].take() {
                        offer(self, &r, b);
                    }
                    self.emit_flush().await?;
                    match next_row(&mut streams[i], &mut notices, &mut tags).await? {
                        Ok(r) => heads[i] = r,
                        Err(f) => shard_error!(f),
                    }
                }
            }
            _ => {
                for (i, s) in streams.iter_mut().enumerate() {
                    let mut ev = match std::mem::replace(&mut heads[i], Event::NoData) {
                        Event::Complete(t) => {
                            tags.push(t);
                            continue;
                        }
                        e @ Event::Copy(_) => Some(e),
                        _ => None,
                    };
                    loop {
                        let e = match ev.take() {
                            Some(e) => e,
                            None => s.next(&mut notices).await?,
                        };
                        match e {
                            Event::Row(_) if job.replicated && i > 0 => {}
                            Event::Row(body) => match &bound {
                                Some(b) => {
                                    let r = Row::parse(body).ok_or_else(|| {
                                        RouterError::Pg(PgError::error(
                                            "08P01",
                                            "bad DataRow from a shard",
                                        ))
                                    })?;
                                    offer(self, &r, b);
                                }
                                None => {
                                    let mut out = BytesMut::new();
                                    Frame::new(b'D', body).encode(&mut out);
                                    self.emit(&out);
                                }
                            },
                            Event::Copy(f) => match f.tag {
                                b'H' if copy_header_sent => {}
                                b'H' => {
                                    copy_header_sent = true;
                                    let mut out = BytesMut::new();
                                    f.encode(&mut out);
                                    self.emit(&out);
                                }
                                b'd' => {
                                    let mut out = BytesMut::new();
                                    f.encode(&mut out);
                                    self.emit(&out);
                                }
                                _ => {}
                            },
                            Event::Complete(t) => {
                                tags.push(t);
                                break;
                            }
                            Event::Error(f) => shard_error!(f),
                            Event::Header(_) | Event::NoData | Event::CopyIn(_) => {}
                        }
                        self.emit_flush().await?;
                    }
                }
                if copy_header_sent {
                    let mut out = BytesMut::new();
                    FrontendMessage::CopyDone.encode(&mut out);
                    self.emit(&out);
                }
            }
        }
        // Let every shard finish its statement (a LIMIT may have stopped us early).
        for s in streams.iter_mut() {
            while !s.complete {
                match s.next(&mut notices).await? {
                    Event::Complete(t) => tags.push(t),
                    Event::Error(f) => shard_error!(f),
                    _ => {}
                }
            }
        }
        self.emit(&notices.split());
        let tag = if job.select && bound.is_some() {
            format!("SELECT {sent}")
        } else if job.replicated {
            tags.first().cloned().unwrap_or_default()
        } else {
            sum_tags(&tags)
        };
        Ok(Merged::Tag(super::reply::message(
            BackendMessage::CommandComplete(tag),
        )))
    }
}
