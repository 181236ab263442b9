//! One health probe: a fresh login and [`PROBE_SQL`], under the health-check timeout,
//! and what its answer (or failure) means.

use crate::backend::conn::{ServerConn, ServerTarget};
use crate::error::RouterError;
use std::time::Duration;

/// One probe: recovery state, the WAL position that matters for lag (replay position on a
/// replica, flush position on a primary, in bytes) and a primary's timeline.
pub const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
      ELSE pg_current_wal_flush_lsn() END - '0/0'::pg_lsn)::text, \
     CASE WHEN pg_is_in_recovery() THEN NULL \
      ELSE substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8) END";

/// `application_name` of health-check connections.
pub const PROBE_APPLICATION_NAME: &str = "orochi-health";

/// What one probe learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub in_recovery: bool,
    /// Replay position (replica) or flush position (primary), in bytes.
    pub lsn: Option<u64>,
    /// Timeline of a primary.
    pub timeline: Option<u32>,
}

impl Probe {
    /// Reads [`PROBE_SQL`]'s row.
    pub fn parse(row: &[Option<String>]) -> Option<Probe> {
        let in_recovery = match row.first()?.as_deref()? {
            "t" => true,
            "f" => false,
            _ => return None,
        };
        let text = |i: usize| row.get(i).and_then(|v| v.as_deref());
        Some(Probe {
            in_recovery,
            lsn: text(1).and_then(|v| v.parse::<u64>().ok()),
            timeline: text(2).and_then(|v| u32::from_str_radix(v, 16).ok()),
        })
    }
}

/// Why a probe gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub reason: String,
    /// The server itself is unusable (down, unreachable, timed out, starting up or
    /// shutting down, out of connections): it is banned. Otherwise the probe could not
    /// tell (the health-check login or query was refused): the server keeps its state.
    pub server_down: bool,
}

impl From<&str> for ProbeFailure {
    fn from(reason: &str) -> Self {
        ProbeFailure {
            reason: reason.to_string(),
            server_down: true,
        }
    }
}

impl From<RouterError> for ProbeFailure {
    fn from(e: RouterError) -> Self {
        ProbeFailure {
            server_down: crate::backend::pool::is_server_failure(&e),
            reason: e.to_string(),
        }
    }
}

/// Connects afresh, runs [`PROBE_SQL`], says goodbye; all under `timeout`.
pub(super) async fn probe(target: &ServerTarget, timeout: Duration) -> Result<Probe, ProbeFailure> {
    let work = async {
        let mut c =
            ServerConn::connect_named(target, timeout, Some(PROBE_APPLICATION_NAME)).await?;
        let row = c.first_row(PROBE_SQL).await?;
        c.terminate().await;
        Probe::parse(&row).ok_or_else(|| ProbeFailure {
            reason: format!("unexpected health check answer {row:?}"),
            server_down: false,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ProbeFailure::from(
            format!("health check timed out after {} ms", timeout.as_millis()).as_str(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_rows() {
        let row = |a: &str, b: Option<&str>, c: Option<&str>| {
            vec![
                Some(a.to_string()),
                b.map(String::from),
                c.map(String::from),
            ]
        };
        assert_eq!(
            Probe::parse(&row("f", Some("26350272"), Some("00000002"))),
            Some(Probe {
                in_recovery: false,
                lsn: Some(26_350_272),
                timeline: Some(2)
            })
        );
        assert_eq!(
            Probe::parse(&row("t", None, None)),
            Some(Probe {
                in_recovery: true,
                lsn: None,
                timeline: None
            })
        );
        assert_eq!(Probe::parse(&row("x", None, None)), None);
        assert_eq!(Probe::parse(&[]), None);
    }
}
