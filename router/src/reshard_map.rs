//! Shard maps set by `RESHARD SWITCH` (the online-resharding tool's cutover and reverse,
//! SPEC §10). The switch (`App::switch_shard_map`) replaces the pool's shard list in the
//! running configuration and rebuilds the registry as a reload does; sessions pick the new
//! map up at their next transaction (the pool is paused meanwhile, so none runs on the old
//! one).
//!
//! A switched map survives RELOAD/SIGHUP with a configuration file that still lists the
//! old shards: otherwise a reload during a reshard would send writes back to fenced
//! databases. It is forgotten once a reloaded file lists the same shards itself.

use orochi_config::{Config, Role, Server, Shard};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct ShardMaps(Mutex<BTreeMap<String, Vec<Shard>>>);

impl ShardMaps {
    /// The configuration with every switched pool's map applied; maps the file already
    /// states are forgotten.
    pub fn apply(&self, mut config: Config) -> Config {
        let Ok(mut maps) = self.0.lock() else {
            return config;
        };
        maps.retain(|pool, shards| match config.pools.get_mut(pool) {
            Some(p) if p.shards == *shards => false,
            Some(p) => {
                tracing::warn!(pool = %pool, "the configuration lists shards this router was switched away from by a reshard; keeping the switched map");
                p.shards = shards.clone();
                true
            }
            None => false,
        });
        config
    }

    pub fn set(&self, pool: &str, shards: Vec<Shard>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(pool.to_string(), shards);
        }
    }
}

/// Parses the JSON map: `[{"database": "d", "servers": [["host", 5432, "primary"]]}]`.
pub fn parse_map(map: &str) -> Result<Vec<Shard>, String> {
    let v: serde_json::Value =
        serde_json::from_str(map).map_err(|e| format!("shard map is not JSON: {e}"))?;
    let list = v
        .as_array()
        .ok_or("shard map: expected an array of shards")?;
    if list.is_empty() {
        return Err("shard map: no shard".into());
    }
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let database = s["database"]
            .as_str()
            .filter(|d| !d.is_empty())
            .ok_or(format!("shard {i}: missing \"database\""))?
            .to_string();
        let servers = s["servers"]
            .as_array()
            .ok_or(format!("shard {i}: missing \"servers\""))?;
        let mut list = Vec::new();
        for sv in servers {
            let host = sv[0]
                .as_str()
                .ok_or(format!("shard {i}: server without host"))?;
            let port = sv[1]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(format!("shard {i}: bad port"))?;
            let role = match sv[2].as_str().unwrap_or("primary") {
                "primary" => Role::Primary,
                "replica" => Role::Replica,
                "auto" => Role::Auto,
                r => return Err(format!("shard {i}: unknown role \"{r}\"")),
            };
            list.push(Server {
                host: host.to_string(),
                port,
                role,
                weight: 1,
            });
        }
        if list.is_empty() {
            return Err(format!("shard {i}: no server"));
        }
        out.push(Shard {
            database,
            servers: list,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_parse_and_bad_ones_are_named() {
        let m = parse_map(
            r#"[{"database":"a","servers":[["h",5432,"primary"],["r",5433,"replica"]]}]"#,
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].servers[1].role, Role::Replica);
        assert!(parse_map("[]").unwrap_err().contains("no shard"));
        assert!(parse_map(r#"[{"servers":[]}]"#)
            .unwrap_err()
            .contains("database"));
        assert!(
            parse_map(r#"[{"database":"a","servers":[["h",70000,"primary"]]}]"#)
                .unwrap_err()
                .contains("port")
        );
    }
}
