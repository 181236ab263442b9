//! The recovery sweeper (SPEC §4): settles every two-phase transaction a router left
//! behind — crashed, disconnected or in doubt — whichever instance started it.
//!
//! One sweep of a pool:
//! 1. `pg_try_advisory_lock(SWEEP_LOCK_KEY)` on shard 0, as a session lock; if another
//!    instance holds it, do nothing this round. Any session can take that lock, so after
//!    [`LOCK_MISSES_WARN`] misses in a row the sweeper looks the holder up (`pg_locks`
//!    and `pg_stat_activity`) and warns with its pid, user and application name; the
//!    report's `lock_unavailable_streak` feeds a metric.
//! 2. List our prepared transactions on every shard (age by the shard's clock).
//! 3. For each transaction with a participant older than the timeout, on its coordinator
//!    (named in the gid): insert `abort` unless a decision exists — this waits for an
//!    in-flight coordinator holding the key and fences a late one — read the decision,
//!    then COMMIT or ROLLBACK PREPARED every participant found. 42704 = already resolved.
//! 4. Garbage-collect decision rows older than the retention whose gid no shard holds.
//!    Only when every shard could be listed: a row whose participant sits on an
//!    unreachable shard must survive, or that participant would later be rolled back
//!    against a commit decision.
//! 5. Unlock.
//!
//! Nothing is remembered between sweeps; a sweep interrupted anywhere is redone safely
//! by the next one (every step is idempotent).

pub mod access;
pub mod report;
mod sessions;

use crate::error::TwoPcError;
use crate::faults::FaultPoint;
use crate::gid::{parse_base, parse_participant, GidBase};
use crate::sql;
use crate::stats::Stats;
use crate::twopc::TwoPc;
use access::{QueryResult, ShardAccess};
use report::SweepReport;
use sessions::Sessions;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many gids per garbage-collection DELETE.
const DELETE_BATCH: usize = 500;

/// Consecutive sweeps without the advisory lock after which the sweeper warns.
pub const LOCK_MISSES_WARN: u32 = 3;

/// 42883: `orochi.record_decision` / `orochi.forget_decisions` missing (a shard set up
/// by an older router); the sweeper then uses the SPEC's plain statements.
const UNDEFINED_FUNCTION: &str = "42883";

fn undefined_function(e: &TwoPcError) -> bool {
    matches!(e, TwoPcError::Sweep { source, .. } if source.sqlstate == UNDEFINED_FUNCTION)
}

/// A prepared transaction of ours found on a shard.
#[derive(Debug, Clone)]
struct Found {
    shard: usize,
    gid: String,
    age: Duration,
}

/// Every participant found for one base.
struct Work {
    base: GidBase,
    found: Vec<Found>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Commit,
    Abort,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Abort => "abort",
        }
    }
}

/// Our prepared transactions on every shard; `None` for a shard that could not be listed.
type Listing = Vec<Option<Vec<Found>>>;

