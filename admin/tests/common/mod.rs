//! Shared test helpers: a fake router view, a tiny PostgreSQL client, a console starter.
#![allow(dead_code)]

pub mod client;
pub mod fake;

use orochi_admin::{serve_admin, AdminCreds, AdminView};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const ADMIN_PASSWORD: &str = "s3cret-admin";

/// Starts a console on a free port; returns the port and the shutdown token.
pub async fn start_console(
    view: Arc<dyn AdminView>,
    creds: AdminCreds,
) -> (u16, CancellationToken, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let token = CancellationToken::new();
    let task = tokio::spawn(serve_admin(
        listener,
        view,
        creds,
        token.clone(),
        Arc::new(orochi_tls::TlsHub::disabled()),
    ));
    (port, token, task)
}
