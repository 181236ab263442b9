//! `RESHARD SWITCH <pool> '<shards json>'`: the online-resharding tool (`orochi-router
//! reshard cutover|reverse`) moves a pool to another shard map while the pool is paused.
//! The answer is one row (pool, shards, databases) naming the map the router now uses:
//! the tool compares it with what it asked for, so a switch is confirmed, not assumed.
//!
//! The map is JSON, `[{"database": "app_n0", "servers": [["host", 5432, "primary"]]}, …]`
//! (the shard lists of `orochi.toml`), because the tool may run on another machine than
//! the router and the map must arrive whole.

use crate::table::{text, ColType, Table};
use crate::AdminError;

/// Parses the arguments after `RESHARD` (`text` is the whole statement, trimmed, without
/// a trailing `;`).
pub fn parse(text: &str) -> Result<(String, String), AdminError> {
    let usage = || {
        AdminError::BadArgument(
            "usage: RESHARD SWITCH <pool> '<shard map as JSON>' (sent by orochi-router reshard cutover)".into(),
        )
    };
    let rest = text.get("RESHARD".len()..).ok_or_else(usage)?.trim_start();
    let rest = rest
        .get(..6)
        .filter(|w| w.eq_ignore_ascii_case("SWITCH"))
        .map(|_| rest[6..].trim_start())
        .ok_or_else(usage)?;
    let (pool, map) = rest.split_once(char::is_whitespace).ok_or_else(usage)?;
    let map = map.trim();
    let inner = map
        .strip_prefix('\'')
        .and_then(|m| m.strip_suffix('\''))
        .ok_or_else(usage)?;
    Ok((pool.to_string(), inner.replace("''", "'")))
}

/// The confirmation row.
pub fn confirmation(pool: &str, databases: &[String]) -> Table {
    let mut t = Table::new(&[
        ("pool", ColType::Text),
        ("shards", ColType::Int4),
        ("databases", ColType::Text),
    ]);
    t.push(vec![
        text(pool),
        text(databases.len().to_string()),
        text(databases.join(",")),
    ]);
    t
}

#[cfg(test)]
mod tests {
    use crate::Command;

    #[test]
    fn parses_the_switch() {
        let c = Command::parse("reshard switch app '[{\"database\":\"a''b\"}]';").unwrap();
        assert_eq!(
            c,
            Command::ReshardSwitch {
                pool: "app".into(),
                map: "[{\"database\":\"a'b\"}]".into()
            }
        );
        assert!(Command::parse("RESHARD SWITCH app").is_err());
        assert!(Command::parse("RESHARD app '[]'").is_err());
    }
}
