//! Shared harness for the router's integration tests (included with `mod common;`).
//!
//! Real PostgreSQL comes from `testing/pg.sh fleet-up` (once per test binary). Each test
//! gets its own scratch database and its own in-process router bound to port 0, so every
//! test in every binary can run in parallel: no globals, no fixed ports, no shared tables.
#![allow(dead_code)]

pub mod certs;
pub mod faultproxy;
pub mod gateway;
pub mod procs;
pub mod raw;
pub mod reshard;
pub mod shards;

use orochi_router::app::App;
use orochi_router::signals::Stop;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Passwords and users `pg.sh` creates on every instance.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "secret";
pub const MD5_USER: &str = "md5user";
pub const MD5_PASSWORD: &str = "md5pass";
/// A router-only user that logs in without a password; the router uses `app` towards PostgreSQL.
pub const TRUST_USER: &str = "trusty";
pub const SUPERUSER: &str = "postgres";
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// The PostgreSQL fleet the tests run against.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub host: String,
    pub port: u16,
    pub shards: Vec<(String, u16)>,
    pub bindir: PathBuf,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("router/ has a parent")
        .to_path_buf()
}

fn split_addr(s: &str) -> (String, u16) {
    let (h, p) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("bad address {s:?}"));
    (
        h.to_string(),
        p.parse().unwrap_or_else(|_| panic!("bad port in {s:?}")),
    )
}

/// Starts the fleet once per test binary (pg.sh is idempotent and serialised) and reads
/// `.run/fleet.env`.
pub fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let root = repo_root();
        let out = std::process::Command::new("bash")
            .arg(root.join("testing/pg.sh"))
            .arg("fleet-up")
            .current_dir(&root)
            .output()
            .expect("run testing/pg.sh fleet-up");
        assert!(
            out.status.success(),
            "testing/pg.sh fleet-up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env_text = std::fs::read_to_string(root.join(".run/fleet.env"))
            .expect("pg.sh fleet-up writes .run/fleet.env");
        let vars: HashMap<&str, &str> = env_text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let (host, port) = split_addr(vars.get("OROCHI_PG_SINGLE").expect("OROCHI_PG_SINGLE"));
        let shards = vars
            .get("OROCHI_PG_SHARDS")
            .map(|s| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(split_addr)
                    .collect()
            })
            .unwrap_or_default();
        let bindir = vars
            .get("OROCHI_PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        Fleet {
            host,
            port,
            shards,
            bindir,
        }
    })
}

/// Connection options straight to the single PostgreSQL instance (bypassing the router).
pub fn direct_opts(user: &str, password: &str, db: &str) -> PgConnectOptions {
    let f = fleet();
    PgConnectOptions::new_without_pgpass()
        .host(&f.host)
        .port(f.port)
        .username(user)
        .password(password)
        .database(db)
        .ssl_mode(PgSslMode::Disable)
}

/// A superuser connection to `db` on the single instance.
pub async fn superuser(db: &str) -> PgConnection {
    direct_opts(SUPERUSER, SUPERUSER_PASSWORD, db)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("superuser connection to {db}: {e}"))
}

static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// A fresh database (owner `app`) on the single instance, unique to this test. Databases
/// left by earlier test processes that no longer run are dropped on first use.
pub async fn scratch_db() -> String {
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let mut su = superuser("postgres").await;
    CLEANED
        .get_or_init(|| async {
            let names: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'it\\_%'")
                    .fetch_all(&mut su)
                    .await
                    .unwrap_or_default();
            let me = std::process::id();
            for (name,) in names {
                let pid = name
                    .strip_prefix("it_")
                    .and_then(|r| r.split('_').next())
                    .and_then(|p| p.parse::<u32>().ok());
                if let Some(pid) = pid {
                    if pid != me && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut su)
                        .await;
                    }
                }
            }
        })
        .await;
    let name = format!(
        "it_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE \"{name}\" OWNER app"
    )))
    .execute(&mut su)
    .await
    .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = su.close().await;
    name
}

/// A router running on the test's runtime. Dropping it stops it (fast).
pub struct Router {
    pub port: u16,
    pub admin_port: u16,
    /// The JWT gateway port, when the config has `[gateway]`.
    pub gateway_port: Option<u16>,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<Stop>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Router {
    /// `body` is everything after `[general]` (pools, ...).
    pub async fn start(body: &str) -> Router {
        Router::start_with("", body).await
    }

    /// `general` holds extra `[general]` keys, one per line.
    pub async fn start_with(general: &str, body: &str) -> Router {
        let text = format!(
            "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n{general}\n{body}"
        );
        let config = orochi_config::Config::from_str_with_env(&text, "test.toml", &|_| None)
            .unwrap_or_else(|e| panic!("test config rejected:\n{e}\n---\n{text}"));
        Router::start_app(App::new(config, None)).await
    }

    /// As [`Router::start_with`], its two-phase commits running `faults` (a hook at each
    /// protocol step, e.g. to hold a step back while the test looks at the shards).
    pub async fn start_with_twopc_faults(
        general: &str,
        body: &str,
        faults: orochi_twopc::Faults,
    ) -> Router {
        let text = format!(
            "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\n{general}\n{body}"
        );
        let config = orochi_config::Config::from_str_with_env(&text, "test.toml", &|_| None)
            .unwrap_or_else(|e| panic!("test config rejected:\n{e}\n---\n{text}"));
        let settings = orochi_twopc::Settings::from_config(None, &config.sharding.two_phase_commit);
        let mut app = App::new(config, None);
        Arc::get_mut(&mut app)
            .expect("a fresh App is not shared yet")
            .twopc = Arc::new(orochi_twopc::TwoPc::with_faults(settings, faults));
        Router::start_app(app).await
    }

    /// A router whose configuration is read from a file, so RELOAD re-reads it.
    pub async fn start_file(path: &std::path::Path) -> Router {
        let source = orochi_router::app::ConfigSource {
            config: path.to_path_buf(),
            users: None,
        };
        let config = source
            .load()
            .unwrap_or_else(|e| panic!("test config rejected:\n{e}"));
        Router::start_app(App::new(config, Some(source))).await
    }

    async fn start_app(app: Arc<App>) -> Router {
        let listeners = orochi_router::server::Listeners::bind(&app)
            .await
            .expect("bind router listeners");
        let port = listeners.client.local_addr().expect("local_addr").port();
        let admin_port = listeners.admin.local_addr().expect("local_addr").port();
        let gateway_port = listeners
            .gateway
            .as_ref()
            .map(|g| g.local_addr().expect("local_addr").port());
        let (tx, rx) = oneshot::channel::<Stop>();
        let handle = tokio::spawn(orochi_router::server::serve(
            app.clone(),
            listeners,
            async move { rx.await.unwrap_or(Stop::Fast) },
        ));
        Router {
            port,
            admin_port,
            gateway_port,
            app,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Asks the router to stop; `join` waits for it.
    pub fn stop(&mut self, how: Stop) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(how);
        }
    }

    pub async fn join(&mut self, limit: Duration) -> anyhow::Result<()> {
        let h = self.handle.take().expect("router already joined");
        match tokio::time::timeout(limit, h).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(anyhow::anyhow!("router task panicked: {e}")),
            Err(_) => Err(anyhow::anyhow!("router did not stop within {limit:?}")),
        }
    }

