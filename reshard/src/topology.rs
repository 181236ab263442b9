//! Which pool is resharded, from which databases to which, and as whom: read from
//! CURRENT.toml and TARGET.toml (or, once `start` ran, from the spec recorded on the
//! shards, so later commands need only CURRENT.toml).

use crate::error::{Error, Result};
use orochi_config::{Config, KeyType, Role, Secret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One shard as the routers know it: its database and servers (primary first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub database: String,
    /// (host, port, role) as in `servers = [...]`.
    pub servers: Vec<(String, u16, String)>,
}

impl ShardSpec {
    fn from_config(s: &orochi_config::Shard) -> ShardSpec {
        let mut servers: Vec<_> = s
            .servers
            .iter()
            .map(|v| {
                let role = match v.role {
                    Role::Primary => "primary",
                    Role::Replica => "replica",
                    Role::Auto => "auto",
                };
                (v.host.clone(), v.port, role.to_string())
            })
            .collect();
        // The primary first: the tool writes only there.
        servers.sort_by_key(|s| s.2 != "primary");
        ShardSpec {
            database: s.database.clone(),
            servers,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        let (host, port, _) = self.servers.first().cloned().unwrap_or_default();
        Endpoint {
            host,
            port,
            database: self.database.clone(),
        }
    }
}

/// Where the tool connects for one shard: its primary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl Endpoint {
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.database)
    }
}

/// A distributed table of the pool, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistTable {
    /// As written in `[[sharding.tables]]` (maybe schema-qualified).
    pub name: String,
    pub column: String,
    pub key_type: String,
}

impl DistTable {
    /// True when the catalog table `schema.name` is this configured table (the router
    /// matches the unqualified part case-insensitively).
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        match self.name.rsplit_once('.') {
            Some((s, n)) => s.eq_ignore_ascii_case(schema) && n.eq_ignore_ascii_case(name),
            None => self.name.eq_ignore_ascii_case(name),
        }
    }
}

/// What a reshard moves: recorded on every shard as JSON by `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub id: String,
    pub pool: String,
    pub old: Vec<ShardSpec>,
    pub new: Vec<ShardSpec>,
    pub tables: Vec<DistTable>,
}

impl Spec {
    pub fn old_endpoints(&self) -> Vec<Endpoint> {
        self.old.iter().map(ShardSpec::endpoint).collect()
    }
    pub fn new_endpoints(&self) -> Vec<Endpoint> {
        self.new.iter().map(ShardSpec::endpoint).collect()
    }
}

/// The role the tool logs in as, on every shard.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub password: Option<String>,
}

/// OROCHI_RESHARD_USER / OROCHI_RESHARD_PASSWORD, else the pool's first server user with
/// a usable password. Logical replication needs a superuser on PostgreSQL 15; `plan`
/// says so when the role is not one.
pub fn login(config: &Config, pool: &str) -> Result<Login> {
    if let Ok(user) = std::env::var("OROCHI_RESHARD_USER") {
        return Ok(Login {
            user,
            password: std::env::var("OROCHI_RESHARD_PASSWORD").ok(),
        });
    }
    let p = config
        .pools
        .get(pool)
        .ok_or_else(|| Error::Config(format!("no pool \"{pool}\" in the configuration")))?;
    let u = p
        .users
        .iter()
        .find(|u| u.server_password.is_some() || matches!(u.password, Secret::Plain(_)))
        .or(p.users.first())
        .ok_or_else(|| {
            Error::Config(format!(
                "pool \"{pool}\" has no user; set OROCHI_RESHARD_USER and OROCHI_RESHARD_PASSWORD"
            ))
        })?;
    let password = u.server_password.clone().or(match &u.password {
        Secret::Plain(p) | Secret::Md5(p) => Some(p.clone()),
        _ => None,
    });
    Ok(Login {
        user: u.server_username.clone(),
        password,
    })
}

pub fn shards_of(config: &Config, pool: &str) -> Result<Vec<ShardSpec>> {
    let p = config
        .pools
        .get(pool)
        .ok_or_else(|| Error::Config(format!("no pool \"{pool}\" in the configuration")))?;
    Ok(p.shards.iter().map(ShardSpec::from_config).collect())
}

