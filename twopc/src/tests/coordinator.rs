//! The coordinator at every failure point, over scripted participants. Each test checks
//! the exact statements every shard received, the outcome, the connections' fates, the
//! registry and the counters.

use super::scripted::{parts, Kind, Reply, Scripted, Trace};
use super::{twopc, TIMEOUT};
use crate::error::TwoPcError;
use crate::outcome::{ConnState, Fate, Resolution};
use crate::phase::Phase;
use std::sync::Arc;
use std::time::Duration;

const BASE: &str = "orochi_t_100_c0";
const DECIDE: &str = "SELECT orochi.record_decision('orochi_t_100_c0', 'commit'); COMMIT";

fn prepare(k: usize) -> String {
    format!("PREPARE TRANSACTION '{BASE}_s{k}'")
}
fn commit_prepared(k: usize) -> String {
    format!("COMMIT PREPARED '{BASE}_s{k}'")
}
fn rollback_prepared(k: usize) -> String {
    format!("ROLLBACK PREPARED '{BASE}_s{k}'")
}

fn clean(shard: usize) -> Fate {
    Fate {
        shard,
        connection: ConnState::Clean,
        pending_gid: None,
    }
}

fn fate(shard: usize, connection: ConnState, pending: bool) -> Fate {
    Fate {
        shard,
        connection,
        pending_gid: pending.then(|| format!("{BASE}_s{shard}")),
    }
}

/// Shards 2, 0, 1 written (deliberately unordered: the coordinator is shard 0, the
/// lowest), with `tweak` applied to the participant of `shard`.
fn three_writers(trace: &Trace, shard: usize, kind: Kind, reply: Reply) -> Vec<Scripted> {
    parts(trace, &[2, 0, 1])
        .into_iter()
        .map(|p| {
            if p.shard == shard {
                p.on(kind, reply.clone())
            } else {
                p
            }
        })
        .collect()
}

