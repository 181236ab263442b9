//! Pure parts of the fan-out executor: value decoding and ordering, PostgreSQL numeric
//! arithmetic, and the merge of shard result streams. The I/O side lives in
//! `client::fanout`.

pub mod cast;
pub mod copy_rows;
pub mod merge;
pub mod numeric;
pub mod value;
