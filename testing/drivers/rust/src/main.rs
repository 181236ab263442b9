//! sqlx through the router (testing/drivers.sh). sqlx runs every `query()` with the
//! extended protocol, binary parameters and results, and caches each statement per
//! connection under a name (`sqlx_s_N`) unless `.persistent(false)`; `raw_sql()` is
//! the simple Query protocol with text results. It has no CancelRequest API, so its
//! `cancel` case cancels from another client with `pg_cancel_backend`, as sqlx users do.
//!
//! Prints `PLAN <cases>`, then `PASS <case>` / `FAIL <case>: <reason>` per case.

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow, PgSslMode};
use sqlx::types::chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::types::{Decimal, JsonValue, Uuid};
use sqlx::{AssertSqlSafe, Connection, Executor, Row};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Res = Result<(), String>;
type Case = fn() -> Pin<Box<dyn Future<Output = Res>>>;

const BIG_ROWS: i64 = 100_000;
const T: &str = "drv_sqlx";

fn env(k: &str, d: &str) -> String {
    std::env::var(k)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| d.to_string())
}

fn pool_size() -> i64 {
    env("DRV_POOL_SIZE", "5").parse().unwrap_or(5)
}

fn opts_port(port: u16) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(&env("PGHOST", "127.0.0.1"))
        .port(port)
        .username(&env("PGUSER", "app"))
        .password(&env("PGPASSWORD", "secret"))
        .database(&env("PGDATABASE", "orochi_drv"))
}

/// The `tls` target (DRV_TLS=1): the router's connections use verify-full against the
/// test CA. Direct connections to the fleet's PostgreSQL (`opts_port`) do not.
fn tls() -> bool {
    env("DRV_TLS", "0") == "1"
}

fn opts() -> PgConnectOptions {
    let o = opts_port(env("PGPORT", "5432").parse().unwrap_or(5432));
    if !tls() {
        return o;
    }
    o.ssl_mode(PgSslMode::VerifyFull)
        .ssl_root_cert(env("DRV_TLS_CA", ""))
}

/// verify-full trusting a CA that did not sign the router's certificate is refused,
/// for the certificate (sqlx passes rustls's "invalid peer certificate: UnknownIssuer"
/// on as an I/O error).
async fn verify_full_refuses() -> Res {
    let other = opts().ssl_root_cert(env("DRV_TLS_OTHER_CA", ""));
    match PgConnection::connect_with(&other).await {
        Ok(_) => {
            Err("verify-full accepted a certificate from a CA the client does not trust".into())
        }
        Err(sqlx::Error::Tls(_)) => Ok(()),
        Err(sqlx::Error::Io(e)) if e.to_string().contains("invalid peer certificate") => Ok(()),
        Err(e) => Err(format!("refused, but not for the certificate: {e}")),
    }
}

async fn connect() -> Result<PgConnection, String> {
    PgConnection::connect_with(&opts())
        .await
        .map_err(|e| format!("connect: {e}"))
}

fn e<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> Res {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn sqlstate(err: &sqlx::Error) -> Option<String> {
    err.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string())
}

fn expect_state<T>(r: Result<T, sqlx::Error>, state: &str, what: &str) -> Res {
    match r {
        Ok(_) => Err(format!("{what}: no error, want SQLSTATE {state}")),
        Err(err) => same(
            sqlstate(&err).as_deref(),
            Some(state),
            &format!("{what}: SQLSTATE ({err})"),
        ),
    }
}

fn sql(s: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(s)
}

// ------------------------------------------------------------------ values
struct Values {
    numeric: Decimal,
    text: &'static str,
    bytea: Vec<u8>,
    date: NaiveDate,
    ts: DateTime<Utc>,
    uuid: Uuid,
    json: JsonValue,
    ints: Vec<Option<i32>>,
    strs: Vec<Option<String>>,
}

fn values() -> Values {
    Values {
        numeric: Decimal::from_str("12345678901234567890.123456789").unwrap_or_default(),
        text: "héllo 'wörld' ✓ \\ \"q\"",
        bytea: (0..=255u8).collect(),
        date: NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or_default(),
        ts: Utc
            .with_ymd_and_hms(2024, 2, 29, 12, 34, 56)
            .single()
            .unwrap_or_default()
            + Duration::from_micros(789_012),
        uuid: Uuid::from_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap_or_default(),
        json: serde_json::json!({"a": [1, 2, {"b": null}], "c": "é"}),
        ints: vec![Some(1), Some(2), None, Some(4)],
        strs: vec![
            Some("a".into()),
            Some("b c".into()),
            Some("\"q\"".into()),
            None,
        ],
    }
}

