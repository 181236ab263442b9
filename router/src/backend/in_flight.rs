//! Cancel requests on their way to one backend. A connection and every cancel target
//! naming its backend share one count; the pool lends the connection to another client
//! only when it is zero, so a cancel sent for one client's query cannot reach the next
//! client's (see `crate::cancel`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How many cancel requests are on their way to one backend (shared by its connection
/// and every cancel target naming it).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn pending(&self) -> bool {
        self.0.load(Ordering::Acquire) > 0
    }

    /// Waits (polling: cancels are rare and short) until no cancel is in flight, up to
    /// `limit`; false if one still is.
    pub async fn settled(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        while self.pending() {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Counts one more cancel on its way until the returned guard is dropped.
    pub(crate) fn start(&self) -> Sending {
        self.0.fetch_add(1, Ordering::AcqRel);
        Sending(self.clone())
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for InFlight {}

/// One cancel on its way; dropping it (sent and answered, or failed) counts it done.
pub(crate) struct Sending(InFlight);

impl Drop for Sending {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_counts_until_its_guard_is_dropped() {
        let f = InFlight::default();
        let other = f.clone();
        assert!(!f.pending());
        let sending = other.start();
        assert!(f.pending(), "a clone shares the count");
        assert!(!f.settled(Duration::from_millis(20)).await);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(sending);
        });
        assert!(f.settled(Duration::from_secs(2)).await);
        later.await.unwrap();
        assert_eq!(f, other);
        assert_ne!(f, InFlight::default());
    }
}
