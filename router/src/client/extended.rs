//! The extended query protocol across pooled connections: named statements map to
//! router-wide server statements (prepared on each connection on demand), the unnamed
//! statement is re-sent when a Bind lands on a fresh connection, and the router answers
//! what it can without a server (Close of a pooled statement, a Parse of a statement a
//! server already accepted).

use super::expect::{Expect, Term};
use super::reply::message;
use super::session::Session;
use crate::error::{Result, RouterError};
use crate::planner::directive::comment_shard;
use crate::statements::{PreparedStatement, StatementRegistry};
use bytes::{BufMut, BytesMut};
use orochi_wire::{BackendMessage, Frame, FrontendMessage, PgError};
use std::sync::Arc;

impl Session {
    /// Parse, Bind, Describe, Execute, Close, FunctionCall.
    pub(crate) async fn on_extended(&mut self, f: Frame) -> Result<()> {
        let msg = FrontendMessage::decode(&f)?;
        // A driver that re-parses the same unnamed statement before every execution (libpq
        // in extended mode, JDBC's first uses) keeps the one already read: its text passed
        // the guards before, and its analysis is the same (issue 16, CPU per statement).
        let reparsed = match (&msg, &self.state.unnamed) {
            (
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                },
                Some(u),
            ) => name.is_empty() && u.query == *query && u.param_types == *param_types,
            _ => false,
        };
        // One pass over a Parse's text for the guard and the session tracking (issue 16).
        let words = match &msg {
            FrontendMessage::Parse { query, .. } if !reparsed => {
                crate::planner::session::STATEMENT_WORDS.scan(query)
            }
            _ => 0,
        };
        if let Some(e) = crate::twopc_guard::refuse_message(&msg, words)
            .or_else(|| self.gateway_refuse_message(&msg))
        {
            self.front.router_error(&self.back, e, true);
            return Ok(());
        }
        // Messages the router answers without a server.
        match &msg {
            FrontendMessage::Close { kind: b'S', name } if !name.is_empty() => {
                self.state.statements.remove(name);
                self.front.reply(message(BackendMessage::CloseComplete));
                return Ok(());
            }
            FrontendMessage::Close { .. } if self.back.phase.is_idle() => {
                self.front.reply(message(BackendMessage::CloseComplete));
                return Ok(());
            }
            // A statement some server already accepted, parsed by an idle client: answer
            // here. Taking a server just for this would make blocking prepares (libpq's
            // PQprepare, as pgbench -M prepared uses) wait on transactions of other clients
            // sharing the same thread: a deadlock when the pool is smaller than the clients.
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            } if self.back.phase.is_idle()
                && !name.is_empty()
                && !self.state.statements.contains_key(name) =>
            {
                let stmt = self.ctx.app.statements.get(query, param_types);
                if stmt.validated.load(std::sync::atomic::Ordering::Relaxed) {
                    self.state.statements.insert(name.clone(), stmt);
                    self.front.reply(message(BackendMessage::ParseComplete));
                    return Ok(());
                }
            }
            _ => {}
        }
        let mut wanted = match &msg {
            FrontendMessage::Parse { query, .. } => comment_shard(query).and_then(|r| r.ok()),
            _ => None,
        };
        if let (None, Some(schema)) = (wanted, self.ctx.sharding()) {
            // Boxed, as in `on_query`: the sharded steps' futures are deep.
            let mut path = self.sharded_path_with(schema);
            match Box::pin(path.sharded_extended(&msg)).await? {
                None => {}
                Some(None) => return Ok(()),
                Some(Some(s)) => wanted = Some(s),
            }
        }
        let read =
            self.back.phase.is_idle() && self.ctx.user.has_replicas && self.batch_is_read(&f);
        match self.ensure_server(wanted, read).await {
            // Nothing of this message was sent: `replan` plans it again.
            Err(RouterError::MapChanged) => return Err(RouterError::MapChanged),
            Err(e) => {
                return self.front.checkout_failed(
                    &self.back,
                    self.ctx.id,
                    e,
                    msg_is_extended(&msg),
                )
            }
            Ok(()) => {}
        }
        self.back.unsynced = true;
        match msg {
            FrontendMessage::Parse {
                name,
                query,
                param_types,
            } => {
                if name.is_empty() {
                    if !reparsed {
                        self.state.unnamed = Some(StatementRegistry::unnamed_screened(
                            &query,
                            &param_types,
                            words,
                        ));
                    }
                    self.back.phase.set_unnamed_on_server(true);
                    self.send_server(
                        &f,
                        Some(Expect::Forward(Term::Parse {
                            client_name: None,
                            id: 0,
                        })),
                    );
                    return Ok(());
                }
                if self.state.statements.contains_key(&name) {
                    self.front.router_error(
                        &self.back,
                        PgError::error(
                            "42P05",
                            format!("prepared statement \"{name}\" already exists"),
                        ),
                        true,
                    );
                    return Ok(());
                }
                let stmt = self.ctx.app.statements.get(&query, &param_types);
                self.state.statements.insert(name.clone(), stmt.clone());
                let has = self.server_has(stmt.id);
                if has {
                    self.front.reply(message(BackendMessage::ParseComplete));
                } else {
                    self.mark_prepared(stmt.id);
                    self.send_server(
                        &stmt.parse_frame(&stmt.server_name),
                        Some(Expect::Forward(Term::Parse {
                            client_name: Some(name),
                            id: stmt.id,
                        })),
                    );
                }
            }
            FrontendMessage::Bind {
                ref statement,
                ref params,
                ref param_formats,
                ..
            } => {
                let Some(server_name) = self.resolve_statement(statement) else {
                    return Ok(());
                };
                let stmt = self.statement_for(statement);
                if let (Some(s), true) = (&stmt, self.ctx.app.query_log.enabled()) {
                    let values = self.ctx.app.query_log.parameters();
                    self.qlog.bind(values, s, params, param_formats);
                }
                if let Some(stmt) = stmt {
                    if let Some(e) = self.refuse_listen(&stmt.analysis) {
                        self.front.router_error(&self.back, e, true);
                        return Ok(());
                    }
                    self.track_session_ops(&stmt.analysis);
                }
                let frame = if server_name == *statement {
                    f
                } else {
                    rename_bind(&f, &server_name)?
                };
                self.send_server(&frame, Some(Expect::Forward(Term::Bind)));
            }
            FrontendMessage::Describe { kind: b'S', name } => {
                let Some(server_name) = self.resolve_statement(&name) else {
                    return Ok(());
                };
                let frame = FrontendMessage::Describe {
                    kind: b'S',
                    name: server_name,
                }
                .to_frame();
                self.send_server(&frame, Some(Expect::Forward(Term::Describe)));
            }
            FrontendMessage::Describe { .. } => {
                self.send_server(&f, Some(Expect::Forward(Term::Describe)))
            }
            FrontendMessage::Execute { .. } => {
                self.count_statement();
                let started = std::time::Instant::now();
                if self.ctx.app.query_log.enabled() {
                    self.qlog.execute(started);
                }
                self.send_server(&f, Some(Expect::Forward(Term::Execute { started })))
            }
            FrontendMessage::Close { .. } => {
                self.send_server(&f, Some(Expect::Forward(Term::Close)))
            }
            FrontendMessage::FunctionCall(_) => {
                self.back.unsynced = false;
                self.send_server(
                    &f,
                    Some(Expect::Forward(Term::Ready {
                        started: Some(std::time::Instant::now()),
                    })),
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Does the batch starting with `first` (and already buffered up to its Sync) only
    /// read? Looked at before a server is chosen, so a pipeline that writes after a read
    /// never lands on a replica. An incomplete batch counts as a write.
    fn batch_is_read(&self, first: &Frame) -> bool {
        use crate::planner::rw::is_read;
        fn cstrs(body: &[u8]) -> (Option<&str>, Option<&str>) {
            let mut it = body.split(|&b| b == 0);
            let a = it.next().and_then(|s| std::str::from_utf8(s).ok());
            let b = it.next().and_then(|s| std::str::from_utf8(s).ok());
            (a, b)
        }
        let mut unnamed: Option<String> = self.state.unnamed.as_ref().map(|s| s.query.clone());
        let mut offset = 0;
        let mut next: Option<(u8, &[u8])> = Some((first.tag, &first.body[..]));
        while let Some((tag, body)) = next {
            match tag {
                b'P' => {
                    let (name, query) = cstrs(body);
                    let Some(query) = query else { return false };
                    if !is_read(query) {
                        return false;
                    }
                    if name == Some("") {
                        unnamed = Some(query.to_string());
                    }
                }
                b'B' => {
                    let (_, stmt) = cstrs(body);
                    let query = match stmt {
                        Some("") => unnamed.clone(),
                        Some(n) => self.state.statements.get(n).map(|s| s.query.clone()),
                        None => None,
                    };
                    if !query.is_some_and(|q| is_read(&q)) {
                        return false;
                    }
                }
                b'D' | b'E' | b'C' | b'H' => {}
                b'S' => return true,
                _ => return false,
            }
            next = match orochi_wire::frame::peek_frame(
                &self.front.rbuf[offset..],
                orochi_wire::MAX_MESSAGE_LEN,
            ) {
                Ok(Some((tag, total))) => {
                    let body = &self.front.rbuf[offset + 5..offset + total];
                    offset += total;
                    Some((tag, body))
                }
                _ => None,
            };
        }
        false
    }

    pub(crate) fn statement_for(&self, name: &str) -> Option<Arc<PreparedStatement>> {
        if name.is_empty() {
            self.state.unnamed.clone()
        } else {
            self.state.statements.get(name).cloned()
        }
    }

    fn server_has(&mut self, id: u64) -> bool {
        self.back.phase.server_mut().is_some_and(|co| {
            let conn = co.conn();
            let has = conn.prepared.contains_key(&id);
            if has {
                conn.touch_prepared(id);
            }
            has
        })
    }

    /// Records that `id` is being prepared on the current connection; past
    /// `max_prepared_statements`, the connection's least recently used router statement
    /// is closed on the server first (its clients re-prepare it where they need it).
    fn mark_prepared(&mut self, id: u64) {
        let Some(co) = self.back.phase.server_mut() else {
            return;
        };
        let conn = co.conn();
        conn.touch_prepared(id);
        if let Some(old) = conn.prepared_to_evict(self.state.max_prepared as usize) {
            let f = FrontendMessage::Close {
                kind: b'S',
                name: format!("_orochi_{old}"),
            }
            .to_frame();
            self.send_server(&f, Some(Expect::Swallow(Term::Close)));
        }
    }

    /// The server-side name of a client statement, preparing it on this connection
    /// first if needed. `None` after reporting an error (unknown statement).
    fn resolve_statement(&mut self, name: &str) -> Option<String> {
        if name.is_empty() {
            if !self.back.phase.unnamed_on_server() {
                if let Some(u) = self.state.unnamed.clone() {
                    self.send_server(
                        &u.parse_frame(""),
                        Some(Expect::Swallow(Term::Parse {
                            client_name: None,
                            id: 0,
                        })),
                    );
                    self.back.phase.set_unnamed_on_server(true);
                }
            }
            return Some(String::new());
        }
        let Some(stmt) = self.state.statements.get(name).cloned() else {
            self.front.router_error(
                &self.back,
                PgError::error(
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                ),
                true,
            );
            return None;
        };
        if !self.server_has(stmt.id) {
            self.mark_prepared(stmt.id);
            self.send_server(
                &stmt.parse_frame(&stmt.server_name),
                Some(Expect::Swallow(Term::Parse {
                    client_name: None,
                    id: stmt.id,
                })),
            );
        }
        Some(stmt.server_name.clone())
    }
}

fn msg_is_extended(m: &FrontendMessage) -> bool {
    !matches!(m, FrontendMessage::FunctionCall(_))
}

/// Rewrites the statement name of a Bind, keeping the rest of its body as is.
fn rename_bind(f: &Frame, server_name: &str) -> Result<Frame> {
    let body = &f.body;
    let portal_end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(orochi_wire::WireError::MissingNul("Bind"))?;
    let stmt_end = body[portal_end + 1..]
        .iter()
        .position(|&b| b == 0)
        .ok_or(orochi_wire::WireError::MissingNul("Bind"))?
        + portal_end
        + 1;
    let mut b = BytesMut::with_capacity(body.len() + server_name.len());
    b.put_slice(&body[..=portal_end]);
    b.put_slice(server_name.as_bytes());
    b.put_slice(&body[stmt_end..]);
    Ok(Frame::new(b'B', b.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn bind_rename_keeps_parameters() {
        let orig = FrontendMessage::Bind {
            portal: "p".into(),
            statement: "s1".into(),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(b"\0\0\0\x07")), None],
            result_formats: vec![0],
        };
        let renamed = rename_bind(&orig.to_frame(), "_orochi_9").unwrap();
        let FrontendMessage::Bind {
            portal,
            statement,
            params,
            ..
        } = FrontendMessage::decode(&renamed).unwrap()
        else {
            panic!()
        };
        assert_eq!((portal.as_str(), statement.as_str()), ("p", "_orochi_9"));
        assert_eq!(params.len(), 2);
    }
}
