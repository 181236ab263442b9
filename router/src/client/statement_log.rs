//! The session's side of `log_queries` (`crate::query_log`): statements sent to one
//! shard are remembered with the `started` instant of their `Expect` and logged when
//! the server's answer to them is relayed; fan-outs are logged by `run_fanout`. Every
//! caller checks `app.query_log.enabled()` (or that something is pending) first.
//!
//! Its own type, a field of the session, rather than `impl Session`: it needs nothing
//! of the session but what its callers pass (the pool, the attached shard), so the
//! session's relay borrows it beside its other fields.

use super::job::Job;
use crate::backend::UserPools;
use crate::query_log::{self, Line, Pending};
use crate::statements::PreparedStatement;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::Instant;

/// Statements awaiting their answer, rows of the last CommandComplete, the last Bind's
/// text and values. Empty (and allocation-free) while `log_queries` is off.
#[derive(Default)]
pub(crate) struct StatementLog {
    pending: VecDeque<Pending>,
    rows: Option<u64>,
    bind: Option<(String, Option<String>)>,
}

impl StatementLog {
    /// A statement is waiting for its server's answer.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// A simple Query (or a Bind's portal at Execute) went to the attached server.
    pub(crate) fn sent(&mut self, started: Instant, sql: &str, params: Option<String>) {
        self.pending.push_back(Pending {
            started,
            sql: query_log::truncate(sql.trim(), query_log::MAX_SQL),
            params,
        });
    }

    /// A Bind: its statement's text and (with `log_parameters`, `with_values`) values,
    /// for the Execute.
    pub(crate) fn bind(
        &mut self,
        with_values: bool,
        stmt: &PreparedStatement,
        params: &[Option<Bytes>],
        formats: &[i16],
    ) {
        let values =
            with_values.then(|| query_log::format_params(params, formats, &stmt.param_types));
        self.bind = Some((stmt.query.clone(), values));
    }

    /// An Execute went to the server: it logs the portal last bound.
    pub(crate) fn execute(&mut self, started: Instant) {
        if let Some((sql, params)) = self.bind.clone() {
            self.sent(started, &sql, params);
        }
    }

    /// A CommandComplete was relayed (`tag`: its body): the row count, if one waits.
    pub(crate) fn completed(&mut self, tag: &[u8]) {
        if self.has_pending() {
            self.rows = query_log::rows_of_tag(tag);
        }
    }

    /// The server finished the statement that started at `started`: its line, logged
    /// when the session still has a server (`shard`).
    pub(crate) fn answered(&mut self, started: Instant, user: &UserPools, shard: Option<usize>) {
        // Entries before it were cut short by an error (their Expect is gone).
        while self.pending.front().is_some_and(|p| p.started != started) {
            self.pending.pop_front();
        }
        let Some(p) = self.pending.pop_front() else {
            return;
        };
        let rows = self.rows.take();
        let Some(shard) = shard else {
            return;
        };
        query_log::emit(Line {
            pool: &user.pool_name,
            user: &user.user.username,
            shards: &[shard],
            elapsed: started.elapsed(),
            rows,
            sql: &p.sql,
            params: p.params.as_deref(),
        });
    }
}

/// A statement that ran on several shards (`run_fanout`); `with_values`: `log_parameters`.
pub(crate) fn log_fanout(
    user: &UserPools,
    with_values: bool,
    job: &Job,
    started: Instant,
    tag: Option<&[u8]>,
) {
    let params = match &job.extended {
        Some(x) if with_values => Some(query_log::format_params(
            &x.params,
            &x.param_formats,
            &x.param_types,
        )),
        _ => None,
    };
    let sql = job.sql.first().map(String::as_str).unwrap_or_default();
    query_log::emit(Line {
        pool: &user.pool_name,
        user: &user.user.username,
        shards: &job.shards,
        elapsed: started.elapsed(),
        rows: tag.and_then(query_log::rows_of_tag),
        sql: &query_log::truncate(sql.trim(), query_log::MAX_SQL),
        params: params.as_deref(),
    });
}
