//! Server side: connections to PostgreSQL, pools of them, and the registry that maps
//! configured pools/users/shards/servers to pools, with the health checks that decide
//! which server of a shard takes writes and which take reads.
//!
//! From the bottom up (each uses only those below it): `params_version` (equal numbers
//! for equal server-reported parameter sets), `conn` (one server connection),
//! `server_state` (a server's role, bans and lag, shared by its pools), `pool` (the
//! connections to one server for one user; reports connect outcomes into
//! `server_state`), `health` (one checker per shard: probes, roles, lag; observes the
//! pools), `registry` (configured pools and users to pools and health, on every reload).

pub mod conn;
pub mod health;
pub mod id_hash;
pub mod in_flight;
pub mod params_version;
pub mod pool;
pub mod registry;
pub mod server_state;
pub mod sockopt;

pub use conn::{Pass, ServerConn};
pub use pool::{Checkout, ServerPool};
pub use registry::{Registry, UserPools};
