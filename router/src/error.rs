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
    /// TLS towards a server failed; `client_reason` is safe to tell the client (it
    /// names the kind of failure, not hosts or addresses).
    #[error("server {addr}: TLS: {reason}")]
    ServerTls {
        addr: String,
        reason: String,
        client_reason: &'static str,
    },
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
    /// A statement planned against the pool's shard map waited for RESUME, and a
    /// reshard cutover changed the map meanwhile: nothing was sent, plan it again.
    #[error("the pool's shard map changed while the statement waited for RESUME")]
    MapChanged,
}

impl From<PgError> for RouterError {
    fn from(e: PgError) -> Self {
        RouterError::Pg(e)
    }
}

impl RouterError {
    /// For a request that cannot be planned again where it failed (a retry re-sends
    /// what a server already had): `MapChanged` becomes the client's 40001, to be
    /// answered rather than passed up to a planner that is not there.
    pub fn unplannable(self) -> Self {
        match self {
            RouterError::MapChanged => match self.to_client() {
                Some(e) => RouterError::Pg(e),
                None => self,
            },
            e => e,
        }
    }

    /// What the client is told. `None` when the client is gone and nothing can be said.
    /// Server addresses and operating-system error texts stay in the router's log (the
    /// caller logs the error itself): a client learns that a server of its pool failed,
    /// not where the servers are or how the network looks from the router.
    pub fn to_client(&self) -> Option<PgError> {
        Some(match self {
            RouterError::ClientIo(_) => return None,
            RouterError::Protocol(e) => PgError::fatal("08P01", format!("protocol violation: {e}")),
            RouterError::MapChanged => PgError::error(
                "40001",
                "the pool's shard map changed (a reshard cutover) while this statement waited for RESUME; run it again",
            ),
            RouterError::ServerUnreachable { .. } => PgError::error(
                "08006",
                "a server of this pool is unreachable (the router's log says which and why)",
            ),
            RouterError::ServerTls { client_reason, .. } => PgError::error(
                "08006",
                format!("TLS towards a server of this pool failed: {client_reason} (the router's log has the details)"),
            ),
            RouterError::ServerLost { .. } => PgError::error(
                "08006",
                "lost the connection to a server of this pool (the router's log says which and why)",
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
            .with_hint("raise pool_size, shorten transactions, or raise query_wait_timeout"),
            RouterError::ServerAuth(_) => PgError::error(
                "08006",
                "the router could not log in to a server of this pool (the router's log says why)",
            ),
            RouterError::Pg(e) => e.clone(),
            RouterError::ShuttingDown => {
                PgError::fatal("57P01", "terminating connection due to administrator command")
            }
        })
    }
}

pub type Result<T, E = RouterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_learn_no_addresses_or_os_errors() {
        for e in [
            RouterError::ServerUnreachable {
                addr: "10.1.2.3:5432".into(),
                reason: "Connection refused (os error 111)".into(),
            },
            RouterError::ServerLost {
                addr: "db-7.internal:5432".into(),
                reason: "Broken pipe (os error 32)".into(),
            },
            RouterError::ServerAuth(PgError::fatal(
                "28P01",
                "password authentication failed for user \"svc\"",
            )),
        ] {
            let pg = e.to_client().unwrap();
            let text = format!("{} {:?}", pg.fields.message, pg.fields.other);
            for secret in ["10.1.2.3", "db-7", "os error", "svc", "5432"] {
                assert!(!text.contains(secret), "{text}");
            }
            assert_eq!(pg.fields.code, "08006");
        }
    }
}
