//! Client side: the handshake (startup and authentication) and the per-client session
//! task that pools server connections under it.

pub mod cleanup;
pub mod copy_in;
pub mod deadline;
pub mod expect;
pub mod expiry;
pub mod extended;
pub mod fanout;
pub mod fanout_end;
pub mod gateway_checks;
pub mod gather;
pub mod job;
pub mod multi_shard;
pub mod params;
pub mod pause_gate;
pub mod phase;
pub mod relay;
pub mod reply;
pub mod reported;
pub mod retry;
pub mod retry_ext;
pub mod retry_state;
pub mod session;
pub mod session_ops;
pub mod shard_identity;
pub mod shard_stream;
pub mod shard_switch;
pub mod sharded;
pub mod sharded_path;
pub mod sharded_tx;
pub mod split_insert;
pub mod startup;
pub mod statement_log;
pub mod tags;
pub mod trace;
