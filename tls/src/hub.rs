//! The reloadable TLS state: what clients are offered (certificate, client CA, mode) and
//! how servers are reached (CA, client certificate). Built from a config snapshot,
//! swapped whole on RELOAD: a file that cannot be read or does not match keeps the old
//! state and the error says which file and why.

use crate::verify::{CaOnly, NoVerify};
use crate::{binding, pem, provider, TlsError};
use arc_swap::ArcSwap;
use orochi_config::{ClientTlsMode, General, ServerTlsMode};
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// PostgreSQL's ALPN protocol name (PostgreSQL 17, required for direct TLS).
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Towards clients (client and admin ports).
pub struct ClientSide {
    pub mode: ClientTlsMode,
    /// `connect_timeout`: a TLS handshake that takes longer is dropped.
    pub handshake_timeout: std::time::Duration,
    config: Option<Arc<ServerConfig>>,
    /// `tls-server-end-point` channel-binding data of the served certificate, when its
    /// signature algorithm defines one (SCRAM-SHA-256-PLUS is offered only then).
    end_point: Option<Vec<u8>>,
}

impl ClientSide {
    fn build(g: &General) -> Result<Self, TlsError> {
        let (Some(tls), true) = (&g.tls, g.client_tls_sslmode > ClientTlsMode::Disable) else {
            return Ok(ClientSide {
                mode: ClientTlsMode::Disable,
                handshake_timeout: g.connect_timeout,
                config: None,
                end_point: None,
            });
        };
        let chain = pem::certs("certificate (tls_certificate)", &tls.cert_path)?;
        let key = pem::key("private key (tls_private_key)", &tls.key_path)?;
        let end_point = binding::tls_server_end_point(&chain[0]);
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match (&tls.ca_path, g.client_tls_sslmode.requires_client_cert()) {
            (Some(ca), true) => {
                let roots = pem::roots("client CA (tls_client_ca_certificate)", ca)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| {
                            TlsError::Config(format!("client CA {}: {e}", ca.display()))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError::Config(format!(
                "certificate {} and private key {} do not go together: {e}",
                tls.cert_path.display(),
                tls.key_path.display()
            ))
        })?;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(ClientSide {
            mode: g.client_tls_sslmode,
            handshake_timeout: g.connect_timeout,
            config: Some(Arc::new(config)),
            end_point,
        })
    }

    /// `None` when TLS is off towards clients (SSLRequest gets `N`).
    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.config.clone().map(tokio_rustls::TlsAcceptor::from)
    }

    pub fn end_point(&self) -> Option<&[u8]> {
        self.end_point.as_deref()
    }
}

/// Towards PostgreSQL servers: one rustls config per kind of check.
pub struct ServerSide {
    unverified: Arc<ClientConfig>,
    /// `None` without `server_tls_ca_file` (config validation refuses verify modes then).
    verify_ca: Option<Arc<ClientConfig>>,
    verify_full: Option<Arc<ClientConfig>>,
}

impl ServerSide {
    fn plain() -> Self {
        let unverified = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth();
        ServerSide {
            unverified: Arc::new(unverified),
            verify_ca: None,
            verify_full: None,
        }
    }

    fn build(g: &General) -> Result<Self, TlsError> {
        let st = &g.server_tls;
        let identity = match (&st.cert_file, &st.key_file) {
            (Some(c), Some(k)) => Some((
                pem::certs("client certificate (server_tls_cert_file)", c)?,
                pem::key("client key (server_tls_key_file)", k)?,
            )),
            _ => None,
        };
        let finish = |verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>| {
            let b = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(verifier);
            let config = match &identity {
                Some((chain, key)) => b
                    .with_client_auth_cert(chain.clone(), key.clone_key())
                    .map_err(|e| {
                        TlsError::Config(format!(
                            "server_tls_cert_file and server_tls_key_file do not go together: {e}"
                        ))
                    })?,
                None => b.with_no_client_auth(),
            };
            Ok::<_, TlsError>(Arc::new(config))
        };
        let unverified = finish(Arc::new(NoVerify(provider())))?;
        let (verify_ca, verify_full) = match &st.ca_file {
            None => (None, None),
            Some(ca) => {
                let roots = pem::roots("server CA (server_tls_ca_file)", ca)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| {
                            TlsError::Config(format!("server CA {}: {e}", ca.display()))
                        })?;
                (
                    Some(finish(Arc::new(CaOnly(webpki.clone())))?),
                    Some(finish(webpki)?),
                )
            }
        };
        Ok(ServerSide {
            unverified,
            verify_ca,
            verify_full,
        })
    }

    /// The rustls config for a mode; `None` for `disable` (or a verify mode without CA).
    pub fn config(&self, mode: ServerTlsMode) -> Option<Arc<ClientConfig>> {
        match mode {
            ServerTlsMode::Disable => None,
            ServerTlsMode::Allow | ServerTlsMode::Prefer | ServerTlsMode::Require => {
                Some(self.unverified.clone())
            }
            ServerTlsMode::VerifyCa => self.verify_ca.clone(),
            ServerTlsMode::VerifyFull => self.verify_full.clone(),
        }
    }
}

/// Both sides, each swapped atomically; handshakes read whichever is current.
pub struct TlsHub {
    client: ArcSwap<ClientSide>,
    /// The JWT gateway's side: the client certificate and key, TLS required whatever
    /// `client_tls_sslmode` says (a token must never cross the network in the clear).
    gateway: ArcSwap<ClientSide>,
    server: ArcSwap<ServerSide>,
}

/// The gateway port's TLS: the client port's settings with at least `require`.
fn gateway_side(g: &General) -> Result<ClientSide, TlsError> {
    let mut g = g.clone();
    g.client_tls_sslmode = g.client_tls_sslmode.max(ClientTlsMode::Require);
    ClientSide::build(&g)
}

impl TlsHub {
    /// Reads every configured file; an error stops the start.
    pub fn new(g: &General) -> Result<Self, TlsError> {
        crate::install_provider();
        Ok(TlsHub {
            client: ArcSwap::from_pointee(ClientSide::build(g)?),
            gateway: ArcSwap::from_pointee(gateway_side(g)?),
            server: ArcSwap::from_pointee(ServerSide::build(g)?),
        })
    }

    /// TLS off on every leg (before the files are read).
    pub fn disabled() -> Self {
        let off = || ClientSide {
            mode: ClientTlsMode::Disable,
            handshake_timeout: std::time::Duration::from_secs(5),
            config: None,
            end_point: None,
        };
        TlsHub {
            client: ArcSwap::from_pointee(off()),
            gateway: ArcSwap::from_pointee(off()),
            server: ArcSwap::from_pointee(ServerSide::plain()),
        }
    }

    /// Re-reads every file. All or nothing: on error both sides stay as they were.
    pub fn reload(&self, g: &General) -> Result<(), TlsError> {
        let client = ClientSide::build(g)?;
        let gateway = gateway_side(g)?;
        let server = ServerSide::build(g)?;
        self.client.store(Arc::new(client));
        self.gateway.store(Arc::new(gateway));
        self.server.store(Arc::new(server));
        Ok(())
    }

    pub fn client(&self) -> Arc<ClientSide> {
        self.client.load_full()
    }

    /// The JWT gateway port's side (TLS required; no TLS at all without a certificate).
    pub fn gateway(&self) -> Arc<ClientSide> {
        self.gateway.load_full()
    }

    pub fn server(&self) -> Arc<ServerSide> {
        self.server.load_full()
    }
}
