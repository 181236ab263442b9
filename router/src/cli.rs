//! Command line (SPEC §1). Parses arguments and calls into the library; nothing else.

use crate::app::{App, ConfigSource};
use clap::{Parser, Subcommand};
use orochi_config::Config;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "orochi-router",
    version,
    about = "PostgreSQL pooler, read/write splitter and sharding router"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub files: Files,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Files {
    /// Configuration file (orochi.toml / pgcat.toml).
    #[arg(short = 'c', long = "config", env = "PGDOG_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Optional users file (users.toml).
    #[arg(short = 'u', long = "users", env = "PGDOG_USERS_CONFIG", global = true)]
    pub users: Option<PathBuf>,
}

impl Files {
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            config: self
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from("orochi.toml")),
            users: self.users.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve clients (the default).
    Run,
    /// Validate the configuration and exit (1 on error).
    Check,
    /// Create the `orochi` schema objects (two-phase commit decisions) on every shard of
    /// every sharded pool; idempotent.
    Setup {
        /// Connect as this (privileged) role instead of the pool's server user, so the
        /// decisions table can get a role of its own; the password is read from
        /// OROCHI_SETUP_PASSWORD. The pool's server users get only what they need.
        #[arg(long)]
        admin_user: Option<String>,
    },
    /// Print the shard index of each value, one a line.
    ShardFor {
        /// A sharded table of the configuration (-c): its key type and shard count are used.
        #[arg(long)]
        table: Option<String>,
        /// Shard count, instead of --table.
        #[arg(long, requires = "key_type")]
        shards: Option<usize>,
        /// Key type with --shards: bigint | integer | smallint | text | uuid.
        #[arg(long = "type", id = "key_type")]
        key_type: Option<String>,
        /// Key values; negative numbers are values, not options.
        #[arg(required = true, allow_negative_numbers = true)]
        values: Vec<String>,
    },
    /// Online resharding of a pool, N -> M shards (SPEC §10): plan, start, status, verify,
    /// cutover, reverse, complete, cancel.
    Reshard(orochi_reshard::Args),
    /// Mint a JWT for the gateway with a dev key (`--key dev.pem --kid dev --role app_user
    /// --tenant 42 [--ttl 1h]`), print the key's JWKS (`--print-jwks`), or create a dev
    /// key (`--generate-key`). With -c, claim names, issuer and audience follow [gateway].
    Token(crate::gateway::token_cli::TokenArgs),
    /// Render a Go-template config (seed 002): -template T [-output O] [-cluster-name ...];
    /// `config-gen -help` lists the flags (Go style -flag or --flag).
    #[command(disable_help_flag = true)]
    ConfigGen {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

fn init_logging(config: Option<&Config>) {
    use tracing_subscriber::EnvFilter;
    let level = config
        .map(|c| c.general.log_level.clone())
        .unwrap_or_else(|| "info".into());
    // `orochi::query` (the `log_queries` lines) passes whatever the level: those lines
    // exist only when `log_queries` is on, and turning it on is asking for them.
    let filter = EnvFilter::try_new(format!("{level},pg_query=warn,orochi::query=debug"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = config.is_some_and(|c| c.general.log_format == orochi_config::LogFormat::Json);
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the CLI; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let source = cli.files.source();
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => match source.load() {
            Ok(_) => {
                println!("{}: configuration is valid", source.config.display());
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Command::Setup { admin_user } => {
            let config = match source.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return 1;
                }
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return 1;
                }
            };
            let admin = admin_user.map(|u| (u, std::env::var("OROCHI_SETUP_PASSWORD").ok()));
            rt.block_on(setup(config, admin))
        }
        Command::ShardFor {
            table,
            shards,
            key_type,
            values,
        } => match shard_for(&source, table, shards, key_type, &values) {
            Ok(out) => {
                for s in out {
                    println!("{s}");
                }
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Command::ConfigGen { args } => crate::config_gen::main(&args),
        Command::Token(args) => {
            let config = match &cli.files.config {
                None => None,
                Some(_) => match source.load() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("{e}");
                        return 1;
                    }
                },
            };
            crate::gateway::token_cli::run(args, config)
        }
        Command::Reshard(args) => {
            orochi_reshard::main(args, &source.config, source.users.as_deref())
        }
        Command::Run => {
            let config = match source.load() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return 1;
                }
            };
            init_logging(Some(&config));
            let rt = match build_runtime(config.general.worker_threads) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return 1;
                }
            };
            let app = App::new(config, Some(source));
            match rt.block_on(crate::server::run(app)) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e:#}");
                    1
                }
            }
        }
    }
}

