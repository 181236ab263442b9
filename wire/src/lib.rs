//! PostgreSQL v3 wire protocol: message framing, typed messages, auth helpers.
//!
//! This crate is plain data and pure functions: it never touches a socket. The router
//! owns the I/O and calls [`frame::decode_frame`] on its read buffers; messages that the
//! router only forwards stay as raw [`Frame`]s (zero-copy `Bytes`), and only the few it
//! needs to look into are decoded into [`FrontendMessage`] / [`BackendMessage`].

pub mod backend;
pub mod error;
pub mod errors;
pub mod frame;
pub mod frontend;
pub mod md5;
pub mod scram;
pub mod startup;
mod util;

pub use backend::BackendMessage;
pub use error::WireError;
pub use errors::{ErrorFields, PgError};
pub use frame::{decode_frame, peek_frame, Frame, FrameRef, MAX_MESSAGE_LEN};
pub use frontend::FrontendMessage;
pub use startup::{decode_startup, StartupRequest};
