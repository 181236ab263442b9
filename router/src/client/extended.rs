//! The extended query protocol across pooled connections: named statements map to
//! router-wide server statements (prepared on each connection on demand), the unnamed
//! statement is re-sent when a Bind lands on a fresh connection, and the router answers
//! what it can without a server (Close of a pooled statement, a Parse of a statement a
//! server already accepted).

use super::expect::{Expect, Term};
use super::reply::message;
use super::session::{Handled, Session};
use crate::error::{Result, RouterError};
use crate::planner::directive::comment_shard;
use crate::statements::{PreparedStatement, StatementRegistry};
use bytes::{BufMut, BytesMut};
use orochi_wire::{BackendMessage, Frame, FrameRef, FrontendMessage, PgError};
use std::sync::Arc;

/// An extended-protocol message read and let through by [`Session::screen_extended`].
enum Screened {
    /// Read in full. `words`: the planner's `STATEMENT_WORDS` found in a Parse's text
    /// (0 otherwise); `reparsed`: an unnamed Parse of the text and types the unnamed
    /// statement already has.
    Read {
        msg: FrontendMessage,
        words: u16,
        reparsed: bool,
    },
    /// An unnamed Parse of exactly the unnamed statement's text and types, compared in
    /// place and not decoded (libpq's extended mode; issue 16).
    SameUnnamed,
    /// A Bind, a portal's Describe or an Execute where nothing needs its fields (an
    /// unsharded pool, no gateway, no statement log): checked in place and sent as it
    /// came, a Bind renamed (`pgbench -M prepared` sends Bind, Describe, Execute, Sync
    /// for every statement; issue 16, CPU per statement). `checked`: a Bind already
    /// checked in full (before a checkout), whose statement name alone is left to read.
    InPlace { checked: bool },
}

/// Where a message naming a client's statement goes on the server held.
enum Target {
    /// The unnamed statement: the same name on the server.
    Unnamed,
    /// A named statement: on the server as its `server_name`.
    Named(Arc<PreparedStatement>),
}

impl Target {
    fn server_name(&self) -> &str {
        match self {
            Target::Unnamed => "",
            Target::Named(s) => &s.server_name,
        }
    }
}

/// A client's message as [`Session::screen_extended`] reads it: in place, or decoded
/// (zero-copy from an owned frame; values copied out of a borrowed one).
trait ClientMessage {
    fn view(&self) -> FrameRef<'_>;
    fn decode(&self) -> std::result::Result<FrontendMessage, orochi_wire::WireError>;
}

impl ClientMessage for Frame {
    fn view(&self) -> FrameRef<'_> {
        Frame::view(self)
    }
    fn decode(&self) -> std::result::Result<FrontendMessage, orochi_wire::WireError> {
        FrontendMessage::decode(self)
    }
}

impl ClientMessage for FrameRef<'_> {
    fn view(&self) -> FrameRef<'_> {
        *self
    }
    fn decode(&self) -> std::result::Result<FrontendMessage, orochi_wire::WireError> {
        FrontendMessage::decode_ref(*self)
    }
}

