//! Health checks, actual roles, bans and replica lag, one checker per shard.
//!
//! **Why per shard, not per server pool.** Pools exist per (pool, user, shard, server), but
//! health is a property of the server, and two decisions need all servers of a shard seen
//! in the *same* round: which one is the primary now (roles `auto`, promotions, an old
//! primary that came back), and how far each replica is behind that primary. So one task
//! per health-checked shard probes every server of the shard concurrently; the per-server
//! state ([`ServerHealth`]) is shared by the pools of all users of that server.
//!
//! **Which shards are checked.** Those where a routing choice depends on health: more than
//! one server, or a role to discover (`auto`). A shard with a single `primary` has nothing
//! to fail over to; it is always tried, and its state comes from connection attempts.
//!
//! **A round.** Every `healthcheck_delay` (at least 50 ms), and at once when asked (a
//! server we took for the primary answered `25006`; a client's connection attempt failed
//! and banned a server), each server gets a *fresh* connection (the pool's first user
//! with a password usable towards the server, `application_name = orochi-health`)
//! running [`PROBE_SQL`], all under `healthcheck_timeout` (0 means 1 s). A fresh login
//! tests what clients need (the server accepts connections: not starting up, shutting
//! down or out of slots), and holds no connection between rounds. A probe refused for
//! reasons of its own (its login or query rejected) says nothing about the server: it
//! bans nothing, is logged once, and leaves an `auto` role unknown.
//!
//! **Bans.** A failed probe, or a client's failed connection attempt, takes the server out
//! of rotation: it is *banned* for `ban_time`, and returns once `ban_time` has passed *and*
//! a probe has succeeded since (so a dead server does not come back just because time
//! passed, and a flapping one stays out at least `ban_time`). Ban and return are logged
//! once each (warn / info) and every ban counts in `orochi_pgdog_server_bans_total`.
//! Exception, for availability: when the shard has no other usable primary, a banned
//! primary whose latest probe passed takes writes again at once — keeping writes failing
//! serves nobody. With no usable primary at all, writes fail fast with `08006`.
//!
//! **Roles.** `pg_is_in_recovery()` decides: a server in recovery is a replica, else a
//! primary. Configured roles bound what detection may do: `auto` follows whatever the
//! server reports (a promotion is followed within one round); `primary` takes writes
//! only while it is *not* in recovery (a primary that reports recovery — a demoted or
//! misconfigured server — gets no writes, and that is logged); `replica` never takes
//! writes, even when it reports it was promoted (logged: use `auto` to follow
//! promotions). Several servers may report primary: each primary's timeline (the first 8
//! hex digits of `pg_walfile_name()`) is compared, and only servers on the newest
//! timeline seen may take writes — an old primary that comes back after a failover is on
//! an older timeline and is ignored (split brain). Among equals (e.g. several endpoints
//! of one server, seed 001), the configured primary comes first, then config order: the
//! first one in rotation takes writes; when it fails the next one does, and it gets the
//! writes back once it returns.
//!
//! **Lag.** The primary's WAL flush position (`pg_current_wal_flush_lsn()`, what replicas
//! can have received) and each replica's replay position (`pg_last_wal_replay_lsn()`)
//! come from the same round. A replica that has replayed at least what the primary had
//! flushed has lag zero, however long the primary has been idle. Otherwise its lag is
//! the time since the router *first saw* the primary past the replica's position
//! ([`LsnHistory`]): the age of the newest data the replica lacks, measured on the
//! router's clock only (no clock skew between hosts, no spike when an idle primary writes
//! again, as `now() - pg_last_xact_replay_timestamp()` would give). It is a lower bound,
//! late by at most one `healthcheck_delay`. A replica whose lag exceeds
//! `max_replica_lag` (0 disables the check) gets no reads until it is back under it.
//! With no primary reachable, lag cannot be measured: replicas keep serving reads.

mod lag;
mod probe;

pub use super::server_state::{actual_role, ActualRole, ServerHealth};
pub use lag::LsnHistory;
pub use probe::{Probe, ProbeFailure, PROBE_APPLICATION_NAME, PROBE_SQL};

