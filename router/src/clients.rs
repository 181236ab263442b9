//! Connected clients, as the admin console sees them (SHOW CLIENTS, KILL_CLIENT).
//! A session registers itself for its lifetime and keeps its state current.

use crate::alarm::Alarm;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// No server connection, not waiting for one.
    Idle = 0,
    /// Holding a server connection.
    Active = 1,
    /// Waiting for a server connection.
    Waiting = 2,
}

#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub database: String,
    pub user: String,
    pub addr: Option<SocketAddr>,
    pub application_name: String,
    pub connected_at: SystemTime,
    pub started: Instant,
    pub cancel_key: (i32, i32),
    /// The TLS version and cipher suite, `None` in plaintext.
    pub tls: Option<String>,
    state: AtomicU8,
    /// Raised by KILL_CLIENT and by the shutdown (`alarm.rs`).
    pub alarm: Alarm,
    /// The server connection it holds, and since when it waits (admin console).
    pub link: Mutex<Option<ServerLink>>,
    pub wait_since: Mutex<Option<Instant>>,
}

/// The server connection a client holds.
#[derive(Debug, Clone)]
pub struct ServerLink {
    pub server_id: u64,
    pub process_id: i32,
    pub local: Option<SocketAddr>,
    pub pool: std::sync::Arc<crate::backend::ServerPool>,
    pub since: Instant,
    pub connected: Instant,
    /// The server connection's TLS version and cipher suite (SHOW SERVERS `tls`).
    pub tls: Option<String>,
}

impl ClientInfo {
    pub fn state(&self) -> ClientState {
        match self.state.load(Ordering::Relaxed) {
            1 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }
    pub fn set_state(&self, s: ClientState) {
        let was = self.state.swap(s as u8, Ordering::Relaxed);
        // The lock is taken when a wait begins or ends, not at every turn between active
        // and idle (issue 16, CPU per transaction).
        if s == ClientState::Waiting || was == ClientState::Waiting as u8 {
            if let Ok(mut w) = self.wait_since.lock() {
                *w = (s == ClientState::Waiting).then(Instant::now);
            }
        }
    }

    pub fn set_link(&self, link: Option<ServerLink>) {
        if let Ok(mut l) = self.link.lock() {
            *l = link;
        }
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    map: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    /// Reasons raised for every client (`alarm_all`), inherited by later ones. Read
    /// and written under `map`'s lock, so no client registers between the two.
    raised_all: std::sync::atomic::AtomicU8,
}

/// Removes the client from the registry when its session ends.
pub struct Registered {
    pub info: Arc<ClientInfo>,
    registry: Arc<ClientRegistry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.remove(&self.info.id);
        }
    }
}

pub struct NewClient {
    pub id: u64,
    pub database: String,
    pub user: String,
    pub addr: Option<SocketAddr>,
    pub application_name: String,
    pub cancel_key: (i32, i32),
    /// `TLSv1.3/TLS_AES_256_GCM_SHA384`, `None` in plaintext (SHOW CLIENTS `tls`).
    pub tls: Option<String>,
}

impl ClientRegistry {
    pub fn register(self: &Arc<Self>, c: NewClient) -> Registered {
        let info = Arc::new(ClientInfo {
            id: c.id,
            database: c.database,
            user: c.user,
            addr: c.addr,
            application_name: c.application_name,
            connected_at: SystemTime::now(),
            started: Instant::now(),
            cancel_key: c.cancel_key,
            tls: c.tls,
            state: AtomicU8::new(ClientState::Idle as u8),
            alarm: Alarm::default(),
            link: Mutex::new(None),
            wait_since: Mutex::new(None),
        });
        if let Ok(mut m) = self.map.lock() {
            let inherited = self.raised_all.load(Ordering::SeqCst);
            if inherited != 0 {
                info.alarm.raise(inherited);
            }
            m.insert(c.id, info.clone());
        }
        Registered {
            info,
            registry: self.clone(),
        }
    }

    pub fn list(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self
            .map
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn kill(&self, id: u64) -> bool {
        match self.map.lock().ok().and_then(|m| m.get(&id).cloned()) {
            Some(c) => {
                c.alarm.raise(crate::alarm::KILL);
                true
            }
            None => false,
        }
    }

    /// Raises `why` on every client's alarm, and on the alarm of every client that
    /// registers later (a shutdown).
    pub fn alarm_all(&self, why: u8) {
        if let Ok(m) = self.map.lock() {
            self.raised_all.fetch_or(why, Ordering::SeqCst);
            for c in m.values() {
                c.alarm.raise(why);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