fn logs(w: &[Scripted]) -> Vec<(usize, Vec<String>)> {
    let mut v: Vec<_> = w.iter().map(|p| (p.shard, p.log.clone())).collect();
    v.sort();
    v
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn happy_path_prepares_decides_then_commits_prepared() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[2, 0, 1]);
    let mut r = parts(&trace, &[3]);
    let out = tp.commit("app", &mut w, &mut r).await;

    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(out.gid.as_deref(), Some(BASE));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE])),
            (1, vec![prepare(1), commit_prepared(1)]),
            (2, vec![prepare(2), commit_prepared(2)]),
        ]
    );
    assert_eq!(r[0].log, s(&["COMMIT"]));
    // Order across shards: every vote (the readers' COMMITs too) before the decision,
    // which carries the commit point, and that before any COMMIT PREPARED.
    let t: Vec<String> = trace
        .lock()
        .unwrap()
        .iter()
        .map(|(_, q)| q.clone())
        .collect();
    let pos = |q: &str| t.iter().position(|x| x == q).unwrap();
    let decide = pos(DECIDE);
    assert!(pos(&prepare(1)) < decide && pos(&prepare(2)) < decide && pos("COMMIT") < decide);
    assert!(decide < pos(&commit_prepared(1)) && decide < pos(&commit_prepared(2)));

    assert_eq!(out.written, vec![clean(2), clean(0), clean(1)]);
    assert_eq!(out.read_only, vec![clean(3)]);
    assert!(out.needs_recovery().is_empty());
    let st = tp.stats().snapshot();
    assert_eq!((st.commits, st.rollbacks, st.in_doubt), (1, 0, 0));
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn prepares_and_commit_prepared_run_in_parallel() {
    let tp = twopc();
    let trace = Trace::default();
    let d = Duration::from_secs(10);
    let mut w: Vec<Scripted> = parts(&trace, &[0, 1, 2, 3])
        .into_iter()
        .map(|p| {
            p.on(Kind::Prepare, Reply::Delay(d))
                .on(Kind::CommitPrepared, Reply::Delay(d))
        })
        .collect();
    let start = tokio::time::Instant::now();
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(out.is_committed());
    // Three prepares and three COMMIT PREPARED of 10 s each: 20 s in parallel, not 60 s.
    assert_eq!(start.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_failed_prepare_rolls_back_everywhere_and_returns_the_shard_error() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 2, Kind::Prepare, Reply::Error("53100"));
    let mut r = parts(&trace, &[3]);
    let out = tp.commit("app", &mut w, &mut r).await;

    let Resolution::Aborted(e) = &out.resolution else {
        panic!("{out:?}")
    };
    assert_eq!(e.sqlstate(), "53100");
    assert_eq!(e.shard(), Some(2));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2), "ROLLBACK".into()]),
        ]
    );
    // The reader voted (committed) in parallel with the prepares.
    assert_eq!(r[0].log, s(&["COMMIT"]));
    assert_eq!(out.written, vec![clean(2), clean(0), clean(1)]);
    let st = tp.stats().snapshot();
    assert_eq!((st.commits, st.rollbacks), (0, 1));
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_prepare_timeout_aborts_and_leaves_the_maybe_prepared_gid_to_recovery() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 1, Kind::Prepare, Reply::Hang);
    let start = tokio::time::Instant::now();
    let out = tp.commit("app", &mut w, &mut []).await;

    assert_eq!(start.elapsed(), TIMEOUT);
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::Timeout {
            shard: 1,
            step: "PREPARE TRANSACTION",
            timeout: TIMEOUT
        })
    );
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("08006"));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1)]), // nothing more on an unusable connection
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
    assert_eq!(
        out.written,
        vec![clean(2), clean(0), fate(1, ConnState::Broken, true)]
    );
    assert_eq!(out.needs_recovery(), vec![(1, "orochi_t_100_c0_s1")]);
    // Listed for SHOW TRANSACTIONS until a sweep finds it gone.
    let reg = tp.registry().snapshot();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].phase, Phase::Aborted);
    assert_eq!(reg[0].pending, s(&["orochi_t_100_c0_s1"]));
    assert_eq!(tp.registry().awaiting_recovery(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_connection_lost_during_prepare_aborts() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 2, Kind::Prepare, Reply::Lost);
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::ConnectionLost { shard: 2, .. })
    ));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2)]),
        ]
    );
    assert_eq!(out.written[0], fate(2, ConnState::Broken, true));
}

#[tokio::test(start_paused = true)]
async fn prepare_answering_rollback_means_the_transaction_had_failed() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 1, Kind::Prepare, Reply::Tag("ROLLBACK"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::AlreadyAborted {
            shard: 1,
            step: "PREPARE TRANSACTION",
            tag: "ROLLBACK".into()
        })
    );
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1)]),
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
    assert!(out.written.iter().all(|f| f.connection == ConnState::Clean));
}

#[tokio::test(start_paused = true)]
async fn a_failing_reader_vote_aborts_the_writes() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[0, 1]);
    let mut r = vec![Scripted::new(2, &trace).on(Kind::Commit, Reply::Error("40001"))];
    let out = tp.commit("app", &mut w, &mut r).await;
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("40001"));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)])
        ]
    );
    assert_eq!(r[0].log, s(&["COMMIT", "ROLLBACK"]));
}

#[tokio::test(start_paused = true)]
async fn decision_conflict_means_fenced_by_the_sweeper() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 0, Kind::Decide, Reply::Error("23505"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::Fenced { base: BASE.into() })
    );
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("40001"));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE, "ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
    assert!(out.needs_recovery().is_empty());
}

#[tokio::test(start_paused = true)]
async fn rollback_prepared_finding_nothing_is_fine() {
    // Fenced, and by the time we roll back, the sweeper already did it (42704).
    let tp = twopc();
    let trace = Trace::default();
    let mut w: Vec<Scripted> = three_writers(&trace, 0, Kind::Decide, Reply::Error("23505"))
        .into_iter()
        .map(|p| p.on(Kind::RollbackPrepared, Reply::Error("42704")))
        .collect();
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::Fenced { .. })
    ));
    assert!(out.written.iter().all(|f| *f == clean(f.shard)));
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_decision_insert_errors_abort_with_the_shard_error() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 0, Kind::Decide, Reply::Error("42P01"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.error().map(|e| (e.sqlstate(), e.shard())),
        Some(("42P01", Some(0)))
    );
    assert_eq!(logs(&w)[0], (0, s(&[DECIDE, "ROLLBACK"])));
}

