//! The router as a TLS client of PostgreSQL: SSLRequest, then the handshake with the
//! checks `server_tls_sslmode` asks for (libpq's meanings).
//!
//! Bytes a server sends after `S` and before the handshake are refused: they would be
//! taken as if they had come over TLS (CVE-2021-23222).
//!
//! `allow` is two attempts, as in libpq: [`upgrade`] leaves its first connection plain
//! (no SSLRequest), and the caller, when the server refuses that login before
//! authentication succeeds, opens a second connection with [`ALLOW_RETRY`].

use crate::negotiate::bytes_pending;
use crate::{ServerSide, Stream, TlsError};
use orochi_config::ServerTlsMode;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// The mode of `allow`'s second attempt: TLS or nothing, the certificate not checked.
pub const ALLOW_RETRY: ServerTlsMode = ServerTlsMode::Require;

/// Upgrades a fresh connection to `host` as `mode` says. `allow` leaves it plain (its
/// first attempt). `prefer` falls back to the plain connection when the server
/// answers `N`; stricter modes fail then. The host
/// is checked against the certificate under verify-full (DNS name or IP SAN) and sent
/// as SNI when it is a DNS name.
pub async fn upgrade(
    mut tcp: TcpStream,
    host: &str,
    mode: ServerTlsMode,
    side: &ServerSide,
) -> Result<Stream, TlsError> {
    let Some(config) = side.config(mode).filter(|_| mode != ServerTlsMode::Allow) else {
        return Ok(Stream::Plain(tcp));
    };
    tcp.write_all(&SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {}
        b'N' if mode == ServerTlsMode::Prefer => return Ok(Stream::Plain(tcp)),
        b'N' => return Err(TlsError::Refused),
        other => {
            return Err(TlsError::Protocol(format!(
                "the server answered SSLRequest with {:?}, not S or N",
                other as char
            )))
        }
    }
    if bytes_pending(&tcp) {
        return Err(TlsError::Protocol(
            "the server sent data after accepting TLS, before the handshake".into(),
        ));
    }
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        TlsError::Config(format!(
            "\"{host}\" is neither a DNS name nor an IP address"
        ))
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(TlsError::Handshake)?;
    Ok(Stream::Connected(Box::new(tls)))
}
