//! Server-to-client relay for one session, and the queue that keeps responses in the
//! order the client asked for them.
//!
//! The router sometimes sends the server messages the client did not send (a Parse that
//! recreates a prepared statement on a fresh connection, a `PREPARE` replay) and answers
//! some client messages itself (a Parse for a statement the server already has, a
//! Close of a pooled statement). Every message forwarded or answered pushes one
//! [`Expect`]: forward the server's responses up to that message's final one, swallow
//! them, or emit a ready-made answer once everything before it has been relayed
//! (`ClientLeg::reply`).

use super::expect::{Expect, Term};
use super::session::Session;
use crate::backend::Pass;
use crate::error::Result;
use bytes::Bytes;
use orochi_wire::{BackendMessage, Frame, FrameRef};

/// The largest body `relay_buffered` copies out of the read buffer instead of framing.
const SMALL_MESSAGE: usize = 128;

impl Session {
    fn drain_emits(&mut self) {
        while let Some(Expect::Emit(_)) = self.front.expect.front() {
            if let Some(Expect::Emit(b)) = self.front.expect.pop_front() {
                self.front.out.extend_from_slice(&b);
            }
        }
    }

    /// Relays every complete server message already read.
    pub(crate) fn relay_buffered(&mut self) -> Result<()> {
        loop {
            let Some(co) = self.back.phase.server_mut() else {
                return Ok(());
            };
            // Messages that are only relayed go in one copy (`ServerConn::pass_through`),
            // with the answer that ends a Bind, Close or Describe; the rest one by one.
            if let (None, Some(Expect::Forward(term))) = (&self.retry, self.front.expect.front()) {
                let plain_end = matches!(term, Term::Bind | Term::Close | Term::Describe);
                let (moved, ended) = co.conn().pass_through(&mut self.front.out, |tag| {
                    if matches!(tag, b'S' | b'E' | b'Z' | b'C' | b'G' | b'W') {
                        Pass::Stop
                    } else if !term.ends_with(tag) {
                        Pass::Copy
                    } else if plain_end {
                        Pass::Last
                    } else {
                        Pass::Stop
                    }
                });
                if moved > 0 {
                    co.pool
                        .stats
                        .bytes_from_server
                        .fetch_add(moved as u64, std::sync::atomic::Ordering::Relaxed);
                }
                if ended {
                    self.front.expect.pop_front();
                    self.drain_emits();
                    continue;
                }
            }
            if self.retry.is_none() {
                // A short message (CommandComplete, ReadyForQuery...): copied out, no frame.
                let mut small = [0u8; SMALL_MESSAGE];
                if let Some((tag, len)) = co.conn().next_small(&mut small) {
                    co.pool
                        .stats
                        .bytes_from_server
                        .fetch_add(5 + len as u64, std::sync::atomic::Ordering::Relaxed);
                    self.on_server_message(tag, &small[..len])?;
                    continue;
                }
            }
            match co.conn().next_buffered()? {
                Some(f) => {
                    co.pool
                        .stats
                        .bytes_from_server
                        .fetch_add(f.wire_len() as u64, std::sync::atomic::Ordering::Relaxed);
                    self.on_server_frame(f)?
                }
                None => return Ok(()),
            }
        }
    }

    /// Handles one message from the server.
    pub(crate) fn on_server_frame(&mut self, f: Frame) -> Result<()> {
        self.ext_retry_server(&f);
        if self.retry_intercept(&f)? {
            return Ok(());
        }
        match f.tag {
            // Asynchronous messages: always relayed.
            b'S' => {
                if let Ok(BackendMessage::ParameterStatus { name, value }) =
                    BackendMessage::decode(&f)
                {
                    if let Some(co) = self.back.phase.server_mut() {
                        co.conn().set_param(name.clone(), value.clone());
                    }
                    self.state.reported.set(&name, &value);
                }
                f.encode(&mut self.front.out);
                Ok(())
            }
            b'E' => self.on_server_error(f),
            tag => self.on_server_message(tag, &f.body),
        }
    }

