//! The command line: `check` (exit codes, file:line:column errors) and `shard-for`
//! (same answers as the library, from a config's sharded table or from --shards/--type).

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orochi-router"))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("orochi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"[general]
port = 6543

[pools.app.users.0]
username = "app"
password = "secret"

[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]

[pools.app.shards.1]
database = "app"
servers = [["127.0.0.1", 5433, "primary"]]

[[sharding.tables]]
name = "accounts"
column = "aid"
data_type = "bigint"
"#;

#[test]
fn check_accepts_good_and_rejects_bad_configs_with_positions() {
    let good = write("good.toml", GOOD);
    let out = bin().arg("check").arg("-c").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = write(
        "bad.toml",
        &GOOD.replace("port = 6543", "port = 6543\npool_sizee = 3"),
    );
    let out = bin().arg("check").arg("-c").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:1", bad.display())) && err.contains("pool_sizee"),
        "{err}"
    );
}

#[test]
fn shard_for_matches_the_library() {
    let good = write("shard.toml", GOOD);
    let values = ["1", "42", "-7", "9223372036854775807"];
    let out = bin()
        .args(["shard-for", "-c"])
        .arg(&good)
        .args(["--table", "accounts"])
        .args(values)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let want: Vec<usize> = values
        .iter()
        .map(|v| {
            orochi_sharding::shard_for_text_value(orochi_config::KeyType::BigInt, v, 2).unwrap()
        })
        .collect();
    assert_eq!(got, want);

    let out = bin()
        .args(["shard-for", "--shards", "7", "--type", "text", "abc", ""])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        got,
        ["abc", ""]
            .iter()
            .map(
                |v| orochi_sharding::shard_for_text_value(orochi_config::KeyType::Text, v, 7)
                    .unwrap()
            )
            .collect::<Vec<_>>()
    );

    let out = bin()
        .args([
            "shard-for",
            "--shards",
            "2",
            "--type",
            "bigint",
            "notanumber",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("notanumber"));
}
