//! The health of one server as routing reads it: actual role, rotation (bans), lag.
//! Written by the shard's checker (`health`) and by the server's pools (connection
//! attempts), read on every checkout.
//!
//! A plain shared record below both writers: the pools report their connection
//! attempts here without knowing the checker, and the checker (which observes the
//! pools, e.g. which connect errors mean a server is down) sits above them.

use orochi_admin::NodeStatus;
use orochi_config::Role;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// A server's role as routing sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActualRole {
    /// `auto`, not probed yet.
    Unknown,
    Primary,
    Replica,
}

impl ActualRole {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => ActualRole::Primary,
            2 => ActualRole::Replica,
            _ => ActualRole::Unknown,
        }
    }
    fn as_u8(self) -> u8 {
        match self {
            ActualRole::Unknown => 0,
            ActualRole::Primary => 1,
            ActualRole::Replica => 2,
        }
    }
    pub fn as_str(self) -> &'static str {
        self.view().as_str()
    }
    /// The admin console's spelling.
    pub fn view(self) -> orochi_admin::Role {
        match self {
            ActualRole::Unknown => orochi_admin::Role::Unknown,
            ActualRole::Primary => orochi_admin::Role::Primary,
            ActualRole::Replica => orochi_admin::Role::Replica,
        }
    }
}