    pub fn opts(&self, user: &str, password: &str, db: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(user)
            .password(password)
            .database(db)
            .ssl_mode(PgSslMode::Disable)
    }

    /// A sqlx connection as `app` through the router.
    pub async fn connect(&self, db: &str) -> PgConnection {
        self.opts(APP_USER, APP_PASSWORD, db)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to router as app/{db}: {e}"))
    }

    /// A raw protocol client as the trust user.
    pub async fn raw(&self, db: &str) -> raw::RawClient {
        raw::RawClient::connect(self.port, TRUST_USER, db, &[])
            .await
            .unwrap_or_else(|e| panic!("raw connect to {db}: {e:?}"))
    }

    /// Runs psql against the router (as `app` unless `user` says otherwise).
    pub async fn psql(&self, user: &str, password: &str, db: &str, args: &[&str]) -> Output {
        psql_cmd(self.port, user, password, db, args)
            .output()
            .await
            .expect("run psql")
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop(Stop::Fast);
    }
}

pub fn psql_cmd(
    port: u16,
    user: &str,
    password: &str,
    db: &str,
    args: &[&str],
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(fleet().bindir.join("psql"));
    c.arg("-X")
        .arg("-h")
        .arg("127.0.0.1")
        .arg("-p")
        .arg(port.to_string())
        .arg("-U")
        .arg(user)
        .arg("-d")
        .arg(db)
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "prefer")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    c
}

/// The `[pools.<db>]` section for the single instance with the three standard users:
/// `app` (SCRAM, plain password in config), `md5user` (config holds the md5 hash) and
/// `trusty` (no password; logs in to PostgreSQL as app).
pub fn pool_toml(db: &str, mode: &str, pool_size: usize, extra: &str) -> String {
    let f = fleet();
    let md5 = orochi_wire::md5::stored_hash(MD5_USER, MD5_PASSWORD);
    format!(
        r#"
[pools.{db}]
pool_mode = "{mode}"
{extra}

[pools.{db}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = {pool_size}

[pools.{db}.users.1]
username = "{MD5_USER}"
password = "{md5}"
pool_size = {pool_size}

[pools.{db}.users.2]
username = "{TRUST_USER}"
auth_type = "trust"
server_username = "{APP_USER}"
server_password = "{APP_PASSWORD}"
pool_size = {pool_size}

[pools.{db}.shards.0]
database = "{db}"
servers = [["{host}", {port}, "primary"]]
"#,
        host = f.host,
        port = f.port,
    )
}

/// A scratch database and a router with one pool for it.
pub async fn setup(mode: &str, pool_size: usize) -> (Router, String) {
    setup_with(mode, pool_size, "", "").await
}

pub async fn setup_with(
    mode: &str,
    pool_size: usize,
    general: &str,
    pool_extra: &str,
) -> (Router, String) {
    let db = scratch_db().await;
    let r = Router::start_with(general, &pool_toml(&db, mode, pool_size, pool_extra)).await;
    (r, db)
}

/// The SQLSTATE of a sqlx error, if it came from the database (or the router).
pub fn code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    }
}

/// Message and hint of a database error, for "is the message clear" checks.
pub fn message_and_hint(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => {
            let hint = d
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|p| p.hint())
                .unwrap_or("");
            format!("{} {}", d.message(), hint)
        }
        other => other.to_string(),
    }
}

/// Fails the test if `fut` takes longer than `secs`.
pub async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: did not finish within {secs} s"),
    }
}

/// One text value from a query (simple protocol, so it also works mid-transaction).
pub async fn one(conn: &mut PgConnection, sql: &str) -> String {
    scalar(conn, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn scalar(conn: &mut PgConnection, sql: &str) -> Result<String, sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut *conn)
        .await?;
    row.try_get::<String, _>(0)
}

/// One statement on `conn` after a cross-shard COMMIT on it: it waits for that
/// commit's COMMIT PREPAREDs, which run off the client's path
/// (`client/pending_commits.rs`); after it, every connection sees the whole commit.
pub async fn settle(conn: &mut PgConnection) {
    assert_eq!(one(conn, "SELECT 'settled'::text").await, "settled");
}

pub async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
