//! One client's session after login: reads its messages, lends it a server connection
//! for as long as the pool mode says (a transaction, a statement, the whole session),
//! and makes every connection it gets look like its own (settings, prepared statements).

use super::client_leg::ClientLeg;
use super::context::Context;
use super::expect::{Expect, Term};
use super::params::SessionParams;
use super::reply::ready;
use super::reported::Reported;
use super::retry_state::RetryState;
use super::server_leg::ServerLeg;
use super::session_state::SessionState;
use super::sharded_path::ShardedPath;
use super::sharded_tx::ShardedTx;
use super::statement_log::StatementLog;
use crate::app::App;
use crate::backend::UserPools;
use crate::cancel::{CancelKey, CancelTarget};
use crate::clients::{ClientState, Registered};
use crate::error::{Result, RouterError};
use crate::planner::directive::{comment_shard, directive};
use crate::planner::sharding::ShardingSchema;
use crate::spare_buffers;
use bytes::{Buf, BytesMut};
use orochi_config::PoolMode;
use orochi_tls::Stream;
use orochi_wire::{decode_frame, BackendMessage, Frame, FrameRef, FrontendMessage, PgError};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a leaving client's last bytes (a FATAL, the close) may take to go out; a
/// client that stopped reading is not waited for longer.
const FAREWELL: std::time::Duration = std::time::Duration::from_secs(1);

/// A client's session: its parts (`client_leg.rs`, `server_leg.rs`, `context.rs`,
/// `session_state.rs`), each borrowed on its own where a path needs only some of them
/// (the sharded path: `sharded_path.rs`), and the retry and statement-log bookkeeping.
pub struct Session {
    /// The client's socket, buffers and the order of its answers.
    pub(crate) front: ClientLeg,
    /// The server connections and their conversation.
    pub(crate) back: ServerLeg,
    /// Who the session is and what it runs under.
    pub(crate) ctx: Context,
    /// Settings and prepared statements every connection must carry for this client.
    pub(crate) state: SessionState,
    /// A write refused with 25006 that may be retried on the primary (`retry`); boxed
    /// and made on first use (pools with replicas), as `ServerLeg::sharded`.
    pub(crate) retry: Option<Box<RetryState>>,
    /// `log_queries`: statements awaiting their answer (`statement_log.rs`).
    pub(crate) qlog: StatementLog,
    /// The shard a sharded pool's Query was planned for in place, whose ready
    /// connection was gone (`query_now.rs`): the full path, which handles the same
    /// message right after, takes it rather than planning again. Cleared with every
    /// message.
    pub(crate) routed_now: Option<usize>,
}

/// What [`Session::on_client_frame_now`] did with a message.
pub(crate) enum Handled {
    /// All of it: the message is consumed.
    Done,
    /// Nothing yet: the message needs a plan, a checkout or a sharded step
    /// ([`Session::on_client_frame_later`]), with a `Frame` of its own.
    Later,
}

impl Session {
    pub fn new(
        app: Arc<App>,
        id: u64,
        stream: Stream,
        user: Arc<UserPools>,
        params: SessionParams,
        cancel: CancelKey,
        client: Registered,
    ) -> Self {
        let config = app.config();
        let general = &config.general;
        let front = ClientLeg::new(stream, general.max_message_size);
        let state = SessionState::new(params, general.max_prepared_statements);
        Session {
            front,
            back: ServerLeg::new(),
            state,
            retry: None,
            qlog: StatementLog::default(),
            routed_now: None,
            ctx: Context::new(app, id, user, cancel, client),
        }
    }

