//! The commit of one client transaction over its participants (SPEC §4).
//!
//! ```text
//!  Active ──► Preparing ──► Deciding ──► Committing ──► Committed
//!    │            │            │  │
//!    └────────────┴────────────┘  └──► InDoubt   (coordinator COMMIT unanswered)
//!                 ▼
//!             Aborting ──► Aborted
//! ```
//! - Preparing: `PREPARE TRANSACTION '<base>_s<k>'` on every written shard except the
//!   coordinator (the lowest written shard) and `COMMIT` on read-only ones, in parallel.
//!   Read-only participants vote too: if one of them cannot commit (e.g. a serialization
//!   failure) the writes are rolled back, as on a single server.
//! - Deciding: on the coordinator, the decision INSERT and `COMMIT` in one message
//!   (SPEC §4 step 3 in one round trip): that COMMIT, whose transaction holds the
//!   decision row, is the commit point. A unique violation on the INSERT means a sweeper
//!   fenced us with `abort` (the server then skips the COMMIT). Nothing before the COMMIT
//!   can make the decision durable, so every failure up to here rolls back; a message
//!   without an answer is in doubt and nothing is rolled back (the decision row alone
//!   will tell the sweeper).
//! - Committing: `COMMIT PREPARED` on the others, in parallel. Failures no longer change
//!   the outcome: they are logged and left to the sweeper. With
//!   [`TwoPc::commit_deferred`] this phase runs after the client was answered
//!   ([`TwoPc::finish`], `unfinished.rs`): the client's path is the prepare round and
//!   the coordinator's COMMIT, two round trips.
//!
//! Each step runs under the configured timeout. The coordinator must be driven to
//! completion: a router should not drop the future when its client disconnects (spawn
//! it); if it is dropped anyway, the registry shows the transaction in doubt and the
//! sweeper settles it.

use crate::ahead::Ahead;
use crate::error::TwoPcError;
use crate::faults::FaultPoint;
use crate::outcome::{CommitOutcome, Resolution};
use crate::participant::{run_step, Participant, StepError};
use crate::phase::{NoObserver, Phase, PhaseObserver};
use crate::registry::Tracked;
use crate::slot::{Role, Slot, TxnState};
use crate::sql;
use crate::stats::Stats;
use crate::twopc::TwoPc;
use crate::unfinished::Unfinished;
use futures_util::future::join_all;
use std::time::Duration;
use tokio::time::Instant;

/// Runs one statement per job, all at once; returns each slot with its result, in order.
async fn run_parallel<'s, 'a, P: Participant + ?Sized>(
    jobs: Vec<(&'s mut Slot<'a, P>, String)>,
    timeout: Duration,
) -> Vec<(&'s mut Slot<'a, P>, Result<String, StepError>)> {
    join_all(jobs.into_iter().map(|(slot, sql)| async move {
        let r = run_step(&mut *slot.p, &sql, timeout).await;
        (slot, r)
    }))
    .await
}

