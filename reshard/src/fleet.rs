//! Sessions to every shard of a reshard, both sides, and the tables it moves (read from
//! current shard 0, the source of the schema).

use crate::catalog::{self, Table};
use crate::conn::{self, Conn};
use crate::error::{Error, Result};
use crate::names::Direction;
use crate::state::{self, State};
use crate::topology::{Login, Spec};
use orochi_config::Config;

pub struct Fleet {
    pub spec: Spec,
    pub login: Login,
    pub old: Vec<Conn>,
    pub new: Vec<Conn>,
    /// The user tables of old shard 0, distributed ones with their key.
    pub tables: Vec<Table>,
}

impl Fleet {
    /// Connects to every shard. With `create_owner`, missing new databases are created
    /// owned by that role; the indices of those created are returned.
    pub async fn connect(
        spec: Spec,
        login: Login,
        create_owner: Option<&str>,
    ) -> Result<(Fleet, Vec<usize>)> {
        let mut old = Vec::new();
        for (i, e) in spec.old_endpoints().iter().enumerate() {
            old.push(conn::connect(e, &login, &format!("old shard {i}")).await?);
        }
        let mut new = Vec::new();
        let mut created = Vec::new();
        for (j, e) in spec.new_endpoints().iter().enumerate() {
            let label = format!("new shard {j}");
            match create_owner {
                Some(owner) => {
                    let (c, made) = conn::connect_or_create(e, &login, &label, owner).await?;
                    if made {
                        created.push(j);
                    }
                    new.push(c);
                }
                None => new.push(conn::connect(e, &login, &label).await?),
            }
        }
        let tables = catalog::tables(&old[0], &spec.tables).await?;
        Ok((
            Fleet {
                spec,
                login,
                old,
                new,
                tables,
            },
            created,
        ))
    }

    /// The shards rows come from / go to in `dir`.
    pub fn src(&self, dir: Direction) -> &[Conn] {
        match dir {
            Direction::Forward => &self.old,
            Direction::Reverse => &self.new,
        }
    }
    pub fn dst(&self, dir: Direction) -> &[Conn] {
        match dir {
            Direction::Forward => &self.new,
            Direction::Reverse => &self.old,
        }
    }
    pub fn all(&self) -> impl Iterator<Item = &Conn> {
        self.old.iter().chain(self.new.iter())
    }

    /// Every session of the tool passes the reshard's own DDL guard and fences.
    pub async fn bypass_guards(&self) -> Result<()> {
        for c in self.all() {
            c.bypass_guards().await?;
        }
        Ok(())
    }

    pub fn key_types(&self) -> Vec<(u32, String)> {
        catalog::key_types(&self.tables)
    }

    pub async fn write_state(&self, phase: state::Phase, note: &str) -> Result<()> {
        state::write(&self.old, &self.new, &self.spec, phase, note).await
    }
}

/// The reshard recorded on the shards of CURRENT.toml's pools (`pool`, or every pool
/// with shards): the newest active one, else the newest.
pub async fn find_state(config: &Config, pool: Option<&str>) -> Result<(State, Login)> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (name, p) in &config.pools {
        if pool.is_some_and(|want| want != name) {
            continue;
        }
        let login = crate::topology::login(config, name)?;
        for (i, s) in crate::topology::shards_of(config, name)?.iter().enumerate() {
            match conn::connect(&s.endpoint(), &login, &format!("pool {name} shard {i}")).await {
                Ok(c) => match state::read_one(&c, name).await {
                    Ok(Some(st)) => found.push((st, login.clone())),
                    Ok(None) => {}
                    Err(e) => errors.push(e.to_string()),
                },
                Err(e) => errors.push(e.to_string()),
            }
        }
        let _ = p;
    }
    let best = found.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>();
    match state::newest(best) {
        Some(st) => {
            let login = found
                .into_iter()
                .find(|(s, _)| s.spec.id == st.spec.id)
                .map(|(_, l)| l)
                .ok_or_else(|| Error::State("lost the login".into()))?;
            Ok((st, login))
        }
        None if errors.is_empty() => Err(Error::State(
            "no reshard is recorded on the shards of this configuration (run `orochi-router reshard start` first)"
                .into(),
        )),
        None => Err(Error::State(format!(
            "no reshard found; some shards could not be read:\n{}",
            errors.join("\n")
        ))),
    }
}
