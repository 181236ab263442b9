//! What a statement does to *session* state, which transaction pooling must track:
//! SET/RESET (re-applied on whichever server the client gets next), PREPARE/EXECUTE/
//! DEALLOCATE (re-created on demand), DISCARD, LISTEN (refused outside session mode).
//!
//! Isolation is by construction, not by recognising the dangerous cases: a statement is
//! *clean* only when every top-level statement in it is of a kind known not to leave
//! state on the server connection, it names no temporary relation and calls no
//! session-state function (`set_config(…, false)`, session advisory locks). Everything
//! else — DO/CALL, LOAD, held cursors, temp objects, identity changes (`SET ROLE`,
//! `SET SESSION AUTHORIZATION`), SQL `PREPARE`, statement kinds not classified here, and
//! a statement the parser cannot read — is `Dirty`: the connection gets `DISCARD ALL`
//! before another client takes it (its own client keeps it, see `backend::pool`).
//! The documented exception is a user-defined function that changes session state
//! inside its body: `server_reset_query_always` covers those.
//!
//! Most statements start with a keyword that cannot touch session state; those skip the
//! parser entirely unless their text holds a word that could mean session state. The
//! rest go through `pg_query` once per distinct text.

use super::cache::TextCache;
use super::lex::{first_word, Screen};
use pg_query::protobuf::{a_const, node, DiscardMode, VariableSetKind};
use pg_query::{NodeEnum, NodeRef};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOp {
    /// A session-level SET; `sql` is the statement text, replayed as is.
    Set {
        name: String,
        sql: String,
    },
    Reset {
        name: String,
    },
    ResetAll,
    DiscardAll,
    Prepare {
        name: String,
        sql: String,
    },
    Execute {
        name: String,
    },
    /// `None` = DEALLOCATE ALL.
    Deallocate {
        name: Option<String>,
    },
    Listen,
    /// Untracked session state changes: reset the server before reuse.
    Dirty,
}

impl SessionOp {
    /// Changes the session's settings (tracked and replayed per client).
    pub fn changes_settings(&self) -> bool {
        matches!(
            self,
            SessionOp::Set { .. }
                | SessionOp::Reset { .. }
                | SessionOp::ResetAll
                | SessionOp::DiscardAll
        )
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub ops: Vec<SessionOp>,
}

impl Analysis {
    pub fn is_plain(&self) -> bool {
        self.ops.is_empty()
    }
}

const PLAIN_KEYWORDS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "with",
    "values",
    "table",
    "copy",
    "begin",
    "start",
    "commit",
    "end",
    "rollback",
    "abort",
    "savepoint",
    "release",
    "show",
    "explain",
    "vacuum",
    "analyze",
    "analyse",
    "truncate",
    "lock",
    "fetch",
    "move",
    "close",
    "notify",
    "alter",
    "drop",
    "grant",
    "revoke",
    "comment",
    "refresh",
    "reindex",
    "cluster",
    "checkpoint",
    "merge",
];

/// Substrings that may mean session state even in an otherwise plain statement (`temp`
/// also catches `pg_temp` and `TEMPORARY`; `/*` a nested comment that could hide the
/// real first keyword from the lexer's view of it).
///
/// They are screened in one pass with the words of the router's two-phase-commit guard
/// (`STATEMENT_WORDS`), since every statement is read for both.
const SUSPICIOUS: u16 = 0b1_1111;

/// The words every statement is screened for, in one pass over its text
/// ([`Screen::scan`]): the first five may mean session state (`SUSPICIOUS`, read by
/// [`analyze_screened`]); the last four may touch the router's two-phase commit (its
/// guard reads them: the decision functions' names, `U&` that could spell them, and
/// `prepare` of `PREPARE TRANSACTION`/`COMMIT PREPARED`/`ROLLBACK PREPARED`).
pub static STATEMENT_WORDS: Screen = Screen::new(&[
    "set_config",
    "advisory",
    "temp",
    "hold",
    "/*",
    "record_decision",
    "forget_decisions",
    "u&",
    "prepare",
]);
/// Bits of [`STATEMENT_WORDS`]'s scan read by the two-phase-commit guard.
pub const WORD_RECORD_DECISION: u16 = 1 << 5;
pub const WORD_FORGET_DECISIONS: u16 = 1 << 6;
pub const WORD_UNICODE_ESCAPE: u16 = 1 << 7;
pub const WORD_PREPARE: u16 = 1 << 8;

/// `CURSOR_OPT_HOLD` of PostgreSQL's parsenodes.h: `DECLARE … WITH HOLD`.
const CURSOR_OPT_HOLD: i32 = 0x0020;

