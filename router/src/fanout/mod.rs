//! Pure parts of the fan-out executor: the merge of shard result streams and the split
//! of `COPY FROM STDIN` rows per shard. The value codecs they read and write (decoding
//! and ordering, PostgreSQL numeric, casts) live in the planner crate's `codec`, which
//! the planner also needs, and are named here as `fanout::{cast, numeric, value}`. The
//! I/O side lives in `client::fanout`.

pub mod copy_rows;
pub mod merge;

pub use orochi_planner::codec::{cast, numeric, value};
