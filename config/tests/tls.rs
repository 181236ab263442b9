//! TLS keys (SPEC §8): PgBouncer, PgDog and PgCat spellings, TLS_ENABLED, defaults,
//! and the errors a half-configured TLS gets.

mod common;

use common::{errors, parse, MINIMAL};
use orochi_config::{diff, ClientTlsMode, Config, Input, ServerTlsMode};
use std::collections::HashMap;

fn load(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}")).config
}

const PAIR: &str = "tls_certificate = \"c.pem\"\ntls_private_key = \"k.pem\"\n";

#[test]
fn a_certificate_means_prefer_and_no_certificate_means_disable() {
    let c = load(&format!("[general]\n{PAIR}{MINIMAL}"));
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::Prefer);
    assert!(
        !c.general.allow_server_cleartext_password,
        "TLS on: cleartext passwords to servers are refused by default"
    );
    let c = load(MINIMAL);
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::Disable);
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::Prefer);
    assert!(c.general.allow_server_cleartext_password);
}

#[test]
fn client_modes_and_the_pgdog_spelling() {
    let c = load(&format!(
        "[general]\n{PAIR}client_tls_sslmode = \"require\"\n{MINIMAL}"
    ));
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::Require);
    let c = load(&format!(
        "[general]\n{PAIR}tls_client_required = true\n{MINIMAL}"
    ));
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::Require);
    let c = load(&format!(
        "[general]\n{PAIR}client_tls_sslmode = \"verify-full\"\ntls_client_ca_certificate = \"ca.pem\"\n{MINIMAL}"
    ));
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::VerifyFull);
    assert_eq!(
        c.general.tls.unwrap().ca_path,
        Some(std::path::PathBuf::from("ca.pem"))
    );
}

#[test]
fn half_configured_client_tls_is_an_error_at_its_key() {
    let e = errors(&format!(
        "[general]\nclient_tls_sslmode = \"require\"\n{MINIMAL}"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1), (2, 22));
    assert!(e[0].2.contains("needs tls_certificate"), "{}", e[0].2);
    let e = errors(&format!(
        "[general]\n{PAIR}client_tls_sslmode = \"verify-ca\"\n{MINIMAL}"
    ));
    assert!(e[0].2.contains("tls_client_ca_certificate"), "{}", e[0].2);
}

#[test]
fn tls_enabled_raises_the_client_mode_to_prefer() {
    let env: HashMap<&str, &str> = [
        ("TLS_ENABLED", "true"),
        ("TLS_CERT_PATH", "/c.pem"),
        ("TLS_KEY_PATH", "/k.pem"),
    ]
    .into_iter()
    .collect();
    let text = format!("[general]\nclient_tls_sslmode = \"disable\"\n{MINIMAL}");
    let c = Config::from_inputs(
        Input {
            name: "orochi.toml",
            text: &text,
        },
        None,
        &|k: &str| env.get(k).map(|v| v.to_string()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    assert_eq!(c.general.client_tls_sslmode, ClientTlsMode::Prefer);
}

#[test]
fn server_modes_globally_per_pool_and_pgcat_keys() {
    let text = format!(
        "[general]\nserver_tls_sslmode = \"require\"\nserver_tls_ca_file = \"ca.pem\"\n{MINIMAL}\n[pools.other]\nserver_tls_sslmode = \"verify-full\"\n[pools.other.users.0]\nusername = \"u\"\npassword = \"p\"\n[pools.other.shards.0]\nservers = [[\"db.example\", 5432, \"primary\"]]\n"
    );
    let c = load(&text);
    assert_eq!(c.pools["app"].server_tls_sslmode, ServerTlsMode::Require);
    assert_eq!(
        c.pools["other"].server_tls_sslmode,
        ServerTlsMode::VerifyFull
    );
    assert!(!c.general.allow_server_cleartext_password);

    let c = load(&format!(
        "[general]\nserver_tls = true\nverify_server_certificate = true\nserver_tls_ca_file = \"ca.pem\"\n{MINIMAL}"
    ));
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::VerifyFull);
    let c = load(&format!("[general]\nserver_tls = true\n{MINIMAL}"));
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::Require);
    let c = load(&format!("[general]\nserver_tls = false\n{MINIMAL}"));
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::Disable);
    let c = load(&format!("[general]\ntls_verify = \"disabled\"\n{MINIMAL}"));
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::Disable);
    // libpq's `allow` is its own mode (plaintext first), not an alias of prefer.
    let c = load(&format!(
        "[general]\nserver_tls_sslmode = \"allow\"\n{MINIMAL}"
    ));
    assert_eq!(c.general.server_tls.sslmode, ServerTlsMode::Allow);
    assert_eq!(ServerTlsMode::Allow.as_str(), "allow");
}

#[test]
fn server_verification_needs_a_ca_and_client_cert_needs_its_key() {
    let e = errors(&format!(
        "[general]\nserver_tls_sslmode = \"verify-ca\"\n{MINIMAL}"
    ));
    assert!(e[0].2.contains("needs server_tls_ca_file"), "{}", e[0].2);
    let e = errors(&format!(
        "[general]\nserver_tls_cert_file = \"c.pem\"\n{MINIMAL}"
    ));
    assert!(e[0].2.contains("go together"), "{}", e[0].2);
}

#[test]
fn tls_changes_are_reloadable() {
    let a = load(&format!("[general]\n{PAIR}{MINIMAL}"));
    let b = load(&format!(
        "[general]\ntls_certificate = \"c2.pem\"\ntls_private_key = \"k2.pem\"\nserver_tls_sslmode = \"require\"\n{MINIMAL}"
    ));
    let d = diff(&a, &b);
    assert!(d.general_changed.contains(&"tls"));
    assert!(d.general_changed.contains(&"server_tls"));
    assert!(d.restart_required.is_empty(), "{:?}", d.restart_required);
}
