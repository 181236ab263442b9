//! A statement waiting for a server connection (or for its pool's `PAUSE` to end), and
//! the two ways its client can end the wait first.
//!
//! - A **cancel request** (psql's Ctrl-C): there is no backend to signal yet, so the
//!   client's cancel slot wakes the wait (`cancel.rs`), and the statement is answered
//!   57014, as PostgreSQL answers a cancelled statement; it never runs, and the session
//!   goes on.
//! - A **closed connection**: a driver that gives up on a timeout and closes its socket
//!   leaves its statement queued. It would get the next free connection, run (an
//!   INSERT nobody will hear about), and only then find the client gone; under
//!   overload, abandoned statements pile up in the queue ahead of the live ones
//!   (PgBouncer's pull request #811 describes the same pile-up). The wait watches the
//!   client's socket instead and ends the session at its end of stream.
//!
//! Both are looked at only once the checkout has had to wait: a free connection is lent
//! without a lock, a clock read or a look at the client's socket (issue 16, CPU per
//! transaction). The client shows as waiting in `SHOW CLIENTS` from that moment too.

use crate::backend::pool::Checkout;
use crate::cancel::CancelSlot;
use crate::clients::{ClientInfo, ClientState};
use crate::error::{Result, RouterError};
use orochi_tls::Stream;
use orochi_wire::PgError;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// What a statement waits for: said in the 57014 its cancel gets.
#[derive(Clone, Copy)]
pub(crate) enum WaitFor {
    /// A server connection (a full pool).
    Connection,
    /// The end of the pool's `PAUSE` (`pause_gate.rs`).
    Resume,
}

/// The 57014 PostgreSQL sends for a cancelled statement.
fn cancelled(what: WaitFor) -> RouterError {
    RouterError::Pg(PgError::error(
        "57014",
        match what {
            WaitFor::Connection => "canceling statement due to user request (it was waiting for a server connection and did not run)",
            WaitFor::Resume => "canceling statement due to user request (it was waiting for the pool's PAUSE to end and did not run)",
        },
    ))
}

/// [`wait_or_give_up`] for a checkout.
pub(crate) fn checkout_or_give_up<'a, F>(
    checkout: Pin<&'a mut F>,
    info: &'a ClientInfo,
    slot: &'a CancelSlot,
    client: &'a Stream,
) -> impl Future<Output = Result<(Checkout, Duration)>> + 'a
where
    F: Future<Output = Result<(Checkout, Duration)>>,
{
    wait_or_give_up(checkout, info, slot, client, WaitFor::Connection)
}

/// Awaits `checkout` (a checkout, or the end of a pause); once it waits, also a cancel
/// for this client (57014) and the end of the client's stream (the session ends).
/// Another reason to stop watching the stream: bytes arrive (pipelined messages, read
/// after the wait).
///
/// `checkout` comes pinned by the caller, and the wait is one `poll_fn` rather than an
/// `async fn`: the statement's future holds a pointer and a few flags more, not a second
/// copy of the checkout (it must stay small: `listener.rs`'s test).
pub(crate) fn wait_or_give_up<'a, T, F>(
    mut checkout: Pin<&'a mut F>,
    info: &'a ClientInfo,
    slot: &'a CancelSlot,
    client: &'a Stream,
    what: WaitFor,
) -> impl Future<Output = Result<T>> + 'a
where
    F: Future<Output = Result<T>>,
    T: 'a,
{
    // The client's state before it waited, given back after: the caller says what it is
    // once it has the connection (`ensure_server`: active; a fan-out: unchanged).
    let mut waiting: Option<ClientState> = None;
    let mut watch_client = true;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(r) = checkout.as_mut().poll(cx) {
            return Poll::Ready(match waiting {
                Some(before) => end_wait(r, info, slot, before, what),
                None => r,
            });
        }
        let first = waiting.is_none();
        if first {
            waiting = Some(info.state());
            info.set_state(ClientState::Waiting);
        }
        if slot.poll_cancelled(cx, first).is_ready() {
            info.set_state(waiting.unwrap_or(ClientState::Idle));
            return Poll::Ready(Err(cancelled(what)));
        }
        if watch_client {
            match client.poll_hung_up(cx) {
                Poll::Ready(true) => {
                    return Poll::Ready(Err(RouterError::ClientIo(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the client closed its connection while its statement waited for a server connection",
                    ))))
                }
                Poll::Ready(false) => watch_client = false,
                Poll::Pending => {}
            }
        }
        Poll::Pending
    })
}

/// A wait is over with `r`. A cancel that came as the connection did is honoured: the
/// statement has not been sent, and the connection goes back to the pool as the
/// checkout drops.
fn end_wait<T>(
    r: Result<T>,
    info: &ClientInfo,
    slot: &CancelSlot,
    before: ClientState,
    what: WaitFor,
) -> Result<T> {
    info.set_state(before);
    if slot.end_wait() {
        return Err(cancelled(what));
    }
    r
}
