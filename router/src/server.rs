//! `orochi-router run`: binds the listeners, starts background upkeep, and drives the
//! lifecycle from start to shutdown.

use crate::app::App;
use crate::listener::accept_loop;
use crate::signals::{wait_for_stop, Stop};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// Bound listeners of a router (tests bind port 0 and read the real ports back).
pub struct Listeners {
    pub client: TcpListener,
}

impl Listeners {
    pub async fn bind(app: &App) -> std::io::Result<Self> {
        let cfg = app.config();
        let client = TcpListener::bind((cfg.general.host.as_str(), cfg.general.port)).await?;
        Ok(Listeners { client })
    }
}

/// Runs until `stop` resolves; then shuts down as asked.
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    stop: impl std::future::Future<Output = Stop>,
) -> anyhow::Result<()> {
    let tracker = TaskTracker::new();
    let addr = listeners.client.local_addr()?;
    tracing::info!(%addr, "accepting PostgreSQL clients");
    tokio::spawn(accept_loop(app.clone(), listeners.client, tracker.clone()));
    tokio::spawn(maintenance(app.clone()));
    let how = stop.await;
    let timeout = app.config().general.shutdown_timeout;
    app.begin_shutdown();
    tracker.close();
    match how {
        Stop::Graceful => {
            tracing::info!(
                timeout_ms = timeout.as_millis() as u64,
                "shutting down: letting transactions finish"
            );
            if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
                tracing::warn!("shutdown timeout reached: disconnecting remaining clients");
            }
        }
        Stop::Fast => tracing::info!("fast shutdown"),
    }
    app.force.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    for p in app.registry.load().all_server_pools() {
        p.close_idle();
    }
    Ok(())
}

/// Production entry: serve until a signal.
pub async fn run(app: Arc<App>) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&app).await?;
    let sig_app = app.clone();
    serve(app, listeners, async move {
        wait_for_stop(sig_app).await.unwrap_or(Stop::Fast)
    })
    .await
}

/// Once a second: idle timeouts, lifetimes, minimum pool sizes.
async fn maintenance(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = app.shutdown.cancelled() => return,
        }
        let reg = app.registry.load_full();
        for p in reg.all_server_pools() {
            p.maintain().await;
        }
    }
}
