//! A simple Query handled in place when nothing has to wait, on an unsharded pool: its
//! server is held and in step with the session's settings (a transaction's later
//! statement, any statement under session pooling), or a connection is ready to be
//! lent now (a free permit, an idle connection that needs no reset and already has the
//! session's settings). It needs no plan and no sharded step, so it goes out as a Bind
//! or an Execute does on a held server (`extended_now`): no owned copy of the
//! message, no boxed future (issue 16, CPU per transaction). Anything else (a full
//! pool, a connection to reset or open, a paused pool, a trace to record, a sharded
//! pool, a shard comment, a router directive such as `SET orochi.shard`, settings to
//! apply first) takes the full path, [`Session::on_query`], which uses the same checks,
//! the same attaching (`attach_checkout`) and the same forwarding. The extended
//! protocol's first message of a statement takes a ready connection the same way
//! (`extended_first_now`, through `may_check_out_now` and `check_out_now`).

use super::expect::{Expect, Term};
use super::session::{Handled, Session};
use crate::clients::ClientState;
use crate::error::Result;
use crate::planner::directive::{comment_shard, directive};
use crate::planner::session::Analysis;
use orochi_wire::FrameRef;
use std::sync::Arc;

impl Session {
    /// A simple Query in place when nothing has to wait: its server is held and in
    /// step, or one is ready to be lent now (`check_out_now`). [`Handled::Later`]
    /// before any effect otherwise.
    pub(crate) fn on_query_now(&mut self, f: FrameRef<'_>) -> Result<Handled> {
        let idle = self.back.phase.is_idle();
        let sharded = self.ctx.user.sharding.is_some();
        let held_in_step = !sharded && self.back.phase.is_attached() && !self.attached_behind();
        if !(held_in_step || idle && self.may_check_out_now()) || self.ctx.shard.is_some() {
            return Ok(Handled::Later);
        }
        let sql = orochi_wire::frontend::query_text_of(f)?;
        if comment_shard(sql).is_some() || directive(sql).is_some() {
            return Ok(Handled::Later);
        }
        // The full path's order: the gateway's check, the directives' (which sent this
        // one there already), the guard's, then the checkout.
        if let Some(e) = self.gateway_refuse_query(sql) {
            self.front.router_error(&self.back, e, false);
            return Ok(Handled::Done);
        }
        let Some(analysis) = self.screen_query_words(sql) else {
            return Ok(Handled::Done);
        };
        let wanted = match sharded {
            true => match self.one_shard_now(sql) {
                Some(s) => Some(s),
                None => return Ok(Handled::Later),
            },
            false => None,
        };
        use crate::planner::rw::{is_read, is_read_only_begin};
        let read = || self.ctx.user.has_replicas && (is_read(sql) || is_read_only_begin(sql));
        if idle && !self.check_out_now(wanted, read()) {
            // Nothing was done that the full path does not do again; the shard
            // planned is handed to it.
            self.routed_now = wanted;
            return Ok(Handled::Later);
        }
        self.forward_query(f, sql, &analysis);
        Ok(Handled::Done)
    }

    /// May a checkout be tried without waiting? Not while the pool is paused or its
    /// configuration was reloaded (`pause_gate.rs`), nor with a trace to record the
    /// checkout's span in (`trace.rs`), nor when the pool has no permit free (the
    /// statement would be screened twice: here, and again on the way that waits).
    pub(crate) fn may_check_out_now(&self) -> bool {
        self.back.holds_no_connection()
            && self.ctx.user.any_free_permit()
            && self.ctx.gate_is_open(true)
            && (self.ctx.app.otel.get().is_none() || self.ctx.trace.is_none())
    }

    /// `ensure_server`'s checkout when a connection is ready now, its settings already
    /// the session's: attached as that one attaches it. `false` (nothing taken) sends
    /// the statement the full way: a full pool, a connection to reset or to open, a
    /// cancel still landing, the shard's roles not yet discovered.
    pub(crate) fn check_out_now(&mut self, wanted: Option<usize>, read: bool) -> bool {
        let Ok(shard) = self.pick_shard(wanted) else {
            return false;
        };
        let target = self.ctx.target_for(read);
        let fingerprint = self.state.params.fingerprint();
        let Some(co) = self
            .ctx
            .user
            .try_checkout_now(shard, target, self.ctx.id, |c| {
                c.applied_params == fingerprint
            })
        else {
            return false;
        };
        self.ctx.client.info.set_state(ClientState::Active);
        self.attach_checkout(co);
        true
    }

    /// The one shard an autocommit Query on a sharded pool goes to, planned in place
    /// as the full path's first step plans it (`literals::one_shard`: its literal keys
    /// name one shard), while the session keeps no transaction state (`at_rest`); so
    /// `pgbench -S` through a sharded pool takes a ready connection as through an
    /// unsharded one. `None`: the full path plans it.
    fn one_shard_now(&mut self, sql: &str) -> Option<usize> {
        use crate::planner::sharding::{literals::one_shard, Kind};
        let schema = self.ctx.sharding()?;
        if !self.back.sharded_tx().is_none_or(|t| t.at_rest()) {
            return None;
        }
        let (s, kind) = one_shard(&schema, sql)?;
        // As `route_sharded` notes it (a later refusal of the checkout leaves it noted
        // once: the full path adds a shard only if missing).
        let wrote = &mut self.back.tx().wrote;
        if kind == Kind::Write && !wrote.contains(&s) {
            wrote.push(s);
        }
        Some(s)
    }

    /// The checks every simple Query passes before it is routed, after the gateway's
    /// and the directives': the two-phase-commit guard's, LISTEN outside session
    /// pooling. A refusal is answered here (`None`); otherwise the statement's session
    /// effects.
    pub(crate) fn screen_query_words(&mut self, sql: &str) -> Option<Arc<Analysis>> {
        // One pass over the text for the guard and the session tracking (issue 16).
        let words = crate::planner::session::STATEMENT_WORDS.scan(sql);
        if let Some(e) = crate::twopc_guard::refuse_query(sql, words) {
            self.front.router_error(&self.back, e, false);
            return None;
        }
        let analysis = crate::planner::session::analyze_screened(sql, words);
        if let Some(e) = self.refuse_listen(&analysis) {
            self.front.router_error(&self.back, e, false);
            return None;
        }
        Some(analysis)
    }

    /// Sends a simple Query to the server now held, noting its session effects and
    /// the answer to relay.
    pub(crate) fn forward_query(&mut self, f: FrameRef<'_>, sql: &str, analysis: &Analysis) {
        self.track_session_ops(analysis);
        self.count_statement();
        self.arm_retry(f, sql);
        self.send_server(f, None);
        let started = std::time::Instant::now();
        if self.ctx.app.query_log.enabled() {
            self.qlog.sent(started, sql, None);
        }
        self.front.expect.push_back(Expect::Forward(Term::Ready {
            started: Some(started),
        }));
    }
}
