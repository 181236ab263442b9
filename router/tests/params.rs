//! Session state in transaction pooling: startup parameters and SET/RESET/DISCARD follow
//! their own client onto whichever server connection it gets, and never leak to others.

mod common;

use common::raw::{first_error, RawClient};
use common::*;
use orochi_wire::BackendMessage;
use sqlx::{ConnectOptions, PgConnection};

async fn pid(c: &mut PgConnection) -> String {
    one(c, "SELECT pg_backend_pid()::text").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_are_honoured_on_every_server() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r
        .opts(APP_USER, APP_PASSWORD, &db)
        .application_name("it-client-a")
        .options([
            ("search_path", "a_schema, public"),
            ("statement_timeout", "1234"),
            ("lock_timeout", "1234"),
        ])
        .connect()
        .await
        .expect("connect with options");
    // Startup packet keys (not -c options), as libpq sends PGTZ / PGDATESTYLE.
    let mut b = RawClient::connect(
        r.port,
        TRUST_USER,
        &db,
        &[
            ("application_name", "it-raw-b"),
            ("TimeZone", "Asia/Tokyo"),
            ("DateStyle", "German"),
        ],
    )
    .await
    .expect("raw login with startup parameters");
    assert_eq!(
        b.params.get("TimeZone").map(String::as_str),
        Some("Asia/Tokyo")
    );
    assert_eq!(
        b.params.get("application_name").map(String::as_str),
        Some("it-raw-b")
    );
    assert!(
        b.params
            .get("DateStyle")
            .is_some_and(|d| d.starts_with("German")),
        "{:?}",
        b.params
    );

    // pool_size 1: both share one server connection, taking turns.
    for _ in 0..3 {
        assert_eq!(one(&mut a, "SHOW application_name").await, "it-client-a");
        assert_eq!(one(&mut a, "SHOW search_path").await, "a_schema, public");
        assert_eq!(one(&mut a, "SHOW statement_timeout").await, "1234ms");
        assert_eq!(one(&mut a, "SHOW lock_timeout").await, "1234ms");
        assert_eq!(b.rows("SHOW application_name").await, ["it-raw-b"]);
        assert_eq!(b.rows("SHOW TimeZone").await, ["Asia/Tokyo"]);
        assert!(b.rows("SHOW DateStyle").await[0].starts_with("German"));
        assert_eq!(b.rows("SHOW search_path").await, ["\"$user\", public"]);
        assert_eq!(b.rows("SHOW statement_timeout").await, ["0"]);
    }
    // The statement_timeout from options really applies.
    let e = sqlx::raw_sql("SELECT pg_sleep(3)")
        .execute(&mut a)
        .await
        .expect_err("statement_timeout from options must cancel a 3 s sleep");
    assert_eq!(code(&e).as_deref(), Some("57014"), "{e}");
    // ...and not to B.
    assert_eq!(b.rows("SELECT pg_sleep(0.01)::text").await, [""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_never_leaks_and_follows_its_client() {
    let (r, db) = setup("transaction", 2).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, "SET application_name = 'only-a'").await;
    exec(&mut a, "SET work_mem = '7MB'").await;
    let p1 = pid(&mut a).await;
    // B takes the connection A just used (the warmest) and holds it in a transaction.
    exec(&mut b, "BEGIN").await;
    let pb = pid(&mut b).await;
    assert_eq!(
        pb, p1,
        "LIFO reuse expected: B should get A's last connection"
    );
    assert_eq!(one(&mut b, "SHOW application_name").await, "");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "4MB");
    // A now runs on the other connection, with its settings.
    let p2 = pid(&mut a).await;
    assert_ne!(p1, p2, "A must be on a different server connection");
    assert_eq!(one(&mut a, "SHOW application_name").await, "only-a");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "7MB");
    exec(&mut b, "COMMIT").await;
    // Many rounds of interleaving: each sees only its own.
    exec(&mut b, "SET work_mem = '9MB'").await;
    for i in 0..20 {
        if i % 3 == 0 {
            exec(&mut b, "BEGIN").await;
            assert_eq!(one(&mut a, "SHOW work_mem").await, "7MB");
            exec(&mut b, "COMMIT").await;
        }
        assert_eq!(one(&mut a, "SHOW work_mem").await, "7MB");
        assert_eq!(one(&mut b, "SHOW work_mem").await, "9MB");
        assert_eq!(one(&mut b, "SHOW application_name").await, "");
    }
    // A third client never sees either.
    let mut c = r.connect(&db).await;
    for _ in 0..4 {
        assert_eq!(one(&mut c, "SHOW work_mem").await, "4MB");
        assert_eq!(one(&mut c, "SHOW application_name").await, "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_local_and_rolled_back_set_stay_local() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SET LOCAL work_mem = '11MB'").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "11MB");
    exec(&mut a, "COMMIT").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "4MB");

    // A session SET inside a transaction that rolls back is undone.
    exec(&mut a, "SET work_mem = '5MB'").await;
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SET work_mem = '12MB'").await;
    exec(&mut a, "ROLLBACK").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "5MB");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "5MB");

    // A SET in a failed transaction is undone too.
    exec(&mut a, "BEGIN").await;
    exec(&mut a, "SET work_mem = '13MB'").await;
    assert!(sqlx::raw_sql("SELECT 1/0").execute(&mut a).await.is_err());
    exec(&mut a, "COMMIT").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "5MB");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "4MB");

    // A SET that fails changes nothing.
    let e = sqlx::raw_sql("SET work_mem = 'lots'")
        .execute(&mut a)
        .await
        .expect_err("bad value");
    assert_eq!(code(&e).as_deref(), Some("22023"), "{e}");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "5MB");

    // A set committed inside a transaction sticks.
    exec(&mut a, "BEGIN; SET work_mem = '6MB'; COMMIT").await;
    assert_eq!(one(&mut b, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "6MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_reset_all_and_discard_all() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r
        .opts(APP_USER, APP_PASSWORD, &db)
        .application_name("startup-name")
        .connect()
        .await
        .unwrap();
    let mut b = r.connect(&db).await;
    exec(&mut a, "SET work_mem = '8MB'").await;
    exec(&mut a, "SET search_path = pg_catalog").await;
    exec(&mut a, "RESET work_mem").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut a, "SHOW search_path").await, "pg_catalog");
    // ...also after another client used the connection.
    exec(&mut b, "SET work_mem = '3MB'").await;
    assert_eq!(one(&mut b, "SHOW work_mem").await, "3MB");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut a, "SHOW search_path").await, "pg_catalog");

    exec(&mut a, "SET work_mem = '8MB'").await;
    exec(&mut a, "RESET ALL").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut a, "SHOW search_path").await, "\"$user\", public");
    // RESET ALL goes back to the connection defaults, which include startup parameters.
    assert_eq!(one(&mut a, "SHOW application_name").await, "startup-name");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "3MB");
    assert_eq!(one(&mut a, "SHOW application_name").await, "startup-name");

    exec(&mut a, "SET work_mem = '8MB'").await;
    exec(&mut a, "PREPARE pp AS SELECT 1").await;
    exec(&mut a, "DISCARD ALL").await;
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    assert_eq!(one(&mut b, "SHOW work_mem").await, "3MB");
    assert_eq!(one(&mut a, "SHOW work_mem").await, "4MB");
    let e = sqlx::raw_sql("EXECUTE pp")
        .execute(&mut a)
        .await
        .expect_err("DISCARD ALL drops prepared statements");
    assert_eq!(code(&e).as_deref(), Some("26000"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_status_tracks_set_and_is_not_leaked() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;
    let default_tz = b
        .params
        .get("TimeZone")
        .cloned()
        .expect("TimeZone reported at login");
    assert_ne!(default_tz, "Pacific/Chatham");

    let ms = a.query("SET TimeZone = 'Pacific/Chatham'").await;
    assert!(
        ms.iter().any(|m| matches!(m, BackendMessage::ParameterStatus { name, value } if name == "TimeZone" && value == "Pacific/Chatham")),
        "SET TimeZone must report ParameterStatus: {ms:?}"
    );
    let ms = a.query("SET application_name = 'renamed'").await;
    assert!(
        ms.iter().any(|m| matches!(m, BackendMessage::ParameterStatus { name, value } if name == "application_name" && value == "renamed")),
        "{ms:?}"
    );
    // B gets the same server connection next: it must see (and be told) its own values.
    let ms = b.query("SHOW TimeZone").await;
    assert_eq!(common::raw::first_column(&ms), [default_tz.as_str()]);
    for m in &ms {
        if let BackendMessage::ParameterStatus { name, value } = m {
            assert!(
                !((name == "TimeZone" && value == "Pacific/Chatham")
                    || (name == "application_name" && value == "renamed")),
                "A's setting reported to B: {name}={value}"
            );
        }
    }
    assert_eq!(b.rows("SHOW application_name").await, [""]);
    assert_eq!(a.rows("SHOW TimeZone").await, ["Pacific/Chatham"]);
    assert_eq!(a.rows("SHOW application_name").await, ["renamed"]);
    assert_eq!(
        a.rows("SELECT to_char(TIMESTAMPTZ '2024-01-01 00:00:00+00', 'HH24:MI')")
            .await,
        ["13:45"]
    );
    // RESET reports the default back to the client.
    let ms = a.query("RESET TimeZone").await;
    assert!(first_error(&ms).is_none());
    assert!(
        ms.iter().any(|m| matches!(m, BackendMessage::ParameterStatus { name, value } if name == "TimeZone" && *value == default_tz)),
        "RESET TimeZone must report the default: {ms:?}"
    );
}

/// Server connections whose servers reported the same values share one parameter version:
/// a client told every value of it skips the comparison on any of them (issue 16). A
/// connection whose server reports another value is another version, and a client that
/// lands on it is told the difference. Here `ALTER DATABASE ... SET TimeZone` makes the
/// pool's second connection report another TimeZone than the first; three clients take
/// turns holding one connection in a transaction while another asks, so they pass between
/// the two. Every answer must match what its client was told (login values, then every
/// ParameterStatus since).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_told_the_values_of_whichever_connection_it_gets() {
    let (r, db) = setup("transaction", 2).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(r.raw(&db).await);
    }
    let first = clients[0].params["TimeZone"].clone();
    let other = "Pacific/Chatham";
    assert_ne!(first, other);
    // The first connection exists (and is idle) before the database's default changes.
    assert_eq!(clients[0].rows("SHOW TimeZone").await, [first.as_str()]);
    let mut su = superuser(&db).await;
    exec(
        &mut su,
        &format!("ALTER DATABASE \"{db}\" SET TimeZone = '{other}'"),
    )
    .await;

    let mut told: Vec<std::collections::HashMap<String, String>> =
        clients.iter().map(|c| c.params.clone()).collect();
    let mut seen: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); 3];
    for step in 0..24 {
        let holder = step % 3;
        let asker = (holder + 1 + (step / 3) % 2) % 3;
        for (i, sql) in [
            (holder, "BEGIN"),
            (asker, "SHOW TimeZone"),
            (holder, "SHOW TimeZone"),
            (holder, "COMMIT"),
        ] {
            let ms = clients[i].query(sql).await;
            assert!(first_error(&ms).is_none(), "{ms:?}");
            for m in &ms {
                if let BackendMessage::ParameterStatus { name, value } = m {
                    told[i].insert(name.clone(), value.clone());
                }
            }
            if sql.starts_with("SHOW") {
                let answer = common::raw::first_column(&ms);
                assert_eq!(
                    answer,
                    [told[i]["TimeZone"].as_str()],
                    "step {step}: client {i} was told another TimeZone than its server's"
                );
                seen[i].insert(answer[0].clone());
            }
        }
    }
    assert!(
        seen.iter().any(|s| s.len() == 2),
        "no client moved between the two connections: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_small_pool_keep_their_settings() {
    let (r, db) = setup("transaction", 2).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let opts = r.opts(APP_USER, APP_PASSWORD, &db);
        tasks.push(tokio::spawn(async move {
            let mut c = opts.connect().await.unwrap();
            let name = format!("client-{i}");
            exec(&mut c, &format!("SET application_name = '{name}'")).await;
            exec(&mut c, &format!("SET work_mem = '{}MB'", 10 + i)).await;
            for round in 0..15 {
                assert_eq!(one(&mut c, "SHOW application_name").await, name);
                assert_eq!(one(&mut c, "SHOW work_mem").await, format!("{}MB", 10 + i));
                if round % 5 == 0 {
                    exec(&mut c, "BEGIN").await;
                    exec(&mut c, "SET LOCAL work_mem = '1MB'").await;
                    tokio::task::yield_now().await;
                    exec(&mut c, "COMMIT").await;
                }
            }
        }));
    }
    within(30, "8 clients", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_set_follows_its_client() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    // sqlx prepares these (Parse/Bind/Execute), unlike raw_sql.
    sqlx::query("SET search_path = pg_catalog, public")
        .execute(&mut a)
        .await
        .unwrap();
    for _ in 0..3 {
        let sp: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&mut b)
            .await
            .unwrap();
        assert_eq!(sp, "\"$user\", public");
        let sp: String = sqlx::query_scalar("SELECT current_setting('search_path')")
            .fetch_one(&mut a)
            .await
            .unwrap();
        assert_eq!(sp, "pg_catalog, public");
    }
    sqlx::query("RESET search_path")
        .execute(&mut a)
        .await
        .unwrap();
    exec(&mut b, "SET search_path = b_only").await;
    let sp: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(sp, "\"$user\", public");
}
