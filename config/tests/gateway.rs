//! `[gateway]` (SPEC §9): defaults, the env port override, audience as string or list,
//! and the located errors of a gateway that could not work.

mod common;

use common::{errors, no_env, parse, MINIMAL};
use orochi_config::{diff, Config, GatewayKeys, Input};
use std::time::Duration;

const GW: &str = r#"
[gateway]
pool = "app"
jwks_file = "/etc/orochi/jwks.json"
issuer = "https://auth.example.com/"
audience = "orochi"
user = "app"
"#;

fn load(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}")).config
}

#[test]
fn absent_means_off_and_defaults_apply() {
    assert!(load(MINIMAL).gateway.is_none());
    let c = load(&format!("{MINIMAL}{GW}"));
    let g = c.gateway.expect("gateway");
    assert_eq!(g.port, 5433);
    assert_eq!(g.role_claim, "role");
    assert_eq!(g.tenant_claim, None);
    assert_eq!(g.leeway, Duration::from_secs(30));
    assert_eq!(g.audience, vec!["orochi".to_string()]);
    assert_eq!(
        g.keys,
        GatewayKeys::JwksFile("/etc/orochi/jwks.json".into())
    );
    assert_eq!(g.max_connections_per_tenant, None);
}

#[test]
fn audience_list_and_env_port() {
    let text = format!(
        "{MINIMAL}{}\nleeway_seconds = 5\nmax_connections_per_tenant = 3\n",
        GW.replace("audience = \"orochi\"", "audience = [\"a\", \"b\"]")
    );
    let env = |k: &str| (k == "PGDOG_GATEWAY_PORT").then(|| "15433".to_string());
    let c = Config::from_inputs(
        Input {
            name: "orochi.toml",
            text: &text,
        },
        None,
        &env,
    )
    .unwrap()
    .config;
    let g = c.gateway.unwrap();
    assert_eq!(g.audience, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(g.port, 15433);
    assert_eq!(g.leeway, Duration::from_secs(5));
    assert_eq!(g.max_connections_per_tenant, Some(3));
    let _ = no_env;
}

#[test]
fn both_key_sources_are_refused_with_their_line() {
    let text = format!("{MINIMAL}{GW}hs256_secret = \"0123456789abcdef0123456789abcdef\"\n");
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].2.contains("never both"), "{e:?}");
    assert!(e[0].2.starts_with("orochi.toml:18:"), "{e:?}");
}

#[test]
fn unknown_pool_user_claim_and_missing_keys_are_errors() {
    let text = format!(
        "{MINIMAL}{}",
        GW.replace("pool = \"app\"", "pool = \"nope\"")
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.2.contains("unknown pool \"nope\"")),
        "{e:?}"
    );
    let text = format!(
        "{MINIMAL}{}",
        GW.replace("user = \"app\"", "user = \"auth\"")
    );
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.2.contains("has no user \"auth\"")),
        "{e:?}"
    );
    let text = format!(
        "{MINIMAL}{}",
        GW.replace("jwks_file = \"/etc/orochi/jwks.json\"\n", "")
    );
    let e = errors(&text);
    assert!(e.iter().any(|e| e.2.contains("set jwks_file")), "{e:?}");
    let text = format!(
        "{MINIMAL}{}",
        GW.replace("audience = \"orochi\"", "audience = 3")
    );
    let e = errors(&text);
    assert!(e.iter().any(|e| e.2.contains("audience")), "{e:?}");
    let text = format!(
        "{MINIMAL}{}",
        GW.replace("audience = \"orochi\"", "audience = []")
    );
    let e = errors(&text);
    assert!(e.iter().any(|e| e.2.contains("at least one")), "{e:?}");
    let text = format!("{MINIMAL}{GW}porte = 1\n");
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.2.contains("unknown key \"porte\"")),
        "{e:?}"
    );
    let text = format!("{MINIMAL}{GW}hs256_secret = \"short\"\n")
        .replace("jwks_file = \"/etc/orochi/jwks.json\"\n", "");
    let e = errors(&text);
    assert!(e.iter().any(|e| e.2.contains("at least 32 bytes")), "{e:?}");
}

#[test]
fn a_tenant_claim_needs_a_distributed_table_keyed_by_it() {
    let sharded = format!(
        "{}\n[pools.app.shards.1]\ndatabase = \"app1\"\nservers = [[\"127.0.0.1\", 5432, \"primary\"]]\n",
        MINIMAL
    );
    let text = format!("{sharded}{GW}tenant_claim = \"tenant_id\"\n");
    let e = errors(&text);
    assert!(
        e.iter().any(|e| e.2.contains("tenant_claim \"tenant_id\"")),
        "{e:?}"
    );
    let text = format!(
        "{sharded}\n[[sharding.tables]]\nname = \"notes\"\ncolumn = \"tenant_id\"\ndata_type = \"bigint\"\n{GW}tenant_claim = \"tenant_id\"\n"
    );
    assert_eq!(
        load(&text).gateway.unwrap().tenant_claim.as_deref(),
        Some("tenant_id")
    );
}

#[test]
fn reload_diff_names_the_gateway() {
    let a = load(&format!("{MINIMAL}{GW}"));
    let b = load(&format!("{MINIMAL}{}", GW.replace("orochi\"", "other\"")));
    let d = diff(&a, &b);
    assert!(d.gateway_changed);
    assert!(d.restart_required.is_empty());
    let c = load(&format!("{MINIMAL}{GW}port = 6000\n"));
    assert_eq!(diff(&a, &c).restart_required, vec!["gateway.port"]);
}