/// The router's runtime. `worker_threads = 1` is a current-thread runtime: every
/// session, pool and timer on one thread, as PgBouncer runs, with no work stealing and
/// no cross-thread wake-ups (a futex each). On a machine whose cores are shared with
/// PostgreSQL and the clients that is the cheapest CPU per query: `make bench` on 2
/// cores measured 20–35% less CPU per transaction than two workers (README,
/// Benchmarks). Any other value is tokio's multi-thread runtime with that many
/// workers, 0 = one per core (SPEC §2). Not written: one thread on a machine of 1 or 2
/// cores, one worker per core above that.
fn build_runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_threads = worker_threads.unwrap_or(if cores <= 2 { 1 } else { 0 });
    tracing::info!(
        worker_threads,
        cores,
        "runtime: {}",
        if worker_threads == 1 {
            "one thread".to_string()
        } else {
            format!(
                "{} workers",
                if worker_threads == 0 {
                    cores
                } else {
                    worker_threads
                }
            )
        }
    );
    if worker_threads == 1 {
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if worker_threads > 0 {
        rt.worker_threads(worker_threads);
    }
    rt.enable_all().build()
}

fn shard_for(
    source: &crate::app::ConfigSource,
    table: Option<String>,
    shards: Option<usize>,
    key_type: Option<String>,
    values: &[String],
) -> Result<Vec<usize>, String> {
    use crate::shard_for::{parse_type, resolve, shards_of, Source};
    let (ty, n) = match (shards, table) {
        (Some(n), _) => {
            let ty = parse_type(key_type.as_deref().unwrap_or("bigint"))?;
            resolve(Source::Explicit { shards: n, ty })?
        }
        (None, Some(t)) => {
            let config = source.load().map_err(|e| e.to_string())?;
            resolve(Source::Table {
                config: &config,
                table: &t,
            })?
        }
        (None, None) => return Err("give --table T (with -c FILE) or --shards N --type T".into()),
    };
    shards_of(ty, n, values)
}

/// `orochi-router setup`: the two-phase commit objects on every shard of every pool with
/// several shards, usable by every server user of the pool.
async fn setup(config: Config, admin: Option<(String, Option<String>)>) -> i32 {
    let app = crate::app::App::new(config, None);
    let reg = app.registry.load();
    let mut failed = false;
    let mut done = 0;
    for (pool, users) in reg.dbs.iter() {
        let Some(user) = users.values().next() else {
            continue;
        };
        if user.shards.len() < 2 {
            continue;
        }
        let mut grantees: Vec<String> = users
            .values()
            .map(|u| u.user.server_username.clone())
            .collect();
        grantees.sort();
        grantees.dedup();
        // The objects go on each shard's primary as the health checks see it now (after
        // a failover that is not the first server listed).
        for h in &user.health {
            h.discover_once().await;
        }
        match crate::twopc_setup::setup_pool_for(user, &grantees, admin.clone()).await {
            Ok(()) => {
                println!(
                    "pool {pool}: orochi schema ready on {} shards",
                    user.shards.len()
                );
                done += 1;
            }
            Err(e) => {
                eprintln!("pool {pool}: {e}");
                failed = true;
            }
        }
    }
    if done == 0 && !failed {
        println!("no pool has several shards: nothing to set up");
    }
    i32::from(failed)
}
