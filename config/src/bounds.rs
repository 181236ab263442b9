//! Bounds on waits and on dead peers: PgBouncer's names (and PgCat's, where it has its own).
//!
//! A proxy in front of a network that can drop packets must never leave a client waiting
//! on a server that will not answer. `connect_timeout` already bounds the TCP connect,
//! the TLS handshake and the login towards a server; these add the rest:
//! - `query_timeout` (s, 0 = off, default off): a statement whose answer has not finished
//!   by then is cancelled; the client gets 57014 and is disconnected, the server
//!   connection closed (PgBouncer's behaviour: nothing can be known of the server's state).
//! - `query_wait_timeout` (s): how long a client may queue for a server connection
//!   (default: `connect_timeout`, as before this key existed; PgBouncer's default is 120 s).
//! - `idle_transaction_timeout` (s, 0 = off; PgCat's `idle_client_in_transaction_timeout`
//!   in ms): a client idle inside a transaction that long is disconnected (25P03) and its
//!   server connection closed, which rolls the transaction back.
//! - `server_connect_timeout` (s): PgBouncer's name for `connect_timeout`.
//! - `tcp_keepalive` (default on), `tcp_keepidle`, `tcp_keepintvl` (s), `tcp_keepcnt`
//!   (PgCat: `tcp_keepalives_idle`, `tcp_keepalives_interval`, `tcp_keepalives_count`):
//!   keepalive probes on client and server sockets find peers that vanished while idle.
//! - `tcp_user_timeout` (ms, 0 = off): unacknowledged data older than this closes the
//!   socket (Linux `TCP_USER_TIMEOUT`), so a write into a black hole fails in bounded time.

use crate::reader::{Ctx, Section};
use std::time::Duration;

/// See the module documentation; `None` = off (or the default named there).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bounds {
    pub query_timeout: Option<Duration>,
    pub query_wait_timeout: Option<Duration>,
    pub idle_transaction_timeout: Option<Duration>,
    pub tcp: TcpKeepalive,
}

/// Socket options applied to every client and server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub enabled: bool,
    pub idle: Option<Duration>,
    pub interval: Option<Duration>,
    pub count: Option<u32>,
    pub user_timeout: Option<Duration>,
}

impl Default for TcpKeepalive {
    fn default() -> Self {
        TcpKeepalive {
            enabled: true,
            idle: None,
            interval: None,
            count: None,
            user_timeout: None,
        }
    }
}

fn nonzero(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

/// Reads the keys of `[general]` above into `b` (and `server_connect_timeout` into
/// `connect_timeout` when `connect_timeout` itself is not written).
pub(crate) fn read_bounds(
    sec: &mut Section,
    cx: &mut Ctx,
    b: &mut Bounds,
    connect_timeout: &mut Duration,
) {
    b.query_timeout = nonzero(sec.seconds(cx, "query_timeout"));
    b.query_wait_timeout = nonzero(sec.seconds(cx, "query_wait_timeout"));
    b.idle_transaction_timeout = nonzero(
        sec.seconds(cx, "idle_transaction_timeout")
            .or_else(|| sec.millis(cx, "idle_client_in_transaction_timeout")),
    );
    if let Some(v) = sec.bool(cx, "tcp_keepalive") {
        b.tcp.enabled = v;
    }
    b.tcp.idle = nonzero(
        sec.seconds(cx, "tcp_keepidle")
            .or_else(|| sec.seconds(cx, "tcp_keepalives_idle")),
    );
    b.tcp.interval = nonzero(
        sec.seconds(cx, "tcp_keepintvl")
            .or_else(|| sec.seconds(cx, "tcp_keepalives_interval")),
    );
    b.tcp.count = sec
        .count(cx, "tcp_keepcnt", 0)
        .or_else(|| sec.count(cx, "tcp_keepalives_count", 0))
        .filter(|&n| n > 0)
        .map(|n| n as u32);
    b.tcp.user_timeout = nonzero(sec.millis(cx, "tcp_user_timeout"));
    if let Some(v) = nonzero(sec.seconds(cx, "server_connect_timeout")) {
        if sec.has("connect_timeout") {
            cx.error(
                sec.at("server_connect_timeout"),
                format!(
                    "key \"server_connect_timeout\" in {}: PgBouncer's name for connect_timeout, which is also set; keep one",
                    sec.name()
                ),
            );
        } else {
            *connect_timeout = v;
        }
    }
}