fn check_row(r: &PgRow, v: &Values, at: &str) -> Res {
    let g = |i: usize| format!("column {i}{at}");
    same(
        r.try_get::<i16, _>(0).map_err(e(&g(0)))?,
        32767,
        &format!("int2{at}"),
    )?;
    same(
        r.try_get::<i32, _>(1).map_err(e(&g(1)))?,
        i32::MIN,
        &format!("int4{at}"),
    )?;
    same(
        r.try_get::<i64, _>(2).map_err(e(&g(2)))?,
        i64::MAX,
        &format!("int8{at}"),
    )?;
    same(
        r.try_get::<Decimal, _>(3).map_err(e(&g(3)))?,
        v.numeric,
        &format!("numeric{at}"),
    )?;
    same(
        r.try_get::<f64, _>(4).map_err(e(&g(4)))?,
        std::f64::consts::PI,
        &format!("float8{at}"),
    )?;
    same(
        r.try_get::<String, _>(5).map_err(e(&g(5)))?,
        v.text.to_string(),
        &format!("text{at}"),
    )?;
    same(
        r.try_get::<Vec<u8>, _>(6).map_err(e(&g(6)))?,
        v.bytea.clone(),
        &format!("bytea{at}"),
    )?;
    same(
        r.try_get::<bool, _>(7).map_err(e(&g(7)))?,
        true,
        &format!("bool{at}"),
    )?;
    same(
        r.try_get::<NaiveDate, _>(8).map_err(e(&g(8)))?,
        v.date,
        &format!("date{at}"),
    )?;
    same(
        r.try_get::<DateTime<Utc>, _>(9).map_err(e(&g(9)))?,
        v.ts,
        &format!("timestamptz{at}"),
    )?;
    same(
        r.try_get::<Uuid, _>(10).map_err(e(&g(10)))?,
        v.uuid,
        &format!("uuid{at}"),
    )?;
    same(
        r.try_get::<JsonValue, _>(11).map_err(e(&g(11)))?,
        v.json.clone(),
        &format!("jsonb{at}"),
    )?;
    same(
        r.try_get::<Vec<Option<i32>>, _>(12).map_err(e(&g(12)))?,
        v.ints.clone(),
        &format!("int4[]{at}"),
    )?;
    same(
        r.try_get::<Vec<Option<String>>, _>(13).map_err(e(&g(13)))?,
        v.strs.clone(),
        &format!("text[]{at}"),
    )?;
    Ok(())
}

fn check_nulls(r: &PgRow, at: &str) -> Res {
    for i in 0..14 {
        let v: Option<String> = match r.try_get_raw(i) {
            Ok(raw) if sqlx::ValueRef::is_null(&raw) => None,
            Ok(_) => Some("a value".into()),
            Err(err) => return Err(format!("column {i}{at}: {err}")),
        };
        same(v, None, &format!("column {i} NULL{at}"))?;
    }
    Ok(())
}

const TYPES_SQL: &str =
    "SELECT $1::int2, $2::int4, $3::int8, $4::numeric, $5::float8, $6::text, $7::bytea, \
    $8::bool, $9::date, $10::timestamptz, $11::uuid, $12::jsonb, $13::int4[], $14::text[]";

// ------------------------------------------------------------------ single
async fn connect_scram() -> Res {
    let mut c = connect().await?;
    let r = sqlx::query("SELECT current_user::text, current_database()::text")
        .fetch_one(&mut c)
        .await
        .map_err(e("identity"))?;
    same(
        (r.get::<String, _>(0), r.get::<String, _>(1)),
        (env("PGUSER", "app"), env("PGDATABASE", "orochi_drv")),
        "session identity",
    )?;
    let bad = PgConnection::connect_with(&opts().password("wrong-password")).await;
    expect_state(bad, "28P01", "wrong password")
}

async fn simple_reuse() -> Res {
    let mut cs = Vec::new();
    for _ in 0..4 {
        cs.push(connect().await?);
    }
    for i in 0..60i64 {
        let c = &mut cs[(i % 4) as usize];
        let r = sqlx::raw_sql(sql(format!("SELECT {i} * 2")))
            .fetch_one(&mut *c)
            .await
            .map_err(e("simple query"))?;
        // Text format: the value arrives as "N"; sqlx decodes int4 from text.
        same(
            r.try_get::<i32, _>(0).map_err(e("decode"))?,
            (i * 2) as i32,
            &format!("simple query #{i}"),
        )?;
    }
    Ok(())
}

