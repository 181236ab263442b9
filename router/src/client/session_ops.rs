//! Session state carried by SQL statements: SET/RESET and friends (replayed per server
//! connection), SQL `PREPARE`/`EXECUTE`/`DEALLOCATE` (re-created where needed), LISTEN
//! (refused outside session mode) and the router's own routing directives.

use super::expect::{Expect, Term};
use super::phase::Phase;
use super::reply::{message, ready};
use super::session::Session;
use crate::clients::ClientState;
use crate::error::Result;
use crate::planner::directive::Directive;
use crate::planner::{Analysis, SessionOp};
use bytes::BytesMut;
use orochi_config::PoolMode;
use orochi_wire::{BackendMessage, FrontendMessage, PgError};
use std::collections::VecDeque;

fn hash_text(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Session {
    /// Answers a routing directive (never sent to a server).
    pub(crate) async fn on_directive(&mut self, d: Directive) {
        let attached = self.back.phase.server().map(|co| co.pool.shard);
        let result = match d {
            Directive::Invalid(e) => Err(PgError::error("22023", e)),
            Directive::SetRole(r) => {
                self.ctx.role = r;
                Ok(())
            }
            Directive::ResetShard => {
                self.ctx.shard = None;
                Ok(())
            }
            Directive::SetShard(n) if n >= self.ctx.user.shards.len() => Err(PgError::error(
                "22023",
                format!(
                    "shard {n} does not exist: pool \"{}\" has {} shard(s)",
                    self.ctx.user.pool_name,
                    self.ctx.user.shards.len()
                ),
            )),
            Directive::SetShard(n) => match attached {
                Some(cur) if cur != n && self.back.tx_status != b'I' => Err(PgError::error(
                    "25001",
                    "cannot change orochi.shard inside a transaction",
                )),
                Some(cur) if cur != n => {
                    // Session mode holds a server between transactions: give it back.
                    if let Some(mut co) = self.back.phase.detach() {
                        let conn = co.conn();
                        if conn
                            .run_silent("DISCARD ALL")
                            .await
                            .ok()
                            .flatten()
                            .is_none()
                        {
                            conn.forget_session_state();
                            co.release();
                        }
                        self.ctx.cancel.slot.set(None);
                        self.ctx.client.info.set_state(ClientState::Idle);
                        self.ctx.client.info.set_link(None);
                    }
                    self.ctx.shard = Some(n);
                    Ok(())
                }
                _ => {
                    self.ctx.shard = Some(n);
                    Ok(())
                }
            },
        };
        match result {
            Ok(()) => {
                self.front
                    .reply(message(BackendMessage::CommandComplete("SET".into())));
                let status = if self.back.phase.is_attached() {
                    self.back.tx_status
                } else {
                    b'I'
                };
                self.front.reply(ready(status));
            }
            Err(e) => self.front.router_error(&self.back, e, false),
        }
    }

    /// LISTEN needs the same server connection for the whole session.
    pub(crate) fn refuse_listen(&self, analysis: &Analysis) -> Option<PgError> {
        (analysis.ops.contains(&SessionOp::Listen) && self.ctx.mode != PoolMode::Session).then(
            || {
                PgError::error(
                    "0A000",
                    "LISTEN/UNLISTEN is not supported in transaction or statement pooling mode",
                )
                .with_hint("use pool_mode = \"session\" for clients that LISTEN")
            },
        )
    }

    /// Session effects of a statement about to be sent: prepared-statement bookkeeping
    /// now, settings once its outcome is known (`relay::on_ready`).
    pub(crate) fn track_session_ops(&mut self, analysis: &Analysis) {
        for op in &analysis.ops {
            self.prepare_sql_op(op);
        }
        self.state.pending_ops.extend(
            analysis
                .ops
                .iter()
                .filter(|o| o.changes_settings())
                .cloned(),
        );
    }

    /// Keeps SQL-level prepared statements right across server connections.
    fn prepare_sql_op(&mut self, op: &SessionOp) {
        let Some(co) = self.back.phase.server_mut() else {
            return;
        };
        let conn = co.conn();
        let inject = |sql: String, sout: &mut BytesMut, expect: &mut VecDeque<Expect>| {
            FrontendMessage::Query(sql).encode(sout);
            expect.push_back(Expect::Swallow(Term::Ready { started: None }));
        };
        match op {
            SessionOp::Prepare { name, .. } if self.state.sql_prepared.contains_key(name) => {
                // A duplicate: this connection must hold the client's statement of that
                // name, so the server answers 42P05 and the statement stays the first.
                let sql = self.state.sql_prepared[name].clone();
                let h = hash_text(&sql);
                if conn.sql_prepared.get(name) != Some(&h) {
                    if conn.sql_prepared.contains_key(name) {
                        inject(
                            format!("DEALLOCATE \"{}\"", name.replace('"', "\"\"")),
                            &mut self.back.sout,
                            &mut self.front.expect,
                        );
                    }
                    inject(sql, &mut self.back.sout, &mut self.front.expect);
                    conn.sql_prepared.insert(name.clone(), h);
                }
            }
            SessionOp::Execute { name } | SessionOp::Deallocate { name: Some(name) } => {
                if let Some(sql) = self.state.sql_prepared.get(name) {
                    let h = hash_text(sql);
                    if conn.sql_prepared.get(name) != Some(&h) {
                        if conn.sql_prepared.contains_key(name) {
                            inject(
                                format!("DEALLOCATE \"{}\"", name.replace('"', "\"\"")),
                                &mut self.back.sout,
                                &mut self.front.expect,
                            );
                        }
                        inject(sql.clone(), &mut self.back.sout, &mut self.front.expect);
                        conn.sql_prepared.insert(name.clone(), h);
                    }
                } else if conn.sql_prepared.remove(name).is_some() {
                    // The connection has another client's statement of that name: drop it,
                    // so this client gets "does not exist" as from its own session.
                    inject(
                        format!("DEALLOCATE \"{}\"", name.replace('"', "\"\"")),
                        &mut self.back.sout,
                        &mut self.front.expect,
                    );
                }
                if let SessionOp::Deallocate { .. } = op {
                    self.state.sql_prepared.remove(name);
                    conn.sql_prepared.remove(name);
                }
            }
            SessionOp::Prepare { name, sql } => {
                if conn.sql_prepared.contains_key(name) {
                    inject(
                        format!("DEALLOCATE \"{}\"", name.replace('"', "\"\"")),
                        &mut self.back.sout,
                        &mut self.front.expect,
                    );
                }
                conn.sql_prepared.insert(name.clone(), hash_text(sql));
                self.state.sql_prepared.insert(name.clone(), sql.clone());
            }
            SessionOp::Deallocate { name: None } | SessionOp::DiscardAll => {
                // Drops every prepared statement on this server, ours included.
                self.state.sql_prepared.clear();
                self.state.statements.clear();
                self.state.unnamed = None;
                conn.sql_prepared.clear();
                conn.prepared.clear();
            }
            SessionOp::Dirty => conn.dirty = true,
            _ => {}
        }
    }

    /// A connection kept between statements (session mode, or within a transaction)
    /// whose settings fell behind the client's — after a `RESET`, which PostgreSQL would
    /// take back to the client's startup value but the server takes to its own default —
    /// is brought up to date before the next statement, once nothing is in flight.
    pub(crate) async fn resync_attached(&mut self) -> Result<()> {
        if !self.attached_behind() {
            return Ok(());
        }
        // Detached while the settings are applied (they borrow the session), then put
        // back with its conversation's state.
        match self.back.phase.take() {
            Some(mut a) => {
                let r = self
                    .state
                    .apply_params(&mut a.co, &self.ctx, &mut self.front.out)
                    .await;
                self.back.phase = Phase::Attached(a);
                r
            }
            None => Ok(()),
        }
    }

    /// Are the held connection's settings behind the client's, with nothing in flight
    /// (what `resync_attached` brings up to date)?
    pub(crate) fn attached_behind(&self) -> bool {
        let idle =
            self.front.expect.is_empty() && !self.back.unsynced && self.back.tx_status == b'I';
        idle && self
            .back
            .phase
            .server()
            .is_some_and(|co| co.conn_ref().applied_params != self.state.params.fingerprint())
    }
}