/// Settings PostgreSQL's `RESET ALL` leaves alone (GUC_NO_RESET_ALL), which only
/// `DISCARD ALL` (or their own RESET) resets: the session's identity.
pub const IDENTITY_SETTINGS: &[&str] = &["session_authorization", "role"];

fn plain() -> Arc<Analysis> {
    static PLAIN: OnceLock<Arc<Analysis>> = OnceLock::new();
    PLAIN.get_or_init(|| Arc::new(Analysis::default())).clone()
}

fn cache() -> &'static TextCache<Analysis> {
    static CACHE: OnceLock<TextCache<Analysis>> = OnceLock::new();
    CACHE.get_or_init(|| TextCache::new(65_536))
}

/// True when a `;` is followed by anything but whitespace: a multi-statement string.
pub fn has_inner_semicolon(sql: &str) -> bool {
    // Every statement passes here (issue 16): a vectorised search for the first `;`,
    // then a look at what follows it. Non-ASCII whitespace after it counts as more
    // text, which only sends the statement to the parser.
    let b = sql.as_bytes();
    memchr::memchr(b';', b).is_some_and(|i| b[i + 1..].iter().any(|c| !c.is_ascii_whitespace()))
}

/// Session effects of a statement string (one or more statements).
pub fn analyze(sql: &str) -> Arc<Analysis> {
    analyze_screened(sql, STATEMENT_WORDS.scan(sql))
}

/// [`analyze`] of a statement already screened: `words` is `STATEMENT_WORDS.scan(sql)`.
pub fn analyze_screened(sql: &str, words: u16) -> Arc<Analysis> {
    let kw = first_word(sql);
    if words & SUSPICIOUS == 0
        && PLAIN_KEYWORDS.iter().any(|k| kw.eq_ignore_ascii_case(k))
        && !has_inner_semicolon(sql)
    {
        return plain();
    }
    cache().get_or_insert_with(sql, || parse_ops(sql))
}

fn parse_ops(sql: &str) -> Analysis {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        // Not readable (a syntax error the server will report, or nesting deeper than
        // the decoder takes): its effect on the session is unknown.
        return Analysis {
            ops: vec![SessionOp::Dirty],
        };
    };
    let mut ops = Vec::new();
    let mut dirty = false;
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let start = raw.stmt_location.max(0) as usize;
        let text = match raw.stmt_len {
            0 => sql.get(start..),
            n => sql.get(start..start + n as usize),
        }
        .unwrap_or(sql)
        .trim()
        .to_string();
        match node {
            NodeEnum::VariableSetStmt(s) if !s.is_local => {
                let name = s.name.to_ascii_lowercase();
                if name.starts_with("transaction") {
                    // SET TRANSACTION …: the current transaction's, not the session's.
                    continue;
                }
                dirty |= IDENTITY_SETTINGS.contains(&name.as_str());
                match VariableSetKind::try_from(s.kind) {
                    Ok(VariableSetKind::VarResetAll) => ops.push(SessionOp::ResetAll),
                    Ok(VariableSetKind::VarReset) => ops.push(SessionOp::Reset { name }),
                    _ => ops.push(SessionOp::Set { name, sql: text }),
                }
            }
            NodeEnum::VariableSetStmt(_) => {}
            NodeEnum::DiscardStmt(d) => match DiscardMode::try_from(d.target) {
                Ok(DiscardMode::DiscardAll) => ops.push(SessionOp::DiscardAll),
                _ => dirty = true,
            },
            NodeEnum::PrepareStmt(p) => {
                // Visible to others in pg_prepared_statements until deallocated.
                dirty = true;
                ops.push(SessionOp::Prepare {
                    name: p.name.clone(),
                    sql: text,
                })
            }
            NodeEnum::ExecuteStmt(e) => ops.push(SessionOp::Execute {
                name: e.name.clone(),
            }),
            NodeEnum::DeallocateStmt(d) => ops.push(SessionOp::Deallocate {
                name: (!d.isall && !d.name.is_empty()).then(|| d.name.clone()),
            }),
            NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) => ops.push(SessionOp::Listen),
            NodeEnum::DeclareCursorStmt(c) => dirty |= c.options & CURSOR_OPT_HOLD != 0,
            NodeEnum::ExplainStmt(e) => {
                // EXPLAIN ANALYZE runs its statement; a plain EXPLAIN of anything is
                // clean, but classifying the inner statement costs nothing.
                let inner = e.query.as_ref().and_then(|q| q.node.as_ref());
                dirty |= inner.is_some_and(|n| !is_clean_kind(n) || creates_temp(n));
            }
            n => dirty |= !is_clean_kind(n) || creates_temp(n),
        }
    }
    for (node, _, _, _) in parsed.protobuf.nodes() {
        dirty |= match node {
            NodeRef::RangeVar(r) => r.relpersistence == "t" || is_temp_schema(&r.schemaname),
            NodeRef::FuncCall(f) => is_session_function(f),
            _ => false,
        };
    }
    if dirty {
        ops.push(SessionOp::Dirty);
    }
    Analysis { ops }
}

