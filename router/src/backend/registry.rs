//! The registry: every configured (pool, user) with its per-shard, per-server pools,
//! built from one config snapshot. A reload builds a new registry and reuses the server
//! pools whose definition did not change, so their idle connections survive.

use super::conn::ServerTarget;
use super::pool::{PoolSettings, ServerPool};
use orochi_config::{Config, Pool, PoolMode, Role, Secret, User};
use orochi_wire::scram::Verifier;
use std::collections::HashMap;
use std::sync::Arc;

/// How a client of a user proves who it is.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    Trust,
    /// Stored `md5…` hash.
    Md5(String),
    Scram(Verifier),
}

impl ClientAuth {
    fn from_user(u: &User) -> Self {
        match &u.password {
            Secret::None => ClientAuth::Trust,
            Secret::Md5(h) => ClientAuth::Md5(h.clone()),
            Secret::Plain(p) => ClientAuth::Scram(Verifier::from_password(p)),
            Secret::Scram(v) => match Verifier::parse(v) {
                Some(v) => ClientAuth::Scram(v),
                // The config crate validated the format; an unparsable verifier locks the user out.
                None => ClientAuth::Scram(Verifier::from_password(&random_secret())),
            },
        }
    }
}

/// A password nobody knows.
fn random_secret() -> String {
    use rand::Rng;
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// One server of one shard, as the executor sees it.
pub struct ServerSlot {
    pub role: Role,
    pub weight: u32,
    pub pool: Arc<ServerPool>,
}

/// Where a checkout must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The shard's primary: writes, transactions, anything in doubt.
    Primary,
    /// A read: a replica (or the primary when `primary_reads_enabled`), by load balancing.
    Read,
}

/// Everything a client session of (pool, user) needs.
pub struct UserPools {
    pub pool_name: String,
    pub user: User,
    pub pool: Pool,
    pub auth: ClientAuth,
    pub mode: PoolMode,
    /// `shards[i]` = the servers of shard i.
    pub shards: Vec<Vec<ServerSlot>>,
    /// Some shard has a replica: only then is a statement worth classifying as a read.
    pub has_replicas: bool,
    /// Round-robin position per shard.
    rr: Vec<std::sync::atomic::AtomicUsize>,
    /// The sharding planner's view of this pool (pools with several shards only).
    pub sharding: Option<Arc<crate::planner::sharding::ShardingSchema>>,
}

impl UserPools {
    /// The server to use for shard `i` (primary first; replicas are the replica issue's job).
    pub fn primary(&self, shard: usize) -> Option<&Arc<ServerPool>> {
        let servers = self.shards.get(shard)?;
        servers
            .iter()
            .find(|s| s.role == Role::Primary)
            .or_else(|| servers.first())
            .map(|s| &s.pool)
    }
    pub fn all_server_pools(&self) -> impl Iterator<Item = &Arc<ServerPool>> {
        self.shards.iter().flatten().map(|s| &s.pool)
    }

    /// The server pool for a checkout on `shard`. Reads are balanced over the replicas
    /// that are reachable (plus the primary when `primary_reads_enabled`); with none
    /// left, reads go to the primary. Servers with role `auto` get no reads until their
    /// role is known.
    pub fn pick(&self, shard: usize, target: Target) -> Option<&Arc<ServerPool>> {
        use orochi_config::LoadBalancingMode as Lb;
        use std::sync::atomic::Ordering;
        let primary = self.primary(shard)?;
        if target == Target::Primary {
            return Some(primary);
        }
        let servers = self.shards.get(shard)?;
        let candidates: Vec<&ServerSlot> = servers
            .iter()
            .filter(|s| {
                s.role == Role::Replica
                    || (self.pool.primary_reads_enabled && Arc::ptr_eq(&s.pool, primary))
            })
            .filter(|s| !s.pool.banned())
            .collect();
        if candidates.is_empty() {
            return Some(primary);
        }
        let chosen = match self.pool.load_balancing_mode {
            Lb::RoundRobin => {
                let n = self.rr[shard].fetch_add(1, Ordering::Relaxed);
                candidates[n % candidates.len()]
            }
            Lb::LeastOutstanding => candidates
                .iter()
                .min_by_key(|s| {
                    s.pool.stats.in_use.load(Ordering::Relaxed) * 1000 / s.weight.max(1) as usize
                })
                .copied()
                .unwrap_or(candidates[0]),
            Lb::Random => {
                use rand::Rng;
                let total: u32 = candidates.iter().map(|s| s.weight.max(1)).sum();
                let mut x = rand::thread_rng().gen_range(0..total);
                let mut pick = candidates[0];
                for s in &candidates {
                    let w = s.weight.max(1);
                    if x < w {
                        pick = s;
                        break;
                    }
                    x -= w;
                }
                pick
            }
        };
        Some(&chosen.pool)
    }
}

