//! TLS keys (SPEC §8): read from `[general]` and pools, then resolved with the seed's
//! environment (`TLS_ENABLED`, `TLS_CERT_PATH`, `TLS_KEY_PATH`, `TLS_CA_PATH`).
//!
//! Several tools' spellings mean the same setting, so each is mapped here once:
//! PgBouncer's `client_tls_sslmode`/`server_tls_sslmode`, PgDog's `tls_client_required`,
//! `tls_verify` and `tls_server_ca_certificate`, PgCat's `server_tls` and
//! `verify_server_certificate`. Only paths are checked here: the files themselves are
//! read by the TLS crate at start and on every reload (a config check must not depend
//! on certificates that are rotated underneath it).

use crate::choices::{CLIENT_TLS_MODE, SERVER_TLS_MODE};
use crate::error::{ConfigError, Location};
use crate::model::{ClientTlsMode, General, ServerTls, ServerTlsMode, Tls};
use crate::reader::{Ctx, Section, Span};
use crate::source::SourceFile;
use std::path::PathBuf;

/// TLS settings as written in the file; resolved with the environment later.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileTls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    /// Where to point when the pair is incomplete.
    pub span: Span,
    /// `client_tls_sslmode` (or `tls_client_required = true`) and where it was written.
    pub client_mode: Option<(ClientTlsMode, Span)>,
    /// `allow_server_cleartext_password` when written (its default depends on TLS).
    pub allow_cleartext: Option<bool>,
}

fn path(sec: &mut Section, cx: &mut Ctx, keys: &[&str]) -> Option<PathBuf> {
    keys.iter()
        .filter_map(|k| sec.string(cx, k))
        .find(|s| !s.trim().is_empty())
        .map(PathBuf::from)
}

/// The client-side keys of `[general]`.
pub(crate) fn read_file_tls(sec: &mut Section, cx: &mut Ctx) -> FileTls {
    let mut client_mode = sec
        .choice(cx, "client_tls_sslmode", CLIENT_TLS_MODE)
        .map(|m| (m, sec.value_span("client_tls_sslmode")));
    if sec.bool(cx, "tls_client_required") == Some(true) && client_mode.is_none() {
        client_mode = Some((
            ClientTlsMode::Require,
            sec.value_span("tls_client_required"),
        ));
    }
    FileTls {
        cert: path(sec, cx, &["tls_certificate"]),
        key: path(sec, cx, &["tls_private_key"]),
        ca: path(
            sec,
            cx,
            &["tls_client_ca_certificate", "tls_ca_certificate"],
        ),
        span: ["tls_certificate", "tls_private_key"]
            .iter()
            .find(|k| sec.has(k))
            .map(|k| sec.at(k))
            .unwrap_or_else(|| sec.span.clone()),
        client_mode,
        allow_cleartext: sec.bool(cx, "allow_server_cleartext_password"),
    }
}

/// The server-side keys of `[general]`.
pub(crate) fn read_server_tls(sec: &mut Section, cx: &mut Ctx) -> ServerTls {
    let sslmode = server_mode(sec, cx).unwrap_or(ServerTlsMode::Prefer);
    let out = ServerTls {
        sslmode,
        ca_file: path(
            sec,
            cx,
            &["server_tls_ca_file", "tls_server_ca_certificate"],
        ),
        cert_file: path(sec, cx, &["server_tls_cert_file"]),
        key_file: path(sec, cx, &["server_tls_key_file"]),
    };
    if out.cert_file.is_some() != out.key_file.is_some() {
        let key = if out.cert_file.is_some() {
            "server_tls_cert_file"
        } else {
            "server_tls_key_file"
        };
        cx.error(
            sec.at(key),
            format!(
                "key \"{key}\" in {}: server_tls_cert_file and server_tls_key_file go together (the client certificate for servers and its key)",
                sec.name()
            ),
        );
    }
    out
}

