//! The sweeper's connections during one sweep: opened on first use, one per shard, each
//! statement under the timeout. A shard whose connection broke or timed out is not retried
//! within the same sweep (its session is dropped, which closes it); the next sweep tries
//! again. Shard 0's session carries the advisory lock for the whole sweep.

use super::access::{QueryResult, ShardAccess, ShardSession};
use crate::error::{ParticipantError, TwoPcError};
use std::time::Duration;

enum Slot {
    NotOpened,
    Open(Box<dyn ShardSession>),
    Failed,
}

pub(crate) struct Sessions<'a, A: ?Sized> {
    access: &'a A,
    timeout: Duration,
    slots: Vec<Slot>,
}

impl<'a, A: ShardAccess + ?Sized> Sessions<'a, A> {
    pub fn new(access: &'a A, timeout: Duration) -> Self {
        let slots = (0..access.shard_count()).map(|_| Slot::NotOpened).collect();
        Sessions {
            access,
            timeout,
            slots,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.slots.len()
    }

    /// Whether `shard` has been unusable at some point in this sweep.
    pub fn failed(&self, shard: usize) -> bool {
        matches!(self.slots.get(shard), Some(Slot::Failed) | None)
    }

    pub async fn query(
        &mut self,
        shard: usize,
        step: &'static str,
        sql: &str,
    ) -> Result<QueryResult, TwoPcError> {
        let timeout = self.timeout;
        let err = |source: ParticipantError| TwoPcError::Sweep {
            shard,
            step,
            source,
        };
        let Some(slot) = self.slots.get_mut(shard) else {
            return Err(err(ParticipantError::lost(format!(
                "no shard {shard} in this pool"
            ))));
        };
        if let Slot::NotOpened = slot {
            match tokio::time::timeout(timeout, self.access.connect(shard)).await {
                Ok(Ok(s)) => *slot = Slot::Open(s),
                Ok(Err(e)) => {
                    *slot = Slot::Failed;
                    return Err(err(e));
                }
                Err(_) => {
                    *slot = Slot::Failed;
                    return Err(err(ParticipantError::lost(format!(
                        "no connection within {timeout:?}"
                    ))));
                }
            }
        }
        let Slot::Open(session) = slot else {
            return Err(err(ParticipantError::lost(
                "shard unreachable earlier in this sweep",
            )));
        };
        match tokio::time::timeout(timeout, session.simple_query(sql)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                if e.connection_lost {
                    *slot = Slot::Failed;
                }
                Err(err(e))
            }
            Err(_) => {
                *slot = Slot::Failed;
                Err(err(ParticipantError::lost(format!(
                    "no answer within {timeout:?}"
                ))))
            }
        }
    }
}
