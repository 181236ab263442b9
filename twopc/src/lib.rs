//! Two-phase commit coordinator state machine and recovery sweeper.
