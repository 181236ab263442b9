//! Read/write classification for read/write splitting (SPEC §3): may a statement run on
//! a replica? Lexical and conservative on purpose: anything that might write, lock, or
//! touch state a replica lacks goes to the primary. A wrong "write" costs a little load
//! on the primary; a wrong "read" would be an error or a stale answer, so doubt means
//! primary. Functions the router cannot see into (user-defined ones) are taken as reads,
//! as PgCat does; `SET orochi.role = 'primary'` pins a session to the primary.

use super::lex::{contains_ci, contains_word_ci, first_keyword};

/// Where a checkout must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The shard's primary: writes, transactions, anything in doubt.
    Primary,
    /// A read: a replica (or the primary when `primary_reads_enabled`), by load balancing.
    Read,
}

/// Functions that write or need the primary, matched as substrings (lower case).
const PRIMARY_ONLY: &[&str] = &[
    "nextval",
    "setval",
    "pg_advisory",
    "set_config",
    "txid_current",
    "pg_current_xact_id",
    "pg_notify",
    "lo_",
    "dblink",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_switch_wal",
    "pg_create_",
    "pg_drop_",
];

/// A SELECT that locks rows (`FOR UPDATE/SHARE/NO KEY UPDATE/KEY SHARE`) or creates a
/// table (`SELECT … INTO`). Whole words, whatever whitespace separates them; a column
/// named `share` merely sends the query to the primary.
fn locks_or_writes(body: &str) -> bool {
    contains_word_ci(body, "into")
        || (contains_word_ci(body, "for")
            && (contains_word_ci(body, "update") || contains_word_ci(body, "share")))
}

/// Words that make a WITH query write (a data-modifying CTE).
const WRITE_WORDS: &[&str] = &["insert", "update", "delete", "merge"];

/// May this statement (string) run on a replica?
pub fn is_read(sql: &str) -> bool {
    let body = sql.trim().trim_end_matches(';');
    if body.contains(';') || PRIMARY_ONLY.iter().any(|f| contains_ci(body, f)) {
        return false;
    }
    match first_keyword(body).as_str() {
        "select" | "values" | "table" => !locks_or_writes(body),
        "with" => !locks_or_writes(body) && !WRITE_WORDS.iter().any(|w| contains_word_ci(body, w)),
        "show" => true,
        _ => false,
    }
}

/// `BEGIN READ ONLY` / `START TRANSACTION READ ONLY`: the whole transaction may use a replica.
pub fn is_read_only_begin(sql: &str) -> bool {
    matches!(first_keyword(sql).as_str(), "begin" | "start")
        && contains_ci(sql, "read only")
        && !sql.trim().trim_end_matches(';').contains(';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads() {
        for q in [
            "SELECT 1",
            " /* c */ select abalance from pgbench_accounts where aid = 1;",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1)",
            "SHOW work_mem",
            "(SELECT 1) UNION (SELECT 2)",
            "select updated_at from t",
        ] {
            assert!(is_read(q), "{q}");
        }
    }

    #[test]
    fn writes_and_doubts_go_to_the_primary() {
        for q in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "SELECT * FROM t FOR UPDATE",
            "select * from t for share",
            "SELECT * FROM t\nFOR\tUPDATE",
            "SELECT nextval('s')",
            "SELECT a INTO b FROM t",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "SELECT 1; DELETE FROM t",
            "SELECT pg_advisory_lock(1)",
            "BEGIN",
            "COPY t TO STDOUT",
            "",
        ] {
            assert!(!is_read(q), "{q}");
        }
        assert!(is_read_only_begin("BEGIN READ ONLY"));
        assert!(is_read_only_begin(
            "start transaction isolation level serializable, read only;"
        ));
        assert!(!is_read_only_begin("BEGIN"));
    }
}
