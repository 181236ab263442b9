//! The JWT gateway over time: keys added and removed in the JWKS file (RELOAD/SIGHUP
//! and the unknown-kid re-read), a bad file keeping the last good keys, two tenants
//! interleaved over ONE server connection, and the psql and psycopg examples.

mod common;

use common::gateway::{code, jwks_of, new_key, rows_of, tenants, Bed, ROLE};
use common::raw::{bind, execute, first_error, parse};
use common::{psql_cmd, APP_PASSWORD, APP_USER};
use orochi_wire::FrontendMessage;
use sqlx::{ConnectOptions, Row};

/// Every column of the first DataRow, as text.
fn cells(ms: &[orochi_wire::BackendMessage]) -> Vec<String> {
    assert!(first_error(ms).is_none(), "{ms:?}");
    ms.iter()
        .find_map(|m| match m {
            orochi_wire::BackendMessage::DataRow(cols) => Some(
                cols.iter()
                    .map(|c| {
                        c.as_ref()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .unwrap_or_default()
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_the_jwks_file() {
    let bed = Bed::start(2, "").await;
    let (a, _, _) = tenants();
    let k2 = new_key();
    let k3 = new_key();
    let t2 = k2.sign(Some("k2"), &bed.claims(a)).unwrap();
    let t3 = k3.sign(Some("k3"), &bed.claims(a)).unwrap();
    // k2 added to the file: the unknown kid makes the gateway re-read it, no reload.
    std::fs::write(&bed.jwks, jwks_of(&[("k1", &bed.key), ("k2", &k2)])).unwrap();
    assert!(
        bed.login(&t2).await.is_ok(),
        "new kid picked up without reload"
    );
    // k3 added right after: re-reads are at most every 30 s, so it waits for a reload.
    std::fs::write(
        &bed.jwks,
        jwks_of(&[("k1", &bed.key), ("k2", &k2), ("k3", &k3)]),
    )
    .unwrap();
    assert_eq!(code(bed.login(&t3).await), "28P01");
    // RELOAD (what SIGHUP runs) reads it.
    bed.router.app.reload().expect("reload");
    assert!(bed.login(&t3).await.is_ok(), "kid added, then RELOAD");
    // k1 removed: its tokens stop working after the reload.
    std::fs::write(&bed.jwks, jwks_of(&[("k2", &k2), ("k3", &k3)])).unwrap();
    assert!(bed.login(&bed.token(a)).await.is_ok(), "still the old set");
    bed.router.app.reload().expect("reload");
    assert_eq!(code(bed.login(&bed.token(a)).await), "28P01");
    // A bad file keeps the last good keys.
    std::fs::write(&bed.jwks, "{ not json").unwrap();
    bed.router
        .app
        .reload()
        .expect("the rest of the reload goes on");
    assert!(bed.login(&t3).await.is_ok(), "last good keys kept");
    // A good file again: k1 back, k3 gone.
    std::fs::write(&bed.jwks, jwks_of(&[("k1", &bed.key)])).unwrap();
    bed.router.app.reload().expect("reload");
    assert!(bed.login(&bed.token(a)).await.is_ok());
    assert_eq!(code(bed.login(&t3).await), "28P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_over_one_server_connection_never_meet() {
    // pool_size = 1: every transaction of both sessions uses the same server connection.
    let bed = Bed::start(1, "").await;
    let (a, b, _) = tenants();
    let mut ca = bed.login(&bed.token(a)).await.expect("login a");
    let mut cb = bed.login(&bed.token(b)).await.expect("login b");
    let check =
        "SELECT current_user, current_setting('request.jwt.claims', true)::jsonb->>'tenant_id', \
                 (SELECT coalesce(string_agg(DISTINCT tenant_id::text, ','), '') FROM notes), \
                 (SELECT count(*) FROM notes), pg_backend_pid()";
    let mut pids = std::collections::HashSet::new();
    for i in 0..100 {
        for (c, t) in [(&mut ca, a), (&mut cb, b)] {
            let r = match i % 3 {
                0 => cells(&c.query(check).await),
                // An explicit transaction.
                1 => cells(&c.query(&format!("BEGIN; {check}; COMMIT")).await),
                _ => {
                    // The extended protocol.
                    c.send(&[
                        parse("", check),
                        bind("", "", &[]),
                        execute("", 0),
                        FrontendMessage::Sync,
                    ])
                    .await;
                    cells(&c.until_ready().await)
                }
            };
            assert_eq!(r[0], ROLE, "round {i}");
            assert_eq!(r[1], t.to_string(), "round {i}: claims of tenant {t}");
            assert_eq!(
                r[2],
                t.to_string(),
                "round {i}: tenant {t} sees only its rows"
            );
            assert_eq!(r[3], rows_of(t).to_string(), "round {i}");
            pids.insert(r[4].clone());
        }
        if i % 25 == 0 {
            // A plain client of the same pool user, between two tokens' transactions:
            // the connection comes back as the authenticator, with no claims.
            let mut plain = bed
                .router
                .opts(APP_USER, APP_PASSWORD, &bed.db)
                .connect()
                .await
                .unwrap();
            let r = sqlx::query("/* orochi.shard = 0 */ SELECT current_user::text, coalesce(current_setting('request.jwt.claims', true), '') AS c")
                .fetch_one(&mut plain)
                .await
                .unwrap();
            assert_eq!(r.get::<String, _>(0), APP_USER);
            assert_eq!(r.get::<String, _>(1), "");
        }
    }
    assert_eq!(pids.len(), 1, "one server connection served both: {pids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_reapplies_the_identity_every_transaction() {
    let bed = Bed::start_mode("session", 2, "tenant_claim = \"tenant_id\"").await;
    let (a, _, _) = tenants();
    bed.create_escape_function(a).await;
    let mut cl = bed.login(&bed.token(a)).await.expect("login");
    let who =
        "SELECT current_user, current_setting('request.jwt.claims', true)::jsonb->>'tenant_id'";
    assert_eq!(
        cells(&cl.query(who).await),
        vec![ROLE.to_string(), a.to_string()]
    );
    assert_eq!(cells(&cl.query("SELECT escape_role()").await), vec!["app"]);
    assert_eq!(
        cells(&cl.query(who).await),
        vec![ROLE.to_string(), a.to_string()]
    );
    // An explicit transaction keeps what happened inside it until it ends.
    let ms = cl
        .query("BEGIN; SELECT escape_role(); SELECT current_user; COMMIT")
        .await;
    assert!(first_error(&ms).is_none(), "{ms:?}");
    assert_eq!(
        cells(&cl.query(who).await),
        vec![ROLE.to_string(), a.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tenant_claim_reads_fan_out_under_rls() {
    let bed = Bed::start_mode("transaction", 2, "").await;
    let (a, _, c) = tenants();
    for t in [a, c] {
        let mut cl = bed.login(&bed.token(t)).await.expect("login");
        // Both shards, each under the token's role and claims: only the tenant's rows.
        let r = cells(
            &cl.query("SELECT count(*), min(tenant_id), max(tenant_id) FROM notes")
                .await,
        );
        assert_eq!(
            r,
            vec![rows_of(t).to_string(), t.to_string(), t.to_string()]
        );
        let r = cells(&cl.query("SELECT current_user, current_setting('request.jwt.claims', true)::jsonb->>'tenant_id' FROM notes ORDER BY id LIMIT 1").await);
        assert_eq!(r, vec![ROLE.to_string(), t.to_string()]);
        // A read the router would gather on its own connections is refused instead.
        let ms = cl.query("SELECT count(DISTINCT body) FROM notes").await;
        assert_eq!(first_error(&ms).map(|e| e.code.as_str()), Some("0A000"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_logs_in_with_a_token() {
    let bed = Bed::start(2, "").await;
    let (a, _, _) = tenants();
    let out = psql_cmd(
        bed.port(),
        ROLE,
        &bed.token(a),
        &bed.db,
        &["-At", "-c", "SELECT current_user, count(*) FROM notes"],
    )
    .env("PGSSLMODE", "verify-full")
    .env("PGSSLROOTCERT", &bed.ca)
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{ROLE}|{}", rows_of(a))
    );
    // psql over plaintext is refused.
    let out = psql_cmd(
        bed.port(),
        ROLE,
        &bed.token(a),
        &bed.db,
        &["-c", "SELECT 1"],
    )
    .env("PGSSLMODE", "disable")
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS is required"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_example_runs() {
    let bed = Bed::start(2, "").await;
    let (a, _, c) = tenants();
    let root = common::repo_root();
    let out = tokio::process::Command::new("bash")
        .arg(root.join("testing/gateway-psycopg.sh"))
        .env("GW_PORT", bed.port().to_string())
        .env("GW_DB", &bed.db)
        .env("GW_ROLE", ROLE)
        .env("GW_CA", &bed.ca)
        .env("GW_TOKEN", bed.token(a))
        .env("GW_TENANT", a.to_string())
        .env("GW_ROWS", rows_of(a).to_string())
        .env("GW_OTHER_TENANT", c.to_string())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("psycopg example: ok"));
}
