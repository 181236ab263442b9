//! A write refused with `25006` (read-only transaction) by a server the router sent it
//! to, retried on the real primary when that is safe.
//!
//! This happens in the window between a failover and the health round that notices it
//! (the server taken for the primary was demoted or replaced by a standby behind the
//! same address), or when a statement classified as a read — a user function that
//! writes — reached a replica. The refusal is held back and, if the server was taken
//! for the primary, its shard is re-checked at once. If the server is (still) the
//! primary, the refusal was the server's honest answer (`BEGIN READ ONLY`,
//! `default_transaction_read_only`) and goes to the client unchanged; otherwise the
//! statement runs again on the primary and the client sees only that answer.
//!
//! Only when no data can have changed and the client has seen nothing of the answer:
//! a simple-protocol Query that is the only request in flight, sent either outside a
//! transaction or as the first statement after a plain `BEGIN` (which is replayed on
//! the new server first). A server that refuses with 25006 wrote nothing of that
//! statement, and outside those cases the client's transaction holds earlier work that
//! cannot be moved, so the error is passed on. Not in session pooling mode (the
//! session's state lives on its server), not with `SET orochi.role = 'replica'`, and at
//! most once per statement. Extended-protocol batches follow the same rule in
//! `retry_ext`, which holds their acknowledgements back until the answer is known.

use super::expect::{Expect, Term};
use super::retry_state::Retry;
use super::session::Session;
use crate::backend::registry::Target;
use crate::error::Result;
use orochi_config::PoolMode;
use orochi_wire::{Frame, FrameRef};

/// `BEGIN` / `START TRANSACTION` alone, not read-only (a read-only transaction refuses
/// writes everywhere).
fn is_plain_begin(sql: &str) -> bool {
    use crate::planner::lex::first_keyword;
    matches!(first_keyword(sql).as_str(), "begin" | "start")
        && !sql.trim().trim_end_matches(';').contains(';')
        && !crate::planner::rw::is_read_only_begin(sql)
}

impl Session {
    /// Called for a simple Query about to be sent to the attached server.
    pub(crate) fn arm_retry(&mut self, f: FrameRef<'_>, sql: &str) {
        let prelude = match self.retry.as_deref_mut() {
            Some(r) => {
                if r.pending.as_ref().is_some_and(|p| p.refused.is_some()) {
                    // A refusal is held for the request before (pipelined): `retry_intercept`
                    // gives it up when its ReadyForQuery comes, as this request follows it.
                    return;
                }
                r.pending = None;
                r.begin_candidate = None;
                r.begin_only.take()
            }
            None => None,
        };
        let Some(co) = self.back.phase.server() else {
            return;
        };
        if !self.ctx.user.has_replicas
            || self.ctx.mode == PoolMode::Session
            || self.ctx.role == Some(Target::Read)
            || !self.front.expect.is_empty()
            || self.back.unsynced
        {
            return;
        }
        let retry = |prelude| Retry {
            request: f.to_frame(),
            prelude,
            shard: co.pool.shard,
            forwarded: false,
            refused: None,
            ready: None,
        };
        let r = self.retry.get_or_insert_with(Box::default);
        match self.back.tx_status {
            b'I' if is_plain_begin(sql) => r.begin_candidate = Some(f.to_frame()),
            b'I' => r.pending = Some(Box::new(retry(None))),
            b'T' if prelude.is_some() => r.pending = Some(Box::new(retry(prelude))),
            _ => {}
        }
    }

