//! Environment overrides (SPEC §1): env beats the file, the file beats defaults.
//!
//! The environment is passed in as a lookup function so tests never touch the
//! process environment (which is shared by parallel tests).

use crate::error::{ConfigError, Location};
use crate::general::FileGeneral;
use crate::model::General;
use crate::source::SourceFile;

/// Looks up one environment variable.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn env_error(var: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        location: Location::Env {
            var: var.to_string(),
        },
        message,
    }
}

/// An env value, with empty treated as unset (templated manifests often export "").
fn get(env: EnvLookup, var: &str) -> Option<String> {
    env(var)
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
}

pub(crate) fn port(env: EnvLookup, var: &str, errors: &mut Vec<ConfigError>) -> Option<u16> {
    let v = get(env, var)?;
    match v.parse::<u16>() {
        Ok(p) => Some(p),
        Err(_) => {
            errors.push(env_error(
                var,
                format!("\"{v}\" is not a valid port (0-65535)"),
            ));
            None
        }
    }
}

/// Applies the overrides (recording explicitly set ports in `file`) and resolves TLS
/// from file values plus env.
pub(crate) fn apply(
    g: &mut General,
    file: &mut FileGeneral,
    src: &SourceFile,
    env: EnvLookup,
    errors: &mut Vec<ConfigError>,
) {
    let file_tls = std::mem::take(&mut file.tls);
    if let Some(v) = get(env, "PGDOG_HOST") {
        g.host = v;
    }
    if let Some(p) = port(env, "PGDOG_PORT", errors) {
        g.port = p;
    }
    if let Some(p) = port(env, "PGDOG_ADMIN_PORT", errors) {
        g.admin_port = p;
        file.admin_port_set = true;
    }
    if let Some(p) = port(env, "PGDOG_METRICS_PORT", errors) {
        g.metrics_port = p;
        file.metrics_port_set = true;
    }
    if let Some(v) = get(env, "PGDOG_LOG_LEVEL") {
        match crate::reader::lookup_choice(&v, crate::choices::LOG_LEVEL) {
            Some(level) => g.log_level = level.to_string(),
            None => errors.push(env_error(
                "PGDOG_LOG_LEVEL",
                format!(
                    "unknown log level \"{v}\"; expected one of: {}",
                    crate::reader::list_choices(crate::choices::LOG_LEVEL)
                ),
            )),
        }
    }

    let enabled = match get(env, "TLS_ENABLED") {
        None => None,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => {
                errors.push(env_error(
                    "TLS_ENABLED",
                    format!("\"{v}\" is not a boolean; expected true or false"),
                ));
                None
            }
        },
    };
    let mut file_tls = file_tls;
    file_tls.cert = get(env, "TLS_CERT_PATH").map(Into::into).or(file_tls.cert);
    file_tls.key = get(env, "TLS_KEY_PATH").map(Into::into).or(file_tls.key);
    file_tls.ca = get(env, "TLS_CA_PATH").map(Into::into).or(file_tls.ca);
    crate::tls::resolve(g, file_tls, src, enabled, errors);
}
