//! A pool of connections to one server for one (pool, user, shard).
//!
//! `pool_size` permits of a FIFO semaphore bound the connections in use; a checkout
//! takes a permit (waiting fairly, at most `connect_timeout`), then reuses an idle
//! connection or opens a new one. Invariant: open connections (in use + idle) never
//! exceed `pool_size`, because a new one is opened only while the idle list is empty and
//! its opener holds a permit.
//!
//! Affinity and isolation: every connection remembers the client that used it last
//! (its *owner*) and whether that client left session state on it the router cannot
//! undo with `RESET ALL` (*dirty*: temp tables, held cursors, session advisory locks,
//! an identity change, SQL prepared statements, anything unclassified). A checkout
//! prefers, in order: the client's own connection, the warmest clean one, and last the
//! dirty connection idle longest. A dirty connection is given to another client only
//! after `DISCARD ALL` (failing that, it is closed and a new one opened), so state never
//! crosses clients, and a client that gets its own connection back keeps its temp
//! tables and locks. Owner 0 is the router itself (health checks, schema queries).
//!
//! A connection goes back to the pool only through [`Checkout::release`], which its
//! holder calls once the server is idle; a checkout dropped any other way (an error
//! path, a panic, a vanished task) closes its connection.

use super::conn::{ServerConn, ServerTarget};
use super::server_state::ServerHealth;
use crate::error::{Result, RouterError};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a checkout waits for a cancel on its way to the connection it took.
const CANCEL_LANDING: Duration = Duration::from_secs(3);

/// Server parameters as a pool's first connection reported them, sorted by name: shared
/// by every client of the pool (`client::reported`).
pub type SharedParams = Arc<[(String, String)]>;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long a server whose connection attempt failed stays out of rotation (see
    /// `health`).
    pub ban_time: Duration,
    pub pool_size: usize,
    pub min_pool_size: usize,
    /// Bounds the TCP connect, TLS handshake and login towards a server.
    pub connect_timeout: Duration,
    /// How long a client may queue for a connection (`query_wait_timeout`, default
    /// `connect_timeout`).
    pub wait_timeout: Duration,
    pub idle_timeout: Duration,
    pub server_lifetime: Duration,
    /// PgBouncer's `server_reset_query_always`: every released connection counts as
    /// dirty (reset before another client uses it), for applications whose own
    /// functions change session state the router cannot see.
    pub reset_always: bool,
}

/// Live counters, read by the admin console and metrics.
#[derive(Default, Debug)]
pub struct PoolStats {
    pub open: AtomicUsize,
    pub in_use: AtomicUsize,
    pub waiting: AtomicUsize,
    pub checkouts: AtomicU64,
    pub connects: AtomicU64,
    pub connect_errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// Total time clients waited for a connection, in microseconds.
    pub wait_us: AtomicU64,
    /// The last attempt to open a connection failed (cleared by the next success).
    pub unreachable: std::sync::atomic::AtomicBool,
    /// Statements (simple queries and Executes) sent through this pool.
    pub queries: AtomicU64,
    /// Checkouts ended (transactions in transaction mode).
    pub xacts: AtomicU64,
    /// Total time connections were lent out, in microseconds.
    pub xact_us: AtomicU64,
    /// Bytes sent to / received from this pool's server connections.
    pub bytes_to_server: AtomicU64,
    pub bytes_from_server: AtomicU64,
}

pub struct ServerPool {
    pub pool_name: String,
    pub user_name: String,
    pub shard: usize,
    /// Shared with every cancel target made for this pool's connections (one is made
    /// per checkout: an `Arc` clone, not a copy of the host name).
    pub target: Arc<ServerTarget>,
    pub settings: PoolSettings,
    permits: Arc<Semaphore>,
    /// Boxed on purpose: a connection moves between this list and a `Checkout` as a
    /// pointer (see `Checkout::conn`).
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<ServerConn>>>,
    pub stats: PoolStats,
    /// ParameterStatus values of the first connection opened: what a newly logged-in
    /// client is told without waiting for a server of its own.
    pub server_params: Mutex<Option<SharedParams>>,
    /// Query counter and latency histogram of this pool's labels.
    pub metrics: orochi_admin::QueryMetrics,
    /// Bumped by RECONNECT-like events: connections older than this generation are closed on return.
    pub generation: AtomicU64,
    /// Health of the server, shared with the pools of its other users: a failed
    /// connection attempt bans it, a successful one counts as a passed check.
    pub health: Arc<ServerHealth>,
}

