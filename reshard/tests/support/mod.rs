//! Helpers of the reshard suite (`make test-reshard`): the logical-replication servers of
//! `testing/reshard.sh`, databases with a bank schema, router processes, the reshard
//! commands as an operator runs them, and a transfer-and-insert load.

#![allow(dead_code)]

pub mod load;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

pub const ACCOUNTS: i64 = 2_000;
pub const START_BALANCE: i64 = 1_000;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The servers (host:port) of testing/reshard.sh, started if the caller did not: the
/// logical-replication ones, then the plain one (`wal_level = replica`) last.
pub fn servers() -> Vec<u16> {
    let env = match (
        std::env::var("OROCHI_RESHARD_SERVERS"),
        std::env::var("OROCHI_RESHARD_PLAIN"),
    ) {
        (Ok(v), Ok(p)) => format!("{v},{p}"),
        _ => {
            let out = std::process::Command::new("bash")
                .arg(repo_root().join("testing/reshard.sh"))
                .arg("fleet-up")
                .output()
                .expect("run testing/reshard.sh");
            assert!(
                out.status.success(),
                "reshard.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            let var = |name: &str| {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(str::to_string))
                    .expect("servers")
            };
            format!(
                "{},{}",
                var("OROCHI_RESHARD_SERVERS="),
                var("OROCHI_RESHARD_PLAIN=")
            )
        }
    };
    env.split(',')
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect()
}

pub async fn connect(
    port: u16,
    db: &str,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .dbname(db)
        .user(user)
        .password(password)
        .connect_timeout(Duration::from_secs(5))
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(c)
}

