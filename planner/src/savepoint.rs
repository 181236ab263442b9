//! The savepoint a transaction command names, as PostgreSQL reads it.
//!
//! A sharded pool answers a transaction's commands itself until a statement picks the
//! transaction's shard (the router's held-back BEGIN), so it must keep PostgreSQL's
//! savepoint rules itself too: `RELEASE` or `ROLLBACK TO` a savepoint that was never
//! taken is 3B001 and fails the transaction. The name comes from PostgreSQL's own parser
//! (`pg_query`): folded to lower case unless quoted, truncated to 63 bytes, exactly as
//! the server would compare it. These commands are rare, so they are parsed each time.

use pg_query::protobuf::TransactionStmtKind as K;
use pg_query::NodeEnum;

/// A savepoint command and the name it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Savepoint {
    /// `SAVEPOINT name`.
    Take(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
}

/// The savepoint command `sql` is (one statement), or `None` for anything else,
/// including text the parser cannot read.
pub fn savepoint_command(sql: &str) -> Option<Savepoint> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    let NodeEnum::TransactionStmt(t) = raw.stmt.as_ref()?.node.as_ref()? else {
        return None;
    };
    let name = t.savepoint_name.clone();
    match t.kind() {
        K::TransStmtSavepoint => Some(Savepoint::Take(name)),
        K::TransStmtRelease => Some(Savepoint::Release(name)),
        K::TransStmtRollbackTo => Some(Savepoint::RollbackTo(name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_as_postgres_reads_them() {
        assert_eq!(
            savepoint_command("SAVEPOINT A"),
            Some(Savepoint::Take("a".into()))
        );
        assert_eq!(
            savepoint_command("savepoint \"A b\";"),
            Some(Savepoint::Take("A b".into()))
        );
        assert_eq!(
            savepoint_command("RELEASE SAVEPOINT a /* c */"),
            Some(Savepoint::Release("a".into()))
        );
        assert_eq!(
            savepoint_command("release x"),
            Some(Savepoint::Release("x".into()))
        );
        assert_eq!(
            savepoint_command("ROLLBACK WORK TO SAVEPOINT s1"),
            Some(Savepoint::RollbackTo("s1".into()))
        );
        assert_eq!(
            savepoint_command("abort transaction to s1"),
            None,
            "ABORT takes no savepoint: a syntax error the server reports"
        );
        let long = "x".repeat(70);
        assert_eq!(
            savepoint_command(&format!("SAVEPOINT {long}")),
            Some(Savepoint::Take("x".repeat(63)))
        );
        assert_eq!(savepoint_command("ROLLBACK"), None);
        assert_eq!(savepoint_command("SAVEPOINT a; SAVEPOINT b"), None);
    }
}
