//! The admin console and metrics against a live router: values follow real traffic
//! (cl_waiting, counters), and PAUSE/RESUME, RELOAD, RECONNECT, KILL_CLIENT act on it.

mod common;

use common::*;
use orochi_router::app::{App, ConfigSource};
use orochi_router::signals::Stop;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const ADMIN_PASSWORD: &str = "adminpw";

/// A router started from a config *file* (so RELOAD has something to re-read), with
/// its admin and metrics ports known.
struct Live {
    app: Arc<App>,
    port: u16,
    admin: u16,
    metrics: u16,
    file: PathBuf,
    _stop: oneshot::Sender<Stop>,
}

fn config_text(db: &str, pool_size: usize) -> String {
    format!(
        "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\nadmin_password = \"{ADMIN_PASSWORD}\"\nconnect_timeout = 10000\n{}",
        pool_toml(db, "transaction", pool_size, "")
    )
}

async fn live(db: &str, pool_size: usize) -> Live {
    live_with(db, &config_text(db, pool_size)).await
}

async fn live_with(db: &str, text: &str) -> Live {
    let dir = repo_root().join(".run").join("test-admin");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{db}.toml"));
    std::fs::write(&file, text).unwrap();
    let source = ConfigSource {
        config: file.clone(),
        users: None,
    };
    let app = App::new(source.load().unwrap(), Some(source));
    let l = orochi_router::server::Listeners::bind(&app).await.unwrap();
    let (port, admin, metrics) = (
        l.client.local_addr().unwrap().port(),
        l.admin.local_addr().unwrap().port(),
        l.metrics.local_addr().unwrap().port(),
    );
    let (tx, rx) = oneshot::channel::<Stop>();
    tokio::spawn(orochi_router::server::serve(app.clone(), l, async move {
        rx.await.unwrap_or(Stop::Fast)
    }));
    Live {
        app,
        port,
        admin,
        metrics,
        file,
        _stop: tx,
    }
}

impl Live {
    async fn admin(&self, sql: &str) -> (bool, String, String) {
        let out = psql_cmd(
            self.admin,
            "admin",
            ADMIN_PASSWORD,
            "orochi",
            &["-At", "-F", "|", "-c", sql],
        )
        .output()
        .await
        .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn client(&self, db: &str) -> sqlx::PgConnection {
        use sqlx::ConnectOptions;
        sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username(APP_USER)
            .password(APP_PASSWORD)
            .database(db)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
            .connect()
            .await
            .unwrap()
    }

    async fn http(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics))
            .await
            .unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, out)
    }
}

/// Column `name` of the `SHOW POOLS` row of `db`.
async fn pools_value(l: &Live, db: &str, name: &str) -> i64 {
    let (ok, text, err) = l.admin("SHOW POOLS").await;
    assert!(ok, "SHOW POOLS failed: {err}");
    let header = psql_header(l, "SHOW POOLS").await;
    let idx = header.iter().position(|h| h == name).unwrap();
    text.lines()
        .map(|r| r.split('|').collect::<Vec<_>>())
        .find(|r| r[0] == db)
        .map(|r| r[idx].parse().unwrap())
        .unwrap_or_else(|| panic!("no pool {db} in {text}"))
}

