//! COPY FROM STDIN on a sharded pool, against two real shards: text, CSV and binary data
//! are split row by row, in chunks cut anywhere, and every row lands on the shard
//! PostgreSQL's hash partitioning names; a replicated table gets every row on every
//! shard; any error (a shard's constraint, an unreadable key, the client's CopyFail)
//! loads nothing anywhere and leaves the session usable.

mod common;

use common::shards::*;
use common::*;
use sqlx::{ConnectOptions, PgConnection};

fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Rows of `table` on shard `k`, and how many of them hash to another shard.
async fn on_shard(db: &str, k: usize, table: &str, key: &str, ty: &str) -> (i64, i64) {
    let mut c = shard_opts(k, APP_USER, APP_PASSWORD, db)
        .connect()
        .await
        .unwrap();
    let sql = format!(
        "CREATE TEMP TABLE IF NOT EXISTS ks_{table} (k {ty}) PARTITION BY HASH (k);
         SELECT count(*)::text || ' ' || count(*) FILTER (WHERE NOT satisfies_hash_partition('ks_{table}'::regclass, 2, {k}, {key}::{ty}))::text FROM {table}"
    );
    let v = one(&mut c, &sql).await;
    let (a, b) = v.split_once(' ').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

async fn copy(
    c: &mut PgConnection,
    sql: &str,
    data: &[u8],
    chunk: usize,
) -> Result<u64, sqlx::Error> {
    let mut cp = c.copy_in_raw(sql).await?;
    for part in data.chunks(chunk) {
        cp.send(part).await?;
    }
    cp.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_csv_and_binary_rows_reach_their_shards() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;

    // Text, no column list, escapes and NULLs in other columns, odd chunk sizes.
    let mut data = String::new();
    for id in (1000..4000).chain([-5, 0, i64::MIN, i64::MAX]) {
        data.push_str(&format!("{id}\tu\\t{id}\\n\t\\N\tTo\\\\kyo\n"));
    }
    assert_eq!(
        copy(&mut c, "COPY users FROM STDIN", data.as_bytes(), 777)
            .await
            .unwrap(),
        3004
    );
    settle(&mut c).await;
    let (n0, wrong0) = on_shard(&db, 0, "users", "id", "bigint").await;
    let (n1, wrong1) = on_shard(&db, 1, "users", "id", "bigint").await;
    assert_eq!((n0 + n1, wrong0, wrong1), (3004 + ROWS, 0, 0));
    assert_eq!(
        one(
            &mut c,
            &format!(
                "SELECT name || '|' || city FROM users WHERE id = {}",
                i64::MIN
            )
        )
        .await,
        format!("u\t{}\n|To\\kyo", i64::MIN)
    );

    // CSV: header, a column list in another order, quoted delimiters and newlines, a
    // doubled quote, CRLF line endings, a last line without its ending; 5-byte chunks.
    let csv = "city,name,id\r\n\"Pa,ris\",\"two\r\nlines\",5001\r\n,\"say \"\"hi\"\"\",5002\r\nOsaka,x,\"5003\"";
    assert_eq!(
        copy(
            &mut c,
            "COPY users (city, name, id) FROM STDIN WITH (FORMAT csv, HEADER true)",
            csv.as_bytes(),
            5
        )
        .await
        .unwrap(),
        3
    );
    let got: Vec<String> = sqlx::query_scalar(
        "SELECT coalesce(city, '<null>') || '/' || name FROM users WHERE id BETWEEN 5001 AND 5003 ORDER BY id",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(got, ["Pa,ris/two\r\nlines", "<null>/say \"hi\"", "Osaka/x"]);

    // Binary: int8 key, text name, a NULL city; 3-byte chunks.
    let mut bin = b"PGCOPY\n\xff\r\n\0".to_vec();
    bin.extend_from_slice(&0i32.to_be_bytes());
    bin.extend_from_slice(&0i32.to_be_bytes());
    for id in 6000i64..6100 {
        bin.extend_from_slice(&3i16.to_be_bytes());
        bin.extend_from_slice(&8i32.to_be_bytes());
        bin.extend_from_slice(&id.to_be_bytes());
        let name = format!("b{id}");
        bin.extend_from_slice(&(name.len() as i32).to_be_bytes());
        bin.extend_from_slice(name.as_bytes());
        bin.extend_from_slice(&(-1i32).to_be_bytes());
    }
    bin.extend_from_slice(&(-1i16).to_be_bytes());
    assert_eq!(
        copy(
            &mut c,
            "COPY users (id, name, city) FROM STDIN (FORMAT binary)",
            &bin,
            3
        )
        .await
        .unwrap(),
        100
    );
    settle(&mut c).await;
    let (n0, wrong0) = on_shard(&db, 0, "users", "id", "bigint").await;
    let (n1, wrong1) = on_shard(&db, 1, "users", "id", "bigint").await;
    assert_eq!((n0 + n1, wrong0, wrong1), (3004 + 3 + 100 + ROWS, 0, 0));
    assert_eq!(one(&mut c, "SELECT count(*)::text FROM users WHERE id BETWEEN 6000 AND 6099 AND name = 'b' || id AND city IS NULL").await, "100");

    // A replicated table: every row on every shard, the tag counts each row once.
    assert_eq!(
        copy(
            &mut c,
            "COPY cities FROM STDIN",
            b"Lyon\tFR\nKyoto\tJP\n",
            4
        )
        .await
        .unwrap(),
        2
    );
    settle(&mut c).await;
    for k in 0..2 {
        let mut s = shard_opts(k, APP_USER, APP_PASSWORD, &db)
            .connect()
            .await
            .unwrap();
        assert_eq!(
            one(&mut s, "SELECT count(*)::text FROM cities").await,
            "5",
            "shard {k}"
        );
    }
    // Nothing is left prepared.
    assert_nothing_prepared(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_position_skips_dropped_and_generated_columns_and_text_keys_hash() {
    let extra = "[[sharding.tables]]\nname = \"events\"\ncolumn = \"slug\"\ndata_type = \"text\"";
    let (r, db) = cluster(extra).await;
    let mut c = r.connect(&db).await;
    exec(&mut c, "CREATE TABLE events (pad int, note text, doubled int GENERATED ALWAYS AS (length(note) * 2) STORED, slug text)").await;
    exec(&mut c, "ALTER TABLE events DROP COLUMN pad").await;
    let mut data = String::new();
    for i in 0..500 {
        data.push_str(&format!("n{i}\tslug-{i}-ü\n"));
    }
    data.push_str("empty\t\n");
    assert_eq!(
        copy(&mut c, "COPY events FROM STDIN", data.as_bytes(), 1000)
            .await
            .unwrap(),
        501
    );
    settle(&mut c).await;
    let (n0, wrong0) = on_shard(&db, 0, "events", "slug", "text").await;
    let (n1, wrong1) = on_shard(&db, 1, "events", "slug", "text").await;
    assert_eq!((n0 + n1, wrong0, wrong1), (501, 0, 0));
    assert!(n0 > 0 && n1 > 0);
}

async fn assert_nothing_prepared(db: &str) {
    for k in 0..2 {
        let mut s = shard_opts(k, APP_USER, APP_PASSWORD, db)
            .connect()
            .await
            .unwrap();
        let sql =
            "SELECT count(*)::text FROM pg_prepared_xacts WHERE database = current_database()";
        assert_eq!(one(&mut s, sql).await, "0", "shard {k}");
    }
}

async fn count_users(c: &mut PgConnection) -> String {
    one(c, "SELECT count(*)::text FROM users").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_copies_load_nothing_anywhere() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let cases: [(&str, &[u8], usize, &str); 4] = [
        // A duplicate key on one shard: that shard's error, every shard rolled back.
        (
            "COPY users (id, name) FROM STDIN",
            b"7000\ta\n7001\tb\n7002\tc\n1\tduplicate\n7003\td\n",
            8,
            "23505",
        ),
        // A key the router cannot read.
        (
            "COPY users (id, name) FROM STDIN",
            b"7000\ta\nseven\tb\n",
            64,
            "22P02",
        ),
        // Malformed CSV.
        (
            "COPY users (id, name) FROM STDIN CSV",
            b"7000,\"open\n",
            64,
            "22P04",
        ),
        // The key field is a lone backslash at the end of the data (once a panic).
        ("COPY users (name, id) FROM STDIN", b"x\t\\", 64, "22P02"),
    ];
    for (sql, data, chunk, want) in cases {
        let e = copy(&mut c, sql, data, chunk).await.unwrap_err();
        assert_eq!(code(&e).as_deref(), Some(want), "{e}");
        assert_eq!(count_users(&mut c).await, ROWS.to_string());
    }
    // The client gives up half way.
    let mut cp = c
        .copy_in_raw("COPY users (id, name) FROM STDIN")
        .await
        .unwrap();
    cp.send(b"7000\ta\n7001\tb\n".as_slice()).await.unwrap();
    cp.abort("changed my mind").await.unwrap();
    assert_eq!(count_users(&mut c).await, ROWS.to_string());
    // A column list without the key: refused.
    let e = copy(&mut c, "COPY users (name) FROM STDIN", b"x\n", 64)
        .await
        .unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("0A000"), "{e}");
    // A COPY inside a transaction goes with it (here: rolled back).
    exec(&mut c, "BEGIN").await;
    let n = copy(&mut c, "COPY users (id, name) FROM STDIN", b"7000\ta\n", 64)
        .await
        .unwrap();
    assert_eq!(n, 1);
    exec(&mut c, "ROLLBACK").await;
    // Everything still works, nothing is left prepared.
    assert_eq!(
        copy(
            &mut c,
            "COPY users (id, name) FROM STDIN",
            b"7000\ta\n7001\tb\n",
            3
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(count_users(&mut c).await, (ROWS + 2).to_string());
    assert_nothing_prepared(&db).await;
}

/// Random names with every character COPY treats specially.
fn random_rows(n: usize, seed: u64) -> Vec<(i64, Option<String>)> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = [
        "a", "Z", " ", "\t", "\n", "\r", "\\", "\"", ",", "'", "ü", "東", ".", "N",
    ];
    (0..n)
        .map(|i| {
            // Unique per row (2i < 8192), both signs, up to ±2^52.
            let id = ((next() as i64) >> 24) * 8192 + 2 * i as i64;
            let name = (next() % 10 != 0).then(|| {
                (0..next() % 12)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect::<String>()
            });
            (id, name)
        })
        .collect()
}

fn as_text(rows: &[(i64, Option<String>)]) -> String {
    let mut out = String::new();
    for (id, name) in rows {
        let n = match name {
            None => "\\N".to_string(),
            Some(s) => s
                .replace('\\', "\\\\")
                .replace('\t', "\\t")
                .replace('\n', "\\n")
                .replace('\r', "\\r"),
        };
        out.push_str(&format!("{n}\t{id}\n"));
    }
    out
}

fn as_csv(rows: &[(i64, Option<String>)]) -> String {
    let mut out = String::new();
    for (id, name) in rows {
        let n = match name {
            None => String::new(),
            Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        };
        out.push_str(&format!("{n},\"{id}\"\r\n"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_data_loads_like_one_database() {
    let (r, db) = cluster("").await;
    let mut c = r.connect(&db).await;
    let mut direct = shard_opts(0, APP_USER, APP_PASSWORD, &db)
        .connect()
        .await
        .unwrap();
    exec(&mut direct, "CREATE TABLE plain (name text, id bigint)").await;
    let text_rows = random_rows(2000, 7);
    let csv_rows: Vec<_> = random_rows(2000, 11)
        .into_iter()
        .map(|(id, n)| (id + 1, n))
        .collect();
    for (rows, body, opts, chunk) in [
        (&text_rows, as_text(&text_rows), "", 1013),
        (&csv_rows, as_csv(&csv_rows), "WITH (FORMAT csv)", 17),
    ] {
        let sql = format!("COPY users (name, id) FROM STDIN {opts}");
        let n = copy(&mut c, &sql, body.as_bytes(), chunk).await.unwrap();
        assert_eq!(n, rows.len() as u64);
        let sql = format!("COPY plain (name, id) FROM STDIN {opts}");
        copy(&mut direct, &sql, body.as_bytes(), 4096)
            .await
            .unwrap();
    }
    let q = "SELECT id, name FROM {} WHERE id NOT BETWEEN 1 AND 200 ORDER BY id";
    let routed: Vec<(i64, Option<String>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(q.replace("{}", "users")))
            .fetch_all(&mut c)
            .await
            .unwrap();
    let plain: Vec<(i64, Option<String>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(q.replace("{}", "plain")))
            .fetch_all(&mut direct)
            .await
            .unwrap();
    assert_eq!(routed.len(), 4000);
    assert_eq!(routed, plain);
    let (_, wrong0) = on_shard(&db, 0, "users", "id", "bigint").await;
    let (_, wrong1) = on_shard(&db, 1, "users", "id", "bigint").await;
    assert_eq!((wrong0, wrong1), (0, 0));
}