#[tokio::test(start_paused = true)]
async fn coordinator_commit_error_rolls_back_the_others() {
    let tp = twopc();
    let trace = Trace::default();
    // e.g. a deferred foreign key checked at COMMIT.
    let mut w = three_writers(&trace, 0, Kind::Decide, Reply::Error("23503"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.error().map(|e| (e.sqlstate(), e.shard())),
        Some(("23503", Some(0)))
    );
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE, "ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
    assert!(out.written.iter().all(|f| *f == clean(f.shard)));
    assert_eq!(tp.stats().snapshot().rollbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn coordinator_commit_answering_rollback_is_an_abort() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 0, Kind::Decide, Reply::Tag("ROLLBACK"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::AlreadyAborted { shard: 0, .. })
    ));
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
}

async fn in_doubt_case(reply: Reply) {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 0, Kind::Decide, reply);
    let out = tp.commit("app", &mut w, &mut []).await;

    let Resolution::InDoubt(e) = &out.resolution else {
        panic!("{out:?}")
    };
    assert_eq!(e.sqlstate(), "08007");
    assert!(e.to_string().contains("unknown"), "{e}");
    // Nothing is rolled back: the decision row alone knows.
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE])),
            (1, vec![prepare(1)]),
            (2, vec![prepare(2)]),
        ]
    );
    assert_eq!(
        out.written,
        vec![
            fate(2, ConnState::Clean, true),
            fate(0, ConnState::Broken, false),
            fate(1, ConnState::Clean, true)
        ]
    );
    let reg = tp.registry().snapshot();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].phase, Phase::InDoubt);
    assert_eq!(reg[0].gid, BASE);
    assert_eq!(reg[0].shards, vec![0, 1, 2]);
    assert_eq!(
        reg[0].pending,
        s(&["orochi_t_100_c0_s2", "orochi_t_100_c0_s1"])
    );
    let st = tp.stats().snapshot();
    assert_eq!((st.commits, st.rollbacks, st.in_doubt), (0, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn coordinator_connection_lost_after_commit_sent_is_in_doubt() {
    in_doubt_case(Reply::Lost).await;
}

#[tokio::test(start_paused = true)]
async fn coordinator_commit_timeout_is_in_doubt() {
    in_doubt_case(Reply::Hang).await;
}

#[tokio::test(start_paused = true)]
async fn commit_prepared_failure_after_the_commit_point_still_commits() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 2, Kind::CommitPrepared, Reply::Error("XX000"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&[DECIDE])),
            (1, vec![prepare(1), commit_prepared(1)]),
            (2, vec![prepare(2), commit_prepared(2)]),
        ]
    );
    // The connection is fine; the gid is still prepared for the sweeper.
    assert_eq!(out.written[0], fate(2, ConnState::Clean, true));
    assert_eq!(out.needs_recovery(), vec![(2, "orochi_t_100_c0_s2")]);
    let reg = tp.registry().snapshot();
    assert_eq!(
        (reg[0].phase, reg[0].pending.clone()),
        (Phase::Committed, s(&["orochi_t_100_c0_s2"]))
    );
    assert_eq!(tp.stats().snapshot().commits, 1);
}

#[tokio::test(start_paused = true)]
async fn commit_prepared_timeout_still_commits() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 1, Kind::CommitPrepared, Reply::Hang);
    let start = tokio::time::Instant::now();
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(start.elapsed(), TIMEOUT);
    assert_eq!(out.written[2], fate(1, ConnState::Broken, true));
    assert_eq!(out.written[0], clean(2));
}

