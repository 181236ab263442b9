//! Who may use the admin console, and the server side of the login exchange.
//!
//! A plain `admin_password` is turned into a SCRAM-SHA-256 verifier once, so the
//! password never crosses the wire; a configured `md5…` hash can only be checked with
//! md5 authentication, so that is what such a config gets (as PostgreSQL does). An
//! unknown user goes through the same exchange against a decoy and fails the same way,
//! so the console does not reveal which user names exist.

use crate::conn::Conn;
use crate::AdminError;
use orochi_wire::backend::Authentication;
use orochi_wire::frontend::{parse_password, parse_sasl_initial};
use orochi_wire::scram::{ScramServer, Verifier, MECHANISM};
use orochi_wire::{md5, BackendMessage};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone)]
enum Secret {
    Scram(Verifier),
    Md5(String),
    /// No usable password configured: nobody logs in.
    Disabled(String),
}

/// The admin console's credentials.
#[derive(Debug, Clone)]
pub struct AdminCreds {
    username: String,
    secret: Secret,
    decoy: Verifier,
}

/// Outcome of a login attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// Wrong user or password: FATAL 28P01 with this message.
    Denied(String),
    /// The client went away during the exchange.
    Gone,
}

impl AdminCreds {
    /// `password` as configured: plain text (SCRAM is used), `md5<32 hex>` (md5 is
    /// used), or a `SCRAM-SHA-256$…` verifier. Empty disables the console's logins.
    pub fn new(username: &str, password: &str) -> Self {
        let secret = if password.is_empty() {
            Secret::Disabled("admin console login is disabled: admin_password is not set".into())
        } else if password.len() == 35
            && password.starts_with("md5")
            && password[3..].chars().all(|c| c.is_ascii_hexdigit())
        {
            Secret::Md5(password.to_ascii_lowercase())
        } else if password.starts_with("SCRAM-SHA-256$") {
            match Verifier::parse(password) {
                Some(v) => Secret::Scram(v),
                None => Secret::Disabled(
                    "admin console login is disabled: admin_password is a malformed SCRAM verifier"
                        .into(),
                ),
            }
        } else {
            Secret::Scram(Verifier::from_password(password))
        };
        AdminCreds {
            username: username.to_string(),
            secret,
            decoy: Verifier::from_password(&random_token()),
        }
    }

    /// From `[general] admin_username` / `admin_password`.
    pub fn from_general(general: &orochi_config::General) -> Self {
        Self::new(&general.admin_username, &general.admin_password)
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Runs the exchange for `user`; on `Ok` nothing has been sent yet beyond the
    /// SASL/MD5 messages (the caller sends AuthenticationOk).
    pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut Conn<S>,
        user: &str,
    ) -> Result<AuthOutcome, AdminError> {
        let denied = || {
            AuthOutcome::Denied(format!(
                "password authentication failed for user \"{user}\""
            ))
        };
        let user_ok = user == self.username;
        match &self.secret {
            Secret::Disabled(why) => Ok(AuthOutcome::Denied(why.clone())),
            Secret::Md5(stored) => {
                let mut salt = [0u8; 4];
                rand::thread_rng().fill_bytes(&mut salt);
                conn.queue(&BackendMessage::Authentication(
                    Authentication::Md5Password { salt },
                ));
                conn.flush().await?;
                let Some(body) = conn.read_password().await? else {
                    return Ok(AuthOutcome::Gone);
                };
                let response = parse_password(&body)?;
                Ok(if user_ok && md5::verify(stored, &salt, response) {
                    AuthOutcome::Ok
                } else {
                    denied()
                })
            }
            Secret::Scram(verifier) => {
                let verifier = if user_ok { verifier } else { &self.decoy };
                conn.queue(&BackendMessage::Authentication(Authentication::Sasl {
                    mechanisms: vec![MECHANISM.to_string()],
                }));
                conn.flush().await?;
                let Some(body) = conn.read_password().await? else {
                    return Ok(AuthOutcome::Gone);
                };
                let (mechanism, first) = parse_sasl_initial(&body)?;
                if mechanism != MECHANISM {
                    return Err(AdminError::Protocol(format!(
                        "unsupported SASL mechanism {mechanism:?}"
                    )));
                }
                let Ok((exchange, server_first)) = ScramServer::start(verifier.clone(), first)
                else {
                    return Err(AdminError::Protocol(
                        "malformed SCRAM client-first message".into(),
                    ));
                };
                conn.queue(&BackendMessage::Authentication(
                    Authentication::SaslContinue(server_first.into_bytes().into()),
                ));
                conn.flush().await?;
                let Some(body) = conn.read_password().await? else {
                    return Ok(AuthOutcome::Gone);
                };
                match exchange.finish(&body) {
                    Ok(server_final) if user_ok => {
                        conn.queue(&BackendMessage::Authentication(Authentication::SaslFinal(
                            server_final.into_bytes().into(),
                        )));
                        Ok(AuthOutcome::Ok)
                    }
                    _ => Ok(denied()),
                }
            }
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
