//! `orochi-router config-gen`: renders seed 002's Go-template configuration files.
//!
//! Operators coming from PgDog keep `orochi.toml.tmpl` / `users.toml.tmpl` written in Go's
//! template language and render them per cluster. Rendering goes through `gtmpl` (a Rust
//! implementation of Go's `text/template`), not string replacement, so `range`, `if`,
//! `with`, pipelines and Go's builtin functions behave as they do in Go.
//!
//! The data a template sees (seed 002's variables and defaults):
//!
//! | name | default | flag | env |
//! |---|---|---|---|
//! | `.ClusterName` | `default` | `-cluster-name` | `CLUSTER_NAME` |
//! | `.Namespace` | `orochi-cloud` | `-namespace` | `NAMESPACE` |
//! | `.DatabaseName` | `postgres` | `-database-name` | |
//! | `.ShardCount` | `32` | `-shard-count` | |
//! | `.PoolMode` | `transaction` | `-pool-mode` | |
//! | `.MaxPoolSize` | `100` | `-max-pool-size` | |
//! | `.TLSEnabled` | `false` | `-tls-enabled[=true\|false]` | `TLS_ENABLED` |
//! | `.Shards` | `ShardCount` entries | (derived) | |
//!
//! Each `.Shards` entry has `.Index` (0, 1, ...) and `.Last` (true on the final one, for
//! separators), so `{{range .Shards}}[pools.x.shards.{{.Index}}]{{end}}` lists every shard;
//! inside `range`, `$` is the top-level data (`{{$.ClusterName}}`). One extra function:
//! `env "NAME"` (an error naming NAME when it is unset or empty) and `env "NAME" "default"`.
//!
//! Flags are Go style (`-name value`, `-name=value`) or GNU style (`--name value`); a flag
//! beats the environment, which beats the default. Errors name `file:line`: a parse error
//! is placed on the first line by which the template already fails so; an execution error
//! (unknown field, variable or unset `env`) is placed on the first line whose action names
//! the offending field, variable or environment variable.

use gtmpl::{Context, FuncError, Template, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// The template variables (seed 002's table).
#[derive(Debug, Clone, PartialEq)]
pub struct Vars {
    pub cluster_name: String,
    pub namespace: String,
    pub database_name: String,
    pub shard_count: u32,
    pub pool_mode: String,
    pub max_pool_size: u32,
    pub tls_enabled: bool,
}

impl Default for Vars {
    fn default() -> Self {
        Vars {
            cluster_name: "default".into(),
            namespace: "orochi-cloud".into(),
            database_name: "postgres".into(),
            shard_count: 32,
            pool_mode: "transaction".into(),
            max_pool_size: 100,
            tls_enabled: false,
        }
    }
}

impl Vars {
    /// The template's data: the variables plus the derived `Shards` list. Objects, not maps,
    /// so an unknown field is an error (as for a Go struct) instead of `<no value>`.
    pub fn to_value(&self) -> Value {
        let shards: Vec<Value> = (0..self.shard_count)
            .map(|i| {
                let mut m = HashMap::new();
                m.insert("Index".to_string(), Value::from(i64::from(i)));
                m.insert("Last".to_string(), Value::from(i + 1 == self.shard_count));
                Value::Object(m)
            })
            .collect();
        let mut m = HashMap::new();
        m.insert(
            "ClusterName".into(),
            Value::from(self.cluster_name.as_str()),
        );
        m.insert("Namespace".into(), Value::from(self.namespace.as_str()));
        m.insert(
            "DatabaseName".into(),
            Value::from(self.database_name.as_str()),
        );
        m.insert(
            "ShardCount".into(),
            Value::from(i64::from(self.shard_count)),
        );
        m.insert("PoolMode".into(), Value::from(self.pool_mode.as_str()));
        m.insert(
            "MaxPoolSize".into(),
            Value::from(i64::from(self.max_pool_size)),
        );
        m.insert("TLSEnabled".into(), Value::from(self.tls_enabled));
        m.insert("Shards".into(), Value::Array(shards));
        Value::Object(m)
    }
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub template: PathBuf,
    /// `None`: standard output.
    pub output: Option<PathBuf>,
    pub vars: Vars,
}

pub const USAGE: &str = "usage: orochi-router config-gen -template FILE [-output FILE] \
[-cluster-name NAME] [-namespace NS] [-database-name DB] [-shard-count N] \
[-pool-mode transaction|session|statement] [-max-pool-size N] [-tls-enabled[=true|false]]
Flags also take --long form and -flag=value. Env: CLUSTER_NAME, NAMESPACE, TLS_ENABLED.
Template data: .ClusterName .Namespace .DatabaseName .ShardCount .PoolMode .MaxPoolSize \
.TLSEnabled, .Shards (each with .Index and .Last); function: env \"NAME\" [\"default\"].";

fn parse_bool(flag: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "on" => Ok(true),
        "0" | "f" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{flag}: \"{v}\" is not a boolean (true or false)")),
    }
}