impl ServerPool {
    pub fn new(
        pool_name: &str,
        user_name: &str,
        shard: usize,
        target: ServerTarget,
        settings: PoolSettings,
        metrics: orochi_admin::QueryMetrics,
        health: Arc<ServerHealth>,
    ) -> Arc<Self> {
        Arc::new(ServerPool {
            pool_name: pool_name.into(),
            user_name: user_name.into(),
            shard,
            target: Arc::new(target),
            permits: Arc::new(Semaphore::new(settings.pool_size.max(1))),
            settings,
            idle: Mutex::new(Vec::new()),
            stats: PoolStats::default(),
            metrics,
            server_params: Mutex::new(None),
            generation: AtomicU64::new(0),
            health,
        })
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// A connection for the router's own use (owner 0): see [`checkout_for`](Self::checkout_for).
    pub async fn checkout(self: &Arc<Self>) -> Result<(Checkout, Duration)> {
        self.checkout_for(0).await
    }

    /// Waits (fairly) for a permit, then returns a live connection that carries no other
    /// client's session state. `waited` is how long the client queued (zero on the fast
    /// path, which takes no timer).
    pub async fn checkout_for(self: &Arc<Self>, owner: u64) -> Result<(Checkout, Duration)> {
        // One clock read on the usual path (a free permit): it dates the checkout and
        // ages the idle connection taken (issue 16, CPU per transaction).
        let started = Instant::now();
        let (permit, now, waited) = match self.permits.clone().try_acquire_owned() {
            Ok(p) => (Some(p), started, Duration::ZERO),
            Err(_) => {
                // Boxed: the wait (a timer and a semaphore waiter) is for a full pool
                // only; inline, every checkout's future would carry it (issue 16).
                let p = Box::pin(self.wait_for_permit(started)).await;
                let now = Instant::now();
                (p, now, now - started)
            }
        };
        let permit = match permit {
            Some(p) => p,
            None => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(RouterError::PoolExhausted {
                    pool: self.pool_name.clone(),
                    user: self.user_name.clone(),
                    waited_ms: started.elapsed().as_millis(),
                });
            }
        };
        // The paths that reset or open a connection are boxed: opening one (TLS, SCRAM)
        // is a deep future, and inline it would make every checkout's future — and so
        // every statement's, which a session boxes — kilobytes larger (issue 16).
        let idle = match self.take_idle(owner, now) {
            Some(c) if c.cancels.pending() => Some(Box::pin(self.cancels_landed(c)).await?),
            c => c,
        };
        let conn = match idle {
            Some(c) if c.dirty && c.owner != owner => Box::pin(self.scrub(c)).await?,
            Some(c) if c.identity && c.owner != owner => Box::pin(self.drop_identity(c)).await?,
            Some(c) => c,
            None => Box::pin(self.open()).await?,
        };
        Ok((self.lend(conn, owner, now, permit), waited))
    }