/// `server_tls_sslmode` (PgBouncer), `tls_verify` (PgDog) or `server_tls` +
/// `verify_server_certificate` (PgCat), in that order of precedence.
pub(crate) fn server_mode(sec: &mut Section, cx: &mut Ctx) -> Option<ServerTlsMode> {
    let explicit = sec.choice(cx, "server_tls_sslmode", SERVER_TLS_MODE);
    let pgdog = sec.choice(cx, "tls_verify", SERVER_TLS_MODE);
    let pgcat = sec.bool(cx, "server_tls").map(|on| {
        match (on, sec.bool(cx, "verify_server_certificate")) {
            (false, _) => ServerTlsMode::Disable,
            (true, Some(true)) => ServerTlsMode::VerifyFull,
            (true, _) => ServerTlsMode::Require,
        }
    });
    explicit.or(pgdog).or(pgcat)
}

/// Servers of a pool in verify-ca/verify-full need a CA to check them against.
pub(crate) fn check_server_ca(
    cx: &mut Ctx,
    span: Span,
    what: &str,
    mode: ServerTlsMode,
    g: &General,
) {
    if mode >= ServerTlsMode::VerifyCa && g.server_tls.ca_file.is_none() {
        cx.error(
            span,
            format!(
                "{what}: server_tls_sslmode = \"{}\" needs server_tls_ca_file in [general] (the CA that signed the servers' certificates)",
                mode.as_str()
            ),
        );
    }
}

fn mode_span(file: &FileTls) -> Span {
    file.client_mode.as_ref().and_then(|(_, s)| s.clone())
}

fn env_error(var: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: Location::Env {
            var: var.to_string(),
        },
        message,
    }
}

/// Resolves the client-side TLS settings: `enabled` is `TLS_ENABLED`, the paths are
/// the environment's (already preferred over the file's by the caller).
pub(crate) fn resolve(
    g: &mut General,
    file: FileTls,
    src: &SourceFile,
    enabled: Option<bool>,
    errors: &mut Vec<ConfigError>,
) {
    let want = enabled.unwrap_or(file.cert.is_some() || file.key.is_some());
    g.tls = None;
    g.client_tls_sslmode = ClientTlsMode::Disable;
    if want {
        match (file.cert.clone(), file.key.clone()) {
            (Some(cert_path), Some(key_path)) => {
                g.tls = Some(Tls {
                    cert_path,
                    key_path,
                    ca_path: file.ca.clone(),
                })
            }
            (cert, _) => {
                let missing = if cert.is_none() {
                    "a certificate (tls_certificate in [general], or TLS_CERT_PATH)"
                } else {
                    "a private key (tls_private_key in [general], or TLS_KEY_PATH)"
                };
                let message = format!("TLS is enabled but {missing} is not set");
                errors.push(if enabled == Some(true) {
                    env_error("TLS_ENABLED", message)
                } else {
                    ConfigError::Invalid {
                        location: src.locate(file.span),
                        message: format!(
                            "key \"tls_certificate\"/\"tls_private_key\" in [general]: {message}"
                        ),
                    }
                });
                return;
            }
        }
    }
    let mode = match (file.client_mode.clone(), g.tls.is_some()) {
        (None, true) => ClientTlsMode::Prefer,
        (None, false) => ClientTlsMode::Disable,
        // TLS_ENABLED=true means at least prefer.
        (Some((m, _)), true) if enabled == Some(true) => m.max(ClientTlsMode::Prefer),
        (Some((m, _)), _) => m,
    };
    if mode > ClientTlsMode::Disable && g.tls.is_none() {
        errors.push(ConfigError::Invalid {
            location: src.locate(mode_span(&file)),
            message: "key \"client_tls_sslmode\" in [general]: TLS towards clients needs tls_certificate and tls_private_key (or TLS_CERT_PATH and TLS_KEY_PATH)".into(),
        });
    }
    if mode.requires_client_cert() && file.ca.is_none() {
        errors.push(ConfigError::Invalid {
            location: src.locate(mode_span(&file)),
            message: "key \"client_tls_sslmode\" in [general]: verify-ca and verify-full check client certificates against tls_client_ca_certificate (or TLS_CA_PATH), which is not set".into(),
        });
    }
    g.client_tls_sslmode = mode;
    // Issue 19: with TLS on, a password never travels in the clear unless asked for.
    let tls_on = g.tls.is_some() || g.server_tls.sslmode >= ServerTlsMode::Require;
    g.allow_server_cleartext_password = file.allow_cleartext.unwrap_or(!tls_on);
}
