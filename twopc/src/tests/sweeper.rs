//! The recovery sweeper over the in-memory cluster.

use super::cluster::{Fake, Inject};
use super::{twopc_with, TIMEOUT};
use crate::error::TwoPcError;
use crate::faults::Faults;
use crate::twopc::TwoPc;
use std::time::Duration;

const OLD: f64 = 31.0;
const YOUNG: f64 = 5.0;
const LOCK: &str = "SELECT pg_try_advisory_lock(8030603558299185776)";
const UNLOCK: &str = "SELECT pg_advisory_unlock(8030603558299185776)";
const LIST: &str = "SELECT gid, EXTRACT(EPOCH FROM now() - prepared)::float8 FROM pg_prepared_xacts WHERE starts_with(gid, 'orochi_') AND database = current_database()";
const OLD_DECISIONS: &str =
    "SELECT gid FROM orochi.twopc_decisions WHERE decided_at < now() - make_interval(secs => 900) LIMIT 10000";

fn sweeper() -> TwoPc {
    twopc_with("sweeper", Faults::off())
}

fn abort_insert(base: &str) -> String {
    format!("SELECT orochi.record_decision('{base}', 'abort')")
}

fn lookup(base: &str) -> String {
    format!("SELECT decision FROM orochi.twopc_decisions WHERE gid = '{base}'")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn a_commit_decision_commits_the_prepared_participants() {
    let fake = Fake::new(3);
    let base = "orochi_r1_7_c0";
    fake.decide(0, base, "commit", OLD);
    fake.prepare(1, "orochi_r1_7_c0_s1", &["a"], OLD);
    fake.prepare(2, "orochi_r1_7_c0_s2", &["a"], OLD);
    let sw = sweeper();
    let r = sw.sweep("app", &fake.access()).await;

    assert!(r.locked);
    assert_eq!(r.errors, vec![]);
    assert_eq!(r.committed, s(&["orochi_r1_7_c0_s1", "orochi_r1_7_c0_s2"]));
    assert!(r.rolled_back.is_empty() && r.in_doubt.is_empty());
    assert!(fake.has_row(1, "a") && fake.has_row(2, "a"));
    assert!(fake.prepared_everywhere().is_empty());
    assert_eq!(
        fake.log(0),
        vec![
            LOCK.to_string(),
            LIST.into(),
            abort_insert(base),
            lookup(base),
            OLD_DECISIONS.into(),
            LIST.into(),
            UNLOCK.into(),
        ]
    );
    assert_eq!(
        fake.log(1),
        s(&[
            LIST,
            "COMMIT PREPARED 'orochi_r1_7_c0_s1'",
            OLD_DECISIONS,
            LIST
        ])
    );
    // The commit decision stood; the row is younger than the retention, so it stays.
    assert_eq!(
        fake.decisions(0),
        vec![(base.to_string(), "commit".to_string())]
    );
    assert_eq!(fake.shard(0, |s| s.lock_holder), None);
    let st = sw.stats().snapshot();
    assert_eq!(
        (st.recovered_commits, st.recovered_rollbacks, st.sweeps),
        (2, 0, 1)
    );
    assert_eq!(st.prepared_pending, 0);
}

#[tokio::test]
async fn no_decision_means_abort_is_recorded_then_rolled_back() {
    let fake = Fake::new(3);
    let base = "orochi_r1_8_c1";
    fake.prepare(2, "orochi_r1_8_c1_s2", &["b"], OLD);
    let r = sweeper().sweep("app", &fake.access()).await;

    assert_eq!(r.errors, vec![]);
    assert_eq!(r.rolled_back, s(&["orochi_r1_8_c1_s2"]));
    assert!(!fake.has_row(2, "b"));
    assert!(fake.prepared_everywhere().is_empty());
    // The abort row fences a late coordinator.
    assert_eq!(
        fake.decisions(1),
        vec![(base.to_string(), "abort".to_string())]
    );
    let log1 = fake.log(1);
    let i = log1.iter().position(|q| *q == abort_insert(base)).unwrap();
    assert_eq!(log1[i + 1], lookup(base));
    assert!(fake
        .log(2)
        .contains(&"ROLLBACK PREPARED 'orochi_r1_8_c1_s2'".to_string()));
}

#[tokio::test]
async fn young_transactions_are_left_alone() {
    let fake = Fake::new(2);
    fake.prepare(1, "orochi_r1_9_c0_s1", &["c"], YOUNG);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.young, 1);
    assert!(r.committed.is_empty() && r.rolled_back.is_empty());
    assert_eq!(fake.prepared_everywhere(), s(&["orochi_r1_9_c0_s1"]));
    assert!(fake.decisions(0).is_empty());
    assert!(!fake
        .log(0)
        .iter()
        .any(|q| q.starts_with("SELECT orochi.record_decision(")));
    assert_eq!(fake.log(1), s(&[LIST, OLD_DECISIONS, LIST]));
    assert_eq!(sweeper_pending(&fake).await, 1);
}

