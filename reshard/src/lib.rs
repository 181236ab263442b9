//! Online resharding (SPEC §10): `orochi-router reshard plan|start|status|verify|cutover|
//! reverse|complete|cancel`.
//!
//! Rows move from the N current shards to M new databases by PostgreSQL's own logical
//! replication (snapshot copy, then streaming), filtered on the publisher by the same
//! hash the routers use (`satisfies_hash_partition`, see [`sql::row_filter`]). Nothing of
//! a reshard lives on the machine that runs this tool: its state is a row of
//! `orochi.reshard` on every current and new shard, and every object it creates has a
//! deterministic name (`orochi_rs_<id>_<old>_<new>`), so any command can be killed and
//! rerun from anywhere and goes on where it stopped.
//!
//! This crate never imports the router: it talks to the routers only through their admin
//! consoles (`PAUSE`, `RESHARD SWITCH`, `RESUME`), as an operator's psql would.

pub mod catalog;
pub mod checks;
pub mod cleanup;
pub mod cli;
pub mod conn;
pub mod cutover;
pub mod error;
pub mod fleet;
pub mod follow;
pub mod names;
pub mod plan;
pub mod progress;
pub mod quote;
pub mod recover;
pub mod repl;
pub mod routers;
pub mod slot_wait;
pub mod sql;
pub mod start;
pub mod state;
pub mod status;
pub mod topology;
pub mod verify;

pub use cli::{main, Args};
pub use error::{Error, Result};
