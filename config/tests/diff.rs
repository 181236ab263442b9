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
