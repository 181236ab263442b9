//! Every SQL statement the protocol sends, in one place.
//!
//! The router's participants and shard sessions only carry these strings to the server;
//! keeping the text here means the unit tests check exactly what PostgreSQL will run.
//! Names interpolated into SQL are our own gids (letters, digits, `_`); [`literal`] still
//! escapes quotes so that no name can ever break out of its string literal.

use std::time::Duration;

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
    around("", s, "")
}

/// `head`, `s` as a single-quoted literal, `tail`: built in one allocation, as the
/// commit path formats three of these per transaction (issue 16).
fn around(head: &str, s: &str, tail: &str) -> String {
    let mut out = String::with_capacity(head.len() + s.len() + tail.len() + 2);
    out.push_str(head);
    out.push('\'');
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
    out.push_str(tail);
    out
}

pub fn prepare(gid: &str) -> String {
    around("PREPARE TRANSACTION ", gid, "")
}

pub fn commit_prepared(gid: &str) -> String {
    around("COMMIT PREPARED ", gid, "")
}

pub fn rollback_prepared(gid: &str) -> String {
    around("ROLLBACK PREPARED ", gid, "")
}

/// The coordinator's decision, inside the client's own transaction (the commit point is
/// the COMMIT that follows).
pub fn insert_commit_decision(base: &str) -> String {
    around("SELECT orochi.record_decision(", base, ", 'commit')")
}

/// The coordinator's decision and its commit point in one message (SPEC §4 step 3), sent
/// once every other participant has prepared. Should the INSERT fail (a sweeper fenced
/// this transaction with `abort`), PostgreSQL runs nothing after the error in a query
/// string: the COMMIT is skipped and the transaction stays open and failed, to be rolled
/// back. One message saves the coordinator's backend a round trip of its own.
pub fn decide_and_commit(base: &str) -> String {
    around(
        "SELECT orochi.record_decision(",
        base,
        ", 'commit'); COMMIT",
    )
}

/// The sweeper's fence: waits for an in-flight coordinator holding the same key, and makes
/// a late coordinator's commit insert fail. Answers `t` when this call decided.
pub fn insert_abort_decision(base: &str) -> String {
    format!("SELECT orochi.record_decision({}, 'abort')", literal(base))
}

/// The SPEC's plain INSERT, for a shard set up by an older router (no
/// `orochi.record_decision` there yet: 42883).
pub fn insert_abort_decision_legacy(base: &str) -> String {
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

/// At most this many decision rows are listed for collection per shard and sweep: a
/// backlog (a sweeper that was off, a burst of cross-shard commits) drains over several
/// sweeps instead of loading every gid into the router's memory at once.
pub const GC_BATCH: usize = 10_000;

/// Decision rows old enough to be garbage-collected if no shard still holds their gids.
pub fn list_old_decisions(age: Duration) -> String {
    format!(
        "SELECT gid FROM orochi.twopc_decisions WHERE {} LIMIT {GC_BATCH}",
        older_than(age)
    )
}

/// Deletes the given decision rows; the age condition is repeated (and floored by the
/// function, see [`crate::setup::FORGET_FLOOR_SECS`]) so a row is never deleted younger
/// than the retention, whatever happened since it was listed. Answers the count.
pub fn delete_decisions(bases: &[String], age: Duration) -> String {
    let list: Vec<String> = bases.iter().map(|b| literal(b)).collect();
    format!(
        "SELECT orochi.forget_decisions(ARRAY[{}]::text[], {})",
        list.join(", "),
        age.as_secs_f64()
    )
}

/// The plain DELETE, for a shard set up by an older router (42883 on the function).
pub fn delete_decisions_legacy(bases: &[String], age: Duration) -> String {
    let list: Vec<String> = bases.iter().map(|b| literal(b)).collect();
    format!(
        "DELETE FROM orochi.twopc_decisions WHERE gid IN ({}) AND {}",
        list.join(", "),
        older_than(age)
    )
}

/// Who holds the sweeper's lock in this database: pid, user, application name, client
/// address (a bigint advisory key is stored as classid = high half, objid = low half).
pub fn sweep_lock_holder() -> String {
    let key = SWEEP_LOCK_KEY as u64;
    format!(
        "SELECT a.pid::text, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local') FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {} AND l.objid = {} AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())",
        key >> 32,
        key & 0xffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_the_spec_text() {
        assert_eq!(
            insert_commit_decision("orochi_a_1_c0"),
            "SELECT orochi.record_decision('orochi_a_1_c0', 'commit')"
        );
        assert_eq!(
            insert_abort_decision("orochi_a_1_c0"),
            "SELECT orochi.record_decision('orochi_a_1_c0', 'abort')"
        );
        assert_eq!(
            prepare("orochi_a_1_c0_s2"),
            "PREPARE TRANSACTION 'orochi_a_1_c0_s2'"
        );
        assert_eq!(
            decide_and_commit("orochi_a_1_c0"),
            "SELECT orochi.record_decision('orochi_a_1_c0', 'commit'); COMMIT"
        );
        assert_eq!(commit_prepared("g_s1"), "COMMIT PREPARED 'g_s1'");
        assert_eq!(rollback_prepared("g_s1"), "ROLLBACK PREPARED 'g_s1'");
        assert_eq!(
            try_sweep_lock(),
            "SELECT pg_try_advisory_lock(8030603558299185776)"
        );
    }

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(literal("a'b"), "'a''b'");
        assert_eq!(literal("'"), "''''");
        assert_eq!(literal(""), "''");
        assert_eq!(
            prepare("x'; COMMIT; --"),
            "PREPARE TRANSACTION 'x''; COMMIT; --'"
        );
        assert_eq!(
            delete_decisions(&["x".into(), "y'".into()], Duration::from_secs(60)),
            "SELECT orochi.forget_decisions(ARRAY['x', 'y''']::text[], 60)"
        );
        assert!(sweep_lock_holder().contains("l.classid = 1869770595 AND l.objid = 1751724656"));
    }
}