/// What a configured role and the last `pg_is_in_recovery()` answer make a server.
pub fn actual_role(configured: Role, in_recovery: Option<bool>) -> ActualRole {
    match (configured, in_recovery) {
        (Role::Replica, _) | (_, Some(true)) => ActualRole::Replica,
        (Role::Primary, _) | (Role::Auto, Some(false)) => ActualRole::Primary,
        (Role::Auto, None) => ActualRole::Unknown,
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Health of one server of one shard of one pool, shared by the pools of all its users
/// and kept across reloads while the server stays configured.
pub struct ServerHealth {
    pub pool_name: String,
    pub shard: usize,
    /// `host:port`.
    pub addr: String,
    pub(super) metrics: Arc<orochi_admin::Metrics>,
    /// Part of a health-checked shard: failures ban. Set by every registry build.
    pub(super) checked: AtomicBool,
    /// [`ActualRole`] as u8.
    pub(super) role: AtomicU8,
    /// The latest probe or connection attempt succeeded.
    pub(super) ok: AtomicBool,
    /// Out of rotation until then (and until a probe passes).
    pub(super) banned_until: Mutex<Option<Instant>>,
    /// Replica lag in ms; `u64::MAX` = unknown.
    pub(super) lag_ms: AtomicU64,
    /// Lag above `max_replica_lag`: no reads.
    pub(super) lagging: AtomicBool,
    /// Timeline of the last probe as a primary (0 = unknown).
    pub(super) timeline: AtomicU32,
    /// Reports primary on an older timeline than the shard's newest: no writes.
    pub(super) stale: AtomicBool,
    /// The configured role disagrees with what the server reports (logged once).
    pub(super) mismatch: AtomicBool,
    /// The last probe could not tell (logged once).
    pub(super) inconclusive: AtomicBool,
    pub(super) last_change: Mutex<SystemTime>,
    pub(super) last_error: Mutex<Option<String>>,
    /// Wakes the shard's checker (a client's connection attempt failed).
    pub(super) wake: Mutex<Option<Arc<Notify>>>,
}

impl ServerHealth {
    pub fn new(
        pool_name: &str,
        shard: usize,
        addr: String,
        configured: Role,
        metrics: Arc<orochi_admin::Metrics>,
    ) -> Arc<Self> {
        Arc::new(ServerHealth {
            pool_name: pool_name.into(),
            shard,
            addr,
            metrics,
            checked: AtomicBool::new(false),
            role: AtomicU8::new(actual_role(configured, None).as_u8()),
            ok: AtomicBool::new(true),
            banned_until: Mutex::new(None),
            lag_ms: AtomicU64::new(u64::MAX),
            lagging: AtomicBool::new(false),
            timeline: AtomicU32::new(0),
            stale: AtomicBool::new(false),
            mismatch: AtomicBool::new(false),
            inconclusive: AtomicBool::new(false),
            last_change: Mutex::new(SystemTime::now()),
            last_error: Mutex::new(None),
            wake: Mutex::new(None),
        })
    }

    pub fn role(&self) -> ActualRole {
        ActualRole::from_u8(self.role.load(Ordering::Relaxed))
    }

    /// The latest probe (or connection attempt) succeeded.
    pub fn ok(&self) -> bool {
        self.ok.load(Ordering::Relaxed)
    }

    /// Gets traffic: its latest check passed and it is not banned.
    pub fn in_rotation(&self, now: Instant) -> bool {
        self.ok() && lock(&self.banned_until).is_none_or(|t| now >= t)
    }

    pub fn lagging(&self) -> bool {
        self.lagging.load(Ordering::Relaxed)
    }

    pub fn lag(&self) -> Option<Duration> {
        match self.lag_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    pub fn timeline(&self) -> Option<u32> {
        Some(self.timeline.load(Ordering::Relaxed)).filter(|&t| t > 0)
    }

    pub fn status(&self, now: Instant) -> NodeStatus {
        if lock(&self.banned_until).is_some_and(|t| now < t) {
            NodeStatus::Banned
        } else if !self.ok() {
            NodeStatus::Down
        } else {
            NodeStatus::Up
        }
    }

    pub fn last_change(&self) -> SystemTime {
        *lock(&self.last_change)
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(super) fn changed(&self) {
        *lock(&self.last_change) = SystemTime::now();
    }

    /// A probe or a connection attempt failed: out of rotation (see the module doc).
    pub fn failed(&self, why: &str, ban_time: Duration) {
        let was_ok = self.ok.swap(false, Ordering::SeqCst);
        *lock(&self.last_error) = Some(why.to_string());
        if !self.checked.load(Ordering::Relaxed) {
            if was_ok {
                self.changed();
            }
            return;
        }
        let now = Instant::now();
        let mut until = lock(&self.banned_until);
        match *until {
            // Failed again while banned: the ban starts over, silently.
            Some(t) if now < t => *until = Some(now + ban_time),
            _ if was_ok => {
                *until = Some(now + ban_time);
                drop(until);
                self.changed();
                tracing::warn!(
                    pool = %self.pool_name,
                    shard = self.shard,
                    server = %self.addr,
                    role = self.role().as_str(),
                    ban_time_s = ban_time.as_secs(),
                    error = why,
                    "server banned: no traffic until ban_time has passed and a health check succeeds"
                );
                self.metrics.server_banned(
                    &self.pool_name,
                    self.shard,
                    self.role().view(),
                    &self.addr,
                );
                if let Some(w) = lock(&self.wake).as_ref() {
                    w.notify_one();
                }
            }
            // Already out (down after its ban expired): nothing new to say.
            _ => {}
        }
    }

    /// A probe or a connection attempt succeeded.
    pub fn succeeded(&self) {
        let was_ok = self.ok.swap(true, Ordering::SeqCst);
        let now = Instant::now();
        let mut until = lock(&self.banned_until);
        match *until {
            Some(t) if now >= t => {
                *until = None;
                drop(until);
                self.changed();
                tracing::info!(
                    pool = %self.pool_name,
                    shard = self.shard,
                    server = %self.addr,
                    role = self.role().as_str(),
                    "server back in rotation"
                );
            }
            _ if !was_ok => self.changed(),
            _ => {}
        }
    }

    /// Sets the actual role; returns the previous one when it changed.
    pub(super) fn set_role(&self, r: ActualRole) -> Option<ActualRole> {
        let old = ActualRole::from_u8(self.role.swap(r.as_u8(), Ordering::SeqCst));
        (old != r).then(|| {
            self.changed();
            old
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_roles_bound_detection() {
        use ActualRole::*;
        assert_eq!(actual_role(Role::Auto, None), Unknown);
        assert_eq!(actual_role(Role::Auto, Some(false)), Primary);
        assert_eq!(actual_role(Role::Auto, Some(true)), Replica);
        assert_eq!(actual_role(Role::Primary, None), Primary);
        assert_eq!(actual_role(Role::Primary, Some(true)), Replica);
        assert_eq!(actual_role(Role::Replica, Some(false)), Replica);
    }
}
