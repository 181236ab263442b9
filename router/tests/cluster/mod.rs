//! Streaming-replication clusters of the replica tests' own (included with `mod cluster;`
//! next to `mod common;`), and a TCP forwarder that stands for a network endpoint.
//!
//! The fleet's instances are shared by every test binary; these tests stop, promote and
//! pause servers, so each scenario gets its own primary and replicas (`testing/pg.sh`,
//! names `PREFIX_p`, `PREFIX_r1`, ...; ports from the fleet base port + an offset, so
//! several checkouts with different base ports do not collide).
#![allow(dead_code)]

use crate::common::*;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Runs `testing/pg.sh ARGS...` and fails the test if it fails.
pub async fn pg_sh(args: &[&str]) {
    let out = tokio::process::Command::new("bash")
        .arg(repo_root().join("testing/pg.sh"))
        .args(args)
        .output()
        .await
        .expect("run testing/pg.sh");
    assert!(
        out.status.success(),
        "pg.sh {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One PostgreSQL instance of a cluster.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub port: u16,
}

/// A primary and its streaming replicas.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub primary: Node,
    pub replicas: Vec<Node>,
}

impl Cluster {
    /// `PREFIX_p` on base+`offset`, replicas `PREFIX_r1..` on the next ports, all running
    /// and replicas streaming from the primary. `fresh` destroys any earlier instances
    /// first (a test that promotes leaves a different topology behind).
    pub async fn up(prefix: &str, offset: u16, replicas: usize, fresh: bool) -> Cluster {
        let base = fleet().port;
        let primary = Node {
            name: format!("{prefix}_p"),
            port: base + offset,
        };
        let replicas: Vec<Node> = (1..=replicas)
            .map(|i| Node {
                name: format!("{prefix}_r{i}"),
                port: base + offset + i as u16,
            })
            .collect();
        if fresh {
            for n in std::iter::once(&primary).chain(&replicas) {
                pg_sh(&["destroy", &n.name]).await;
            }
        }
        pg_sh(&["init", &primary.name, &primary.port.to_string()]).await;
        pg_sh(&["start", &primary.name]).await;
        for r in &replicas {
            pg_sh(&["replica", &r.name, &primary.name, &r.port.to_string()]).await;
        }
        let c = Cluster { primary, replicas };
        // A replica left paused by an interrupted run would never catch up.
        for r in &c.replicas {
            let mut su = c.su(r, "postgres").await;
            sqlx::raw_sql("SELECT pg_wal_replay_resume()")
                .execute(&mut su)
                .await
                .unwrap();
        }
        c
    }

    pub fn r(&self, i: usize) -> &Node {
        &self.replicas[i - 1]
    }

    pub fn opts(
        &self,
        node: &Node,
        user: &str,
        password: &str,
        db: &str,
    ) -> sqlx::postgres::PgConnectOptions {
        sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(node.port)
            .username(user)
            .password(password)
            .database(db)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
    }

