//! Orochi Router: a PostgreSQL wire-protocol proxy.
//!
//! Layout: `planner` is pure (statement text to what must happen, cached); `client` and
//! `backend` are the executor (sessions, pools, sockets); `app` holds shared state;
//! `listener`, `server` and `signals` run the process; `cli` is the command line.

pub mod admin_view;
pub mod admission;
pub mod app;
pub mod backend;
pub mod cancel;
pub mod cli;
pub mod client;
pub mod clients;
pub mod config_gen;
pub mod error;
pub mod fanout;
pub mod listener;
pub mod otel;
pub mod planner;
pub mod reshard_map;
pub mod server;
pub mod shard_for;
pub mod signals;
pub mod twopc;
pub mod twopc_setup;
