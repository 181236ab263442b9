//! `diff` reports what a reload changes.

mod common;

use common::{parse, MINIMAL};
use orochi_config::{diff, Config};

fn cfg(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}")).config
}

#[test]
fn identical_configs_have_an_empty_diff() {
    let d = diff(&cfg(MINIMAL), &cfg(MINIMAL));
    assert!(d.is_empty());
    assert_eq!(d.to_string(), "no changes");
}

#[test]
fn pools_users_servers_and_listeners() {
    let old = cfg(&format!("[general]\nidle_timeout = 1000\n{MINIMAL}"));
    let new_text = format!(
        "[general]\nport = 5544\nidle_timeout = 2000\n{}\n[pools.other.users.0]\nusername = \"o\"\n[pools.other.shards.0]\nservers = [[\"db9\", 5432, \"primary\"]]\n",
        MINIMAL
            .replace("password = \"secret\"", "password = \"rotated\"")
            .replace("[pools.app]\n", "[pools.app]\npool_mode = \"session\"\n")
            .replace("\"primary\"]]", "\"primary\"], [\"db2\", 5432, \"replica\"]]")
            .replace(
                "[pools.app.shards.0]",
                "[pools.app.users.1]\nusername = \"new\"\n\n[pools.app.shards.0]"
            )
    );
    let d = diff(&old, &cfg(&new_text));
    assert_eq!(d.general_changed, vec!["port", "idle_timeout"]);
    assert_eq!(d.restart_required, vec!["port"]);
    assert_eq!(d.pools_added, vec!["other".to_string()]);
    assert!(d.pools_removed.is_empty());
    assert_eq!(d.pools_changed.len(), 1);
    let p = &d.pools_changed[0];
    assert_eq!(p.name, "app");
    assert_eq!(p.settings_changed, vec!["pool_mode", "idle_timeout"]);
    assert_eq!(p.users_added, vec!["new".to_string()]);
    assert_eq!(p.users_changed, vec!["app".to_string()]);
    assert!(p.topology_changed);
    let text = d.to_string();
    assert!(text.contains("pool app: users changed: app"), "{text}");
    assert!(text.contains("pool other: added"), "{text}");

    let back = diff(&cfg(&new_text), &old);
    assert_eq!(back.pools_removed, vec!["other".to_string()]);
    assert_eq!(back.pools_changed[0].users_removed, vec!["new".to_string()]);
}

#[test]
fn query_log_keys_parse_and_reload_without_restart() {
    let off = cfg(MINIMAL);
    assert!(!off.general.log_queries && !off.general.log_parameters);
    let on = cfg(&format!(
        "[general]\nlog_queries = true\nlog_parameters = true\n{MINIMAL}"
    ));
    assert!(on.general.log_queries && on.general.log_parameters);
    let d = diff(&off, &on);
    assert_eq!(d.general_changed, vec!["log_queries", "log_parameters"]);
    assert!(d.restart_required.is_empty(), "{d}");
    // The OTLP endpoint is read at start: changing it waits for a restart.
    let traced = cfg(&format!(
        "[general]\notel_endpoint = \"grpc://collector:4317\"\n{MINIMAL}"
    ));
    assert_eq!(
        traced.general.otel_endpoint.as_deref(),
        Some("grpc://collector:4317")
    );
    assert_eq!(diff(&off, &traced).restart_required, vec!["otel_endpoint"]);
}

#[test]
fn query_log_keys_must_be_booleans() {
    let e = common::errors(&format!("[general]\nlog_queries = \"yes\"\n{MINIMAL}"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].2.contains("log_queries"), "{e:?}");
    assert_eq!(e[0].0, 2);
}
