//! Server side: connections to PostgreSQL, pools of them, and the registry that maps
//! configured pools/users/shards/servers to pools, with the health checks that decide
//! which server of a shard takes writes and which take reads.

pub mod conn;
pub mod health;
pub mod pool;
pub mod registry;
pub mod server_state;

pub use conn::ServerConn;
pub use pool::{Checkout, ServerPool};
pub use registry::{Registry, UserPools};