async fn sweeper_pending(fake: &Fake) -> u64 {
    let sw = sweeper();
    sw.sweep("app", &fake.access()).await;
    sw.stats().snapshot().prepared_pending
}

#[tokio::test]
async fn one_old_participant_settles_the_whole_transaction() {
    let fake = Fake::new(3);
    fake.prepare(1, "orochi_r1_10_c0_s1", &["d"], OLD);
    fake.prepare(2, "orochi_r1_10_c0_s2", &["d"], YOUNG);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(
        r.rolled_back,
        s(&["orochi_r1_10_c0_s1", "orochi_r1_10_c0_s2"])
    );
    assert_eq!(r.young, 0);
    assert!(fake.prepared_everywhere().is_empty());
}

#[tokio::test]
async fn already_resolved_is_not_an_error() {
    let fake = Fake::new(2);
    fake.decide(0, "orochi_r1_11_c0", "commit", OLD);
    fake.prepare(1, "orochi_r1_11_c0_s1", &["e"], OLD);
    // Between our listing and our COMMIT PREPARED, its own router commits it.
    fake.inject(1, "COMMIT PREPARED", Inject::RunFirst);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.errors, vec![]);
    assert_eq!(r.already_resolved, s(&["orochi_r1_11_c0_s1"]));
    assert!(r.committed.is_empty() && r.in_doubt.is_empty());
    assert!(fake.has_row(1, "e"));
}

#[tokio::test]
async fn without_the_advisory_lock_nothing_is_done() {
    let fake = Fake::new(2);
    fake.prepare(1, "orochi_r1_12_c0_s1", &["f"], OLD);
    fake.shard(0, |s| s.lock_holder = Some(999));
    let sw = sweeper();
    let r = sw.sweep("app", &fake.access()).await;
    assert!(!r.locked);
    assert_eq!(r.errors, vec![]);
    assert_eq!(fake.log(0), s(&[LOCK]));
    assert!(fake.log(1).is_empty());
    assert_eq!(fake.prepared_everywhere(), s(&["orochi_r1_12_c0_s1"]));
    assert_eq!(sw.stats().snapshot().sweeps, 0);
    assert_eq!(fake.shard(0, |s| s.lock_holder), Some(999));
    assert_eq!(r.lock_unavailable_streak, 1);
    // Held for LOCK_MISSES_WARN sweeps in a row: the holder is looked up (and warned
    // about); taking the lock again resets the streak.
    sw.sweep("app", &fake.access()).await;
    let r = sw.sweep("app", &fake.access()).await;
    assert_eq!(r.lock_unavailable_streak, 3);
    assert!(fake
        .log(0)
        .iter()
        .any(|q| q.contains("FROM pg_catalog.pg_locks")));
    fake.shard(0, |s| s.lock_holder = None);
    let r = sw.sweep("app", &fake.access()).await;
    assert!(r.locked);
    assert_eq!(r.lock_unavailable_streak, 0);
    fake.shard(0, |s| s.lock_holder = Some(999));
    assert_eq!(
        sw.sweep("app", &fake.access())
            .await
            .lock_unavailable_streak,
        1
    );
}

#[tokio::test]
async fn decision_rows_no_shard_needs_are_deleted() {
    let fake = Fake::new(2);
    fake.decide(0, "orochi_a_1_c0", "commit", 901.0); // done: delete
    fake.decide(0, "orochi_a_2_c0", "commit", 901.0); // participant still prepared: keep
    fake.prepare(1, "orochi_a_2_c0_s1", &["g"], YOUNG);
    // Older than twice the timeout but younger than the 15-minute floor: keep, and not
    // even listed (the function would refuse to delete it anyway).
    fake.decide(0, "orochi_a_3_c0", "abort", 100.0);
    fake.decide(1, "orochi_a_4_c1", "abort", 1000.0); // done, on another shard: delete
    let r = sweeper().sweep("app", &fake.access()).await;

    assert_eq!(r.errors, vec![]);
    assert_eq!(r.decisions_deleted, 2);
    assert_eq!(
        fake.decisions(0),
        vec![
            ("orochi_a_2_c0".to_string(), "commit".to_string()),
            ("orochi_a_3_c0".into(), "abort".into())
        ]
    );
    assert!(fake.decisions(1).is_empty());
    assert!(fake.log(0).contains(
        &"SELECT orochi.forget_decisions(ARRAY['orochi_a_1_c0']::text[], 900)".to_string()
    ));
}

