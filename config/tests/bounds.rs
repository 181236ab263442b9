//! Bounds on waits and dead peers: PgBouncer's names, PgCat's aliases, defaults.

mod common;

use common::{errors, parse, MINIMAL};
use std::time::Duration;

#[test]
fn off_by_default_except_keepalive() {
    let c = parse(MINIMAL).unwrap().config;
    let b = &c.general.bounds;
    assert_eq!(b.query_timeout, None);
    assert_eq!(b.query_wait_timeout, None);
    assert_eq!(b.idle_transaction_timeout, None);
    assert!(b.tcp.enabled);
    assert_eq!(b.tcp.user_timeout, None);
}

#[test]
fn pgbouncer_names_in_seconds_and_tcp_user_timeout_in_ms() {
    let c = parse(&format!(
        "[general]\nquery_timeout = 30\nquery_wait_timeout = 120\nidle_transaction_timeout = 60\n\
         server_connect_timeout = 15\ntcp_keepalive = true\ntcp_keepidle = 10\ntcp_keepintvl = 3\n\
         tcp_keepcnt = 4\ntcp_user_timeout = 9000\n{MINIMAL}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let g = &c.general;
    assert_eq!(g.bounds.query_timeout, Some(Duration::from_secs(30)));
    assert_eq!(g.bounds.query_wait_timeout, Some(Duration::from_secs(120)));
    assert_eq!(
        g.bounds.idle_transaction_timeout,
        Some(Duration::from_secs(60))
    );
    assert_eq!(g.connect_timeout, Duration::from_secs(15));
    assert_eq!(g.bounds.tcp.idle, Some(Duration::from_secs(10)));
    assert_eq!(g.bounds.tcp.interval, Some(Duration::from_secs(3)));
    assert_eq!(g.bounds.tcp.count, Some(4));
    assert_eq!(g.bounds.tcp.user_timeout, Some(Duration::from_millis(9000)));
}

#[test]
fn pgcat_spellings_are_honoured_and_zero_means_off() {
    let c = parse(&format!(
        "[general]\nidle_client_in_transaction_timeout = 1500\ntcp_keepalives_idle = 5\n\
         tcp_keepalives_interval = 2\ntcp_keepalives_count = 3\ntcp_user_timeout = 0\nquery_timeout = 0\n{MINIMAL}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let b = &c.general.bounds;
    assert_eq!(
        b.idle_transaction_timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(b.tcp.idle, Some(Duration::from_secs(5)));
    assert_eq!(b.tcp.interval, Some(Duration::from_secs(2)));
    assert_eq!(b.tcp.count, Some(3));
    assert_eq!(b.tcp.user_timeout, None);
    assert_eq!(b.query_timeout, None);
}

#[test]
fn server_connect_timeout_beside_connect_timeout_is_an_error() {
    let errs = errors(&format!(
        "[general]\nconnect_timeout = 5000\nserver_connect_timeout = 15\n{MINIMAL}"
    ));
    assert!(
        errs.iter()
            .any(|(l, _, m)| *l == 3 && m.contains("server_connect_timeout")),
        "{errs:?}"
    );
}
