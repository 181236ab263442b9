//! Entry points: file(s) + environment → validated [`Config`], all or nothing.
//!
//! Parse, validate, then hand back a complete snapshot or every error found; never a
//! half-applied config (DESIGN: "parse → validate → swap").

use crate::env::{self, EnvLookup};
use crate::error::{ConfigError, ConfigErrors, ConfigWarning, Location};
use crate::model::Config;
use crate::reader::{Ctx, Section};
use crate::source::SourceFile;
use crate::{general, pools, routing, users_file, validate};
use std::path::{Path, PathBuf};
use toml_edit::ImDocument;

/// A loaded config plus the warnings worth printing (`orochi-router check`).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
}

/// One input text and the name used in messages (usually its path).
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Config {
    /// Loads `orochi.toml` (and optionally `users.toml`) with overrides from the process
    /// environment.
    pub fn load(config_path: &Path, users_path: Option<&Path>) -> Result<Config, ConfigErrors> {
        Self::load_with_env(config_path, users_path, &env::process_env).map(|l| l.config)
    }

    /// Like [`Config::load`], with an injected environment, returning warnings too.
    pub fn load_with_env(
        config_path: &Path,
        users_path: Option<&Path>,
        env: EnvLookup,
    ) -> Result<Loaded, ConfigErrors> {
        let main_name = config_path.display().to_string();
        let users_name = users_path.map(|p| p.display().to_string());
        let mut errors = Vec::new();
        let main = read(config_path, &main_name, &mut errors);
        let users = match (users_path, &users_name) {
            (Some(p), Some(n)) => read(p, n, &mut errors),
            _ => None,
        };
        let Some(main) = main else {
            return Err(ConfigErrors(errors));
        };
        if users_path.is_some() && users.is_none() {
            return Err(ConfigErrors(errors));
        }
        let users_input = match (&users_name, &users) {
            (Some(n), Some(t)) => Some(Input { name: n, text: t }),
            _ => None,
        };
        let mut loaded = Self::from_inputs(
            Input {
                name: &main_name,
                text: &main,
            },
            users_input,
            env,
        )?;
        loaded.config.sources = std::iter::once(config_path.to_path_buf())
            .chain(users_path.map(Path::to_path_buf))
            .collect();
        Ok(loaded)
    }

    /// Parses one `orochi.toml` text; `source_name` appears in error messages.
    pub fn from_str_with_env(
        text: &str,
        source_name: &str,
        env: EnvLookup,
    ) -> Result<Config, ConfigErrors> {
        Self::from_inputs(
            Input {
                name: source_name,
                text,
            },
            None,
            env,
        )
        .map(|l| l.config)
    }

    /// The general form: main text, optional users text, injected environment.
    pub fn from_inputs(
        main: Input,
        users: Option<Input>,
        env: EnvLookup,
    ) -> Result<Loaded, ConfigErrors> {
        build(main, users, env)
    }
}

fn read(path: &Path, name: &str, errors: &mut Vec<ConfigError>) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(ConfigError::Read {
                location: Location::WholeFile {
                    file: name.to_string(),
                },
                message: e.to_string(),
            });
            None
        }
    }
}

fn parse_doc(src: &SourceFile) -> Result<ImDocument<&str>, ConfigError> {
    ImDocument::parse(src.text.as_str()).map_err(|e| ConfigError::Syntax {
        location: src.locate(e.span()),
        message: e.message().trim().to_string(),
    })
}