#[tokio::test]
async fn decision_rows_survive_while_a_shard_is_unreachable() {
    // The commit decision of a transaction whose participant sits on a shard that is down
    // must not be collected: that participant would later be rolled back.
    let fake = Fake::new(3);
    fake.decide(0, "orochi_a_1_c0", "commit", 901.0);
    fake.shard(1, |s| s.rows.insert("h".into()));
    fake.prepare(2, "orochi_a_1_c0_s2", &["h"], 61.0);
    fake.shard(2, |s| s.down = true);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert!(!r.errors.is_empty());
    assert_eq!(r.decisions_deleted, 0);
    assert!(!fake
        .log(0)
        .iter()
        .any(|q| q.starts_with("SELECT orochi.forget_decisions(")));
    assert_eq!(fake.decisions(0).len(), 1);

    fake.shard(2, |s| s.down = false);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.errors, vec![]);
    assert_eq!(r.committed, s(&["orochi_a_1_c0_s2"]));
    assert!(fake.has_row(1, "h") && fake.has_row(2, "h"));
    // Resolved before the collection step of the same sweep: now nothing needs it.
    assert_eq!(r.decisions_deleted, 1);
    assert!(fake.decisions(0).is_empty());
}

#[tokio::test]
async fn an_unreachable_coordinator_leaves_the_transaction_in_doubt() {
    let fake = Fake::new(3);
    fake.prepare(2, "orochi_a_5_c1_s2", &["i"], OLD);
    fake.shard(1, |s| s.down = true);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.in_doubt, s(&["orochi_a_5_c1_s2"]));
    assert!(matches!(
        r.errors.first(),
        Some(TwoPcError::Sweep { shard: 1, .. })
    ));
    assert_eq!(fake.prepared_everywhere(), s(&["orochi_a_5_c1_s2"]));
    assert!(!fake.log(2).iter().any(|q| q.contains("PREPARED '")));
    assert_eq!(fake.shard(0, |s| s.lock_holder), None);
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_that_never_answers_is_retried_next_time() {
    // The fencing INSERT blocks (an in-flight coordinator holds the key and hangs).
    let fake = Fake::new(2);
    fake.prepare(1, "orochi_a_6_c0_s1", &["j"], OLD);
    fake.inject(0, "SELECT orochi.record_decision(", Inject::HangBefore);
    let start = tokio::time::Instant::now();
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(start.elapsed(), TIMEOUT);
    assert_eq!(r.in_doubt, s(&["orochi_a_6_c0_s1"]));
    assert!(matches!(
        r.errors.first(),
        Some(TwoPcError::Sweep {
            shard: 0,
            step: "abort decision",
            ..
        })
    ));
    // The lock session was closed with the stuck connection, so the lock is free.
    assert_eq!(fake.shard(0, |s| s.lock_holder), None);
    assert_eq!(fake.prepared_everywhere().len(), 1);

    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.rolled_back, s(&["orochi_a_6_c0_s1"]));
}

#[tokio::test]
async fn names_that_are_not_ours_are_ignored() {
    let fake = Fake::new(2);
    fake.prepare(1, "orochi_handmade", &["k"], OLD);
    fake.prepare(1, "orochi_x_1_c0_s1'; DROP TABLE t; --", &["k"], OLD);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert_eq!(r.ignored.len(), 2);
    assert_eq!(fake.prepared_everywhere().len(), 2);
    assert!(fake.decisions(0).is_empty());
    assert!(!fake
        .log(0)
        .iter()
        .any(|q| q.starts_with("SELECT orochi.record_decision(")));
}

#[tokio::test]
async fn a_missing_decision_table_is_not_a_gc_error() {
    let fake = Fake::new(2);
    fake.shard(0, |s| s.no_table = true);
    fake.shard(1, |s| s.no_table = true);
    let r = sweeper().sweep("app", &fake.access()).await;
    assert!(r.locked);
    assert_eq!(r.errors, vec![]);
    assert!(!r.is_eventful());
}

#[tokio::test(start_paused = true)]
async fn run_sweeper_sweeps_every_interval_until_shutdown() {
    let fake = Fake::new(2);
    let sw = std::sync::Arc::new(sweeper());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let sw = sw.clone();
        let access = fake.access();
        tokio::spawn(async move {
            sw.run_sweeper("app", &access, Duration::from_secs(60), async {
                let _ = stopped.await;
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(sw.stats().snapshot().sweeps, 3); // at 0, 60 and 120 s
    stop.send(()).unwrap();
    task.await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(sw.stats().snapshot().sweeps, 3);
}
