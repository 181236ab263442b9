//! Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use orochi_config::{Config, ConfigErrors, Input, Loaded};
use std::path::PathBuf;

pub fn no_env(_: &str) -> Option<String> {
    None
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load_fixture(name: &str) -> Loaded {
    match Config::load_with_env(&fixture(name), None, &no_env) {
        Ok(l) => l,
        Err(e) => panic!("{name} should load:\n{e}"),
    }
}

pub fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    Config::from_inputs(
        Input {
            name: "orochi.toml",
            text,
        },
        None,
        &no_env,
    )
}

/// The errors of a config that must fail, as `(line, column, message)`.
pub fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match parse(text) {
        Ok(_) => panic!("config should have been rejected:\n{text}"),
        Err(e) => e
            .iter()
            .map(|e| {
                let (l, c) = e.line_column().unwrap_or((0, 0));
                (l, c, e.to_string())
            })
            .collect(),
    }
}

/// Asserts exactly one error, at `line:column`, whose text contains every fragment.
pub fn assert_one_error(text: &str, line: usize, column: usize, fragments: &[&str]) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "expected one error, got {errs:#?}");
    let (l, c, msg) = &errs[0];
    assert_eq!((*l, *c), (line, column), "wrong position for: {msg}");
    assert!(
        msg.starts_with(&format!("orochi.toml:{line}:{column}: ")),
        "message must start with file:line:column: {msg}"
    );
    for f in fragments {
        assert!(msg.contains(f), "{msg:?} should contain {f:?}");
    }
}

/// A minimal valid pool, to append faults to.
pub const MINIMAL: &str = r#"[pools.app]

[pools.app.users.0]
username = "app"
password = "secret"
pool_size = 5

[pools.app.shards.0]
database = "app"
servers = [["127.0.0.1", 5432, "primary"]]
"#;
