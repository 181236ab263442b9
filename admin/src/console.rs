//! The admin console server: PostgreSQL protocol, simple queries only.
//!
//! One task per connection, owned by a `TaskTracker` so `serve_admin` returns only when
//! every session has ended (house rule 4). The handshake runs under a timeout; after
//! login, each simple Query is split into statements and each statement is one admin
//! command. The extended protocol is answered with an error (and skipped until Sync):
//! admin tools use simple queries, and psql's `\x`, `-A`, `-t` are client side.

use crate::auth::{AdminCreds, AuthOutcome};
use crate::command::{split_statements, Command};
use crate::conn::Conn;
use crate::execute::execute;
use crate::view::AdminView;
use crate::AdminError;
use orochi_wire::backend::Authentication;
use orochi_wire::{BackendMessage, PgError, StartupRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Startup and authentication must finish within this.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters sent after login. `server_version` is what psql keys features on; the
/// console's SQL is its own, so it reports the PostgreSQL major the project targets.
const PARAMETERS: [(&str, &str); 6] = [
    ("server_version", "15.0 (Orochi Router admin console)"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
];

/// Accepts admin connections until `shutdown` is cancelled, then closes open sessions
/// (FATAL 57P01) and returns once they have ended. TLS is the client port's: same
/// certificate, same `client_tls_sslmode`.
pub async fn serve_admin(
    listener: TcpListener,
    view: Arc<dyn AdminView>,
    creds: AdminCreds,
    shutdown: CancellationToken,
    tls: Arc<orochi_tls::TlsHub>,
) {
    let creds = Arc::new(creds);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (view, creds, shutdown) = (view.clone(), creds.clone(), shutdown.clone());
                let side = tls.client();
                tracker.spawn(async move {
                    let negotiated = tokio::time::timeout(
                        LOGIN_TIMEOUT,
                        orochi_tls::negotiate::accept(stream, &side),
                    );
                    let accepted = match negotiated.await {
                        Ok(Ok(a)) => a,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "admin console TLS negotiation failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let must_tls = side.mode.requires_tls() && !accepted.stream.is_tls();
                    let conn = Conn::with_buffered(accepted.stream, &accepted.buffered);
                    if let Err(e) = run(conn, must_tls, view, &creds, shutdown).await {
                        tracing::debug!(%peer, error = %e, "admin session ended with an error");
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "admin console accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// One console connection, over any byte stream (tests use in-memory duplex streams).
pub async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    view: Arc<dyn AdminView>,
    creds: &AdminCreds,
    shutdown: CancellationToken,
) -> Result<(), AdminError> {
    run(Conn::new(stream), false, view, creds, shutdown).await
}

/// A console session; `must_tls`: a plaintext client that TLS is required of.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Conn<S>,
    must_tls: bool,
    view: Arc<dyn AdminView>,
    creds: &AdminCreds,
    shutdown: CancellationToken,
) -> Result<(), AdminError> {
    let login = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        r = tokio::time::timeout(LOGIN_TIMEOUT, login(&mut conn, creds, must_tls)) => r,
    };
    let logged_in = match login {
        Ok(r) => r?,
        Err(_) => {
            conn.queue_error(&PgError::fatal("08P01", "admin console login timed out"));
            return conn.flush().await;
        }
    };
    if !logged_in {
        return Ok(());
    }
    let mut skip_to_sync = false;
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => None,
            f = conn.read_frame() => Some(f?),
        };
        let frame = match frame {
            None => return goodbye(&mut conn).await,
            Some(None) => return Ok(()),
            Some(Some(f)) => f,
        };
        match frame.tag {
            b'Q' => {
                let query = match orochi_wire::FrontendMessage::decode(&frame)? {
                    orochi_wire::FrontendMessage::Query(q) => q,
                    _ => return Err(AdminError::Protocol("malformed Query".into())),
                };
                let done = tokio::select! {
                    _ = shutdown.cancelled() => None,
                    r = run_query(&mut conn, &query, view.as_ref()) => Some(r),
                };
                match done {
                    None => return goodbye(&mut conn).await,
                    Some(r) => r?,
                }
                conn.queue(&BackendMessage::ReadyForQuery(b'I'));
                conn.flush().await?;
            }
            b'X' => return Ok(()),
            b'S' => {
                skip_to_sync = false;
                conn.queue(&BackendMessage::ReadyForQuery(b'I'));
                conn.flush().await?;
            }
            b'H' => conn.flush().await?,
            b'P' | b'B' | b'D' | b'E' | b'C' | b'F' => {
                if !skip_to_sync {
                    skip_to_sync = true;
                    conn.queue_error(&PgError::error(
                        "0A000",
                        "the admin console supports only the simple query protocol",
                    ));
                    conn.flush().await?;
                }
            }
            t => {
                let e = AdminError::Protocol(format!("unexpected message type '{}'", t as char));
                conn.queue_error(&e.to_pg());
                conn.flush().await?;
                return Err(e);
            }
        }
    }
}

/// Tells the client why the connection ends during shutdown.
async fn goodbye<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>) -> Result<(), AdminError> {
    conn.queue_error(&PgError::fatal(
        "57P01",
        "terminating admin connection: the router is shutting down",
    ));
    conn.flush().await
}

/// Startup and authentication; `Ok(false)` when the client left or was refused.
async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    creds: &AdminCreds,
    must_tls: bool,
) -> Result<bool, AdminError> {
    let params = loop {
        match conn.read_startup().await? {
            None => return Ok(false),
            // TLS was negotiated before (`orochi_tls::negotiate`); in-memory test
            // streams get 'N' and go on in clear text.
            Some(StartupRequest::Ssl | StartupRequest::GssEnc) => conn.write_raw(b"N").await?,
            Some(StartupRequest::Cancel { .. }) => return Ok(false),
            Some(req @ StartupRequest::Startup { .. }) => break req,
        }
    };
    if must_tls {
        conn.queue_error(&PgError::fatal(
            "28000",
            "TLS is required: this router accepts only encrypted connections (client_tls_sslmode = require); connect with sslmode=require",
        ));
        conn.flush().await?;
        return Ok(false);
    }
    let Some(user) = params.param("user").map(str::to_string) else {
        conn.queue_error(&PgError::fatal(
            "28000",
            "no user name in the startup packet",
        ));
        conn.flush().await?;
        return Ok(false);
    };
    match creds.authenticate(conn, &user).await? {
        AuthOutcome::Gone => return Ok(false),
        AuthOutcome::Denied(message) => {
            tracing::warn!(%user, "admin console authentication failed");
            conn.queue_error(&PgError::fatal("28P01", message));
            conn.flush().await?;
            return Ok(false);
        }
        AuthOutcome::Ok => {}
    }
    conn.queue(&BackendMessage::Authentication(Authentication::Ok));
    for (name, value) in PARAMETERS {
        conn.queue(&BackendMessage::ParameterStatus {
            name: name.into(),
            value: value.into(),
        });
    }
    let application_name = params.param("application_name").unwrap_or("").to_string();
    conn.queue(&BackendMessage::ParameterStatus {
        name: "application_name".into(),
        value: application_name,
    });
    conn.queue(&BackendMessage::BackendKeyData {
        process_id: rand::random::<i32>() & i32::MAX,
        secret_key: rand::random(),
    });
    conn.queue(&BackendMessage::ReadyForQuery(b'I'));
    conn.flush().await?;
    tracing::info!(%user, "admin console login");
    Ok(true)
}

/// Runs every statement of one simple Query; stops at the first error, as PostgreSQL does.
async fn run_query<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    query: &str,
    view: &dyn AdminView,
) -> Result<(), AdminError> {
    let statements = split_statements(query);
    if statements.is_empty() {
        conn.queue(&BackendMessage::EmptyQueryResponse);
        return Ok(());
    }
    for statement in statements {
        let reply = match Command::parse(statement) {
            Ok(cmd) => execute(&cmd, view).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(messages) => messages.iter().for_each(|m| conn.queue(m)),
            Err(e) => {
                conn.queue_error(&e.to_pg());
                break;
            }
        }
    }
    Ok(())
}
