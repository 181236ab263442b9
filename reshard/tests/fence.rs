//! The fence installed again where it already is takes no lock on the table
//! (testing/reshard.sh servers). A rerun `start` installs it on every new shard while
//! their initial copies run; a copy holds ROW EXCLUSIVE on its table until it ends, and
//! its replication slot waits for every transaction of the server to end. Dropping and
//! creating the trigger again (ACCESS EXCLUSIVE) waited behind the copy, and when old
//! and new shards share a server, the copy waited for it in turn: a deadlock PostgreSQL
//! cannot see (one edge runs through a replication connection), found as a `start`
//! that never returned in the 2->4 test on a loaded machine.

mod support;

use orochi_reshard::catalog::Table;
use support::*;

#[tokio::test]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn a_fence_in_place_is_installed_again_beside_a_running_copy() {
    let port = servers()[0];
    let admin = superuser(port, "postgres").await;
    for s in [
        "DROP DATABASE IF EXISTS rs_fence WITH (FORCE)",
        "CREATE DATABASE rs_fence",
    ] {
        admin.batch_execute(s).await.unwrap();
    }
    let c = superuser(port, "rs_fence").await;
    c.batch_execute("CREATE SCHEMA orochi; CREATE TABLE t (k bigint PRIMARY KEY)")
        .await
        .unwrap();
    let t = Table {
        oid: 0,
        schema: "public".into(),
        name: "t".into(),
        persistence: 'p',
        kind: 'r',
        has_pk: true,
        replident: 'd',
        rows: 0,
        bytes: 0,
        parts: vec![],
        key: None,
        pk_cols: vec!["k".into()],
    };
    let fence =
        |serving: &str| orochi_reshard::sql::fence("f1", "app", std::slice::from_ref(&t), serving);
    c.batch_execute(&fence("old")).await.unwrap();
    let refused = |e: tokio_postgres::Error| {
        let d = e.as_db_error().expect("a server error").clone();
        (d.code().code().to_string(), d.message().to_string())
    };
    let (code, msg) = refused(
        c.batch_execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "25006", "{msg}");
    assert!(msg.contains("served by its old shards"), "{msg}");

    // A copy into the table: its lock, held until it ends.
    let copy = superuser(port, "rs_fence").await;
    copy.batch_execute("BEGIN; LOCK TABLE t IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    c.batch_execute(&format!("SET lock_timeout = '2s'; {}", fence("new")))
        .await
        .expect("the fence installed again beside the copy, without waiting for its lock");
    let triggers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'orochi_rs_f1_fence' AND tgrelid = 't'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 1);
    copy.batch_execute("COMMIT").await.unwrap();
    // Still fenced, with the message of the second install.
    let (code, msg) = refused(
        c.batch_execute("INSERT INTO t VALUES (1)")
            .await
            .unwrap_err(),
    );
    assert_eq!(code, "25006", "{msg}");
    assert!(msg.contains("served by its new shards"), "{msg}");
    drop((c, copy));
    admin
        .batch_execute("DROP DATABASE rs_fence WITH (FORCE)")
        .await
        .unwrap();
}
