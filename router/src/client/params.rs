//! Per-client session parameters for transaction pooling.
//!
//! A client's settings (startup parameters and every session-level `SET`) are kept as
//! the SQL that establishes them. Each server connection remembers the fingerprint of
//! the set it was given; when a client gets a connection with another fingerprint, the
//! router runs `RESET ALL` and replays the client's settings first. So a setting never
//! leaks to another client and always follows its own client.
//!
//! PostgreSQL's rules are followed where they differ from a plain map of names:
//! - `RESET x` and `RESET ALL` go back to the client's *startup* value (PostgreSQL makes
//!   startup parameters the session's reset values), not to the server default;
//! - `RESET ALL` leaves `role` and `session_authorization` alone (GUC_NO_RESET_ALL),
//!   `DISCARD ALL` resets them;
//! - setting or resetting the session authorization also ends any `SET ROLE`;
//! - the identity is replayed last, session authorization before role, so settings that
//!   need the login user's privileges are applied while it still has them.
//!
//! Identity changes also mark the server connection dirty (see `planner::session`):
//! `RESET ALL` cannot undo them, so another client only gets that connection after
//! `DISCARD ALL`.

use crate::backend::conn::EMPTY_PARAMS;
use crate::planner::session::IDENTITY_SETTINGS;
use crate::planner::SessionOp;
use orochi_wire::PgError;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub use crate::backend::conn::{RESET_SQL, UNKNOWN_PARAMS};

/// Startup packet keys that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

#[derive(Debug, Clone, Default)]
pub struct SessionParams {
    /// The client's startup settings as given: lower-case name -> value.
    startup_values: BTreeMap<String, String>,
    /// Name -> SQL of the startup settings, and of the current ones. `current` shares
    /// `startup`'s map until the client changes a setting (most never do), so an idle
    /// client pays for its settings once, not twice (issue 16).
    startup: Arc<BTreeMap<String, String>>,
    current: Arc<BTreeMap<String, String>>,
    fingerprint: u64,
}

fn quote_literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// A startup setting as SQL. `set_config` parses the value as the startup packet
/// does (so `search_path=a,b` is a list, not one quoted name), unlike `SET x TO '…'`.
fn set_sql(name: &str, value: &str) -> String {
    format!(
        "SELECT pg_catalog.set_config({}, {}, false)",
        quote_literal(name),
        quote_literal(value)
    )
}

/// Splits libpq's `options` (`-c name=value`, `--name=value`, backslash escapes).
fn parse_options(options: &str) -> Result<Vec<(String, String)>, PgError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let setting = if w == "-c" {
            it.next()
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            w.strip_prefix("-c").map(str::to_string)
        };
        let Some((k, v)) = setting.as_deref().and_then(|s| s.split_once('=')) else {
            return Err(PgError::fatal(
                "08P01",
                format!("unsupported startup option \"{w}\": only -c name=value is supported"),
            ));
        };
        out.push((k.replace('-', "_"), v.to_string()));
    }
    Ok(out)
}

impl SessionParams {
    /// Settings from the startup packet (including `options=-c ...`).
    pub fn from_startup(params: &[(String, String)]) -> Result<Self, PgError> {
        let mut s = SessionParams::default();
        for (k, v) in params {
            if k == "options" {
                for (k, v) in parse_options(v)? {
                    Arc::make_mut(&mut s.startup).insert(k.to_ascii_lowercase(), set_sql(&k, &v));
                    s.startup_values.insert(k.to_ascii_lowercase(), v);
                }
            } else if !NOT_SETTINGS.contains(&k.as_str()) && !k.starts_with("_pq_.") {
                Arc::make_mut(&mut s.startup).insert(k.to_ascii_lowercase(), set_sql(k, v));
                s.startup_values.insert(k.to_ascii_lowercase(), v.clone());
            }
        }
        s.current = s.startup.clone();
        s.refresh();
        Ok(s)
    }