impl TwoPc {
    /// One sweep of the pool whose shards `access` reaches.
    pub async fn sweep<A: ShardAccess + ?Sized>(&self, pool: &str, access: &A) -> SweepReport {
        let timeout = self.timeout();
        let mut report = SweepReport::default();
        if access.shard_count() == 0 {
            return report;
        }
        let mut sessions = Sessions::new(access, timeout);
        match sessions
            .query(0, "advisory lock", &sql::try_sweep_lock())
            .await
        {
            Ok(r) if r.first_value() == Some("t") => {
                report.locked = true;
                self.lock_misses(pool, false);
            }
            Ok(r) if r.first_value() == Some("f") => {
                report.lock_unavailable_streak = self.lock_misses(pool, true);
                if report.lock_unavailable_streak % LOCK_MISSES_WARN == 0 {
                    let holder = lock_holder(&mut sessions).await;
                    tracing::warn!(
                        pool,
                        sweeps = report.lock_unavailable_streak,
                        holder = %holder,
                        "two-phase recovery: the sweeper's advisory lock has been held by another session for {} sweeps in a row; if that is not another router's sweeper, in-doubt transactions are not being recovered",
                        report.lock_unavailable_streak
                    );
                } else {
                    tracing::debug!(pool, "two-phase recovery: another instance is sweeping");
                }
                return report;
            }
            Ok(r) => report.errors.push(bad_reply(0, "advisory lock", &r)),
            Err(e) => report.errors.push(e),
        }
        if !report.locked {
            self.account(pool, &report);
            return report;
        }

        let listing = list_all(&mut sessions, &mut report).await;
        for work in self.due(listing, &mut report) {
            self.resolve(pool, &mut sessions, work, &mut report).await;
        }
        self.collect_garbage(pool, &mut sessions, &mut report).await;

        if !sessions.failed(0) {
            match sessions
                .query(0, "advisory unlock", &sql::sweep_unlock())
                .await
            {
                Ok(_) => {}
                Err(e) => report.errors.push(e),
            }
        }
        self.account(pool, &report);
        report
    }

