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
                    let sessions = tracker.clone();
                    tracker.spawn(async move {
                        if let Err(e) = serve_client(app, stream, peer, port, sessions).await {
                            tracing::debug!(%peer, error = %e, "client login ended with an error");
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

/// A new connection up to its login; the logged-in session runs as a task of its own
/// (`spawn_session`).
async fn serve_client(
    app: Arc<App>,
    mut tcp: TcpStream,
    peer: std::net::SocketAddr,
    port: Port,
    sessions: TaskTracker,
) -> Result<(), RouterError> {
    tcp.set_nodelay(true).ok();
    // Only the values: a clone of `General` (and its strings) would live in the task
    // for the whole session (issue 16's bytes per idle client).
    let (max_client_conn, failure_limit, login_timeout) = {
        let config = app.config();
        let g = &config.general;
        crate::backend::sockopt::apply(&tcp, &g.bounds.tcp);
        (
            g.max_client_conn,
            g.client_auth_failure_limit,
            g.client_login_timeout,
        )
    };
    let ticket = match app.admission.connect(max_client_conn) {
        Ok(t) => t,
        Err(r) => {
            refuse(&app, &mut tcp, "53300", r).await;
            return Ok(());
        }
    };
    if let Err(r) = app.admission.check_address(peer.ip(), failure_limit) {
        refuse(&app, &mut tcp, "28000", r).await;
        return Ok(());
    }
    // TLS negotiation and login share one deadline (client_login_timeout); the TLS
    // handshake alone is bounded by connect_timeout.
    let deadline = tokio::time::Instant::now() + login_timeout;
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
            Ok(Ok(Some(l))) => {
                spawn_session(&sessions, app, stream, peer, ticket, l);
                Ok(())
            }
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
    spawn_session(&sessions, app, stream, peer, ticket, logged_in);
    Ok(())
}

/// The session as a task of its own: tokio sizes a task by its future's largest state,
/// and the login's (TLS accept, SCRAM, the startup packet) would otherwise be carried by
/// every idle client for its whole life (issue 16's bytes per idle client).
fn spawn_session(
    tracker: &TaskTracker,
    app: Arc<App>,
    stream: orochi_tls::Stream,
    peer: std::net::SocketAddr,
    ticket: crate::admission::Ticket,
    logged_in: crate::client::startup::LoggedIn,
) {
    tracker.spawn(async move {
        if let Err(e) = start_session(app, stream, peer, ticket, logged_in).await {
            tracing::debug!(%peer, error = %e, "client session ended with an error");
        }
    });
}

/// A logged-in client: connection limits, then its session until it leaves.
async fn start_session(
    app: Arc<App>,
    mut stream: orochi_tls::Stream,
    peer: std::net::SocketAddr,
    mut ticket: crate::admission::Ticket,
    logged_in: crate::client::startup::LoggedIn,
) -> Result<(), RouterError> {
    let crate::client::startup::LoggedIn {
        user,
        params: startup,
        gateway,
    } = logged_in;
    if let Err(r) = app.admission.admit(
        &mut ticket,
        &user.pool_name,
        user.pool.max_db_client_connections,
        &user.user.username,
        user.user.max_user_client_connections,
    ) {
        refuse(&app, &mut stream, "53300", r).await;
        return Ok(());
    }
    let params = match SessionParams::from_startup(&startup).and_then(|mut p| {
        if let Some(g) = &gateway {
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
    let get = |k: &str| startup.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let client = app.clients.register(crate::clients::NewClient {
        id,
        database: user.pool_name.clone(),
        user: user.user.username.clone(),
        addr: Some(peer),
        application_name: get("application_name").unwrap_or_default(),
        cancel_key: cancel.key,
        tls: stream.describe(),
    });
    let mut session = Session::new(app.clone(), id, stream, user, params, cancel, client);
    // The startup packet's parameters live on in `params`; this copy is not carried.
    drop(startup);
    if let Some(g) = gateway {
        crate::gateway::login::audit(&app, peer, id, &g);
        session.ctx.shard = g.pin.as_ref().map(|p| p.shard);
        session.ctx.gateway = Some(Arc::new(g));
    }
    tracing::info!(client = id, %peer, database = %session.ctx.user.pool_name, user = %session.ctx.user.user.username, "client connected");
    let started = std::time::Instant::now();
    let result = match Box::pin(session.welcome()).await {
        Err(e) => Box::pin(session.fail(e)).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A router of one pool `p` (user `u`) and a client socket connected to a listener
    /// (kept, so the socket stays open): what the size checks below build sessions from.
    async fn app_and_socket() -> (Arc<App>, TcpListener, TcpStream) {
        let text = "[general]\n[pools.p]\n[pools.p.users.0]\nusername = \"u\"\npassword = \"p\"\n\
                    [pools.p.shards.0]\ndatabase = \"d\"\nservers = [[\"127.0.0.1\", 1, \"primary\"]]\n";
        let config = orochi_config::Config::from_str_with_env(text, "t.toml", &|_| None)
            .expect("valid config");
        let app = App::new(config, None);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tcp = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        (app, listener, tcp)
    }

    /// Tokio allocates a task's whole future when it spawns it, so every idle client
    /// pays for the largest state its session task can ever reach (issue 16: ≤ 4 KiB per
    /// idle client). The statement paths (fan-outs, gathers, two-phase commit) are boxed
    /// where they start and the login runs in a task of its own; this keeps either from
    /// being inlined again.
    #[tokio::test]
    async fn a_session_task_is_small() {
        let (app, _listener, tcp) = app_and_socket().await;
        let peer = tcp.local_addr().expect("addr");
        let logged_in = crate::client::startup::LoggedIn {
            user: app.registry.load().dbs["p"]["u"].clone(),
            params: Vec::new(),
            gateway: None,
        };
        let ticket = app.admission.connect(10).expect("a ticket");
        let task = start_session(
            app.clone(),
            orochi_tls::Stream::Plain(tcp),
            peer,
            ticket,
            logged_in,
        );
        let size = std::mem::size_of_val(&task);
        eprintln!(
            "session task: {size} bytes; Session {} bytes",
            std::mem::size_of::<Session>()
        );
        assert!(size <= 2400, "the session task's future is {size} bytes");
        // The session itself: rarely used state (a sharded transaction, a retry) is boxed
        // on first use, and a lent server connection is a pointer, not carried inline by
        // every idle client (issue 16).
        let session = std::mem::size_of::<Session>();
        assert!(session <= 900, "Session is {session} bytes");
    }

    /// The per-statement future the session loop boxes for a client message that must
    /// wait (`Session::on_client_frame_later`; most messages are handled in place): its
    /// size is a heap allocation and a copy per such message (issue 16, CPU per
    /// transaction).
    #[tokio::test]
    async fn a_statement_future_is_small() {
        let (app, _listener, tcp) = app_and_socket().await;
        let user = app.registry.load().dbs["p"]["u"].clone();
        let cancel = app.cancel.register();
        let client = app.clients.register(crate::clients::NewClient {
            id: 1,
            database: "p".into(),
            user: "u".into(),
            addr: None,
            application_name: String::new(),
            cancel_key: cancel.key,
            tls: None,
        });
        let params = SessionParams::from_startup(&[]).expect("no parameters");
        let stream = orochi_tls::Stream::Plain(tcp);
        let mut s = Session::new(app.clone(), 1, stream, user, params, cancel, client);
        let f = orochi_wire::Frame {
            tag: b'Q',
            body: bytes::Bytes::from_static(b"SELECT 1\0"),
        };
        let size = std::mem::size_of_val(&s.on_client_frame_later(f));
        eprintln!("a statement's future: {size} bytes");
        // Fan-outs, two-phase commit, opening a server connection, replaying settings,
        // waiting for a full pool or a paused one, a traced checkout and the re-plan
        // after a cutover are boxed where they start; inline, this was 8.6 KB. At most
        // 1 KiB, the box comes from glibc's per-thread cache (tcache, up to 1032 B)
        // instead of its slower bins.
        assert!(size <= 1024, "a statement's future is {size} bytes");
    }
}
