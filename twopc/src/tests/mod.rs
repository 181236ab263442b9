//! Scenario tests: the coordinator over scripted participants, the sweeper over an
//! in-memory cluster, and crash-at-every-step runs that combine both.

mod ahead;
mod cluster;
mod coordinator;
mod crash;
mod deferred;
mod scripted;
mod sweeper;

use crate::faults::Faults;
use crate::gid::GidGenerator;
use crate::twopc::{Settings, TwoPc};
use std::time::Duration;

pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

/// A coordinator with instance id `t` whose first base is `orochi_t_100_c<k>`.
pub(crate) fn twopc_with(instance: &str, faults: Faults) -> TwoPc {
    TwoPc::with_generator(
        GidGenerator::starting_at(instance, 100),
        Settings::new(instance, TIMEOUT),
        faults,
    )
}

pub(crate) fn twopc() -> TwoPc {
    twopc_with("t", Faults::off())
}

/// The router spawns these futures on a multi-thread runtime.
#[test]
fn commit_and_sweep_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let tp = twopc();
    let mut w: Vec<Box<dyn crate::Participant>> = Vec::new();
    let mut r: Vec<Box<dyn crate::Participant>> = Vec::new();
    let commit = tp.commit("app", &mut w, &mut r);
    assert_send(&commit);
    drop(commit);
    let access = cluster::Fake::new(2).access();
    let sweep = tp.sweep("app", &access);
    assert_send(&sweep);
    let access: &dyn crate::ShardAccess = &access;
    let sweep = tp.sweep("app", access);
    assert_send(&sweep);
}
