//! SHOW output rendered from a fake view: columns, types and values.

mod common;

use common::fake::{client, node, pool, FakeView};
use orochi_admin::render::render;
use orochi_admin::{execute, AdminView, ClientState, Command, NodeStatus, Show, TransactionRow};
use orochi_wire::BackendMessage;
use std::time::Duration;

fn view() -> std::sync::Arc<FakeView> {
    let v = FakeView::new();
    *v.pools.lock().unwrap() = vec![pool("app", "app", 0, 2, 3, 4)];
    *v.clients.lock().unwrap() = vec![
        client(1, "app", "app", ClientState::Active),
        client(2, "app", "app", ClientState::Login),
    ];
    *v.nodes.lock().unwrap() = vec![node("app", 0, 5432, NodeStatus::Banned)];
    *v.transactions.lock().unwrap() = vec![TransactionRow {
        gid: "orochi_i1_7_c0".into(),
        database: "app".into(),
        phase: "in_doubt".into(),
        age: Duration::from_millis(31_250),
        coordinator: 0,
        shards: vec![0, 2],
        in_doubt: true,
    }];
    v
}

fn cell<'a>(t: &'a orochi_admin::table::Table, row: usize, col: &str) -> Option<&'a str> {
    let i = t
        .column_names()
        .iter()
        .position(|c| *c == col)
        .unwrap_or_else(|| panic!("no column {col}"));
    t.rows[row][i].as_deref()
}

#[test]
fn every_row_is_as_wide_as_its_header() {
    let v = view();
    for show in Show::ALL {
        let t = render(show, v.as_ref());
        for row in &t.rows {
            assert_eq!(row.len(), t.columns.len(), "{show:?}");
        }
    }
}

#[test]
fn pools_values_and_extra_columns() {
    let t = render(Show::Pools, view().as_ref());
    assert_eq!(&t.column_names()[..3], ["database", "user", "cl_active"]);
    assert_eq!(
        &t.column_names()[16..],
        ["shard", "role", "pool_size", "sv_available", "paused"]
    );
    assert_eq!(cell(&t, 0, "cl_waiting"), Some("2"));
    assert_eq!(cell(&t, 0, "sv_idle"), Some("4"));
    assert_eq!(cell(&t, 0, "role"), Some("primary"));
    // 10 configured, 3 busy.
    assert_eq!(cell(&t, 0, "sv_available"), Some("7"));
}

#[test]
fn clients_servers_format_like_pgbouncer() {
    let v = view();
    let t = render(Show::Clients, v.as_ref());
    assert_eq!(cell(&t, 0, "type"), Some("C"));
    assert_eq!(cell(&t, 0, "connect_time"), Some("2024-02-29 23:59:59 UTC"));
    assert_eq!(cell(&t, 0, "request_time"), Some("2024-03-01 00:00:00 UTC"));
    assert_eq!(cell(&t, 0, "ptr"), Some("0x1"));
    assert_eq!(cell(&t, 0, "link"), Some("0x7"));
    assert_eq!(cell(&t, 1, "state"), Some("login"));
    assert_eq!(cell(&t, 1, "id"), Some("2"));
    let t = render(Show::Servers, v.as_ref());
    assert_eq!(cell(&t, 0, "type"), Some("S"));
    assert_eq!(cell(&t, 0, "remote_pid"), Some("4242"));
    assert_eq!(cell(&t, 0, "tls"), Some("TLSv1.3"));
    assert_eq!(cell(&t, 0, "role"), Some("replica"));
    assert_eq!(cell(&t, 0, "health"), Some("banned"));
    assert_eq!(cell(&t, 0, "replication_delay"), Some("1.500"));
}

#[test]
fn stats_are_numeric_and_lists_count() {
    let v = view();
    let t = render(Show::Stats, v.as_ref());
    assert_eq!(cell(&t, 0, "total_query_count"), Some("12345678901"));
    assert!(t.columns.iter().skip(1).all(|(_, ty)| ty.oid() == 1700));
    let t = render(Show::Lists, v.as_ref());
    let get = |name: &str| {
        t.rows
            .iter()
            .find(|r| r[0].as_deref() == Some(name))
            .unwrap()[1]
            .clone()
    };
    assert_eq!(get("databases").as_deref(), Some("1"));
    assert_eq!(get("pools").as_deref(), Some("1"));
    assert_eq!(get("used_clients").as_deref(), Some("1"));
    assert_eq!(get("login_clients").as_deref(), Some("1"));
    assert_eq!(get("used_servers").as_deref(), Some("1"));
}

#[test]
fn orochi_commands() {
    let v = view();
    let t = render(Show::Transactions, v.as_ref());
    assert_eq!(cell(&t, 0, "gid"), Some("orochi_i1_7_c0"));
    assert_eq!(cell(&t, 0, "age"), Some("31.250"));
    assert_eq!(cell(&t, 0, "shards"), Some("0,2"));
    assert_eq!(cell(&t, 0, "in_doubt"), Some("1"));
    let t = render(Show::Shards, v.as_ref());
    assert_eq!(cell(&t, 0, "replicas"), Some("10.0.0.2:5432,10.0.0.3:5432"));
    assert_eq!(cell(&t, 0, "sharded_tables"), Some("accounts"));
    let t = render(Show::PoolNodes, v.as_ref());
    assert_eq!(
        &t.column_names()[..4],
        ["node_id", "hostname", "port", "status"]
    );
    assert_eq!(cell(&t, 0, "status"), Some("banned"));
    assert_eq!(cell(&t, 0, "replication_delay"), None);
    let t = render(Show::Config, v.as_ref());
    assert_eq!(
        t.rows[0],
        vec![
            Some("ban_time".into()),
            Some("60".into()),
            Some("60".into()),
            Some("yes".into())
        ]
    );
}

#[tokio::test]
async fn execute_builds_full_replies() {
    let v = view();
    let msgs = execute(&Command::Show(Show::Version), v.as_ref() as &dyn AdminView)
        .await
        .unwrap();
    assert!(matches!(&msgs[0], BackendMessage::RowDescription(f) if f[0].name == "version"));
    assert_eq!(
        msgs.last(),
        Some(&BackendMessage::CommandComplete("SHOW".into()))
    );
    let msgs = execute(&Command::Pause(None), v.as_ref()).await.unwrap();
    assert_eq!(msgs, vec![BackendMessage::CommandComplete("PAUSE".into())]);
    assert_eq!(v.actions(), vec!["pause None"]);
}
