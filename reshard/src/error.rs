//! One error type for the crate (house rule 7). Database errors keep PostgreSQL's message,
//! detail and hint, prefixed with the shard they came from: an operator reads these.

use std::fmt::Write;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad or inconsistent configuration files or arguments.
    #[error("{0}")]
    Config(String),
    /// A statement or connection failed on one shard or router.
    #[error("{0}")]
    Db(String),
    /// `plan`/`start` found a reason not to start; each line carries the reason and the fix.
    #[error("reshard refused:\n{}", .0.join("\n"))]
    Refused(Vec<String>),
    /// The recorded state does not allow the command (e.g. `cutover` before `start`).
    #[error("{0}")]
    State(String),
    /// `cutover`/`reverse` gave up and undid what it had done.
    #[error("{0}")]
    Aborted(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client error as an operator needs it: where, PostgreSQL's words, detail and hint.
pub fn db(where_: &str, e: tokio_postgres::Error) -> Error {
    Error::Db(describe(where_, &e))
}

pub fn describe(where_: &str, e: &tokio_postgres::Error) -> String {
    let mut s = format!("{where_}: ");
    match e.as_db_error() {
        Some(d) => {
            let _ = write!(s, "{} ({})", d.message(), d.code().code());
            if let Some(x) = d.detail() {
                let _ = write!(s, "; detail: {x}");
            }
            if let Some(x) = d.hint() {
                let _ = write!(s, "; hint: {x}");
            }
        }
        None => {
            let _ = write!(s, "{e}");
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                let _ = write!(s, ": {x}");
                src = x.source();
            }
        }
    }
    s
}

/// The SQLSTATE of a database error, if it is one.
pub fn code(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}
