//! The session's side of tracing (`crate::otel`): when a client transaction's span
//! starts and ends, the pool-checkout and per-shard spans under it, and two-phase
//! commits observed phase by phase. Every entry point first reads `app.otel`, a
//! `OnceLock` that stays empty without `otel_endpoint`: that read is all tracing costs
//! when it is off.

use super::context::Context as SessionContext;
use super::session::Session;
use crate::app::App;
use crate::backend::registry::Target;
use crate::backend::Checkout;
use crate::error::Result;
use opentelemetry::trace::{Span as _, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use orochi_wire::FrameRef;
use std::time::Duration;

/// The first NUL-terminated string of `b`, and what follows it.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

impl Session {
    /// A client message that starts work: opens the transaction's span if none is open.
    /// Every client message passes here: the checks are inlined into the session loop,
    /// and the span's making, with its large stack frame, is a call of its own taken
    /// only with tracing on (issue 16).
    #[inline]
    pub(crate) fn trace_begin(&mut self, f: FrameRef<'_>) {
        if self.ctx.trace.is_none()
            && matches!(f.tag, b'Q' | b'P' | b'B' | b'E')
            && self.ctx.app.otel.get().is_some()
        {
            self.open_transaction_span(f);
        }
    }

    /// [`Session::trace_begin`]'s work once it found a transaction to trace: the span,
    /// named by the statement's text (and its `traceparent`, if it carries one).
    #[inline(never)]
    fn open_transaction_span(&mut self, f: FrameRef<'_>) {
        let Some(t) = self.ctx.app.otel.get() else {
            return;
        };
        // The statement text that may carry a sqlcommenter `traceparent`: a Query's, a
        // Parse's, or for a Bind the text of the prepared statement it binds.
        let body = f.body;
        let sql = match f.tag {
            b'Q' => cstr(body).map(|(q, _)| q),
            b'P' => cstr(body).and_then(|(_, rest)| cstr(rest)).map(|(q, _)| q),
            b'B' => cstr(body)
                .and_then(|(_, rest)| cstr(rest))
                .and_then(|(name, _)| match name {
                    b"" => self.state.unnamed.as_ref(),
                    n => self.state.statements.get(std::str::from_utf8(n).ok()?),
                })
                .map(|s| s.query.as_bytes()),
            _ => None,
        };
        self.ctx.trace = Some(t.transaction(
            sql,
            vec![
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.namespace", self.ctx.user.pool_name.clone()),
                KeyValue::new("db.user", self.ctx.user.user.username.clone()),
                KeyValue::new("orochi.client_id", self.ctx.id as i64),
            ],
        ));
    }

    /// Between client requests: a transaction whose session is idle again (nothing
    /// owed by a server, no transaction open on any shard) ends its span.
    pub(crate) fn trace_end_if_idle(&mut self) {
        if self.ctx.trace.is_none()
            || !self.front.expect.is_empty()
            || self.back.unsynced
            || self.back.phase.copy_in()
            || self.back.tx_status != b'I'
            || self.back.sharded_tx().is_some_and(|t| {
                t.tx_begin.is_some() || t.pending_begin.is_some() || !t.parked.is_empty()
            })
        {
            return;
        }
        self.trace_end(None);
    }

    /// Ends the transaction's span now (`failed`: why it did not finish cleanly).
    pub(crate) fn trace_end(&mut self, failed: Option<&str>) {
        if let Some(cx) = self.ctx.trace.take() {
            if let Some(why) = failed {
                crate::otel::fail(&cx, why);
            }
            cx.span().end();
        }
    }
}

impl SessionContext {
    /// A span under the client's transaction, when tracing.
    pub(crate) fn trace_child(
        &self,
        name: &'static str,
        attrs: Vec<KeyValue>,
    ) -> Option<opentelemetry_sdk::trace::Span> {
        let t = self.app.otel.get()?;
        Some(t.child(self.trace.as_ref()?, name, attrs))
    }

    /// `UserPools::checkout` inside a `pool.checkout` span when tracing.
    pub(crate) async fn checkout_traced(
        &self,
        shard: usize,
        target: Target,
    ) -> Result<(Checkout, Duration)> {
        // This runs every transaction: without tracing, no span is built, and the
        // traced path (a span held across the wait) is boxed so that the untraced
        // checkout's future does not carry it (issue 16).
        match (self.app.otel.get(), self.trace.as_ref()) {
            (Some(_), Some(_)) => Box::pin(self.checkout_in_span(shard, target)).await,
            _ => self.user.checkout(shard, target, self.id).await,
        }
    }

    async fn checkout_in_span(&self, shard: usize, target: Target) -> Result<(Checkout, Duration)> {
        let mut span = self.trace_child(
            "pool.checkout",
            vec![KeyValue::new("orochi.shard", shard as i64)],
        );
        let r = self.user.checkout(shard, target, self.id).await;
        if let Some(s) = span.as_mut() {
            match &r {
                Ok((co, waited)) => {
                    s.set_attribute(KeyValue::new("server.address", co.pool.target.addr()));
                    s.set_attribute(KeyValue::new(
                        "orochi.wait_us",
                        waited.as_micros().min(i64::MAX as u128) as i64,
                    ));
                }
                Err(e) => crate::otel::fail_span(s, &e.to_string()),
            }
        }
        r
    }
}

/// `TwoPc::commit_deferred`, with a span per phase under the client's transaction when
/// tracing (the `2pc.commit_prepared` span then covers only the hand-over: the COMMIT
/// PREPAREDs run after it, off the client's path). The caller owes the
/// [`orochi_twopc::Unfinished`] to `ServerLeg::finish_off_path`.
pub(crate) async fn twopc_commit<'c>(
    app: &App,
    trace: Option<&Context>,
    pool: &str,
    written: &mut [crate::twopc::ConnParticipant<'c>],
    read_only: &mut [crate::twopc::ConnParticipant<'c>],
    ahead: Option<orochi_twopc::Ahead>,
) -> (
    orochi_twopc::CommitOutcome,
    Option<orochi_twopc::Unfinished>,
) {
    let mut spans;
    let mut none = orochi_twopc::NoObserver;
    let observer: &mut dyn orochi_twopc::PhaseObserver = match (app.otel.get(), trace) {
        (Some(tracing), Some(parent)) => {
            spans = crate::otel::PhaseSpans {
                tracing,
                parent,
                current: None,
            };
            &mut spans
        }
        _ => &mut none,
    };
    match ahead {
        // Pipelined PREPAREs (`fanout_end.rs`): a write's fan-out, with no readers.
        Some(a) => {
            debug_assert!(
                read_only.is_empty(),
                "pipelined PREPAREs come from writes only"
            );
            app.twopc.commit_ahead(pool, written, a, observer).await
        }
        None => {
            app.twopc
                .commit_deferred(pool, written, read_only, observer)
                .await
        }
    }
}