pub async fn superuser(port: u16, db: &str) -> Client {
    connect(port, db, "postgres", "postgres")
        .await
        .expect("superuser connection")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One database of the test: (server port, name).
#[derive(Clone, Debug)]
pub struct Db {
    pub port: u16,
    pub name: String,
}

/// A pool `app` of old databases with the bank schema and rows on their shard, and new
/// databases (not created: `start` creates them), with both configurations written.
pub struct Cluster {
    pub dir: PathBuf,
    pub old: Vec<Db>,
    pub new: Vec<Db>,
    pub current: PathBuf,
    pub target: PathBuf,
    pub admin_password: String,
}

impl Cluster {
    /// `old`/`new`: the server (index into `servers()`) of each shard.
    pub async fn new(tag: &str, old: &[usize], new: &[usize]) -> Cluster {
        let ports = servers();
        let dir = std::env::temp_dir().join(format!("orochi-reshard-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old: Vec<Db> = old
            .iter()
            .enumerate()
            .map(|(i, s)| Db {
                port: ports[*s],
                name: format!("rs_{tag}_o{i}"),
            })
            .collect();
        let new: Vec<Db> = new
            .iter()
            .enumerate()
            .map(|(j, s)| Db {
                port: ports[*s],
                name: format!("rs_{tag}_n{j}"),
            })
            .collect();
        // Every test database of an earlier (maybe failed) run goes first: its
        // subscriptions would otherwise hold slots and workers this run needs. Tests
        // of this suite run one at a time (reshard.sh: --test-threads 1).
        drop_test_dbs(&ports).await;
        for (i, d) in old.iter().enumerate() {
            let admin = superuser(d.port, "postgres").await;
            admin
                .batch_execute(&format!("CREATE DATABASE {} OWNER app", d.name))
                .await
                .unwrap();
            let c = superuser(d.port, &d.name).await;
            c.batch_execute(&format!(
                "SET ROLE app;
                 CREATE TABLE accounts (aid bigint PRIMARY KEY, balance bigint NOT NULL);
                 CREATE TABLE ledger (id bigint PRIMARY KEY, aid bigint NOT NULL, amount bigint NOT NULL, at timestamptz DEFAULT now());
                 CREATE TABLE branches (bid int PRIMARY KEY, name text NOT NULL);
                 CREATE SEQUENCE ticket;
                 INSERT INTO branches SELECT g, 'branch ' || g FROM generate_series(1, 20) g;
                 CREATE TEMP TABLE hp (k bigint) PARTITION BY HASH (k);
                 INSERT INTO accounts SELECT g, {START_BALANCE} FROM generate_series(1, {ACCOUNTS}) g
                   WHERE satisfies_hash_partition('hp'::regclass, {n}, {i}, g::bigint);
                 RESET ROLE;
                 -- What copies must survive (they run without timeouts).
                 ALTER DATABASE {db} SET idle_in_transaction_session_timeout = '1s';
                 ALTER DATABASE {db} SET statement_timeout = '2s';
                 -- Not the applications' transactions: on a loaded 2-core machine one of
                 -- them can stall for a second between two statements, and the load's
                 -- own bound is the 5 s of `slowest`.
                 ALTER ROLE app IN DATABASE {db} SET idle_in_transaction_session_timeout = 0;
                 ALTER ROLE app IN DATABASE {db} SET statement_timeout = 0;",
                n = old.len(),
                db = d.name
            ))
            .await
            .unwrap();
        }
        let admin_password = "adminpw".to_string();
        let current = dir.join("current.toml");
        let target = dir.join("target.toml");
        std::fs::write(&current, config(&old, &admin_password)).unwrap();
        std::fs::write(&target, config(&new, &admin_password)).unwrap();
        Cluster {
            dir,
            old,
            new,
            current,
            target,
            admin_password,
        }
    }

    /// Runs `orochi-router reshard <args> -c current.toml` to completion.
    pub async fn reshard(&self, args: &[&str]) -> Output {
        let out = self
            .reshard_cmd(args)
            .output()
            .await
            .expect("run orochi-router reshard");
        eprintln!(
            "reshard {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn reshard_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(router_bin());
        c.arg("reshard")
            .args(args)
            .arg("-c")
            .arg(&self.current)
            .env("OROCHI_RESHARD_USER", "postgres")
            .env("OROCHI_RESHARD_PASSWORD", "postgres")
            .kill_on_drop(true);
        if let Ok(d) = std::env::var("OROCHI_PG_DUMP") {
            c.env("OROCHI_PG_DUMP", d);
        } else if let Ok(b) = std::env::var("OROCHI_PG_BINDIR") {
            c.env("OROCHI_PG_DUMP", format!("{b}/pg_dump"));
        }
        c
    }

    pub fn target_arg(&self) -> String {
        self.target.display().to_string()
    }

    /// A router serving the current configuration; returns (process, client port, admin URL).
    pub async fn router(&self, name: &str) -> Router {
        self.router_on(name, &self.current).await
    }

    /// A router started with `config` (the target one, say).
    pub async fn router_on(&self, name: &str, config: &Path) -> Router {
        let (port, admin, metrics) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = tokio::process::Command::new(router_bin())
            .arg("-c")
            .arg(config)
            .env("PGDOG_HOST", "127.0.0.1")
            .env("PGDOG_PORT", port.to_string())
            .env("PGDOG_ADMIN_PORT", admin.to_string())
            .env("PGDOG_METRICS_PORT", metrics.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn router");
        for _ in 0..200 {
            if connect(port, "app", "app", "secret").await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Router {
            child,
            port,
            admin_url: format!(
                "postgresql://admin:{}@127.0.0.1:{admin}/orochi",
                self.admin_password
            ),
        }
    }

    /// Every replication object or guard of any reshard left on the servers.
    pub async fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in self.old.iter().chain(self.new.iter()) {
            let Ok(c) = connect(d.port, &d.name, "postgres", "postgres").await else {
                continue; // not created
            };
            for r in c
                .query(
                    "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()
                     UNION ALL SELECT 'publication ' || pubname FROM pg_publication
                     UNION ALL SELECT 'subscription ' || subname FROM pg_subscription
                       WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                     UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger",
                    &[],
                )
                .await
                .unwrap()
            {
                out.push(format!("{}: {}", d.name, r.get::<_, String>(0)));
            }
        }
        out
    }

    pub async fn cleanup(&self) {
        for d in self.new.iter().chain(self.old.iter()) {
            drop_db(d).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Router {
    pub child: tokio::process::Child,
    pub port: u16,
    pub admin_url: String,
}

pub fn router_bin() -> PathBuf {
    std::env::var("OROCHI_ROUTER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target/debug/orochi-router"))
}

/// Drops every `rs_x…` database on the servers, subscribers (`_n…`) first.
async fn drop_test_dbs(ports: &[u16]) {
    let mut dbs = Vec::new();
    for port in ports {
        let c = superuser(*port, "postgres").await;
        for r in c
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'rs\\_x%'",
                &[],
            )
            .await
            .unwrap()
        {
            dbs.push(Db {
                port: *port,
                name: r.get(0),
            });
        }
    }
    dbs.sort_by_key(|d| !d.name.contains("_n"));
    for d in &dbs {
        drop_db(d).await;
    }
}

async fn drop_db(d: &Db) {
    let admin = superuser(d.port, "postgres").await;
    // Prepared transactions and subscriptions first: they keep a database from dropping.
    if let Ok(c) = connect(d.port, &d.name, "postgres", "postgres").await {
        for r in c
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .unwrap_or_default()
        {
            let _ = c
                .batch_execute(&format!("ROLLBACK PREPARED '{}'", r.get::<_, String>(0)))
                .await;
        }
        for r in c
            .query(
                "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap_or_default()
        {
            let n: String = r.get(0);
            for q in [
                // Past the reshard's own DDL guard, as the tool does.
                "SET session_replication_role = replica".to_string(),
                format!("ALTER SUBSCRIPTION {n} DISABLE"),
                format!("ALTER SUBSCRIPTION {n} SET (slot_name = NONE)"),
                format!("DROP SUBSCRIPTION {n}"),
            ] {
                let _ = c.batch_execute(&q).await;
            }
        }
    }
    // Slots of this database, some maybe still streaming to a subscription elsewhere.
    for _ in 0..50 {
        let _ = admin
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active",
                &[&d.name],
            )
            .await;
        let _ = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active",
                &[&d.name],
            )
            .await;
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE database = $1",
                &[&d.name],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", d.name))
        .await
        .unwrap();
}

fn config(shards: &[Db], admin_password: &str) -> String {
    let mut s = format!(
        "[general]\nhost = \"127.0.0.1\"\nadmin_username = \"admin\"\nadmin_password = \"{admin_password}\"\n\
         healthcheck_delay = 1000\n\n\
         [pools.app]\npool_mode = \"transaction\"\n\n\
         [pools.app.users.0]\nusername = \"app\"\npassword = \"secret\"\npool_size = 12\n\n"
    );
    for (i, d) in shards.iter().enumerate() {
        s.push_str(&format!(
            "[pools.app.shards.{i}]\ndatabase = \"{}\"\nservers = [[\"127.0.0.1\", {}, \"primary\"]]\n\n",
            d.name, d.port
        ));
    }
    s.push_str(
        "[[sharding.tables]]\nname = \"accounts\"\ncolumn = \"aid\"\ndata_type = \"bigint\"\n\n\
         [[sharding.tables]]\nname = \"ledger\"\ncolumn = \"id\"\ndata_type = \"bigint\"\n",
    );
    s
}

/// Which shard of `n` the routers send bigint key `k` to (the sharding crate, not the
/// server: the check is independent of the filter it checks).
pub fn shard_of(k: i64, n: usize) -> usize {
    let text = k.to_string();
    let key = orochi_sharding::parse_text(orochi_config::KeyType::BigInt, text.as_bytes()).unwrap();
    orochi_sharding::shard_for(&key, n).unwrap()
}

/// The invariants every run must end with, on the shards `dbs` that serve the pool.
pub async fn check_invariants(dbs: &[Db], acked: &[i64]) {
    let n = dbs.len();
    let mut balance = 0i64;
    let mut ledger: std::collections::HashMap<i64, usize> = Default::default();
    for (j, d) in dbs.iter().enumerate() {
        let c = superuser(d.port, &d.name).await;
        for r in c
            .query("SELECT aid, balance FROM accounts", &[])
            .await
            .unwrap()
        {
            let aid: i64 = r.get(0);
            assert_eq!(
                shard_of(aid, n),
                j,
                "account {aid} on shard {j} of {n}, the hash names another"
            );
            balance += r.get::<_, i64>(1);
        }
        for r in c.query("SELECT id FROM ledger", &[]).await.unwrap() {
            let id: i64 = r.get(0);
            assert_eq!(
                shard_of(id, n),
                j,
                "ledger row {id} on shard {j} of {n}, the hash names another"
            );
            *ledger.entry(id).or_default() += 1;
        }
        let branches: i64 = c
            .query_one("SELECT count(*) FROM branches", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(branches, 20, "replicated table on shard {j}");
    }
    assert_eq!(balance, ACCOUNTS * START_BALANCE, "money is conserved");
    for id in acked {
        assert_eq!(
            ledger.get(id).copied(),
            Some(1),
            "acknowledged ledger row {id} present exactly once"
        );
    }
    assert!(ledger.values().all(|c| *c == 1), "no ledger row twice");
}

/// Whether a reshard command exited 0.
pub fn ok(out: &std::process::Output) -> bool {
    out.status.success()
}

/// A command's stdout and stderr, for assertions and their messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// The databases pool `app` uses on the router behind `admin_url` (`SHOW DATABASES`), in
/// shard order.
pub async fn router_map(admin_url: &str) -> Vec<String> {
    let (c, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .expect("admin console");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut shards: Vec<(String, String)> = Vec::new();
    for m in c.simple_query("SHOW DATABASES").await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            if r.get("name") == Some("app") {
                let shard = r.get("shard").unwrap_or("").to_string();
                let db = r.get("database").unwrap_or("").to_string();
                if !shards.contains(&(shard.clone(), db.clone())) {
                    shards.push((shard, db));
                }
            }
        }
    }
    shards.sort_by_key(|(s, _)| s.parse::<usize>().unwrap_or(usize::MAX));
    shards.into_iter().map(|(_, d)| d).collect()
}

/// Waits (at most 5 s) until the router behind `admin_url` uses `dbs` for pool `app`;
/// returns the map it last had.
pub async fn wait_router_map(admin_url: &str, dbs: &[Db]) -> Result<(), Vec<String>> {
    let want: Vec<String> = dbs.iter().map(|d| d.name.clone()).collect();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = router_map(admin_url).await;
        if got == want {
            return Ok(());
        }
        if std::time::Instant::now() > until {
            return Err(got);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
