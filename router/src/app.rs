//! Shared state of a running router: the current registry (swapped on reload), the
//! prepared-statement and cancel registries, pause state and lifecycle tokens.
//! Passed as `Arc<App>`; there are no globals, so tests can run many routers at once.

use crate::backend::{Registry, UserPools};
use crate::cancel::CancelRegistry;
use crate::clients::ClientRegistry;
use crate::error::{Result, RouterError};
use crate::statements::StatementRegistry;
use arc_swap::ArcSwap;
use orochi_config::{Config, ConfigErrors};
use orochi_wire::PgError;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where the configuration came from, for reloads.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub config: PathBuf,
    pub users: Option<PathBuf>,
}

impl ConfigSource {
    pub fn load(&self) -> std::result::Result<Config, ConfigErrors> {
        Config::load(&self.config, self.users.as_deref())
    }
}

#[derive(Debug)]
pub enum ReloadError {
    NoSource,
    Config(ConfigErrors),
    /// A certificate or key file could not be used; the running TLS state stays.
    Tls(orochi_tls::TlsError),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoSource => {
                write!(f, "the router was started without a configuration file")
            }
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

pub struct App {
    /// Replaced only through `publish`, which counts the replacements.
    pub registry: ArcSwap<Registry>,
    /// How many times `registry` was replaced: a session compares it with the number it
    /// last looked its pools up at, instead of looking them up (two string hashes) at
    /// every statement (`client::context::Context::pause_gate`).
    registry_gen: AtomicU64,
    pub source: Option<ConfigSource>,
    pub statements: StatementRegistry,
    pub cancel: Arc<CancelRegistry>,
    pub metrics: Arc<orochi_admin::Metrics>,
    /// The tracer, when `otel_endpoint` is set (started with the server; `crate::otel`).
    pub otel: std::sync::OnceLock<crate::otel::Tracing>,
    /// `log_queries` / `log_parameters`, checked before any per-statement log work.
    pub query_log: crate::query_log::QueryLog,
    pub clients: Arc<ClientRegistry>,
    /// Two-phase commit coordinator state of this instance (gids, in-flight registry).
    pub twopc: Arc<orochi_twopc::TwoPc>,
    /// Graceful shutdown began: idle clients are told 57P01 and leave.
    pub shutdown: CancellationToken,
    /// The shutdown deadline passed (or SIGINT): every client leaves now.
    pub force: CancellationToken,
    draining: AtomicBool,
    paused: Mutex<HashSet<String>>,
    /// How many pools are paused: lets the hot path skip the lock when none is.
    paused_count: std::sync::atomic::AtomicUsize,
    resumed: Notify,
    next_client: AtomicU64,
    /// Client connection limits and the failed-login limiter.
    pub admission: Arc<crate::admission::Admission>,
    /// The admin console's credentials, replaced on reload.
    pub admin_creds: orochi_admin::AdminCreds,
    /// Certificates and TLS settings for clients and servers, re-read on reload.
    pub tls: Arc<orochi_tls::TlsHub>,
    /// Shard maps switched by a reshard (`RESHARD SWITCH`), kept over reloads.
    pub shard_maps: crate::reshard_map::ShardMaps,
    /// The JWT gateway's keys and tenant counts (unused without `[gateway]`).
    pub gateway: Arc<crate::gateway::Gateway>,
}

impl App {
    pub fn new(config: Config, source: Option<ConfigSource>) -> Arc<Self> {
        // Registration fails only on a duplicate metric name: a bug, not an input.
        let metrics = Arc::new(orochi_admin::Metrics::new().expect("metric names are unique"));
        let twopc = Arc::new(orochi_twopc::TwoPc::new(
            orochi_twopc::Settings::from_config(
                config.general.instance_id.as_deref(),
                &config.sharding.two_phase_commit,
            ),
        ));
        let admin_creds = orochi_admin::AdminCreds::from_general(&config.general);
        // A file that cannot be read stops `Listeners::bind`, which reads them again.
        let tls = Arc::new(
            orochi_tls::TlsHub::new(&config.general)
                .unwrap_or_else(|_| orochi_tls::TlsHub::disabled()),
        );
        let query_log = crate::query_log::QueryLog::new(&config.general);
        Arc::new(App {
            query_log,
            // Keys are read by `Listeners::bind` (a file that cannot be used stops the
            // start) and on every reload.
            gateway: crate::gateway::Gateway::new(),
            registry: ArcSwap::from_pointee(Registry::build(
                Arc::new(config),
                None,
                &metrics,
                &tls,
            )),
            registry_gen: AtomicU64::new(1),
            tls,
            admin_creds,
            admission: Default::default(),
            twopc,
            metrics,
            otel: std::sync::OnceLock::new(),
            source,
            statements: StatementRegistry::default(),
            cancel: Arc::new(CancelRegistry::default()),
            clients: Arc::new(ClientRegistry::default()),
            shutdown: CancellationToken::new(),
            force: CancellationToken::new(),
            draining: AtomicBool::new(false),
            paused: Mutex::new(HashSet::new()),
            paused_count: std::sync::atomic::AtomicUsize::new(0),
            resumed: Notify::new(),
            next_client: AtomicU64::new(1),
            shard_maps: Default::default(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.registry.load().config.clone()
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    pub fn lookup_user(&self, database: &str, username: &str) -> Result<Arc<UserPools>> {
        let reg = self.registry.load();
        let users = reg.dbs.get(database).ok_or_else(|| {
            RouterError::Pg(PgError::fatal(
                "3D000",
                format!("database \"{database}\" does not exist"),
            ))
        })?;
        users.get(username).cloned().ok_or_else(|| {
            RouterError::Pg(PgError::fatal(
                "28000",
                format!("no such user \"{username}\" for database \"{database}\""),
            ))
        })
    }

    /// Makes `next` the running registry.
    fn publish(&self, next: Registry) {
        self.registry.store(Arc::new(next));
        // After the store: a session that reads the new number finds the new registry.
        self.registry_gen.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever the registry is replaced (reload, reshard switch).
    pub fn registry_generation(&self) -> u64 {
        self.registry_gen.load(Ordering::Acquire)
    }

    /// The newest definition of a client's (pool, user); the old one if it was removed.
    pub fn current_user_pools(&self, old: &Arc<UserPools>) -> Arc<UserPools> {
        self.lookup_user(&old.pool_name, &old.user.username)
            .unwrap_or_else(|_| old.clone())
    }

    /// Re-reads the configuration; on error the running one stays and the errors return.
    pub fn reload(&self) -> std::result::Result<orochi_config::ConfigDiff, ReloadError> {
        let Some(src) = &self.source else {
            return Err(ReloadError::NoSource);
        };
        let new = self
            .shard_maps
            .apply(src.load().map_err(ReloadError::Config)?);
        let old = self.registry.load();
        let diff = orochi_config::diff(&old.config, &new);
        // Before anything else changes: a bad certificate rejects the whole reload.
        self.tls.reload(&new.general).map_err(ReloadError::Tls)?;
        // The gateway's keys: a bad JWKS file keeps the last good keys (and says why);
        // the rest of the reload goes on.
        if let Err(e) = self.gateway.configure(&new) {
            tracing::error!("JWT gateway keys not reloaded, keeping the last good ones: {e}");
        }
        if self.admin_creds.update(&new.general) {
            tracing::info!("admin console credentials replaced: new logins use the new ones");
        }
        self.query_log.configure(&new.general);
        let next = Registry::build(Arc::new(new), Some(&old), &self.metrics, &self.tls);
        self.publish(next);
        Ok(diff)
    }

    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.shutdown.cancel();
        self.clients.alarm_all(crate::alarm::SHUTDOWN);
    }

    /// The shutdown's grace ran out: every task and session stops now.
    pub fn force_stop(&self) {
        self.force.cancel();
        self.clients.alarm_all(crate::alarm::FORCE);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn pause(&self, pool: &str) {
        if let Ok(mut p) = self.paused.lock() {
            p.insert(pool.to_string());
            self.paused_count.store(p.len(), Ordering::SeqCst);
        }
    }

    pub fn resume(&self, pool: &str) {
        if let Ok(mut p) = self.paused.lock() {
            p.remove(pool);
            self.paused_count.store(p.len(), Ordering::SeqCst);
        }
        self.resumed.notify_waiters();
    }

    pub fn is_paused(&self, pool: &str) -> bool {
        self.paused_count.load(Ordering::SeqCst) > 0
            && self
                .paused
                .lock()
                .map(|p| p.contains(pool))
                .unwrap_or(false)
    }

    pub async fn wait_resumed(&self, pool: &str) {
        loop {
            let notified = self.resumed.notified();
            if !self.is_paused(pool) {
                return;
            }
            notified.await;
        }
    }

    /// `RESHARD SWITCH pool 'map'`: swaps the pool's shards; returns the databases now used.
    pub fn switch_shard_map(
        &self,
        pool: &str,
        map: &str,
    ) -> std::result::Result<Vec<String>, orochi_admin::AdminError> {
        let shards =
            crate::reshard_map::parse_map(map).map_err(orochi_admin::AdminError::BadArgument)?;
        let old = self.registry.load();
        let mut config: Config = (*old.config).clone();
        let p = config
            .pools
            .get_mut(pool)
            .ok_or_else(|| orochi_admin::AdminError::NoSuchDatabase(pool.to_string()))?;
        p.shards = shards.clone();
        let databases = shards.iter().map(|s| s.database.clone()).collect();
        self.shard_maps.set(pool, shards);
        let next = Registry::build(Arc::new(config), Some(&old), &self.metrics, &self.tls);
        self.publish(next);
        tracing::info!(pool = %pool, "shard map switched by a reshard");
        Ok(databases)
    }
}
