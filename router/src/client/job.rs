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

impl Extended {
    /// Borrowed, to be routed again.
    pub fn args(&self) -> BindArgs<'_> {
        BindArgs {
            param_types: &self.param_types,
            param_formats: &self.param_formats,
            params: &self.params,
            result_formats: &self.result_formats,
            describe: self.describe,
        }
    }
}

/// A Bind's details as routing reads them, borrowed from the client's message: copied
/// into an [`Extended`] only when a fan-out holds the Bind back. A Bind routed to one
/// shard, the common case, goes out as it came and copies nothing (issue 16: four
/// vectors a statement on a cross-shard transfer).
#[derive(Debug, Clone, Copy)]
pub struct BindArgs<'a> {
    pub param_types: &'a [u32],
    pub param_formats: &'a [i16],
    pub params: &'a [Option<Bytes>],
    pub result_formats: &'a [i16],
    pub describe: bool,
}

impl BindArgs<'_> {
    pub fn to_extended(self) -> Extended {
        Extended {
            param_types: self.param_types.to_vec(),
            param_formats: self.param_formats.to_vec(),
            params: self.params.to_vec(),
            result_formats: self.result_formats.to_vec(),
            describe: self.describe,
        }
    }
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