fn build(main: Input, users: Option<Input>, env: EnvLookup) -> Result<Loaded, ConfigErrors> {
    let main_src = SourceFile::new(main.name, main.text);
    let users_src = users.map(|u| SourceFile::new(u.name, u.text));

    let doc = parse_doc(&main_src);
    let users_doc = users_src.as_ref().map(parse_doc);
    let mut syntax: Vec<ConfigError> = Vec::new();
    if let Err(e) = &doc {
        syntax.push(e.clone());
    }
    if let Some(Err(e)) = &users_doc {
        syntax.push(e.clone());
    }
    let (Ok(doc), false) = (doc, !syntax.is_empty()) else {
        return Err(ConfigErrors(syntax));
    };

    let mut cx = Ctx::new(&main_src);
    let mut root = Section::new("", doc.as_table(), None);
    let general_sec = root.section(&mut cx, "general");
    let (mut general, pool_defaults, mut file_general) =
        general::parse_general(&mut cx, general_sec);
    let general_span = root.value_span("general").or(Some(0..0));
    let qr_sec = root.section(&mut cx, "query_routing");
    let query_routing = routing::parse_query_routing(&mut cx, qr_sec);
    let sharding_sec = root.section(&mut cx, "sharding");
    let (mut sharding, mut decls) = routing::parse_sharding(&mut cx, sharding_sec);
    let pools_sec = root.section(&mut cx, "pools");
    let inherited = pools::Inherited {
        general: &general,
        defaults: &pool_defaults,
        query_routing: &query_routing,
        sharding_function: sharding.sharding_function,
    };
    let mut parsed = pools::parse_pools(&mut cx, pools_sec, &inherited);
    let gateway_sec = root.section(&mut cx, "gateway");
    let file_gateway = crate::gateway::parse_gateway(&mut cx, gateway_sec);
    if parsed.pools.is_empty() && !root.has("pools") {
        cx.error(
            Some(0..0),
            "no pools configured; add a [pools.<name>] section (clients connect with dbname=<name>)",
        );
    }
    root.accept(crate::accepted::ROOT);
    root.finish(&mut cx);

    let mut users_errors = Vec::new();
    let mut users_warnings = Vec::new();
    if let (Some(src), Some(Ok(udoc))) = (users_src.as_ref(), users_doc.as_ref()) {
        let mut ucx = Ctx::new(src);
        let uroot = Section::new("", udoc.as_table(), None);
        users_file::merge_users(&mut ucx, uroot, &mut parsed.pools, &parsed.sites);
        users_errors = ucx.errors;
        users_warnings = ucx.warnings;
    }

    validate::pools_have_users(&mut cx, &parsed.pools, &parsed.sites);
    decls.append(&mut parsed.tables);
    sharding.tables = validate::sharded_tables(&mut cx, &parsed.pools, decls);
    if let Some(g) = &file_gateway {
        crate::gateway::check(&mut cx, g, &parsed.pools, &sharding.tables);
    }
    let mut gateway = file_gateway.map(|g| g.gateway);

    let mut env_errors = Vec::new();
    env::apply(
        &mut general,
        &mut file_general,
        &main_src,
        env,
        &mut env_errors,
    );
    if let Some(g) = gateway.as_mut() {
        if let Some(p) = env::port(env, "PGDOG_GATEWAY_PORT", &mut env_errors) {
            g.port = p;
        }
    }
    check_ports(
        &mut cx,
        &mut general,
        &file_general,
        general_span,
        gateway.as_ref().map(|g| g.port),
    );

    let mut errors = sorted(cx.errors);
    errors.extend(sorted(users_errors));
    errors.extend(env_errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let mut warnings = cx.warnings;
    warnings.extend(users_warnings);
    let sources = std::iter::once(PathBuf::from(main.name))
        .chain(users.map(|u| PathBuf::from(u.name)))
        .collect();
    Ok(Loaded {
        config: Config {
            general,
            pools: parsed.pools,
            query_routing,
            sharding,
            gateway,
            sources,
        },
        warnings,
    })
}

/// The three listeners need distinct ports (0 = OS-assigned is exempt).
///
/// PgCat serves its admin console on the client port and its example listens on 6432,
/// our default admin port: a defaulted admin (or metrics) port that collides is moved
/// to the next free port with a warning; explicit collisions are errors.
fn check_ports(
    cx: &mut Ctx,
    g: &mut crate::model::General,
    file: &general::FileGeneral,
    span: crate::reader::Span,
    gateway_port: Option<u16>,
) {
    let taken = |g: &crate::model::General, p: u16, own: &str| {
        (own != "port" && g.port == p)
            || (own != "admin_port" && g.admin_port == p)
            || (own != "metrics_port" && g.metrics_port == p)
    };
    for (name, set) in [
        ("admin_port", file.admin_port_set),
        ("metrics_port", file.metrics_port_set),
    ] {
        let current = if name == "admin_port" {
            g.admin_port
        } else {
            g.metrics_port
        };
        if set || current == 0 || !taken(g, current, name) {
            continue;
        }
        let Some(free) = (current..=u16::MAX).skip(1).find(|p| !taken(g, *p, name)) else {
            continue;
        };
        cx.warn(
            span.clone(),
            format!("[general]: {name} {current} is taken by another listener; using {free} (set {name} to choose)"),
        );
        if name == "admin_port" {
            g.admin_port = free;
        } else {
            g.metrics_port = free;
        }
    }
    let mut named = vec![
        ("port", g.port),
        ("admin_port", g.admin_port),
        ("metrics_port", g.metrics_port),
    ];
    named.extend(gateway_port.map(|p| ("[gateway] port", p)));
    for (i, (a, pa)) in named.iter().enumerate() {
        for (b, pb) in &named[i + 1..] {
            if pa == pb && *pa != 0 {
                cx.error(
                    span.clone(),
                    format!(
                        "[general]: {a} and {b} are both {pa}; each listener needs its own port"
                    ),
                );
            }
        }
    }
}

/// File order, so the operator reads them top to bottom.
fn sorted(mut errors: Vec<ConfigError>) -> Vec<ConfigError> {
    errors.sort_by_key(|e| e.line_column().unwrap_or((0, 0)));
    errors
}