    /// Looks at every server message first; true when it was taken (held back).
    pub(crate) fn retry_intercept(&mut self, f: &Frame) -> Result<bool> {
        let Some(r) = self.retry.as_deref_mut() else {
            return Ok(false);
        };
        if r.idle() || matches!(f.tag, b'S' | b'N' | b'A') {
            return Ok(false);
        }
        if let Some(p) = r.pending.as_mut() {
            match f.tag {
                b'E' if !p.forwarded && p.refused.is_none() && self.front.expect.len() == 1 => {
                    if orochi_wire::ErrorFields::decode(&f.body).is_ok_and(|e| e.code == "25006") {
                        p.refused = Some(f.clone());
                        return Ok(true);
                    }
                    p.forwarded = true;
                }
                b'Z' if p.refused.is_some() && self.front.expect.len() == 1 => {
                    p.ready = Some(f.clone());
                    self.front.expect.pop_front();
                    return Ok(true);
                }
                b'Z' => {
                    // Done; or the client sent more meanwhile, which must not overtake
                    // this answer: give the held refusal to the client after all.
                    if let Some(refused) = r.pending.take().and_then(|p| p.refused) {
                        self.on_server_frame(refused)?;
                    }
                }
                _ => p.forwarded = true,
            }
            return Ok(false);
        }
        if f.tag == b'Z' {
            let status = f.body.first().copied();
            match r.begin_candidate.take() {
                Some(begin) if status == Some(b'T') => r.begin_only = Some(begin),
                _ if status != Some(b'T') => r.begin_only = None,
                _ => {}
            }
        } else if r.begin_candidate.is_none() {
            // The open transaction did something after its BEGIN.
            r.begin_only = None;
        }
        Ok(false)
    }

    /// Runs a retry whose refusal has fully arrived (at the top of the session loop,
    /// before any later client message is looked at).
    pub(crate) async fn run_retry(&mut self) -> Result<()> {
        self.run_ext_retry().await?;
        if self
            .retry
            .as_ref()
            .and_then(|r| r.pending.as_ref())
            .is_none_or(|p| p.ready.is_none())
        {
            return Ok(());
        }
        let Some(Retry {
            request,
            prelude,
            shard,
            refused: Some(refused),
            ready: Some(ready),
            ..
        }) = self
            .retry
            .as_mut()
            .and_then(|r| r.pending.take())
            .map(|b| *b)
        else {
            return Ok(());
        };
        let Some(old) = self.back.phase.server().map(|co| co.pool.clone()) else {
            return Ok(());
        };
        let user = self.ctx.app.current_user_pools(&self.ctx.user);
        if user.is_write_target(&old) {
            if let Some(h) = user.health.get(shard) {
                h.recheck().await;
            }
        }
        if user.is_write_target(&old) {
            // Still the primary: the refusal was the server's own answer. Relay it.
            self.front
                .expect
                .push_front(Expect::Forward(Term::Ready { started: None }));
            self.on_server_frame(refused)?;
            return self.on_server_frame(ready);
        }
        tracing::info!(
            client = self.ctx.id,
            server = %old.target.addr(),
            "write refused with 25006 (read-only) by a server that is not the primary: retrying on the primary"
        );
        if ready.body.first() != Some(&b'I') {
            if let Some(co) = self.back.phase.server_mut() {
                let conn = co.conn();
                if !matches!(conn.run_silent("ROLLBACK").await, Ok(None)) {
                    conn.broken = true;
                }
            }
        }
        self.back.tx_status = b'I';
        self.maybe_release().await;
        if let Err(e) = self.ensure_server(Some(shard), false).await {
            return self
                .front
                .checkout_failed(&self.back, self.ctx.id, e.unplannable(), false);
        }
        if let Some(begin) = &prelude {
            self.send_server(begin, None);
            self.front
                .expect
                .push_back(Expect::Swallow(Term::Ready { started: None }));
        }
        self.count_statement();
        self.send_server(&request, None);
        self.front.expect.push_back(Expect::Forward(Term::Ready {
            started: Some(std::time::Instant::now()),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_begin;

    #[test]
    fn plain_begins() {
        for q in [
            "BEGIN",
            "begin;",
            "START TRANSACTION",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
        ] {
            assert!(is_plain_begin(q), "{q}");
        }
        for q in [
            "BEGIN READ ONLY",
            "START TRANSACTION READ ONLY",
            "BEGIN; INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (1)",
        ] {
            assert!(!is_plain_begin(q), "{q}");
        }
    }
}
