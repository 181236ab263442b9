//! A session's end: the server connections a vanished or finished client held are brought
//! back to idle (its last request drained, cancelled if it takes too long, an open
//! transaction rolled back, session state discarded where it must be) and released, or
//! closed when that cannot be done cleanly; the connections it left dirty in the pool go
//! with it.

use super::expect::{Expect, Term};
use super::session::Session;
use crate::cancel::CancelTarget;
use crate::error::RouterError;
use orochi_config::PoolMode;
use orochi_wire::FrontendMessage;
use std::time::Duration;

/// How long the router waits to bring a server back to idle after its client vanished.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a vanished client's last request may take to finish by itself before it is
/// cancelled (and its connection closed rather than reused).
const QUICK_DRAIN: Duration = Duration::from_millis(500);

impl Session {
    /// Brings a server back to idle after its client left mid-way, or closes it.
    pub(crate) async fn client_gone(&mut self) {
        // The session's task is what shutdown waits for: it ends after its COMMIT
        // PREPAREDs (`pending_commits.rs`), which the client no longer waits for.
        if self.has_pending_commits() {
            self.await_pending_commits().await;
        }
        let open = self.back.phase.is_attached()
            && (!self.front.expect.is_empty() || self.back.tx_status != b'I');
        self.trace_end(open.then_some("the client left mid-transaction"));
        self.ctx.user.client_left(self.ctx.id);
        for mut co in self
            .back
            .sharded
            .as_deref_mut()
            .map(|t| std::mem::take(&mut t.parked))
            .unwrap_or_default()
        {
            // Other shards of an unfinished multi-shard transaction: roll them back.
            let conn = co.conn();
            match tokio::time::timeout(CLEANUP_TIMEOUT, conn.run_silent("ROLLBACK")).await {
                Ok(Ok(None)) => co.release(),
                _ => conn.broken = true,
            }
        }
        let Some(attached) = self.back.phase.take() else {
            return;
        };
        let mut co = attached.co;
        self.ctx.cancel.slot.set(None);
        self.ctx.client.info.set_link(None);
        let clean = self.front.expect.is_empty()
            && !self.back.unsynced
            && !attached.copy_in
            && !attached.server_skipping
            && self.back.tx_status == b'I';
        let session_mode = self.ctx.mode == PoolMode::Session;
        let expect = std::mem::take(&mut self.front.expect);
        let (copy_in, unsynced) = (
            attached.copy_in,
            self.back.unsynced || attached.server_skipping,
        );
        let tx_status = self.back.tx_status;
        // What the client asked for before it left but the router had not sent yet: the
        // expected answers count it, so the server must see it too.
        let unsent = std::mem::take(&mut self.back.sout);
        let target = CancelTarget::new(&co.pool.target, co.conn_ref());
        let conn = co.conn();
        let work = async {
            if !clean {
                let mut readies = expect
                    .iter()
                    .filter(|e| {
                        matches!(
                            e,
                            Expect::Forward(Term::Ready { .. })
                                | Expect::Swallow(Term::Ready { .. })
                        )
                    })
                    .count();
                let mut b = unsent;
                if copy_in {
                    FrontendMessage::CopyFail("client disconnected".into()).encode(&mut b);
                }
                if unsynced || copy_in {
                    FrontendMessage::Sync.encode(&mut b);
                    readies += 1;
                }
                if !b.is_empty() {
                    conn.write_all(&b).await?;
                }
                let mut status = tx_status;
                let mut cancel_consumed = false;
                let mut cancelled = false;
                // Let the last request finish by itself for a moment; if it does not, cancel
                // it and keep draining. A connection we cancelled is reused only if the
                // cancel visibly took effect (57014): a cancel PostgreSQL acts on late would
                // otherwise hit the next client's query.
                while readies > 0 {
                    let f = if cancelled {
                        conn.read_frame().await?
                    } else {
                        match tokio::time::timeout(QUICK_DRAIN, conn.read_frame()).await {
                            Ok(f) => f?,
                            Err(_) => {
                                let _ = crate::cancel::send_cancel(&target).await;
                                cancelled = true;
                                continue;
                            }
                        }
                    };
                    match f.tag {
                        // A COPY FROM STDIN the client started but never saw begin: the
                        // server waits for data a cancel does not interrupt, and its Syncs
                        // were ignored. Not worth untangling: close the connection.
                        b'G' | b'W' => {
                            conn.broken = true;
                            return Ok(());
                        }
                        b'Z' => {
                            readies -= 1;
                            status = f.body.first().copied().unwrap_or(b'I');
                        }
                        b'E' if cancelled => {
                            cancel_consumed |= orochi_wire::ErrorFields::decode(&f.body)
                                .is_ok_and(|e| e.code == "57014");
                        }
                        _ => {}
                    }
                }
                if cancelled && !cancel_consumed {
                    conn.broken = true;
                    return Ok(());
                }
                if status != b'I' && conn.run_silent("ROLLBACK").await?.is_some() {
                    conn.broken = true;
                }
            }
            if (session_mode || conn.dirty) && !conn.broken {
                match conn.run_silent("DISCARD ALL").await? {
                    None => conn.forget_session_state(),
                    Some(_) => conn.broken = true,
                }
            }
            Ok::<(), RouterError>(())
        };
        match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
            Ok(Ok(())) => co.release(),
            _ => co.conn().broken = true,
        }
    }
}