impl Session {
    /// Parse, Bind, Describe, Execute, Close, FunctionCall.
    pub(crate) async fn on_extended(&mut self, f: Frame) -> Result<()> {
        let Some(screened) = self.screen_extended(&f)? else {
            return Ok(());
        };
        let text = match &screened {
            Screened::Read {
                msg: FrontendMessage::Parse { query, .. },
                ..
            } => Some(query.as_str()),
            Screened::Read { .. } | Screened::InPlace { .. } => None,
            Screened::SameUnnamed => self.state.unnamed.as_ref().map(|u| u.query.as_str()),
        };
        let mut wanted = text.and_then(comment_shard).and_then(|r| r.ok());
        if wanted.is_none() && !self.ctx.is_sharded() && matches!(f.tag, b'B' | b'D' | b'E' | b'C')
        {
            // A Bind, Describe, Execute or Close follows its statement to the server held:
            // where a shard comment on the Parse or the session's shard sent it.
            wanted = self.back.phase.server().map(|co| co.pool.shard);
        }
        if let (None, Some(schema)) = (wanted, self.ctx.sharding()) {
            // Only a message read in full is planned (`screen_extended` reads in place
            // on unsharded pools alone).
            let decoded;
            let msg = match &screened {
                Screened::Read { msg, .. } => msg,
                Screened::SameUnnamed | Screened::InPlace { .. } => {
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
        self.forward_extended(f.view(), screened)
    }

    /// Can a Bind, Describe, Execute or Close go out without waiting for anything? A
    /// server is held, `ensure_server` would return at once, and nothing is left to
    /// plan: the pool is unsharded (the message follows its statement to that server),
    /// or on a sharded pool the message has no sharded step (`sharded_step`). Every
    /// extended message after a transaction's first passes here on an unsharded pool,
    /// a Describe and an Execute after their Bind on a sharded one: handled in place,
    /// it needs no boxed future (issue 16, CPU per transaction).
    pub(crate) fn extended_now(&self, f: FrameRef<'_>) -> bool {
        matches!(f.tag, b'B' | b'D' | b'E' | b'C')
            && self.back.phase.is_attached()
            && !self.attached_behind()
            && (!self.ctx.is_sharded() || !self.sharded_step(f))
    }

    /// Would [`ShardedPath::sharded_extended`](super::sharded_path::ShardedPath) do
    /// anything with this Describe, Execute or Close, a server being held? Only with a
    /// portal it keeps itself (a fan-out's held Bind, a locally answered transaction
    /// command, a result fetched in batches) or when the message follows a session
    /// shard the held server is not on. A Bind always has one (it routes), and so has
    /// anything this cannot tell from the first byte (a malformed message goes the full
    /// way, to its error).
    fn sharded_step(&self, f: FrameRef<'_>) -> bool {
        let on_shard = self.back.phase.server().map(|co| co.pool.shard);
        if self.ctx.shard.is_some_and(|s| Some(s) != on_shard) {
            return true;
        }
        let tx = self.back.sharded_tx();
        let portal = tx.is_some_and(|t| t.held.is_some() || t.local_portal.is_some());
        match (f.tag, f.body.first()) {
            (b'D' | b'C', Some(b'P')) => portal,
            (b'D' | b'C', Some(b'S')) => false,
            (b'E', _) => portal || tx.is_some_and(|t| t.suspended.is_some()),
            _ => true,
        }
    }

    /// [`Session::on_extended`] when [`Session::extended_now`] said it needs no wait.
    pub(crate) fn on_extended_now(&mut self, f: FrameRef<'_>) -> Result<()> {
        match self.screen_extended(&f)? {
            Some(screened) => self.forward_extended(f, screened),
            None => Ok(()),
        }
    }

    /// The first message of a statement outside a transaction, a Parse or a Bind, in
    /// place when a connection is ready now on an unsharded pool (`check_out_now`, as a
    /// simple Query's): no boxed future, no owned copy of the message (issue 16: every
    /// `pgbench -M extended` or `-M prepared` transaction starts so). [`Handled::Later`]
    /// before any effect otherwise: a shard comment, a session shard, replicas to
    /// balance reads over (which read the whole batch first), a full pool, a connection
    /// to reset or open. A message answered or refused here is answered as the full
    /// path would.
    pub(crate) fn extended_first_now(&mut self, f: FrameRef<'_>) -> Result<Handled> {
        if !(matches!(f.tag, b'P' | b'B')
            && self.back.phase.is_idle()
            && !self.ctx.is_sharded()
            && self.ctx.shard.is_none()
            && !self.ctx.user.has_replicas
            && self.may_check_out_now())
        {
            return Ok(Handled::Later);
        }
        let Some(screened) = self.screen_extended(&f)? else {
            return Ok(Handled::Done);
        };
        let text = match &screened {
            Screened::Read {
                msg: FrontendMessage::Parse { query, .. },
                ..
            } => Some(query.as_str()),
            Screened::Read { .. } | Screened::InPlace { .. } => None,
            Screened::SameUnnamed => self.state.unnamed.as_ref().map(|u| u.query.as_str()),
        };
        // Screening again on the full path repeats no effect: what it answers or
        // refuses was answered above.
        if text.and_then(comment_shard).is_some() || !self.check_out_now(None, false) {
            return Ok(Handled::Later);
        }
        self.forward_extended(f, screened)?;
        Ok(Handled::Done)
    }

    /// A Parse on a sharded pool, handled in place: the router answers it itself
    /// (`ShardedPath::sharded_parse`), so it needs no boxed future (issue 16: a driver
    /// that parses before every execution, as libpq's extended mode does, paid two a
    /// statement). [`Handled::Later`] for a Parse with a shard comment, which goes to
    /// its shard's server.
    pub(crate) fn sharded_parse_now(&mut self, f: FrameRef<'_>) -> Result<Handled> {
        let Some(schema) = self.ctx.sharding() else {
            return Ok(Handled::Later);
        };
        let Some(screened) = self.screen_extended(&f)? else {
            return Ok(Handled::Done);
        };
        let no_comment = |q: &str| comment_shard(q).and_then(|r| r.ok()).is_none();
        match screened {
            Screened::Read {
                msg:
                    FrontendMessage::Parse {
                        name,
                        query,
                        param_types,
                    },
                words,
                reparsed,
            } if no_comment(&query) => {
                self.sharded_path_with(schema).sharded_parse(
                    &name,
                    &query,
                    &param_types,
                    (!reparsed).then_some(words),
                );
                Ok(Handled::Done)
            }
            // The unnamed statement again, compared in place (libpq's extended mode): it
            // stays as it is, to be parsed again on the shard its next Bind goes to.
            Screened::SameUnnamed
                if self
                    .state
                    .unnamed
                    .as_ref()
                    .is_some_and(|u| no_comment(&u.query)) =>
            {
                self.back.phase.set_unnamed_on_server(false);
                self.front.reply(message(BackendMessage::ParseComplete));
                Ok(Handled::Done)
            }
            // Screened again on the way that waits: nothing above was answered.
            _ => Ok(Handled::Later),
        }
    }

    /// Decodes `f`, refuses what the guards refuse and answers what the router answers
    /// alone; `None` when that is done. Runs before a server is chosen. `f` is owned (a
    /// message that waited) or borrowed from the read buffer (`on_extended_now`); only
    /// a message read in full tells the two apart, copying the values of a borrowed one.
    fn screen_extended(&mut self, f: &impl ClientMessage) -> Result<Option<Screened>> {
        let view = f.view();
        if self.ctx.gateway.is_none() {
            use orochi_wire::frontend as wire;
            // Nothing to refuse or answer here: no guard reads these, and the router
            // answers none of them itself. On a sharded pool a Bind is planned and read
            // in full; the unnamed statement parsed again, an Execute and a portal's
            // Describe are read in full only where a sharded step needs them
            // (`on_extended` decodes them).
            let plain = !self.ctx.app.query_log.enabled();
            let unsharded = !self.ctx.is_sharded();
            match (view.tag, &self.state.unnamed) {
                (b'P', Some(u)) if wire::parse_is(view, "", &u.query, &u.param_types) => {
                    return Ok(Some(Screened::SameUnnamed));
                }
                (b'B', _) if plain && unsharded => {
                    // Checked once: where its statement's name is read
                    // (`forward_in_place`), or here when no server is held, so that
                    // malformed bytes are refused at once, never after waiting for a
                    // connection they cannot use.
                    let checked = !self.back.phase.is_attached();
                    if checked {
                        wire::bind_statement(view)?;
                    }
                    return Ok(Some(Screened::InPlace { checked }));
                }
                (b'E', _) if plain => {
                    wire::check_execute(view)?;
                    return Ok(Some(Screened::InPlace { checked: true }));
                }
                (b'D', _) if wire::target_of(view)?.0 == b'P' => {
                    return Ok(Some(Screened::InPlace { checked: true }));
                }
                _ => {}
            }
        }
        let msg = f.decode()?;
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
        Ok(Some(Screened::Read {
            msg,
            words,
            reparsed,
        }))
    }

    /// Sends a screened message to the server now held.
    fn forward_extended(&mut self, f: FrameRef<'_>, screened: Screened) -> Result<()> {
        self.back.unsynced = true;
        let (msg, words, reparsed) = match screened {
            Screened::Read {
                msg,
                words,
                reparsed,
            } => (msg, words, reparsed),
            Screened::SameUnnamed => {
                self.send_unnamed_parse(f);
                return Ok(());
            }
            Screened::InPlace { checked } => return self.forward_in_place(f, checked),
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
                    self.send_unnamed_parse(f);
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
                    self.send_parse(
                        &stmt,
                        &stmt.server_name,
                        Expect::Forward(Term::Parse {
                            client_name: Some(name),
                            id: stmt.id,
                        }),
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
                let Some(rename) = self.bind_target(statement, logged) else {
                    return Ok(());
                };
                self.send_bind(f, rename)?;
            }
            FrontendMessage::Describe { kind: b'S', name } => {
                let Some(target) = self.resolve_statement(&name) else {
                    return Ok(());
                };
                let frame = FrontendMessage::Describe {
                    kind: b'S',
                    name: target.server_name().to_string(),
                }
                .to_frame();
                self.send_server(&frame, Some(Expect::Forward(Term::Describe)));
            }
            FrontendMessage::Describe { .. } => {
                self.send_server(f, Some(Expect::Forward(Term::Describe)))
            }
            FrontendMessage::Execute { .. } => self.send_execute(f),
            FrontendMessage::Close { .. } => {
                self.send_server(f, Some(Expect::Forward(Term::Close)))
            }
            FrontendMessage::FunctionCall(_) => {
                self.back.unsynced = false;
                self.send_server(
                    f,
                    Some(Expect::Forward(Term::Ready {
                        started: Some(std::time::Instant::now()),
                    })),
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends a message [`Screened::InPlace`]: a Bind (renamed when the server knows its
    /// statement under another name), a portal's Describe, an Execute.
    fn forward_in_place(&mut self, f: FrameRef<'_>, checked: bool) -> Result<()> {
        match f.tag {
            b'B' => {
                let statement = if checked {
                    orochi_wire::frontend::bind_statement_name(f)?
                } else {
                    orochi_wire::frontend::bind_statement(f)?
                };
                match self.bind_target(statement, |_, _| {}) {
                    Some(rename) => self.send_bind(f, rename),
                    None => Ok(()),
                }
            }
            b'E' => {
                self.send_execute(f);
                Ok(())
            }
            _ => {
                self.send_server(f, Some(Expect::Forward(Term::Describe)));
                Ok(())
            }
        }
    }

    /// Sends an Execute, timed for the query-duration metric (and the statement log).
    fn send_execute(&mut self, f: FrameRef<'_>) {
        self.count_statement();
        let started = std::time::Instant::now();
        if self.ctx.app.query_log.enabled() {
            self.qlog.execute(started);
        }
        self.send_server(f, Some(Expect::Forward(Term::Execute { started })))
    }

    /// Sends a Parse of the unnamed statement (already recorded as the session's).
    fn send_unnamed_parse(&mut self, f: FrameRef<'_>) {
        self.back.phase.set_unnamed_on_server(true);
        self.send_server(
            f,
            Some(Expect::Forward(Term::Parse {
                client_name: None,
                id: 0,
            })),
        );
    }

    /// Where a Bind of the client's `statement` goes (prepared on this connection first
    /// if needed), after the statement's session effects are noted and `log` has seen
    /// it: `Some(None)` as it came, `Some(Some(s))` renamed to `s.server_name`. `None`
    /// after an error was reported.
    fn bind_target(
        &mut self,
        statement: &str,
        log: impl FnOnce(&mut Self, &PreparedStatement),
    ) -> Option<Option<Arc<PreparedStatement>>> {
        let target = self.resolve_statement(statement)?;
        let stmt = match &target {
            Target::Named(s) => Some(s.clone()),
            Target::Unnamed => self.state.unnamed.clone(),
        };
        if let Some(stmt) = stmt {
            log(self, &stmt);
            if let Some(e) = self.refuse_listen(&stmt.analysis) {
                self.front.router_error(&self.back, e, true);
                return None;
            }
            self.track_session_ops(&stmt.analysis);
        }
        Some(match target {
            Target::Named(s) if s.server_name != statement => Some(s),
            _ => None,
        })
    }

    /// Sends a Bind, renamed to `rename`'s server name when there is one: written
    /// straight into the server's buffer, with no frame of its own.
    fn send_bind(&mut self, f: FrameRef<'_>, rename: Option<Arc<PreparedStatement>>) -> Result<()> {
        match rename {
            None => self.send_server(f, Some(Expect::Forward(Term::Bind))),
            Some(s) => {
                encode_renamed_bind(f, &s.server_name, &mut self.back.sout)?;
                self.expect_from_server(Expect::Forward(Term::Bind));
            }
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
        self.back
            .phase
            .server_mut()
            .is_some_and(|co| co.conn().touch_if_prepared(id))
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
    fn resolve_statement(&mut self, name: &str) -> Option<Target> {
        if name.is_empty() {
            if !self.back.phase.unnamed_on_server() {
                if let Some(u) = self.state.unnamed.clone() {
                    self.send_parse(
                        &u,
                        "",
                        Expect::Swallow(Term::Parse {
                            client_name: None,
                            id: 0,
                        }),
                    );
                    self.back.phase.set_unnamed_on_server(true);
                }
            }
            return Some(Target::Unnamed);
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
            self.send_parse(
                &stmt,
                &stmt.server_name,
                Expect::Swallow(Term::Parse {
                    client_name: None,
                    id: stmt.id,
                }),
            );
        }
        Some(Target::Named(stmt))
    }

    /// Prepares `stmt` as `name` on the server held: its Parse written straight into
    /// the server's buffer.
    fn send_parse(&mut self, stmt: &PreparedStatement, name: &str, expect: Expect) {
        stmt.encode_parse(name, &mut self.back.sout);
        self.expect_from_server(expect);
    }
}

/// Appends `f`, a Bind, to `out` with its statement renamed to `server_name` and the rest
/// of its body as is; nothing is appended when `f` is malformed.
fn encode_renamed_bind(f: FrameRef<'_>, server_name: &str, out: &mut BytesMut) -> Result<()> {
    let body = f.body;
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
    let len = body.len() - (stmt_end - portal_end - 1) + server_name.len();
    out.reserve(5 + len);
    out.put_u8(b'B');
    out.put_i32(len as i32 + 4);
    out.put_slice(&body[..=portal_end]);
    out.put_slice(server_name.as_bytes());
    out.put_slice(&body[stmt_end..]);
    Ok(())
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
        // After whatever the buffer already holds, one whole message.
        let mut out = BytesMut::from(&b"x"[..]);
        encode_renamed_bind(orig.to_frame().view(), "_orochi_9", &mut out).unwrap();
        let mut rest = out.split_off(1);
        let renamed = orochi_wire::decode_frame(&mut rest, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
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
        assert_eq!(params, orig_params());
        // A Bind without its statement's NUL appends nothing.
        let mut out = BytesMut::new();
        assert!(
            encode_renamed_bind(Frame::new(b'B', &b"p\0s1"[..]).view(), "_o", &mut out).is_err()
        );
        assert!(out.is_empty());
    }

    fn orig_params() -> Vec<Option<Bytes>> {
        vec![Some(Bytes::from_static(b"\0\0\0\x07")), None]
    }
}
