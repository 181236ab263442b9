//! Our SHOW headers against a real PgBouncer 1.18: for every command both have, our
//! column list starts with PgBouncer's, name for name and type for type.
//!
//! PgBouncer runs as the `postgres` user when we are root (it refuses root too), on a
//! free port, with a throw-away ini and userlist, in front of the test fleet's
//! PostgreSQL (`testing/pg.sh fleet-up`).

mod common;

use common::client::Client;
use common::fake::{client, node, pool, FakeView};
use common::{start_console, ADMIN_PASSWORD};
use orochi_admin::{AdminCreds, ClientState, NodeStatus, Show};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const BOUNCER_PASSWORD: &str = "bouncer-admin-pw";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

/// `host:port` of the fleet's single PostgreSQL.
fn fleet_single() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("testing/pg.sh"))
        .arg("fleet-up")
        .current_dir(&root)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "fleet-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("OROCHI_PG_SINGLE=").map(str::to_string))
        .expect("fleet-up prints OROCHI_PG_SINGLE")
}

/// A daemonized PgBouncer; stopped (SIGTERM via its pidfile) on drop.
struct Bouncer {
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    fn start(backend: &str) -> Bouncer {
        let (host, pg_port) = backend.split_once(':').unwrap();
        let mut last_log = String::new();
        for attempt in 0..5 {
            let dir = std::env::temp_dir()
                .join(format!("orochi-admin-pgb-{}-{attempt}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            // The postgres user writes its pid and log here.
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let ini = format!(
                "[databases]\napp = host={host} port={pg_port} dbname=app\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = md5\nauth_file = {d}/users.txt\nadmin_users = admin\n\
                 pidfile = {d}/pgbouncer.pid\nlogfile = {d}/pgbouncer.log\n",
                d = dir.display()
            );
            std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
            std::fs::write(
                dir.join("users.txt"),
                format!("\"admin\" \"{BOUNCER_PASSWORD}\"\n\"app\" \"secret\"\n"),
            )
            .unwrap();
            let status = as_postgres("pgbouncer")
                .arg("-d")
                .arg(dir.join("pgbouncer.ini"))
                .status()
                .expect("pgbouncer is installed");
            let bouncer = Bouncer {
                dir: dir.clone(),
                port,
            };
            if status.success() {
                for _ in 0..100 {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return bouncer;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            last_log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
        }
        panic!("pgbouncer did not start:\n{last_log}");
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let pid = pid.trim();
            let _ = Command::new("kill").arg(pid).status();
            // Wait for it to be gone, so test runs never overlap with a stale one.
            for _ in 0..100 {
                let alive = Command::new("kill")
                    .args(["-0", pid])
                    .stderr(std::process::Stdio::null())
                    .status();
                if !alive.map(|s| s.success()).unwrap_or(false) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_start_with_pgbouncers() {
    let backend = tokio::task::spawn_blocking(fleet_single).await.unwrap();
    let bouncer = tokio::task::spawn_blocking(move || Bouncer::start(&backend))
        .await
        .unwrap();

    let view = FakeView::new();
    *view.pools.lock().unwrap() = vec![pool("app", "app", 0, 1, 1, 1)];
    *view.clients.lock().unwrap() = vec![client(1, "app", "app", ClientState::Active)];
    *view.nodes.lock().unwrap() = vec![node("app", 0, 5432, NodeStatus::Up)];
    let (port, _t, _) = start_console(view, AdminCreds::new("admin", ADMIN_PASSWORD)).await;
    let mut ours = Client::connect(port, "admin", ADMIN_PASSWORD, "pgbouncer")
        .await
        .unwrap();
    let mut theirs = Client::connect(bouncer.port, "admin", BOUNCER_PASSWORD, "pgbouncer")
        .await
        .unwrap();

    let mut compared = 0;
    for show in Show::ALL {
        let sql = format!("SHOW {}", show.keyword());
        let their = theirs.query(&sql).await;
        if their.error.is_some() {
            // A command of ours PgBouncer does not have (SHARDS, TRANSACTIONS, POOL_NODES).
            continue;
        }
        let our = ours.query(&sql).await;
        assert_eq!(our.error, None, "{sql}");
        let theirs_cols: Vec<(String, u32)> = their
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.type_oid))
            .collect();
        let ours_cols: Vec<(String, u32)> = our
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.type_oid))
            .collect();
        if show == Show::Help {
            // PgBouncer answers SHOW HELP with notices only.
            continue;
        }
        assert!(
            ours_cols.len() >= theirs_cols.len()
                && ours_cols[..theirs_cols.len()] == theirs_cols[..],
            "{sql}:\n ours   {ours_cols:?}\n theirs {theirs_cols:?}"
        );
        assert_eq!(our.tags, their.tags, "{sql}");
        compared += 1;
    }
    // POOLS CLIENTS SERVERS STATS DATABASES CONFIG VERSION LISTS
    assert_eq!(compared, 8);

    // LISTS: the same list names in the same order.
    let their: Vec<_> = theirs
        .query("SHOW LISTS")
        .await
        .rows
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let our: Vec<_> = ours
        .query("SHOW LISTS")
        .await
        .rows
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(our, their);
    drop(bouncer);
}
