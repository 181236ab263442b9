//! What a gateway session may not run: anything that changes the identity the gateway
//! gave it. The role and `request.jwt.claims` are the token's; a client that could
//! `RESET ROLE` would be the authenticator user, and one that could write the claims
//! would choose its own tenant for row-level security.
//!
//! Refused with 42501 before anything reaches a server:
//! - `SET`/`SET LOCAL`/`RESET` of `role`, `session_authorization` (also as `SET SESSION
//!   AUTHORIZATION`) and any `request.jwt.*` setting; `RESET ALL` and `DISCARD ALL`
//!   (both end a `SET ROLE`);
//! - `set_config(...)` whose setting name is one of those, or is not a plain string
//!   literal (an expression could compute the name);
//! - inside `DO` bodies and function/procedure definitions (PL/pgSQL text the parser
//!   does not look into), the same commands found by text, case and spacing ignored;
//! - the FunctionCall message (a function called by OID, `set_config`'s included).
//!
//! The statement is parsed with PostgreSQL's grammar, twice when it holds a string with
//! a backslash (`standard_conforming_strings` on and off), so comments, quoting and
//! letter case cannot hide a command. What remains possible is dynamic SQL assembled at
//! run time by a function the app role can create or call (`EXECUTE 'RE' || 'SET
//! ROLE'`); the README lists that residual risk and how to close it (grants).

use pg_query::protobuf::a_const::Val;
use pg_query::protobuf::node::Node as N;
use pg_query::protobuf::{DiscardMode, VariableSetKind};
use pg_query::{NodeRef, ParserOptions};

/// SQLSTATE of every refusal (insufficient_privilege).
pub const SQLSTATE: &str = "42501";

/// Settings that carry the gateway identity.
fn identity_setting(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "role" || n == "session_authorization" || n.starts_with("request.jwt")
}

/// Whether `sql` could hold one of the refused commands at all: each contains one of
/// these words literally (keywords cannot be escaped; a `U&` identifier could hide a
/// name, and a `DO` or function body is read by words), so ordinary statements are not
/// parsed here.
fn may_touch_identity(sql: &str) -> bool {
    const WORDS: [&str; 10] = [
        "role",
        "session",
        "authoriz",
        "reset",
        "discard",
        "set_config",
        "request",
        "u&",
        "function",
        "procedure",
    ];
    let lower = sql.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
        || lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "do")
}

/// Why `sql` may not run in a gateway session, if it may not.
pub fn refuse(sql: &str) -> Option<String> {
    if !may_touch_identity(sql) {
        return None;
    }
    let mut options = vec![ParserOptions::DEFAULT];
    if sql.contains('\\') {
        options.push(ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS);
    }
    options.into_iter().find_map(|o| refuse_parsed(sql, o))
}

fn refuse_parsed(sql: &str, options: ParserOptions) -> Option<String> {
    // A statement this grammar cannot parse most likely fails on the server too; in
    // case the server's grammar differs, its words are checked as a body's would be.
    let Ok(parsed) = pg_query::parse(sql, options) else {
        return refuse_body_text(sql);
    };
    let mut bodies = false;
    for (node, _, _, _) in parsed.protobuf.nodes() {
        match node {
            NodeRef::VariableSetStmt(s) => {
                let kind = VariableSetKind::try_from(s.kind).ok();
                if kind == Some(VariableSetKind::VarResetAll) {
                    return Some(msg("RESET ALL"));
                }
                if identity_setting(&s.name) {
                    return Some(msg(&format!("changing \"{}\"", s.name)));
                }
            }
            NodeRef::DiscardStmt(d) if d.target == DiscardMode::DiscardAll as i32 => {
                return Some(msg("DISCARD ALL"));
            }
            NodeRef::FuncCall(f) => {
                let name = f.funcname.last().and_then(|n| match &n.node {
                    Some(N::String(s)) => Some(s.sval.to_ascii_lowercase()),
                    _ => None,
                });
                if name.as_deref() == Some("set_config") {
                    let setting = f.args.first().and_then(|a| match &a.node {
                        Some(N::AConst(c)) => match &c.val {
                            Some(Val::Sval(s)) => Some(s.sval.clone()),
                            _ => None,
                        },
                        _ => None,
                    });
                    match setting {
                        Some(s) if !identity_setting(&s) => {}
                        Some(s) => return Some(msg(&format!("set_config('{s}', ...)"))),
                        None => {
                            return Some(msg(
                                "set_config with a setting name that is not a string literal",
                            ))
                        }
                    }
                }
            }
            NodeRef::DoStmt(_) | NodeRef::CreateFunctionStmt(_) => bodies = true,
            _ => {}
        }
    }
    if bodies {
        return refuse_body_text(sql);
    }
    None
}

