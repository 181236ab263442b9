//! Admin console commands: a closed set (house rule 9), parsed from one statement.
//!
//! The grammar is PgBouncer's: a keyword, maybe a second word, maybe a database name or
//! id; case-insensitive; a trailing `;` is allowed. Anything else is an error that lists
//! the valid commands, because an operator at a psql prompt has no other manual.

use crate::AdminError;

/// What `SHOW <x>` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    Pools,
    Clients,
    Servers,
    Stats,
    Databases,
    Config,
    Version,
    Lists,
    Shards,
    Transactions,
    PoolNodes,
    Help,
}

impl Show {
    pub const ALL: [Show; 12] = [
        Show::Pools,
        Show::Clients,
        Show::Servers,
        Show::Stats,
        Show::Databases,
        Show::Config,
        Show::Version,
        Show::Lists,
        Show::Shards,
        Show::Transactions,
        Show::PoolNodes,
        Show::Help,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Show::Pools => "POOLS",
            Show::Clients => "CLIENTS",
            Show::Servers => "SERVERS",
            Show::Stats => "STATS",
            Show::Databases => "DATABASES",
            Show::Config => "CONFIG",
            Show::Version => "VERSION",
            Show::Lists => "LISTS",
            Show::Shards => "SHARDS",
            Show::Transactions => "TRANSACTIONS",
            Show::PoolNodes => "POOL_NODES",
            Show::Help => "HELP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Show(Show),
    Reload,
    /// `None` = every database.
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    KillClient(u64),
    Shutdown,
    /// `RESHARD SWITCH pool '<json>'`: use another shard map for the pool (see `reshard`).
    ReshardSwitch {
        pool: String,
        map: String,
    },
    /// `SET name = value` / `SET name TO value`: accepted and ignored (drivers and tools
    /// send `SET application_name`, `SET extra_float_digits`, …).
    Set,
}

/// The valid commands, for error messages and `SHOW HELP`.
pub const HELP: &str = "SHOW POOLS|CLIENTS|SERVERS|STATS|DATABASES|CONFIG|VERSION|LISTS|SHARDS|TRANSACTIONS|POOL_NODES|HELP, \
RELOAD, PAUSE [db], RESUME [db], RECONNECT [db], KILL_CLIENT id, SHUTDOWN, RESHARD SWITCH db 'map'";

impl Command {
    /// Parses one statement (without surrounding whitespace concerns).
    pub fn parse(statement: &str) -> Result<Command, AdminError> {
        let text = statement.trim();
        let text = text.strip_suffix(';').unwrap_or(text).trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        let unknown = || AdminError::UnknownCommand(text.to_string());
        let Some(first) = words.first() else {
            return Err(unknown());
        };
        let first = first.to_ascii_uppercase();
        let optional_db = |cmd: fn(Option<String>) -> Command| match words.len() {
            1 => Ok(cmd(None)),
            2 => Ok(cmd(Some(identifier(words[1])))),
            _ => Err(unknown()),
        };
        match first.as_str() {
            "SHOW" if words.len() == 2 => {
                let what = words[1].to_ascii_uppercase();
                Show::ALL
                    .into_iter()
                    .find(|s| s.keyword() == what)
                    .map(Command::Show)
                    .ok_or_else(unknown)
            }
            "RELOAD" if words.len() == 1 => Ok(Command::Reload),
            "SHUTDOWN" if words.len() == 1 => Ok(Command::Shutdown),
            "PAUSE" => optional_db(Command::Pause),
            "RESUME" => optional_db(Command::Resume),
            "RECONNECT" => optional_db(Command::Reconnect),
            "KILL_CLIENT" if words.len() == 2 => {
                words[1].parse().map(Command::KillClient).map_err(|_| {
                    AdminError::BadArgument(format!(
                        "KILL_CLIENT needs a client id (the id column of SHOW CLIENTS), got '{}'",
                        words[1]
                    ))
                })
            }
            "SET" if words.len() >= 2 => Ok(Command::Set),
            "RESHARD" => {
                crate::reshard::parse(text).map(|(pool, map)| Command::ReshardSwitch { pool, map })
            }
            _ => Err(unknown()),
        }
    }

