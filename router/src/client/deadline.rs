//! `query_timeout` and `idle_transaction_timeout`: a session never waits without bound on
//! a server, and never holds one without bound for a client that went quiet mid-transaction.
//!
//! Both end the client's session, as PgBouncer does: after a statement timed out nothing
//! is known of the server's state (the network towards it may be gone), and a transaction
//! abandoned by its client cannot be finished for it. The server connections the session
//! held are cancelled (best effort, bounded) and closed, which rolls their transactions
//! back; other clients keep their own connections and are not affected.
//!
//! Off by default, and then free: no timer is armed unless a bound is configured.

use crate::backend::Checkout;
use crate::error::RouterError;
use orochi_config::Bounds;
use orochi_wire::PgError;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The server owes an answer.
    Query,
    /// The client owes the next statement of its open transaction.
    IdleInTransaction,
}

/// The session's bounds and when its current wait began.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    query: Option<Duration>,
    idle_tx: Option<Duration>,
    since: Option<(Wait, Instant)>,
}

impl Deadlines {
    pub(crate) fn new(b: &Bounds) -> Self {
        Deadlines {
            query: b.query_timeout,
            idle_tx: b.idle_transaction_timeout,
            since: None,
        }
    }

    /// The statement bound alone (fan-outs wait on their shards outside the main loop).
    pub(crate) fn query(&self) -> Option<Duration> {
        self.query
    }

    /// The bound of one kind of wait.
    pub(crate) fn bound(&self, w: Wait) -> Option<Duration> {
        match w {
            Wait::Query => self.query,
            Wait::IdleInTransaction => self.idle_tx,
        }
    }

    /// When the current wait must end, if it is bounded. Called once per turn of the
    /// session loop while a server connection is held; `wait` is what the loop waits for.
    pub(crate) fn next(&mut self, wait: Option<Wait>) -> Option<(Wait, Instant)> {
        let bound = wait.and_then(|w| self.bound(w));
        let (Some(w), Some(d)) = (wait, bound) else {
            self.since = None;
            return None;
        };
        let began = match self.since {
            Some((k, t)) if k == w => t,
            _ => {
                let now = Instant::now();
                self.since = Some((w, now));
                now
            }
        };
        Some((w, began + d))
    }
}

/// Sleeps until the deadline, or forever without one.
pub(crate) async fn expire(at: Option<(Wait, Instant)>) -> Wait {
    match at {
        Some((w, t)) => {
            tokio::time::sleep_until(t).await;
            w
        }
        None => std::future::pending().await,
    }
}

/// What the client is told when a bound ends its session.
pub(crate) fn expired(w: Wait, after: Option<Duration>) -> RouterError {
    let secs = after.map_or(0.0, |d| d.as_secs_f64());
    RouterError::Pg(match w {
        Wait::Query => PgError::fatal(
            "57014",
            format!(
                "canceling statement due to query_timeout ({secs} s); the connection is closed"
            ),
        ),
        Wait::IdleInTransaction => PgError::fatal(
            "25P03",
            format!("terminating connection due to idle_transaction_timeout ({secs} s)"),
        ),
    })
}

/// How long a cancel towards an unresponsive server may take before it is given up.
const CANCEL_BOUND: Duration = Duration::from_secs(5);

/// Cancels what `co`'s server is running (in the background, bounded) and marks the
/// connection for closing when it is dropped.
pub(crate) fn abandon(co: &mut Checkout) {
    let target = super::shard_stream::cancel_target(co);
    co.conn().broken = true;
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CANCEL_BOUND, crate::cancel::send_cancel(&target)).await;
    });
}
