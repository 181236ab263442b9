//! Configuration: TOML and environment to a validated, immutable snapshot.
//!
//! `orochi.toml` is a superset of PgCat's `pgcat.toml` (SPEC §2); `users.toml` may add
//! users; `PGDOG_*`/`TLS_*` environment variables override both. Loading either returns
//! a complete [`Config`] or [`ConfigErrors`] listing every problem with
//! `file:line:column` and the key. [`diff`] compares two snapshots for reloads.
//!
//! Keys accepted for PgCat compatibility but not acted on are listed in the `accepted`
//! module's documentation.

mod accepted;
mod bounds;
mod choices;
mod diff;
mod env;
mod error;
mod gateway;
mod general;
mod load;
mod model;
mod password;
mod pools;
mod reader;
mod routing;
mod shards;
mod source;
mod tls;
mod users;
mod users_file;
mod validate;

pub use bounds::{Bounds, TcpKeepalive};
pub use diff::{diff, ConfigDiff, PoolDiff};
pub use env::{process_env, EnvLookup};
pub use error::{ConfigError, ConfigErrors, ConfigWarning, Location};
pub use gateway::DEFAULT_PORT as DEFAULT_GATEWAY_PORT;
pub use load::{Input, Loaded};
pub use model::*;
