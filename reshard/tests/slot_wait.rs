//! A transaction left open on a slot's server holds the slot back (PostgreSQL starts a
//! logical slot only once every transaction running on its server has ended): `start`
//! names it while it waits, then goes on by itself once it ends (testing/reshard.sh
//! servers).

mod support;

use std::process::Stdio;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// A session of database `postgres` on the server of `port`, idle inside a transaction
/// that holds a transaction id, and its pid.
async fn idle_in_transaction(port: u16) -> (tokio_postgres::Client, i32) {
    let idle = superuser(port, "postgres").await;
    idle.batch_execute("BEGIN").await.unwrap();
    let pid: i32 = idle
        .query_one("SELECT pg_backend_pid(), txid_current()", &[])
        .await
        .unwrap()
        .get(0);
    (idle, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn start_names_the_transaction_its_slot_waits_for() {
    let c = Cluster::new("xsw", &[0, 1], &[1, 0]).await;
    let target = c.target_arg();
    // Idle in a transaction that holds an id, in another database of old shard 0's
    // server: the first link's slot is created there.
    let (idle, pid) = idle_in_transaction(c.old[0].port).await;

    let mut cmd = c.reshard_cmd(&["start", "--target", &target]);
    cmd.stderr(Stdio::piped()).stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let want = format!("pid {pid} in postgres, idle in transaction for ");
    let mut seen = Vec::new();
    let named = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(l)) = lines.next_line().await {
            eprintln!("start> {l}");
            let hit = l.contains(&want) && l.contains("waiting");
            seen.push(l);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(named, Ok(true)),
        "start did not name pid {pid}:\n{}",
        seen.join("\n")
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "start ended while the transaction was open"
    );

    idle.batch_execute("COMMIT").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(l)) = lines.next_line().await {
            eprintln!("start> {l}");
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("start did not go on once the transaction ended");
    assert!(status.success(), "start failed after the wait");
    let st = c.reshard(&["status"]).await;
    assert!(text(&st).contains("caught_up"), "{}", text(&st));
    c.cleanup().await;
}

/// The copy's own slots (created by the subscriptions' table-copy workers through a
/// walsender) wait the same way; `start` names what they wait for too
/// (`slot_wait::slots_waiting`), and so does `reshard status`. A walsender is made to wait here with psql.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn a_waiting_copy_slot_names_what_it_waits_for() {
    use orochi_reshard::topology::{Endpoint, Login};
    let port = servers()[1];
    let admin = superuser(port, "postgres").await;
    let _ = admin
        .batch_execute("SELECT pg_drop_replication_slot('xsw_copy_probe') FROM pg_replication_slots WHERE slot_name = 'xsw_copy_probe'")
        .await;
    let (idle, pid) = idle_in_transaction(port).await;
    let bindir = std::env::var("OROCHI_PG_BINDIR").unwrap_or_default();
    let psql = if bindir.is_empty() {
        "psql".to_string()
    } else {
        format!("{bindir}/psql")
    };
    let mut walsender = tokio::process::Command::new(psql)
        .arg(format!(
            "host=127.0.0.1 port={port} dbname=postgres user=postgres password=postgres replication=database"
        ))
        .args(["-c", "CREATE_REPLICATION_SLOT xsw_copy_probe LOGICAL pgoutput"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let ep = Endpoint {
        host: "127.0.0.1".into(),
        port,
        database: "postgres".into(),
    };
    let login = Login {
        user: "postgres".into(),
        password: Some("postgres".into()),
    };
    let probe = orochi_reshard::conn::connect(&ep, &login, "old shard 9")
        .await
        .unwrap();
    assert_eq!(
        orochi_reshard::slot_wait::slots_waiting(&probe)
            .await
            .unwrap(),
        None,
        "reported before it waited long"
    );
    tokio::time::sleep(orochi_reshard::slot_wait::FIRST_REPORT + Duration::from_secs(1)).await;
    let line = orochi_reshard::slot_wait::slots_waiting(&probe)
        .await
        .unwrap()
        .expect("a report once the copy slot waited");
    assert!(
        line.starts_with("1 slot creation(s) on the server of old shard 9"),
        "{line}"
    );
    assert!(
        line.contains(&format!("pid {pid} in postgres, idle in transaction for ")),
        "{line}"
    );

    idle.batch_execute("COMMIT").await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), walsender.wait())
        .await
        .expect("the slot was created once the transaction ended")
        .unwrap();
    assert!(done.success());
    admin
        .batch_execute("SELECT pg_drop_replication_slot('xsw_copy_probe')")
        .await
        .unwrap();
}