#[tokio::test(start_paused = true)]
async fn commit_prepared_connection_lost_still_commits() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 2, Kind::CommitPrepared, Reply::Lost);
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(out.written[0], fate(2, ConnState::Broken, true));
}

#[tokio::test(start_paused = true)]
async fn commit_prepared_finding_nothing_means_the_sweeper_did_it() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 2, Kind::CommitPrepared, Reply::Error("42704"));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert!(out.needs_recovery().is_empty());
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_rollback_prepared_is_left_to_recovery() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w: Vec<Scripted> = three_writers(&trace, 2, Kind::Prepare, Reply::Error("53100"))
        .into_iter()
        .map(|p| {
            if p.shard == 1 {
                p.on(Kind::RollbackPrepared, Reply::Lost)
            } else {
                p
            }
        })
        .collect();
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("53100"));
    assert_eq!(out.written[2], fate(1, ConnState::Broken, true));
    assert_eq!(tp.registry().awaiting_recovery(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_decision_row_costs_no_round_trip_of_its_own() {
    // Every statement takes 100 ms. The decision goes out with the coordinator's COMMIT,
    // so the commit is two such waits (the prepares, then the decision with the commit
    // point), not three, and the coordinator gets one message (the clock is paused, so
    // the times are exact).
    let tp = twopc();
    let trace = Trace::default();
    let slow = Reply::Delay(Duration::from_millis(100));
    let mut w: Vec<Scripted> = parts(&trace, &[2, 0, 1])
        .into_iter()
        .map(|p| {
            p.on(Kind::Prepare, slow.clone())
                .on(Kind::Decide, slow.clone())
                .on(Kind::CommitPrepared, slow.clone())
        })
        .collect();
    let started = tokio::time::Instant::now();
    let (out, _unfinished) = tp
        .commit_deferred("app", &mut w, &mut [], &mut crate::phase::NoObserver)
        .await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(logs(&w)[0], (0, s(&[DECIDE])));
}

#[tokio::test(start_paused = true)]
async fn deadline_passed_before_the_decision_aborts() {
    // The prepares answer exactly at the deadline: too late to commit the decision row
    // (a sweeper may already consider the transaction abandoned).
    let tp = twopc();
    let trace = Trace::default();
    let mut w = three_writers(&trace, 1, Kind::Prepare, Reply::Delay(TIMEOUT));
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::DeadlineExceeded {
            base: BASE.into(),
            timeout: TIMEOUT
        })
    );
    assert_eq!(
        logs(&w),
        vec![
            (0, s(&["ROLLBACK"])),
            (1, vec![prepare(1), rollback_prepared(1)]),
            (2, vec![prepare(2), rollback_prepared(2)]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn one_written_shard_is_a_plain_commit_after_the_readers() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[3]);
    let mut r = parts(&trace, &[0, 1]);
    let out = tp.commit("app", &mut w, &mut r).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(out.gid, None);
    assert_eq!(w[0].log, s(&["COMMIT"]));
    assert_eq!(r[0].log, s(&["COMMIT"]));
    assert_eq!(r[1].log, s(&["COMMIT"]));
    assert_eq!(trace.lock().unwrap().last().map(|(k, _)| *k), Some(3));
    // Not a two-phase commit: no counters, no registry entry.
    assert_eq!(tp.stats().snapshot().commits, 0);
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn one_written_shard_commit_error_is_returned() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = vec![Scripted::new(1, &trace).on(Kind::Commit, Reply::Error("40001"))];
    let out = tp.commit("app", &mut w, &mut []).await;
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("40001"));
    assert_eq!(w[0].log, s(&["COMMIT", "ROLLBACK"]));
    assert_eq!(out.written, vec![clean(1)]);
}

#[tokio::test(start_paused = true)]
async fn one_written_shard_with_a_failing_reader_rolls_back_the_writer() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[1]);
    let mut r = vec![Scripted::new(0, &trace).on(Kind::Commit, Reply::Lost)];
    let out = tp.commit("app", &mut w, &mut r).await;
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::ConnectionLost { shard: 0, .. })
    ));
    assert_eq!(w[0].log, s(&["ROLLBACK"]));
    assert_eq!(r[0].log, s(&["COMMIT"]));
    assert_eq!(out.read_only, vec![fate(0, ConnState::Broken, false)]);
}

