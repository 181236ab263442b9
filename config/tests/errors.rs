//! Every rejection names file:line:column and the key; all errors are reported at once.

mod common;

use common::{assert_one_error, errors, parse, MINIMAL};

#[test]
fn unknown_key_with_suggestion() {
    let text = r#"[pools.app]

[pools.app.users.0]
username = "app"
password = "secret"
pool_sizee = 5

[pools.app.shards.0]
servers = [["127.0.0.1", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        6,
        1,
        &[r#"unknown key "pool_sizee" in [pools.app.users.0] (did you mean "pool_size"?)"#],
    );
}

#[test]
fn unknown_top_level_and_general_keys() {
    let text = format!("[general]\nprot = 1\n\n[tls]\nx = 1\n{MINIMAL}");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].0, errs[0].1), (2, 1));
    assert!(errs[0]
        .2
        .contains(r#"unknown key "prot" in [general] (did you mean "port"?)"#));
    assert_eq!((errs[1].0, errs[1].1), (4, 2));
    assert!(errs[1].2.contains(r#"unknown key "tls" in the top level"#));
}

#[test]
fn wrong_type_names_expected_and_found() {
    let text = format!("[general]\nport = \"5432\"\n{MINIMAL}");
    assert_one_error(
        &text,
        2,
        8,
        &[r#"key "port" in [general]: expected an integer, found a string"#],
    );
}

#[test]
fn bad_listener_port() {
    let text = format!("[general]\nadmin_port = 70000\n{MINIMAL}");
    assert_one_error(
        &text,
        2,
        14,
        &[r#"key "admin_port" in [general]: 70000 is not a valid port (0-65535)"#],
    );
}

#[test]
fn bad_server_port() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 0, "primary"]]
"#;
    assert_one_error(
        text,
        5,
        20,
        &[r#"key "servers" in [pools.app.shards.0]: server 0: 0 is not a valid port (1-65535)"#],
    );
}

#[test]
fn duplicate_shard_numbers() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "primary"]]

[pools.app.shards.00]
servers = [["db2", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        7,
        19,
        &["[pools.app.shards.00]: duplicate shard number 0 (also [pools.app.shards.0])"],
    );
}

#[test]
fn non_contiguous_shard_numbers() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "primary"]]

[pools.app.shards.2]
servers = [["db3", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        4,
        12,
        &["[pools.app.shards]: shard numbers must be contiguous from 0: shard 1 is missing (found 0, 2)"],
    );
}

#[test]
fn shard_key_must_be_a_number() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.first]
servers = [["db1", 5432, "primary"]]
"#;
    assert_one_error(text, 4, 19, &[r#"shard key "first" is not a number"#]);
}

#[test]
fn pool_without_users() {
    let text = r#"[pools.app]
pool_mode = "session"

[pools.app.shards.0]
servers = [["db1", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        1,
        1,
        &[r#"[pools.app]: pool "app" has no users"#, "users.toml"],
    );
}

#[test]
fn shard_without_primary() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "replica"], ["db2", 5432, "replica"]]
"#;
    assert_one_error(
        text,
        5,
        11,
        &[
            r#"key "servers" in [pools.app.shards.0]: shard has no primary"#,
            "\"auto\"",
        ],
    );
}

#[test]
fn auto_roles_need_no_primary() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "auto"], ["db2", 5432, "Auto"]]
"#;
    let c = parse(text).unwrap_or_else(|e| panic!("{e}")).config;
    assert!(c.pools["app"].shards[0]
        .servers
        .iter()
        .all(|s| s.role == orochi_config::Role::Auto));
}

#[test]
fn more_than_one_primary() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "primary"], ["db2", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        5,
        38,
        &[r#"key "servers" in [pools.app.shards.0]: more than one primary (db1:5432, db2:5432)"#],
    );
}