pub struct Registry {
    pub config: Arc<Config>,
    /// database name -> username -> pools
    pub dbs: HashMap<String, HashMap<String, Arc<UserPools>>>,
}

impl Registry {
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Registry>,
        metrics: &orochi_admin::Metrics,
    ) -> Self {
        let mut old: HashMap<(String, String, usize, String), Arc<ServerPool>> = HashMap::new();
        if let Some(prev) = previous {
            for users in prev.dbs.values() {
                for up in users.values() {
                    for p in up.all_server_pools() {
                        old.insert(
                            (
                                p.pool_name.clone(),
                                p.user_name.clone(),
                                p.shard,
                                p.target.addr(),
                            ),
                            p.clone(),
                        );
                    }
                }
            }
        }
        let mut dbs = HashMap::new();
        for (name, pool) in &config.pools {
            let sharding = crate::planner::sharding::ShardingSchema::for_pool(&config, pool)
                .filter(|_| pool.query_parser_enabled)
                .map(Arc::new);
            let mut users = HashMap::new();
            for user in &pool.users {
                let settings = PoolSettings {
                    ban_time: config.general.ban_time,
                    pool_size: user.pool_size,
                    min_pool_size: user.min_pool_size,
                    connect_timeout: pool.connect_timeout,
                    idle_timeout: pool.idle_timeout,
                    server_lifetime: pool.server_lifetime,
                };
                let shards = pool
                    .shards
                    .iter()
                    .enumerate()
                    .map(|(i, shard)| {
                        shard
                            .servers
                            .iter()
                            .map(|s| {
                                let target = ServerTarget {
                                    host: s.host.clone(),
                                    port: s.port,
                                    database: shard.database.clone(),
                                    user: user.server_username.clone(),
                                    password: server_password(user),
                                };
                                let key = (name.clone(), user.username.clone(), i, target.addr());
                                let pool = match old.get(&key) {
                                    Some(p)
                                        if p.target == target && same(&p.settings, &settings) =>
                                    {
                                        p.clone()
                                    }
                                    _ => {
                                        let role = match s.role {
                                            Role::Primary => orochi_admin::Role::Primary,
                                            Role::Replica => orochi_admin::Role::Replica,
                                            Role::Auto => orochi_admin::Role::Unknown,
                                        };
                                        let m = metrics.query_metrics(
                                            name,
                                            i,
                                            Some(role),
                                            &user.username,
                                        );
                                        ServerPool::new(
                                            name,
                                            &user.username,
                                            i,
                                            target,
                                            settings.clone(),
                                            m,
                                        )
                                    }
                                };
                                ServerSlot {
                                    role: s.role,
                                    weight: s.weight,
                                    pool,
                                }
                            })
                            .collect()
                    })
                    .collect();
                let sharding = sharding.clone();
                users.insert(
                    user.username.clone(),
                    Arc::new(UserPools {
                        sharding,
                        pool_name: name.clone(),
                        user: user.clone(),
                        pool: pool.clone(),
                        auth: ClientAuth::from_user(user),
                        mode: user.pool_mode.unwrap_or(pool.pool_mode),
                        has_replicas: pool
                            .shards
                            .iter()
                            .any(|s| s.servers.iter().any(|s| s.role == Role::Replica)),
                        rr: (0..pool.shards.len())
                            .map(|_| std::sync::atomic::AtomicUsize::new(0))
                            .collect(),
                        shards,
                    }),
                );
            }
            dbs.insert(name.clone(), users);
        }
        Registry { config, dbs }
    }

    pub fn all_server_pools(&self) -> impl Iterator<Item = &Arc<ServerPool>> {
        self.dbs
            .values()
            .flat_map(|u| u.values())
            .flat_map(|up| up.all_server_pools())
    }
}

fn same(a: &PoolSettings, b: &PoolSettings) -> bool {
    a.ban_time == b.ban_time
        && a.pool_size == b.pool_size
        && a.min_pool_size == b.min_pool_size
        && a.connect_timeout == b.connect_timeout
        && a.idle_timeout == b.idle_timeout
        && a.server_lifetime == b.server_lifetime
}

/// Password towards the server: `server_password`, else the client password when it is
/// usable for server login (plain, or an md5 hash for md5 auth).
fn server_password(u: &User) -> Option<String> {
    if let Some(p) = &u.server_password {
        return Some(p.clone());
    }
    match &u.password {
        Secret::Plain(p) => Some(p.clone()),
        Secret::Md5(h) => Some(h.clone()),
        _ => None,
    }
}