async fn prepared_reuse() -> Res {
    let mut cs = Vec::new();
    for _ in 0..4 {
        cs.push(connect().await?);
    }
    for i in 0..30i64 {
        for (n, c) in cs.iter_mut().enumerate() {
            let r = sqlx::query("SELECT $1::int8 + 1, $2::text || '!'")
                .bind(i)
                .bind(format!("c{n}"))
                .fetch_one(&mut *c)
                .await
                .map_err(e("cached statement"))?;
            same(
                (r.get::<i64, _>(0), r.get::<String, _>(1)),
                (i + 1, format!("c{n}!")),
                &format!("run {i} on {n}"),
            )?;
            let r = sqlx::query("SELECT $1::int4 * $2::int4")
                .bind(i as i32)
                .bind(n as i32)
                .persistent(false)
                .fetch_one(&mut *c)
                .await
                .map_err(e("unnamed statement"))?;
            same(
                r.get::<i32, _>(0),
                (i as i32) * (n as i32),
                &format!("unnamed run {i} on {n}"),
            )?;
            if i % 3 == 2 {
                let mut tx = c.begin().await.map_err(e("begin"))?;
                let r = sqlx::query("SELECT $1::int8 + 1, $2::text || '!'")
                    .bind(i)
                    .bind("tx")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(e("cached statement in a transaction"))?;
                same(
                    r.get::<i64, _>(0),
                    i + 1,
                    &format!("run {i} in a transaction on {n}"),
                )?;
                tx.commit().await.map_err(e("commit"))?;
            }
        }
    }
    Ok(())
}

async fn types_text() -> Res {
    // raw_sql: simple Query protocol, values as literals, results in text format.
    let mut c = connect().await?;
    let q = "SELECT 32767::int2, (-2147483648)::int4, 9223372036854775807::int8, \
             12345678901234567890.123456789::numeric, 3.141592653589793::float8, \
             E'héllo \\'wörld\\' ✓ \\\\ \"q\"'::text, \
             ('\\x' || (SELECT string_agg(lpad(to_hex(g), 2, '0'), '' ORDER BY g) FROM generate_series(0, 255) g))::bytea, \
             true, '2024-02-29'::date, '2024-02-29 12:34:56.789012+00'::timestamptz, \
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{\"a\": [1, 2, {\"b\": null}], \"c\": \"é\"}'::jsonb, \
             '{1,2,NULL,4}'::int4[], '{a,\"b c\",\"\\\"q\\\"\",NULL}'::text[]";
    for run in 0..3 {
        let r = sqlx::raw_sql(q)
            .fetch_one(&mut c)
            .await
            .map_err(e("text query"))?;
        check_row(&r, &values(), &format!(" (text, run {run})"))?;
    }
    let nulls = "SELECT NULL::int2, NULL::int4, NULL::int8, NULL::numeric, NULL::float8, NULL::text, NULL::bytea, \
                 NULL::bool, NULL::date, NULL::timestamptz, NULL::uuid, NULL::jsonb, NULL::int4[], NULL::text[]";
    let r = sqlx::raw_sql(nulls)
        .fetch_one(&mut c)
        .await
        .map_err(e("text NULLs"))?;
    check_nulls(&r, " (text)")
}

async fn types_binary() -> Res {
    let mut c = connect().await?;
    let v = values();
    for run in 0..8 {
        let r = sqlx::query(TYPES_SQL)
            .bind(32767i16)
            .bind(i32::MIN)
            .bind(i64::MAX)
            .bind(v.numeric)
            .bind(std::f64::consts::PI)
            .bind(v.text)
            .bind(&v.bytea)
            .bind(true)
            .bind(v.date)
            .bind(v.ts)
            .bind(v.uuid)
            .bind(&v.json)
            .bind(&v.ints)
            .bind(&v.strs)
            .persistent(run % 2 == 0)
            .fetch_one(&mut c)
            .await
            .map_err(e("binary query"))?;
        check_row(&r, &v, &format!(" (binary, run {run})"))?;
        let r = sqlx::query(TYPES_SQL)
            .bind(None::<i16>)
            .bind(None::<i32>)
            .bind(None::<i64>)
            .bind(None::<Decimal>)
            .bind(None::<f64>)
            .bind(None::<String>)
            .bind(None::<Vec<u8>>)
            .bind(None::<bool>)
            .bind(None::<NaiveDate>)
            .bind(None::<DateTime<Utc>>)
            .bind(None::<Uuid>)
            .bind(None::<JsonValue>)
            .bind(None::<Vec<i32>>)
            .bind(None::<Vec<String>>)
            .fetch_one(&mut c)
            .await
            .map_err(e("binary NULLs"))?;
        check_nulls(&r, &format!(" (binary, run {run})"))?;
    }
    Ok(())
}

