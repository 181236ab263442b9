//! `orochi-router run`: binds the listeners, starts background upkeep (pool maintenance,
//! health checks), and drives the lifecycle from start to shutdown.

use crate::admin_view::AppView;
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
    pub admin: TcpListener,
    pub metrics: TcpListener,
    /// The JWT gateway port, when `[gateway]` is configured.
    pub gateway: Option<TcpListener>,
}

impl Listeners {
    pub async fn bind(app: &App) -> anyhow::Result<Self> {
        use anyhow::Context;
        let cfg = app.config();
        refuse_unsafe_start(&cfg)?;
        app.tls
            .reload(&cfg.general)
            .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
        let host = cfg.general.host.as_str();
        let bind = |host: &str, port: u16, what: &'static str| {
            let host = host.to_string();
            async move {
                TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port} ({what})"))
            }
        };
        let metrics_host = cfg.general.metrics_host.as_deref().unwrap_or(host);
        let gateway = match &cfg.gateway {
            None => None,
            Some(g) => {
                if cfg.general.tls.is_none() {
                    anyhow::bail!("[gateway] needs TLS towards clients (tokens never cross the network in the clear): set tls_certificate and tls_private_key in [general]");
                }
                app.gateway
                    .configure(&cfg)
                    .map_err(|e| anyhow::anyhow!("[gateway]: {e}"))?;
                Some(bind(host, g.port, "JWT gateway port").await?)
            }
        };
        Ok(Listeners {
            gateway,
            client: bind(host, cfg.general.port, "client port").await?,
            admin: bind(host, cfg.general.admin_port, "admin port").await?,
            metrics: bind(metrics_host, cfg.general.metrics_port, "metrics port").await?,
        })
    }
}

/// No silent trust: every user that logs in without a password is named in a warning.
/// (TLS files that cannot be used stop the start in `Listeners::bind`.)
fn refuse_unsafe_start(cfg: &orochi_config::Config) -> anyhow::Result<()> {
    for pool in cfg.pools.values() {
        for u in &pool.users {
            match (&u.password, u.trust) {
                (orochi_config::Secret::None, true) => {
                    tracing::warn!(pool = %pool.name, user = %u.username, "auth_type = \"trust\": anyone who can reach the router logs in as this user without a password")
                }
                (orochi_config::Secret::None, false) => {
                    tracing::warn!(pool = %pool.name, user = %u.username, "this user has no password and auth_type is not \"trust\": its logins are refused")
                }
                _ => {}
            }
        }
    }
    Ok(())
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
    let health_app = app.clone();
    tokio::spawn(crate::backend::health::supervise(
        move || health_app.registry.load_full(),
        app.shutdown.clone(),
    ));
    // Before any client: a router started with an old map follows a reshard first.
    crate::reshard_follow::start(&app).await;
    tokio::spawn(accept_loop(
        app.clone(),
        listeners.client,
        tracker.clone(),
        crate::listener::Port::Client,
    ));
    if let Some(gw) = listeners.gateway {
        tracing::info!(addr = %gw.local_addr()?, "JWT gateway");
        tokio::spawn(accept_loop(
            app.clone(),
            gw,
            tracker.clone(),
            crate::listener::Port::Gateway,
        ));
    }
    tokio::spawn(maintenance(app.clone()));
    crate::twopc::spawn_sweepers(&app);
    if let Some(endpoint) = app.config().general.otel_endpoint.clone() {
        match crate::otel::Tracing::start(&endpoint, app.metrics.clone()) {
            Ok(t) => {
                tracing::info!(%endpoint, transport = ?t.transport, "exporting trace spans (OTLP)");
                let _ = app.otel.set(t);
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
    let view: Arc<dyn orochi_admin::AdminView> = Arc::new(AppView::new(app.clone()));
    let creds = app.admin_creds.clone();
    tracing::info!(addr = %listeners.admin.local_addr()?, "admin console");
    tracing::info!(addr = %listeners.metrics.local_addr()?, "metrics and health (HTTP)");
    let admin = tokio::spawn(orochi_admin::serve_admin(
        listeners.admin,
        view.clone(),
        creds,
        app.force.clone(),
        app.tls.clone(),
    ));
    let http = tokio::spawn(orochi_admin::serve_http(
        listeners.metrics,
        app.metrics.clone(),
        view,
        app.shutdown.clone(),
        app.force.clone(),
    ));
    // A SHUTDOWN from the admin console starts a graceful shutdown like SIGTERM.
    let how = tokio::select! {
        how = stop => how,
        _ = app.shutdown.cancelled() => Stop::Graceful,
    };
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
    app.force_stop();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = admin.await;
        let _ = http.await;
    })
    .await;
    for p in app.registry.load().all_server_pools() {
        p.close_idle();
    }
    // The last transactions' spans: sent now rather than lost with the process.
    if let Some(t) = app.otel.get() {
        t.flush(Duration::from_secs(2)).await;
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