/// Statement kinds that cannot leave state on the connection beyond their transaction
/// (relations they create are checked separately for temporariness).
fn is_clean_kind(n: &NodeEnum) -> bool {
    use NodeEnum as N;
    matches!(
        n,
        N::SelectStmt(_)
            | N::InsertStmt(_)
            | N::UpdateStmt(_)
            | N::DeleteStmt(_)
            | N::MergeStmt(_)
            | N::CopyStmt(_)
            | N::TransactionStmt(_)
            | N::VariableShowStmt(_)
            | N::VacuumStmt(_)
            | N::LockStmt(_)
            | N::FetchStmt(_)
            | N::ClosePortalStmt(_)
            | N::NotifyStmt(_)
            | N::CheckPointStmt(_)
            | N::ConstraintsSetStmt(_)
            | N::TruncateStmt(_)
            | N::CreateStmt(_)
            | N::CreateTableAsStmt(_)
            | N::ViewStmt(_)
            | N::CreateSeqStmt(_)
            | N::AlterSeqStmt(_)
            | N::IndexStmt(_)
            | N::AlterTableStmt(_)
            | N::DropStmt(_)
            | N::RenameStmt(_)
            | N::CommentStmt(_)
            | N::GrantStmt(_)
            | N::GrantRoleStmt(_)
            | N::CreateRoleStmt(_)
            | N::AlterRoleStmt(_)
            | N::AlterRoleSetStmt(_)
            | N::DropRoleStmt(_)
            | N::DropOwnedStmt(_)
            | N::ReassignOwnedStmt(_)
            | N::CreateFunctionStmt(_)
            | N::AlterFunctionStmt(_)
            | N::CreateSchemaStmt(_)
            | N::DefineStmt(_)
            | N::CompositeTypeStmt(_)
            | N::CreateEnumStmt(_)
            | N::AlterEnumStmt(_)
            | N::CreateDomainStmt(_)
            | N::AlterDomainStmt(_)
            | N::CreateTrigStmt(_)
            | N::RuleStmt(_)
            | N::CreatePolicyStmt(_)
            | N::AlterPolicyStmt(_)
            | N::ReindexStmt(_)
            | N::ClusterStmt(_)
            | N::RefreshMatViewStmt(_)
            | N::AlterOwnerStmt(_)
            | N::AlterObjectSchemaStmt(_)
            | N::AlterDefaultPrivilegesStmt(_)
            | N::CreateStatsStmt(_)
            | N::AlterStatsStmt(_)
            | N::CreateCastStmt(_)
            | N::CreateOpClassStmt(_)
            | N::CreateOpFamilyStmt(_)
            | N::AlterOpFamilyStmt(_)
            | N::CreateConversionStmt(_)
            | N::CreateTransformStmt(_)
            | N::CreatePlangStmt(_)
            | N::CreateEventTrigStmt(_)
            | N::AlterEventTrigStmt(_)
            | N::CreatePublicationStmt(_)
            | N::AlterPublicationStmt(_)
            | N::CreateSubscriptionStmt(_)
            | N::AlterSubscriptionStmt(_)
            | N::DropSubscriptionStmt(_)
            | N::CreateForeignTableStmt(_)
            | N::CreateFdwStmt(_)
            | N::AlterFdwStmt(_)
            | N::CreateForeignServerStmt(_)
            | N::AlterForeignServerStmt(_)
            | N::CreateUserMappingStmt(_)
            | N::AlterUserMappingStmt(_)
            | N::DropUserMappingStmt(_)
            | N::ImportForeignSchemaStmt(_)
            | N::CreateTableSpaceStmt(_)
            | N::DropTableSpaceStmt(_)
            | N::AlterTableSpaceOptionsStmt(_)
            | N::CreateAmStmt(_)
            | N::AlterTypeStmt(_)
            | N::AlterCollationStmt(_)
            | N::AlterTsdictionaryStmt(_)
            | N::AlterTsconfigurationStmt(_)
            | N::SecLabelStmt(_)
            | N::CreatedbStmt(_)
            | N::DropdbStmt(_)
            | N::AlterDatabaseStmt(_)
            | N::AlterDatabaseSetStmt(_)
            | N::AlterDatabaseRefreshCollStmt(_)
            | N::AlterSystemStmt(_)
            | N::AlterExtensionStmt(_)
            | N::AlterExtensionContentsStmt(_)
            | N::CreateExtensionStmt(_)
            | N::AlterTableMoveAllStmt(_)
            | N::AlterOperatorStmt(_)
    )
}