    fn refresh(&mut self) {
        self.fingerprint = if self.current.is_empty() {
            EMPTY_PARAMS
        } else {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.current.hash(&mut h);
            match h.finish() {
                EMPTY_PARAMS | UNKNOWN_PARAMS => 1,
                f => f,
            }
        };
    }

    /// The value the client gave at startup for a setting (any case).
    pub fn startup_value(&self, name: &str) -> Option<&str> {
        self.startup_values
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// SQL that takes a server from the state `applied` to this client's settings.
    pub fn sync_sql(&self, applied: u64) -> String {
        let mut parts: Vec<&str> = Vec::with_capacity(self.current.len() + 3);
        if applied != EMPTY_PARAMS {
            parts.extend(RESET_SQL);
        }
        parts.extend(self.in_replay_order().map(|(_, sql)| sql));
        parts.join(";\n")
    }

    /// The client's settings as (name, SQL), identity last: session authorization, then
    /// role.
    pub fn in_replay_order(&self) -> impl Iterator<Item = (&str, &str)> {
        let plain = self
            .current
            .iter()
            .filter(|(k, _)| !IDENTITY_SETTINGS.contains(&k.as_str()));
        let identity = IDENTITY_SETTINGS
            .iter()
            .filter_map(|k| self.current.get_key_value(*k));
        plain.chain(identity).map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Forgets a setting that can no longer be applied (its replay failed: a role
    /// dropped since, a privilege revoked): the client keeps working without it.
    pub fn forget(&mut self, name: &str) {
        Arc::make_mut(&mut self.current).remove(name);
        self.refresh();
    }

    /// Applies the session effects of a statement that completed outside a failed or
    /// rolled-back transaction. Returns true when the server's settings may now differ
    /// from this client's (after a RESET, which restores server defaults).
    pub fn apply(&mut self, ops: &[SessionOp]) -> bool {
        let mut server_unknown = false;
        for op in ops {
            match op {
                SessionOp::Set { name, sql } => {
                    let current = Arc::make_mut(&mut self.current);
                    if name == "session_authorization" {
                        current.remove("role");
                    }
                    current.insert(name.clone(), sql.clone());
                }
                SessionOp::Reset { name } => {
                    let current = Arc::make_mut(&mut self.current);
                    if name == "session_authorization" {
                        current.remove("role");
                    }
                    match self.startup.get(name) {
                        Some(sql) => {
                            current.insert(name.clone(), sql.clone());
                        }
                        None => {
                            current.remove(name);
                        }
                    }
                    server_unknown = true;
                }
                SessionOp::ResetAll => {
                    let mut next = self.startup.clone();
                    for k in IDENTITY_SETTINGS {
                        if let Some(v) = self.current.get(*k) {
                            Arc::make_mut(&mut next).insert(k.to_string(), v.clone());
                        }
                    }
                    self.current = next;
                    server_unknown = true;
                }
                SessionOp::DiscardAll => {
                    self.current = self.startup.clone();
                    server_unknown = true;
                }
                _ => {}
            }
        }
        self.refresh();
        server_unknown
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }

    /// A JWT gateway session: the token's role and claims become settings of the
    /// session's own (startup) set, so every server connection it takes gets them, and
    /// `RESET`s return to them. Startup values that would set either are refused.
    pub fn set_gateway_identity(
        &mut self,
        id: &crate::gateway::claims::Identity,
    ) -> Result<(), PgError> {
        if let Some(k) = self
            .startup
            .keys()
            .find(|k| IDENTITY_SETTINGS.contains(&k.as_str()) || k.starts_with("request.jwt"))
        {
            return Err(PgError::fatal(
                "42501",
                format!("startup parameter \"{k}\" is not allowed through the JWT gateway (the role and claims come from the token)"),
            ));
        }
        for (k, sql) in [
            ("request.jwt.claims", id.claims_sql()),
            ("role", id.role_sql()),
        ] {
            Arc::make_mut(&mut self.startup).insert(k.to_string(), sql.clone());
            Arc::make_mut(&mut self.current).insert(k.to_string(), sql);
        }
        self.refresh();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn startup_settings_become_sets() {
        let s = SessionParams::from_startup(&kv(&[
            ("user", "app"),
            ("database", "app"),
            ("application_name", "it's"),
            ("options", "-c search_path=a,b --statement-timeout=5s"),
        ]))
        .unwrap();
        let sql = s.sync_sql(EMPTY_PARAMS);
        assert!(sql.contains("set_config('application_name', 'it''s', false)"));
        assert!(sql.contains("set_config('search_path', 'a,b', false)"));
        assert!(sql.contains("set_config('statement_timeout', '5s', false)"));
        assert!(!sql.contains("RESET ALL"));
        assert!(s.sync_sql(7).starts_with("RESET ALL"));
        assert!(SessionParams::from_startup(&kv(&[("options", "-x")])).is_err());
    }

    #[test]
    fn fingerprint_follows_sets_and_resets() {
        let mut s = SessionParams::from_startup(&kv(&[("user", "u")])).unwrap();
        assert_eq!(s.fingerprint(), EMPTY_PARAMS);
        s.apply(&[SessionOp::Set {
            name: "work_mem".into(),
            sql: "SET work_mem = '8MB'".into(),
        }]);
        let f1 = s.fingerprint();
        assert_ne!(f1, EMPTY_PARAMS);
        assert!(s.apply(&[SessionOp::Reset {
            name: "work_mem".into()
        }]));
        assert_eq!(s.fingerprint(), EMPTY_PARAMS);
    }

    fn set(name: &str, sql: &str) -> SessionOp {
        SessionOp::Set {
            name: name.into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn reset_returns_to_the_startup_value() {
        let mut s = SessionParams::from_startup(&kv(&[("DateStyle", "Postgres, MDY")])).unwrap();
        s.apply(&[set("datestyle", "SET datestyle = ISO")]);
        assert!(s.apply(&[SessionOp::Reset {
            name: "datestyle".into()
        }]));
        assert!(s
            .sync_sql(EMPTY_PARAMS)
            .contains("set_config('DateStyle', 'Postgres, MDY', false)"));
        s.apply(&[set("datestyle", "SET datestyle = ISO")]);
        s.apply(&[SessionOp::ResetAll]);
        assert!(!s.sync_sql(EMPTY_PARAMS).contains("ISO"));
        assert!(s.sync_sql(EMPTY_PARAMS).contains("Postgres, MDY"));
    }

    #[test]
    fn identity_follows_postgresql() {
        let mut s = SessionParams::from_startup(&kv(&[("user", "u")])).unwrap();
        // RESET ALL keeps the role; DISCARD ALL does not.
        s.apply(&[
            set("role", "SET ROLE carol"),
            set("work_mem", "SET work_mem = '8MB'"),
        ]);
        s.apply(&[SessionOp::ResetAll]);
        assert_eq!(s.sync_sql(EMPTY_PARAMS), "SET ROLE carol");
        s.apply(&[SessionOp::DiscardAll]);
        assert_eq!(s.sync_sql(EMPTY_PARAMS), "");
        // SET ROLE carol; SET SESSION AUTHORIZATION bob; RESET SESSION AUTHORIZATION:
        // back to the login user, no role.
        s.apply(&[
            set("role", "SET ROLE carol"),
            set("session_authorization", "SET SESSION AUTHORIZATION bob"),
        ]);
        assert_eq!(s.sync_sql(EMPTY_PARAMS), "SET SESSION AUTHORIZATION bob");
        s.apply(&[SessionOp::Reset {
            name: "session_authorization".into(),
        }]);
        assert_eq!(s.sync_sql(EMPTY_PARAMS), "");
        // Replay order: settings, then session authorization, then role.
        s.apply(&[
            set("session_authorization", "SET SESSION AUTHORIZATION bob"),
            set("role", "SET ROLE carol"),
            set("work_mem", "SET work_mem = '8MB'"),
        ]);
        assert_eq!(
            s.sync_sql(7),
            "RESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\nSET work_mem = '8MB';\nSET SESSION AUTHORIZATION bob;\nSET ROLE carol"
        );
    }
}
