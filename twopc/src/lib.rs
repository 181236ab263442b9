//! Two-phase commit coordinator state machine and recovery sweeper (SPEC §4).
//!
//! Not implemented yet (issue 4): the crate exists so the workspace has the layout of
//! DESIGN.md. Until it lands, the router never writes to more than one shard in one
//! statement or transaction: multi-shard pools require an explicit shard per statement.
