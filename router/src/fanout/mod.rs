//! Pure parts of the fan-out executor: value decoding and ordering, PostgreSQL numeric
//! arithmetic, and the merge of shard result streams. The I/O side lives in
//! `client::fanout`.

pub mod copy_rows;
pub mod merge;

pub use orochi_planner::codec::{cast, numeric, value};
