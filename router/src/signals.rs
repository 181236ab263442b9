//! Signals in one place (house rule 5): SIGTERM = graceful shutdown, SIGINT = fast
//! shutdown, SIGHUP = reload.

use crate::app::App;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Graceful,
    Fast,
}

/// Waits for SIGTERM/SIGINT, reloading on every SIGHUP meanwhile.
pub async fn wait_for_stop(app: Arc<App>) -> std::io::Result<Stop> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(Stop::Graceful),
            _ = int.recv() => return Ok(Stop::Fast),
            _ = hup.recv() => match app.reload() {
                Ok(diff) => tracing::info!(changes = ?diff, "configuration reloaded (SIGHUP)"),
                Err(e) => tracing::error!("configuration reload rejected, keeping the running configuration:\n{e}"),
            },
        }
    }
}