    /// [`checkout_for`](Self::checkout_for) when nothing has to wait: a free permit and
    /// an idle connection that needs no reset, no opening, no cancel to land, and whose
    /// settings `in_step` accepts (the session's, applied last). `None` leaves the pool
    /// as it was, for the full checkout. A session answers such a statement in place,
    /// without a boxed future (issue 16, CPU per transaction).
    pub fn try_checkout_now(
        self: &Arc<Self>,
        owner: u64,
        in_step: impl Fn(&ServerConn) -> bool,
    ) -> Option<Checkout> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        let now = Instant::now();
        let conn = {
            let mut idle = self.idle.lock().ok()?;
            let i = pick_idle(&idle, owner)?;
            let c = &mut idle[i];
            let ready = !c.cancels.pending()
                && (c.owner == owner || !(c.dirty || c.identity))
                && !self.age_limits(now).expired(c)
                && c.looks_alive()
                && in_step(c);
            if !ready {
                return None;
            }
            idle.remove(i)
        };
        Some(self.lend(conn, owner, now, permit))
    }

    /// Is a permit free now? A hint only, for a session deciding whether to try
    /// [`try_checkout_now`](Self::try_checkout_now) at all.
    pub fn has_free_permit(&self) -> bool {
        self.permits.available_permits() > 0
    }

    /// A connection taken from the pool, lent to `owner` from `now`.
    fn lend(
        self: &Arc<Self>,
        mut conn: Box<ServerConn>,
        owner: u64,
        now: Instant,
        permit: OwnedSemaphorePermit,
    ) -> Checkout {
        conn.owner = owner;
        self.stats.in_use.fetch_add(1, Ordering::Relaxed);
        self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
        Checkout {
            conn: Some(conn),
            pool: self.clone(),
            since: now,
            answered: None,
            released: false,
            _permit: permit,
        }
    }

    /// A full pool: waits up to `wait_timeout` for a connection to be given back; `None`
    /// when none was in time.
    async fn wait_for_permit(&self, started: Instant) -> Option<OwnedSemaphorePermit> {
        self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let p = tokio::time::timeout(
            self.settings.wait_timeout,
            self.permits.clone().acquire_owned(),
        )
        .await;
        self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        self.stats
            .wait_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        p.ok()?.ok()
    }

    /// Takes the idle connection `owner` should get (see the module doc), closing stale
    /// ones on the way.
    fn take_idle(&self, owner: u64, now: Instant) -> Option<Box<ServerConn>> {
        let limits = self.age_limits(now);
        loop {
            let mut conn = {
                let mut idle = self.idle.lock().ok()?;
                let i = pick_idle(&idle, owner)?;
                idle.remove(i)
            };
            if limits.expired(&conn) || !conn.looks_alive() {
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            return Some(conn);
        }
    }

    /// A cancel its last client sent is still on its way: wait for it to land (it must
    /// not hit the next query); a connection whose cancel never lands is replaced.
    async fn cancels_landed(&self, conn: Box<ServerConn>) -> Result<Box<ServerConn>> {
        if conn.cancels.settled(CANCEL_LANDING).await {
            return Ok(conn);
        }
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        drop(conn);
        self.open().await
    }

    /// Makes another client's dirty connection clean with `DISCARD ALL`; a connection that
    /// cannot be reset is closed and replaced.
    async fn scrub(&self, mut conn: Box<ServerConn>) -> Result<Box<ServerConn>> {
        match conn.run_silent("DISCARD ALL").await {
            Ok(None) => {
                conn.forget_session_state();
                Ok(conn)
            }
            _ => {
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
                self.open().await
            }
        }
    }

    /// Takes a JWT gateway session's role and claims off a connection (prepared
    /// statements stay); a connection that cannot be reset is closed and replaced.
    async fn drop_identity(&self, mut conn: Box<ServerConn>) -> Result<Box<ServerConn>> {
        let reset = crate::backend::conn::RESET_SQL.join(";\n");
        match conn.run_silent(&reset).await {
            Ok(None) => {
                conn.applied_params = crate::backend::conn::EMPTY_PARAMS;
                conn.identity = false;
                Ok(conn)
            }
            _ => {
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
                self.open().await
            }
        }
    }

    /// Closes the idle connections `owner` left dirty (its client has gone: its temp
    /// tables and session locks must not outlive it).
    pub fn close_owned_dirty(&self, owner: u64) {
        if let Ok(mut idle) = self.idle.lock() {
            let before = idle.len();
            idle.retain(|c| !(c.dirty && c.owner == owner));
            self.stats
                .open
                .fetch_sub(before - idle.len(), Ordering::Relaxed);
        }
    }

    /// The instants that make a connection too old or idle too long at `now`: read
    /// once, each connection is then two comparisons, not two durations (issue 16, CPU
    /// per transaction).
    fn age_limits(&self, now: Instant) -> AgeLimits {
        AgeLimits {
            born_by: now.checked_sub(self.settings.server_lifetime),
            used_by: now.checked_sub(self.settings.idle_timeout),
        }
    }

    async fn open(&self) -> Result<Box<ServerConn>> {
        match ServerConn::connect(&self.target, self.settings.connect_timeout).await {
            Ok(mut c) => {
                c.generation = self.generation.load(Ordering::Relaxed);
                if let Ok(mut p) = self.server_params.lock() {
                    if p.is_none() {
                        let mut v: Vec<_> = c
                            .params
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        v.sort();
                        *p = Some(v.into());
                    }
                }
                self.health.succeeded();
                if self.stats.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!(server = %self.target.addr(), "server reachable again");
                }
                self.stats.open.fetch_add(1, Ordering::Relaxed);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                Ok(Box::new(c))
            }
            Err(e) => {
                self.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                if is_server_failure(&e) {
                    self.health.failed(&e.to_string(), self.settings.ban_time);
                }
                if !self.stats.unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(server = %self.target.addr(), error = %e, "server unreachable");
                }
                Err(e)
            }
        }
    }

    fn give_back(&self, mut conn: Box<ServerConn>, now: Instant) {
        self.stats.in_use.fetch_sub(1, Ordering::Relaxed);
        conn.dirty |= self.settings.reset_always;
        if conn.identity {
            // A JWT gateway session's next transaction sets its role and claims afresh,
            // whichever path (single shard, fan-out, multi-shard) gave the connection back.
            conn.applied_params = crate::backend::conn::UNKNOWN_PARAMS;
        }
        if conn.broken
            || conn.generation < self.generation.load(Ordering::Relaxed)
            || self.age_limits(now).too_old(&conn)
        {
            self.stats.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        conn.last_used = now;
        conn.shrink();
        match self.idle.lock() {
            Ok(mut idle) => idle.push(conn),
            Err(_) => {
                self.stats.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Periodic upkeep: close idle connections past `idle_timeout`/`server_lifetime`
    /// (keeping `min_pool_size`), then open connections up to `min_pool_size`.
    pub async fn maintain(self: &Arc<Self>) {
        let min = self.settings.min_pool_size;
        if let Ok(mut idle) = self.idle.lock() {
            let open = self.stats.open.load(Ordering::Relaxed);
            let mut closable = open.saturating_sub(min);
            let before = idle.len();
            idle.retain(|c| {
                let old = c.created.elapsed() >= self.settings.server_lifetime;
                let idle_long = c.last_used.elapsed() >= self.settings.idle_timeout;
                if old || (idle_long && closable > 0) {
                    closable = closable.saturating_sub(1);
                    false
                } else {
                    true
                }
            });
            let closed = before - idle.len();
            self.stats.open.fetch_sub(closed, Ordering::Relaxed);
        }
        while self.stats.open.load(Ordering::Relaxed) < min {
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                break;
            };
            match self.open().await {
                Ok(c) => {
                    if let Ok(mut idle) = self.idle.lock() {
                        idle.push(c);
                    }
                }
                Err(e) => {
                    tracing::warn!(server = %self.target.addr(), error = %e, "could not open a minimum-pool connection");
                    break;
                }
            }
            drop(permit);
        }
    }

    /// A snapshot of the idle connections (admin console).
    pub fn idle_snapshot(&self) -> Vec<IdleConn> {
        self.idle
            .lock()
            .map(|v| {
                v.iter()
                    .map(|c| IdleConn {
                        id: c.id,
                        process_id: c.backend_key.0,
                        local: c.local,
                        created: c.created,
                        last_used: c.last_used,
                        tls: c.tls.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// RECONNECT: idle connections close now, busy ones when they are returned.
    pub fn reconnect(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.close_idle();
    }

    /// Closes every idle connection (RECONNECT, reload, shutdown).
    pub fn close_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            let n = idle.len();
            idle.clear();
            self.stats.open.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// Which idle connection `owner` gets: its own (newest first), else the newest clean
/// one, else the dirty one idle longest (the list is in release order).
fn pick_idle(idle: &[Box<ServerConn>], owner: u64) -> Option<usize> {
    if idle.is_empty() {
        return None;
    }
    let own = (owner != 0)
        .then(|| idle.iter().rposition(|c| c.owner == owner))
        .flatten();
    own.or_else(|| idle.iter().rposition(|c| !c.dirty))
        .or(Some(0))
}

/// Does this error from opening a connection say the server itself is unusable (down,
/// unreachable, starting up or shutting down, out of connection slots), as opposed to a
/// problem of one user (bad password, missing database)? Only those ban a server and
/// send a checkout to another one.
pub fn is_server_failure(e: &RouterError) -> bool {
    match e {
        RouterError::ServerUnreachable { .. }
        | RouterError::ServerTls { .. }
        | RouterError::ServerLost { .. }
        | RouterError::Protocol(_) => true,
        RouterError::ServerAuth(pg) => {
            let code = pg.fields.code.as_str();
            code.starts_with("57") || code.starts_with("08") || code == "53300"
        }
        _ => false,
    }
}

impl std::fmt::Debug for ServerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPool")
            .field("pool", &self.pool_name)
            .field("user", &self.user_name)
            .field("shard", &self.shard)
            .field("server", &self.target.addr())
            .finish()
    }
}

/// What the admin console shows of an idle connection.
#[derive(Debug, Clone)]
pub struct IdleConn {
    pub id: u64,
    pub process_id: i32,
    pub local: Option<std::net::SocketAddr>,
    pub created: Instant,
    pub last_used: Instant,
    pub tls: Option<String>,
}

/// `now - created >= server_lifetime` and `now - last_used >= idle_timeout` as
/// comparisons: a limit reaching back before the clock's start (`None`) is met by no
/// connection.
struct AgeLimits {
    born_by: Option<Instant>,
    used_by: Option<Instant>,
}

impl AgeLimits {
    fn too_old(&self, c: &ServerConn) -> bool {
        self.born_too_early(c.created)
    }
    fn expired(&self, c: &ServerConn) -> bool {
        self.born_too_early(c.created) || self.used_too_early(c.last_used)
    }
    fn born_too_early(&self, created: Instant) -> bool {
        self.born_by.is_some_and(|t| created <= t)
    }
    fn used_too_early(&self, last_used: Instant) -> bool {
        self.used_by.is_some_and(|t| last_used <= t)
    }
}

/// A connection lent to one client. [`release`](Self::release) returns it to the pool;
/// dropped without that, it is closed (its state is not known to be idle and clean).
pub struct Checkout {
    /// Boxed, as in the pool's idle list: lending and giving back move a pointer, and a
    /// session's state carries 8 bytes for it, not the connection's ~400 (issue 16).
    conn: Option<Box<ServerConn>>,
    pub pool: Arc<ServerPool>,
    since: Instant,
    /// When the server last answered a statement in full (`answered`): the moment the
    /// connection became free, read by the session for the statement's duration and
    /// used again when it is given back (one clock read, not two, a transaction;
    /// issue 16).
    answered: Option<Instant>,
    released: bool,
    _permit: OwnedSemaphorePermit,
}

impl Checkout {
    /// Gives the connection back: its holder saw the server idle (ReadyForQuery outside
    /// a transaction, nothing in flight). A broken or dirty one is still handled by the
    /// pool's rules.
    pub fn release(mut self) {
        self.released = true;
    }

    /// The server answered a statement in full at `at`: if the connection is given back
    /// now, that is when it became free.
    pub fn answered(&mut self, at: Instant) {
        self.answered = Some(at);
    }

    /// When the connection was lent.
    pub fn since(&self) -> Instant {
        self.since
    }

    pub fn conn(&mut self) -> &mut ServerConn {
        self.conn.as_mut().expect("present until drop")
    }
    pub fn conn_ref(&self) -> &ServerConn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let s = &self.pool.stats;
        let now = self.answered.unwrap_or_else(Instant::now);
        s.xacts.fetch_add(1, Ordering::Relaxed);
        s.xact_us.fetch_add(
            now.saturating_duration_since(self.since).as_micros() as u64,
            Ordering::Relaxed,
        );
        if let Some(mut c) = self.conn.take() {
            if !self.released {
                c.broken = true;
            }
            self.pool.give_back(c, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comparisons say what `now - t >= limit` says, at the boundary too.
    #[test]
    fn age_limits_are_the_durations_compared() {
        let now = Instant::now() + Duration::from_secs(100);
        let lifetime = Duration::from_secs(60);
        let idle = Duration::from_secs(5);
        let limits = AgeLimits {
            born_by: now.checked_sub(lifetime),
            used_by: now.checked_sub(idle),
        };
        for ago in [0u64, 1, 4_999, 5_000, 5_001, 59_999, 60_000, 60_001, 99_000] {
            let t = now - Duration::from_millis(ago);
            let age = now.saturating_duration_since(t);
            assert_eq!(limits.born_too_early(t), age >= lifetime, "{ago} ms");
            assert_eq!(limits.used_too_early(t), age >= idle, "{ago} ms");
        }
        // A limit longer than the clock has run: nothing is that old.
        let none = AgeLimits {
            born_by: None,
            used_by: None,
        };
        assert!(!none.born_too_early(now - Duration::from_secs(99)));
        assert!(!none.used_too_early(now - Duration::from_secs(99)));
    }
}
