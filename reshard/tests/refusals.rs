//! `plan` refuses up front, naming the reason and the fix (testing/reshard.sh servers),
//! and the publication row filter keeps exactly the rows routing sends to each shard.

mod support;

use support::*;

#[tokio::test]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn plan_refuses_with_reason_and_fix() {
    let c = Cluster::new("xp", &[0, 1], &[1, 0]).await;
    let target = c.target_arg();
    let out = c.reshard(&["plan", "--target", &target]).await;
    assert!(out.status.success(), "a clean pool plans");
    for d in &c.old {
        let s = superuser(d.port, &d.name).await;
        s.batch_execute(
            "SET ROLE app;
             CREATE TABLE nokey (x int);
             CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY);
             -- Partitioned tables move, unless a partition cannot log its updates.
             CREATE TABLE parted (id int) PARTITION BY HASH (id);
             ALTER TABLE parted REPLICA IDENTITY FULL;
             CREATE TABLE parted_0 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
             CREATE TABLE parted_1 PARTITION OF parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
             ALTER TABLE parted_1 ADD PRIMARY KEY (id);
             CREATE UNIQUE INDEX ledger_at ON ledger (at);",
        )
        .await
        .unwrap();
    }
    let s = superuser(c.old[1].port, &c.old[1].name).await;
    s.batch_execute(
        "BEGIN; INSERT INTO branches VALUES (77, 'p'); PREPARE TRANSACTION 'plan_pending'",
    )
    .await
    .unwrap();
    let out = c
        .reshard(&["plan", "--target", &target, "--parallel", "100"])
        .await;
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    for want in [
        "public.nokey: no primary key or replica identity",
        "REPLICA IDENTITY FULL",
        "public.scratch: unlogged tables are not replicated",
        "unique index ledger_at does not contain the shard key \"id\"",
        "prepared transaction 'plan_pending' is pending",
        "public.parted_0 (partition of public.parted): no primary key or replica identity",
        "free replication slots",
        "free WAL senders",
        "max_logical_replication_workers = 24 but the reshard runs",
        "max_worker_processes = 40 is too few",
    ] {
        assert!(text.contains(want), "missing '{want}' in:\n{text}");
    }
    for fine in ["public.parted:", "public.parted_1"] {
        assert!(!text.contains(fine), "'{fine}' refused in:\n{text}");
    }
    // start refuses the same way and creates nothing.
    let out = c.reshard(&["start", "--target", &target]).await;
    assert!(!out.status.success());
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    s.batch_execute("ROLLBACK PREPARED 'plan_pending'")
        .await
        .unwrap();
    c.cleanup().await;
}

/// A server without `wal_level = logical` (testing/reshard.sh's plain one) is refused
/// by `plan` and `start`, naming the server and the fix, before anything is created.
#[tokio::test]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn plan_refuses_a_server_without_logical_wal() {
    let plain = servers().len() - 1;
    let c = Cluster::new("xw", &[0, 1], &[plain, plain, 0]).await;
    let port = servers()[plain];
    let target = c.target_arg();
    for cmd in ["plan", "start"] {
        let out = c.reshard(&[cmd, "--target", &target]).await;
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{cmd} must refuse");
        let want = format!("127.0.0.1:{port}: wal_level is 'replica', logical replication needs 'logical' — ALTER SYSTEM SET wal_level = logical");
        assert!(text.contains(&want), "{cmd}: missing '{want}' in:\n{text}");
    }
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    c.cleanup().await;
}

/// The filter of `sql::row_filter`, in a real publication, against the routing hash of
/// the sharding crate: for keys of every supported type and several shard counts, the
/// server's `satisfies_hash_partition` on the filter's parent names the same shard.
#[tokio::test]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn the_row_filter_equals_routing() {
    use orochi_config::KeyType;
    let port = servers()[0];
    let admin = superuser(port, "postgres").await;
    for s in [
        "DROP DATABASE IF EXISTS rs_filter WITH (FORCE)",
        "CREATE DATABASE rs_filter",
    ] {
        admin.batch_execute(s).await.unwrap();
    }
    let c = superuser(port, "rs_filter").await;
    c.batch_execute("CREATE SCHEMA orochi").await.unwrap();
    let cases = [
        (KeyType::BigInt, "bigint"),
        (KeyType::Integer, "integer"),
        (KeyType::SmallInt, "smallint"),
        (KeyType::Text, "text"),
        (KeyType::Uuid, "uuid"),
    ];
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 11
    };
    for (ty, name) in cases {
        let oid: u32 = c
            .query_one(&format!("SELECT '{name}'::regtype::oid"), &[])
            .await
            .unwrap()
            .get(0);
        c.batch_execute(&format!(
            "CREATE TABLE orochi.rs_proof_h{oid} (k {name}) PARTITION BY HASH (k);
             CREATE TABLE t_{name} (k {name} PRIMARY KEY)"
        ))
        .await
        .unwrap();
        for m in [2usize, 3, 4, 7] {
            for j in 0..m {
                let f = orochi_reshard::sql::row_filter("proof", oid, m, j, "k");
                // PostgreSQL 15 accepts it as a publication row filter.
                c.batch_execute(&format!(
                    "CREATE PUBLICATION p_{name}_{m}_{j} FOR TABLE t_{name} WHERE ({f})"
                ))
                .await
                .unwrap_or_else(|e| panic!("{f}: {}", describe(&e)));
            }
            for _ in 0..300 {
                let v = next();
                let value = match ty {
                    KeyType::BigInt => (v as i64).wrapping_sub(1 << 52).to_string(),
                    KeyType::Integer => ((v as i32) / 3).to_string(),
                    KeyType::SmallInt => ((v % 65536) as i32 - 32768).to_string(),
                    KeyType::Text => format!("tenant-{v:x}"),
                    KeyType::Uuid => format!(
                        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                        v as u32,
                        (v >> 32) as u16,
                        v % 4096,
                        (v >> 12) % 4096,
                        v % (1 << 48)
                    ),
                };
                let key = orochi_sharding::parse_text(ty, value.as_bytes()).unwrap();
                let want = orochi_sharding::shard_for(&key, m).unwrap();
                let filters: Vec<String> = (0..m)
                    .map(|j| {
                        orochi_reshard::sql::row_filter("proof", oid, m, j, "k")
                            .replace("\"k\"", &format!("$1::text::{name}"))
                    })
                    .collect();
                let row = c
                    .query_one(&format!("SELECT ARRAY[{}]", filters.join(", ")), &[&value])
                    .await
                    .unwrap();
                let got: Vec<bool> = row.get(0);
                let shards: Vec<usize> = got
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(shards, vec![want], "{name} {value} of {m} shards");
            }
        }
    }
    drop(c);
    admin
        .batch_execute("DROP DATABASE rs_filter WITH (FORCE)")
        .await
        .unwrap();
}
