//! What a statement on a sharded pool turns into: the route the planner's answer
//! gives, and for several shards the job the fan-out executor runs. Plain data, shared
//! by the sharded path, the fan-out, the gather and COPY.

use crate::planner::sharding::Merge;
use bytes::Bytes;

/// Extended-protocol details of a fan-out (a Bind the router holds back).
#[derive(Debug, Clone)]
pub struct Extended {
    pub param_types: Vec<u32>,
    pub param_formats: Vec<i16>,
    pub params: Vec<Option<Bytes>>,
    pub result_formats: Vec<i16>,
    /// The client asked for the portal's description.
    pub describe: bool,
}

/// One statement over several shards, as the fan-out executor runs it.
pub struct Job {
    pub shards: Vec<usize>,
    /// SQL per shard (same text for all unless a multi-row INSERT was split).
    pub sql: Vec<String>,
    /// Parse parameter types per shard (a split INSERT with parameters); `None` = the
    /// client's.
    pub shard_param_types: Option<Vec<Vec<u32>>>,
    pub merge: Merge,
    pub write: bool,
    /// Run the write in a transaction per shard (not for VACUUM and the like).
    pub wrap: bool,
    /// The shards are the ones the statement's shard-key values name (not every shard
    /// for want of keys): each shard's part is bounded by the rows those keys name, so
    /// its commit may be prepared while the others still run theirs (`fanout_end.rs`).
    pub keyed: bool,
    /// A plain SELECT: the tag is `SELECT <rows sent>`.
    pub select: bool,
    /// A write of a replicated table: every shard runs it, the first shard's rows and
    /// tag answer the client (the others' are the same).
    pub replicated: bool,
    /// COPY ... FROM STDIN: split the client's rows over the shards.
    pub copy_in: Option<crate::planner::sharding::CopyIn>,
    pub extended: Option<Extended>,
    /// The statement joins the client's open transaction (see `in_tx`): it runs on the
    /// transaction's connection of each shard (a shard new to the transaction gets the
    /// transaction's BEGIN first), nothing is committed, and the connections stay with
    /// the transaction until COMMIT (two-phase over every shard written) or ROLLBACK.
    pub in_tx: bool,
    /// A plain read outside a transaction (its text): when the shards' column types
    /// turn out to be ones the merge cannot combine or order (`interval`, `money`, …),
    /// it is gathered and answered on one shard instead of refused.
    pub gather: Option<String>,
}

/// What to do with a statement on a sharded pool.
pub(crate) enum Route {
    /// Run on this shard through the ordinary path.
    Shard(usize),
    /// Answered (or refused) already.
    Done,
    /// Needs several shards: run this job.
    Fanout(Box<Job>),
}
