//! The client side of PostgreSQL's TLS negotiation, run before the startup packet:
//! SSLRequest (answered `S` or `N`), GSSENCRequest (always `N`), and PostgreSQL 17's
//! direct TLS (the first byte is a TLS handshake record; ALPN `postgresql` required).
//!
//! Bytes a client sends after SSLRequest and before the handshake are refused: they
//! would be read as if they had come over TLS (CVE-2021-23214). The TLS handshake
//! itself is bounded by `connect_timeout`, so a half-open handshake never
//! holds a task.

use crate::hub::ALPN_POSTGRESQL;
use crate::{ClientSide, Stream, TlsError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SSLRequest and GSSENCRequest codes (PostgreSQL protocol, section 55.2.10).
const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
/// A TLS record of type handshake: how a direct TLS connection starts.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A client connection after negotiation.
pub struct Accepted {
    pub stream: Stream,
    /// Startup bytes already read from a plain connection (to be decoded first).
    pub buffered: Vec<u8>,
}

async fn handshake(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    timeout: Duration,
) -> Result<Box<tokio_rustls::server::TlsStream<TcpStream>>, TlsError> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => Err(TlsError::Timeout(timeout.as_millis())),
        Ok(Err(e)) => Err(TlsError::Handshake(e)),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}

/// True when bytes are already waiting on the socket (checked without blocking).
pub(crate) fn bytes_pending(tcp: &TcpStream) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut rb = tokio::io::ReadBuf::new(&mut byte);
    matches!(tcp.poll_peek(&mut cx, &mut rb), std::task::Poll::Ready(Ok(n)) if n > 0)
}

/// Negotiates TLS with a new client as `side` says (`N` when TLS is off).
pub async fn accept(mut tcp: TcpStream, side: &ClientSide) -> Result<Accepted, TlsError> {
    let timeout = side.handshake_timeout;
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Ok(Accepted {
            stream: Stream::Plain(tcp),
            buffered: Vec::new(),
        });
    }
    if first[0] == TLS_HANDSHAKE_RECORD {
        let Some(acceptor) = side.acceptor() else {
            return Err(TlsError::Protocol(
                "direct TLS connection, but TLS is not configured".into(),
            ));
        };
        let tls = handshake(tcp, acceptor, timeout).await?;
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_POSTGRESQL) {
            return Err(TlsError::Protocol(
                "direct TLS connection without ALPN \"postgresql\"".into(),
            ));
        }
        return Ok(Accepted {
            stream: Stream::Accepted(tls),
            buffered: Vec::new(),
        });
    }
    loop {
        let mut head = [0u8; 8];
        tcp.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code, side.acceptor()) {
            (8, SSL_REQUEST, Some(acceptor)) => {
                if bytes_pending(&tcp) {
                    return Err(TlsError::Protocol(
                        "the client sent data after SSLRequest, before the TLS handshake".into(),
                    ));
                }
                tcp.write_all(b"S").await?;
                let tls = handshake(tcp, acceptor, timeout).await?;
                return Ok(Accepted {
                    stream: Stream::Accepted(tls),
                    buffered: Vec::new(),
                });
            }
            (8, SSL_REQUEST | GSSENC_REQUEST, _) => tcp.write_all(b"N").await?,
            _ => {
                return Ok(Accepted {
                    stream: Stream::Plain(tcp),
                    buffered: head.to_vec(),
                })
            }
        }
    }
}