use super::conn::ServerTarget;
use super::server_state::lock;
use crate::error::RouterError;
use orochi_admin::NodeStatus;
use orochi_config::Role;
use orochi_wire::PgError;
use probe::probe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Shortest pause between two rounds, even when asked again at once (a client that
/// keeps provoking `25006` must not turn into a login storm on the servers).
const MIN_ROUND_GAP: Duration = Duration::from_millis(100);

/// `healthcheck_delay` below this is taken as this (0 would spin).
const MIN_DELAY: Duration = Duration::from_millis(50);

/// Timing of one shard's checks from the configuration: a zero delay is floored at
/// [`MIN_DELAY`], a zero timeout (which would fail every probe) means one second.
pub fn settings_from(
    delay: Duration,
    timeout: Duration,
    ban_time: Duration,
    max_lag: Duration,
) -> HealthSettings {
    HealthSettings {
        delay: delay.max(MIN_DELAY),
        timeout: if timeout.is_zero() {
            Duration::from_secs(1)
        } else {
            timeout
        },
        ban_time,
        max_lag,
    }
}

/// Timing of one shard's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub delay: Duration,
    pub timeout: Duration,
    pub ban_time: Duration,
    /// 0 = no lag limit.
    pub max_lag: Duration,
}

/// What a shard's checker is built from; a reload keeps the checker (and its history)
/// when this is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// Each server, with the credentials probes use, and its configured role.
    pub servers: Vec<(ServerTarget, Role)>,
    pub settings: HealthSettings,
}

/// Health of one shard: its servers' states and the task that keeps them current.
pub struct ShardHealth {
    pub pool_name: String,
    pub shard: usize,
    pub spec: ShardSpec,
    /// Same order as the configured servers (and `UserPools::shards[shard]`).
    pub servers: Vec<Arc<ServerHealth>>,
    /// Health checks run and bans apply (more than one server, or a role to discover).
    pub checked: bool,
    /// Some server has role `auto`: checkouts wait briefly for the first round.
    discovers: bool,
    /// Servers that may take writes, in preference order: configured primaries, then
    /// `auto` servers, each in config order.
    write_order: Vec<usize>,
    /// Newest timeline a primary of this shard has reported.
    newest_timeline: AtomicU32,
    history: Mutex<LsnHistory>,
    /// The server whose positions fill `history`.
    reference: Mutex<Option<usize>>,
    wake: Arc<Notify>,
    /// Id of the last round started; `finished` carries the last one finished.
    started: AtomicU64,
    finished: watch::Sender<u64>,
    running: AtomicBool,
    stop: CancellationToken,
}

impl ShardHealth {
    pub fn new(
        pool_name: &str,
        shard: usize,
        spec: ShardSpec,
        servers: Vec<Arc<ServerHealth>>,
    ) -> Arc<Self> {
        let roles: Vec<Role> = spec.servers.iter().map(|(_, r)| *r).collect();
        let discovers = roles.contains(&Role::Auto);
        let checked = roles.len() > 1 || discovers;
        let write_order = roles
            .iter()
            .enumerate()
            .filter(|(_, r)| **r == Role::Primary)
            .chain(roles.iter().enumerate().filter(|(_, r)| **r == Role::Auto))
            .map(|(i, _)| i)
            .collect();
        let wake = Arc::new(Notify::new());
        for s in &servers {
            s.checked.store(checked, Ordering::Relaxed);
            *lock(&s.wake) = checked.then(|| wake.clone());
        }
        Arc::new(ShardHealth {
            pool_name: pool_name.into(),
            shard,
            spec,
            servers,
            checked,
            discovers,
            write_order,
            newest_timeline: AtomicU32::new(0),
            history: Mutex::new(LsnHistory::default()),
            reference: Mutex::new(None),
            wake,
            started: AtomicU64::new(0),
            finished: watch::channel(0).0,
            running: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    /// The server that takes writes now: the first usable primary in preference order on
    /// the newest timeline; else one whose latest probe passed though it is still banned.
    pub fn write_target(&self) -> Option<usize> {
        if !self.checked {
            return self.write_order.first().copied();
        }
        let now = Instant::now();
        let mut fallback = None;
        for &i in &self.write_order {
            let s = &self.servers[i];
            if s.role() != ActualRole::Primary || s.stale() {
                continue;
            }
            if s.in_rotation(now) {
                return Some(i);
            }
            if fallback.is_none() && s.ok() {
                fallback = Some(i);
            }
        }
        fallback
    }

    /// May server `i` take reads as a replica now?
    pub fn readable_replica(&self, i: usize, now: Instant) -> bool {
        let s = &self.servers[i];
        s.role() == ActualRole::Replica && s.in_rotation(now) && !s.lagging()
    }

    /// Is server `i` a usable, current primary (it may take reads when
    /// `primary_reads_enabled`; several endpoints of one primary all are)?
    pub fn readable_primary(&self, i: usize, now: Instant) -> bool {
        let s = &self.servers[i];
        s.role() == ActualRole::Primary && !s.stale() && s.in_rotation(now)
    }

    /// Last resort for a read when nothing is in rotation: a server of known role whose
    /// latest check passed (banned but recovering, or lagging).
    pub fn read_fallback(&self) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.ok() && s.role() != ActualRole::Unknown && !s.stale())
    }

    /// Checks are running for this shard.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed) && !self.stop.is_cancelled()
    }

