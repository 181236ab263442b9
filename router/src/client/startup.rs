//! The handshake after TLS negotiation (`orochi_tls::negotiate`): startup packet
//! (CancelRequest forwarded), TLS required by `client_tls_sslmode`, pool and user
//! lookup, and client authentication (trust, md5, SCRAM-SHA-256 and, over TLS,
//! SCRAM-SHA-256-PLUS).

use crate::app::App;
use crate::backend::registry::ClientAuth;
use crate::backend::UserPools;
use crate::error::{Result, RouterError};
use bytes::{Bytes, BytesMut};
use orochi_tls::{ClientSide, Stream};
use orochi_wire::backend::Authentication;
use orochi_wire::frontend::{parse_password, parse_sasl_initial};
use orochi_wire::scram::{ScramServer, MECHANISM, MECHANISM_PLUS};
use orochi_wire::{decode_frame, decode_startup, BackendMessage, Frame, PgError, StartupRequest};
use rand::RngCore;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that may start its session.
pub struct LoggedIn {
    pub user: Arc<UserPools>,
    pub params: Vec<(String, String)>,
    /// A JWT gateway login: the token's identity (see `gateway`).
    pub gateway: Option<crate::gateway::SessionIdentity>,
}

pub(crate) async fn read_more(stream: &mut Stream, buf: &mut BytesMut) -> Result<()> {
    buf.reserve(1024);
    match stream.read_buf(buf).await {
        Ok(0) => Err(RouterError::ClientIo(
            std::io::ErrorKind::UnexpectedEof.into(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(RouterError::ClientIo(e)),
    }
}

pub(crate) async fn send(stream: &mut Stream, m: BackendMessage) -> Result<()> {
    let mut b = BytesMut::new();
    m.encode(&mut b);
    stream.write_all(&b).await.map_err(RouterError::ClientIo)
}

/// Reads the next password-type message ('p').
async fn read_password(stream: &mut Stream, buf: &mut BytesMut) -> Result<Bytes> {
    loop {
        if let Some(Frame { tag, body }) = decode_frame(buf, 64 * 1024)? {
            if tag != b'p' {
                return Err(PgError::fatal("08P01", "expected a password message").into());
            }
            return Ok(body);
        }
        read_more(stream, buf).await?;
    }
}

/// Reads the startup packet. `Ok(None)` = the connection was a CancelRequest (done).
pub(crate) async fn startup_packet(
    app: &App,
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<Option<(u16, Vec<(String, String)>)>> {
    loop {
        match decode_startup(buf)? {
            None => read_more(stream, buf).await?,
            // Negotiation is over: another request now is a protocol violation.
            Some(StartupRequest::Ssl) | Some(StartupRequest::GssEnc) => {
                return Err(PgError::fatal(
                    "08P01",
                    "SSLRequest or GSSENCRequest after TLS negotiation",
                )
                .into());
            }
            Some(StartupRequest::Cancel {
                process_id,
                secret_key,
            }) => {
                app.cancel.cancel(process_id, secret_key).await;
                return Ok(None);
            }
            Some(StartupRequest::Startup { minor, params }) => return Ok(Some((minor, params))),
        }
    }
}

/// Protocol 3.x with x > 0 is answered with NegotiateProtocolVersion; a replication
/// connection is refused. Returns the startup `user`.
pub(crate) async fn accept_startup(
    stream: &mut Stream,
    minor: u16,
    params: &[(String, String)],
) -> Result<String> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if minor > 0 {
        let unrecognized = params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.clone())
            .collect();
        send(
            stream,
            BackendMessage::NegotiateProtocolVersion {
                minor: 0,
                unrecognized,
            },
        )
        .await?;
    }
    let Some(username) = get("user") else {
        return Err(PgError::fatal(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        )
        .into());
    };
    if get("replication").is_some_and(|r| !matches!(r.as_str(), "false" | "0" | "off" | "no")) {
        return Err(PgError::fatal(
            "08P01",
            "replication connections are not supported by the router",
        )
        .into());
    }
    Ok(username)
}

/// Runs the startup phase. `Ok(None)` = the connection was a CancelRequest.
pub async fn handshake(
    app: &App,
    stream: &mut Stream,
    mut buf: BytesMut,
    tls: &ClientSide,
) -> Result<Option<LoggedIn>> {
    let Some((minor, params)) = startup_packet(app, stream, &mut buf).await? else {
        return Ok(None);
    };
    if tls.mode.requires_tls() && !stream.is_tls() {
        return Err(PgError::fatal(
            "28000",
            "TLS is required: this router accepts only encrypted connections (client_tls_sslmode = require); connect with sslmode=require",
        )
        .into());
    }
    let username = accept_startup(stream, minor, &params).await?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let database = get("database").unwrap_or_else(|| username.clone());
    let user = app.lookup_user(&database, &username)?;
    let binding = if stream.is_tls() {
        tls.end_point()
    } else {
        None
    };
    authenticate(stream, &mut buf, &user, &username, binding).await?;
    send(stream, BackendMessage::Authentication(Authentication::Ok)).await?;
    Ok(Some(LoggedIn {
        user,
        params,
        gateway: None,
    }))
}

pub(crate) fn auth_failed(username: &str) -> RouterError {
    PgError::fatal(
        "28P01",
        format!("password authentication failed for user \"{username}\""),
    )
    .into()
}

async fn authenticate(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &UserPools,
    username: &str,
    binding: Option<&[u8]>,
) -> Result<()> {
    match &user.auth {
        ClientAuth::Trust => Ok(()),
        ClientAuth::Refuse => {
            tracing::warn!(user = %username, "login refused: the user has no password and auth_type is not \"trust\"");
            Err(auth_failed(username))
        }
        ClientAuth::Md5(stored) => {
            let mut salt = [0u8; 4];
            rand::thread_rng().fill_bytes(&mut salt);
            send(
                stream,
                BackendMessage::Authentication(Authentication::Md5Password { salt }),
            )
            .await?;
            let body = read_password(stream, buf).await?;
            let resp = parse_password(&body)?;
            if orochi_wire::md5::verify(stored, &salt, resp) {
                Ok(())
            } else {
                Err(auth_failed(username))
            }
        }
        ClientAuth::Scram(verifier) => {
            send(
                stream,
                BackendMessage::Authentication(Authentication::Sasl {
                    mechanisms: match binding {
                        Some(_) => vec![MECHANISM_PLUS.into(), MECHANISM.into()],
                        None => vec![MECHANISM.into()],
                    },
                }),
            )
            .await?;
            let body = read_password(stream, buf).await?;
            let (mech, first) = parse_sasl_initial(&body)?;
            let plus = binding.is_some() && mech == MECHANISM_PLUS;
            if mech != MECHANISM && !plus {
                return Err(PgError::fatal(
                    "28000",
                    format!("SASL mechanism {mech} is not supported"),
                )
                .into());
            }
            let (exchange, server_first) =
                ScramServer::start_bound(verifier.clone(), first, plus, binding)
                    .map_err(|_| auth_failed(username))?;
            send(
                stream,
                BackendMessage::Authentication(Authentication::SaslContinue(server_first.into())),
            )
            .await?;
            let body = read_password(stream, buf).await?;
            let server_final = exchange.finish(&body).map_err(|_| auth_failed(username))?;
            send(
                stream,
                BackendMessage::Authentication(Authentication::SaslFinal(server_final.into())),
            )
            .await
        }
    }
}
