//! Who may use the admin console, and the server side of the login exchange.
//!
//! A plain `admin_password` is turned into a SCRAM-SHA-256 verifier once, so the
//! password never crosses the wire; a configured `md5…` hash can only be checked with
//! md5 authentication, so that is what such a config gets (as PostgreSQL does). An
//! unknown user goes through the same exchange against a decoy and fails the same way,
//! so the console does not reveal which user names exist.
//!
//! The credentials are a shared handle: RELOAD replaces them ([`AdminCreds::update`]),
//! so a rotated `admin_password` takes effect for the next login and the old one stops
//! working (sessions already logged in stay).

use crate::conn::Conn;
use crate::AdminError;
use orochi_wire::backend::Authentication;
use orochi_wire::frontend::{parse_password, parse_sasl_initial};
use orochi_wire::scram::{ScramServer, Verifier, MECHANISM};
use orochi_wire::{md5, BackendMessage};
use rand::RngCore;
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Debug, Clone)]
enum Secret {
    Scram(Verifier),
    Md5(String),
    /// No usable password configured: nobody logs in.
    Disabled(String),
}

/// The admin console's credentials: a handle shared by the console and the router,
/// which replaces them on reload.
#[derive(Debug, Clone)]
pub struct AdminCreds {
    current: Arc<RwLock<Arc<Creds>>>,
}

#[derive(Debug)]
struct Creds {
    /// As configured, to tell whether a reload changed them.
    configured: (String, String),
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
        AdminCreds {
            current: Arc::new(RwLock::new(Arc::new(Creds::new(username, password)))),
        }
    }

    /// From `[general] admin_username` / `admin_password`.
    pub fn from_general(general: &orochi_config::General) -> Self {
        Self::new(&general.admin_username, &general.admin_password)
    }

    /// Takes the credentials of a reloaded configuration; true when they changed.
    pub fn update(&self, general: &orochi_config::General) -> bool {
        let wanted = (
            general.admin_username.clone(),
            general.admin_password.clone(),
        );
        if self.get().configured == wanted {
            return false;
        }
        let next = Arc::new(Creds::new(&wanted.0, &wanted.1));
        if let Ok(mut g) = self.current.write() {
            *g = next;
        }
        true
    }

    fn get(&self) -> Arc<Creds> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn username(&self) -> String {
        self.get().username.clone()
    }

    /// Runs the exchange for `user` with the credentials in force when it starts.
    pub(crate) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &mut Conn<S>,
        user: &str,
    ) -> Result<AuthOutcome, AdminError> {
        self.get().authenticate(conn, user).await
    }
}

impl Creds {
    fn new(username: &str, password: &str) -> Self {
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
        Creds {
            configured: (username.to_string(), password.to_string()),
            username: username.to_string(),
            secret,
            decoy: Verifier::from_password(&random_token()),
        }
    }

    /// Runs the exchange for `user`; on `Ok` nothing has been sent yet beyond the
    /// SASL/MD5 messages (the caller sends AuthenticationOk).
    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
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
