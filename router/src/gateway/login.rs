//! The gateway port's handshake (after TLS negotiation): startup packet, TLS required,
//! AuthenticationCleartextPassword (over TLS only) whose answer is the token, then the
//! checks that tie the token to the session: startup `user` = role claim, the tenant's
//! shard, `max_connections_per_tenant`.
//!
//! Every token refusal tells the client only `28P01 password authentication failed`
//! (nothing that would help forge a token) and logs the exact reason; each login is
//! counted by outcome. A password message over [`MAX_PRE_AUTH_MESSAGE`] is refused from
//! its length header, before its body is read.

use super::claims::Identity;
use super::tenant::Pin;
use super::verify::{verify, Outcome, Policy, Refusal};
use super::{SessionIdentity, MAX_PRE_AUTH_MESSAGE};
use crate::app::App;
use crate::client::startup::{
    accept_startup, auth_failed, read_more, send, startup_packet, LoggedIn,
};
use crate::error::RouterError;
use bytes::BytesMut;
use orochi_tls::Stream;
use orochi_wire::backend::Authentication;
use orochi_wire::frontend::parse_password;
use orochi_wire::{decode_frame, BackendMessage, Frame, PgError, WireError};

/// A refused login: what it counts as, what the log says, what the client is told.
pub struct Refused {
    pub outcome: Outcome,
    pub reason: String,
    pub error: RouterError,
}

fn refused(outcome: Outcome, reason: impl Into<String>, error: PgError) -> Refused {
    Refused {
        outcome,
        reason: reason.into(),
        error: error.into(),
    }
}

impl From<PgError> for Refused {
    fn from(e: PgError) -> Self {
        RouterError::Pg(e).into()
    }
}

impl From<RouterError> for Refused {
    fn from(error: RouterError) -> Self {
        Refused {
            outcome: Outcome::Malformed,
            reason: error.to_string(),
            error,
        }
    }
}

/// Reads the password message, refusing one over the size limit from its header.
async fn read_token(
    stream: &mut Stream,
    buf: &mut BytesMut,
    user: &str,
) -> std::result::Result<String, Refused> {
    loop {
        match decode_frame(buf, MAX_PRE_AUTH_MESSAGE) {
            Ok(Some(Frame { tag: b'p', body })) => {
                let token = parse_password(&body).map_err(RouterError::from)?;
                return Ok(token.trim().to_string());
            }
            Ok(Some(_)) => {
                return Err(PgError::fatal("08P01", "expected a password message").into())
            }
            Ok(None) => read_more(stream, buf).await?,
            Err(WireError::TooLarge { len, max }) => {
                return Err(refused(
                    Outcome::TooLarge,
                    format!("password message of {len} bytes refused (limit {max})"),
                    auth_failed_pg(user),
                ))
            }
            Err(e) => return Err(RouterError::from(e).into()),
        }
    }
}

fn auth_failed_pg(user: &str) -> PgError {
    match auth_failed(user) {
        RouterError::Pg(e) => e,
        _ => PgError::fatal("28P01", "password authentication failed"),
    }
}

