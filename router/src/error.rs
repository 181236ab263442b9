//! The router's error type, and the one place that turns an error into what a client
//! sees (severity, SQLSTATE, client-safe text). Internal details go to the log only.

use orochi_wire::{PgError, WireError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RouterError {
    #[error("protocol violation: {0}")]
    Protocol(#[from] WireError),
    #[error("client I/O: {0}")]
    ClientIo(std::io::Error),
    #[error("server {addr} unreachable: {reason}")]
    ServerUnreachable { addr: String, reason: String },
    #[error("server {addr} connection lost: {reason}")]
    ServerLost { addr: String, reason: String },
    #[error("pool {pool} for user {user} exhausted: no server connection became free within {waited_ms} ms")]
    PoolExhausted {
        pool: String,
        user: String,
        waited_ms: u128,
    },
    #[error("server rejected the router's login: {0}")]
    ServerAuth(PgError),
    /// An error to pass on to the client as is (from a server, or a refusal).
    #[error("{0}")]
    Pg(PgError),
    #[error("the router is shutting down")]
    ShuttingDown,
}

impl From<PgError> for RouterError {
    fn from(e: PgError) -> Self {
        RouterError::Pg(e)
    }
}

impl RouterError {
    /// What the client is told. `None` when the client is gone and nothing can be said.
    pub fn to_client(&self) -> Option<PgError> {
        Some(match self {
            RouterError::ClientIo(_) => return None,
            RouterError::Protocol(e) => PgError::fatal("08P01", format!("protocol violation: {e}")),
            RouterError::ServerUnreachable { addr, reason } => PgError::error(
                "08006",
                format!("server {addr} is unreachable: {reason}"),
            ),
            RouterError::ServerLost { addr, reason } => PgError::error(
                "08006",
                format!("lost the connection to server {addr}: {reason}"),
            ),
            RouterError::PoolExhausted {
                pool,
                user,
                waited_ms,
            } => PgError::error(
                "53300",
                format!(
                    "no server connection available for pool \"{pool}\" user \"{user}\" after waiting {waited_ms} ms"
                ),
            )
            .with_hint("raise pool_size, shorten transactions, or raise connect_timeout"),
            RouterError::ServerAuth(e) => PgError::error(
                "08006",
                format!("the router could not log in to the server: {}", e.fields.message),
            ),
            RouterError::Pg(e) => e.clone(),
            RouterError::ShuttingDown => {
                PgError::fatal("57P01", "terminating connection due to administrator command")
            }
        })
    }
}

pub type Result<T, E = RouterError> = std::result::Result<T, E>;