async fn psql_header(l: &Live, sql: &str) -> Vec<String> {
    let out = psql_cmd(
        l.admin,
        "admin",
        ADMIN_PASSWORD,
        "orochi",
        &["-A", "-F", "|", "-c", sql],
    )
    .output()
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .split('|')
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_clients_and_counters_are_live() {
    let db = scratch_db().await;
    let l = live(&db, 1).await;
    let mut a = l.client(&db).await;
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SELECT 1").await;
    let port_db = db.clone();
    let waiting = {
        let l2 = l.client(&port_db).await;
        tokio::spawn(async move {
            let mut b = l2;
            one(&mut b, "SELECT 'b done'").await
        })
    };
    within(10, "cl_waiting shows 1", async {
        while pools_value(&l, &db, "cl_waiting").await != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(pools_value(&l, &db, "sv_active").await, 1);
    let (_, metrics) = l.http("/metrics").await;
    assert!(
        metrics.contains(&format!("orochi_pgdog_client_waiting{{pool=\"{db}\",role=\"primary\",shard=\"0\",user=\"app\"}} 1")),
        "metrics do not show the waiting client"
    );
    exec(&mut a, "COMMIT").await;
    assert_eq!(
        within(10, "waiting client", waiting).await.unwrap(),
        "b done"
    );
    assert_eq!(pools_value(&l, &db, "cl_waiting").await, 0);

    let (_, stats, _) = l.admin("SHOW STATS").await;
    let queries = |s: &str| -> u64 {
        s.lines()
            .find(|r| r.starts_with(&format!("{db}|")))
            .map(|r| r.split('|').nth(2).unwrap().parse().unwrap())
            .unwrap()
    };
    let before = queries(&stats);
    for _ in 0..5 {
        exec(&mut a, "SELECT 1").await;
    }
    let (_, stats, _) = l.admin("SHOW STATS").await;
    assert!(
        queries(&stats) >= before + 5,
        "total_query_count did not move"
    );
    let (code, _) = l.http("/health").await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_waits_for_transactions_and_holds_new_ones() {
    let db = scratch_db().await;
    let l = live(&db, 2).await;
    let mut a = l.client(&db).await;
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SELECT 1").await;
    let admin_port = l.admin;
    let pause = tokio::spawn(async move {
        psql_cmd(
            admin_port,
            "admin",
            ADMIN_PASSWORD,
            "orochi",
            &["-c", "PAUSE"],
        )
        .output()
        .await
        .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pause.is_finished(),
        "PAUSE returned while a transaction was running"
    );
    exec(&mut a, "COMMIT").await;
    let out = within(10, "PAUSE", pause).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new transaction is held, without an error, until RESUME.
    let held = tokio::spawn(async move { one(&mut a, "SELECT 'after resume'").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "a query ran while paused");
    let (ok, _, err) = l.admin("RESUME").await;
    assert!(ok, "{err}");
    assert_eq!(
        within(10, "held query", held).await.unwrap(),
        "after resume"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_applies_or_rejects_whole_configs() {
    let db = scratch_db().await;
    let l = live(&db, 2).await;
    let mut a = l.client(&db).await;
    exec(&mut a, "SELECT 1").await;
    // A bad file: the old config stays and the admin sees file:line.
    std::fs::write(&l.file, config_text(&db, 2) + "\nbogus_key = 1\n").unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(!ok, "RELOAD of a bad config succeeded");
    let name = l.file.display().to_string();
    assert!(err.contains(&name) && err.contains("bogus_key"), "{err}");
    assert_eq!(pools_value(&l, &db, "pool_size").await, 2);
    // A good one with a new pool size applies, and the connected client keeps working.
    std::fs::write(&l.file, config_text(&db, 7)).unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(ok, "{err}");
    assert_eq!(pools_value(&l, &db, "pool_size").await, 7);
    assert_eq!(one(&mut a, "SELECT 'still here'").await, "still here");
    assert_eq!(l.app.config().pools[&db].users[0].pool_size, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnect_and_kill_client() {
    let db = scratch_db().await;
    let l = live(&db, 1).await;
    let mut a = l.client(&db).await;
    let pid1 = one(&mut a, "SELECT pg_backend_pid()::text").await;
    assert_eq!(one(&mut a, "SELECT pg_backend_pid()::text").await, pid1);
    let (ok, _, err) = l.admin("RECONNECT").await;
    assert!(ok, "{err}");
    let pid2 = one(&mut a, "SELECT pg_backend_pid()::text").await;
    assert_ne!(
        pid1, pid2,
        "RECONNECT did not replace the server connection"
    );

    let (_, clients, _) = l.admin("SHOW CLIENTS").await;
    let header = psql_header(&l, "SHOW CLIENTS").await;
    let id_col = header.iter().rposition(|h| h == "id").unwrap();
    let id = clients
        .lines()
        .next()
        .unwrap()
        .split('|')
        .nth(id_col)
        .unwrap()
        .to_string();
    let (ok, _, err) = l.admin(&format!("KILL_CLIENT {id}")).await;
    assert!(ok, "{err}");
    let e = scalar(&mut a, "SELECT 1::text").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        code(&e).as_deref() == Some("57P01")
            || msg.contains("KILL_CLIENT")
            || msg.contains("closed"),
        "{msg}"
    );
    let (ok, _, err) = l.admin("SHOW NOPE").await;
    assert!(!ok && err.contains("SHOW POOLS"), "{err}");
}

/// A pool on one server of the fleet, with `users` sections as given.
fn server_config(db: &str, host: &str, port: u16, users: &str) -> String {
    format!(
        "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\nadmin_password = \"{ADMIN_PASSWORD}\"\n\n[pools.{db}]\npool_mode = \"transaction\"\n{users}\n[pools.{db}.shards.0]\ndatabase = \"{db}\"\nservers = [[\"{host}\", {port}, \"primary\"]]\n"
    )
}

const USERS_BEFORE: &str = "[pools.DB.users.0]\nusername = \"app\"\npassword = \"secret\"\npool_size = 2\n\n[pools.DB.users.1]\nusername = \"md5user\"\npassword = \"md5pass\"\npool_size = 2\n";
const USERS_AFTER: &str = "[pools.DB.users.0]\nusername = \"app\"\npassword = \"secret\"\npool_size = 2\n\n[pools.DB.users.1]\nusername = \"added\"\npassword = \"pw2\"\nserver_username = \"app\"\nserver_password = \"secret\"\npool_size = 2\n";

#[tokio::test(flavor = "multi_thread")]
async fn reload_moves_servers_and_users_without_dropping_clients() {
    let f = fleet();
    let db = scratch_db().await;
    let (shard_host, shard_port) = f.shards[0].clone();
    // The same database on a second server (the shard instance).
    let out = tokio::process::Command::new(f.bindir.join("psql"))
        .args([
            "-X",
            "-h",
            &shard_host,
            "-p",
            &shard_port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ])
        .arg("-c")
        .arg(format!("DROP DATABASE IF EXISTS {db}"))
        .arg("-c")
        .arg(format!("CREATE DATABASE {db} OWNER app"))
        .env("PGPASSWORD", SUPERUSER_PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut l = live(&db, 2).await;
    let before = server_config(&db, &f.host, f.port, &USERS_BEFORE.replace("DB", &db));
    std::fs::write(&l.file, &before).unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(ok, "{err}");
    l.file = l.file.clone();

    let mut a = l.client(&db).await;
    exec(&mut a, "BEGIN").await;
    assert_eq!(
        one(&mut a, "SELECT inet_server_port()::text").await,
        f.port.to_string()
    );

    let after = server_config(
        &db,
        &shard_host,
        shard_port,
        &USERS_AFTER.replace("DB", &db),
    );
    std::fs::write(&l.file, &after).unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(ok, "{err}");

    // The running transaction finishes on the old server...
    assert_eq!(
        one(&mut a, "SELECT inet_server_port()::text").await,
        f.port.to_string()
    );
    exec(&mut a, "COMMIT").await;
    // ...and the next checkout of the same, still connected client uses the new one.
    assert_eq!(
        one(&mut a, "SELECT inet_server_port()::text").await,
        shard_port.to_string()
    );

    // The added user can log in; the removed one cannot.
    let psql = |user: &'static str, pw: &'static str| {
        psql_cmd(
            l.port,
            user,
            pw,
            &db,
            &["-At", "-c", "SELECT inet_server_port()"],
        )
        .output()
    };
    let out = psql("added", "pw2").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        shard_port.to_string()
    );
    let out = psql("md5user", "md5pass").await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such user"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_from_the_console_is_graceful() {
    let db = scratch_db().await;
    let l = live(&db, 2).await;
    let mut idle = l.client(&db).await;
    let mut busy = l.client(&db).await;
    exec(&mut busy, "BEGIN").await;
    exec(&mut busy, "SELECT 1").await;
    let (ok, _, err) = l.admin("SHUTDOWN").await;
    assert!(ok, "{err}");
    // The idle client is told 57P01; the one in a transaction may still commit.
    within(10, "idle client disconnected", async {
        loop {
            match scalar(&mut idle, "SELECT 'x'").await {
                Err(e) => {
                    let m = e.to_string();
                    assert!(
                        code(&e).as_deref() == Some("57P01")
                            || m.contains("closed")
                            || m.contains("terminating"),
                        "{m}"
                    );
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    // Draining: probes fail so load balancers stop sending new clients.
    let (code_health, _) = l.http("/health").await;
    assert_eq!(code_health, 503);
    exec(&mut busy, "COMMIT").await;
    assert!(scalar(&mut busy, "SELECT 'after'").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_adds_and_removes_pools() {
    let db = scratch_db().await;
    let other = scratch_db().await;
    let l = live(&db, 2).await;
    let mut a = l.client(&db).await;
    exec(&mut a, "SELECT 1").await;
    // Add a pool: new clients can use it at once.
    std::fs::write(
        &l.file,
        config_text(&db, 2) + &pool_toml(&other, "transaction", 2, ""),
    )
    .unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(ok, "{err}");
    let mut b = l.client(&other).await;
    assert_eq!(one(&mut b, "SELECT current_database()::text").await, other);
    // Remove the first pool: new logins are refused with 3D000, while the client that
    // is already connected keeps working on the definition it logged in with.
    std::fs::write(
        &l.file,
        format!(
            "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\nadmin_password = \"{ADMIN_PASSWORD}\"\n{}",
            pool_toml(&other, "transaction", 2, "")
        ),
    )
    .unwrap();
    let (ok, _, err) = l.admin("RELOAD").await;
    assert!(ok, "{err}");
    let out = psql_cmd(l.port, APP_USER, APP_PASSWORD, &db, &["-c", "SELECT 1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert_eq!(one(&mut a, "SELECT 'still served'").await, "still served");
    let (_, pools, _) = l.admin("SHOW POOLS").await;
    assert!(
        !pools.lines().any(|r| r.starts_with(&format!("{db}|"))),
        "{pools}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_exists_from_start_up_at_zero() {
    // A sharded pool with two-phase commit, scraped before any client connected.
    let db = common::shards::two_shard_db().await;
    let text = format!(
        "[general]\nhost = \"127.0.0.1\"\nport = 0\nadmin_port = 0\nmetrics_port = 0\nadmin_password = \"{ADMIN_PASSWORD}\"\n{}",
        common::shards::pool_toml_two_shards(&db, "")
    );
    let l = live_with(&db, &text).await;
    let (code, body) = l.http("/metrics").await;
    assert_eq!(code, 200);
    let pool = format!("pool=\"{db}\"");
    let series = |name: &str| -> Vec<&str> {
        body.lines()
            .filter(|x| {
                x.starts_with(name) && x[name.len()..].starts_with('{') && x.contains(&pool)
            })
            .collect()
    };
    for name in [
        "orochi_pgdog_connections_active",
        "orochi_pgdog_connections_idle",
        "orochi_pgdog_pool_size",
        "orochi_pgdog_pool_available",
        "orochi_pgdog_client_waiting",
        "orochi_pgdog_queries_total",
        "orochi_pgdog_query_duration_seconds_count",
        "orochi_pgdog_wait_duration_seconds_count",
        "orochi_pgdog_errors_total",
        "orochi_pgdog_server_bans_total",
        "orochi_pgdog_cross_shard_queries_total",
        "orochi_pgdog_2pc_commits_total",
        "orochi_pgdog_2pc_rollbacks_total",
        "orochi_pgdog_2pc_recovered_total",
        "orochi_pgdog_2pc_in_doubt",
        "orochi_pgdog_2pc_sweeper_lock_unavailable_total",
    ] {
        let found = series(name);
        assert!(
            !found.is_empty(),
            "{name} has no series for the pool:\n{body}"
        );
        if name.ends_with("_total") || name.ends_with("_count") {
            assert!(
                found.iter().all(|x| x.ends_with(" 0")),
                "{name} starts at 0: {found:?}"
            );
        }
    }
    // Both shards' series.
    for shard in ["0", "1"] {
        assert!(series("orochi_pgdog_queries_total")
            .iter()
            .any(|x| x.contains(&format!("shard=\"{shard}\""))));
    }
}

/// A client waiting at a PAUSE can give up as it can while waiting for a connection:
/// its cancel answers the statement 57014 (simple and extended protocol; it never runs)
/// and the session goes on; a client that closes its connection leaves, and its
/// statement does not run at RESUME.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_waiting_at_a_pause_can_cancel_or_leave() {
    use common::raw::{bind, execute, first_error, parse, ready_status, tags, RawClient};
    use orochi_wire::FrontendMessage;
    let db = scratch_db().await;
    let l = live(&db, 2).await;
    let mut w = RawClient::connect(l.port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    w.rows("CREATE TABLE t (x int)").await;
    let (ok, _, err) = l.admin("PAUSE").await;
    assert!(ok, "{err}");
    let simple = [FrontendMessage::Query("INSERT INTO t VALUES (1)".into())];
    let extended = [
        parse("", "INSERT INTO t VALUES (2)"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ];
    for (msgs, what) in [(&simple[..], "simple"), (&extended[..], "extended")] {
        w.send(msgs).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = std::time::Instant::now();
        w.cancel(l.port).await;
        let ms = w.until_ready().await;
        let code = first_error(&ms).map(|e| e.code.clone());
        assert_eq!(code.as_deref(), Some("57014"), "{what}: {}", tags(&ms));
        assert!(asked.elapsed() < Duration::from_secs(5), "{what}");
        assert_eq!(ready_status(&ms), Some(b'I'), "{what}");
    }
    // A client that leaves while its INSERT waits.
    let mut gone = RawClient::connect(l.port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    gone.send(&[FrontendMessage::Query("INSERT INTO t VALUES (3)".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, _, err) = l.admin("RESUME").await;
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // None of the three ran; the cancelled session still works.
    assert_eq!(
        w.rows("SELECT count(*) FROM t").await,
        vec!["0".to_string()]
    );
}

/// `errors_total` counts errors sent to clients, the router's own among them. The
/// statement the router sends a server to fail its transaction after an error of the
/// router's own (`fail_server_tx.rs`) fails with a syntax error no client sees: not
/// counted. The router's refusal (42501) and a client's own syntax error are.
#[tokio::test(flavor = "multi_thread")]
async fn the_routers_own_failing_statement_is_not_a_counted_error() {
    let db = scratch_db().await;
    let l = live(&db, 1).await;
    let mut a = l.client(&db).await;
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SELECT 1").await;
    // Refused by the router (its own two-phase gids): the transaction is failed.
    let e = sqlx::raw_sql("ROLLBACK PREPARED 'orochi_not_yours'")
        .execute(&mut a)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("orochi"), "{e}");
    let e = sqlx::raw_sql("SELECT 1").execute(&mut a).await.unwrap_err();
    assert!(e.to_string().contains("aborted"), "{e}");
    exec(&mut a, "ROLLBACK").await;
    sqlx::raw_sql("SELEC 1").execute(&mut a).await.unwrap_err();
    assert_eq!(
        errors_counted(&l, &db, "42").await,
        2,
        "the router's refusal (42501) and the client's SELEC, not the router's failing \
         statement (25P02 is class 25)"
    );
}

/// The value of `errors_total` for `db` and SQLSTATE `class` (0 when absent).
async fn errors_counted(l: &Live, db: &str, class: &str) -> u64 {
    let (_, metrics) = l.http("/metrics").await;
    let series = format!("orochi_pgdog_errors_total{{class=\"{class}\",pool=\"{db}\"}} ");
    metrics
        .lines()
        .find_map(|x| x.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Errors the router answers itself are errors sent to clients too: a client that timed
/// out waiting for a server (53300, class 53, which every pool's series shows from
/// start-up) is counted, once, and so is a duplicate prepared statement name (42P05),
/// which the router answers without a server.
#[tokio::test(flavor = "multi_thread")]
async fn errors_the_router_answers_itself_are_counted() {
    let db = scratch_db().await;
    let text = config_text(&db, 1).replace(
        "connect_timeout = 10000\n",
        "connect_timeout = 10000\nquery_wait_timeout = 1\n",
    );
    let l = live_with(&db, &text).await;
    assert_eq!(errors_counted(&l, &db, "53").await, 0);
    let mut holder = l.client(&db).await;
    exec(&mut holder, "BEGIN").await;
    exec(&mut holder, "SELECT 1").await;
    let mut waiter = l.client(&db).await;
    let e = sqlx::raw_sql("SELECT 1")
        .execute(&mut waiter)
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("53300"), "{e}");
    exec(&mut holder, "COMMIT").await;
    // The router's own answers (class 53 here) are counted after the turn that sent them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(errors_counted(&l, &db, "53").await, 1);

    use common::raw::{first_error, parse, RawClient};
    use orochi_wire::FrontendMessage;
    let mut raw = RawClient::connect(l.port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    raw.send(&[parse("s1", "SELECT 1"), FrontendMessage::Sync])
        .await;
    raw.until_ready().await;
    raw.send(&[parse("s1", "SELECT 1"), FrontendMessage::Sync])
        .await;
    let answer = raw.until_ready().await;
    assert_eq!(
        first_error(&answer).map(|f| f.code.as_str()),
        Some("42P05"),
        "{answer:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(errors_counted(&l, &db, "42").await, 1);
}