/// Runs the gateway handshake. `Ok(None)` = the connection was a CancelRequest.
pub async fn handshake(
    app: &App,
    stream: &mut Stream,
    mut buf: BytesMut,
) -> std::result::Result<Option<LoggedIn>, Refused> {
    let config = app.config();
    let Some(gw) = config.gateway.clone() else {
        return Err(PgError::fatal("08006", "the JWT gateway is not configured").into());
    };
    let Some((minor, params)) = startup_packet(app, stream, &mut buf).await? else {
        return Ok(None);
    };
    if !stream.is_tls() {
        return Err(refused(
            Outcome::NoTls,
            "plaintext connection to the gateway port",
            PgError::fatal(
                "28000",
                "TLS is required on the JWT gateway port; connect with sslmode=require",
            ),
        ));
    }
    let username = accept_startup(stream, minor, &params).await?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(db) = get("database").filter(|d| d != &gw.pool && d != &username) {
        return Err(PgError::fatal(
            "3D000",
            format!(
                "database \"{db}\" does not exist on the JWT gateway (it serves \"{}\")",
                gw.pool
            ),
        )
        .into());
    }
    send(
        stream,
        BackendMessage::Authentication(Authentication::CleartextPassword),
    )
    .await?;
    let token = read_token(stream, &mut buf, &username).await?;
    let policy = Policy {
        issuer: gw.issuer.clone(),
        audience: gw.audience.clone(),
        leeway_seconds: gw.leeway.as_secs(),
    };
    let now = super::token::now();
    let gateway = &app.gateway;
    let mut checked = verify(&token, &gateway.keys.keys(), &policy, now);
    if matches!(&checked, Err(r) if r.outcome == Outcome::UnknownKid)
        && gateway.keys.reread_for_unknown_kid()
    {
        checked = verify(&token, &gateway.keys.keys(), &policy, now);
    }
    let token_refused = |r: Refusal| refused(r.outcome, r.reason, auth_failed_pg(&username));
    let verified = checked.map_err(token_refused)?;
    let identity = Identity::from_token(&verified, &gw.role_claim, gw.tenant_claim.as_deref())
        .map_err(token_refused)?;
    if identity.role != username {
        return Err(refused(
            Outcome::WrongUser,
            format!(
                "startup user \"{username}\" is not the token's role \"{}\"",
                identity.role
            ),
            PgError::fatal(
                "28000",
                format!("user \"{username}\" does not match the role the token names"),
            ),
        ));
    }
    let user = app.lookup_user(&gw.pool, &gw.user)?;
    let pin = match (&identity.tenant, &user.sharding, &gw.tenant_claim) {
        (Some(t), Some(schema), Some(claim)) => Some(
            Pin::new(schema, claim, t)
                .map_err(|e| refused(Outcome::BadClaims, e, auth_failed_pg(&username)))?,
        ),
        _ => None,
    };
    let ticket = match &identity.tenant {
        Some(t) => Some(
            gateway
                .admit(t, gw.max_connections_per_tenant)
                .ok_or_else(|| {
                    refused(
                        Outcome::TenantLimit,
                        format!("tenant {t} has max_connections_per_tenant sessions already"),
                        PgError::fatal("53300", format!("too many connections for tenant {t}")),
                    )
                })?,
        ),
        None => None,
    };
    send(stream, BackendMessage::Authentication(Authentication::Ok)).await?;
    Ok(Some(LoggedIn {
        user,
        params,
        gateway: Some(SessionIdentity {
            identity,
            pin,
            _ticket: ticket,
        }),
    }))
}

/// Logs, counts and answers a refused gateway login.
pub fn record_refusal(app: &App, peer: std::net::SocketAddr, r: &Refused) {
    if let RouterError::ClientIo(e) = &r.error {
        // The client went away during the login: nothing was refused.
        tracing::debug!(%peer, error = %e, "JWT gateway client left during login");
        return;
    }
    app.metrics.gateway_login(r.outcome.label());
    tracing::warn!(%peer, outcome = r.outcome.label(), reason = %r.reason, "JWT gateway login refused");
}

/// The one audit line of a gateway session.
pub fn audit(app: &App, peer: std::net::SocketAddr, client: u64, s: &SessionIdentity) {
    app.metrics.gateway_login(Outcome::Ok.label());
    let id = &s.identity;
    tracing::info!(
        target: "orochi_router::gateway::audit",
        client,
        %peer,
        sub = id.sub.as_deref().unwrap_or(""),
        role = %id.role,
        tenant = id.tenant.as_deref().unwrap_or(""),
        shard = s.pin.as_ref().map(|p| p.shard as i64).unwrap_or(-1),
        iss = %id.iss,
        kid = id.kid.as_deref().unwrap_or(""),
        "gateway session"
    );
}
