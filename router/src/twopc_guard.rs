//! Clients may not drive the router's two-phase commits (issue 19).
//!
//! The router's prepared transactions are visible in `pg_prepared_xacts`, and they
//! belong to the server user the clients run as, so a client could `COMMIT PREPARED`
//! one participant of a transaction the router is rolling back (or the reverse) and
//! split it across shards. A `PREPARE TRANSACTION`, `COMMIT PREPARED` or `ROLLBACK
//! PREPARED` naming a gid with the router's `orochi_` prefix (in any letter case) is
//! refused with 42501 before it reaches a server.
//!
//! The statement is parsed with PostgreSQL's own grammar, so comments, whitespace,
//! letter case and `E''`/`U&''` string forms cannot hide the gid. Ordinary statements pay
//! only a scan for the word `prepare`, which every one of these three commands contains
//! literally (keywords cannot be escaped). These commands cannot run inside a function
//! or DO block, so only top-level statements matter. The router does not track the
//! session's `standard_conforming_strings`, so a statement is read both ways (`'\o...'`
//! is `\o...` with it on and `o...` with it off) and refused if either reading names a
//! router gid.

use crate::planner::session::{
    WORD_FORGET_DECISIONS, WORD_PREPARE, WORD_RECORD_DECISION, WORD_UNICODE_ESCAPE,
};
use orochi_wire::{FrontendMessage, PgError};
use pg_query::protobuf::TransactionStmtKind;
use pg_query::{NodeEnum, ParserOptions};

/// SQLSTATE of the refusal (insufficient_privilege).
pub const SQLSTATE: &str = "42501";

/// The error for a simple-protocol Query or an extended-protocol Parse that would
/// prepare, commit or roll back a prepared transaction named like the router's.
/// `words` is `STATEMENT_WORDS.scan` of the message's text (zero for other messages).
pub fn refuse_message(msg: &FrontendMessage, words: u16) -> Option<PgError> {
    match msg {
        FrontendMessage::Query(sql) | FrontendMessage::Parse { query: sql, .. } => {
            refuse_query(sql, words)
        }
        _ => None,
    }
}

/// As [`refuse_message`], for statement text.
pub fn refuse_query(sql: &str, words: u16) -> Option<PgError> {
    refuse_screened(sql, words).map(|m| PgError::error(SQLSTATE, m))
}

/// The refusal message when `sql`, already screened (`found` is its
/// `STATEMENT_WORDS.scan`), would prepare, commit or roll back a prepared transaction
/// named like the router's. Every statement passes here, and its one pass over the text
/// serves session tracking too (issue 16, CPU per transaction).
fn refuse_screened(sql: &str, found: u16) -> Option<String> {
    if let Some(m) = refuse_decision_call(sql, found) {
        return Some(m);
    }
    if found & WORD_PREPARE == 0 {
        return None;
    }
    [
        ParserOptions::DEFAULT,
        ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS,
    ]
    .into_iter()
    .find_map(|o| refuse_parsed(sql, o))
}

/// The decision functions, with their bits in the statement's screen.
const DECISION_NAMES: [(u16, &str); 2] = [
    (WORD_RECORD_DECISION, "record_decision"),
    (WORD_FORGET_DECISIONS, "forget_decisions"),
];

fn refuse_parsed(sql: &str, options: ParserOptions) -> Option<String> {
    let parsed = pg_query::parse(sql, options).ok()?;
    for raw in &parsed.protobuf.stmts {
        let Some(NodeEnum::TransactionStmt(t)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref())
        else {
            continue;
        };
        let command = match TransactionStmtKind::try_from(t.kind) {
            Ok(TransactionStmtKind::TransStmtPrepare) => "PREPARE TRANSACTION",
            Ok(TransactionStmtKind::TransStmtCommitPrepared) => "COMMIT PREPARED",
            Ok(TransactionStmtKind::TransStmtRollbackPrepared) => "ROLLBACK PREPARED",
            _ => continue,
        };
        if is_router_gid(&t.gid) {
            return Some(format!(
                "permission denied: {command} of transaction \"{}\": names starting with \"orochi_\" belong to the router's two-phase commit",
                t.gid
            ));
        }
    }
    None
}