fn parse_count(flag: &str, v: &str, min: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{flag}: \"{v}\" is not a whole number >= {min}")),
    }
}

/// Parses the arguments after `config-gen`. `env` looks up environment variables.
/// `Ok(None)` means help was asked for.
pub fn parse_args(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Options>, String> {
    let mut vars = Vars::default();
    let env_nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    if let Some(v) = env_nonempty("CLUSTER_NAME") {
        vars.cluster_name = v;
    }
    if let Some(v) = env_nonempty("NAMESPACE") {
        vars.namespace = v;
    }
    if let Some(v) = env_nonempty("TLS_ENABLED") {
        vars.tls_enabled = parse_bool("TLS_ENABLED", &v)?;
    }
    let (mut template, mut output) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument \"{arg}\"\n{USAGE}"));
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (stripped, None),
        };
        if matches!(name, "h" | "help") {
            return Ok(None);
        }
        if name == "tls-enabled" {
            vars.tls_enabled = match inline {
                Some(v) => parse_bool(arg, &v)?,
                None => true,
            };
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("flag -{name} needs a value\n{USAGE}"))?,
        };
        let flag = format!("-{name}");
        match name {
            "template" => template = Some(PathBuf::from(value)),
            "output" => output = Some(PathBuf::from(value)),
            "cluster-name" => vars.cluster_name = value,
            "namespace" => vars.namespace = value,
            "database-name" => vars.database_name = value,
            "shard-count" => vars.shard_count = parse_count(&flag, &value, 1)?,
            "pool-mode" => vars.pool_mode = value,
            "max-pool-size" => vars.max_pool_size = parse_count(&flag, &value, 1)?,
            _ => return Err(format!("unknown flag \"{arg}\"\n{USAGE}")),
        }
    }
    let template = template.ok_or_else(|| format!("-template FILE is required\n{USAGE}"))?;
    Ok(Some(Options {
        template,
        output,
        vars,
    }))
}

/// `env "NAME"` / `env "NAME" "default"`.
fn env_func(args: &[Value]) -> Result<Value, FuncError> {
    let name = match args.first() {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(FuncError::AtLeastXArgs("env".into(), 1)),
    };
    match std::env::var(&name) {
        Ok(v) if !v.is_empty() => Ok(Value::from(v)),
        _ => match args.get(1) {
            Some(d) => Ok(d.clone()),
            None => Err(FuncError::Generic(format!(
                "env: environment variable {name} is not set (or give a default: env \"{name}\" \"...\")"
            ))),
        },
    }
}

/// Renders `text`; `name` (the file's path) is used in error messages as `name:line: ...`.
pub fn render(name: &str, text: &str, vars: &Vars) -> Result<String, String> {
    let mut tmpl = Template::with_name(name);
    tmpl.add_func("env", env_func);
    if let Err(e) = tmpl.parse(text) {
        return Err(parse_error(name, text, &e.to_string()));
    }
    tmpl.render(&Context::from(vars.to_value()))
        .map_err(|e| exec_error(name, text, &e.to_string()))
}

