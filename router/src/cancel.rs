//! Proxy-owned cancel keys (house rule 10).
//!
//! Each client gets its own random BackendKeyData. While it holds a server connection,
//! its slot points at that server's key; a CancelRequest with the client's key is sent
//! on to that server, so a client can only ever cancel its own query. A statement
//! running on several shards at once points the slot at every one of their backends,
//! and a cancel reaches them all.
//!
//! A cancel goes to the server the way the connection it cancels went: with the pool's
//! `server_tls_sslmode` (SSLRequest first, the same certificate checks), as libpq 17's
//! cancel API does. A cleartext cancel to a server that only accepts TLS (`hostssl`)
//! would be refused, and would put the backend's key on the wire in the clear.
//! Under `allow` the cancel offers TLS as `prefer` does: a cancel gets no answer, so
//! `allow`'s plaintext-first retry cannot apply, and TLS keeps the key off the wire.
//!
//! A cancel must never hit the next client's query. A client can send its cancel just
//! as its query ends and its server goes back to the pool; the cancel is on its way
//! while another client's query starts on that backend. So every target counts the
//! cancels in flight to its backend ([`InFlight`]), counted under the slot's lock (a
//! session clears its slot before it gives its server back), and done only when the
//! postmaster has closed the cancel connection (it has signalled the backend by then).
//! The pool does not lend a connection with a cancel in flight (`backend::pool`).
//!
//! A client whose statement waits for a server connection has no backend to cancel;
//! PostgreSQL would cancel the statement all the same. While it waits, its slot holds
//! the session's waker instead: a cancel marks the wait cancelled and wakes it, and the
//! session answers 57014 without running the statement. A cancel for a client that is
//! neither running nor waiting is ignored, as PostgreSQL ignores one for an idle
//! backend, so it can never hit the client's next statement.

use crate::backend::conn::{ServerConn, ServerTarget};
use crate::backend::in_flight::{InFlight, Sending};
use bytes::BytesMut;
use orochi_wire::StartupRequest;
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    /// The server (host, port, `server_tls_sslmode`), shared with its pool: a target is
    /// made at every checkout, so it copies nothing.
    pub server: Arc<ServerTarget>,
    pub process_id: i32,
    pub secret_key: i32,
    in_flight: InFlight,
}

impl CancelTarget {
    /// The backend of `conn`, a connection to `server`.
    pub fn new(server: &Arc<ServerTarget>, conn: &ServerConn) -> Self {
        CancelTarget {
            server: server.clone(),
            process_id: conn.backend_key.0,
            secret_key: conn.backend_key.1,
            in_flight: conn.cancels.clone(),
        }
    }
}

#[derive(Default, Debug)]
pub struct CancelSlot {
    targets: Mutex<Targets>,
}

#[derive(Default, Debug)]
struct Targets {
    list: Vec<CancelTarget>,
    wait: Wait,
}

/// A statement waiting for a server connection, as a cancel sees it.
#[derive(Default, Debug)]
enum Wait {
    #[default]
    None,
    Waiting(Waker),
    Cancelled,
}

impl CancelSlot {
    /// One backend (or none). The list keeps its capacity, so a checkout's target
    /// costs no allocation after the first.
    pub fn set(&self, t: Option<CancelTarget>) {
        if let Ok(mut g) = self.targets.lock() {
            g.list.clear();
            g.list.extend(t);
        }
    }
    /// Every backend a multi-shard statement runs on.
    pub fn set_all(&self, t: Vec<CancelTarget>) {
        if let Ok(mut g) = self.targets.lock() {
            g.list = t;
        }
    }
    pub fn get(&self) -> Option<CancelTarget> {
        self.targets
            .lock()
            .ok()
            .and_then(|g| g.list.first().cloned())
    }
    pub fn get_all(&self) -> Vec<CancelTarget> {
        self.targets
            .lock()
            .map(|g| g.list.clone())
            .unwrap_or_default()
    }
    /// Called by a session while its statement waits for a server connection:
    /// `Ready` once a cancel arrived for it, else `Pending`, with `cx` to be woken by one.
    /// `first` starts the wait: whatever an earlier wait left (one given up without
    /// [`end_wait`](Self::end_wait), or a cancel that came after it) is forgotten.
    pub fn poll_cancelled(&self, cx: &mut Context<'_>, first: bool) -> Poll<()> {
        let Ok(mut g) = self.targets.lock() else {
            return Poll::Pending;
        };
        match &mut g.wait {
            Wait::Cancelled if !first => {
                g.wait = Wait::None;
                Poll::Ready(())
            }
            Wait::Waiting(w) if w.will_wake(cx.waker()) => Poll::Pending,
            w => {
                *w = Wait::Waiting(cx.waker().clone());
                Poll::Pending
            }
        }
    }
    /// The wait is over (the session got its connection or gave up): true when a cancel
    /// arrived in the meantime, which the session then honours.
    pub fn end_wait(&self) -> bool {
        self.targets
            .lock()
            .map(|mut g| matches!(std::mem::take(&mut g.wait), Wait::Cancelled))
            .unwrap_or(false)
    }
    /// The targets to cancel now, each counted in flight before the lock is let go; a
    /// waiting statement is marked cancelled and woken instead.
    fn start_all(&self) -> Vec<(CancelTarget, Sending)> {
        let Ok(mut g) = self.targets.lock() else {
            return Vec::new();
        };
        if let Wait::Waiting(w) = std::mem::take(&mut g.wait) {
            g.wait = Wait::Cancelled;
            w.wake();
        }
        g.list
            .iter()
            .map(|t| (t.clone(), t.in_flight.start()))
            .collect()
    }
}

