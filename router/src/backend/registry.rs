//! The registry: every configured (pool, user) with its per-shard, per-server pools,
//! built from one config snapshot, and the per-shard health the pools route by. A
//! reload builds a new registry and reuses the server pools whose definition did not
//! change, so their idle connections survive; a server keeps its health state (role,
//! ban, lag) while it stays configured, and a shard keeps its health checker while its
//! servers and timings are unchanged.

use super::conn::{ServerConn, ServerTarget};
use super::health::{self, ServerHealth, ShardHealth, ShardSpec};
use super::pool::{Checkout, PoolSettings, ServerPool};
use crate::error::RouterError;
use orochi_config::{Config, Pool, PoolMode, Role, Secret, User};
use orochi_wire::scram::Verifier;
use orochi_wire::PgError;
use std::collections::HashMap;
use std::sync::Arc;

/// How a client of a user proves who it is.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `auth_type = "trust"`.
    Trust,
    /// No password and no explicit trust: nobody logs in as this user.
    Refuse,
    /// Stored `md5…` hash.
    Md5(String),
    Scram(Verifier),
}

impl ClientAuth {
    fn from_user(u: &User) -> Self {
        match &u.password {
            Secret::None if u.trust => ClientAuth::Trust,
            Secret::None => ClientAuth::Refuse,
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
    /// The configured role; the actual one is `pool.health.role()`.
    pub role: Role,
    pub weight: u32,
    pub pool: Arc<ServerPool>,
}

/// Where a checkout must go: the planner's read/write decision.
pub use crate::planner::rw::Target;

/// Everything a client session of (pool, user) needs.
pub struct UserPools {
    pub pool_name: String,
    pub user: User,
    pub pool: Pool,
    pub auth: ClientAuth,
    pub mode: PoolMode,
    /// `shards[i]` = the servers of shard i.
    pub shards: Vec<Vec<ServerSlot>>,
    /// `health[i]` = health of shard i (shared by every user of the pool); its servers
    /// are in the order of `shards[i]`.
    pub health: Vec<Arc<ShardHealth>>,
    /// Some shard has more than one server: only then is a statement worth classifying
    /// as a read (and a refused write worth retrying elsewhere).
    pub has_replicas: bool,
    /// Round-robin position per shard.
    rr: Vec<std::sync::atomic::AtomicUsize>,
    /// The sharding planner's view of this pool (pools with several shards only).
    pub sharding: Option<Arc<crate::planner::sharding::ShardingSchema>>,
}

impl UserPools {
    /// The server that takes writes on shard `i` now, else its first server (used for
    /// the parameters a new client is told).
    pub fn primary(&self, shard: usize) -> Option<&Arc<ServerPool>> {
        let servers = self.shards.get(shard)?;
        self.health
            .get(shard)
            .and_then(|h| h.write_target())
            .and_then(|i| servers.get(i))
            .or_else(|| servers.first())
            .map(|s| &s.pool)
    }
    pub fn all_server_pools(&self) -> impl Iterator<Item = &Arc<ServerPool>> {
        self.shards.iter().flatten().map(|s| &s.pool)
    }

    /// A client left: close the idle connections it left session state on.
    pub fn client_left(&self, owner: u64) {
        for p in self.all_server_pools() {
            p.close_owned_dirty(owner);
        }
    }

    /// Is `pool`'s server the one that takes writes on its shard now? (Compared by
    /// server health, which outlives a reload.)
    pub fn is_write_target(&self, pool: &Arc<ServerPool>) -> bool {
        let (Some(h), Some(servers)) = (self.health.get(pool.shard), self.shards.get(pool.shard))
        else {
            return false;
        };
        h.write_target()
            .and_then(|i| servers.get(i))
            .is_some_and(|s| Arc::ptr_eq(&s.pool.health, &pool.health))
    }

    /// `pool`'s server refused a write as read-only: if it is taken for the primary, its
    /// shard is checked again at once (without waiting for the result).
    pub fn recheck_if_write_target(&self, pool: &Arc<ServerPool>) {
        if self.is_write_target(pool) {
            if let Some(h) = self.health.get(pool.shard) {
                h.wake();
            }
        }
    }

    /// The server pool for a checkout on `shard`.
    ///
    /// Writes go to the shard's write target (see `health`); none usable is a fast
    /// `08006`. Reads are balanced over the replicas in rotation and within
    /// `max_replica_lag` (plus the current primaries when `primary_reads_enabled`); with
    /// none, reads go to the primary; with no primary either, to any server whose last
    /// check passed. A shard with a single primary always uses it.
    pub fn pick(&self, shard: usize, target: Target) -> Result<&Arc<ServerPool>, RouterError> {
        use orochi_config::LoadBalancingMode as Lb;
        use std::sync::atomic::Ordering;
        let (Some(servers), Some(health)) = (self.shards.get(shard), self.health.get(shard)) else {
            return Err(RouterError::Pg(PgError::error(
                "08006",
                format!("pool \"{}\" has no shard {shard}", self.pool_name),
            )));
        };
        let primary = health.write_target();
        if !health.checked || target == Target::Primary {
            return primary
                .and_then(|i| servers.get(i))
                .map(|s| &s.pool)
                .ok_or_else(|| health.no_primary_error());
        }
        let now = std::time::Instant::now();
        let candidates: Vec<&ServerSlot> = servers
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                health.readable_replica(*i, now)
                    || (self.pool.primary_reads_enabled && health.readable_primary(*i, now))
            })
            .map(|(_, s)| s)
            .collect();
        if candidates.is_empty() {
            return primary
                .or_else(|| health.read_fallback())
                .and_then(|i| servers.get(i))
                .map(|s| &s.pool)
                .ok_or_else(|| health.no_server_error());
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
        Ok(&chosen.pool)
    }

    /// Has a shard's primary a free permit now? Read before a statement is screened
    /// for a checkout that does not wait: under full pools (100 clients over 20
    /// connections) the statement then takes the full path at once, rather than being
    /// screened (and on a sharded pool planned) for the attempt and again for the wait
    /// (issue 16). A hint: a permit taken meanwhile costs only that second screening.
    pub fn any_free_permit(&self) -> bool {
        (0..self.shards.len()).any(|s| {
            self.pick(s, Target::Primary)
                .is_ok_and(|p| p.has_free_permit())
        })
    }

    /// [`checkout`](Self::checkout) when nothing has to wait (the shard's roles known,
    /// the server picked has a connection ready: `ServerPool::try_checkout_now`);
    /// `None` otherwise, for the full checkout. Only where the pick is the primary's:
    /// picking among replicas moves the balancing on (round robin), and an attempt that
    /// found nothing ready would make the full checkout skip a server.
    pub fn try_checkout_now(
        &self,
        shard: usize,
        target: Target,
        owner: u64,
        in_step: impl Fn(&ServerConn) -> bool,
    ) -> Option<Checkout> {
        let health = self.health.get(shard)?;
        if !health.discovered() || health.checked && target != Target::Primary {
            return None;
        }
        self.pick(shard, target)
            .ok()?
            .try_checkout_now(owner, in_step)
    }

    /// A connection for `target` on `shard`. A server that cannot be reached is banned by
    /// the failed attempt and the checkout moves on to the next choice, so a server that
    /// just died costs no client an error (only what was running on it). Right after
    /// start, with roles to discover, waits for the first health check.
    /// `owner` is the client (its connections' affinity; 0 for the router itself).
    pub async fn checkout(
        &self,
        shard: usize,
        target: Target,
        owner: u64,
    ) -> Result<(Checkout, std::time::Duration), RouterError> {
        if let Some(h) = self.health.get(shard) {
            h.wait_discovered().await;
        }
        let attempts = self.shards.get(shard).map_or(1, |s| s.len().max(1));
        let mut tried: Vec<&Arc<ServerPool>> = Vec::new();
        let mut first_error = None;
        for _ in 0..attempts {
            let pool = match self.pick(shard, target) {
                Ok(p) if !tried.iter().any(|t| Arc::ptr_eq(t, p)) => p,
                Ok(_) => break,
                Err(e) => return Err(first_error.unwrap_or(e)),
            };
            match pool.checkout_for(owner).await {
                Ok(c) => return Ok(c),
                Err(e) if super::pool::is_server_failure(&e) && self.health[shard].checked => {
                    tracing::debug!(server = %pool.target.addr(), error = %e, "checkout moves to another server");
                    tried.push(pool);
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or_else(|| self.health[shard].no_server_error()))
    }
}

pub struct Registry {
    pub config: Arc<Config>,
    /// database name -> username -> pools
    pub dbs: HashMap<String, HashMap<String, Arc<UserPools>>>,
    /// Every shard's health (one per pool and shard), for the checkers.
    pub health: Vec<Arc<ShardHealth>>,
}

type PoolKey = (String, String, usize, String);
/// (pool, shard, host:port, database)
type HealthKey = (String, usize, String, String);

impl Registry {
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Registry>,
        metrics: &Arc<orochi_admin::Metrics>,
        tls: &Arc<orochi_tls::TlsHub>,
    ) -> Self {
        let mut old: HashMap<PoolKey, Arc<ServerPool>> = HashMap::new();
        let mut old_servers: HashMap<HealthKey, Arc<ServerHealth>> = HashMap::new();
        let mut old_shards: HashMap<(String, usize), Arc<ShardHealth>> = HashMap::new();
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
            for h in &prev.health {
                old_shards.insert((h.pool_name.clone(), h.shard), h.clone());
                for (s, (t, _)) in h.servers.iter().zip(&h.spec.servers) {
                    old_servers.insert(
                        (h.pool_name.clone(), h.shard, t.addr(), t.database.clone()),
                        s.clone(),
                    );
                }
            }
        }
        let mut dbs = HashMap::new();
        let mut all_health = Vec::new();
        let settings = health::settings_from(
            config.general.healthcheck_delay,
            config.general.healthcheck_timeout,
            config.general.ban_time,
            config.query_routing.max_replica_lag,
        );
        for (name, pool) in &config.pools {
            let sharding = crate::planner::sharding::ShardingSchema::for_pool(&config, pool)
                .filter(|_| pool.query_parser_enabled)
                .map(Arc::new);
            // Health per shard, shared by all users; probes log in as the first user
            // with a password usable towards the server (else the first user).
            let probe_user = pool
                .users
                .iter()
                .find(|u| server_password(u).is_some())
                .or(pool.users.first());
            let health: Vec<Arc<ShardHealth>> = pool
                .shards
                .iter()
                .enumerate()
                .map(|(i, shard)| {
                    let spec = ShardSpec {
                        servers: shard
                            .servers
                            .iter()
                            .map(|s| {
                                let user = probe_user;
                                let target = ServerTarget {
                                    host: s.host.clone(),
                                    port: s.port,
                                    database: shard.database.clone(),
                                    user: user
                                        .map(|u| u.server_username.clone())
                                        .unwrap_or_default(),
                                    password: user.and_then(server_password),
                                    allow_cleartext: config.general.allow_server_cleartext_password,
                                    tcp: config.general.bounds.tcp,
                                    tls: super::conn::TargetTls {
                                        mode: pool.server_tls_sslmode,
                                        hub: tls.clone(),
                                    },
                                };
                                (target, s.role)
                            })
                            .collect(),
                        settings: settings.clone(),
                    };
                    if let Some(h) = old_shards
                        .get(&(name.clone(), i))
                        .filter(|h| h.spec == spec)
                    {
                        return h.clone();
                    }
                    let servers = spec
                        .servers
                        .iter()
                        .map(|(t, role)| {
                            let key = (name.clone(), i, t.addr(), t.database.clone());
                            old_servers.get(&key).cloned().unwrap_or_else(|| {
                                ServerHealth::new(name, i, t.addr(), *role, metrics.clone())
                            })
                        })
                        .collect();
                    ShardHealth::new(name, i, spec, servers)
                })
                .collect();
            all_health.extend(health.iter().cloned());
            let mut users = HashMap::new();
            for user in &pool.users {
                let settings = PoolSettings {
                    ban_time: config.general.ban_time,
                    pool_size: user.pool_size,
                    min_pool_size: user.min_pool_size,
                    connect_timeout: pool.connect_timeout,
                    wait_timeout: config
                        .general
                        .bounds
                        .query_wait_timeout
                        .unwrap_or(pool.connect_timeout),
                    idle_timeout: pool.idle_timeout,
                    server_lifetime: pool.server_lifetime,
                    reset_always: config.general.server_reset_query_always,
                };
                let shards = pool
                    .shards
                    .iter()
                    .enumerate()
                    .map(|(i, shard)| {
                        shard
                            .servers
                            .iter()
                            .enumerate()
                            .map(|(j, s)| {
                                let target = ServerTarget {
                                    host: s.host.clone(),
                                    port: s.port,
                                    database: shard.database.clone(),
                                    user: user.server_username.clone(),
                                    password: server_password(user),
                                    allow_cleartext: config.general.allow_server_cleartext_password,
                                    tcp: config.general.bounds.tcp,
                                    tls: super::conn::TargetTls {
                                        mode: pool.server_tls_sslmode,
                                        hub: tls.clone(),
                                    },
                                };
                                let server_health = health[i].servers[j].clone();
                                let key = (name.clone(), user.username.clone(), i, target.addr());
                                let pool = match old.get(&key) {
                                    Some(p)
                                        if *p.target == target
                                            && same(&p.settings, &settings)
                                            && Arc::ptr_eq(&p.health, &server_health) =>
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
                                            server_health,
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
                        has_replicas: pool.shards.iter().any(|s| s.servers.len() > 1),
                        rr: (0..pool.shards.len())
                            .map(|_| std::sync::atomic::AtomicUsize::new(0))
                            .collect(),
                        shards,
                        health: health.clone(),
                    }),
                );
            }
            dbs.insert(name.clone(), users);
        }
        Registry {
            config,
            dbs,
            health: all_health,
        }
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
        && a.wait_timeout == b.wait_timeout
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::health::{Probe, ProbeFailure};
    use std::time::Instant;

    /// A pool `app` with one shard: servers on ports 1, 2, 3 with these roles.
    fn config(roles: [&str; 3], extra: &str) -> Arc<Config> {
        let text = format!(
            r#"
[general]
ban_time = 60

[pools.app]
load_balancing_mode = "round_robin"
{extra}

[pools.app.users.0]
username = "u"
password = "p"

[pools.app.shards.0]
database = "app"
servers = [["h", 1, "{}"], ["h", 2, "{}"], ["h", 3, "{}"]]
"#,
            roles[0], roles[1], roles[2]
        );
        Arc::new(Config::from_str_with_env(&text, "t.toml", &|_| None).expect("valid config"))
    }

    fn build(c: Arc<Config>, prev: Option<&Registry>, m: &Arc<orochi_admin::Metrics>) -> Registry {
        // One hub for all builds, as in a running router (targets compare it by pointer).
        static HUB: std::sync::OnceLock<Arc<orochi_tls::TlsHub>> = std::sync::OnceLock::new();
        Registry::build(
            c,
            prev,
            m,
            HUB.get_or_init(|| Arc::new(orochi_tls::TlsHub::disabled())),
        )
    }

    fn metrics() -> Arc<orochi_admin::Metrics> {
        Arc::new(orochi_admin::Metrics::new().unwrap())
    }

    fn port(p: Result<&Arc<ServerPool>, RouterError>) -> u16 {
        p.expect("a server").target.port
    }

    fn up(in_recovery: bool, tl: u32) -> Result<Probe, ProbeFailure> {
        Ok(Probe {
            in_recovery,
            lsn: Some(10),
            timeline: (!in_recovery).then_some(tl),
        })
    }

    fn down() -> Result<Probe, ProbeFailure> {
        Err("connection refused".into())
    }

    fn user(reg: &Registry) -> &Arc<UserPools> {
        &reg.dbs["app"]["u"]
    }

    #[test]
    fn reads_avoid_banned_replicas_and_fall_back_to_the_primary() {
        let reg = build(
            config(
                ["primary", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            None,
            &metrics(),
        );
        let u = user(&reg);
        let h = &u.health[0];
        h.apply(&[up(false, 1), up(true, 0), up(true, 0)], Instant::now());
        let reads: Vec<u16> = (0..4).map(|_| port(u.pick(0, Target::Read))).collect();
        assert_eq!(reads, [2, 3, 2, 3]);
        assert_eq!(port(u.pick(0, Target::Primary)), 1);
        // One replica banned: reads on the other.
        h.apply(&[up(false, 1), down(), up(true, 0)], Instant::now());
        assert!((0..4).all(|_| port(u.pick(0, Target::Read)) == 3));
        // Both banned: reads go to the primary.
        h.apply(&[up(false, 1), down(), down()], Instant::now());
        assert_eq!(port(u.pick(0, Target::Read)), 1);
        // Primary down too: writes and reads fail fast with 08006.
        h.apply(&[down(), down(), down()], Instant::now());
        let e = u.pick(0, Target::Primary).unwrap_err();
        let pg = e.to_client().unwrap();
        assert_eq!(pg.fields.code, "08006");
        assert!(
            pg.fields
                .message
                .contains("no primary available for shard 0 of pool \"app\""),
            "{}",
            pg.fields.message
        );
        assert_eq!(
            u.pick(0, Target::Read)
                .unwrap_err()
                .to_client()
                .unwrap()
                .fields
                .code,
            "08006"
        );
        // The primary down, the replicas back (after their ban): reads continue.
        let reg = build(
            config(
                ["primary", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            None,
            &metrics(),
        );
        let u = user(&reg);
        u.health[0].apply(&[down(), up(true, 0), up(true, 0)], Instant::now());
        assert!(u.pick(0, Target::Primary).is_err());
        assert!([2, 3].contains(&port(u.pick(0, Target::Read))));
        assert!(!u.is_write_target(&u.shards[0][0].pool));
    }

    #[test]
    fn primary_reads_spread_over_the_current_primary() {
        let reg = build(
            config(["auto", "auto", "auto"], "primary_reads_enabled = true"),
            None,
            &metrics(),
        );
        let u = user(&reg);
        assert!(u.has_replicas);
        u.health[0].apply(&[up(true, 0), up(false, 3), up(true, 0)], Instant::now());
        let mut reads: Vec<u16> = (0..3).map(|_| port(u.pick(0, Target::Read))).collect();
        reads.sort();
        assert_eq!(reads, [1, 2, 3], "the primary takes its share of reads");
        assert_eq!(port(u.pick(0, Target::Primary)), 2);
        assert!(u.is_write_target(&u.shards[0][1].pool));
    }

    #[test]
    fn a_reload_keeps_health_of_unchanged_servers() {
        let m = metrics();
        let a = build(
            config(
                ["primary", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            None,
            &m,
        );
        user(&a).health[0].apply(&[up(false, 1), down(), up(true, 0)], Instant::now());
        // Same servers: the same checker, the same state.
        let b = build(
            config(
                ["primary", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            Some(&a),
            &m,
        );
        assert!(Arc::ptr_eq(&a.health[0], &b.health[0]));
        assert!(Arc::ptr_eq(
            &user(&a).shards[0][1].pool,
            &user(&b).shards[0][1].pool
        ));
        // A role changed: a new checker, but servers keep their health (server 2 banned).
        let c = build(
            config(
                ["primary", "replica", "auto"],
                "primary_reads_enabled = false",
            ),
            Some(&b),
            &m,
        );
        assert!(!Arc::ptr_eq(&b.health[0], &c.health[0]));
        assert!(Arc::ptr_eq(
            &b.health[0].servers[1],
            &c.health[0].servers[1]
        ));
        assert!(Arc::ptr_eq(
            &user(&c).shards[0][1].pool.health,
            &c.health[0].servers[1]
        ));
        assert!(!c.health[0].servers[1].in_rotation(Instant::now()));
    }

    #[tokio::test]
    async fn checkers_start_with_the_registry_and_stop_when_a_reload_drops_them() {
        let m = metrics();
        let a = Arc::new(build(
            config(
                ["primary", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            None,
            &m,
        ));
        let current = Arc::new(arc_swap::ArcSwap::new(a.clone()));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let cur = current.clone();
        let sup = tokio::spawn(super::health::supervise(
            move || cur.load_full(),
            shutdown.clone(),
        ));
        let wait = |h: Arc<ShardHealth>, want: bool| async move {
            for _ in 0..100 {
                if h.running() == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("checker running() never became {want}");
        };
        wait(a.health[0].clone(), true).await;
        let b = Arc::new(build(
            config(
                ["auto", "replica", "replica"],
                "primary_reads_enabled = false",
            ),
            Some(&a),
            &m,
        ));
        current.store(b.clone());
        wait(a.health[0].clone(), false).await;
        wait(b.health[0].clone(), true).await;
        shutdown.cancel();
        sup.await.unwrap();
    }
}