    /// The sharded path for this session's next step, when the pool is sharded (even if
    /// the session chose its shard by hand: its multi-shard transaction still ends here).
    pub(crate) fn sharded_path(&mut self) -> Option<ShardedPath<'_>> {
        let schema = self.ctx.user.sharding.clone()?;
        Some(self.sharded_path_with(schema))
    }

    /// The sharded path planning with `schema` (the context's `sharding()`).
    pub(crate) fn sharded_path_with(&mut self, schema: Arc<ShardingSchema>) -> ShardedPath<'_> {
        ShardedPath {
            front: &mut self.front,
            back: &mut self.back,
            ctx: &mut self.ctx,
            state: &mut self.state,
            schema,
        }
    }

    /// The retry bookkeeping, made on first use and kept for the session.
    pub(crate) fn retry_state(&mut self) -> &mut RetryState {
        self.retry.get_or_insert_with(Box::default)
    }

    /// Finishes the login: takes a server connection once to learn (and apply) the
    /// client's settings, then tells the client its parameters, its key and ReadyForQuery.
    pub async fn welcome(&mut self) -> Result<()> {
        // The parameters a server reported once are reused, so logging in never waits for
        // a free server (a full pool must not block logins). The client's own startup
        // values override them; the first transaction reports any value the server
        // normalises differently. The very first login of a pool takes a server to learn
        // them (shard 0 always exists).
        let cached = self
            .ctx
            .user
            .primary(0)
            .and_then(|p| p.server_params.lock().ok().and_then(|g| g.clone()));
        let params: Vec<(String, String)> = match cached {
            Some(shared) => {
                // Shared by the pool's clients; this client owns only its differences.
                self.state.reported = Reported::new(Some(shared.clone()));
                shared
                    .iter()
                    .map(|(k, v)| {
                        let own = self.state.params.startup_value(k).unwrap_or(v);
                        (k.clone(), own.to_string())
                    })
                    .collect()
            }
            None => {
                // Any server will do: as a read, logins work while the primary is down
                // (not in session mode, where this server stays the client's).
                let read = self.ctx.mode != PoolMode::Session && self.ctx.user.has_replicas;
                match self.ensure_server(Some(0), read).await {
                    // Any map's shard 0 will do: the gate took the new map.
                    Err(RouterError::MapChanged) => self.ensure_server(Some(0), read).await?,
                    r => r?,
                }
                match self.back.phase.server() {
                    Some(co) => co
                        .conn_ref()
                        .params
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    None => vec![],
                }
            }
        };
        for (name, value) in params {
            BackendMessage::ParameterStatus {
                name: name.clone(),
                value: value.clone(),
            }
            .encode(&mut self.front.out);
            self.state.reported.set(&name, &value);
        }
        BackendMessage::BackendKeyData {
            process_id: self.ctx.cancel.key.0,
            secret_key: self.ctx.cancel.key.1,
        }
        .encode(&mut self.front.out);
        BackendMessage::ReadyForQuery(b'I').encode(&mut self.front.out);
        self.maybe_release().await;
        self.flush_client().await
    }

    /// The session loop. Returns when the client leaves or must be disconnected.
    pub async fn run(&mut self) -> Result<()> {
        match self.serve().await {
            Ok(()) | Err(RouterError::ClientIo(_)) => {
                self.close_client().await;
                Box::pin(self.client_gone()).await;
                Ok(())
            }
            Err(e) => Box::pin(self.fail(e)).await,
        }
    }

    /// Ends the session with a fatal error the client is told about.
    pub async fn fail(&mut self, e: RouterError) -> Result<()> {
        self.count_answered_errors();
        // A server that sent FATAL and closed: the client has the server's reason (about
        // to be flushed), and ends as PostgreSQL's own client would, with nothing added.
        let said = self.front.got_server_fatal && matches!(e, RouterError::ServerLost { .. });
        if said {
            let _ = tokio::time::timeout(FAREWELL, self.flush_client()).await;
        } else if let Some(pg) = e.to_client() {
            self.ctx
                .app
                .metrics
                .error(&self.ctx.user.pool_name, &pg.fields.code);
            // A client that stopped reading must not hold the session open; and after a
            // flush cut short, a FATAL would land inside a half-written message.
            if let Ok(Ok(())) = tokio::time::timeout(FAREWELL, self.flush_client()).await {
                let mut b = BytesMut::new();
                PgError::fatal(&pg.fields.code, pg.fields.message.clone()).encode(&mut b);
                let _ = tokio::time::timeout(FAREWELL, self.front.stream.write_all(&b)).await;
            }
        }
        self.close_client().await;
        self.client_gone().await;
        Err(e)
    }

    /// Counts the errors the router wrote to the client itself (`ClientLeg::answered_errors`)
    /// in `errors_total`, labelled with the client's pool; the servers' errors are counted
    /// where they are relayed (`relay.rs`).
    fn count_answered_errors(&mut self) {
        if self.front.answered_errors.is_empty() {
            return;
        }
        for class in self.front.answered_errors.drain(..) {
            let class = std::str::from_utf8(&class).unwrap_or("??");
            self.ctx.app.metrics.error(&self.ctx.user.pool_name, class);
        }
    }

    /// Closes the client's side first: bringing its servers back to idle can take up to
    /// the cleanup timeout, and the client must not wait for that (it sees EOF now).
    async fn close_client(&mut self) {
        let _ = tokio::time::timeout(FAREWELL, self.front.stream.shutdown()).await;
    }

    async fn serve(&mut self) -> Result<()> {
        // The alarm (`alarm.rs`) is the session's shutdown, forced shutdown and
        // KILL_CLIENT in one waker slot; `seen` holds the reasons already handled.
        let info = self.ctx.client.info.clone();
        let mut seen = 0u8;
        let alarmed = |why: u8| {
            if why & crate::alarm::KILL != 0 {
                Some(RouterError::Pg(PgError::fatal(
                    "57P01",
                    "connection terminated by the administrator (KILL_CLIENT)",
                )))
            } else if why & crate::alarm::FORCE != 0 {
                Some(RouterError::ShuttingDown)
            } else {
                None
            }
        };
        loop {
            if self.retry.is_some() {
                Box::pin(self.run_retry()).await?;
            }
            // Each complete message is read where it lies in the read buffer and
            // consumed after it was handled; only one that must wait is split off as a
            // `Frame` of its own (issue 16: no allocation, no reference count per message
            // on the pass-through path).
            let max = self.front.max_message as usize;
            while let Some((tag, total)) = orochi_wire::peek_frame(&self.front.rbuf, max)? {
                if tag == b'X' {
                    return Ok(());
                }
                if self.front.fail_server_tx {
                    self.fail_server_tx();
                }
                if !self.front.router_skipping
                    && !self.ctx.gate_is_open(self.back.holds_no_connection())
                    && !Box::pin(self.wait_at_gate(tag)).await?
                {
                    self.front.rbuf.advance(total);
                    continue;
                }
                if self.has_pending_commits()
                    && super::pending_commit::must_wait(FrameRef::at_front(
                        &self.front.rbuf,
                        tag,
                        total,
                    ))
                {
                    // Read-your-writes after a two-phase commit (`pending_commits.rs`).
                    Box::pin(self.await_pending_commits()).await;
                }
                // Lent out of the leg while the message is handled: the paths that run
                // now never read the client's buffer (`Handled`).
                let rbuf = std::mem::take(&mut self.front.rbuf);
                let f = FrameRef::at_front(&rbuf, tag, total);
                self.trace_begin(f);
                let handled = self.on_client_frame_now(f);
                // The empty buffer that stood in holds no memory: nothing to drop.
                let stand_in = std::mem::replace(&mut self.front.rbuf, rbuf);
                debug_assert_eq!(stand_in.capacity(), 0, "read into while lent out");
                std::mem::forget(stand_in);
                // What must wait is boxed: the statement paths (fan-outs, gathers,
                // two-phase commit) are deep futures; inline, every idle client's task
                // would carry their largest state (issue 16;
                // `listener::tests::a_session_task_is_small`). The rest is handled in place.
                match handled? {
                    Handled::Done => self.front.rbuf.advance(total),
                    Handled::Later => {
                        let frame = decode_frame(&mut self.front.rbuf, max)?
                            .expect("a whole message was peeked");
                        Box::pin(self.on_client_frame_later(frame)).await?;
                    }
                }
            }
            // The start of a message: room for the rest of it (bounded; `decode_frame`).
            decode_frame(&mut self.front.rbuf, max)?;
            if self.front.fail_server_tx {
                self.fail_server_tx();
            }
            self.flush_server().await?;
            self.flush_client().await?;
            if self.violation_to_roll_back() {
                Box::pin(self.maybe_release()).await;
            } else {
                self.release_if_free();
            }
            self.flush_client().await?;
            self.count_answered_errors();
            self.trace_end_if_idle();
            if self.back.phase.is_idle() && self.ctx.app.draining() {
                return Err(RouterError::ShuttingDown);
            }
            self.shrink_buffers();
            let wait = self.back.phase.server().and_then(|_| self.wait_kind());
            let at = self.ctx.deadlines.next(wait);
            match self.back.phase.server_mut() {
                Some(co) => {
                    let conn = co.conn();
                    // In a fixed order (no random start to draw every turn: issue 16):
                    // the alarm and the deadline first, so that a server streaming
                    // without pause cannot hold them off; the server's answers before
                    // the client's next messages.
                    tokio::select! {
                        biased;
                        // A busy session finishes its transaction through a shutdown.
                        why = info.alarm.wait(seen | crate::alarm::SHUTDOWN) => {
                            seen |= why;
                            if let Some(e) = alarmed(why) {
                                return Err(e);
                            }
                        }
                        w = super::deadline::expire(at), if at.is_some() => {
                            return Err(self.ctx.on_expired(w, &mut self.back, &mut self.front));
                        }
                        r = conn.fill() => {
                            r?;
                            self.relay_buffered()?;
                        }
                        r = self.front.stream.read_buf(&mut self.front.rbuf) => match r {
                            Ok(0) => return Ok(()),
                            Ok(_) => {}
                            Err(e) => return Err(RouterError::ClientIo(e)),
                        },
                    }
                }
                None => {
                    tokio::select! {
                        biased;
                        // SHUTDOWN alone: the loop's turn sees `draining` and leaves.
                        why = info.alarm.wait(seen) => {
                            seen |= why;
                            if let Some(e) = alarmed(why) {
                                return Err(e);
                            }
                        }
                        r = self.front.stream.read_ready(&mut self.front.rbuf, spare_buffers::lend) => match r {
                            Ok(0) => return Ok(()),
                            Ok(_) => spare_buffers::lend_all([&mut self.front.out, &mut self.back.sout]),
                            Err(e) => return Err(RouterError::ClientIo(e)),
                        },
                    }
                }
            }
        }
    }

    /// An idle session's buffers go to the thread's spares (`spare_buffers`): idle
    /// clients hold none, and the next message borrows them back without allocating.
    fn shrink_buffers(&mut self) {
        if self.back.phase.is_idle() {
            spare_buffers::put_back_all([
                &mut self.front.rbuf,
                &mut self.front.out,
                &mut self.back.sout,
            ]);
        }
    }

    pub(crate) async fn flush_client(&mut self) -> Result<()> {
        self.ext_retry_hold();
        self.front.flush().await
    }

    async fn flush_server(&mut self) -> Result<()> {
        if self.back.sout.is_empty() {
            return Ok(());
        }
        let Some(co) = self.back.phase.server_mut() else {
            self.back.sout.clear();
            return Ok(());
        };
        let r = co.conn().write_all(&self.back.sout).await;
        co.pool.stats.bytes_to_server.fetch_add(
            self.back.sout.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.back.sout.clear();
        r
    }

    pub(crate) fn send_server<'a>(&mut self, f: impl Into<FrameRef<'a>>, expect: Option<Expect>) {
        f.into().encode(&mut self.back.sout);
        if let Some(e) = expect {
            self.expect_from_server(e);
        }
    }

    /// Notes the answer of a message just written to the server's buffer (none while
    /// the server skips to a Sync).
    pub(crate) fn expect_from_server(&mut self, e: Expect) {
        if !self.back.phase.server_skipping() {
            self.front.expect.push_back(e);
        }
    }

    /// The shard a statement goes to: `wanted` (a comment), else the session's
    /// `SET orochi.shard`, else the only shard. A pool with several shards and no choice
    /// is refused: without the sharding planner the router cannot know the right shard,
    /// and it never guesses.
    pub(crate) fn pick_shard(&self, wanted: Option<usize>) -> std::result::Result<usize, PgError> {
        let count = self.ctx.user.shards.len();
        match wanted.or(self.ctx.shard) {
            Some(n) if n < count => Ok(n),
            Some(n) => Err(PgError::error(
                "22023",
                format!("shard {n} does not exist: pool \"{}\" has {count} shard(s)", self.ctx.user.pool_name),
            )),
            None if count == 1 => Ok(0),
            None => Err(PgError::error(
                "0A000",
                format!(
                    "pool \"{}\" has {count} shards and this statement names none: automatic sharded routing is not available in this version",
                    self.ctx.user.pool_name
                ),
            )
            .with_hint("choose the shard with SET orochi.shard = N (or a leading /* orochi.shard = N */ comment); `orochi-router shard-for` tells which shard holds a key")),
        }
    }

    /// Makes sure a server connection is attached and carries this client's settings.
    /// `read`: the request that needs it only reads (a replica may serve it).
    pub(crate) async fn ensure_server(&mut self, wanted: Option<usize>, read: bool) -> Result<()> {
        if let Some(co) = self.back.phase.server() {
            let want = wanted.or(self.ctx.shard);
            match want {
                Some(w) if w != co.pool.shard => {
                    if !self.can_switch_shard() {
                        return Err(RouterError::Pg(PgError::error(
                            "25001",
                            format!(
                                "this session is using shard {} until its transaction ends; it cannot switch shards here (only between statements of an explicit transaction on a sharded pool)",
                                co.pool.shard
                            ),
                        )));
                    }
                    // A transaction spanning shards: park this shard's connection, take
                    // (or open) the other's; COMMIT runs two-phase commit over all.
                    if self.back.tx().tx_begin.is_none() {
                        // A pipeline's implicit transaction: BEGIN turns it (with what
                        // already ran in it) into a block two-phase commit can finish.
                        let f = FrontendMessage::Query("BEGIN".into()).to_frame();
                        self.send_server(&f, Some(Expect::Swallow(Term::Ready { started: None })));
                        let tx = self.back.tx();
                        tx.tx_begin = Some("BEGIN".into());
                        tx.implicit_multi = true;
                    }
                    if !Box::pin(self.settle_current()).await? {
                        return Err(RouterError::Pg(super::reply::tx_aborted()));
                    }
                    if self.back.switch_to_parked(w, &self.ctx.cancel) {
                        return Ok(());
                    }
                    let tx = self.back.tx();
                    tx.pending_begin = tx.tx_begin.clone();
                }
                _ => return self.resync_attached().await,
            }
        }
        // Boxed only when it has work (issue 16: this runs every transaction).
        let holds_none = self.back.holds_no_connection();
        if !self.ctx.gate_is_open(holds_none) {
            Box::pin(self.ctx.pause_gate(true, holds_none, &self.front.stream)).await?;
        }
        let shard = self.pick_shard(wanted)?;
        let target = self.ctx.target_for(read);
        let co = super::checkout_wait::checkout_or_give_up(
            std::pin::pin!(self.ctx.checkout_traced(shard, target)),
            &self.ctx.client.info,
            &self.ctx.cancel.slot,
            &self.front.stream,
        )
        .await;
        let co = co.map(|(co, waited)| {
            if waited > std::time::Duration::from_micros(100) {
                // Only checkouts that queued: keeps the histogram off the fast path.
                co.pool.metrics.waited(waited);
            }
            co
        });
        self.ctx.client.info.set_state(match co {
            Ok(_) => ClientState::Active,
            Err(_) => ClientState::Idle,
        });
        let mut co = co?;
        self.state
            .apply_params(&mut co, &self.ctx, &mut self.front.out)
            .await?;
        self.attach_checkout(co);
        Ok(())
    }

    /// Holds a connection just checked out, its settings the session's: tells the client
    /// of server-reported values that differ from what it knows, and notes the server
    /// for cancels and `SHOW CLIENTS`.
    pub(crate) fn attach_checkout(&mut self, mut co: crate::backend::pool::Checkout) {
        let pool = co.pool.clone();
        let since = co.since();
        let conn = co.conn();
        // Tell the client about server-reported values that differ from what it knows.
        let version = conn.params_version();
        if !self.state.reported.is_empty() && !self.state.reported.is_synced_with(version) {
            for (k, v) in &conn.params {
                if self.state.reported.get(k) != Some(v.as_str()) {
                    BackendMessage::ParameterStatus {
                        name: k.clone(),
                        value: v.clone(),
                    }
                    .encode(&mut self.front.out);
                    self.state.reported.set(k, v);
                }
            }
            self.state.reported.mark_synced(version);
        }
        self.ctx
            .cancel
            .slot
            .set(Some(CancelTarget::new(&pool.target, conn)));
        self.ctx
            .client
            .info
            .set_link(Some(crate::clients::ServerLink {
                server_id: conn.id,
                process_id: conn.backend_key.0,
                local: conn.local,
                pool: pool.clone(),
                since,
                connected: conn.created,
                tls: conn.tls.clone(),
            }));
        self.back.phase.attach(co);
        self.back.tx_status = b'I';
        let begin = self
            .back
            .sharded
            .as_deref_mut()
            .and_then(ShardedTx::start_on_shard);
        if let Some(begin) = begin {
            // The transaction the client opened while no shard was chosen starts here.
            let f = FrontendMessage::Query(begin).to_frame();
            self.send_server(&f, Some(Expect::Swallow(Term::Ready { started: None })));
            self.back.tx_status = b'T';
        }
    }

    pub(crate) async fn on_client_frame(&mut self, f: Frame) -> Result<()> {
        match self.on_client_frame_now(f.view())? {
            Handled::Later => self.on_client_frame_later(f).await,
            Handled::Done => Ok(()),
        }
    }

    /// The part of [`Session::on_client_frame`] that never waits: checks, COPY data,
    /// Sync and Flush, and extended messages to a server already held
    /// (`extended_now`). [`Handled::Later`] when it needs the rest: planning, a
    /// checkout, a sharded step. The session loop boxes only that rest, so most
    /// messages of a transaction allocate no future (issue 16, CPU per transaction).
    /// Reads `f` where it lies and never the client's read buffer, which the session
    /// loop lends out meanwhile.
    pub(crate) fn on_client_frame_now(&mut self, f: FrameRef<'_>) -> Result<Handled> {
        tracing::trace!(client = self.ctx.id, tag = %(f.tag as char), server = self.back.phase.is_attached(), expect = ?self.front.expect, "client message");
        self.ext_retry_client(f);
        self.routed_now = None;
        if matches!(f.tag, b'S' | b'H' | b'c') && !f.body.is_empty() {
            // PostgreSQL would answer with an error and then skip to a Sync, out of step
            // with what the router counts; such a message is refused before it goes out.
            return Err(RouterError::Pg(PgError::fatal(
                "08P01",
                format!(
                    "invalid message format: {:?} carries {} bytes where none belong",
                    f.tag as char,
                    f.body.len()
                ),
            )));
        }
        if self.back.phase.copy_in() {
            return self.on_copy_frame(f).map(|()| Handled::Done);
        }
        if self.front.router_skipping {
            if f.tag != b'S' {
                return Ok(Handled::Done);
            }
            self.front.router_skipping = false;
        }
        match f.tag {
            _ if self.extended_now(f) => self.on_extended_now(f).map(|()| Handled::Done),
            b'P' if self.ctx.is_sharded() => self.sharded_parse_now(f),
            b'Q' => self.on_query_now(f),
            b'P' | b'B' => self.extended_first_now(f),
            b'D' | b'E' | b'C' | b'F' => Ok(Handled::Later),
            b'S' if self.ctx.user.sharding.is_some()
                && (self.back.phase.is_idle()
                    || self.back.sharded_tx().is_some_and(|t| t.implicit_multi)) =>
            {
                Ok(Handled::Later)
            }
            b'S' => {
                if self.back.phase.is_idle() {
                    self.back.unsynced = false;
                    self.ready_here();
                } else {
                    self.sync_server(f);
                }
                Ok(Handled::Done)
            }
            b'H' => {
                if self.back.phase.is_attached() {
                    self.send_server(f, None);
                }
                Ok(Handled::Done)
            }
            b'd' | b'c' | b'f' => {
                if self.back.phase.is_attached() {
                    self.send_server(f, None);
                    if f.tag != b'd' {
                        self.mark_copy_end();
                    }
                }
                Ok(Handled::Done)
            }
            b'p' => Err(RouterError::Pg(PgError::fatal(
                "08P01",
                "unexpected password message after authentication",
            ))),
            t => Err(RouterError::Pg(PgError::fatal(
                "08P01",
                format!("invalid frontend message type {:?}", t as char),
            ))),
        }
    }

    /// A Sync with no server held: answered here with the transaction status the
    /// router keeps; an error of a held portal's run ends at it.
    fn ready_here(&mut self) {
        self.front.router_skipping = false;
        let status = self.back.local_status();
        self.front.reply(ready(status));
    }

    /// A Sync to the server held: its ReadyForQuery ends the client's request.
    fn sync_server(&mut self, f: FrameRef<'_>) {
        self.send_server(f, None);
        self.front
            .expect
            .push_back(Expect::Forward(Term::Ready { started: None }));
        self.back.phase.set_server_skipping(false);
        self.back.unsynced = false;
    }

    /// The rest of [`Session::on_client_frame`]: what may wait for a plan, a server or
    /// a sharded step.
    pub(crate) async fn on_client_frame_later(&mut self, f: Frame) -> Result<()> {
        if f.tag == b'S' {
            // A sharded pool's Sync (`on_client_frame_now` handles the others).
            if self.back.sharded_tx().is_some_and(|t| t.implicit_multi)
                && self.back.phase.is_attached()
            {
                return Box::pin(self.finish_implicit_multi()).await;
            }
            if self.back.phase.is_idle() {
                self.back.unsynced = false;
                if let Some(mut path) = self.sharded_path() {
                    Box::pin(path.finish_held()).await?;
                }
                self.ready_here();
            } else {
                self.sync_server(f.view());
            }
            return Ok(());
        }
        // Planned again when a reshard cutover replaced the shard map while it waited
        // (`replan.rs`); the re-plan loop is boxed, entered only then.
        let wrote = self.replan_mark();
        let first = if f.tag == b'Q' {
            self.on_query(f.clone()).await
        } else {
            self.on_extended(f.clone()).await
        };
        match first {
            Err(RouterError::MapChanged) => Box::pin(self.replan(f, wrote)).await,
            r => r,
        }
    }

    pub(crate) async fn on_query(&mut self, f: Frame) -> Result<()> {
        let sql = orochi_wire::frontend::query_text(&f)?;
        let wanted = match comment_shard(sql) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                self.front
                    .router_error(&self.back, PgError::error("22023", e), false);
                return Ok(());
            }
            None => None,
        };
        if let Some(e) = self.gateway_refuse_query(sql) {
            self.front.router_error(&self.back, e, false);
            return Ok(());
        }
        if let Some(d) = directive(sql) {
            Box::pin(self.on_directive(d)).await;
            return Ok(());
        }
        let Some(analysis) = self.screen_query_words(sql) else {
            return Ok(());
        };
        let mut wanted = wanted;
        if let Some(s) = self.routed_now.take() {
            // Planned in place already (`on_query_now`), a session at rest.
            wanted = Some(s);
        } else if let (None, Some(schema)) = (wanted, self.ctx.sharding()) {
            // The sharded steps are boxed: inline, their deep futures (fan-out, two-phase
            // commit) would size every statement's future, sharded or not (issue 16).
            let mut path = self.sharded_path_with(schema);
            if let Some(commit) = path.ends_multi_shard(sql) {
                Box::pin(path.finish_multi_shard(commit, false, false)).await;
                return Ok(());
            }
            match path.local_transaction(sql) {
                Some(Ok(tag)) => {
                    path.answer_local(tag);
                    return Ok(());
                }
                Some(Err(e)) => return path.fail(e, false).map(|_| ()),
                None => {}
            }
            match Box::pin(path.route_sharded(sql, None)).await? {
                super::job::Route::Done => return Ok(()),
                super::job::Route::Shard(s) => wanted = Some(s),
                super::job::Route::Fanout(job) => return Box::pin(path.run_fanout(*job)).await,
            }
        }
        let read = self.back.phase.is_idle()
            && self.ctx.user.has_replicas
            && (crate::planner::rw::is_read(sql) || crate::planner::rw::is_read_only_begin(sql));
        if let Err(e) = self.ensure_server(wanted, read).await {
            return self
                .front
                .checkout_failed(&self.back, self.ctx.id, e, false);
        }
        self.forward_query(f.view(), sql, &analysis);
        Ok(())
    }

    pub(crate) fn count_statement(&self) {
        if let Some(co) = self.back.phase.server() {
            co.pool
                .stats
                .queries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
