//! TCP keepalive and `TCP_USER_TIMEOUT` on client and server sockets (`tcp_keepalive`,
//! `tcp_keepidle`, `tcp_keepintvl`, `tcp_keepcnt`, `tcp_user_timeout`).
//!
//! Keepalive finds a peer that vanished while the connection was idle (a pooled server
//! behind a failed switch, a client whose laptop closed); the user timeout bounds how long
//! written data may stay unacknowledged, so a write into a black hole fails instead of
//! waiting for the kernel's retransmission limit (~15 minutes). A socket option the
//! platform refuses is logged once per connection at debug level and otherwise ignored:
//! the connection still works, only its dead-peer detection is the kernel default.

use orochi_config::TcpKeepalive;
use socket2::{SockRef, TcpKeepalive as Ka};
use tokio::net::TcpStream;

/// Applies the options to a connected socket.
pub fn apply(stream: &TcpStream, opts: &TcpKeepalive) {
    let sock = SockRef::from(stream);
    let r = if opts.enabled {
        let mut ka = Ka::new();
        if let Some(d) = opts.idle {
            ka = ka.with_time(d);
        }
        if let Some(d) = opts.interval {
            ka = ka.with_interval(d);
        }
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
        if let Some(n) = opts.count {
            ka = ka.with_retries(n);
        }
        sock.set_tcp_keepalive(&ka)
    } else {
        sock.set_keepalive(false)
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "tcp keepalive options not applied");
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Some(d) = opts.user_timeout {
        if let Err(e) = sock.set_tcp_user_timeout(Some(d)) {
            tracing::debug!(error = %e, "tcp_user_timeout not applied");
        }
    }
}
