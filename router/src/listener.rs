//! The client listener: accepts connections and runs one task per client. The listener
//! owns task lifetimes (a `TaskTracker`), so shutdown can wait for every session.

use crate::app::App;
use crate::client::params::SessionParams;
use crate::client::session::Session;
use crate::client::startup::{handshake, LOGIN_TIMEOUT};
use crate::error::RouterError;
use bytes::BytesMut;
use orochi_wire::PgError;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

pub async fn accept_loop(app: Arc<App>, listener: TcpListener, tracker: TaskTracker) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let app = app.clone();
                    tracker.spawn(async move {
                        if let Err(e) = serve_client(app, stream, peer).await {
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

async fn tell(stream: &mut TcpStream, e: &RouterError) {
    if let Some(pg) = e.to_client() {
        let mut b = BytesMut::new();
        PgError::fatal(&pg.fields.code, pg.fields.message.clone()).encode(&mut b);
        let _ = stream.write_all(&b).await;
    }
}

async fn serve_client(
    app: Arc<App>,
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
) -> Result<(), RouterError> {
    stream.set_nodelay(true).ok();
    let login = tokio::time::timeout(LOGIN_TIMEOUT, handshake(&app, &mut stream)).await;
    let logged_in = match login {
        Err(_) => return Ok(()),
        Ok(Err(e)) => {
            if let RouterError::Pg(pg) = &e {
                if pg.fields.code.starts_with("28") {
                    tracing::info!(message = %pg.fields.message, "client authentication failed");
                }
            }
            tell(&mut stream, &e).await;
            return Err(e);
        }
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(l))) => l,
    };
    let params = match SessionParams::from_startup(&logged_in.params) {
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
    result
}
