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

/// An extended-protocol message read and let through by [`Session::screen_extended`].
struct Screened {
    /// `None`: an unnamed Parse of exactly the unnamed statement's text and types,
    /// compared in place and not decoded (libpq's extended mode; issue 16).
    msg: Option<FrontendMessage>,
    /// The planner's `STATEMENT_WORDS` found in a Parse's text (0 otherwise).
    words: u16,
    /// An unnamed Parse of the text and types the unnamed statement already has.
    reparsed: bool,
}

impl Session {
    /// Parse, Bind, Describe, Execute, Close, FunctionCall.
    pub(crate) async fn on_extended(&mut self, f: Frame) -> Result<()> {
        let Some(screened) = self.screen_extended(&f)? else {
            return Ok(());
        };
        let text = match &screened.msg {
            Some(FrontendMessage::Parse { query, .. }) => Some(query.as_str()),
            Some(_) => None,
            None => self.state.unnamed.as_ref().map(|u| u.query.as_str()),
        };
        let mut wanted = text.and_then(comment_shard).and_then(|r| r.ok());
        if wanted.is_none() && !self.ctx.is_sharded() && matches!(f.tag, b'B' | b'D' | b'E' | b'C')
        {
            // A Bind, Describe, Execute or Close follows its statement to the server held:
            // where a shard comment on the Parse or the session's shard sent it.
            wanted = self.back.phase.server().map(|co| co.pool.shard);
        }
        if let (None, Some(schema)) = (wanted, self.ctx.sharding()) {
            // Only a message read in full is planned (`screen_extended` compares a Parse
            // in place on unsharded pools alone).
            let decoded;
            let msg = match &screened.msg {
                Some(m) => m,
                None => {
                    decoded = FrontendMessage::decode(&f)?;
                    &decoded
                }
            };
            // Boxed, as in `on_query`: the sharded steps' futures are deep.
            let mut path = self.sharded_path_with(schema);
            match Box::pin(path.sharded_extended(msg)).await? {
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
                return self
                    .front
                    .checkout_failed(&self.back, self.ctx.id, e, f.tag != b'F')
            }
            Ok(()) => {}
        }
        self.forward_extended(f, screened)
    }

    /// Can a Bind, Describe, Execute or Close go out without waiting for anything? A
    /// server is held on an unsharded pool (nothing to plan; the message follows its
    /// statement to that server) and `ensure_server` would return at once. Every
    /// extended message after a transaction's first passes here: handled in place, it
    /// needs no boxed future (issue 16, CPU per transaction).
    pub(crate) fn extended_now(&self, tag: u8) -> bool {
        matches!(tag, b'B' | b'D' | b'E' | b'C')
            && !self.ctx.is_sharded()
            && self.back.phase.is_attached()
            && !self.attached_behind()
    }

    /// [`Session::on_extended`] when [`Session::extended_now`] said it needs no wait.
    pub(crate) fn on_extended_now(&mut self, f: Frame) -> Result<()> {
        if f.tag == b'B' && self.ctx.gateway.is_none() && !self.ctx.app.query_log.enabled() {
            return self.bind_now(f);
        }
        match self.screen_extended(&f)? {
            Some(screened) => self.forward_extended(f, screened),
            None => Ok(()),
        }
    }

    /// Decodes `f`, refuses what the guards refuse and answers what the router answers
    /// alone; `None` when that is done. Runs before a server is chosen.
    fn screen_extended(&mut self, f: &Frame) -> Result<Option<Screened>> {
        if let (b'P', None, Some(u), true) = (
            f.tag,
            &self.ctx.gateway,
            &self.state.unnamed,
            !self.ctx.is_sharded(),
        ) {
            if orochi_wire::frontend::parse_is(f, "", &u.query, &u.param_types) {
                return Ok(Some(Screened {
                    msg: None,
                    words: 0,
                    reparsed: true,
                }));
            }
        }
        let msg = FrontendMessage::decode(f)?;
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
            return Ok(None);
        }
        // Messages the router answers without a server.
        match &msg {
            FrontendMessage::Close { kind: b'S', name } if !name.is_empty() => {
                self.state.statements.remove(name);
                self.front.reply(message(BackendMessage::CloseComplete));
                return Ok(None);
            }
            FrontendMessage::Close { .. } if self.back.phase.is_idle() => {
                self.front.reply(message(BackendMessage::CloseComplete));
                return Ok(None);
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
                    return Ok(None);
                }
            }
            _ => {}
        }
        Ok(Some(Screened {
            msg: Some(msg),
            words,
            reparsed,
        }))
    }

    /// Sends a screened message to the server now held.
    fn forward_extended(&mut self, f: Frame, screened: Screened) -> Result<()> {
        let Screened {
            msg,
            words,
            reparsed,
        } = screened;
        self.back.unsynced = true;
        let Some(msg) = msg else {
            self.send_unnamed_parse(&f);
            return Ok(());
        };
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
                    self.send_unnamed_parse(&f);
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
                let logged = |s: &mut Self, stmt: &PreparedStatement| {
                    if s.ctx.app.query_log.enabled() {
                        let values = s.ctx.app.query_log.parameters();
                        s.qlog.bind(values, stmt, params, param_formats);
                    }
                };
                let Some(server_name) = self.bind_target(statement, logged) else {
                    return Ok(());
                };
                self.send_bind(f, server_name)?;
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

    /// Sends a Parse of the unnamed statement (already recorded as the session's).
    fn send_unnamed_parse(&mut self, f: &Frame) {
        self.back.phase.set_unnamed_on_server(true);
        self.send_server(
            f,
            Some(Expect::Forward(Term::Parse {
                client_name: None,
                id: 0,
            })),
        );
    }

    /// Where a Bind of the client's `statement` goes: the server-side name (prepared on
    /// this connection first if needed), after the statement's session effects are
    /// noted and `log` has seen it. `None` after an error was reported.
    fn bind_target(
        &mut self,
        statement: &str,
        log: impl FnOnce(&mut Self, &PreparedStatement),
    ) -> Option<Option<String>> {
        let server_name = self.resolve_statement(statement)?;
        if let Some(stmt) = self.statement_for(statement) {
            log(self, &stmt);
            if let Some(e) = self.refuse_listen(&stmt.analysis) {
                self.front.router_error(&self.back, e, true);
                return None;
            }
            self.track_session_ops(&stmt.analysis);
        }
        // `None`: the client's name is the server's; the Bind goes as it came.
        Some((server_name != statement).then_some(server_name))
    }

    /// Sends a Bind, renamed to `server_name` when the server knows the statement
    /// under another name.
    fn send_bind(&mut self, f: Frame, server_name: Option<String>) -> Result<()> {
        let frame = match server_name {
            None => f,
            Some(name) => rename_bind(&f, &name)?,
        };
        self.send_server(&frame, Some(Expect::Forward(Term::Bind)));
        Ok(())
    }

    /// A Bind on the pass-through path (no gateway, no statement log): only its
    /// statement name is read, in place (`orochi_wire::frontend::bind_statement`).
    fn bind_now(&mut self, f: Frame) -> Result<()> {
        let statement = orochi_wire::frontend::bind_statement(&f)?;
        self.back.unsynced = true;
        match self.bind_target(statement, |_, _| {}) {
            Some(server_name) => self.send_bind(f, server_name),
            None => Ok(()),
        }
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