async fn txn_commit_rollback() -> Res {
    let mut c = connect().await?;
    c.execute(sql(format!(
        "DROP TABLE IF EXISTS {T}_tx; CREATE TABLE {T}_tx (id int PRIMARY KEY)"
    )))
    .await
    .map_err(e("create"))?;
    let ins = format!("INSERT INTO {T}_tx VALUES ($1)");
    let mut tx = c.begin().await.map_err(e("begin"))?;
    for id in [1, 2] {
        sqlx::query(sql(ins.clone()))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(e("insert"))?;
    }
    tx.commit().await.map_err(e("commit"))?;
    let mut tx = c.begin().await.map_err(e("begin"))?;
    sqlx::query(sql(ins.clone()))
        .bind(3)
        .execute(&mut *tx)
        .await
        .map_err(e("insert"))?;
    tx.rollback().await.map_err(e("rollback"))?;
    let mut tx = c.begin().await.map_err(e("begin"))?;
    sqlx::query(sql(ins.clone()))
        .bind(4)
        .execute(&mut *tx)
        .await
        .map_err(e("insert"))?;
    {
        let mut sp = tx.begin().await.map_err(e("savepoint"))?;
        sqlx::query(sql(ins.clone()))
            .bind(5)
            .execute(&mut *sp)
            .await
            .map_err(e("insert"))?;
        sp.rollback().await.map_err(e("rollback to savepoint"))?;
    }
    tx.commit().await.map_err(e("commit"))?;
    drop(c);
    let mut c = connect().await?;
    let ids: Vec<i32> = sqlx::query_scalar(sql(format!("SELECT id FROM {T}_tx ORDER BY id")))
        .fetch_all(&mut c)
        .await
        .map_err(e("read back"))?;
    same(
        ids,
        vec![1, 2, 4],
        "rows after commit/rollback/savepoint (seen from a new connection)",
    )
}

async fn txn_error_recovery() -> Res {
    let mut c = connect().await?;
    c.execute(sql(format!(
        "DROP TABLE IF EXISTS {T}_err; CREATE TABLE {T}_err (id int PRIMARY KEY)"
    )))
    .await
    .map_err(e("create"))?;
    for round in 0..3 {
        let mut tx = c.begin().await.map_err(e("begin"))?;
        sqlx::query(sql(format!("INSERT INTO {T}_err VALUES ($1)")))
            .bind(100 + round)
            .execute(&mut *tx)
            .await
            .map_err(e("insert"))?;
        expect_state(
            sqlx::query("SELECT 1 / $1::int")
                .bind(0)
                .fetch_one(&mut *tx)
                .await,
            "22012",
            "division by zero",
        )?;
        expect_state(
            sqlx::query("SELECT 1").fetch_one(&mut *tx).await,
            "25P02",
            "statement in an aborted transaction",
        )?;
        tx.rollback().await.map_err(e("rollback"))?;
        let v: i32 = sqlx::query_scalar("SELECT 41 + $1::int")
            .bind(1)
            .fetch_one(&mut c)
            .await
            .map_err(e("after"))?;
        same(v, 42, "query after the failed transaction")?;
    }
    let n: i64 = sqlx::query_scalar(sql(format!("SELECT count(*) FROM {T}_err")))
        .fetch_one(&mut c)
        .await
        .map_err(e("count"))?;
    same(n, 0, "rows of failed transactions")
}

