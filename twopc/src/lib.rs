//! Atomic cross-shard writes: the two-phase commit coordinator and its recovery sweeper
//! (SPEC §4).
//!
//! The decision of every two-phase transaction is a row on its coordinator shard, written
//! in the same local transaction as the coordinator's own writes; routers keep nothing on
//! disk, and any router instance can finish any other's transactions. This crate holds
//! the protocol and nothing else: it reaches shards only through the [`Participant`]
//! (commit) and [`ShardAccess`] (recovery) traits that the router implements over its
//! server connections, so every step can be tested with scripted shards.
//!
//! Entry points, all on one [`TwoPc`] per router process:
//! - [`TwoPc::commit`] — commit a client transaction over its participants;
//! - [`TwoPc::commit_deferred`] + [`TwoPc::finish`] — the same, answering the client at
//!   the commit point and finishing the COMMIT PREPAREDs off its path (`unfinished.rs`);
//! - [`TwoPc::sweep`] / [`TwoPc::run_sweeper`] — recovery, per pool;
//! - [`TwoPc::registry`] / [`TwoPc::stats`] — `SHOW TRANSACTIONS` and metrics;
//! - [`setup`] — the schema objects every shard needs, and who may write them.

pub mod ahead;
mod coordinator;
pub mod error;
pub mod faults;
pub mod gid;
pub mod outcome;
pub mod participant;
pub mod phase;
pub mod registry;
pub mod setup;
mod slot;
pub mod sql;
pub mod stats;
pub mod sweeper;
mod twopc;
mod unfinished;

#[cfg(test)]
mod tests;

pub use ahead::Ahead;
pub use error::{ParticipantError, TwoPcError};
pub use faults::{FaultPoint, Faults, FAULT_ENV};
pub use gid::{random_instance_id, GidBase, GidGenerator};
pub use outcome::{CommitOutcome, ConnState, Fate, Resolution};
pub use participant::{BoxFuture, Participant};
pub use phase::{NoObserver, Phase, PhaseObserver};
pub use registry::{Registry, TxnInfo};
pub use setup::SETUP_SQL;
pub use sql::SWEEP_LOCK_KEY;
pub use stats::{Stats, StatsSnapshot};
pub use sweeper::access::{QueryResult, ShardAccess, ShardSession};
pub use sweeper::report::SweepReport;
pub use twopc::{Settings, TwoPc};
pub use unfinished::Unfinished;
