//! The client listener: accepts connections and runs one task per client. The listener
//! owns task lifetimes (a `TaskTracker`), so shutdown can wait for every session. The
//! JWT gateway's port runs the same loop; only its handshake differs (`gateway::login`).

use crate::app::App;
use crate::client::params::SessionParams;
use crate::client::session::Session;
use crate::client::startup::handshake;
use crate::error::RouterError;
use bytes::BytesMut;
use orochi_wire::PgError;
use std::sync::Arc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The client port: pool users log in with their passwords.
    Client,
    /// The JWT gateway port (SPEC §9): the password is a token.
    Gateway,
}

pub async fn accept_loop(app: Arc<App>, listener: TcpListener, tracker: TaskTracker, port: Port) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let app = app.clone();
                    tracker.spawn(async move {
                        if let Err(e) = serve_client(app, stream, peer, port).await {
                            tracing::debug!(%peer, error = %e, "client session ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = app.shutdown.cancelled() => return,
        }
    }
}

async fn tell<S: AsyncWrite + Unpin>(stream: &mut S, e: &RouterError) {
    if let Some(pg) = e.to_client() {
        let mut b = BytesMut::new();
        PgError::fatal(&pg.fields.code, pg.fields.message.clone()).encode(&mut b);
        let _ = stream.write_all(&b).await;
    }
}

/// Tells the client why it may not log in, and counts it.
async fn refuse<S: AsyncWrite + Unpin>(
    app: &App,
    stream: &mut S,
    code: &str,
    r: crate::admission::Refusal,
) {
    app.metrics.login_refused(r.reason);
    tracing::info!(reason = r.reason, "client login refused: {}", r.message);
    tell(stream, &RouterError::Pg(PgError::fatal(code, r.message))).await;
}

async fn serve_client(
    app: Arc<App>,
    mut tcp: TcpStream,
    peer: std::net::SocketAddr,
    port: Port,
) -> Result<(), RouterError> {
    tcp.set_nodelay(true).ok();
    let general = app.config().general.clone();
    crate::backend::sockopt::apply(&tcp, &general.bounds.tcp);
    let ticket = match app.admission.connect(general.max_client_conn) {
        Ok(t) => t,
        Err(r) => {
            refuse(&app, &mut tcp, "53300", r).await;
            return Ok(());
        }
    };
    if let Err(r) = app
        .admission
        .check_address(peer.ip(), general.client_auth_failure_limit)
    {
        refuse(&app, &mut tcp, "28000", r).await;
        return Ok(());
    }
    // TLS negotiation and login share one deadline (client_login_timeout); the TLS
    // handshake alone is bounded by connect_timeout.
    let deadline = tokio::time::Instant::now() + general.client_login_timeout;
    let tls = match port {
        Port::Client => app.tls.client(),
        Port::Gateway => app.tls.gateway(),
    };
    let accept = orochi_tls::negotiate::accept(tcp, &tls);
    let accepted = match tokio::time::timeout_at(deadline, accept).await {
        Err(_) => {
            app.metrics.login_refused("login_timeout");
            return Ok(());
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "client TLS negotiation failed");
            app.metrics.login_refused("tls");
            return Ok(());
        }
        Ok(Ok(a)) => a,
    };
    let mut stream = accepted.stream;
    let buffered = BytesMut::from(&accepted.buffered[..]);
    if port == Port::Gateway {
        let login = tokio::time::timeout_at(
            deadline,
            crate::gateway::login::handshake(&app, &mut stream, buffered),
        )
        .await;
        return match login {
            Err(_) => {
                app.metrics.login_refused("login_timeout");
                Ok(())
            }
            Ok(Err(r)) => {
                crate::gateway::login::record_refusal(&app, peer, &r);
                if matches!(&r.error, RouterError::Pg(pg) if pg.fields.code.starts_with("28")) {
                    app.admission.failed_login(peer.ip());
                }
                tell(&mut stream, &r.error).await;
                Ok(())
            }
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(l))) => start_session(app, stream, peer, ticket, l).await,
        };
    }
    let login =
        tokio::time::timeout_at(deadline, handshake(&app, &mut stream, buffered, &tls)).await;
    let logged_in = match login {
        Err(_) => {
            app.metrics.login_refused("login_timeout");
            return Ok(());
        }
        Ok(Err(e)) => {
            if let RouterError::Pg(pg) = &e {
                if pg.fields.code.starts_with("28") {
                    tracing::info!(%peer, message = %pg.fields.message, "client authentication failed");
                    app.admission.failed_login(peer.ip());
                    app.metrics.login_refused("auth_failed");
                }
            }
            tell(&mut stream, &e).await;
            return Err(e);
        }
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(l))) => l,
    };
    start_session(app, stream, peer, ticket, logged_in).await
}

/// A logged-in client: connection limits, then its session until it leaves.
async fn start_session(
    app: Arc<App>,
    mut stream: orochi_tls::Stream,
    peer: std::net::SocketAddr,
    mut ticket: crate::admission::Ticket,
    logged_in: crate::client::startup::LoggedIn,
) -> Result<(), RouterError> {
    if let Err(r) = app.admission.admit(
        &mut ticket,
        &logged_in.user.pool_name,
        logged_in.user.pool.max_db_client_connections,
        &logged_in.user.user.username,
        logged_in.user.user.max_user_client_connections,
    ) {
        refuse(&app, &mut stream, "53300", r).await;
        return Ok(());
    }
    let params = match SessionParams::from_startup(&logged_in.params).and_then(|mut p| {
        if let Some(g) = &logged_in.gateway {
            p.set_gateway_identity(&g.identity)?;
        }
        Ok(p)
    }) {
        Ok(p) => p,
        Err(pg) => {
            let e = RouterError::Pg(pg);
            tell(&mut stream, &e).await;
            return Err(e);
        }
    };
    let id = app.next_client_id();
    let cancel = app.cancel.register();
    let get = |k: &str| {
        logged_in
            .params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let client = app.clients.register(crate::clients::NewClient {
        id,
        database: logged_in.user.pool_name.clone(),
        user: logged_in.user.user.username.clone(),
        addr: Some(peer),
        application_name: get("application_name").unwrap_or_default(),
        cancel_key: cancel.key,
        tls: stream.describe(),
    });
    let mut session = Session::new(
        app.clone(),
        id,
        stream,
        logged_in.user,
        params,
        cancel,
        client,
    );
    if let Some(g) = logged_in.gateway {
        crate::gateway::login::audit(&app, peer, id, &g);
        session.shard = g.pin.as_ref().map(|p| p.shard);
        session.gateway = Some(Arc::new(g));
    }
    tracing::info!(client = id, %peer, database = %session.user.pool_name, user = %session.user.user.username, "client connected");
    let started = std::time::Instant::now();
    let result = match session.welcome().await {
        Err(e) => session.fail(e).await,
        Ok(()) => session.run().await,
    };
    tracing::info!(
        client = id,
        duration_ms = started.elapsed().as_millis() as u64,
        "client disconnected"
    );
    drop(ticket);
    result
}