/// The distributed tables of `pool` (`[[sharding.tables]]` for it or for every pool).
pub fn tables_of(config: &Config, pool: &str) -> Vec<DistTable> {
    config
        .sharding
        .tables
        .iter()
        .filter(|t| t.pool.as_deref().is_none_or(|p| p == pool))
        .map(|t| DistTable {
            name: t.name.clone(),
            column: t.column.clone(),
            key_type: orochi_sharding::type_name(t.data_type).to_string(),
        })
        .collect()
}

/// The reshard `current` → `target`: the pool given, else the only pool whose shard list
/// differs. Old and new databases must not overlap (targets are new databases).
pub fn from_configs(current: &Config, target: &Config, pool: Option<&str>) -> Result<Spec> {
    let pool = match pool {
        Some(p) => p.to_string(),
        None => {
            let changed: Vec<&String> = current
                .pools
                .keys()
                .filter(|p| {
                    target.pools.get(*p).map(|t| &t.shards)
                        != current.pools.get(*p).map(|c| &c.shards)
                })
                .collect();
            match changed.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(Error::Config(
                        "the target configuration changes no pool's shards: nothing to reshard"
                            .into(),
                    ))
                }
                many => {
                    return Err(Error::Config(format!(
                    "the target changes the shards of several pools ({}): choose one with --pool",
                    many.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
                }
            }
        }
    };
    let old = shards_of(current, &pool)?;
    let new = shards_of(target, &pool)
        .map_err(|_| Error::Config(format!("the target configuration has no pool \"{pool}\"")))?;
    if old.is_empty() || new.is_empty() {
        return Err(Error::Config(format!(
            "pool \"{pool}\" needs shards on both sides"
        )));
    }
    let old_eps: Vec<Endpoint> = old.iter().map(ShardSpec::endpoint).collect();
    for n in &new {
        let e = n.endpoint();
        if old_eps.contains(&e) {
            return Err(Error::Config(format!(
                "target shard {e} is also a current shard: the targets must be new databases (the old ones are never written into until complete)"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in old_eps
        .iter()
        .chain(new.iter().map(|n| n.endpoint()).collect::<Vec<_>>().iter())
    {
        if !seen.insert(e.clone()) {
            return Err(Error::Config(format!("database {e} is named twice")));
        }
    }
    let tables = tables_of(current, &pool);
    if tables != tables_of(target, &pool) {
        return Err(Error::Config(
            "the target configuration must keep the pool's [[sharding.tables]] as they are".into(),
        ));
    }
    if tables.is_empty() {
        return Err(Error::Config(format!(
            "pool \"{pool}\" has no distributed table ([[sharding.tables]]): nothing decides where rows go"
        )));
    }
    let id = reshard_id(&pool, &old, &new);
    Ok(Spec {
        id,
        pool,
        old,
        new,
        tables,
    })
}

/// The key type's name as PostgreSQL spells it.
pub fn key_type(name: &str) -> Option<KeyType> {
    Some(match name {
        "bigint" => KeyType::BigInt,
        "integer" => KeyType::Integer,
        "smallint" => KeyType::SmallInt,
        "text" => KeyType::Text,
        "uuid" => KeyType::Uuid,
        _ => return None,
    })
}

/// The reshard's id, from which `names` names every object: the same pool and shard
/// maps give the same id on any machine, so a rerun finds what an earlier run made.
/// 8 hex digits of SHA-256 over the pool and both shard lists.
pub fn reshard_id(pool: &str, old: &[ShardSpec], new: &[ShardSpec]) -> String {
    let mut h = Sha256::new();
    h.update(pool.as_bytes());
    for (tag, list) in [("old", old), ("new", new)] {
        h.update(tag.as_bytes());
        for s in list {
            h.update(s.database.as_bytes());
            for (host, port, _) in &s.servers {
                h.update(format!("|{host}:{port}").as_bytes());
            }
            h.update(b";");
        }
    }
    let d = h.finalize();
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_deterministic() {
        let s = |d: &str| ShardSpec {
            database: d.into(),
            servers: vec![("h".into(), 1, "primary".into())],
        };
        let a = reshard_id("app", &[s("a")], &[s("b"), s("c")]);
        assert_eq!(a, reshard_id("app", &[s("a")], &[s("b"), s("c")]));
        assert_ne!(a, reshard_id("app", &[s("a")], &[s("c"), s("b")]));
        assert_eq!(a.len(), 8);
    }
}