    /// Handles a server message other than an error or a ParameterStatus, read from
    /// the frame or, with no retry in progress, copied out of the read buffer
    /// (`ServerConn::next_small`: no frame for a CommandComplete or ReadyForQuery).
    fn on_server_message(&mut self, tag: u8, body: &[u8]) -> Result<()> {
        tracing::trace!(client = self.ctx.id, tag = %(tag as char), expect = ?self.front.expect, "server message");
        if matches!(tag, b'N' | b'A') {
            // Asynchronous: always relayed.
            orochi_wire::frame::encode_message(&mut self.front.out, tag, body);
            return Ok(());
        }
        let (forward, terminal) = match self.front.expect.front() {
            Some(Expect::Forward(t)) => (true, t.ends_with(tag)),
            Some(Expect::Swallow(t)) => (false, t.ends_with(tag)),
            // Emits are drained as soon as they reach the front; relay if one is left.
            Some(Expect::Emit(_)) => (true, false),
            None => {
                // Nothing was asked: the server is out of step with us. Do not reuse it.
                tracing::warn!(tag = %(tag as char), "unexpected message from server");
                if let Some(co) = self.back.phase.server_mut() {
                    co.conn().broken = true;
                }
                (tag != b'Z', false)
            }
        };
        match tag {
            b'Z' => {
                let status = body.first().copied().unwrap_or(b'I');
                self.on_ready(status, forward);
                if status != b'I' && self.ctx.mode == orochi_config::PoolMode::Statement {
                    // Held back: `maybe_release` rolls back and ends the reply with an error.
                    self.back.statement_violation = true;
                    self.front.expect.pop_front();
                    self.drain_emits();
                    return Ok(());
                }
            }
            b'C' => {
                self.qlog.completed(body);
                self.state.last_tag_rollback =
                    body.starts_with(b"ROLLBACK") || self.state.last_tag_rollback;
                self.back.phase.set_copy_in(false);
            }
            b'G' | b'W' => {
                self.back.phase.set_copy_in(true);
                self.drop_ignored_syncs();
            }
            _ => {}
        }
        if forward {
            orochi_wire::frame::encode_message(&mut self.front.out, tag, body);
        }
        if terminal && forward {
            let started = match self.front.expect.front() {
                Some(Expect::Forward(Term::Execute { started })) => Some(*started),
                Some(Expect::Forward(Term::Ready { started })) => *started,
                _ => None,
            };
            if let (Some(t), Some(co)) = (started, self.back.phase.server_mut()) {
                let now = std::time::Instant::now();
                co.pool.metrics.observe(now.saturating_duration_since(t));
                co.answered(now);
            }
            if let (Some(t), true) = (started, self.qlog.has_pending()) {
                let shard = self.back.phase.server().map(|co| co.pool.shard);
                self.qlog.answered(t, &self.ctx.user, shard);
            }
        }
        if terminal {
            if let Some(
                Expect::Forward(Term::Parse { id, .. }) | Expect::Swallow(Term::Parse { id, .. }),
            ) = self.front.expect.front()
            {
                let id = *id;
                if let Some(s) = self.state.statements.values().find(|s| s.id == id) {
                    s.validated
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.front.expect.pop_front();
            self.drain_emits();
        }
        Ok(())
    }

    /// A CopyDone or CopyFail sent before the router saw the COPY begin: a marker (an
    /// empty emit, drained as soon as it reaches the front) so that Syncs sent after it
    /// are not taken for ones the COPY ignores (`drop_ignored_syncs`).
    pub(crate) fn mark_copy_end(&mut self) {
        if !self.front.expect.is_empty() {
            self.front.expect.push_back(Expect::Emit(Bytes::new()));
        }
    }

    /// PostgreSQL ignores Sync (and Flush) while it reads COPY data. Syncs the client
    /// pipelined behind the COPY (libpq sends Parse/Bind/Execute/Sync at once) were sent
    /// before the router knew: they get no answer, so stop waiting for one (up to the
    /// first other message: CopyDone, CopyFail and the rest end the COPY). An
    /// extended-protocol COPY still needs a Sync after its CopyDone.
    fn drop_ignored_syncs(&mut self) {
        let extended = matches!(
            self.front.expect.front(),
            Some(Expect::Forward(Term::Execute { .. }))
        );
        while matches!(
            self.front.expect.get(1),
            Some(Expect::Forward(Term::Ready { started: None }))
        ) {
            self.front.expect.remove(1);
        }
        self.back.unsynced |= extended;
    }

    /// A client message while the server reads COPY data: data, its end, and what the
    /// server ignores pass; anything else would abort the COPY in a way the router cannot
    /// count, so it ends the session as a protocol violation.
    pub(crate) fn on_copy_frame(&mut self, f: FrameRef<'_>) -> Result<()> {
        match f.tag {
            b'd' | b'S' | b'H' => self.send_server(f, None),
            b'c' | b'f' => {
                // What follows reaches the server after the COPY ended.
                self.back.phase.set_copy_in(false);
                self.send_server(f, None);
            }
            t => {
                return Err(crate::error::RouterError::Pg(orochi_wire::PgError::fatal(
                    "08P01",
                    format!(
                        "unexpected message type {:?} during COPY from stdin",
                        t as char
                    ),
                )))
            }
        }
        Ok(())
    }

    fn on_server_error(&mut self, f: Frame) -> Result<()> {
        // The errors of the router's own statements (a reset, the failing Parse of
        // `fail_server_tx.rs`) reach no client: not counted.
        let relayed = !matches!(
            self.front.expect.front(),
            Some(Expect::Swallow(Term::Ready { .. } | Term::Fail))
        );
        if let (Ok(fields), Some(co)) = (
            orochi_wire::ErrorFields::decode(&f.body),
            self.back.phase.server(),
        ) {
            if relayed && !super::fail_server_tx::is_ours(&fields) {
                self.ctx.app.metrics.error(&co.pool.pool_name, &fields.code);
                self.front.got_server_fatal |= fields.ends_session();
            }
            if let Some(s) = self.ctx.user.sharding.as_ref() {
                s.columns.on_error(&fields.code);
            }
            if fields.code == "25006" {
                // Read-only: if that server was taken for the primary, check it now.
                self.ctx.user.recheck_if_write_target(&co.pool);
            }
        }
        self.back.phase.set_copy_in(false);
        if self.front.expect.is_empty() {
            // Nothing was asked: the server answered a message we did not count (or is
            // going away). Its state is unknown (it may be skipping to a Sync): relay the
            // error, but never lend this connection again.
            tracing::warn!(
                client = self.ctx.id,
                "error from a server nothing was expected of"
            );
            if let Some(co) = self.back.phase.server_mut() {
                co.conn().broken = true;
            }
        }
        // An injected statement's failure is not the client's (its own request follows).
        if !matches!(
            self.front.expect.front(),
            Some(Expect::Swallow(Term::Ready { .. }))
        ) {
            self.state.tx_error = true;
        }
        match self.front.expect.front() {
            // Simple query / sync: the error is part of the response; ReadyForQuery follows.
            Some(Expect::Forward(Term::Ready { .. })) | None => f.encode(&mut self.front.out),
            Some(Expect::Swallow(Term::Ready { .. })) => {}
            Some(front) => {
                // Extended protocol: the server now skips everything up to Sync. Drop what
                // we expected before the next Sync, undoing statements that were not created.
                // The router's own failing Parse (`fail_server_tx.rs`) is not the client's.
                if !matches!(front, Expect::Swallow(Term::Fail)) {
                    f.encode(&mut self.front.out);
                }
                while let Some(e) = self.front.expect.front() {
                    if matches!(
                        e,
                        Expect::Forward(Term::Ready { .. }) | Expect::Swallow(Term::Ready { .. })
                    ) {
                        break;
                    }
                    if let Some(
                        Expect::Forward(Term::Parse { client_name, id })
                        | Expect::Swallow(Term::Parse { client_name, id }),
                    ) = self.front.expect.pop_front()
                    {
                        self.forget_failed_parse(client_name, id);
                    }
                }
                if self.front.expect.is_empty() {
                    self.back.phase.set_server_skipping(true);
                }
            }
        }
        Ok(())
    }

    fn forget_failed_parse(&mut self, client_name: Option<String>, id: u64) {
        if let Some(co) = self.back.phase.server_mut() {
            co.conn().prepared.remove(&id);
        }
        if let Some(name) = client_name {
            if self.state.statements.get(&name).is_some_and(|s| s.id == id) {
                self.state.statements.remove(&name);
            }
        }
    }

    /// ReadyForQuery: the transaction state is known; settle pending session effects
    /// (only at the end of the client's own request, not of a router-injected one).
    fn on_ready(&mut self, status: u8, own: bool) {
        self.back.tx_status = status;
        // A server that answers went on after all: its loss later is news to the client.
        self.front.got_server_fatal = false;
        if status != b'I' || !own {
            return;
        }
        let ops = std::mem::take(&mut self.state.pending_ops);
        let undone = self.state.tx_error || self.state.last_tag_rollback;
        self.state.tx_error = false;
        self.state.last_tag_rollback = false;
        if ops.is_empty() {
            return;
        }
        if undone {
            // Effects were rolled back (or partly, with savepoints): re-sync next time.
            if let Some(co) = self.back.phase.server_mut() {
                co.conn().applied_params = super::params::UNKNOWN_PARAMS;
            }
            return;
        }
        let unknown = self.state.params.apply(&ops);
        let fp = self.state.params.fingerprint();
        if let Some(co) = self.back.phase.server_mut() {
            let conn = co.conn();
            if ops
                .iter()
                .any(|o| matches!(o, crate::planner::SessionOp::DiscardAll))
            {
                conn.forget_session_state();
            }
            conn.applied_params = if unknown {
                super::params::UNKNOWN_PARAMS
            } else {
                fp
            };
        }
    }
}
