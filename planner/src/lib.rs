//! The planner: pure functions from statement text to what the executor must do.
//! No I/O here; results are cached by statement text.

pub mod cache;
pub mod codec;
pub mod directive;
pub mod lex;
pub mod rw;
pub mod session;
pub mod sharding;

pub use session::{analyze, Analysis, SessionOp};