    /// Marks the checker as started; true for the caller that must spawn [`run`](Self::run).
    pub fn start(&self) -> bool {
        self.checked && !self.stop.is_cancelled() && !self.running.swap(true, Ordering::SeqCst)
    }

    /// Ends the checker (the registry dropped this shard on reload).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Rounds until stopped or shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::debug!(pool = %self.pool_name, shard = self.shard, delay_ms = self.spec.settings.delay.as_millis() as u64, "health checks started");
        loop {
            tokio::select! {
                _ = self.round() => {}
                _ = self.stop.cancelled() => break,
                _ = shutdown.cancelled() => break,
            }
            tokio::select! {
                _ = tokio::time::sleep(self.spec.settings.delay) => {}
                _ = async {
                    tokio::time::sleep(MIN_ROUND_GAP.min(self.spec.settings.delay)).await;
                    self.wake.notified().await;
                } => {}
                _ = self.stop.cancelled() => break,
                _ = shutdown.cancelled() => break,
            }
        }
        tracing::debug!(pool = %self.pool_name, shard = self.shard, "health checks stopped");
    }

    /// Asks for a round now, without waiting for it.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs a round now and waits for it (at most about `healthcheck_timeout`). Returns at
    /// once when no checker runs for this shard.
    pub async fn recheck(&self) {
        if !self.running() {
            return;
        }
        let mut rx = self.finished.subscribe();
        let after = self.started.load(Ordering::SeqCst);
        self.wake.notify_one();
        let limit = self.spec.settings.timeout + Duration::from_millis(500);
        let _ = tokio::time::timeout(limit, rx.wait_for(|&done| done > after)).await;
    }

    /// Nothing to wait for before a checkout: no roles to discover, no checker running,
    /// or its first round done.
    pub fn discovered(&self) -> bool {
        !self.discovers || !self.running() || *self.finished.borrow() > 0
    }

    /// With roles to discover, waits (at most about `healthcheck_timeout`) for the first
    /// round, so the first clients after start find the primary.
    pub async fn wait_discovered(&self) {
        if self.discovered() {
            return;
        }
        let mut rx = self.finished.subscribe();
        let limit = self.spec.settings.timeout + Duration::from_millis(500);
        let _ = tokio::time::timeout(limit, rx.wait_for(|&done| done > 0)).await;
    }

    /// One round now, without a running checker (`orochi-router setup`, which serves
    /// nothing and so has no checkers, must still find each shard's current primary).
    /// Does nothing for a shard that is not health-checked (a single `primary`).
    pub async fn discover_once(&self) {
        if self.checked {
            self.round().await;
        }
    }

    async fn round(&self) {
        let id = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let timeout = self.spec.settings.timeout;
        let mut set = tokio::task::JoinSet::new();
        for (i, (target, _)) in self.spec.servers.iter().enumerate() {
            let target = target.clone();
            set.spawn(async move { (i, probe(&target, timeout).await) });
        }
        let mut results: Vec<Result<Probe, ProbeFailure>> =
            vec![Err("health check did not finish".into()); self.servers.len()];
        while let Some(done) = set.join_next().await {
            if let Ok((i, r)) = done {
                results[i] = r;
            }
        }
        self.apply(&results, Instant::now());
        self.finished.send_replace(id);
    }

    /// Takes one round's results into the servers' states (pure but for logging, so it
    /// is unit-tested without servers).
    pub fn apply(&self, results: &[Result<Probe, ProbeFailure>], now: Instant) {
        let ban_time = self.spec.settings.ban_time;
        for (i, r) in results.iter().enumerate() {
            let (Some(s), Some((_, configured))) = (self.servers.get(i), self.spec.servers.get(i))
            else {
                continue;
            };
            let p = match r {
                Ok(p) => p,
                Err(f) if f.server_down => {
                    s.failed(&f.reason, ban_time);
                    continue;
                }
                Err(f) => {
                    *lock(&s.last_error) = Some(f.reason.clone());
                    if !s.inconclusive.swap(true, Ordering::Relaxed) {
                        tracing::warn!(pool = %self.pool_name, shard = self.shard, server = %s.addr, error = %f.reason, "health check cannot tell (its login or query was refused): the server keeps its state, an `auto` role stays unknown; health checks log in as the pool's first user with a server password");
                    }
                    continue;
                }
            };
            s.inconclusive.store(false, Ordering::Relaxed);
            if let Some(tl) = p.timeline {
                s.timeline.store(tl, Ordering::Relaxed);
            }
            let role = actual_role(*configured, Some(p.in_recovery));
            if let Some(old) = s.set_role(role) {
                tracing::info!(pool = %self.pool_name, shard = self.shard, server = %s.addr, role = role.as_str(), was = old.as_str(), "server role changed");
            }
            let mismatch = match (configured, p.in_recovery) {
                (Role::Primary, true) => Some(
                    "server configured as primary is in recovery (a standby): it gets no writes; use role \"auto\" to follow promotions",
                ),
                (Role::Replica, false) => Some(
                    "server configured as replica is not in recovery (promoted?): it still gets only reads; use role \"auto\" to follow promotions",
                ),
                _ => None,
            };
            if s.mismatch.swap(mismatch.is_some(), Ordering::Relaxed) != mismatch.is_some() {
                if let Some(m) = mismatch {
                    tracing::warn!(pool = %self.pool_name, shard = self.shard, server = %s.addr, "{m}");
                }
            }
            s.succeeded();
        }
        self.check_timelines(results);
        self.measure_lag(results, now);
    }

    /// Only primaries on the newest timeline seen may take writes.
    fn check_timelines(&self, results: &[Result<Probe, ProbeFailure>]) {
        // Only servers that may take writes count: a `replica` someone promoted by hand
        // does not make the configured primary an old one.
        let seen = self
            .write_order
            .iter()
            .filter_map(|&i| results.get(i)?.as_ref().ok())
            .filter(|p| !p.in_recovery)
            .filter_map(|p| p.timeline)
            .max()
            .unwrap_or(0);
        let newest = self
            .newest_timeline
            .fetch_max(seen, Ordering::SeqCst)
            .max(seen);
        for s in &self.servers {
            let stale = s.role() == ActualRole::Primary && s.timeline().is_some_and(|t| t < newest);
            if s.stale.swap(stale, Ordering::Relaxed) != stale {
                s.changed();
                if stale {
                    tracing::warn!(pool = %self.pool_name, shard = self.shard, server = %s.addr, timeline = s.timeline().unwrap_or(0), newest, "server reports primary on an older timeline than another primary (an old primary back after a failover?): it gets no writes");
                } else {
                    tracing::info!(pool = %self.pool_name, shard = self.shard, server = %s.addr, "server is on the newest timeline again");
                }
            }
        }
    }

    fn measure_lag(&self, results: &[Result<Probe, ProbeFailure>], now: Instant) {
        let max = self.spec.settings.max_lag;
        let reference = self.write_target().filter(|&i| {
            matches!(
                results.get(i),
                Some(Ok(Probe {
                    in_recovery: false,
                    lsn: Some(_),
                    ..
                }))
            )
        });
        let primary_lsn = reference.and_then(|i| results[i].as_ref().ok()?.lsn);
        let mut history = lock(&self.history);
        {
            let mut prev = lock(&self.reference);
            if *prev != reference {
                history.clear();
                *prev = reference;
            }
        }
        if let Some(p) = primary_lsn {
            history.record(now, p);
        }
        for (i, s) in self.servers.iter().enumerate() {
            let replayed = match results.get(i) {
                Some(Ok(p)) if p.in_recovery => p.lsn,
                Some(Err(_)) => continue,
                _ => None,
            };
            let lag = match (replayed, primary_lsn) {
                (Some(r), Some(_)) if s.role() == ActualRole::Replica => history.lag(r, now),
                _ => None,
            };
            s.lag_ms.store(
                lag.map_or(u64::MAX, |l| l.as_millis() as u64),
                Ordering::Relaxed,
            );
            let lagging = lag.is_some_and(|l| !max.is_zero() && l > max);
            if s.lagging.swap(lagging, Ordering::Relaxed) != lagging {
                s.changed();
                if lagging {
                    tracing::warn!(pool = %self.pool_name, shard = self.shard, server = %s.addr, lag_ms = lag.map_or(0, |l| l.as_millis() as u64), max_replica_lag_ms = max.as_millis() as u64, "replica lags behind the primary: no reads until it catches up");
                } else if lag.is_none() {
                    tracing::info!(pool = %self.pool_name, shard = self.shard, server = %s.addr, "replica lag cannot be measured (no primary answered): back in reads");
                } else {
                    tracing::info!(pool = %self.pool_name, shard = self.shard, server = %s.addr, "replica caught up: back in reads");
                }
            }
        }
    }

    /// The client-facing error when no server can take writes.
    pub fn no_primary_error(&self) -> RouterError {
        let states: Vec<String> = self
            .servers
            .iter()
            .map(|s| {
                let mut d = format!("{} {}", s.addr, s.role().as_str());
                match s.status(Instant::now()) {
                    NodeStatus::Up if s.stale() => d.push_str(" on an old timeline"),
                    NodeStatus::Up if s.role() == ActualRole::Unknown => {
                        if let Some(e) = s.last_error() {
                            d.push_str(&format!(" ({e})"));
                        }
                    }
                    NodeStatus::Up => {}
                    st => {
                        d.push(' ');
                        d.push_str(st.as_str());
                        if let Some(e) = s.last_error() {
                            d.push_str(&format!(" ({e})"));
                        }
                    }
                }
                d
            })
            .collect();
        // Addresses and error texts go to the log; the client learns the servers' states.
        tracing::warn!(pool = %self.pool_name, shard = self.shard, servers = %states.join("; "), "no primary available");
        let summary: Vec<String> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let st = match s.status(Instant::now()) {
                    NodeStatus::Up if s.stale() => "up on an old timeline",
                    st => st.as_str(),
                };
                format!("server {i} {} {st}", s.role().as_str())
            })
            .collect();
        RouterError::Pg(
            PgError::error(
                "08006",
                format!(
                    "no primary available for shard {} of pool \"{}\": {}",
                    self.shard,
                    self.pool_name,
                    summary.join("; ")
                ),
            )
            .with_hint(format!(
                "reads still go to replicas; writes resume as soon as a primary passes a health check (every {} ms)",
                self.spec.settings.delay.as_millis()
            )),
        )
    }

    /// The client-facing error when no server at all can take a read.
    pub fn no_server_error(&self) -> RouterError {
        let mut e = self.no_primary_error();
        if let RouterError::Pg(pg) = &mut e {
            pg.fields.message =
                pg.fields
                    .message
                    .replacen("no primary available", "no server available", 1);
        }
        e
    }
}

