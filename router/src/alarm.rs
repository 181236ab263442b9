//! A session's alarm: the one thing a session waits on besides its sockets and its
//! deadline, raised for a shutdown, a forced shutdown or `KILL_CLIENT`.
//!
//! Why not the `CancellationToken`s the rest of the process uses: a session waited on
//! three (`shutdown`, `force`, its own `kill`), so every client, idle or not, carried
//! three `WaitForCancellationFuture`s in its task (~80 B each) and the kill token's tree
//! node (~150 B), and every wake-up of a busy session took three mutexes to poll them
//! (issue 16: bytes per idle client, CPU per transaction). An alarm is a byte of reasons
//! and an `AtomicWaker`, inline in the client's entry: waiting registers the waker with
//! one atomic swap, and the future is a reference and a byte.
//!
//! Reasons stay raised: a session passes the ones it has handled as `seen`, so it is not
//! woken again for them. The registry raises every alarm at once (`ClientRegistry::alarm_all`)
//! and a client registered after that starts with those reasons raised.

use atomic_waker::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

/// The router is draining: an idle session leaves, a busy one finishes first.
pub const SHUTDOWN: u8 = 1;
/// The shutdown's grace ran out: every session leaves now.
pub const FORCE: u8 = 2;
/// `KILL_CLIENT` named this client.
pub const KILL: u8 = 4;

#[derive(Debug, Default)]
pub struct Alarm {
    raised: AtomicU8,
    waker: AtomicWaker,
}

impl Alarm {
    /// Raises `why` and wakes the session waiting on this alarm, if one is.
    pub fn raise(&self, why: u8) {
        self.raised.fetch_or(why, Ordering::SeqCst);
        self.waker.wake();
    }

    /// The reasons raised so far.
    pub fn raised(&self) -> u8 {
        self.raised.load(Ordering::SeqCst)
    }

    /// Resolves with the raised reasons that are not in `seen`.
    pub fn wait(&self, seen: u8) -> Wait<'_> {
        Wait { alarm: self, seen }
    }
}

/// The future of `Alarm::wait`. One session waits on its alarm at a time (the waker
/// slot holds one waker).
pub struct Wait<'a> {
    alarm: &'a Alarm,
    seen: u8,
}

impl Future for Wait<'_> {
    type Output = u8;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u8> {
        let new = self.alarm.raised() & !self.seen;
        if new != 0 {
            return Poll::Ready(new);
        }
        self.alarm.waker.register(cx.waker());
        // Raised between the first look and the registration: `raise` woke nobody.
        match self.alarm.raised() & !self.seen {
            0 => Poll::Pending,
            new => Poll::Ready(new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_raise_wakes_the_waiter_with_the_new_reasons_only() {
        let alarm = Arc::new(Alarm::default());
        let a = alarm.clone();
        let waiter = tokio::spawn(async move { a.wait(0).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "nothing was raised yet");
        alarm.raise(SHUTDOWN);
        assert_eq!(waiter.await.unwrap(), SHUTDOWN);

        // SHUTDOWN handled: only a later reason wakes the session again.
        let a = alarm.clone();
        let waiter = tokio::spawn(async move { a.wait(SHUTDOWN).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiter.is_finished(),
            "a seen reason must not wake it again"
        );
        alarm.raise(KILL);
        assert_eq!(waiter.await.unwrap(), KILL);
    }

    #[tokio::test]
    async fn a_reason_raised_before_the_wait_resolves_it_at_once() {
        let alarm = Alarm::default();
        alarm.raise(FORCE);
        assert_eq!(alarm.wait(SHUTDOWN).await, FORCE);
    }
}
