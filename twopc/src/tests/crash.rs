//! The protocol end to end over the in-memory cluster: a router dies at every fault point
//! (its open transactions vanish with its sockets; prepared ones stay), another instance
//! sweeps, and every transaction must be all-or-nothing with nothing left prepared.

use super::cluster::{Fake, Inject};
use super::twopc_with;
use crate::error::TwoPcError;
use crate::faults::{FaultPoint, Faults};
use crate::outcome::Resolution;
use crate::phase::Phase;
use crate::twopc::TwoPc;
use std::sync::Arc;

const OLD: f64 = 31.0;

fn crashing_at(point: FaultPoint) -> Faults {
    Faults::with_hook(move |p| {
        if p == point {
            panic!("simulated router crash at {p}");
        }
    })
}

fn rows_on(fake: &Fake, row: &str) -> Vec<bool> {
    let n = fake.lock().shards.len();
    (0..n).map(|k| fake.has_row(k, row)).collect()
}

/// Commits row "x" on shards 2, 0 and 1 with a router that dies at `point`.
async fn crash_commit(fake: &Fake, point: FaultPoint) -> Arc<TwoPc> {
    let router = Arc::new(twopc_with("r1", crashing_at(point)));
    let mut w = vec![
        fake.participant(2, &["x"]),
        fake.participant(0, &["x"]),
        fake.participant(1, &["x"]),
    ];
    let task = {
        let router = router.clone();
        tokio::spawn(async move { router.commit("app", &mut w, &mut []).await })
    };
    let joined = task.await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_panic()),
        "the router did not stop at {point}: {joined:?}"
    );
    router
}

#[tokio::test]
async fn a_crash_at_any_step_is_all_or_nothing_after_one_sweep() {
    use FaultPoint::*;
    let cases = [
        (BeforePrepare, None, false),
        (AfterPrepare, None, false),
        (BeforeDecision, None, false),
        (AfterDecision, None, true),
        (AfterCoordinatorCommit, None, true),
        (BeforeCommitPrepared, None, true),
        (AfterCommitPrepared, None, true),
        (BeforeAbort, Some(2), false),
    ];
    for (point, fail_prepare_on, committed) in cases {
        let fake = Fake::new(3);
        if let Some(k) = fail_prepare_on {
            fake.inject(k, "PREPARE TRANSACTION", Inject::Error("53100"));
        }
        let router = crash_commit(&fake, point).await;
        // What the dead router's SHOW TRANSACTIONS said at the end.
        let reg = router.registry().snapshot();
        if point == BeforePrepare {
            assert!(reg.is_empty(), "{point}");
        } else {
            assert_eq!(reg.len(), 1, "{point}");
            assert_eq!(reg[0].phase, Phase::InDoubt, "{point}");
        }

        // Another instance recovers once the transaction is older than the timeout.
        fake.age(OLD);
        let other = twopc_with("r2", Faults::off());
        let r = other.sweep("app", &fake.access()).await;
        assert_eq!(r.errors, vec![], "{point}");
        assert_eq!(rows_on(&fake, "x"), vec![committed; 3], "{point}");
        assert!(fake.prepared_everywhere().is_empty(), "{point}");
        let resolved = r.committed.len() + r.rolled_back.len();
        let expected = match point {
            // Before the first round nothing was sent; after the last nothing is left.
            BeforePrepare | AfterCommitPrepared => 0,
            BeforeAbort => 1,
            _ => 2,
        };
        assert_eq!(resolved, expected, "{point}: {r:?}");

        // Later the decision rows go too.
        fake.age(1000.0);
        other.sweep("app", &fake.access()).await;
        for k in 0..3 {
            assert!(fake.decisions(k).is_empty(), "{point}: shard {k}");
        }
    }
}