#[derive(Default)]
pub struct CancelRegistry {
    slots: Mutex<HashMap<(i32, i32), Arc<CancelSlot>>>,
}

/// Removes the client's key when its session ends.
pub struct CancelKey {
    pub key: (i32, i32),
    pub slot: Arc<CancelSlot>,
    registry: Arc<CancelRegistry>,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        if let Ok(mut s) = self.registry.slots.lock() {
            s.remove(&self.key);
        }
    }
}

impl CancelRegistry {
    pub fn register(self: &Arc<Self>) -> CancelKey {
        let mut rng = rand::thread_rng();
        let slot = Arc::new(CancelSlot::default());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let key = (rng.gen_range(1..i32::MAX), rng.gen());
            if let std::collections::hash_map::Entry::Vacant(v) = slots.entry(key) {
                v.insert(slot.clone());
                return CancelKey {
                    key,
                    slot,
                    registry: self.clone(),
                };
            }
        }
    }

    /// Forwards a client's CancelRequest to the server it is using, if any.
    pub async fn cancel(&self, process_id: i32, secret_key: i32) {
        let targets = self
            .slots
            .lock()
            .ok()
            .and_then(|s| s.get(&(process_id, secret_key)).cloned())
            .map(|slot| slot.start_all())
            .unwrap_or_default();
        if targets.is_empty() {
            tracing::debug!("cancel request: no backend to signal (an unknown or idle client, or one waiting for a connection)");
        }
        // Concurrently: every shard's backend is cancelled at about the same moment.
        let sends: Vec<_> = targets
            .into_iter()
            .map(|(t, sending)| {
                tokio::spawn(async move {
                    let _sending = sending;
                    if let Err(e) = send_cancel(&t).await {
                        tracing::warn!(server = %t.server.addr(), error = %e, "cancel request failed");
                    }
                })
            })
            .collect();
        for s in sends {
            let _ = s.await;
        }
    }
}

pub async fn send_cancel(t: &CancelTarget) -> std::io::Result<()> {
    let server = &*t.server;
    let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port)).await?;
    let side = server.tls.hub.server();
    let mode = match server.tls.mode {
        orochi_config::ServerTlsMode::Allow => orochi_config::ServerTlsMode::Prefer,
        m => m,
    };
    let mut s = orochi_tls::connect::upgrade(tcp, &server.host, mode, &side)
        .await
        .map_err(|e| {
            std::io::Error::other(format!(
                "TLS for the cancel request (server_tls_sslmode = {}): {e}",
                server.tls.mode.as_str()
            ))
        })?;
    let mut b = BytesMut::new();
    StartupRequest::Cancel {
        process_id: t.process_id,
        secret_key: t.secret_key,
    }
    .encode(&mut b);
    s.write_all(&b).await?;
    s.flush().await?;
    // The postmaster closes the connection once it has signalled the backend: until
    // then the cancel is in flight (see the module doc). Bounded: it may never answer.
    let mut sink = [0u8; 64];
    let _ = tokio::time::timeout(CANCEL_DELIVERY, async {
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    s.shutdown().await
}

/// How long a cancel may take to reach its backend before its connection is lent again
/// anyway (a postmaster that never closes the cancel connection).
const CANCEL_DELIVERY: Duration = Duration::from_secs(2);
