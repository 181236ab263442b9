//! Environment overrides (env > file > defaults) and users.toml.

mod common;

use common::MINIMAL;
use orochi_config::{Config, ConfigErrors, Input, Loaded, Location};
use std::collections::HashMap;
use std::path::PathBuf;

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
    let env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_inputs(
        Input {
            name: "orochi.toml",
            text,
        },
        None,
        &|k: &str| env.get(k).cloned(),
    )
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let text =
        format!("[general]\nport = 6000\nadmin_port = 6001\nlog_level = \"warn\"\n{MINIMAL}");
    let c = with_env(
        &text,
        &[
            ("PGDOG_PORT", "7000"),
            ("PGDOG_HOST", "127.0.0.1"),
            ("PGDOG_LOG_LEVEL", "DEBUG"),
            ("PGDOG_METRICS_PORT", ""),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    assert_eq!(c.general.port, 7000, "env beats file");
    assert_eq!(c.general.admin_port, 6001, "file beats default");
    assert_eq!(c.general.metrics_port, 9090, "default (empty env is unset)");
    assert_eq!(c.general.host, "127.0.0.1");
    assert_eq!(c.general.log_level, "debug");
    // Without env the file values stand.
    let c = with_env(&text, &[])
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(
        (c.general.port, c.general.log_level.as_str()),
        (6000, "warn")
    );
}

#[test]
fn bad_env_values_name_the_variable() {
    let err = with_env(
        MINIMAL,
        &[("PGDOG_ADMIN_PORT", "abc"), ("PGDOG_LOG_LEVEL", "loud")],
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"environment variable PGDOG_ADMIN_PORT: "abc" is not a valid port (0-65535)"#,
            r#"environment variable PGDOG_LOG_LEVEL: unknown log level "loud"; expected one of: "error", "warn", "info", "debug", "trace""#,
        ]
    );
}

#[test]
fn tls_from_env() {
    let c = with_env(
        MINIMAL,
        &[
            ("TLS_ENABLED", "true"),
            ("TLS_CERT_PATH", "/certs/tls.crt"),
            ("TLS_KEY_PATH", "/certs/tls.key"),
            ("TLS_CA_PATH", "/certs/ca.crt"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let tls = c.general.tls.expect("TLS enabled");
    assert_eq!(tls.cert_path, PathBuf::from("/certs/tls.crt"));
    assert_eq!(tls.key_path, PathBuf::from("/certs/tls.key"));
    assert_eq!(tls.ca_path, Some(PathBuf::from("/certs/ca.crt")));
}

#[test]
fn tls_enabled_false_wins_over_the_file_and_env_paths_win_over_file_paths() {
    let text =
        format!("[general]\ntls_certificate = \"a.crt\"\ntls_private_key = \"a.key\"\n{MINIMAL}");
    let c = with_env(&text, &[("TLS_ENABLED", "false")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.config.general.tls, None);
    let c = with_env(&text, &[("TLS_KEY_PATH", "/env.key")]).unwrap_or_else(|e| panic!("{e}"));
    let tls = c.config.general.tls.expect("file enables TLS");
    assert_eq!(tls.cert_path, PathBuf::from("a.crt"));
    assert_eq!(tls.key_path, PathBuf::from("/env.key"));
}

#[test]
fn incomplete_tls_is_an_error_where_it_was_enabled() {
    let err = with_env(
        MINIMAL,
        &[("TLS_ENABLED", "1"), ("TLS_CERT_PATH", "/c.crt")],
    )
    .err();
    let err = err.expect("no key");
    assert_eq!(err.len(), 1);
    assert_eq!(
        err.0[0].location(),
        &Location::Env {
            var: "TLS_ENABLED".into()
        }
    );
    assert!(err.0[0].message().contains("a private key"));

    let text = format!("[general]\nport = 5433\ntls_certificate = \"a.crt\"\n{MINIMAL}");
    let err = with_env(&text, &[]).expect_err("no key");
    assert_eq!(err.0[0].line_column(), Some((3, 1)));
    assert!(err.to_string().contains("TLS is enabled but a private key"));
}

fn with_users(main: &str, users: &str) -> Result<Loaded, ConfigErrors> {
    Config::from_inputs(
        Input {
            name: "orochi.toml",
            text: main,
        },
        Some(Input {
            name: "users.toml",
            text: users,
        }),
        &common::no_env,
    )
}

const NO_USERS: &str = r#"[pools.app]
min_pool_size = 1

[pools.app.shards.0]
servers = [["db1", 5432, "primary"]]
"#;

#[test]
fn users_file_supplies_the_users() {
    let users = r#"[[users]]
name = "app"
password = "pw"
database = "app"
pool_size = 7
"#;
    let c = with_users(NO_USERS, users)
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let u = &c.pools["app"].users[0];
    assert_eq!(
        (u.username.as_str(), u.pool_size, u.min_pool_size),
        ("app", 7, 1)
    );
    assert_eq!(u.server_password.as_deref(), Some("pw"));
    assert_eq!(
        c.sources,
        vec![PathBuf::from("orochi.toml"), PathBuf::from("users.toml")]
    );
}

#[test]
fn users_file_errors_name_users_toml() {
    let users = r#"[[users]]
name = "app"
database = "ap"

[[users]]
name = "app2"
database = "app"
pool_sise = 3
"#;
    let err = with_users(NO_USERS, users).expect_err("rejected");
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // The first entry is rejected (unknown pool); the second is fine except the typo.
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(
            r#"users.toml:3:12: key "database" in [users[0]]: unknown pool "ap"; pools are: "app""#
        ),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            r#"users.toml:8:1: unknown key "pool_sise" in [users[1]] (did you mean "pool_size"?)"#
        ),
        "{text}"
    );
}

#[test]
fn users_file_duplicate_of_main_user() {
    let users = "[[users]]\nname = \"app\"\ndatabase = \"app\"\n";
    let err = with_users(MINIMAL, users).expect_err("duplicate");
    assert_eq!(err.len(), 1);
    assert!(err.to_string().starts_with(
        r#"users.toml:2:8: key "name" in [users[0]]: user "app" is already defined for pool "app""#
    ));
}

#[test]
fn missing_file_is_reported_with_its_path() {
    let err =
        Config::load(std::path::Path::new("/nonexistent/orochi.toml"), None).expect_err("missing");
    assert!(err
        .to_string()
        .starts_with("/nonexistent/orochi.toml: cannot read:"));
}