async fn copy_in_out() -> Res {
    let mut c = connect().await?;
    c.execute(sql(format!(
        "DROP TABLE IF EXISTS {T}_copy; CREATE TABLE {T}_copy (id int, t text)"
    )))
    .await
    .map_err(e("create"))?;
    let data: String = (0..5000).map(|i| format!("{i}\trow {i}\n")).collect();
    let mut cp = c
        .copy_in_raw(&format!("COPY {T}_copy (id, t) FROM STDIN"))
        .await
        .map_err(e("copy in"))?;
    for chunk in data.as_bytes().chunks(7000) {
        cp.send(chunk).await.map_err(e("copy in data"))?;
    }
    same(
        cp.finish().await.map_err(e("copy in finish"))?,
        5000,
        "rows copied in",
    )?;
    let out: Vec<u8> = {
        let mut s = c
            .copy_out_raw(&format!(
                "COPY (SELECT id, t FROM {T}_copy ORDER BY id) TO STDOUT"
            ))
            .await
            .map_err(e("copy out"))?;
        let mut out = Vec::new();
        while let Some(b) = s.try_next().await.map_err(e("copy out data"))? {
            out.extend_from_slice(&b);
        }
        out
    };
    same(
        String::from_utf8_lossy(&out).into_owned(),
        data,
        "COPY out content",
    )?;
    let v: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut c)
        .await
        .map_err(e("after COPY"))?;
    same(v, 1, "query after COPY")
}

async fn big_result() -> Res {
    let mut c = connect().await?;
    let rows = sqlx::query("SELECT g::int8, repeat('x', 20) FROM generate_series(1, $1::int) g")
        .bind(BIG_ROWS as i32)
        .fetch_all(&mut c)
        .await
        .map_err(e("fetch_all"))?;
    let sum: i64 = rows.iter().map(|r| r.get::<i64, _>(0)).sum();
    same(
        (rows.len() as i64, sum),
        (BIG_ROWS, BIG_ROWS * (BIG_ROWS + 1) / 2),
        "row count and sum",
    )?;
    let mut s = sqlx::query_scalar::<_, i64>("SELECT g::int8 FROM generate_series(1, $1::int) g")
        .bind(BIG_ROWS as i32)
        .fetch(&mut c);
    let mut sum = 0i64;
    while let Some(v) = s.try_next().await.map_err(e("fetch stream"))? {
        sum += v;
    }
    same(sum, BIG_ROWS * (BIG_ROWS + 1) / 2, "sum streamed")
}

async fn cancel() -> Res {
    let mut c = connect().await?;
    let mut other = connect().await?;
    let mut tx = c.begin().await.map_err(e("begin"))?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .map_err(e("pid"))?;
    let started = Instant::now();
    let canceller = async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut other)
            .await
    };
    let (slept, cancelled) = tokio::join!(
        sqlx::query("SELECT pg_sleep(30)").execute(&mut *tx),
        canceller
    );
    same(
        cancelled.map_err(e("pg_cancel_backend"))?,
        true,
        "pg_cancel_backend found the backend",
    )?;
    expect_state(slept, "57014", "cancelled pg_sleep(30)")?;
    let took = started.elapsed();
    if took > Duration::from_secs(10) {
        return Err(format!("the cancel took {took:?}"));
    }
    tx.rollback().await.map_err(e("rollback"))?;
    let v: String = sqlx::query_scalar("SELECT 'alive'")
        .fetch_one(&mut c)
        .await
        .map_err(e("after"))?;
    same(v.as_str(), "alive", "query after the cancel")
}

async fn stmt_timeout_local() -> Res {
    let mut c = connect().await?;
    let mut tx = c.begin().await.map_err(e("begin"))?;
    tx.execute("SET LOCAL statement_timeout = '300ms'")
        .await
        .map_err(e("set local"))?;
    expect_state(
        sqlx::query("SELECT pg_sleep(5)").execute(&mut *tx).await,
        "57014",
        "SET LOCAL statement_timeout",
    )?;
    tx.rollback().await.map_err(e("rollback"))?;
    let v: String = sqlx::query_scalar("SELECT pg_sleep(0.5)::text || 'ok'")
        .fetch_one(&mut c)
        .await
        .map_err(e("after"))?;
    same(v.as_str(), "ok", "the timeout ended with the transaction")
}

