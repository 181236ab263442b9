//! Session fidelity in transaction pooling: nothing one client leaves on a server
//! connection reaches the next client of that connection (identity, settings, temp
//! objects, cursors, advisory locks, prepared statements), a client that keeps its
//! connection keeps its session state (affinity), and RESET / SET TRANSACTION / PREPARE
//! behave as on PostgreSQL itself. Pools of one server connection force two clients to
//! share it.

mod common;

use common::raw::{first_error, RawClient};
use common::*;
use rand::{Rng, SeedableRng};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// A role the pool user `app` may `SET ROLE` to (roles are cluster-wide: one per test
/// process and name).
async fn member_role(db: &str, name: &str) -> String {
    let role = format!("{name}_{}", std::process::id());
    let mut su = superuser(db).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {role}; GRANT {role} TO {APP_USER}"
    )))
    .execute(&mut su)
    .await;
    role
}

/// The pool of `pool_toml` plus the superuser as a pool user (SET SESSION AUTHORIZATION
/// needs a superuser login).
fn with_superuser(db: &str, mode: &str, extra: &str) -> String {
    format!(
        "{}\n[pools.{db}.users.3]\nusername = \"{SUPERUSER}\"\npassword = \"{SUPERUSER_PASSWORD}\"\npool_size = 1\n",
        pool_toml(db, mode, 1, extra)
    )
}

/// Everything of a session another client could notice: identity, every setting, its
/// advisory locks, SQL prepared statements, cursors and temporary relations. (Settings
/// of libraries a backend has loaded, such as `plpgsql.*` after a DO block, stay: no
/// reset unloads a library, on PostgreSQL either.)
const VIEW: &str = "SELECT concat_ws(' | ', current_user, session_user,
    (SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings
       WHERE name NOT LIKE '%.%'),
    (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'),
    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
    (SELECT count(*) FROM pg_cursors),
    (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()))";