/// Starts a checker for every health-checked shard of the current registry and stops
/// the checkers of shards a reload dropped. Runs until `shutdown`.
pub async fn supervise(
    registry: impl Fn() -> Arc<super::Registry> + Send + 'static,
    shutdown: CancellationToken,
) {
    let mut seen: Option<Arc<super::Registry>> = None;
    loop {
        let reg = registry();
        if !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &reg)) {
            if let Some(old) = &seen {
                for h in &old.health {
                    if !reg.health.iter().any(|n| Arc::ptr_eq(n, h)) {
                        h.stop();
                    }
                }
            }
            for h in &reg.health {
                if h.start() {
                    tokio::spawn(h.clone().run(shutdown.clone()));
                }
            }
            seen = Some(reg);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> ServerTarget {
        ServerTarget {
            host: "127.0.0.1".into(),
            port,
            database: "db".into(),
            user: "u".into(),
            password: None,
            allow_cleartext: true,
            tcp: Default::default(),
            tls: crate::backend::conn::TargetTls::plain(),
        }
    }

    fn shard(roles: &[Role], max_lag_ms: u64, ban_ms: u64) -> Arc<ShardHealth> {
        let metrics = Arc::new(orochi_admin::Metrics::new().unwrap());
        let servers = roles
            .iter()
            .enumerate()
            .map(|(i, r)| ServerHealth::new("p", 0, format!("h:{i}"), *r, metrics.clone()))
            .collect();
        ShardHealth::new(
            "p",
            0,
            ShardSpec {
                servers: roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (target(i as u16 + 1), *r))
                    .collect(),
                settings: HealthSettings {
                    delay: Duration::from_millis(100),
                    timeout: Duration::from_millis(100),
                    ban_time: Duration::from_millis(ban_ms),
                    max_lag: Duration::from_millis(max_lag_ms),
                },
            },
            servers,
        )
    }

    fn primary(lsn: u64, tl: u32) -> Result<Probe, ProbeFailure> {
        Ok(Probe {
            in_recovery: false,
            lsn: Some(lsn),
            timeline: Some(tl),
        })
    }

    fn replica(lsn: u64) -> Result<Probe, ProbeFailure> {
        Ok(Probe {
            in_recovery: true,
            lsn: Some(lsn),
            timeline: None,
        })
    }

    fn down() -> Result<Probe, ProbeFailure> {
        Err("connection refused".into())
    }

    #[test]
    fn auto_roles_follow_a_promotion() {
        let s = shard(&[Role::Auto, Role::Auto, Role::Auto], 0, 0);
        assert_eq!(
            s.write_target(),
            None,
            "nothing known before the first round"
        );
        s.apply(
            &[primary(100, 1), replica(100), replica(100)],
            Instant::now(),
        );
        assert_eq!(s.write_target(), Some(0));
        assert!(s.readable_replica(1, Instant::now()));
        // The primary dies; server 1 is promoted.
        s.apply(&[down(), primary(200, 2), replica(100)], Instant::now());
        assert_eq!(s.write_target(), Some(1));
        assert_eq!(s.servers[1].role(), ActualRole::Primary);
        // The old primary comes back as a primary on the old timeline: no writes.
        s.apply(
            &[primary(150, 1), primary(300, 2), replica(300)],
            Instant::now(),
        );
        assert!(s.servers[0].stale());
        assert_eq!(s.write_target(), Some(1));
        assert!(!s.readable_primary(0, Instant::now()));
    }

    #[test]
    fn a_configured_primary_in_recovery_gets_no_writes() {
        let s = shard(&[Role::Primary, Role::Auto], 0, 0);
        assert_eq!(
            s.write_target(),
            Some(0),
            "configured primary assumed at start"
        );
        s.apply(&[replica(10), primary(20, 2)], Instant::now());
        assert_eq!(s.servers[0].role(), ActualRole::Replica);
        assert_eq!(s.write_target(), Some(1));
        // A configured replica never takes writes, even when it is not in recovery.
        let r = shard(&[Role::Primary, Role::Replica], 0, 0);
        r.apply(&[down(), primary(5, 2)], Instant::now());
        assert_eq!(r.servers[1].role(), ActualRole::Replica);
        assert_eq!(r.write_target(), None);
    }

    #[test]
    fn bans_last_ban_time_and_until_a_check_passes() {
        let s = shard(&[Role::Primary, Role::Replica], 0, 60_000);
        let now = Instant::now();
        s.apply(&[primary(1, 1), down()], now);
        assert_eq!(s.servers[1].status(Instant::now()), NodeStatus::Banned);
        assert!(!s.readable_replica(1, Instant::now()));
        // Passing a check during the ban: still out, but usable as a last resort.
        s.apply(&[primary(1, 1), replica(1)], now);
        assert!(!s.readable_replica(1, Instant::now()));
        assert_eq!(s.read_fallback(), Some(0));
        // A banned primary whose check passed takes writes: there is no other.
        s.apply(&[down(), replica(1)], now);
        assert_eq!(s.write_target(), None, "primary down: writes fail fast");
        s.apply(&[primary(1, 1), replica(1)], now);
        assert_eq!(s.write_target(), Some(0));
        assert_eq!(s.servers[0].status(Instant::now()), NodeStatus::Banned);

        // ban_time 0: back at the first passing check.
        let z = shard(&[Role::Primary, Role::Replica], 0, 0);
        z.apply(&[primary(1, 1), down()], now);
        assert_eq!(z.servers[1].status(Instant::now()), NodeStatus::Down);
        z.apply(&[primary(1, 1), replica(1)], now);
        assert!(z.readable_replica(1, Instant::now()));
        assert_eq!(z.servers[1].status(Instant::now()), NodeStatus::Up);
    }

    #[test]
    fn a_probe_that_cannot_tell_bans_nothing() {
        let s = shard(&[Role::Auto, Role::Auto], 0, 60_000);
        let refused = || {
            Err(ProbeFailure {
                reason: "password authentication failed".into(),
                server_down: false,
            })
        };
        s.apply(&[refused(), refused()], Instant::now());
        assert!(s.servers.iter().all(|h| h.in_rotation(Instant::now())));
        assert_eq!(s.write_target(), None, "roles stay unknown");
        let msg = match s.no_primary_error() {
            RouterError::Pg(e) => e.fields.message,
            other => panic!("{other:?}"),
        };
        // The client learns the states; the reason and the addresses go to the log.
        assert!(msg.contains("server 0 unknown up"), "{msg}");
        assert!(!msg.contains("127.0.0.1"), "{msg}");
        s.apply(&[primary(1, 1), replica(1)], Instant::now());
        assert_eq!(s.write_target(), Some(0));
    }

    #[test]
    fn endpoints_of_one_primary_fail_over_in_config_order_and_come_back() {
        let s = shard(&[Role::Auto, Role::Auto, Role::Auto], 0, 0);
        let all = [primary(7, 1), primary(7, 1), primary(7, 1)];
        s.apply(&all, Instant::now());
        assert_eq!(s.write_target(), Some(0));
        s.apply(&[down(), primary(7, 1), primary(7, 1)], Instant::now());
        assert_eq!(s.write_target(), Some(1));
        s.apply(&[down(), down(), primary(7, 1)], Instant::now());
        assert_eq!(s.write_target(), Some(2));
        s.apply(&all, Instant::now());
        assert_eq!(s.write_target(), Some(0));
        assert!((0..3).all(|i| s.readable_primary(i, Instant::now())));
    }

    #[test]
    fn a_replica_behind_past_max_lag_gets_no_reads_until_it_catches_up() {
        let s = shard(&[Role::Primary, Role::Replica, Role::Replica], 500, 0);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Idle primary, caught-up replicas: zero lag.
        s.apply(&[primary(100, 1), replica(100), replica(100)], at(0));
        assert_eq!(s.servers[1].lag(), Some(Duration::ZERO));
        // Writes; replica 2 stops replaying at 100, replica 1 keeps up (one round behind).
        s.apply(&[primary(200, 1), replica(150), replica(100)], at(200));
        assert!(!s.servers[2].lagging());
        s.apply(&[primary(300, 1), replica(250), replica(100)], at(400));
        s.apply(&[primary(400, 1), replica(350), replica(100)], at(800));
        assert_eq!(s.servers[2].lag(), Some(Duration::from_millis(600)));
        assert!(s.servers[2].lagging());
        assert!(!s.readable_replica(2, Instant::now()));
        assert!(!s.servers[1].lagging(), "one round behind is not lag");
        assert!(s.servers[1].lag() <= Some(Duration::from_millis(400)));
        // Replay resumes.
        s.apply(&[primary(400, 1), replica(400), replica(400)], at(1000));
        assert!(!s.servers[2].lagging());
        assert!(s.readable_replica(2, Instant::now()));
        // Primary unreachable: lag unknown, replicas keep their reads.
        s.apply(&[down(), replica(400), replica(300)], at(1200));
        assert_eq!(s.servers[2].lag(), None);
        assert!(s.readable_replica(2, Instant::now()));
    }
}
