//! Admission of client connections: the bounds on what clients can make the router hold
//! before and around login, with PgBouncer's names — `max_client_conn` (every client
//! connection, logins included), `max_db_client_connections` (per pool) and
//! `max_user_client_connections` (per user of a pool) — and a limit on failed logins per
//! client address (`client_auth_failure_limit` a minute), so a password cannot be guessed
//! at the speed of the network. A [`Ticket`] holds a client's places and gives them back
//! when dropped, however its session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window failed logins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; older windows are dropped first when it is reached.
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
pub struct Admission {
    total: AtomicUsize,
    /// (pool) and (pool, user) -> its place, which counts the clients now.
    counts: Mutex<HashMap<Key, Arc<Place>>>,
    /// Address -> (window start, failures in it).
    failures: Mutex<HashMap<IpAddr, (Instant, usize)>>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Key {
    Pool(String),
    User(String, String),
}

/// Why a client was not admitted: the metric's reason and the client's message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// A pool, or a user of a pool, and how many clients hold a place in it. Shared by
/// those clients' tickets, so a ticket owns no key of its own (it lives as long as its
/// client: issue 16's bytes per idle client). Changed under `counts`' lock only.
#[derive(Debug)]
struct Place {
    key: Key,
    clients: AtomicUsize,
}

/// A client's places; given back on drop.
pub struct Ticket {
    admission: Arc<Admission>,
    /// The pool's place and the user's, once admitted.
    places: [Option<Arc<Place>>; 2],
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
        if self.places.iter().all(Option::is_none) {
            return;
        }
        let mut counts = self
            .admission
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for p in self.places.iter_mut().filter_map(Option::take) {
            if p.clients.fetch_sub(1, Ordering::Relaxed) == 1 {
                counts.remove(&p.key);
            }
        }
    }
}

impl Admission {
    /// A new connection, before anything is read from it.
    pub fn connect(self: &Arc<Self>, max_client_conn: usize) -> Result<Ticket, Refusal> {
        let before = self.total.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket {
            admission: self.clone(),
            places: [None, None],
        };
        if before >= max_client_conn {
            return Err(Refusal {
                reason: "max_client_conn",
                message: format!(
                    "sorry, too many clients already (max_client_conn = {max_client_conn})"
                ),
            });
        }
        Ok(ticket)
    }

    /// Clients connected now (logins included).
    pub fn connected(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// The logged-in client of `pool`/`user` takes its places (0 = no limit); once per
    /// ticket.
    pub fn admit(
        &self,
        ticket: &mut Ticket,
        pool: &str,
        pool_max: usize,
        user: &str,
        user_max: usize,
    ) -> Result<(), Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let pk = Key::Pool(pool.to_string());
        let uk = Key::User(pool.to_string(), user.to_string());
        let now = |k: &Key| {
            counts
                .get(k)
                .map_or(0, |p| p.clients.load(Ordering::Relaxed))
        };
        if pool_max > 0 && now(&pk) >= pool_max {
            return Err(Refusal {
                reason: "max_db_client_connections",
                message: format!("sorry, too many clients already for database \"{pool}\" (max_db_client_connections = {pool_max})"),
            });
        }
        if user_max > 0 && now(&uk) >= user_max {
            return Err(Refusal {
                reason: "max_user_client_connections",
                message: format!("sorry, too many clients already for user \"{user}\" (max_user_client_connections = {user_max})"),
            });
        }
        for (slot, key) in ticket.places.iter_mut().zip([pk, uk]) {
            let place = match counts.get(&key) {
                Some(p) => p.clone(),
                None => {
                    let p = Arc::new(Place {
                        key: key.clone(),
                        clients: AtomicUsize::new(0),
                    });
                    counts.insert(key, p.clone());
                    p
                }
            };
            place.clients.fetch_add(1, Ordering::Relaxed);
            debug_assert!(slot.is_none(), "a ticket is admitted once");
            *slot = Some(place);
        }
        Ok(())
    }

    /// Refuses an address that failed `limit` logins within the current minute.
    pub fn check_address(&self, ip: IpAddr, limit: usize) -> Result<(), Refusal> {
        if limit == 0 {
            return Ok(());
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&ip) {
            Some((since, n)) if *n >= limit && since.elapsed() < FAILURE_WINDOW => Err(Refusal {
                reason: "rate_limited",
                message: format!(
                    "too many failed logins from this address; try again in {} s",
                    (FAILURE_WINDOW - since.elapsed()).as_secs() + 1
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `ip`.
    pub fn failed_login(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let e = failures.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= FAILURE_WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let a = Arc::new(Admission::default());
        let t1 = a.connect(2).unwrap();
        let mut t2 = a.connect(2).unwrap();
        assert_eq!(a.connect(2).err().unwrap().reason, "max_client_conn");
        assert_eq!(a.connected(), 2);
        drop(t1);
        let mut t3 = a.connect(2).unwrap();
        a.admit(&mut t2, "app", 2, "u", 1).unwrap();
        assert_eq!(
            a.admit(&mut t3, "app", 2, "u", 1).unwrap_err().reason,
            "max_user_client_connections"
        );
        a.admit(&mut t3, "app", 2, "v", 0).unwrap();
        let mut t4 = a.connect(9).unwrap();
        assert_eq!(
            a.admit(&mut t4, "app", 2, "w", 0).unwrap_err().reason,
            "max_db_client_connections"
        );
        drop(t2);
        a.admit(&mut t4, "app", 2, "u", 1).unwrap();
        drop((t3, t4));
        assert_eq!(a.connected(), 0);
        assert!(a.counts.lock().unwrap().is_empty());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let a = Admission::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert!(a.check_address(ip, 3).is_ok());
            a.failed_login(ip);
        }
        assert_eq!(a.check_address(ip, 3).unwrap_err().reason, "rate_limited");
        assert!(a.check_address(other, 3).is_ok());
        assert!(a.check_address(ip, 0).is_ok());
    }
}
