//! `orochi-router reshard …` arguments (SPEC §10) and dispatch. The router's binary
//! parses `-c`/`-u` and hands them over with these arguments.

use crate::error::{Error, Result};
use clap::{Args as ClapArgs, Subcommand};
use orochi_config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// What moves, the checks, every statement start will run; changes nothing.
    Plan {
        #[arg(long)]
        target: PathBuf,
        #[arg(long)]
        pool: Option<String>,
        /// Subscriptions that copy at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
    },
    /// Schema, copy, catch-up; exits 0 when caught up. Idempotent: rerun after any stop.
    Start {
        #[arg(long)]
        target: PathBuf,
        #[arg(long)]
        pool: Option<String>,
        /// Subscriptions that copy at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Start no further copy while a source slot holds back more WAL than this (MB).
        #[arg(long = "max-lag-mb", default_value_t = 256)]
        max_lag_mb: i64,
    },
    /// Phase, copy progress and lag, rows per table on both sides.
    Status {
        #[arg(long)]
        pool: Option<String>,
    },
    /// Old vs new by key range, count and checksum; exit 1 naming every differing key.
    Verify {
        #[arg(long)]
        pool: Option<String>,
        #[arg(long, default_value_t = 20_000)]
        chunk_rows: i64,
    },
    /// Move the routers to the new shards within --max-pause (else undo).
    Cutover {
        #[arg(long = "router", required = true)]
        routers: Vec<String>,
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        max_pause: Duration,
        #[arg(long)]
        pool: Option<String>,
    },
    /// After cutover, before complete: back to the old shards, nothing lost.
    Reverse {
        #[arg(long = "router", required = true)]
        routers: Vec<String>,
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        max_pause: Duration,
        #[arg(long)]
        pool: Option<String>,
    },
    /// After cutover: drop every slot, publication and subscription.
    Complete {
        #[arg(long)]
        pool: Option<String>,
    },
    /// Before cutover (or after reverse): remove what start created.
    Cancel {
        #[arg(long)]
        pool: Option<String>,
    },
}

/// "5s", "500ms", "2m" or plain seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| (&s[..i], &s[i..]))
        .unwrap_or((s, "s"));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration '{s}' (e.g. 5s, 500ms)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("bad duration unit in '{s}' (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn load(path: &Path, users: Option<&Path>) -> Result<Config> {
    Config::load(path, users).map_err(|e| Error::Config(e.to_string()))
}

fn grantees(config: &Config, pool: &str) -> Vec<String> {
    let mut g: Vec<String> = config
        .pools
        .get(pool)
        .map(|p| p.users.iter().map(|u| u.server_username.clone()).collect())
        .unwrap_or_default();
    g.dedup();
    g
}

/// Runs one reshard command; returns the process exit code.
pub fn main(args: Args, config: &Path, users: Option<&Path>) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args.command, config, users)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

async fn run(cmd: Cmd, config: &Path, users: Option<&Path>) -> Result<()> {
    let current = load(config, users)?;
    match cmd {
        Cmd::Plan {
            target,
            pool,
            parallel,
        } => {
            let target = load(&target, users)?;
            let spec = crate::topology::from_configs(&current, &target, pool.as_deref())?;
            let login = crate::topology::login(&current, &spec.pool)?;
            let g = grantees(&current, &spec.pool);
            crate::plan::print(spec, login, &g, parallel).await
        }
        Cmd::Start {
            target,
            pool,
            parallel,
            max_lag_mb,
        } => {
            let target = load(&target, users)?;
            let spec = crate::topology::from_configs(&current, &target, pool.as_deref())?;
            let login = crate::topology::login(&current, &spec.pool)?;
            let opts = crate::start::Options {
                parallel: parallel.max(1),
                max_lag_bytes: max_lag_mb.max(1) << 20,
                grantees: grantees(&current, &spec.pool),
                pg_dump: std::env::var("OROCHI_PG_DUMP").unwrap_or_else(|_| "pg_dump".into()),
            };
            crate::start::run(spec, login, &opts).await
        }
        Cmd::Status { pool } => {
            let (st, login) = crate::fleet::find_state(&current, pool.as_deref()).await?;
            crate::status::run(st, login).await
        }
        Cmd::Verify { pool, chunk_rows } => {
            let (st, login) = crate::fleet::find_state(&current, pool.as_deref()).await?;
            let opts = crate::verify::Options {
                chunk_rows: chunk_rows.max(10),
                rechecks: 5,
            };
            crate::verify::run(st, login, &opts).await
        }
        Cmd::Cutover {
            routers,
            max_pause,
            pool,
        } => switch(&current, pool, routers, max_pause, true).await,
        Cmd::Reverse {
            routers,
            max_pause,
            pool,
        } => switch(&current, pool, routers, max_pause, false).await,
        Cmd::Complete { pool } => {
            let (st, login) = crate::fleet::find_state(&current, pool.as_deref()).await?;
            crate::cleanup::complete(st, login).await
        }
        Cmd::Cancel { pool } => {
            let (st, login) = crate::fleet::find_state(&current, pool.as_deref()).await?;
            crate::cleanup::cancel(st, login).await
        }
    }
}

/// `cutover` (to the new shards) and `reverse` (back to the old ones).
async fn switch(
    current: &Config,
    pool: Option<String>,
    routers: Vec<String>,
    max_pause: Duration,
    to_new: bool,
) -> Result<()> {
    let (st, login) = crate::fleet::find_state(current, pool.as_deref()).await?;
    let opts = crate::cutover::Options {
        routers,
        max_pause,
        twopc_timeout: current.sharding.two_phase_commit.timeout,
    };
    crate::cutover::run(st, login, &opts, to_new).await
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5h").is_err());
    }
}
