//! The 25006 retry of `retry.rs` for the extended protocol: a Parse/Bind/Describe/
//! Execute/Sync batch whose write was refused as read-only by a server taken for the
//! primary runs again on the real primary, and the client sees only that answer.
//!
//! **Why the batch's output is held back.** In the extended protocol the server answers
//! Parse and Bind before it refuses the Execute; relaying those at once (as the rest of
//! the session does) would make a replay impossible. So from the batch's first message
//! until its ReadyForQuery the client's bytes are kept here instead of written — only
//! while the server has sent nothing but acknowledgements (ParseComplete, BindComplete,
//! ParameterDescription, RowDescription, NoData). Any other message (a row, a command
//! tag, a notice, another error) means the answer is real: what is held goes out at
//! once and the batch is not retried. Drivers wait for ReadyForQuery after Sync anyway,
//! so holding acknowledgements costs them nothing.
//!
//! **The "nothing could have changed" rule**, as for simple queries: the batch starts a
//! transaction (outside one, or right after a plain `BEGIN` that is replayed first), is
//! complete (its Sync arrived) and is the only request in flight, contains no Flush and
//! no Close but of a portal, and the 25006 is the first thing the server said besides acknowledgements —
//! a refused statement wrote nothing, and nothing before it produced a result. Named
//! statements the batch created are forgotten before the replay (it creates them again
//! on the new server). Not for sharded pools (their extended path plans per shard), not
//! in session mode, not with `SET orochi.role = 'replica'`, at most once per batch.

use super::expect::{Expect, Term};
use super::retry_state::ExtRetry;
use super::session::Session;
use crate::backend::registry::Target;
use crate::error::Result;
use bytes::BytesMut;
use orochi_config::PoolMode;
use orochi_wire::{Frame, FrameRef};

/// Above this much (client messages or held replies) a batch is not retried.
const MAX_HELD: usize = 64 * 1024;

fn is_ack(tag: u8) -> bool {
    matches!(tag, b'1' | b'2' | b'3' | b't' | b'T' | b'n')
}

/// A Close of a portal (drivers close the unnamed portal after Execute): the server's
/// business only, and harmless to send again. A Close of a statement is not replayable
/// (the router forgets the statement at once).
fn closes_portal(f: FrameRef<'_>) -> bool {
    f.tag == b'C' && f.body.first() == Some(&b'P')
}

impl Session {
    /// Every client message passes here first: arms a retry at the start of a batch,
    /// records the batch, gives up on anything that breaks the rule.
    pub(crate) fn ext_retry_client(&mut self, f: FrameRef<'_>) {
        if self.retry.as_ref().is_some_and(|r| r.replaying) {
            return;
        }
        if let Some(x) = self.retry.as_mut().and_then(|r| r.ext.as_mut()) {
            let keep = !x.synced
                && (matches!(f.tag, b'P' | b'B' | b'D' | b'E' | b'S') || closes_portal(f))
                && x.size + f.wire_len() <= MAX_HELD;
            if !keep {
                return self.ext_give_up();
            }
            x.size += f.wire_len();
            x.synced = f.tag == b'S';
            x.executes |= f.tag == b'E';
            if f.tag == b'P' {
                if let Some(name) = parse_name(f) {
                    if !name.is_empty() && !self.state.statements.contains_key(&name) {
                        x.added.push(name);
                    }
                }
            }
            x.frames.push(f.to_frame());
            return;
        }
        if !matches!(f.tag, b'P' | b'B' | b'D' | b'E') {
            return;
        }
        if !self.ctx.user.has_replicas
            || self.ctx.mode == PoolMode::Session
            || self.ctx.role == Some(Target::Read)
            || self.back.unsynced
            || self.front.router_skipping
            || !self.front.expect.is_empty()
            || self.ctx.user.sharding.is_some()
        {
            return;
        }
        let prelude = match self.back.tx_status {
            b'I' => None,
            b'T' if self.retry.as_ref().is_some_and(|r| r.begin_only.is_some()) => {
                self.retry.as_mut().and_then(|r| r.begin_only.take())
            }
            _ => return,
        };
        let mut added = Vec::new();
        if let Some(name) = (f.tag == b'P').then(|| parse_name(f)).flatten() {
            if !name.is_empty() && !self.state.statements.contains_key(&name) {
                added.push(name);
            }
        }
        let mark = self.front.out.len();
        self.retry_state().ext = Some(ExtRetry {
            frames: vec![f.to_frame()],
            size: f.wire_len(),
            prelude,
            added,
            synced: false,
            executes: f.tag == b'E',
            mark,
            held: BytesMut::new(),
            refused: false,
            ready: None,
        });
    }

    /// Every server message passes here first (it is then relayed as usual, into the
    /// held bytes while a retry is possible).
    pub(crate) fn ext_retry_server(&mut self, f: &Frame) {
        if matches!(self.front.expect.front(), Some(Expect::Swallow(_))) {
            // The answer to a statement the router injected (a re-Parse, the session's
            // settings on a fresh connection): not part of what the client sees.
            return;
        }
        let Some(x) = self.retry.as_mut().and_then(|r| r.ext.as_mut()) else {
            return;
        };
        if x.refused {
            if f.tag == b'Z' {
                x.ready = f.body.first().copied();
            } else {
                self.ext_give_up();
            }
            return;
        }
        let refusal = f.tag == b'E'
            && x.synced
            && orochi_wire::ErrorFields::decode(&f.body).is_ok_and(|e| e.code == "25006");
        if refusal {
            x.refused = true;
        } else if f.tag == b'Z' {
            // Answered without a refusal. A batch that only prepared leaves the
            // transaction's plain BEGIN retryable for the batch that executes.
            let keep = !x.executes && f.body.first() == Some(&b'T');
            let prelude = if keep { x.prelude.take() } else { None };
            self.ext_give_up();
            if prelude.is_some() {
                self.retry_state().begin_only = prelude;
            }
        } else if !is_ack(f.tag) || x.held.len() > MAX_HELD {
            self.ext_give_up();
        }
    }