/// The statement creates a temporary relation (the tree walk below does not descend
/// into every DDL node, so the creating ones are looked at here).
fn creates_temp(n: &NodeEnum) -> bool {
    let rel = match n {
        NodeEnum::CreateStmt(c) => c.relation.as_ref(),
        NodeEnum::CreateSeqStmt(c) => c.sequence.as_ref(),
        NodeEnum::ViewStmt(v) => v.view.as_ref(),
        NodeEnum::CreateTableAsStmt(c) => c.into.as_ref().and_then(|i| i.rel.as_ref()),
        NodeEnum::SelectStmt(s) => s.into_clause.as_ref().and_then(|i| i.rel.as_ref()),
        NodeEnum::ExplainStmt(e) => {
            return e
                .query
                .as_ref()
                .and_then(|q| q.node.as_ref())
                .is_some_and(creates_temp)
        }
        _ => None,
    };
    rel.is_some_and(|r| r.relpersistence == "t" || is_temp_schema(&r.schemaname))
}

/// `pg_temp` or a backend's own `pg_temp_N`.
fn is_temp_schema(schema: &str) -> bool {
    let s = schema.to_ascii_lowercase();
    s == "pg_temp" || s.starts_with("pg_temp_")
}

/// Functions that leave session state: `set_config` unless its third argument is the
/// literal `true` (transaction-local), and session-level advisory locks (taking or
/// releasing: `pg_advisory_lock*`, `pg_try_advisory_lock*`, `pg_advisory_unlock*`).
fn is_session_function(f: &pg_query::protobuf::FuncCall) -> bool {
    let Some(name) = f.funcname.last().and_then(|n| match n.node.as_ref() {
        Some(node::Node::String(s)) => Some(s.sval.to_ascii_lowercase()),
        _ => None,
    }) else {
        return false;
    };
    if name == "set_config" {
        let local = f.args.get(2).and_then(|a| match a.node.as_ref() {
            Some(node::Node::AConst(c)) => match &c.val {
                Some(a_const::Val::Boolval(b)) => Some(b.boolval),
                _ => None,
            },
            _ => None,
        });
        return local != Some(true);
    }
    name.contains("advisory") && !name.contains("xact")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(sql: &str) -> Vec<SessionOp> {
        analyze(sql).ops.clone()
    }

    #[test]
    fn a_semicolon_is_inner_when_anything_follows_it() {
        for (sql, inner) in [
            ("select 1", false),
            ("select 1;", false),
            ("select 1; \n\t ", false),
            ("select 1;;", true),
            ("select 1; select 2", true),
            ("select ';' ", true),
            ("select 1;\u{a0}", true),
        ] {
            assert_eq!(has_inner_semicolon(sql), inner, "{sql:?}");
        }
    }

    #[test]
    fn plain_statements_skip_the_parser() {
        assert!(ops("SELECT 1").is_empty());
        assert!(ops("  /* c */ -- x\n update t set a = 1 where b = 2;").is_empty());
        assert!(ops("BEGIN").is_empty());
    }

    #[test]
    fn set_and_reset_are_tracked() {
        assert_eq!(
            ops("SET search_path TO a, b"),
            vec![SessionOp::Set {
                name: "search_path".into(),
                sql: "SET search_path TO a, b".into()
            }]
        );
        assert_eq!(
            ops("set time zone 'UTC'")[0],
            SessionOp::Set {
                name: "timezone".into(),
                sql: "set time zone 'UTC'".into()
            }
        );
        assert!(ops("SET LOCAL work_mem = '1MB'").is_empty());
        assert_eq!(
            ops("RESET work_mem"),
            vec![SessionOp::Reset {
                name: "work_mem".into()
            }]
        );
        assert_eq!(ops("RESET ALL"), vec![SessionOp::ResetAll]);
        assert_eq!(ops("DISCARD ALL"), vec![SessionOp::DiscardAll]);
        assert_eq!(
            ops("select 1; SET x.y = 1")[0],
            SessionOp::Set {
                name: "x.y".into(),
                sql: "SET x.y = 1".into()
            }
        );
    }

    #[test]
    fn prepared_and_listen_and_dirty() {
        assert_eq!(
            ops("PREPARE q(int) AS SELECT $1"),
            vec![
                SessionOp::Prepare {
                    name: "q".into(),
                    sql: "PREPARE q(int) AS SELECT $1".into()
                },
                SessionOp::Dirty
            ]
        );
        assert_eq!(
            ops("EXECUTE q(1)"),
            vec![SessionOp::Execute { name: "q".into() }]
        );
        assert_eq!(
            ops("DEALLOCATE q"),
            vec![SessionOp::Deallocate {
                name: Some("q".into())
            }]
        );
        assert_eq!(
            ops("DEALLOCATE ALL"),
            vec![SessionOp::Deallocate { name: None }]
        );
        assert_eq!(ops("LISTEN chan"), vec![SessionOp::Listen]);
        assert_eq!(ops("CREATE TEMP TABLE t (a int)"), vec![SessionOp::Dirty]);
        assert_eq!(ops("select pg_advisory_lock(1)"), vec![SessionOp::Dirty]);
        assert!(ops("select pg_advisory_xact_lock(1)").is_empty());
        assert_eq!(
            ops("select set_config('a.b', '1', false)"),
            vec![SessionOp::Dirty]
        );
        assert!(ops("select temperature from t").is_empty());
        // Unreadable: unknown effect.
        assert_eq!(ops("this is not sql"), vec![SessionOp::Dirty]);
    }

    fn dirty(sql: &str) -> bool {
        ops(sql).contains(&SessionOp::Dirty)
    }

    #[test]
    fn session_state_is_dirty_by_construction() {
        // A nested comment does not hide a SET from the analysis.
        assert_eq!(
            ops("/* /* */ select */ SET search_path = evil, public"),
            vec![SessionOp::Set {
                name: "search_path".into(),
                sql: "SET search_path = evil, public".into()
            }]
        );
        for sql in [
            "/* /* */ select */ SET ROLE reader",
            "select pg_try_advisory_lock(1)",
            "select pg_try_advisory_lock_shared(1, 2)",
            "select pg_advisory_unlock_all()",
            "CREATE TEMP VIEW v AS SELECT 1",
            "CREATE TEMPORARY SEQUENCE s",
            "CREATE TABLE pg_temp.x (a int)",
            "SELECT 1 AS a INTO TEMP tt",
            "CREATE TEMP TABLE t AS SELECT 1",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CALL p()",
            "LOAD 'auto_explain'",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "DISCARD TEMP",
            "SET ROLE reader",
            "SET SESSION AUTHORIZATION bob",
            "RESET SESSION AUTHORIZATION",
            "RESET ROLE",
            "select set_config('role', 'x', false)",
            "select set_config('a.b', '1', is_local)",
            "select 1; select pg_advisory_lock(2)",
            "EXPLAIN ANALYZE CREATE TEMP TABLE e AS SELECT 1",
            // Not classified (harmless, but unknown to the list): reset all the same.
            "CREATE TYPE r AS RANGE (subtype = int4)",
        ] {
            assert!(dirty(sql), "{sql} must mark the connection for a reset");
        }
        for sql in [
            "SELECT 1",
            "select set_config('a.b', '1', true)",
            "select pg_advisory_xact_lock(1)",
            "select pg_try_advisory_xact_lock(1)",
            "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "DECLARE c CURSOR FOR SELECT 1",
            "CREATE TABLE p (a int)",
            "CREATE UNLOGGED TABLE u (a int)",
            "SELECT 1 AS a INTO perm",
            "/* c */ update t set a = 1",
            "ALTER TABLE t ADD COLUMN b int",
        ] {
            assert!(!dirty(sql), "{sql} leaves no session state");
        }
    }

    #[test]
    fn statements_the_decoder_cannot_take_are_dirty() {
        // Valid SQL nested deeper than the parse tree decoder's recursion limit.
        let deep = format!(
            "PREPARE q AS SELECT {}1{}",
            "abs(".repeat(200),
            ")".repeat(200)
        );
        assert!(matches!(
            pg_query::parse(&deep, 0),
            Err(pg_query::Error::Decode(_))
        ));
        assert_eq!(ops(&deep), vec![SessionOp::Dirty]);
    }

    #[test]
    fn set_transaction_is_not_session_state() {
        assert!(ops("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").is_empty());
        assert!(ops("SET TRANSACTION READ ONLY").is_empty());
        assert_eq!(
            ops("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").len(),
            1
        );
    }
}
