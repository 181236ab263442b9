//! PREPAREs pipelined by the caller (`ahead.rs`): the coordinator sends no PREPARE of
//! its own, commits on the answers it is given, and rolls back on any other answer.

use super::scripted::{parts, Trace};
use super::twopc;
use crate::error::{ParticipantError, TwoPcError};
use crate::outcome::{ConnState, Fate, Resolution};
use crate::phase::NoObserver;

const BASE: &str = "orochi_t_100_c0";
const DECIDE: &str = "SELECT orochi.record_decision('orochi_t_100_c0', 'commit'); COMMIT";

fn gid(k: usize) -> String {
    format!("{BASE}_s{k}")
}

fn prepared() -> Result<String, ParticipantError> {
    Ok("PREPARE TRANSACTION".into())
}

#[tokio::test(start_paused = true)]
async fn answered_prepares_leave_only_the_decision_on_the_client_path() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[2, 0, 1]);
    let mut ahead = tp.ahead(&[2, 0, 1]).expect("three shards");
    assert_eq!(ahead.base().to_string(), BASE);
    assert_eq!(
        ahead.prepare_sql(0),
        None,
        "the coordinator commits instead"
    );
    assert_eq!(
        ahead.prepare_sql(1),
        Some(format!("PREPARE TRANSACTION '{}'", gid(1)))
    );
    ahead.answer(1, prepared());
    ahead.answer(2, prepared());
    assert_eq!(ahead.prepared_gid(2), Some(gid(2)));
    let (out, unfinished) = tp.commit_ahead("app", &mut w, ahead, &mut NoObserver).await;
    assert_eq!(out.resolution, Resolution::Committed);
    assert_eq!(out.gid.as_deref(), Some(BASE));
    // Nothing was sent but the decision: the PREPAREs went with the statement.
    assert_eq!(trace.lock().unwrap().clone(), vec![(0, DECIDE.to_string())]);
    let unfinished = unfinished.expect("the COMMIT PREPAREDs are owed");
    assert_eq!(unfinished.shards().collect::<Vec<_>>(), vec![2, 1]);
    let (w2, rest) = w.split_first_mut().unwrap();
    let fates = tp.finish(unfinished, &mut [w2, &mut rest[1]]).await;
    assert!(fates
        .iter()
        .all(|f| f.connection == ConnState::Clean && f.pending_gid.is_none()));
    assert_eq!(w[0].log, vec![format!("COMMIT PREPARED '{}'", gid(2))]);
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_prepare_answered_rollback_rolls_the_others_back() {
    // The statement failed on shard 1: PostgreSQL answered its PREPARE with ROLLBACK.
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[2, 0, 1]);
    let mut ahead = tp.ahead(&[0, 1, 2]).unwrap();
    ahead.answer(1, Ok("ROLLBACK".into()));
    ahead.answer(2, prepared());
    assert_eq!(ahead.prepared_gid(1), None);
    let (out, unfinished) = tp.commit_ahead("app", &mut w, ahead, &mut NoObserver).await;
    assert!(unfinished.is_none());
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::AlreadyAborted { shard: 1, .. })
    ));
    assert_eq!(w[0].log, vec![format!("ROLLBACK PREPARED '{}'", gid(2))]);
    assert_eq!(w[1].log, vec!["ROLLBACK".to_string()]);
    assert!(w[2].log.is_empty());
    assert!(out.needs_recovery().is_empty());
    assert_eq!(tp.stats().snapshot().rollbacks, 1);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_prepare_is_left_to_recovery_and_nothing_commits() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[0, 1, 2]);
    let mut ahead = tp.ahead(&[0, 1, 2]).unwrap();
    ahead.answer(1, prepared());
    ahead.answer(
        2,
        Err(ParticipantError::server("40P01", "deadlock detected")),
    );
    let (out, _) = tp.commit_ahead("app", &mut w, ahead, &mut NoObserver).await;
    assert_eq!(out.error().map(|e| e.sqlstate()), Some("40P01"));
    assert_eq!(w[0].log, vec!["ROLLBACK".to_string()]);
    assert_eq!(w[1].log, vec![format!("ROLLBACK PREPARED '{}'", gid(1))]);
    assert_eq!(w[2].log, vec!["ROLLBACK".to_string()]);

    // A PREPARE that was pipelined but never answered may exist: recovery's.
    let trace = Trace::default();
    let mut w = parts(&trace, &[0, 1, 2]);
    let mut ahead = tp.ahead(&[0, 1, 2]).unwrap();
    let lost = format!("{}_s2", ahead.base());
    ahead.answer(1, prepared());
    let (out, _) = tp.commit_ahead("app", &mut w, ahead, &mut NoObserver).await;
    assert!(matches!(
        out.resolution,
        Resolution::Aborted(TwoPcError::ConnectionLost { shard: 2, .. })
    ));
    assert_eq!(
        out.written[2],
        Fate {
            shard: 2,
            connection: ConnState::Broken,
            pending_gid: Some(lost),
        }
    );
    assert!(trace
        .lock()
        .unwrap()
        .iter()
        .all(|(_, q)| !q.contains("COMMIT;") && !q.starts_with("SELECT")));
}

#[test]
fn a_single_shard_needs_no_two_phase_commit() {
    let tp = twopc();
    assert!(tp.ahead(&[]).is_none());
    assert!(tp.ahead(&[3]).is_none());
    assert!(tp.ahead(&[3, 3]).is_none());
}