async fn try_one(c: &mut PgConnection, sql: &str) -> Result<String, sqlx::Error> {
    scalar(c, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_role_never_reaches_the_next_client() {
    let (r, db) = setup("transaction", 1).await;
    let reader = member_role(&db, "it_reader").await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    exec(&mut a, &format!("SET ROLE {reader}")).await;
    assert_eq!(one(&mut a, "SELECT current_user::text").await, reader);
    // One server connection: B gets the one A just used.
    assert_eq!(one(&mut b, "SELECT current_user::text").await, APP_USER);
    assert_eq!(one(&mut b, "SHOW role").await, "none");
    // A keeps its role on whatever connection it gets.
    assert_eq!(one(&mut a, "SELECT current_user::text").await, reader);
    // RESET ALL leaves the role (as PostgreSQL does); RESET ROLE ends it.
    exec(&mut a, "RESET ALL").await;
    assert_eq!(one(&mut a, "SELECT current_user::text").await, reader);
    assert_eq!(one(&mut b, "SELECT current_user::text").await, APP_USER);
    exec(&mut a, "RESET ROLE").await;
    assert_eq!(one(&mut a, "SELECT current_user::text").await, APP_USER);
    // set_config('role', ...) is the same thing by another name.
    exec(
        &mut a,
        &format!("SELECT set_config('role', '{reader}', false)"),
    )
    .await;
    assert_eq!(one(&mut b, "SELECT current_user::text").await, APP_USER);
    // A role that can no longer be set is dropped from A's session with a warning
    // rather than failing every later statement.
    exec(&mut a, &format!("SET ROLE {reader}")).await;
    exec(&mut b, "SELECT 1").await;
    let mut su = superuser(&db).await;
    exec(&mut su, &format!("REVOKE {reader} FROM {APP_USER}")).await;
    exec(&mut b, "SELECT 1").await;
    assert_eq!(one(&mut a, "SELECT current_user::text").await, APP_USER);
    exec(&mut su, &format!("GRANT {reader} TO {APP_USER}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_authorization_is_reset_and_replayed_in_order() {
    let db = scratch_db().await;
    let carol = member_role(&db, "it_carol").await;
    let bob = member_role(&db, "it_bob").await;
    let mut su = superuser(&db).await;
    exec(&mut su, &format!("GRANT {carol} TO {bob}")).await;
    let r = Router::start(&with_superuser(&db, "transaction", "")).await;
    let opts = r.opts(SUPERUSER, SUPERUSER_PASSWORD, &db);
    let mut a = opts.clone().connect().await.unwrap();
    let mut b = opts.connect().await.unwrap();
    exec(&mut a, &format!("SET ROLE {carol}")).await;
    exec(&mut a, &format!("SET SESSION AUTHORIZATION {bob}")).await;
    assert_eq!(
        one(&mut a, "SELECT session_user || ' ' || current_user").await,
        format!("{bob} {bob}")
    );
    // B shares the only server connection and is itself.
    assert_eq!(
        one(&mut b, "SELECT session_user || ' ' || current_user").await,
        format!("{SUPERUSER} {SUPERUSER}")
    );
    assert_eq!(
        one(&mut a, "SELECT session_user || ' ' || current_user").await,
        format!("{bob} {bob}")
    );
    // PostgreSQL: back to the login user, and the earlier SET ROLE is over.
    exec(&mut a, "RESET SESSION AUTHORIZATION").await;
    exec(&mut b, "SELECT 1").await;
    assert_eq!(
        one(&mut a, "SELECT session_user || ' ' || current_user").await,
        format!("{SUPERUSER} {SUPERUSER}")
    );
    // Order matters: authorization first, then the role taken as that user.
    exec(&mut a, &format!("SET SESSION AUTHORIZATION {bob}")).await;
    exec(&mut a, &format!("SET ROLE {carol}")).await;
    exec(&mut b, "SELECT 1").await;
    assert_eq!(
        one(&mut a, "SELECT session_user || ' ' || current_user").await,
        format!("{bob} {carol}")
    );
    assert_eq!(
        one(&mut b, "SELECT session_user || ' ' || current_user").await,
        format!("{SUPERUSER} {SUPERUSER}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_transaction_inside_begin_is_not_session_state() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.connect(&db).await;
    let mut b = r.connect(&db).await;
    for _ in 0..3 {
        exec(&mut a, "BEGIN").await;
        exec(&mut a, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").await;
        assert_eq!(
            one(&mut a, "SHOW transaction_isolation").await,
            "serializable"
        );
        exec(&mut a, "COMMIT").await;
        // Another client in between forces a fresh replay of A's settings.
        exec(&mut b, "SELECT 1").await;
        assert_eq!(
            one(&mut a, "SHOW transaction_isolation").await,
            "read committed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_returns_to_the_clients_startup_value() {
    for mode in ["transaction", "session"] {
        let (r, db) = setup(mode, 2).await;
        let mut a = RawClient::connect(
            r.port,
            TRUST_USER,
            &db,
            &[("DateStyle", "German"), ("TimeZone", "Asia/Tokyo")],
        )
        .await
        .unwrap();
        a.rows("SET datestyle = ISO").await;
        a.rows("SET timezone = 'UTC'").await;
        assert!(a.rows("SHOW datestyle").await[0].starts_with("ISO"));
        a.rows("RESET datestyle").await;
        assert!(
            a.rows("SHOW datestyle").await[0].starts_with("German"),
            "{mode}: RESET datestyle"
        );
        assert_eq!(a.rows("SHOW timezone").await, ["UTC"], "{mode}");
        a.rows("SET datestyle = ISO").await;
        a.rows("RESET ALL").await;
        assert!(
            a.rows("SHOW datestyle").await[0].starts_with("German"),
            "{mode}: RESET ALL"
        );
        assert_eq!(a.rows("SHOW timezone").await, ["Asia/Tokyo"], "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_sql_prepare_is_refused_as_postgresql_does() {
    for mode in ["transaction", "session"] {
        let (r, db) = setup(mode, 2).await;
        let mut a = RawClient::connect(r.port, TRUST_USER, &db, &[])
            .await
            .unwrap();
        assert!(first_error(&a.query("PREPARE q1 AS SELECT 1").await).is_none());
        let e = a.query("PREPARE q1 AS SELECT 2").await;
        assert_eq!(
            first_error(&e).map(|e| e.code.as_str()),
            Some("42P05"),
            "{mode}: {e:?}"
        );
        assert_eq!(a.rows("EXECUTE q1").await, ["1"], "{mode}");
        // A statement that failed to prepare does not exist.
        let e = a.query("PREPARE q2 AS SELECT nope").await;
        assert!(first_error(&e).is_some());
        let e = a.query("EXECUTE q2").await;
        assert_eq!(first_error(&e).map(|e| e.code.as_str()), Some("26000"));
        assert!(first_error(&a.query("PREPARE q2 AS SELECT 22").await).is_none());
        assert_eq!(a.rows("EXECUTE q2").await, ["22"], "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_objects_stay_with_their_client_and_never_reach_another() {
    let (r, db) = setup("transaction", 1).await;
    let mut a = r.connect(&db).await;
    // Affinity: alone on the pool, A keeps its temp table, held cursor and lock across
    // transactions.
    exec(&mut a, "CREATE TEMP TABLE tt (x int)").await;
    exec(&mut a, "INSERT INTO tt VALUES (1)").await;
    exec(&mut a, "DECLARE hc CURSOR WITH HOLD FOR SELECT '7'::text").await;
    exec(&mut a, "SELECT pg_try_advisory_lock(42)").await;
    exec(&mut a, "PREPARE pa AS SELECT '5'::text").await;
    assert_eq!(one(&mut a, "SELECT count(*)::text FROM tt").await, "1");
    assert_eq!(one(&mut a, "FETCH hc").await, "7");
    // B takes the connection: it sees nothing of A's.
    let mut b = r.connect(&db).await;
    assert_eq!(
        one(
            &mut b,
            "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())
               || ' ' || (SELECT count(*) FROM pg_cursors)
               || ' ' || (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')
               || ' ' || (SELECT count(*) FROM pg_prepared_statements WHERE from_sql)"
        )
        .await,
        "0 0 0 0"
    );
    // Every other way to make a temp relation.
    for sql in [
        "CREATE TEMP VIEW tv AS SELECT 1",
        "CREATE TEMPORARY SEQUENCE ts",
        "CREATE TABLE pg_temp.tx (a int)",
        "SELECT 1 AS a INTO TEMP ti",
        "/* /* */ select */ SET search_path = evil, public",
        "DO $$ BEGIN PERFORM set_config('statement_timeout', '1234', false); END $$",
    ] {
        exec(&mut a, sql).await;
        assert_eq!(
            one(
                &mut b,
                "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())
                   || ' ' || current_setting('search_path') || ' ' || current_setting('statement_timeout')"
            )
            .await,
            "0 \"$user\", public 0",
            "after A ran {sql}"
        );
    }
    // A's prepared statement is still A's: re-created where A runs.
    assert_eq!(one(&mut a, "EXECUTE pa").await, "5");
    // A leaves holding a lock: it does not outlive A.
    exec(&mut a, "SELECT pg_advisory_lock(43)").await;
    a.close().await.unwrap();
    let mut su = superuser(&db).await;
    within(5, "A's session lock to be released", async {
        loop {
            let n = one(
                &mut su,
                "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND objid = 43",
            )
            .await;
            if n == "0" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Random sequences of state-changing statements by A, then B on the same (only) server
/// connection: B's view of its session is always that of a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_session_state_never_leaks() {
    let (r, db) = setup("transaction", 1).await;
    let reader = member_role(&db, "it_leak_reader").await;
    let mut b = r.connect(&db).await;
    let fresh = one(&mut b, VIEW).await;
    let corpus: Vec<String> = vec![
        "SET work_mem = '7MB'".into(),
        "SET search_path = evil, public".into(),
        format!("SET ROLE {reader}"),
        "RESET ROLE".into(),
        "RESET ALL".into(),
        "DISCARD ALL".into(),
        "SET SESSION AUTHORIZATION postgres".into(),
        "SELECT set_config('search_path', 'x', false)".into(),
        format!("SELECT set_config('role', '{reader}', false)"),
        "SELECT set_config('work_mem', '5MB', true)".into(),
        "SELECT pg_advisory_lock(1)".into(),
        "SELECT pg_try_advisory_lock(2)".into(),
        "SELECT pg_try_advisory_lock_shared(3)".into(),
        "SELECT pg_advisory_unlock_all()".into(),
        "CREATE TEMP TABLE IF NOT EXISTS t1 (a int)".into(),
        "CREATE TEMP VIEW v{n} AS SELECT 1".into(),
        "CREATE TEMP SEQUENCE s{n}".into(),
        "CREATE TABLE pg_temp.x{n} (a int)".into(),
        "SELECT 1 AS a INTO TEMP y{n}".into(),
        "PREPARE p{n} AS SELECT 1".into(),
        "DEALLOCATE ALL".into(),
        "DECLARE c{n} CURSOR WITH HOLD FOR SELECT 1".into(),
        "DO $$ BEGIN PERFORM set_config('search_path', 'evil', false); END $$".into(),
        "/* /* */ select */ SET statement_timeout = 1234".into(),
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; COMMIT".into(),
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ".into(),
        "BEGIN; SET LOCAL work_mem = '9MB'; CREATE TEMP TABLE z{n} (a int); COMMIT".into(),
        "BEGIN; SET application_name = 'rolled'; ROLLBACK".into(),
        "SELECT 1/0".into(),
    ];
    let seed: u64 = std::env::var("OROCHI_LEAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..120 {
        let mut a = r.connect(&db).await;
        let n = rng.gen_range(1..6);
        let mut ran = Vec::new();
        for i in 0..n {
            let sql =
                corpus[rng.gen_range(0..corpus.len())].replace("{n}", &format!("{round}_{i}"));
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut a)
                .await;
            ran.push(sql);
        }
        let seen = try_one(&mut b, VIEW).await.unwrap();
        assert_eq!(
            seen, fresh,
            "seed {seed}, round {round}: B saw A's state after {ran:?}"
        );
        // A itself still works after whatever it did.
        assert_eq!(
            try_one(&mut a, "SELECT 'ok'").await.unwrap(),
            "ok",
            "seed {seed}, round {round}: {ran:?}"
        );
        if rng.gen_bool(0.5) {
            a.close().await.unwrap();
        }
    }
}

/// The router refuses statements naming its own two-phase gids (42501) without sending
/// them: an error of its own.
const REFUSED: &str = "ROLLBACK PREPARED 'orochi_not_yours'";

fn code(ms: &[orochi_wire::BackendMessage]) -> Option<String> {
    first_error(ms).map(|e| e.code.clone())
}

/// A transaction-mode router over a scratch database with an empty table `t (x int)`,
/// and a client of it.
async fn with_table_t() -> (Router, RawClient) {
    let db = scratch_db().await;
    let r = Router::start(&pool_toml(&db, "transaction", 1, "")).await;
    let mut c = RawClient::connect(r.port, TRUST_USER, &db, &[])
        .await
        .unwrap();
    c.rows("CREATE TABLE t (x int)").await;
    (r, c)
}

/// An error the router answers itself inside a transaction fails the transaction as on
/// PostgreSQL (`fail_server_tx.rs`): ReadyForQuery says `E`, later statements get
/// 25P02, COMMIT rolls back what the transaction wrote before the error, and a
/// savepoint taken before it still recovers. Simple and extended protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_error_in_a_transaction_fails_it_as_postgres_would() {
    use common::raw::{bind, execute, parse, ready_status, tags};
    use orochi_wire::FrontendMessage;
    let (_r, mut c) = with_table_t().await;
    // Simple protocol.
    c.rows("BEGIN").await;
    c.rows("INSERT INTO t VALUES (1)").await;
    let ms = c.query(REFUSED).await;
    assert_eq!(code(&ms).as_deref(), Some("42501"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'E'));
    let ms = c.query("SELECT 1").await;
    assert_eq!(code(&ms).as_deref(), Some("25P02"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'E'));
    let ms = c.query("COMMIT").await;
    assert_eq!(ready_status(&ms), Some(b'I'));
    // Extended protocol: the refused Parse starts the batch.
    c.rows("BEGIN").await;
    c.rows("INSERT INTO t VALUES (2)").await;
    c.send(&[
        parse("", REFUSED),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(code(&ms).as_deref(), Some("42501"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'E'));
    c.query("COMMIT").await;
    assert_eq!(
        c.rows("SELECT count(*) FROM t").await,
        vec!["0".to_string()]
    );
    // A savepoint taken before the error recovers the transaction, as on PostgreSQL.
    c.rows("BEGIN").await;
    c.rows("INSERT INTO t VALUES (3)").await;
    c.rows("SAVEPOINT s").await;
    c.query(REFUSED).await;
    let ms = c.query("ROLLBACK TO SAVEPOINT s").await;
    assert_eq!(ready_status(&ms), Some(b'T'), "{}", tags(&ms));
    c.rows("COMMIT").await;
    assert_eq!(c.rows("SELECT x FROM t").await, vec!["3".to_string()]);
}

/// A router error in the middle of an extended-protocol pipeline the server already runs
/// fails the pipeline as on PostgreSQL (`fail_server_tx.rs`): its earlier statements do
/// not commit at the Sync (implicit transaction), or the explicit transaction it runs in
/// is failed (`E`, COMMIT rolls back). When an earlier message of the pipeline fails on
/// the server itself, that is the one error the client sees, as on PostgreSQL, and the
/// connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_error_in_the_middle_of_a_pipeline_fails_the_pipeline() {
    use common::raw::{bind, execute, parse, ready_status, tags};
    use orochi_wire::FrontendMessage;
    let (_r, mut c) = with_table_t().await;
    let pipeline = |first: &str| {
        vec![
            parse("", first),
            bind("", "", &[]),
            execute("", 0),
            parse("", REFUSED),
            bind("", "", &[]),
            execute("", 0),
            FrontendMessage::Sync,
        ]
    };
    // Implicit transaction: the INSERT before the refusal does not commit.
    c.send(&pipeline("INSERT INTO t VALUES (1)")).await;
    let ms = c.until_ready().await;
    assert_eq!(
        tags(&ms),
        "12CEZ",
        "INSERT answered, then the router's error"
    );
    assert_eq!(code(&ms).as_deref(), Some("42501"));
    assert_eq!(ready_status(&ms), Some(b'I'));
    assert_eq!(c.rows("SELECT count(*) FROM t").await, vec!["0"]);

    // Inside BEGIN: the transaction is failed.
    c.rows("BEGIN").await;
    c.send(&pipeline("INSERT INTO t VALUES (2)")).await;
    let ms = c.until_ready().await;
    assert_eq!(code(&ms).as_deref(), Some("42501"), "{}", tags(&ms));
    assert_eq!(ready_status(&ms), Some(b'E'));
    let ms = c.query("SELECT 1").await;
    assert_eq!(code(&ms).as_deref(), Some("25P02"), "{}", tags(&ms));
    let ms = c.query("COMMIT").await;
    assert_eq!(ready_status(&ms), Some(b'I'));
    assert_eq!(c.rows("SELECT count(*) FROM t").await, vec!["0"]);

    // The server's own error comes first: it is the one error, nothing else is eaten.
    c.send(&pipeline("INSERT INTO t VALUES ('not a number')"))
        .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "EZ", "one error");
    assert_eq!(code(&ms).as_deref(), Some("22P02"));
    assert_eq!(ready_status(&ms), Some(b'I'));
    c.send(&pipeline("INSERT INTO t VALUES (3)")).await;
    assert_eq!(code(&c.until_ready().await).as_deref(), Some("42501"));
    c.send(&[
        parse("", "INSERT INTO t VALUES (4)"),
        bind("", "", &[]),
        execute("", 0),
        FrontendMessage::Sync,
    ])
    .await;
    let ms = c.until_ready().await;
    assert_eq!(tags(&ms), "12CZ");
    assert_eq!(c.rows("SELECT x FROM t").await, vec!["4"]);
}