#[tokio::test]
async fn a_sweeper_crash_is_finished_by_the_next_sweep() {
    let fake = Fake::new(2);
    fake.decide(0, "orochi_r1_5_c0", "commit", OLD);
    fake.shard(0, |s| s.rows.insert("y".into()));
    fake.prepare(1, "orochi_r1_5_c0_s1", &["y"], OLD);
    let crashing = Arc::new(twopc_with(
        "s1",
        crashing_at(FaultPoint::SweepAfterDecision),
    ));
    let task = {
        let crashing = crashing.clone();
        let access = fake.access();
        tokio::spawn(async move { crashing.sweep("app", &access).await })
    };
    assert!(task.await.is_err_and(|e| e.is_panic()));
    // Its lock died with its connection.
    assert_eq!(fake.shard(0, |s| s.lock_holder), None);
    assert_eq!(fake.prepared_everywhere().len(), 1);

    let r = twopc_with("s2", Faults::off())
        .sweep("app", &fake.access())
        .await;
    assert_eq!(r.committed, vec!["orochi_r1_5_c0_s1".to_string()]);
    assert_eq!(rows_on(&fake, "y"), vec![true, true]);
}

async fn in_doubt_then_recovered(inject: Inject, committed: bool) {
    let fake = Fake::new(3);
    // The coordinator's decision and COMMIT: applied or not, the answer is lost.
    fake.inject(0, "SELECT orochi.record_decision(", inject);
    let router = twopc_with("r1", Faults::off());
    let mut w = vec![
        fake.participant(0, &["z"]),
        fake.participant(1, &["z"]),
        fake.participant(2, &["z"]),
    ];
    let out = router.commit("app", &mut w, &mut []).await;
    drop(w);
    assert!(matches!(out.resolution, Resolution::InDoubt(_)), "{out:?}");
    assert_eq!(fake.prepared_everywhere().len(), 2);
    assert_eq!(router.registry().awaiting_recovery(), 1);

    fake.age(OLD);
    let r = router.sweep("app", &fake.access()).await;
    assert_eq!(r.errors, vec![]);
    assert_eq!(rows_on(&fake, "z"), vec![committed; 3]);
    assert!(fake.prepared_everywhere().is_empty());
    // Settled: gone from SHOW TRANSACTIONS.
    assert!(router.registry().snapshot().is_empty());
    let st = router.stats().snapshot();
    let recovered = if committed {
        st.recovered_commits
    } else {
        st.recovered_rollbacks
    };
    assert_eq!((st.in_doubt, recovered), (1, 2));
}

#[tokio::test]
async fn in_doubt_commit_that_happened_is_committed_by_recovery() {
    in_doubt_then_recovered(Inject::LostAfter, true).await;
}

#[tokio::test(start_paused = true)]
async fn in_doubt_commit_applied_but_unanswered_is_committed_by_recovery() {
    in_doubt_then_recovered(Inject::HangAfter, true).await;
}

#[tokio::test]
async fn in_doubt_commit_that_did_not_happen_is_rolled_back_by_recovery() {
    in_doubt_then_recovered(Inject::LostBefore, false).await;
}

#[tokio::test]
async fn a_fenced_coordinator_rolls_everything_back() {
    let fake = Fake::new(3);
    // A sweeper already decided abort for the base this router is about to use.
    fake.decide(1, "orochi_r1_100_c1", "abort", 0.0);
    let router = twopc_with("r1", Faults::off());
    let mut w = vec![fake.participant(1, &["w"]), fake.participant(2, &["w"])];
    let out = router.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::Fenced {
            base: "orochi_r1_100_c1".into()
        })
    );
    assert_eq!(rows_on(&fake, "w"), vec![false; 3]);
    assert!(fake.prepared_everywhere().is_empty());
}

#[tokio::test]
async fn a_normal_commit_leaves_nothing_for_recovery() {
    let fake = Fake::new(4);
    let router = twopc_with("r1", Faults::off());
    let mut w = vec![fake.participant(3, &["v"]), fake.participant(1, &["v"])];
    let mut r = vec![fake.participant(0, &[])];
    let out = router.commit("app", &mut w, &mut r).await;
    assert!(out.is_committed());
    assert_eq!(rows_on(&fake, "v"), vec![false, true, false, true]);
    assert!(fake.prepared_everywhere().is_empty());
    assert_eq!(
        fake.decisions(1),
        vec![("orochi_r1_100_c1".to_string(), "commit".to_string())]
    );
    fake.age(1000.0);
    let r = router.sweep("app", &fake.access()).await;
    assert_eq!((r.decisions_deleted, r.errors.len()), (1, 0));
}
