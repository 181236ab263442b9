//! Orochi Router: a PostgreSQL wire-protocol proxy.
//!
//! Layout: the planner is a crate of its own (`orochi-planner`, named `crate::planner`
//! here: statement text to what must happen, pure and cached); `client` and `backend`
//! are the executor (sessions, pools, sockets) and `fanout` its pure merge of shard
//! answers; `app` holds shared state; `listener`, `server` and `signals` run the process;
//! `cli` is the command line.

pub mod admin_view;
pub mod admission;
pub mod alarm;
pub mod app;
pub mod backend;
pub mod cancel;
pub mod cli;
pub mod client;
pub mod clients;
pub mod config_gen;
pub mod error;
pub mod fanout;
pub mod gateway;
pub mod listener;
pub mod otel;
pub mod pool_tasks;
pub mod query_log;
pub mod reshard_follow;
pub mod reshard_map;
pub mod server;
pub mod shard_for;
pub mod signals;
pub mod spare_buffers;
pub mod statements;
pub mod twopc;
pub mod twopc_guard;
pub mod twopc_setup;

/// The planner is its own crate (`planner/`); `crate::planner` names it here.
pub use orochi_planner as planner;