/// Ends every transaction still open or prepared on a healthy connection: ROLLBACK
/// PREPARED for prepared slots, ROLLBACK for open or failed ones. Failures are logged;
/// what stays prepared is reported as pending.
async fn roll_back_all<P: Participant + ?Sized>(slots: &mut [Slot<'_, P>], timeout: Duration) {
    let jobs: Vec<_> = slots
        .iter_mut()
        .filter_map(|s| {
            let sql = match (s.state, &s.gid) {
                (TxnState::Prepared, Some(gid)) => sql::rollback_prepared(gid),
                (TxnState::Open | TxnState::Failed, _) => sql::ROLLBACK.to_string(),
                _ => return None,
            };
            Some((s, sql))
        })
        .collect();
    for (slot, r) in run_parallel(jobs, timeout).await {
        if slot.state == TxnState::Prepared {
            if let Some(e) = slot.after_resolve(r, "ROLLBACK PREPARED", timeout) {
                tracing::warn!(shard = slot.shard, gid = ?slot.gid, "two-phase rollback left for recovery: {e}");
            }
        } else if let Err(e) = slot.after_rollback(r) {
            tracing::warn!(
                shard = slot.shard,
                "ROLLBACK failed, closing the connection: {e:?}"
            );
        }
    }
}

fn pending_gids<P: Participant + ?Sized>(slots: &[Slot<'_, P>]) -> Vec<String> {
    slots.iter().filter_map(|s| s.fate().pending_gid).collect()
}

impl TwoPc {
    /// Commits one client transaction. `written` are the participants that wrote,
    /// `read_only` those that only read; every one has an open transaction. Two or more
    /// written shards use two-phase commit; one needs no 2PC; read-only ones just commit.
    /// `pool` labels the transaction in the registry and the logs.
    ///
    /// Never fails as a function: the outcome says what the client should see and what to
    /// do with each connection (`Broken` ones must be closed).
    pub async fn commit<P: Participant>(
        &self,
        pool: &str,
        written: &mut [P],
        read_only: &mut [P],
    ) -> CommitOutcome {
        self.commit_observed(pool, written, read_only, &mut NoObserver)
            .await
    }

    /// [`TwoPc::commit`], telling `observer` of each phase a two-phase commit enters.
    pub async fn commit_observed<P: Participant>(
        &self,
        pool: &str,
        written: &mut [P],
        read_only: &mut [P],
        observer: &mut dyn PhaseObserver,
    ) -> CommitOutcome {
        self.commit_inner(pool, written, read_only, observer, false, None)
            .await
            .0
    }

    /// [`TwoPc::commit_observed`], but a two-phase commit returns at its commit point
    /// (the coordinator's COMMIT answered): the outcome is `Committed`, the prepared
    /// participants' fates say `Clean` with their `pending_gid`, and the returned
    /// [`Unfinished`] must be given to [`TwoPc::finish`] with those participants' connections
    /// (untouched meanwhile) to send their COMMIT PREPAREDs. `None` when nothing is left
    /// to do (no two-phase commit, or it did not commit).
    pub async fn commit_deferred<P: Participant>(
        &self,
        pool: &str,
        written: &mut [P],
        read_only: &mut [P],
        observer: &mut dyn PhaseObserver,
    ) -> (CommitOutcome, Option<Unfinished>) {
        self.commit_inner(pool, written, read_only, observer, true, None)
            .await
    }

    /// [`TwoPc::commit_deferred`] for a transaction whose PREPAREs the caller pipelined
    /// behind its last statement (`ahead.rs`): `written` holds one participant per shard
    /// `ahead` was reserved for, each with the answer to its PREPARE recorded (but the
    /// coordinator's). Only the decision and the commit point are left to send.
    pub async fn commit_ahead<P: Participant>(
        &self,
        pool: &str,
        written: &mut [P],
        ahead: Ahead,
        observer: &mut dyn PhaseObserver,
    ) -> (CommitOutcome, Option<Unfinished>) {
        self.commit_inner(pool, written, &mut [], observer, true, Some(ahead))
            .await
    }

    async fn commit_inner<P: Participant>(
        &self,
        pool: &str,
        written: &mut [P],
        read_only: &mut [P],
        observer: &mut dyn PhaseObserver,
        defer: bool,
        ahead: Option<Ahead>,
    ) -> (CommitOutcome, Option<Unfinished>) {
        let timeout = self.timeout();
        let n_written = written.len();
        let mut slots: Vec<Slot<'_, P>> = written
            .iter_mut()
            .map(|p| Slot::new(p, Role::Sole))
            .chain(read_only.iter_mut().map(|p| Slot::new(p, Role::ReadOnly)))
            .collect();

        let mut shards: Vec<usize> = slots.iter().map(|s| s.shard).collect();
        shards.sort_unstable();
        let duplicate = shards.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        let mut unfinished = None;
        let (resolution, gid) = if let Some(shard) = duplicate {
            roll_back_all(&mut slots, timeout).await;
            (Resolution::Aborted(TwoPcError::DuplicateShard(shard)), None)
        } else {
            match (n_written, ahead) {
                (0, None) => (commit_read_only(&mut slots, timeout).await, None),
                (1, None) => (commit_single(&mut slots, timeout).await, None),
                (_, ahead) => {
                    let (r, gid, u) = self
                        .commit_two_phase(pool, &mut slots, timeout, observer, defer, ahead)
                        .await;
                    unfinished = u;
                    (r, Some(gid))
                }
            }
        };
        let fates: Vec<_> = slots.iter().map(Slot::fate).collect();
        let (w, r) = fates.split_at(n_written);
        let outcome = CommitOutcome {
            resolution,
            gid,
            written: w.to_vec(),
            read_only: r.to_vec(),
        };
        (outcome, unfinished)
    }

    async fn commit_two_phase<P: Participant>(
        &self,
        pool: &str,
        slots: &mut [Slot<'_, P>],
        timeout: Duration,
        observer: &mut dyn PhaseObserver,
        defer: bool,
        ahead: Option<Ahead>,
    ) -> (Resolution, String, Option<Unfinished>) {
        // The coordinator is the lowest-numbered written shard.
        let Some(ci) = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == Role::Sole)
            .min_by_key(|(_, s)| s.shard)
            .map(|(i, _)| i)
        else {
            unreachable!("commit_two_phase is called with two or more written participants")
        };
        let pipelined = ahead.is_some();
        let (base, mut answers) = match ahead {
            Some(a) => a.into_parts(),
            None => (self.gids.next(slots[ci].shard), Vec::new()),
        };
        debug_assert_eq!(
            base.coordinator(),
            slots[ci].shard,
            "reserved for these shards"
        );
        let base_s = base.to_string();
        let mut shards = Vec::new();
        for (i, s) in slots.iter_mut().enumerate() {
            if s.role == Role::Sole {
                shards.push(s.shard);
                if i == ci {
                    s.role = Role::Coordinator;
                } else {
                    s.role = Role::Prepared;
                    s.gid = Some(base.participant(s.shard));
                }
            }
        }
        shards.sort_unstable();
        let txn = Txn {
            tracked: self
                .registry
                .register(pool, &base_s, shards, base.coordinator()),
            twopc: self,
            base: base_s.clone(),
            pool,
            observer,
        };
        // PREPAREs pipelined by the caller: their answers, as if phase 1 had sent them.
        // One that was pipelined but not answered is taken as lost (maybe prepared).
        let mut failure = None;
        if pipelined {
            for s in slots.iter_mut().filter(|s| s.role == Role::Prepared) {
                let r = match answers.iter().position(|(k, _)| *k == s.shard) {
                    Some(i) => match answers.swap_remove(i).1 {
                        Ok(tag) => Ok(tag),
                        Err(e) if e.connection_lost => Err(StepError::Lost(e)),
                        Err(e) => Err(StepError::Server(e)),
                    },
                    None => Err(StepError::Lost(crate::error::ParticipantError::lost(
                        "the pipelined PREPARE was not answered",
                    ))),
                };
                failure = failure.or(s.after_prepare(r, timeout));
            }
        }
        let (r, u) = txn.run(slots, ci, timeout, defer, failure).await;
        (r, base_s, u)
    }
}

/// The protocol proper for one transaction.
struct Txn<'t> {
    tracked: Tracked<'t>,
    twopc: &'t TwoPc,
    base: String,
    pool: &'t str,
    observer: &'t mut dyn PhaseObserver,
}

impl Txn<'_> {
    fn enter(&mut self, phase: Phase) {
        tracing::debug!(pool = self.pool, gid = %self.base, "two-phase commit: {} -> {phase}", self.tracked.phase());
        self.tracked.set_phase(phase);
        self.observer.enter(phase, &self.base);
    }

    fn hit(&self, point: FaultPoint) {
        self.twopc.faults.hit(point);
    }

    async fn run<P: Participant>(
        mut self,
        slots: &mut [Slot<'_, P>],
        ci: usize,
        timeout: Duration,
        defer: bool,
        pipelined_failure: Option<TwoPcError>,
    ) -> (Resolution, Option<Unfinished>) {
        self.hit(FaultPoint::BeforePrepare);
        self.enter(Phase::Preparing);
        let deadline = Instant::now() + timeout;
        if let Some(e) = pipelined_failure {
            return (self.abort(slots, e, timeout).await, None);
        }

        // Phase 1: prepare the others and commit the readers, all at once.
        let jobs: Vec<_> = slots
            .iter_mut()
            .filter_map(|s| {
                let sql = match (s.role, &s.gid, s.state) {
                    // (Not one whose PREPARE was pipelined and answered already.)
                    (Role::Prepared, Some(gid), TxnState::Open) => sql::prepare(gid),
                    (Role::ReadOnly, _, _) => sql::COMMIT.to_string(),
                    _ => return None,
                };
                Some((s, sql))
            })
            .collect();
        let mut failure = None;
        for (slot, r) in run_parallel(jobs, timeout).await {
            let e = match slot.role {
                Role::Prepared => slot.after_prepare(r, timeout),
                _ => slot.after_commit(r, timeout),
            };
            failure = failure.or(e);
        }
        if let Some(e) = failure {
            return (self.abort(slots, e, timeout).await, None);
        }
        self.hit(FaultPoint::AfterPrepare);

        // Phase 2: the decision row and the commit point, on the coordinator, in one
        // message (the INSERT fails if a sweeper fenced us; the COMMIT behind it is then
        // skipped). Nothing before that COMMIT makes the decision durable.
        self.enter(Phase::Deciding);
        self.hit(FaultPoint::BeforeDecision);
        if Instant::now() >= deadline {
            let e = TwoPcError::DeadlineExceeded {
                base: self.base.clone(),
                timeout,
            };
            return (self.abort(slots, e, timeout).await, None);
        }
        let coord = &mut slots[ci];
        let r = run_step(&mut *coord.p, &sql::decide_and_commit(&self.base), timeout).await;
        if let Some(e) = coord.after_decide_and_commit(r, timeout, &self.base) {
            if let TxnState::Lost { .. } = coord.state {
                return (self.in_doubt(slots, e), None);
            }
            return (self.abort(slots, e, timeout).await, None);
        }
        self.hit(FaultPoint::AfterDecision);
        self.hit(FaultPoint::AfterCoordinatorCommit);

        // Phase 3: committed; finish the others — here, or off the client's path.
        self.enter(Phase::Committing);
        Stats::add(&self.twopc.stats.commits, 1);
        if defer {
            let gids: Vec<(usize, String)> = slots
                .iter()
                .filter(|s| s.state == TxnState::Prepared)
                .filter_map(|s| Some((s.shard, s.gid.clone()?)))
                .collect();
            let pool = self.pool.to_string();
            let base = self.base.clone();
            let registry_id = self.tracked.detach();
            return (
                Resolution::Committed,
                Some(Unfinished {
                    registry_id,
                    base,
                    pool,
                    gids,
                }),
            );
        }
        self.hit(FaultPoint::BeforeCommitPrepared);
        let jobs: Vec<_> = slots
            .iter_mut()
            .filter_map(|s| match (s.state, &s.gid) {
                (TxnState::Prepared, Some(gid)) => {
                    let sql = sql::commit_prepared(gid);
                    Some((s, sql))
                }
                _ => None,
            })
            .collect();
        for (slot, r) in run_parallel(jobs, timeout).await {
            if let Some(e) = slot.after_resolve(r, "COMMIT PREPARED", timeout) {
                tracing::warn!(pool = self.pool, gid = ?slot.gid, shard = slot.shard, "committed, but COMMIT PREPARED is left for recovery: {e}");
            }
        }
        self.hit(FaultPoint::AfterCommitPrepared);
        self.enter(Phase::Committed);
        self.tracked.finish(pending_gids(slots));
        (Resolution::Committed, None)
    }

    async fn abort<P: Participant>(
        mut self,
        slots: &mut [Slot<'_, P>],
        error: TwoPcError,
        timeout: Duration,
    ) -> Resolution {
        self.enter(Phase::Aborting);
        self.hit(FaultPoint::BeforeAbort);
        tracing::debug!(pool = self.pool, gid = %self.base, "two-phase commit aborted: {error}");
        roll_back_all(slots, timeout).await;
        self.enter(Phase::Aborted);
        Stats::add(&self.twopc.stats.rollbacks, 1);
        self.tracked.finish(pending_gids(slots));
        Resolution::Aborted(error)
    }

    fn in_doubt<P: Participant>(mut self, slots: &[Slot<'_, P>], cause: TwoPcError) -> Resolution {
        self.enter(Phase::InDoubt);
        Stats::add(&self.twopc.stats.in_doubt, 1);
        let pending = pending_gids(slots);
        tracing::warn!(pool = self.pool, gid = %self.base, pending = ?pending, "two-phase commit in doubt, left for recovery: {cause}");
        self.tracked.finish(pending);
        Resolution::InDoubt(TwoPcError::OutcomeUnknown {
            base: Some(self.base.clone()),
            shard: cause.shard().unwrap_or_default(),
            cause: cause.to_string(),
        })
    }
}

/// No writes: commit every reader. A failure is reported (the others may have committed,
/// which is harmless: they only read).
async fn commit_read_only<P: Participant>(
    slots: &mut [Slot<'_, P>],
    timeout: Duration,
) -> Resolution {
    let jobs: Vec<_> = slots
        .iter_mut()
        .map(|s| (s, sql::COMMIT.to_string()))
        .collect();
    let mut failure = None;
    for (slot, r) in run_parallel(jobs, timeout).await {
        failure = failure.or(slot.after_commit(r, timeout));
    }
    match failure {
        None => Resolution::Committed,
        Some(e) => {
            roll_back_all(slots, timeout).await;
            Resolution::Aborted(e)
        }
    }
}

/// One written shard: the readers commit first (they vote, as in 2PC), then the writer's
/// plain COMMIT decides. A COMMIT without an answer is in doubt, as on a single server.
async fn commit_single<P: Participant>(slots: &mut [Slot<'_, P>], timeout: Duration) -> Resolution {
    let jobs: Vec<_> = slots
        .iter_mut()
        .filter(|s| s.role == Role::ReadOnly)
        .map(|s| (s, sql::COMMIT.to_string()))
        .collect();
    let mut failure = None;
    for (slot, r) in run_parallel(jobs, timeout).await {
        failure = failure.or(slot.after_commit(r, timeout));
    }
    if let Some(e) = failure {
        roll_back_all(slots, timeout).await;
        return Resolution::Aborted(e);
    }
    let Some(writer) = slots.iter_mut().find(|s| s.role == Role::Sole) else {
        unreachable!("commit_single is called with one written participant")
    };
    let r = run_step(&mut *writer.p, sql::COMMIT, timeout).await;
    match writer.after_commit(r, timeout) {
        None => Resolution::Committed,
        Some(e) if matches!(writer.state, TxnState::Lost { .. }) => {
            Resolution::InDoubt(TwoPcError::OutcomeUnknown {
                base: None,
                shard: writer.shard,
                cause: e.to_string(),
            })
        }
        Some(e) => {
            roll_back_all(slots, timeout).await;
            Resolution::Aborted(e)
        }
    }
}
