//! The commit with its COMMIT PREPAREDs off the client's path (`unfinished.rs`): it
//! returns at the commit point, and `finish` sends them later on the same connections.

use super::scripted::{parts, Kind, Reply, Trace};
use super::twopc;
use crate::outcome::{ConnState, Fate, Resolution};
use crate::phase::{NoObserver, Phase};

const BASE: &str = "orochi_t_100_c0";
const DECIDE: &str = "SELECT orochi.record_decision('orochi_t_100_c0', 'commit'); COMMIT";

fn prepare(k: usize) -> String {
    format!("PREPARE TRANSACTION '{BASE}_s{k}'")
}
fn commit_prepared(k: usize) -> String {
    format!("COMMIT PREPARED '{BASE}_s{k}'")
}

#[tokio::test(start_paused = true)]
async fn returns_at_the_commit_point_and_finish_commits_the_others() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w = parts(&trace, &[2, 0, 1]);
    let (out, unfinished) = tp
        .commit_deferred("app", &mut w, &mut [], &mut NoObserver)
        .await;
    assert_eq!(out.resolution, Resolution::Committed);
    let unfinished = unfinished.expect("two participants left prepared");
    assert_eq!(unfinished.shards().collect::<Vec<_>>(), vec![2, 1]);
    // Nothing after the coordinator's COMMIT has been sent yet.
    assert_eq!(w[1].log, vec![DECIDE.to_string()]);
    assert_eq!(w[0].log, vec![prepare(2)]);
    assert_eq!(w[2].log, vec![prepare(1)]);
    assert_eq!(
        out.written[0],
        Fate {
            shard: 2,
            connection: ConnState::Clean,
            pending_gid: Some(format!("{BASE}_s2")),
        }
    );
    let reg = tp.registry().snapshot();
    assert_eq!(reg[0].phase, Phase::Committing, "listed until finished");
    assert_eq!(tp.stats().snapshot().commits, 1);

    // The router hands over only the prepared participants' connections.
    let mut rest: Vec<_> = w.drain(..).filter(|p| p.shard != 0).collect();
    let fates = tp.finish(unfinished, &mut rest).await;
    assert_eq!(rest[0].log, vec![prepare(2), commit_prepared(2)]);
    assert_eq!(rest[1].log, vec![prepare(1), commit_prepared(1)]);
    assert!(fates
        .iter()
        .all(|f| f.connection == ConnState::Clean && f.pending_gid.is_none()));
    assert!(tp.registry().snapshot().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_finish_is_left_listed_for_the_sweeper() {
    let tp = twopc();
    let trace = Trace::default();
    let mut w: Vec<_> = parts(&trace, &[0, 1])
        .into_iter()
        .map(|p| {
            if p.shard == 1 {
                p.on(Kind::CommitPrepared, Reply::Lost)
            } else {
                p
            }
        })
        .collect();
    let (out, unfinished) = tp
        .commit_deferred("app", &mut w, &mut [], &mut NoObserver)
        .await;
    assert_eq!(out.resolution, Resolution::Committed);
    let mut rest: Vec<_> = w.drain(1..).collect();
    let fates = tp.finish(unfinished.unwrap(), &mut rest).await;
    assert_eq!(fates[0].connection, ConnState::Broken);
    assert_eq!(fates[0].pending_gid.as_deref(), Some("orochi_t_100_c0_s1"));
    let reg = tp.registry().snapshot();
    assert_eq!(
        (reg[0].phase, reg[0].pending.clone()),
        (Phase::Committed, vec!["orochi_t_100_c0_s1".to_string()])
    );
    assert!(reg[0].awaiting_recovery());
}

#[tokio::test(start_paused = true)]
async fn a_single_writer_or_an_abort_leaves_nothing_unfinished() {
    let tp = twopc();
    let trace = Trace::default();
    let mut one = parts(&trace, &[1]);
    let (out, u) = tp
        .commit_deferred("app", &mut one, &mut [], &mut NoObserver)
        .await;
    assert_eq!((out.resolution, u.is_none()), (Resolution::Committed, true));
    let mut w: Vec<_> = parts(&trace, &[0, 1])
        .into_iter()
        .map(|p| {
            if p.shard == 1 {
                p.on(Kind::Prepare, Reply::Error("40001"))
            } else {
                p
            }
        })
        .collect();
    let (out, u) = tp
        .commit_deferred("app", &mut w, &mut [], &mut NoObserver)
        .await;
    assert!(matches!(out.resolution, Resolution::Aborted(_)));
    assert!(u.is_none());
}
