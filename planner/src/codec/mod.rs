//! PostgreSQL values as the merge of shard answers reads them: decoding and ordering
//! (text and binary formats), exact numeric arithmetic, and the casts the router applies
//! to merged aggregates. The planner decides which casts a statement needs; the
//! executor's merge applies them, so both use this module.

pub mod cast;
pub mod numeric;
pub mod value;