fn is_router_gid(gid: &str) -> bool {
    gid.get(..orochi_twopc::gid::PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(orochi_twopc::gid::PREFIX))
}

/// The decision functions run as the server user, which is also the role clients run
/// as: a client recording `commit` for another transaction's in-doubt gid could make
/// the sweeper commit a participant whose sibling never prepared. Calls to them (any
/// schema, any spelling the parser decodes, inside `DO` or function bodies too) are
/// the router's alone. Dynamic SQL assembled at run time inside a function cannot be
/// seen here; the README's threat model says so.
fn refuse_decision_call(sql: &str, found: u16) -> Option<String> {
    let literal = DECISION_NAMES.iter().find(|(bit, _)| found & bit != 0);
    if literal.is_none() && found & WORD_UNICODE_ESCAPE == 0 {
        return None;
    }
    let named = literal.map(|(_, n)| n.to_string()).or_else(|| {
        let parsed = pg_query::parse(sql, ParserOptions::DEFAULT).ok()?;
        parsed
            .functions()
            .into_iter()
            .map(|f| {
                f.rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .find(|f| DECISION_NAMES.iter().any(|(_, n)| n == f))
    })?;
    Some(format!(
        "permission denied for function {named}: it belongs to the router's two-phase commit"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(sql: &str) -> Option<String> {
        refuse_screened(sql, crate::planner::session::STATEMENT_WORDS.scan(sql))
    }

    #[test]
    fn router_gids_are_refused_however_written() {
        for sql in [
            "COMMIT PREPARED 'orochi_ab12cd34_17r00000000000000ff_c0_s1'",
            "commit prepared 'orochi_x_1_c0_s1'",
            "  ROLLBACK /* hi */ PREPARED\n'orochi_x_1_c0_s1' ;",
            "-- c\nROLLBACK PREPARED 'OROCHI_x_1_c0_s1'",
            "COMMIT PREPARED E'\\x6frochi_x_1_c0_s1'",
            "COMMIT PREPARED U&'\\006Frochi_x_1_c0_s1'",
            "PREPARE TRANSACTION 'orochi_mine'",
            "COMMIT PREPARED '\\orochi_x_1_c0_s1'", // standard_conforming_strings = off
            "SELECT 1; COMMIT PREPARED 'orochi_x_1_c0_s1'",
        ] {
            let m = refuse(sql).unwrap_or_else(|| panic!("not refused: {sql}"));
            assert!(m.starts_with("permission denied"), "{m}");
        }
    }

    #[test]
    fn decision_functions_are_the_routers() {
        for sql in [
            "SELECT orochi.record_decision('orochi_x_1_c0', 'commit')",
            "select RECORD_DECISION('orochi_x_1_c0', 'commit')",
            "SELECT orochi.forget_decisions(ARRAY['orochi_x_1_c0'], 0)",
            "DO $$ BEGIN PERFORM orochi.record_decision('orochi_x_1_c0', 'commit'); END $$",
            "SELECT orochi.U&\"recor\\0064_decision\"('orochi_x_1_c0', 'commit')",
        ] {
            let m = refuse(sql).unwrap_or_else(|| panic!("not refused: {sql}"));
            assert!(m.starts_with("permission denied for function"), "{m}");
        }
        assert_eq!(refuse("SELECT U&'d\\0061ta'"), None);
    }

    #[test]
    fn other_statements_pass() {
        for sql in [
            "COMMIT PREPARED 'app_tx_1'",
            "PREPARE TRANSACTION 'mine'",
            "PREPARE q AS SELECT 'orochi_x'",
            "SELECT 'COMMIT PREPARED ''orochi_x_1_c0_s1'''",
            "SELECT * FROM pg_prepared_xacts WHERE gid LIKE 'orochi_%'",
            "COMMIT",
            "not sql at all prepare",
        ] {
            assert_eq!(refuse(sql), None, "{sql}");
        }
    }
}
