//! A cancel request must never cancel another client's query. A client can send its
//! cancel just as its own query ends; the router takes the target while the client still
//! holds its server, the server goes back to the pool, and the next client's query starts
//! on that backend before the cancel gets there (a new connection to the postmaster, TLS,
//! a fork: slower than a query on an open connection). The proxy here makes that delay
//! long and certain: new connections reach the server 600 ms late.

mod common;

use common::faultproxy::{Fault, FaultProxy};
use common::raw::first_error;
use common::*;
use orochi_wire::FrontendMessage;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_cancel_does_not_hit_the_next_clients_query() {
    let db = scratch_db().await;
    let f = fleet();
    let proxy = FaultProxy::start((f.host.clone(), f.port)).await;
    let toml = pool_toml(&db, "transaction", 1, "").replace(
        &format!("[[\"{}\", {}, \"primary\"]]", f.host, f.port),
        &format!("[[\"127.0.0.1\", {}, \"primary\"]]", proxy.port),
    );
    assert!(toml.contains(&proxy.port.to_string()), "through the proxy");
    let r = Router::start_with("", &toml).await;
    let mut a = r.raw(&db).await;
    let mut b = r.raw(&db).await;
    // Both clients logged in; the pool's one connection is open.
    assert_eq!(a.rows("SELECT 'a'").await, ["a"]);
    assert_eq!(b.rows("SELECT 'b'").await, ["b"]);
    proxy.set(Fault::SlowNew(Duration::from_millis(600)));

    // A's query ends 300 ms after A cancels it: the cancel is still on its way when it
    // ends, and the connection goes back to the pool, with B waiting for it.
    a.send(&[FrontendMessage::Query("SELECT pg_sleep(0.6)::text".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send(&[FrontendMessage::Query("SELECT pg_sleep(1)::text".into())])
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.cancel(r.port).await;
    let ms = within(5, "A's answer", a.until_ready()).await;
    assert!(
        first_error(&ms).is_none(),
        "A ended before its cancel landed: {ms:?}"
    );
    let ms = within(8, "B's answer", b.until_ready()).await;
    assert!(
        first_error(&ms).is_none(),
        "B's query was cancelled by A's late cancel: {ms:?}"
    );
    proxy.set(Fault::None);
    assert_eq!(a.rows("SELECT 'a again'").await, ["a again"]);
}
