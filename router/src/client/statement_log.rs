//! The session's side of `log_queries` (`crate::query_log`): statements sent to one
//! shard are remembered with the `started` instant of their `Expect` and logged when
//! the server's answer to them is relayed; fan-outs are logged by `run_fanout`. Every
//! caller checks `app.query_log.enabled()` (or that something is pending) first.

use super::session::Session;
use crate::query_log::{self, Line, Pending};
use bytes::Bytes;
use std::time::Instant;

impl Session {
    /// A simple Query (or a Bind's portal at Execute) went to the attached server.
    pub(crate) fn log_sent(&mut self, started: Instant, sql: &str, params: Option<String>) {
        self.qlog.push_back(Pending {
            started,
            sql: query_log::truncate(sql.trim(), query_log::MAX_SQL),
            params,
        });
    }

    /// A Bind: its statement's text and (with `log_parameters`) values, for the Execute.
    pub(crate) fn log_bind(
        &mut self,
        stmt: &crate::statements::PreparedStatement,
        params: &[Option<Bytes>],
        formats: &[i16],
    ) {
        let values = self
            .app
            .query_log
            .parameters()
            .then(|| query_log::format_params(params, formats, &stmt.param_types));
        self.qlog_bind = Some((stmt.query.clone(), values));
    }

    /// An Execute went to the server: it logs the portal last bound.
    pub(crate) fn log_execute(&mut self, started: Instant) {
        if let Some((sql, params)) = self.qlog_bind.clone() {
            self.log_sent(started, &sql, params);
        }
    }

    /// The server finished the statement that started at `started`: its line.
    pub(crate) fn log_answered(&mut self, started: Instant) {
        // Entries before it were cut short by an error (their Expect is gone).
        while self.qlog.front().is_some_and(|p| p.started != started) {
            self.qlog.pop_front();
        }
        let Some(p) = self.qlog.pop_front() else {
            return;
        };
        let rows = self.qlog_rows.take();
        let Some(co) = self.phase.server() else {
            return;
        };
        query_log::emit(Line {
            pool: &self.user.pool_name,
            user: &self.user.user.username,
            shards: &[co.pool.shard],
            elapsed: started.elapsed(),
            rows,
            sql: &p.sql,
            params: p.params.as_deref(),
        });
    }

    /// A statement that ran on several shards (`run_fanout`).
    pub(crate) fn log_fanout(&self, job: &super::job::Job, started: Instant, tag: Option<&[u8]>) {
        let params = match &job.extended {
            Some(x) if self.app.query_log.parameters() => Some(query_log::format_params(
                &x.params,
                &x.param_formats,
                &x.param_types,
            )),
            _ => None,
        };
        let sql = job.sql.first().map(String::as_str).unwrap_or_default();
        query_log::emit(Line {
            pool: &self.user.pool_name,
            user: &self.user.user.username,
            shards: &job.shards,
            elapsed: started.elapsed(),
            rows: tag.and_then(query_log::rows_of_tag),
            sql: &query_log::truncate(sql.trim(), query_log::MAX_SQL),
            params: params.as_deref(),
        });
    }
}