/// The identity commands found in PL/pgSQL text by words (case and spacing ignored).
fn refuse_body_text(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    for i in 0..words.len() {
        let found = match (w(i), w(i + 1), w(i + 2)) {
            ("set" | "reset", "role", _) => Some("SET/RESET ROLE"),
            ("set", "local" | "session", "role") => Some("SET ROLE"),
            ("set" | "reset", "session", "authorization") => Some("SESSION AUTHORIZATION"),
            ("set" | "reset", "local" | "session", "session") if w(i + 3) == "authorization" => {
                Some("SESSION AUTHORIZATION")
            }
            ("reset" | "discard", "all", _) => Some("RESET ALL / DISCARD ALL"),
            (x, _, _) if x == "session_authorization" || x.starts_with("request.jwt") => {
                // Reading the claims is what RLS policies do; only a write is refused.
                if words.iter().any(|v| v == "set_config" || v == "set") {
                    Some("writing the gateway's identity settings")
                } else {
                    None
                }
            }
            ("set_config", _, _) if words.iter().any(|v| v == "role") => Some("set_config"),
            _ => None,
        };
        if let Some(what) = found {
            return Some(msg(&format!("{what} inside a DO block or function body")));
        }
    }
    None
}

fn msg(what: &str) -> String {
    format!("permission denied: {what} is not allowed through the JWT gateway (the session's role and claims come from its token)")
}

#[cfg(test)]
mod tests {
    use super::refuse;

    #[test]
    fn identity_changes_are_refused() {
        for sql in [
            "SET ROLE postgres",
            "set role none",
            "SET LOCAL ROLE postgres",
            "SET SESSION ROLE postgres",
            "RESET ROLE",
            "reset   role",
            "SET SESSION AUTHORIZATION postgres",
            "RESET SESSION AUTHORIZATION",
            "RESET ALL",
            "DISCARD ALL",
            "SET request.jwt.claims = '{}'",
            "SET LOCAL \"request.jwt.claims\" TO '{}'",
            "RESET request.jwt.claims",
            "SELECT set_config('role', 'postgres', false)",
            "SELECT pg_catalog.set_config('request.jwt.claims', '{}', true)",
            "select SET_CONFIG('Session_Authorization', 'x', false)",
            "SELECT set_config(E'r\\x6fle', 'postgres', false)",
            "SELECT set_config(U&'r\\006Fle', 'postgres', false)",
            "SELECT set_config(lower('ROLE'), 'postgres', false)",
            "SELECT 1; /* x */ SET ROLE postgres",
            "SELECT U&\"\\0073et_config\"('role', 'postgres', false)",
            "DO $$ BEGIN SET ROLE postgres; END $$",
            "DO $$BEGIN EXECUTE 'reset role'; END$$",
            "DO $$ BEGIN PERFORM set_config('role','postgres',false); END $$",
            "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RESET ROLE; END $$",
            "DO $$ BEGIN PERFORM set_config('request.jwt.claims','{}',false); END $$",
            "SET ROLE postgres SET ROLE",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = 'postgres' AS 'SELECT 1'",
        ] {
            assert!(refuse(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn only_statements_with_a_trigger_word_are_parsed() {
        use super::may_touch_identity as m;
        assert!(!m("SELECT * FROM notes WHERE tenant_id = $1"));
        assert!(!m("INSERT INTO t VALUES (1, 'done')"));
        assert!(m("select 1; do $$ begin null; end $$"));
        assert!(m("SELECT U&\"\\0073et_config\"('x', 'y', false)"));
    }

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT current_setting('request.jwt.claims', true)::jsonb->>'tenant_id'",
            "SELECT * FROM notes WHERE body = 'set role'",
            "SET work_mem = '8MB'",
            "RESET work_mem",
            "SELECT set_config('application_name', 'x', false)",
            "DISCARD PLANS",
            "DO $$ BEGIN PERFORM current_setting('request.jwt.claims', true); END $$",
            "BEGIN",
            "not sql at all",
        ] {
            assert!(refuse(sql).is_none(), "{sql}");
        }
    }
}