    /// Sweeps now and then every `interval` until `shutdown` completes. A sweep in
    /// progress is finished first.
    pub async fn run_sweeper<A: ShardAccess + ?Sized>(
        &self,
        pool: &str,
        access: &A,
        interval: Duration,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => { self.sweep(pool, access).await; }
            }
        }
    }

    /// Groups the listing by base; returns the bases with a participant older than the
    /// timeout, and counts the rest as young.
    fn due(&self, listing: Listing, report: &mut SweepReport) -> Vec<Work> {
        let timeout = self.timeout();
        let mut by_base: BTreeMap<String, Work> = BTreeMap::new();
        for found in listing.into_iter().flatten().flatten() {
            match parse_participant(&found.gid) {
                Ok(p) => {
                    if p.shard != found.shard {
                        tracing::warn!(gid = %found.gid, shard = found.shard, "two-phase recovery: gid names another shard than the one holding it");
                    }
                    by_base
                        .entry(p.base.to_string())
                        .or_insert_with(|| Work {
                            base: p.base,
                            found: Vec::new(),
                        })
                        .found
                        .push(found);
                }
                Err(_) => {
                    tracing::warn!(gid = %found.gid, shard = found.shard, "two-phase recovery: ignoring a prepared transaction that is not one of ours");
                    report.ignored.push(found.gid);
                }
            }
        }
        by_base
            .into_values()
            .filter(|w| {
                let due = w.found.iter().any(|f| f.age >= timeout);
                if !due {
                    report.young += w.found.len();
                }
                due
            })
            .collect()
    }

    async fn resolve<A: ShardAccess + ?Sized>(
        &self,
        pool: &str,
        sessions: &mut Sessions<'_, A>,
        work: Work,
        report: &mut SweepReport,
    ) {
        let base = work.base.to_string();
        let coordinator = work.base.coordinator();
        let give_up = |report: &mut SweepReport, e: TwoPcError| {
            tracing::warn!(pool, gid = %base, "two-phase recovery postponed: {e}");
            report.errors.push(e);
            report
                .in_doubt
                .extend(work.found.iter().map(|f| f.gid.clone()));
        };
        let mut fenced = sessions
            .query(
                coordinator,
                "abort decision",
                &sql::insert_abort_decision(&base),
            )
            .await;
        if fenced.as_ref().is_err_and(undefined_function) {
            fenced = sessions
                .query(
                    coordinator,
                    "abort decision",
                    &sql::insert_abort_decision_legacy(&base),
                )
                .await;
        }
        let fenced = match fenced {
            Ok(r) => r.first_value() == Some("t") || r.tag == "INSERT 0 1",
            Err(e) => return give_up(report, e),
        };
        let decision = match sessions
            .query(coordinator, "decision lookup", &sql::select_decision(&base))
            .await
        {
            Ok(r) => match r.first_value() {
                Some("commit") => Decision::Commit,
                Some("abort") => Decision::Abort,
                _ => return give_up(report, bad_reply(coordinator, "decision lookup", &r)),
            },
            Err(e) => return give_up(report, e),
        };
        self.faults.hit(FaultPoint::SweepAfterDecision);

        let (mut done, mut gone, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for f in &work.found {
            let (step, stmt) = match decision {
                Decision::Commit => ("COMMIT PREPARED", sql::commit_prepared(&f.gid)),
                Decision::Abort => ("ROLLBACK PREPARED", sql::rollback_prepared(&f.gid)),
            };
            match sessions.query(f.shard, step, &stmt).await {
                Ok(_) => done.push(f.gid.clone()),
                Err(TwoPcError::Sweep { source, .. }) if source.is_undefined_object() => {
                    gone.push(f.gid.clone())
                }
                Err(e) => {
                    report.errors.push(e);
                    failed.push(f.gid.clone());
                }
            }
        }
        tracing::info!(
            pool,
            gid = %base,
            decision = decision.as_str(),
            decided_by_sweeper = fenced,
            resolved = ?done,
            already_resolved = ?gone,
            failed = ?failed,
            "two-phase recovery: {} {} prepared participant(s)",
            match decision {
                Decision::Commit => "committed",
                Decision::Abort => "rolled back",
            },
            done.len()
        );
        match decision {
            Decision::Commit => report.committed.extend(done),
            Decision::Abort => report.rolled_back.extend(done),
        }
        report.already_resolved.extend(gone);
        report.in_doubt.extend(failed);
    }

    async fn collect_garbage<A: ShardAccess + ?Sized>(
        &self,
        pool: &str,
        sessions: &mut Sessions<'_, A>,
        report: &mut SweepReport,
    ) {
        let retention = self.decision_retention();
        let n = sessions.shard_count();
        if (0..n).any(|k| sessions.failed(k)) {
            tracing::debug!(
                pool,
                "two-phase recovery: a shard is unreachable, decision rows kept"
            );
            return;
        }
        // Candidates first, then a fresh listing: a commit row is written only after all
        // its participants are prepared, so the listing sees any that still exist.
        let mut candidates = Vec::new();
        for shard in 0..n {
            match sessions
                .query(
                    shard,
                    "decision listing",
                    &sql::list_old_decisions(retention),
                )
                .await
            {
                Ok(r) => {
                    let gids: Vec<String> = r
                        .rows
                        .iter()
                        .filter_map(|row| row.first().cloned().flatten())
                        .filter(|g| parse_base(g).is_ok())
                        .collect();
                    candidates.push((shard, gids));
                }
                // No decision table yet: nothing was ever decided on this shard.
                Err(TwoPcError::Sweep { ref source, .. }) if source.sqlstate == "42P01" => {}
                Err(e) => report.errors.push(e),
            }
        }
        let listed_at = Instant::now();
        let listing = list_all(sessions, report).await;
        if listing.iter().any(Option::is_none) {
            tracing::debug!(
                pool,
                "two-phase recovery: a shard could not be listed, decision rows kept"
            );
            return;
        }
        let found: Vec<Found> = listing.into_iter().flatten().flatten().collect();
        self.stats
            .prepared_pending
            .store(found.len() as u64, Ordering::Relaxed);
        let still: HashSet<String> = found
            .iter()
            .filter_map(|f| parse_participant(&f.gid).ok())
            .map(|p| p.base.to_string())
            .collect();
        for (shard, gids) in candidates {
            let unneeded: Vec<String> = gids.into_iter().filter(|g| !still.contains(g)).collect();
            for batch in unneeded.chunks(DELETE_BATCH) {
                let mut r = sessions
                    .query(
                        shard,
                        "decision cleanup",
                        &sql::delete_decisions(batch, retention),
                    )
                    .await;
                if r.as_ref().is_err_and(undefined_function) {
                    r = sessions
                        .query(
                            shard,
                            "decision cleanup",
                            &sql::delete_decisions_legacy(batch, retention),
                        )
                        .await;
                }
                match r {
                    Ok(r) => report.decisions_deleted += deleted_count(&r),
                    Err(e) => report.errors.push(e),
                }
            }
        }
        self.registry.reconcile(pool, listed_at, &still);
    }

    /// Counters and the summary log line.
    fn account(&self, pool: &str, report: &SweepReport) {
        if report.locked {
            Stats::add(&self.stats.sweeps, 1);
        }
        Stats::add(&self.stats.sweep_errors, report.errors.len() as u64);
        Stats::add(&self.stats.recovered_commits, report.committed.len() as u64);
        Stats::add(
            &self.stats.recovered_rollbacks,
            report.rolled_back.len() as u64,
        );
        if report.is_eventful() {
            tracing::info!(
                pool,
                committed = report.committed.len(),
                rolled_back = report.rolled_back.len(),
                already_resolved = report.already_resolved.len(),
                in_doubt = report.in_doubt.len(),
                young = report.young,
                decisions_deleted = report.decisions_deleted,
                errors = report.errors.len(),
                "two-phase recovery sweep"
            );
            for e in &report.errors {
                tracing::warn!(pool, "two-phase recovery: {e}");
            }
        }
    }
}