    /// The CommandComplete tag PgBouncer sends for this command.
    pub fn tag(&self) -> &'static str {
        match self {
            Command::Show(_) => "SHOW",
            Command::Reload => "RELOAD",
            Command::Pause(_) => "PAUSE",
            Command::Resume(_) => "RESUME",
            Command::Reconnect(_) => "RECONNECT",
            Command::KillClient(_) => "KILL_CLIENT",
            Command::Shutdown => "SHUTDOWN",
            Command::Set => "SET",
            Command::ReshardSwitch { .. } => "RESHARD",
        }
    }
}

/// A database name as typed: `"Quoted"` keeps its case and loses the quotes.
fn identifier(word: &str) -> String {
    word.strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .map(|w| w.replace("\"\"", "\""))
        .unwrap_or_else(|| word.to_string())
}

/// Splits a simple-query string into statements on `;` outside quotes.
pub fn split_statements(query: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in query.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                out.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&query[start..]);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_show_in_any_case() {
        for s in Show::ALL {
            let kw = s.keyword();
            assert_eq!(
                Command::parse(&format!("SHOW {kw}")).unwrap(),
                Command::Show(s)
            );
            assert_eq!(
                Command::parse(&format!("  show {};  ", kw.to_lowercase())).unwrap(),
                Command::Show(s)
            );
        }
        assert_eq!(
            Command::parse("Show Pool_Nodes").unwrap(),
            Command::Show(Show::PoolNodes)
        );
    }

    #[test]
    fn parses_actions() {
        assert_eq!(Command::parse("reload;").unwrap(), Command::Reload);
        assert_eq!(Command::parse("PAUSE").unwrap(), Command::Pause(None));
        assert_eq!(
            Command::parse("pause app").unwrap(),
            Command::Pause(Some("app".into()))
        );
        assert_eq!(
            Command::parse("RESUME \"App\"").unwrap(),
            Command::Resume(Some("App".into()))
        );
        assert_eq!(
            Command::parse("reconnect").unwrap(),
            Command::Reconnect(None)
        );
        assert_eq!(
            Command::parse("KILL_CLIENT 42").unwrap(),
            Command::KillClient(42)
        );
        assert_eq!(Command::parse("shutdown").unwrap(), Command::Shutdown);
        assert_eq!(
            Command::parse("SET application_name = 'psql'").unwrap(),
            Command::Set
        );
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        for bad in [
            "",
            "SELECT 1",
            "SHOW",
            "SHOW FOO",
            "SHOW POOLS extra",
            "PAUSE a b",
            "RELOAD now",
            "KILL_CLIENT",
            "SET",
        ] {
            let err = Command::parse(bad).unwrap_err();
            assert!(
                matches!(err, AdminError::UnknownCommand(_)),
                "{bad}: {err:?}"
            );
            let pg = err.to_pg();
            assert_eq!(pg.fields.code, "42601");
            assert!(
                pg.fields.message.contains("SHOW POOLS|CLIENTS"),
                "{}",
                pg.fields.message
            );
            assert!(pg.fields.message.contains("KILL_CLIENT id"));
        }
        assert!(matches!(
            Command::parse("KILL_CLIENT x1"),
            Err(AdminError::BadArgument(_))
        ));
    }

    #[test]
    fn splits_statements_outside_quotes() {
        assert_eq!(
            split_statements("SHOW POOLS; SHOW VERSION;"),
            vec!["SHOW POOLS", " SHOW VERSION"]
        );
        assert_eq!(
            split_statements("SET a = ';'; RELOAD"),
            vec!["SET a = ';'", " RELOAD"]
        );
        assert!(split_statements(" ; ;").is_empty());
    }
}
