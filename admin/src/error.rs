//! The one error type of the admin crate, and the one place that turns it into the
//! ErrorResponse an admin client sees (house rule 8).
//!
//! Actions the router performs for the console (`PAUSE`, `RELOAD`, …) report failures
//! with these variants too, so every failure gets a fitting SQLSTATE instead of a
//! generic one.

use orochi_config::ConfigErrors;
use orochi_wire::PgError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdminError {
    /// Not an admin command; carries the statement as typed.
    #[error("invalid command '{0}'")]
    UnknownCommand(String),
    /// A known command with a wrong argument (e.g. `KILL_CLIENT abc`).
    #[error("{0}")]
    BadArgument(String),
    /// `PAUSE x` / `RESUME x` / `RECONNECT x` for a database that is not configured.
    #[error("no such database: {0}")]
    NoSuchDatabase(String),
    /// The action does not fit the current state (e.g. `RESUME` when nothing is paused).
    #[error("{0}")]
    WrongState(String),
    /// `RELOAD` found an invalid configuration; the running one stays.
    #[error("configuration rejected, the running configuration is unchanged:\n{0}")]
    Config(#[from] ConfigErrors),
    /// Any other failure of an action the router performed.
    #[error("{0}")]
    Action(String),
    /// The client broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("wire: {0}")]
    Wire(#[from] orochi_wire::WireError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Registering a metric failed (duplicate name: a programming error).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl AdminError {
    /// The ErrorResponse for this error. Only client-safe text goes out.
    pub fn to_pg(&self) -> PgError {
        match self {
            AdminError::UnknownCommand(_) => PgError::error(
                "42601",
                format!("{self}; valid commands: {}", crate::command::HELP),
            ),
            AdminError::BadArgument(_) => PgError::error("42601", self.to_string()),
            AdminError::NoSuchDatabase(_) => PgError::error("3D000", self.to_string()),
            AdminError::WrongState(_) => PgError::error("55000", self.to_string()),
            AdminError::Config(errors) => {
                let detail: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                PgError::error(
                    "F0000",
                    format!(
                        "RELOAD rejected: {} configuration error(s); the running configuration is unchanged",
                        errors.len()
                    ),
                )
                .with_detail(detail.join("\n"))
            }
            AdminError::Action(_) => PgError::error("XX000", self.to_string()),
            AdminError::Protocol(_) | AdminError::Wire(_) => {
                PgError::fatal("08P01", self.to_string())
            }
            AdminError::Io(_) | AdminError::Metrics(_) => {
                PgError::error("XX000", "internal error in the admin console")
            }
        }
    }
}