/// Lists our prepared transactions on every shard.
async fn list_all<A: ShardAccess + ?Sized>(
    sessions: &mut Sessions<'_, A>,
    report: &mut SweepReport,
) -> Listing {
    let mut out = Vec::new();
    for shard in 0..sessions.shard_count() {
        match sessions
            .query(shard, "prepared transactions", sql::LIST_PREPARED)
            .await
        {
            Ok(r) => match parse_listing(shard, &r) {
                Ok(found) => out.push(Some(found)),
                Err(e) => {
                    report.errors.push(e);
                    out.push(None);
                }
            },
            Err(e) => {
                report.errors.push(e);
                out.push(None);
            }
        }
    }
    out
}

fn parse_listing(shard: usize, r: &QueryResult) -> Result<Vec<Found>, TwoPcError> {
    r.rows
        .iter()
        .map(|row| {
            let gid = row.first().cloned().flatten();
            let age = row
                .get(1)
                .and_then(|a| a.as_deref())
                .and_then(|a| a.parse::<f64>().ok())
                .filter(|a| a.is_finite());
            match (gid, age) {
                (Some(gid), Some(age)) => Ok(Found {
                    shard,
                    gid,
                    age: Duration::from_secs_f64(age.max(0.0)),
                }),
                _ => Err(bad_reply(shard, "prepared transactions", r)),
            }
        })
        .collect()
}

/// The function's count, or the legacy DELETE's tag.
fn deleted_count(r: &QueryResult) -> u64 {
    r.first_value()
        .or_else(|| r.tag.strip_prefix("DELETE "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Who holds the sweeper's lock on shard 0, for the warning; best effort.
async fn lock_holder<A: ShardAccess + ?Sized>(sessions: &mut Sessions<'_, A>) -> String {
    match sessions
        .query(0, "advisory lock holder", &sql::sweep_lock_holder())
        .await
    {
        Ok(r) if !r.rows.is_empty() => r
            .rows
            .iter()
            .map(|row| {
                let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
                format!(
                    "pid {} user \"{}\" application_name \"{}\" from {}",
                    col(0),
                    col(1),
                    col(2),
                    col(3)
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Ok(_) => "released since".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

fn bad_reply(shard: usize, step: &'static str, r: &QueryResult) -> TwoPcError {
    TwoPcError::BadReply {
        shard,
        step,
        reply: format!("{} {:?}", r.tag, r.rows),
    }
}
