//! What a statement does to *session* state, which transaction pooling must track:
//! SET/RESET (re-applied on whichever server the client gets next), PREPARE/EXECUTE/
//! DEALLOCATE (re-created on demand), DISCARD, LISTEN (refused outside session mode), and
//! anything else that leaves state on the server connection (temp tables, session
//! advisory locks, `set_config(..., false)`, held cursors, LOAD): the connection is then
//! reset with `DISCARD ALL` before another client gets it.
//!
//! Most statements start with a keyword that cannot touch session state; those skip the
//! parser entirely. The rest go through `pg_query` once per distinct text.

use super::cache::TextCache;
use super::lex::{contains_ci, first_keyword};
use pg_query::protobuf::{DiscardMode, VariableSetKind};
use pg_query::NodeEnum;
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
    "call",
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

/// Substrings that may mean session state even in an otherwise plain statement.
const SUSPICIOUS: &[&str] = &["set_config", "advisory", "temp", "hold"];

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
    match sql.find(';') {
        None => false,
        Some(i) => !sql[i + 1..].trim().is_empty() || sql[i + 1..].contains(';'),
    }
}

/// Session effects of a statement string (one or more statements).
pub fn analyze(sql: &str) -> Arc<Analysis> {
    let kw = first_keyword(sql);
    if PLAIN_KEYWORDS.contains(&kw.as_str())
        && !has_inner_semicolon(sql)
        && !SUSPICIOUS.iter().any(|s| contains_ci(sql, s))
    {
        return plain();
    }
    cache().get_or_insert_with(sql, || parse_ops(sql))
}

fn parse_ops(sql: &str) -> Analysis {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        // The server will report the syntax error; nothing to track.
        return Analysis::default();
    };
    let mut ops = Vec::new();
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
                match VariableSetKind::try_from(s.kind) {
                    Ok(VariableSetKind::VarResetAll) => ops.push(SessionOp::ResetAll),
                    Ok(VariableSetKind::VarReset) => ops.push(SessionOp::Reset { name }),
                    _ => ops.push(SessionOp::Set { name, sql: text }),
                }
            }
            NodeEnum::DiscardStmt(d) => match DiscardMode::try_from(d.target) {
                Ok(DiscardMode::DiscardAll) => ops.push(SessionOp::DiscardAll),
                _ => ops.push(SessionOp::Dirty),
            },
            NodeEnum::PrepareStmt(p) => ops.push(SessionOp::Prepare {
                name: p.name.clone(),
                sql: text,
            }),
            NodeEnum::ExecuteStmt(e) => ops.push(SessionOp::Execute {
                name: e.name.clone(),
            }),
            NodeEnum::DeallocateStmt(d) => ops.push(SessionOp::Deallocate {
                name: (!d.isall && !d.name.is_empty()).then(|| d.name.clone()),
            }),
            NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) => ops.push(SessionOp::Listen),
            NodeEnum::CreateStmt(c)
                if c.relation.as_ref().is_some_and(|r| r.relpersistence == "t") =>
            {
                ops.push(SessionOp::Dirty)
            }
            NodeEnum::CreateTableAsStmt(c)
                if c.into
                    .as_ref()
                    .and_then(|i| i.rel.as_ref())
                    .is_some_and(|r| r.relpersistence == "t") =>
            {
                ops.push(SessionOp::Dirty)
            }
            NodeEnum::DeclareCursorStmt(_) | NodeEnum::LoadStmt(_) => ops.push(SessionOp::Dirty),
            _ => {}
        }
    }
    let session_functions = parsed.functions.iter().any(|(f, _)| {
        let f = f.rsplit('.').next().unwrap_or(f);
        f == "set_config" || (f.starts_with("pg_advisory") && !f.contains("xact"))
    });
    if session_functions && !ops.contains(&SessionOp::Dirty) {
        ops.push(SessionOp::Dirty);
    }
    Analysis { ops }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(sql: &str) -> Vec<SessionOp> {
        analyze(sql).ops.clone()
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
            vec![SessionOp::Prepare {
                name: "q".into(),
                sql: "PREPARE q(int) AS SELECT $1".into()
            }]
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
        assert!(ops("this is not sql").is_empty());
    }
}
