//! A simple Query handled in place when nothing has to wait: a transaction's later
//! statement on an unsharded pool, its server held and in step with the session's
//! settings. It needs no plan, no checkout and no sharded step, so it goes out as a
//! Bind or an Execute does on that path (`extended_now`): no owned copy of the
//! message, no boxed future (issue 16, CPU per transaction: a `BEGIN; …; END`
//! script sends all its statements but the first this way). Anything else (no server
//! held, a sharded pool, a shard comment, a router directive such as
//! `SET orochi.shard`, settings to apply first) takes the full path,
//! [`Session::on_query`], which uses the same checks and the same forwarding below.

use super::expect::{Expect, Term};
use super::session::{Handled, Session};
use crate::error::Result;
use crate::planner::directive::{comment_shard, directive};
use crate::planner::session::Analysis;
use orochi_wire::FrameRef;
use std::sync::Arc;

impl Session {
    /// A simple Query in place when its server is held and nothing has to wait;
    /// [`Handled::Later`] before any effect otherwise.
    pub(crate) fn on_query_now(&mut self, f: FrameRef<'_>) -> Result<Handled> {
        if !self.back.phase.is_attached()
            || self.attached_behind()
            || self.ctx.user.sharding.is_some()
            || self.ctx.shard.is_some()
        {
            return Ok(Handled::Later);
        }
        let sql = orochi_wire::frontend::query_text_of(f)?;
        if comment_shard(sql).is_some() || directive(sql).is_some() {
            return Ok(Handled::Later);
        }
        // The full path's order: the gateway's check comes before the directive's,
        // which sent this one there already.
        if let Some(e) = self.gateway_refuse_query(sql) {
            self.front.router_error(&self.back, e, false);
        } else if let Some(analysis) = self.screen_query_words(sql) {
            self.forward_query(f, sql, &analysis);
        }
        Ok(Handled::Done)
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