    /// A superuser connection straight to `node`.
    pub async fn su(&self, node: &Node, db: &str) -> PgConnection {
        self.opts(node, SUPERUSER, SUPERUSER_PASSWORD, db)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("superuser connection to {}: {e}", node.name))
    }

    /// A fresh database owned by `app` on the primary, present on every replica when
    /// this returns.
    pub async fn scratch_db(&self, tag: &str) -> String {
        let name = format!("rt_{tag}_{}", std::process::id());
        let mut su = self.su(&self.primary, "postgres").await;
        // Databases of test processes that are gone.
        let old: Vec<(String,)> =
            sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'rt\\_%'")
                .fetch_all(&mut su)
                .await
                .unwrap_or_default();
        for (db,) in old {
            let pid = db.rsplit('_').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| {
                p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
            }) {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
                )))
                .execute(&mut su)
                .await;
            }
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut su)
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" OWNER app"
        )))
        .execute(&mut su)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = su.close().await;
        for r in &self.replicas {
            self.wait_for(r, &name, "SELECT 1").await;
        }
        name
    }

    /// Waits until `sql` succeeds on `node` in `db` (a table or row has replicated).
    pub async fn wait_for(&self, node: &Node, db: &str, sql: &str) {
        for _ in 0..200 {
            if let Ok(mut c) = self
                .opts(node, SUPERUSER, SUPERUSER_PASSWORD, db)
                .connect()
                .await
            {
                let ok = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_optional(&mut c)
                    .await
                    .is_ok_and(|r| r.is_some());
                let _ = c.close().await;
                if ok {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{sql:?} never succeeded on {} in {db}", node.name);
    }

    /// `servers = [...]` for the router: (port, role, weight) per server.
    pub fn servers_line(servers: &[(u16, &str, u32)]) -> String {
        let list: Vec<String> = servers
            .iter()
            .map(|(p, role, w)| format!("[\"127.0.0.1\", {p}, \"{role}\", {w}]"))
            .collect();
        format!("servers = [{}]", list.join(", "))
    }
}

/// Router configuration: the standard users of `pool_toml`, the given servers, pool keys
/// in `pool_extra`, and `[query_routing]` keys in `routing`.
pub fn router_config(db: &str, servers: &str, pool_extra: &str, routing: &str) -> String {
    let f = fleet();
    pool_toml(db, "transaction", 8, pool_extra).replace(
        &format!("servers = [[\"{}\", {}, \"primary\"]]", f.host, f.port),
        servers,
    ) + &format!("\n[query_routing]\n{routing}\n")
}

/// `[general]` keys for fast health checks.
pub fn fast_health(delay_ms: u64, ban_s: u64) -> String {
    format!("healthcheck_delay = {delay_ms}\nhealthcheck_timeout = 1000\nban_time = {ban_s}\nconnect_timeout = 2000\n")
}

/// The port of the server that answered.
pub async fn served_by(c: &mut PgConnection, sql: &str) -> Result<u16, sqlx::Error> {
    scalar(c, sql)
        .await
        .map(|v| v.parse().expect("a port number"))
}

pub const PORT_Q: &str = "SELECT inet_server_port()::text";

/// Polls `cond` every 50 ms for up to `secs`; panics with `what` if it never holds.
pub async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {secs} s");
}

/// A TCP forwarder on 127.0.0.1: one network endpoint of a server, which a test can
/// take down (refusing connections, cutting open ones), bring back, or point elsewhere.
pub struct Forwarder {
    pub port: u16,
    upstream: Arc<AtomicU16>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    listener: Mutex<Option<AbortHandle>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
}

impl Forwarder {
    pub async fn start(upstream: u16) -> Forwarder {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let f = Forwarder {
            port: l.local_addr().unwrap().port(),
            upstream: Arc::new(AtomicU16::new(upstream)),
            conns: Arc::new(Mutex::new(Vec::new())),
            listener: Mutex::new(None),
            accepted: Arc::new(AtomicU64::new(0)),
        };
        f.serve(l);
        f
    }

    fn serve(&self, l: TcpListener) {
        let upstream = self.upstream.clone();
        let conns = self.conns.clone();
        let accepted = self.accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let port = upstream.load(Ordering::Relaxed);
                let pipe = tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns.lock().unwrap().push(pipe.abort_handle());
            }
        });
        *self.listener.lock().unwrap() = Some(task.abort_handle());
    }

    /// New connections go to `port`; open ones stay where they are.
    pub fn set_upstream(&self, port: u16) {
        self.upstream.store(port, Ordering::Relaxed);
    }

    /// Cuts every open connection.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// The endpoint goes away: connections are refused, open ones cut.
    pub fn close(&self) {
        if let Some(l) = self.listener.lock().unwrap().take() {
            l.abort();
        }
        self.cut();
    }

    /// The endpoint comes back on the same port.
    pub async fn reopen(&self) {
        let mut tries = 0;
        let l = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebind forwarder port {}: {e}", self.port),
            }
        };
        self.serve(l);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.close();
    }
}