#[tokio::test(start_paused = true)]
async fn one_written_shard_commit_unanswered_is_in_doubt() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = vec![Scripted::new(1, &trace).on(Kind::Commit, Reply::Lost)];
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(matches!(
        out.resolution,
        Resolution::InDoubt(TwoPcError::OutcomeUnknown {
            base: None,
            shard: 1,
            ..
        })
    ));
    assert_eq!(w[0].log, s(&["COMMIT"]));
    assert!(out.needs_recovery().is_empty());
}

#[tokio::test(start_paused = true)]
async fn read_only_participants_just_commit() {
    let tp = twopc();
    let trace = Trace::default();
    let mut r = parts(&trace, &[0, 1, 2]);
    let out = tp.commit("app", &mut [] as &mut [Scripted], &mut r).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(out.gid, None);
    assert!(r.iter().all(|p| p.log == s(&["COMMIT"])));
    assert_eq!(out.read_only, vec![clean(0), clean(1), clean(2)]);
}

#[tokio::test(start_paused = true)]
async fn duplicate_shards_are_refused_and_rolled_back() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[0, 1]);
    let mut r = parts(&trace, &[1]);
    let out = tp.commit("app", &mut w, &mut r).await;
    assert_eq!(
        out.resolution,
        Resolution::Aborted(TwoPcError::DuplicateShard(1))
    );
    assert!(w.iter().chain(&r).all(|p| p.log == s(&["ROLLBACK"])));
}

#[tokio::test(start_paused = true)]
async fn dyn_participants_work_too() {
    use crate::participant::Participant;
    let tp = twopc();
    let trace = Trace::default();
    let mut w: Vec<Box<dyn Participant>> = parts(&trace, &[4, 5])
        .into_iter()
        .map(|p| Box::new(p) as Box<dyn Participant>)
        .collect();
    let out = tp.commit("app", &mut w, &mut []).await;
    assert!(out.is_committed());
    assert_eq!(out.gid.as_deref(), Some("orochi_t_100_c4"));
    let t = trace.lock().unwrap().clone();
    assert_eq!(
        t,
        vec![
            (5, "PREPARE TRANSACTION 'orochi_t_100_c4_s5'".into()),
            (
                4,
                "SELECT orochi.record_decision('orochi_t_100_c4', 'commit'); COMMIT".into()
            ),
            (5, "COMMIT PREPARED 'orochi_t_100_c4_s5'".into()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn registry_shows_the_phase_while_in_flight() {
    let tp = Arc::new(twopc());
    let trace = Trace::default();
    let mut w = three_writers(
        &trace,
        1,
        Kind::Prepare,
        Reply::Delay(Duration::from_secs(5)),
    );
    let task = {
        let tp = tp.clone();
        tokio::spawn(async move { tp.commit("app", &mut w, &mut []).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reg = tp.registry().snapshot();
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].phase, Phase::Preparing);
    assert_eq!((reg[0].pool.as_str(), reg[0].gid.as_str()), ("app", BASE));
    assert_eq!(reg[0].age(), Duration::from_secs(2));
    assert_eq!(tp.registry().in_flight(), 1);
    let out = task.await.unwrap();
    assert!(out.is_committed());
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn successive_transactions_get_successive_gids() {
    let tp = twopc();
    let trace = Trace::default();
    let mut a = parts(&trace, &[1, 2]);
    let mut b = parts(&trace, &[0, 2]);
    let ga = tp.commit("app", &mut a, &mut []).await.gid;
    let gb = tp.commit("app", &mut b, &mut []).await.gid;
    assert_eq!(ga.as_deref(), Some("orochi_t_100_c1"));
    assert_eq!(gb.as_deref(), Some("orochi_t_101_c0"));
}