/// gtmpl writes parse errors as `template: NAME:LINE:message`, but its lexer miscounts
/// lines after multi-line text (it adds one per text item, not per newline). The message
/// itself is right, so the line is found again by parsing each line-ending prefix: the
/// error is on the first line from which the prefix fails with the same message (for an
/// unclosed block, comment or action: from which every longer prefix fails so too).
fn parse_error(name: &str, text: &str, msg: &str) -> String {
    let message = |m: &str| -> String {
        let m = m.strip_prefix("template: ").unwrap_or(m);
        let m = m.strip_prefix(&format!("{name}:")).unwrap_or(m);
        let m = m.trim_start_matches(|c: char| c.is_ascii_digit());
        m.strip_prefix(':').unwrap_or(m).trim().to_string()
    };
    let want = message(msg);
    let mut same = Vec::new();
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        end += line.len();
        let mut t = Template::with_name(name);
        t.add_func("env", env_func);
        same.push(
            t.parse(&text[..end]).err().map(|e| message(&e.to_string())) == Some(want.clone()),
        );
    }
    let at_end = want.contains("EOF") || want.contains("unclosed");
    let line = if at_end {
        let run = same.iter().rev().take_while(|&&s| s).count();
        (run > 0).then(|| same.len() - run)
    } else {
        same.iter().position(|&s| s)
    };
    match line {
        Some(i) => format!("{name}:{}: {want}", i + 1),
        None => format!("{name}: {want}"),
    }
}

/// gtmpl's execution errors carry no position: find the line from what the error names.
fn exec_error(name: &str, text: &str, msg: &str) -> String {
    let needles = needles(msg);
    match needles.iter().find_map(|n| line_of(text, n)) {
        Some(line) => format!("{name}:{line}: {msg}"),
        None => format!("{name}: {msg}"),
    }
}

/// What an execution error names: `.Field`, `$var`, `"ENV_NAME"`.
fn needles(msg: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = msg.strip_prefix("no field ") {
        if let Some(field) = rest.split_whitespace().next() {
            out.push(format!(".{field}"));
        }
    }
    if let Some(rest) = msg.strip_prefix("variable ") {
        if let Some(var) = rest.split_whitespace().next() {
            out.push(var.to_string());
        }
    }
    if let Some(rest) = msg.split("environment variable ").nth(1) {
        if let Some(var) = rest.split_whitespace().next() {
            out.push(format!("\"{var}\""));
        }
    }
    out
}

/// The 1-based line of the first `{{ ... }}` action containing `needle` as a whole token.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    let mut pos = 0;
    while let Some(start) = text[pos..].find("{{").map(|i| i + pos) {
        let end = text[start..]
            .find("}}")
            .map_or(text.len(), |i| start + i + 2);
        let action = &text[start..end];
        let mut from = 0;
        while let Some(i) = action[from..].find(needle).map(|i| i + from) {
            let after = action[i + needle.len()..].chars().next();
            if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                let at = start + i;
                return Some(text[..at].matches('\n').count() + 1);
            }
            from = i + needle.len();
        }
        pos = end;
    }
    None
}

/// Runs `config-gen ARGS`; returns the exit code (2: usage, 1: template or I/O error).
pub fn main(args: &[String]) -> i32 {
    let opts = match parse_args(args, &|k| std::env::var(k).ok()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("config-gen: {e}");
            return 2;
        }
    };
    let name = opts.template.display().to_string();
    let text = match std::fs::read_to_string(&opts.template) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("config-gen: {name}: {e}");
            return 1;
        }
    };
    let out = match render(&name, &text, &opts.vars) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("config-gen: {e}");
            return 1;
        }
    };
    match &opts.output {
        None => {
            print!("{out}");
            0
        }
        Some(path) => match std::fs::write(path, out) {
            Ok(()) => {
                eprintln!("config-gen: wrote {} from {name}", path.display());
                0
            }
            Err(e) => {
                eprintln!("config-gen: {}: {e}", path.display());
                1
            }
        },
    }
}

#[cfg(test)]
#[path = "config_gen_tests.rs"]
mod tests;