async fn stmt_timeout_session() -> Res {
    let mut a = PgConnection::connect_with(&opts().options([("statement_timeout", "300")]))
        .await
        .map_err(e("connect with options"))?;
    let mut b = connect().await?;
    b.execute("SET statement_timeout = '300ms'")
        .await
        .map_err(e("set"))?;
    for c in [&mut a, &mut b] {
        for _ in 0..3 {
            expect_state(
                sqlx::query("SELECT pg_sleep(3)").execute(&mut *c).await,
                "57014",
                "session statement_timeout",
            )?;
        }
    }
    let mut others = Vec::new();
    for _ in 0..pool_size() {
        others.push(connect().await?);
    }
    for o in others.iter_mut() {
        let v: String = sqlx::raw_sql("SHOW statement_timeout")
            .fetch_one(&mut *o)
            .await
            .map_err(e("show"))?
            .try_get(0)
            .map_err(e("decode"))?;
        same(v.as_str(), "0", "statement_timeout seen by another client")?;
    }
    Ok(())
}

async fn concurrent_20_pool_5() -> Res {
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts())
        .await
        .map_err(e("pool"))?;
    pool.execute(sql(format!(
        "DROP TABLE IF EXISTS {T}_conc; CREATE TABLE {T}_conc (client int, i int)"
    )))
    .await
    .map_err(e("create"))?;
    let backends = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for n in 0..20i32 {
        let (pool, backends, barrier) = (pool.clone(), backends.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = pool.acquire().await.map_err(e("acquire"))?;
            barrier.wait().await; // 20 client connections open at once
            for i in 0..5i32 {
                let mut tx = c.begin().await.map_err(e("begin"))?;
                sqlx::query(sql(format!("INSERT INTO {T}_conc VALUES ($1, $2)")))
                    .bind(n)
                    .bind(i)
                    .execute(&mut *tx)
                    .await
                    .map_err(e("insert"))?;
                let b: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND usename = current_user AND backend_type = 'client backend'",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(e("count"))?;
                if let Ok(mut v) = backends.lock() {
                    v.push(b);
                }
                sqlx::query("SELECT pg_sleep(0.05)")
                    .execute(&mut *tx)
                    .await
                    .map_err(e("sleep"))?;
                tx.commit().await.map_err(e("commit"))?;
            }
            Ok::<(), String>(())
        }));
    }
    let mut errs = Vec::new();
    for (n, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(m)) => errs.push(format!("client {n}: {m}")),
            Err(j) => errs.push(format!("client {n}: {j}")),
        }
    }
    if !errs.is_empty() {
        return Err(errs.into_iter().take(3).collect::<Vec<_>>().join("; "));
    }
    let r = sqlx::query(sql(format!(
        "SELECT count(*), count(DISTINCT client) FROM {T}_conc"
    )))
    .fetch_one(&pool)
    .await
    .map_err(e("count rows"))?;
    same(
        (r.get::<i64, _>(0), r.get::<i64, _>(1)),
        (100, 20),
        "rows written by 20 clients x 5 transactions",
    )?;
    let max = backends
        .lock()
        .map(|v| v.iter().copied().max().unwrap_or(0))
        .unwrap_or(0);
    if max > pool_size() {
        return Err(format!(
            "{max} server connections at once, pool_size is {}",
            pool_size()
        ));
    }
    pool.close().await;
    Ok(())
}

mod sharded;
use sharded::{shard_fanout_aggregate, shard_order_limit, shard_point_read, shard_point_write};

macro_rules! cases {
    ($($f:ident),* $(,)?) => {
        vec![$((stringify!($f), (|| Box::pin($f()) as Pin<Box<dyn Future<Output = Res>>>) as Case)),*]
    };
}

#[tokio::main]
async fn main() {
    let mut cases: Vec<(&str, Case)> = if env("DRV_TARGET", "single") == "single" {
        cases![
            connect_scram,
            simple_reuse,
            prepared_reuse,
            types_text,
            types_binary,
            txn_commit_rollback,
            txn_error_recovery,
            copy_in_out,
            big_result,
            cancel,
            stmt_timeout_local,
            stmt_timeout_session,
            concurrent_20_pool_5,
        ]
    } else {
        cases![
            shard_point_read,
            shard_point_write,
            shard_fanout_aggregate,
            shard_order_limit
        ]
    };
    if tls() {
        cases.extend(cases![verify_full_refuses]);
    }
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    println!("PLAN {}", names.join(" "));
    for (name, f) in cases {
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(90), f()).await {
            Ok(Ok(())) => println!("PASS {name} ({:.1}s)", started.elapsed().as_secs_f64()),
            Ok(Err(why)) => {
                let why: String = why.replace('\n', " ").chars().take(400).collect();
                println!("FAIL {name}: {why}");
            }
            Err(_) => println!("FAIL {name}: did not finish within 90s"),
        }
    }
}
