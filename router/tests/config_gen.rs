//! `orochi-router config-gen` end to end: the shipped templates render (defaults, Go-style
//! and GNU-style flags, env) into files `orochi-router check` accepts, and a template error
//! names file:line with exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orochi-router"));
    for v in ["CLUSTER_NAME", "NAMESPACE", "TLS_ENABLED", "PGDOG_CONFIG"] {
        c.env_remove(v);
    }
    c
}

fn templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infrastructure/config")
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("orochi-config-gen-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Renders both shipped templates with `flags` (and `env`), then runs `check` on them.
fn render_and_check(tag: &str, flags: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let d = dir(tag);
    let (conf, users) = (d.join("orochi.toml"), d.join("users.toml"));
    for (tmpl, out) in [("orochi.toml.tmpl", &conf), ("users.toml.tmpl", &users)] {
        let mut c = bin();
        c.arg("config-gen")
            .arg("-template")
            .arg(templates().join(tmpl))
            .arg("-output")
            .arg(out)
            .args(flags)
            .envs(env.iter().copied());
        run_ok(&mut c);
    }
    let said = run_ok(
        bin()
            .arg("check")
            .arg("-c")
            .arg(&conf)
            .arg("-u")
            .arg(&users),
    );
    assert!(said.contains("configuration is valid"), "{said}");
    (
        std::fs::read_to_string(conf).unwrap(),
        std::fs::read_to_string(users).unwrap(),
    )
}

#[test]
fn shipped_templates_render_to_valid_configs() {
    // Seed 002's defaults: 32 shards, pool "postgres", transaction mode, no TLS.
    let (conf, users) = render_and_check("defaults", &[], &[]);
    assert!(conf.contains("[pools.postgres.shards.31]"), "{conf}");
    assert!(!conf.contains("[pools.postgres.shards.32]"));
    assert!(conf.contains("default-shard-0-primary.orochi-cloud.svc.cluster.local"));
    assert!(!conf.contains("tls_certificate"));
    assert!(users.contains("database = \"postgres\"") && users.contains("pool_size = 100"));

    // Go-style flags as the seed types them, plus --long and env.
    let (conf, users) = render_and_check(
        "flags",
        &[
            "-cluster-name",
            "my-cluster",
            "-shard-count",
            "4",
            "--database-name=app",
            "--pool-mode",
            "session",
            "-max-pool-size",
            "20",
            "-tls-enabled",
        ],
        &[
            ("NAMESPACE", "production"),
            ("OROCHI_APP_PASSWORD", "s3cret"),
        ],
    );
    assert!(conf.contains("[pools.app.shards.3]") && !conf.contains("[pools.app.shards.4]"));
    assert!(conf.contains("my-cluster-shard-2-replica.production.svc.cluster.local"));
    assert!(conf.contains("pool_mode = \"session\"") && conf.contains("max_pool_size = 20"));
    assert!(conf.contains("tls_certificate = \"/etc/orochi/tls/tls.crt\""));
    assert!(users.contains("password = \"s3cret\""));

    // One shard: no sharded tables, still valid.
    let (conf, _) = render_and_check("one", &["-shard-count", "1"], &[("CLUSTER_NAME", "solo")]);
    assert!(conf.contains("solo-shard-0-primary") && !conf.contains("[[sharding.tables]]"));
}

#[test]
fn template_errors_name_file_and_line() {
    let d = dir("errors");
    let t = d.join("bad.toml.tmpl");
    std::fs::write(&t, "[general]\nport = 5432\n# {{.ClusterNmae}}\n").unwrap();
    let out = bin()
        .arg("config-gen")
        .arg("-template")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", t.display())) && err.contains("ClusterNmae"),
        "{err}"
    );

    std::fs::write(&t, "a\n{{range .Shards}}\n{{.Index}\n{{end}}\n").unwrap();
    let out = bin()
        .args(["config-gen", "--template"])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", t.display())), "{err}");

    let out = bin()
        .args(["config-gen", "-template", "x", "-bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
