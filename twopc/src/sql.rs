//! Every SQL statement the protocol sends, in one place.
//!
//! The router's participants and shard sessions only carry these strings to the server;
//! keeping the text here means the unit tests check exactly what PostgreSQL will run.
//! Names interpolated into SQL are our own gids (letters, digits, `_`); [`literal`] still
//! escapes quotes so that no name can ever break out of its string literal.

use std::time::Duration;

/// The schema objects of SPEC §4; idempotent, run by `orochi-router setup` and on first use.
pub const SETUP_SQL: &str = "CREATE SCHEMA IF NOT EXISTS orochi; CREATE TABLE IF NOT EXISTS orochi.twopc_decisions (gid text PRIMARY KEY, decision text NOT NULL CHECK (decision IN ('commit','abort')), decided_at timestamptz NOT NULL DEFAULT now());";

/// Key of the session advisory lock (on shard 0) that serializes recovery sweeps across
/// router instances: the ASCII bytes of `orochi2p` read as a big-endian i64.
pub const SWEEP_LOCK_KEY: i64 = i64::from_be_bytes(*b"orochi2p");

pub const COMMIT: &str = "COMMIT";
pub const ROLLBACK: &str = "ROLLBACK";

/// Our prepared transactions in this database, with their age by the server's clock (so
/// router clock skew does not matter). `starts_with` rather than `LIKE 'orochi\_%'`:
/// the same meaning without depending on `standard_conforming_strings`.
pub const LIST_PREPARED: &str = "SELECT gid, EXTRACT(EPOCH FROM now() - prepared)::float8 FROM pg_prepared_xacts WHERE starts_with(gid, 'orochi_') AND database = current_database()";

/// A single-quoted SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub fn prepare(gid: &str) -> String {
    format!("PREPARE TRANSACTION {}", literal(gid))
}

pub fn commit_prepared(gid: &str) -> String {
    format!("COMMIT PREPARED {}", literal(gid))
}

pub fn rollback_prepared(gid: &str) -> String {
    format!("ROLLBACK PREPARED {}", literal(gid))
}

/// The coordinator's decision, inside the client's own transaction (the commit point is
/// the COMMIT that follows).
pub fn insert_commit_decision(base: &str) -> String {
    format!(
        "INSERT INTO orochi.twopc_decisions VALUES ({}, 'commit')",
        literal(base)
    )
}

/// The sweeper's fence: waits for an in-flight coordinator holding the same key, and makes
/// a late coordinator's commit insert fail.
pub fn insert_abort_decision(base: &str) -> String {
    format!(
        "INSERT INTO orochi.twopc_decisions VALUES ({}, 'abort') ON CONFLICT (gid) DO NOTHING",
        literal(base)
    )
}

pub fn select_decision(base: &str) -> String {
    format!(
        "SELECT decision FROM orochi.twopc_decisions WHERE gid = {}",
        literal(base)
    )
}

pub fn try_sweep_lock() -> String {
    format!("SELECT pg_try_advisory_lock({SWEEP_LOCK_KEY})")
}

pub fn sweep_unlock() -> String {
    format!("SELECT pg_advisory_unlock({SWEEP_LOCK_KEY})")
}

fn older_than(age: Duration) -> String {
    format!(
        "decided_at < now() - make_interval(secs => {})",
        age.as_secs_f64()
    )
}

/// Decision rows old enough to be garbage-collected if no shard still holds their gids.
pub fn list_old_decisions(age: Duration) -> String {
    format!(
        "SELECT gid FROM orochi.twopc_decisions WHERE {}",
        older_than(age)
    )
}

/// Deletes the given decision rows; the age condition is repeated so a row is never
/// deleted younger than the retention, whatever happened since it was listed.
pub fn delete_decisions(bases: &[String], age: Duration) -> String {
    let list: Vec<String> = bases.iter().map(|b| literal(b)).collect();
    format!(
        "DELETE FROM orochi.twopc_decisions WHERE gid IN ({}) AND {}",
        list.join(", "),
        older_than(age)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_the_spec_text() {
        assert_eq!(
            insert_commit_decision("orochi_a_1_c0"),
            "INSERT INTO orochi.twopc_decisions VALUES ('orochi_a_1_c0', 'commit')"
        );
        assert_eq!(
            insert_abort_decision("orochi_a_1_c0"),
            "INSERT INTO orochi.twopc_decisions VALUES ('orochi_a_1_c0', 'abort') ON CONFLICT (gid) DO NOTHING"
        );
        assert_eq!(
            prepare("orochi_a_1_c0_s2"),
            "PREPARE TRANSACTION 'orochi_a_1_c0_s2'"
        );
        assert_eq!(
            try_sweep_lock(),
            "SELECT pg_try_advisory_lock(8030603558299185776)"
        );
        assert!(SETUP_SQL.contains("gid text PRIMARY KEY"));
    }

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(literal("a'b"), "'a''b'");
        assert_eq!(
            delete_decisions(&["x".into(), "y'".into()], Duration::from_secs(60)),
            "DELETE FROM orochi.twopc_decisions WHERE gid IN ('x', 'y''') AND decided_at < now() - make_interval(secs => 60)"
        );
    }
}
