//! The COMMIT PREPAREDs of a committed transaction, finished off the client's path.
//!
//! Once the coordinator's COMMIT has answered, the decision is durable and the outcome
//! can no longer change: every prepared participant will commit, whether this router
//! sends its COMMIT PREPARED now, later, or dies and leaves it to a sweeper. So the
//! client need not wait for those round trips. [`TwoPc::commit_deferred`] stops at the
//! commit point and hands back an [`Unfinished`]; the router answers the client and
//! runs [`TwoPc::finish`] in the background, on the same (still checked-out)
//! connections that hold the prepared transactions.
//!
//! What it costs, and who must care: until `finish` is done, the participants' writes
//! are committed but not yet visible on their shards (their locks are still held). For
//! other clients that is ordinary two-phase commit (a reader on another connection
//! may see the coordinator's writes before the others', as it could between two
//! COMMIT PREPAREDs before). The client that committed must never see its own writes
//! missing: the router makes that client's next statement wait until `finish` is done
//! (see the router's `client::pending_commits`). If `finish` fails (a shard died), the
//! gid stays prepared and the recovery sweeper commits it, exactly as when a COMMIT
//! PREPARED failed on the client's path before.

use crate::faults::FaultPoint;
use crate::outcome::Fate;
use crate::participant::{run_step, Participant};
use crate::phase::Phase;
use crate::slot::{Role, Slot, TxnState};
use crate::sql;
use crate::twopc::TwoPc;
use futures_util::future::join_all;

/// A committed two-phase transaction whose prepared participants still await their
/// COMMIT PREPARED. Hand it to [`TwoPc::finish`]; until then it is listed in `SHOW
/// TRANSACTIONS` as `committing`.
#[derive(Debug)]
#[must_use = "the prepared participants stay prepared until the sweeper finds them"]
pub struct Unfinished {
    pub(crate) registry_id: u64,
    /// The transaction's base gid.
    pub base: String,
    pub pool: String,
    /// `(shard, participant gid)` of every participant still prepared.
    pub gids: Vec<(usize, String)>,
}

impl Unfinished {
    /// The shards still holding this transaction prepared.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.gids.iter().map(|(s, _)| *s)
    }
}

impl TwoPc {
    /// Sends COMMIT PREPARED for every gid of `unfinished`, in parallel, each on the
    /// participant of its shard in `participants` (the connections that prepared them,
    /// idle since their PREPARE). Failures are logged and left to the sweeper; the
    /// transaction leaves the registry, or stays listed with what is still pending.
    /// Returns one [`Fate`] per participant given, in order.
    pub async fn finish<P: Participant>(
        &self,
        unfinished: Unfinished,
        participants: &mut [P],
    ) -> Vec<Fate> {
        let timeout = self.timeout();
        self.faults.hit(FaultPoint::BeforeCommitPrepared);
        let mut slots: Vec<Slot<'_, P>> = participants
            .iter_mut()
            .map(|p| {
                let mut s = Slot::new(p, Role::Prepared);
                s.gid = unfinished
                    .gids
                    .iter()
                    .find(|(shard, _)| *shard == s.shard)
                    .map(|(_, g)| g.clone());
                s.state = if s.gid.is_some() {
                    TxnState::Prepared
                } else {
                    TxnState::Ended
                };
                s
            })
            .collect();
        let results = join_all(slots.iter_mut().filter_map(|s| {
            let gid = s.gid.clone()?;
            Some(async move {
                let r = run_step(&mut *s.p, &sql::commit_prepared(&gid), timeout).await;
                (s, r)
            })
        }))
        .await;
        for (slot, r) in results {
            if let Some(e) = slot.after_resolve(r, "COMMIT PREPARED", timeout) {
                tracing::warn!(pool = %unfinished.pool, gid = ?slot.gid, shard = slot.shard, "committed, but COMMIT PREPARED is left for recovery: {e}");
            }
        }
        // A gid with no participant given was never sent: the sweeper's.
        let mut pending: Vec<String> = slots.iter().filter_map(|s| s.fate().pending_gid).collect();
        pending.extend(
            unfinished
                .gids
                .iter()
                .filter(|(shard, _)| !slots.iter().any(|s| s.shard == *shard))
                .map(|(_, g)| g.clone()),
        );
        self.faults.hit(FaultPoint::AfterCommitPrepared);
        self.registry
            .finish_id(unfinished.registry_id, Phase::Committed, pending);
        slots.iter().map(Slot::fate).collect()
    }
}
