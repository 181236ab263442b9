//! COPY in both directions, very large rows and large results through the router.

mod common;

use common::raw::{first_error, ready_status, tags};
use common::*;
use orochi_wire::FrontendMessage;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_and_to_stdout() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.connect(&db).await;
    exec(&mut c, "CREATE TABLE items (id int PRIMARY KEY, name text)").await;
    let mut data = String::new();
    for i in 0..20_000 {
        data.push_str(&format!("{i}\tname {i}\n"));
    }
    let mut copy = c.copy_in_raw("COPY items FROM STDIN").await.unwrap();
    // In several chunks, as a client streaming a file would.
    for chunk in data.as_bytes().chunks(64 * 1024) {
        copy.send(chunk).await.unwrap();
    }
    assert_eq!(copy.finish().await.unwrap(), 20_000);
    // Another client shares the only server connection in between.
    let mut other = r.connect(&db).await;
    assert_eq!(
        one(&mut other, "SELECT count(*)::text FROM items").await,
        "20000"
    );

    // COPY TO STDOUT on a raw connection: CopyOutResponse, CopyData..., CopyDone.
    let mut raw = r.raw(&db).await;
    let ms = raw
        .query("COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
        .await;
    assert!(first_error(&ms).is_none(), "{:?}", first_error(&ms));
    let t = tags(&ms);
    assert!(
        t.starts_with('H') && t.ends_with("cCZ"),
        "{}",
        &t[t.len() - 5..]
    );
    let mut out = Vec::new();
    for m in &ms {
        if let orochi_wire::BackendMessage::CopyData(b) = m {
            out.extend_from_slice(b);
        }
    }
    assert_eq!(String::from_utf8(out).unwrap(), data);
    assert_eq!(
        one(&mut c, "SELECT 'still usable'::text").await,
        "still usable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_failures_leave_the_connection_usable() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.rows("CREATE TABLE n (v int)").await;
    // Client-side CopyFail.
    c.send(&[FrontendMessage::Query("COPY n FROM STDIN".into())])
        .await;
    assert_eq!(tags(&c.take(1).await), "G");
    c.send(&[
        FrontendMessage::CopyData(bytes::Bytes::from_static(b"1\n2\n")),
        FrontendMessage::CopyFail("changed my mind".into()),
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("57014"),
        "{ms:?}"
    );
    assert_eq!(ready_status(&ms), Some(b'I'));
    // Bad data: the server fails the COPY.
    c.send(&[FrontendMessage::Query("COPY n FROM STDIN".into())])
        .await;
    assert_eq!(tags(&c.take(1).await), "G");
    c.send(&[
        FrontendMessage::CopyData(bytes::Bytes::from_static(b"1\nnot a number\n3\n")),
        FrontendMessage::CopyDone,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(
        first_error(&ms).map(|e| e.code.as_str()),
        Some("22P02"),
        "{ms:?}"
    );
    assert_eq!(c.rows("SELECT count(*)::text FROM n").await, ["0"]);
    // Another client then this one: all fine.
    let mut d = r.raw(&db).await;
    assert_eq!(d.rows("SELECT 'd'").await, ["d"]);
    assert_eq!(c.rows("SELECT 'c'").await, ["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copy_round_trip() {
    let (r, db) = setup("transaction", 2).await;
    let out = r
        .psql(
            APP_USER,
            APP_PASSWORD,
            &db,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "CREATE TABLE p (a int, b text)",
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = psql_cmd(
        r.port,
        APP_USER,
        APP_PASSWORD,
        &db,
        &["-v", "ON_ERROR_STOP=1", "-c", "\\copy p FROM STDIN"],
    )
    .spawn()
    .unwrap();
    let mut input = String::new();
    for i in 0..5000 {
        input.push_str(&format!("{i}\tv{i}\n"));
    }
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let out = within(20, "psql \\copy in", child.wait_with_output())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = r
        .psql(
            APP_USER,
            APP_PASSWORD,
            &db,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "\\copy (SELECT * FROM p ORDER BY a) TO STDOUT",
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabyte_rows() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.connect(&db).await;
    exec(&mut c, "CREATE TABLE big (id int, body text)").await;
    let body: String = (0..10 * 1024 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    // Bound parameter (extended protocol, one 10 MB Bind).
    sqlx::query("INSERT INTO big VALUES (1, $1)")
        .bind(&body)
        .execute(&mut c)
        .await
        .unwrap();
    // COPY with a 10 MB row.
    let mut copy = c.copy_in_raw("COPY big FROM STDIN").await.unwrap();
    copy.send(format!("2\t{body}\n").into_bytes())
        .await
        .unwrap();
    assert_eq!(copy.finish().await.unwrap(), 1);
    // Read both back (two 10 MB DataRows), with another client in between.
    let mut other = r.connect(&db).await;
    assert_eq!(one(&mut other, "SELECT count(*)::text FROM big").await, "2");
    let rows = sqlx::query("SELECT id, body FROM big ORDER BY id")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let got: String = row.get("body");
        assert_eq!(got.len(), body.len());
        assert!(got == body, "row {} differs", row.get::<i32, _>("id"));
    }
    // Simple-protocol query text of 10 MB as well.
    let sql = format!("SELECT length('{body}')::text");
    assert_eq!(one(&mut c, &sql).await, body.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_row_result() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.connect(&db).await;
    let rows = sqlx::query("SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(rows.len(), 100_000);
    let sum: i64 = rows.iter().map(|r| r.get::<i32, _>(0) as i64).sum();
    assert_eq!(sum, 100_000 * 100_001 / 2);
    // Streamed with the simple protocol too, and the connection is clean afterwards.
    let mut raw = r.raw(&db).await;
    let ms = raw
        .query("SELECT g::text FROM generate_series(1, 100000) g")
        .await;
    assert_eq!(
        ms.len(),
        100_000 + 3,
        "RowDescription, rows, CommandComplete, ReadyForQuery"
    );
    assert_eq!(one(&mut c, "SELECT 'after'::text").await, "after");
}

/// COPY FROM STDIN over the extended protocol, the way libpq sends it for
/// `PQexecParams` (and psycopg 3 for `cursor.copy()`): Parse/Bind/Execute/Sync, the
/// data, then CopyDone and another Sync. PostgreSQL ignores the first Sync (it arrives
/// during the COPY); the router must count it the same way, or it waits for an answer
/// that never comes and keeps the only server connection from everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_copy_gives_the_connection_back() {
    use common::raw::{bind, execute, parse};
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.rows("CREATE TABLE ext_items (v text)").await;
    c.send(&[
        parse("", "COPY ext_items FROM STDIN"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let started = c.take(3).await;
    assert_eq!(tags(&started), "12G", "{started:?}");
    c.send(&[
        FrontendMessage::CopyData(bytes::Bytes::from_static(b"a\nb\n")),
        FrontendMessage::CopyDone,
        FrontendMessage::Sync,
    ])
    .await;
    let done = c.until_ready().await;
    assert_eq!(tags(&done), "CZ", "{done:?}");
    assert_eq!(ready_status(&done), Some(b'I'));
    // The connection went back to the pool: another client gets it at once.
    let mut other = r.raw(&db).await;
    let n = within(
        3,
        "another client",
        other.rows("SELECT count(*)::text FROM ext_items"),
    )
    .await;
    assert_eq!(n, ["2"]);
    assert_eq!(c.rows("SELECT 'still usable'").await, ["still usable"]);
}

/// The same Sync sent after a CopyFail in one write with the COPY: PostgreSQL answers it
/// (the COPY had ended), so the router must wait for that answer, not drop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_after_a_pipelined_copy_fail_is_answered() {
    let (r, db) = setup("transaction", 1).await;
    let mut c = r.raw(&db).await;
    c.rows("CREATE TABLE pipe_items (v text)").await;
    c.send(&[
        FrontendMessage::Query("COPY pipe_items FROM STDIN".into()),
        FrontendMessage::CopyFail("changed my mind".into()),
        FrontendMessage::Sync,
        FrontendMessage::Query("SELECT 'after'".into()),
    ])
    .await;
    let failed = c.until_ready().await;
    assert_eq!(first_error(&failed).map(|e| e.code.as_str()), Some("57014"));
    let synced = c.until_ready().await;
    assert_eq!(tags(&synced), "Z", "{synced:?}");
    let after = c.until_ready().await;
    assert_eq!(common::raw::first_column(&after), ["after"]);
    let mut other = r.raw(&db).await;
    let n = within(
        3,
        "another client",
        other.rows("SELECT count(*)::text FROM pipe_items"),
    )
    .await;
    assert_eq!(n, ["0"]);
}