    /// Called before the client's bytes are written: keeps the batch's part back.
    pub(crate) fn ext_retry_hold(&mut self) {
        let answered_here = self
            .retry
            .as_ref()
            .and_then(|r| r.ext.as_ref())
            .is_some_and(|x| {
                x.synced
                    && x.ready.is_none()
                    && (self.back.phase.is_idle() || self.front.expect.is_empty())
            });
        if answered_here {
            // The router answered the whole batch itself: nothing to wait for.
            return self.ext_give_up();
        }
        if let Some(x) = self.retry.as_mut().and_then(|r| r.ext.as_mut()) {
            let tail = self.front.out.split_off(x.mark.min(self.front.out.len()));
            x.held.extend_from_slice(&tail);
            x.mark = 0;
        }
    }

    /// No retry for this batch: what was held goes to the client, before anything newer.
    pub(crate) fn ext_give_up(&mut self) {
        if let Some(x) = self.retry.as_mut().and_then(|r| r.ext.take()) {
            if !x.held.is_empty() {
                let mut out = x.held;
                out.extend_from_slice(&self.front.out);
                self.front.out = out;
            }
        }
    }

    /// Runs a retry whose refusal and ReadyForQuery have arrived (top of the session
    /// loop, before any later client message is looked at).
    pub(crate) async fn run_ext_retry(&mut self) -> Result<()> {
        match self.retry.as_ref().and_then(|r| r.ext.as_ref()) {
            Some(x) if x.ready.is_some() => {}
            _ => return Ok(()),
        }
        if !self.front.expect.is_empty() {
            // Something else is in flight after all: no replay.
            self.ext_give_up();
            return Ok(());
        }
        let Some(old) = self.back.phase.server().map(|co| co.pool.clone()) else {
            self.ext_give_up();
            return Ok(());
        };
        let user = self.ctx.app.current_user_pools(&self.ctx.user);
        if user.is_write_target(&old) {
            if let Some(h) = user.health.get(old.shard) {
                h.recheck().await;
            }
        }
        if user.is_write_target(&old) {
            // Still the primary: the refusal was the server's own answer.
            self.ext_give_up();
            return Ok(());
        }
        let Some(x) = self.retry.as_mut().and_then(|r| r.ext.take()) else {
            return Ok(());
        };
        tracing::info!(
            client = self.ctx.id,
            server = %old.target.addr(),
            "extended-protocol write refused with 25006 (read-only) by a server that is not the primary: retrying the batch on the primary"
        );
        // Everything the client would have seen of the batch is dropped.
        self.front.out.truncate(x.mark.min(self.front.out.len()));
        for name in &x.added {
            self.state.statements.remove(name);
        }
        if x.ready != Some(b'I') {
            if let Some(co) = self.back.phase.server_mut() {
                let conn = co.conn();
                if !matches!(conn.run_silent("ROLLBACK").await, Ok(None)) {
                    conn.broken = true;
                }
            }
        }
        self.back.tx_status = b'I';
        self.state.tx_error = false;
        self.maybe_release().await;
        if let Err(e) = self.ensure_server(Some(old.shard), false).await {
            // The batch's Sync is consumed already: the error ends with ReadyForQuery,
            // as for a simple query (no skipping of later messages).
            return self
                .front
                .checkout_failed(&self.back, self.ctx.id, e.unplannable(), false);
        }
        if let Some(begin) = &x.prelude {
            self.send_server(begin, None);
            self.front
                .expect
                .push_back(Expect::Swallow(Term::Ready { started: None }));
        }
        self.retry_state().replaying = true;
        let mut r = Ok(());
        for f in x.frames {
            r = self.on_client_frame(f).await;
            if r.is_err() {
                break;
            }
        }
        self.retry_state().replaying = false;
        r
    }
}

/// The statement name of a Parse.
fn parse_name(f: FrameRef<'_>) -> Option<String> {
    let end = f.body.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&f.body[..end]).ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orochi_wire::FrontendMessage;

    #[test]
    fn parse_names() {
        let f = FrontendMessage::Parse {
            name: "s1".into(),
            query: "INSERT INTO t VALUES ($1)".into(),
            param_types: vec![],
        }
        .to_frame();
        assert_eq!(parse_name(f.view()).as_deref(), Some("s1"));
        let f = FrontendMessage::Parse {
            name: String::new(),
            query: "SELECT 1".into(),
            param_types: vec![],
        }
        .to_frame();
        assert_eq!(parse_name(f.view()).as_deref(), Some(""));
    }

    #[test]
    fn portal_closes_are_replayable() {
        let portal = FrontendMessage::Close {
            kind: b'P',
            name: String::new(),
        };
        let statement = FrontendMessage::Close {
            kind: b'S',
            name: "s1".into(),
        };
        assert!(closes_portal(portal.to_frame().view()));
        assert!(!closes_portal(statement.to_frame().view()));
    }

    #[test]
    fn only_acknowledgements_are_held() {
        for t in [b'1', b'2', b'3', b't', b'T', b'n'] {
            assert!(is_ack(t));
        }
        for t in [b'D', b'C', b'I', b's', b'N', b'S', b'E', b'Z'] {
            assert!(!is_ack(t));
        }
    }
}