#[test]
fn unknown_server_role_lists_valid_ones() {
    let text = r#"[pools.app.users.0]
username = "app"

[pools.app.shards.0]
servers = [["db1", 5432, "primary"], ["db2", 5432, "standby"]]
"#;
    assert_one_error(
        text,
        5,
        52,
        &[r#"server 1: unknown role "standby"; expected one of: "primary", "replica", "auto""#],
    );
}

#[test]
fn min_pool_size_above_pool_size() {
    let text = r#"[pools.app.users.0]
username = "app"
pool_size = 2
min_pool_size = 5

[pools.app.shards.0]
servers = [["db1", 5432, "primary"]]
"#;
    assert_one_error(
        text,
        4,
        17,
        &[
            r#"key "min_pool_size" in [pools.app.users.0]: min_pool_size (5) is larger than pool_size (2)"#,
        ],
    );
}

#[test]
fn sharded_table_with_unknown_pool() {
    let text = format!(
        "{MINIMAL}\n[[sharding.tables]]\nname = \"accounts\"\ncolumn = \"aid\"\npool = \"nope\"\n"
    );
    // MINIMAL has 10 lines; the table starts on line 12.
    assert_one_error(
        &text,
        15,
        8,
        &[r#"key "pool" in [sharding.tables[0]]: unknown pool "nope"; pools are: "app""#],
    );
}

#[test]
fn unknown_enum_values_list_the_valid_ones() {
    let text = format!("[general]\nlog_format = \"yaml\"\n{MINIMAL}");
    assert_one_error(
        &text,
        2,
        14,
        &[
            r#"key "log_format" in [general]: unknown value "yaml"; expected one of: "text", "json""#,
        ],
    );
    let text = MINIMAL.replace(
        "[pools.app]\n",
        "[pools.app]\npool_mode = \"transactional\"\n",
    );
    assert_one_error(
        &text,
        2,
        13,
        &[
            r#"key "pool_mode" in [pools.app]: unknown value "transactional"; expected one of: "transaction", "session", "statement""#,
        ],
    );
    let text = MINIMAL.replace(
        "[pools.app]\n",
        "[pools.app]\nload_balancing_mode = \"fastest\"\n",
    );
    assert_one_error(&text, 2, 23, &[r#""random", "round_robin", "loc""#]);
}

#[test]
fn sha1_sharding_is_refused_with_the_reason() {
    let text = MINIMAL.replace(
        "[pools.app]\n",
        "[pools.app]\nsharding_function = \"sha1\"\n",
    );
    assert_one_error(
        &text,
        2,
        21,
        &[
            r#"key "sharding_function" in [pools.app]: unsupported sharding function "sha1""#,
            "only PostgreSQL hash partitioning is supported",
        ],
    );
}

#[test]
fn malformed_scram_verifier() {
    let text = MINIMAL.replace(
        "password = \"secret\"",
        "password = \"SCRAM-SHA-256$4096:abc\"",
    );
    assert_one_error(
        &text,
        5,
        12,
        &[r#"key "password" in [pools.app.users.0]: malformed SCRAM-SHA-256 verifier"#],
    );
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let text = r#"[general]
port = -1
log_level = "loud"

[pools.app.users.0]
username = "app"
pool_size = 0

[pools.app.shards.0]
servers = [["db1", 5432, "replica"]]
extra = true
"#;
    let errs = errors(text);
    let positions: Vec<(usize, usize)> = errs.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        positions,
        vec![(2, 8), (3, 13), (7, 13), (10, 11), (11, 1)],
        "{errs:#?}"
    );
    assert!(errs[2]
        .2
        .contains(r#"key "pool_size" in [pools.app.users.0]: 0 is out of range"#));
    assert!(errs[4]
        .2
        .contains(r#"unknown key "extra" in [pools.app.shards.0]"#));
    // Display joins them one per line.
    let all = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(all.lines().count(), 5);
}

#[test]
fn toml_syntax_error_is_located() {
    let text = "[general]\nport = = 5\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].0, errs[0].1), (2, 8));
    assert!(
        errs[0].2.starts_with("orochi.toml:2:8: TOML syntax error"),
        "{}",
        errs[0].2
    );
}

#[test]
fn automatic_sharding_key_needs_table_and_column() {
    let text = MINIMAL.replace(
        "[pools.app]\n",
        "[pools.app]\nautomatic_sharding_key = \"aid\"\n",
    );
    assert_one_error(
        &text,
        2,
        26,
        &[r#"key "automatic_sharding_key" in [pools.app]: "aid" must be "table.column""#],
    );
}

#[test]
fn duplicate_users_in_a_pool() {
    let text = MINIMAL.replace(
        "[pools.app.shards.0]",
        "[pools.app.users.1]\nusername = \"app\"\n\n[pools.app.shards.0]",
    );
    assert_one_error(
        &text,
        9,
        12,
        &[r#"user "app" is already defined in pool "app""#],
    );
}

#[test]
fn explicit_port_collision_is_an_error() {
    let text = format!("[general]\nport = 7000\nadmin_port = 7000\n{MINIMAL}");
    assert_one_error(&text, 1, 1, &["port and admin_port are both 7000"]);
}

#[test]
fn instance_id_must_fit_in_a_transaction_name() {
    let text = format!("[general]\ninstance_id = \"router-1\"\n{MINIMAL}");
    assert_one_error(
        &text,
        2,
        15,
        &[
            r#"key "instance_id" in [general]: "router-1" must be 1-32 ASCII letters, digits or '_'"#,
        ],
    );
}

#[test]
fn sharded_table_shard_count_must_match_the_pool() {
    let text = format!(
        "{MINIMAL}\n[[sharding.tables]]\nname = \"users\"\ncolumn = \"tenant_id\"\npool = \"app\"\nshards = 32\n"
    );
    assert_one_error(
        &text,
        16,
        10,
        &[
            r#"key "shards" in [sharding.tables[0]]: table "users" declares 32 shards but pool "app" has 1"#,
        ],
    );
}

#[test]
fn pool_settings_in_a_shard_must_not_contradict_the_pool() {
    let text = MINIMAL.replace(
        "[pools.app]\n",
        "[pools.app]\nload_balancing_mode = \"random\"\n",
    ) + "load_balancing_mode = \"loc\"\n";
    assert_one_error(
        &text,
        9,
        1,
        &["[pools.app.shards.0]: pool settings (load_balancing_mode) written in a shard table conflict"],
    );
}

#[test]
fn two_phase_commit_keys_are_checked() {
    let text = format!(
        "{MINIMAL}\n[sharding.two_phase_commit]\ntimeout_seconds = 0\nbest_effort = \"yes\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!((errs[0].0, errs[0].1), (13, 19));
    assert!(errs[0]
        .2
        .contains(r#"key "timeout_seconds" in [sharding.two_phase_commit]: 0 is out of range"#));
    assert_eq!((errs[1].0, errs[1].1), (14, 15));
    assert!(errs[1].2.contains("expected a boolean"));
}

#[test]
fn otel_endpoint_must_be_http_or_grpc() {
    let text = format!("[general]\notel_endpoint = \"https://collector:4318\"\n{MINIMAL}");
    assert_one_error(
        &text,
        2,
        17,
        &["otel_endpoint", "https://collector:4318", "grpc://", "TLS"],
    );
    let text = format!("[general]\notel_endpoint = \"collector:4318\"\n{MINIMAL}");
    assert_one_error(&text, 2, 17, &["otel_endpoint", "http://host:port"]);
    for ok in [
        "http://collector:4318",
        "grpc://collector:4317",
        "HTTP://c:4317",
    ] {
        let text = format!("[general]\notel_endpoint = \"{ok}\"\n{MINIMAL}");
        assert!(common::parse(&text).is_ok(), "{ok}");
    }
}
