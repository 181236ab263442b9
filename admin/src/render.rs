//! `SHOW` commands rendered from view snapshots.
//!
//! Column names, order and types are PgBouncer 1.18's for the commands it has (checked
//! against a real PgBouncer by `tests/pgbouncer_columns.rs`); Orochi's own columns come
//! after them so scripts written for PgBouncer keep working by position.

use crate::command::{Show, HELP};
use crate::table::{flag, num, seconds, text, timestamp, yes_no, ColType, Table};
use crate::view::{AdminView, Role};
use std::collections::BTreeSet;
use ColType::{Float8, Int4, Int8, Numeric, Text};

/// The result of `SHOW <what>`.
pub fn render(what: Show, view: &dyn AdminView) -> Table {
    match what {
        Show::Pools => pools(view),
        Show::Clients => clients(view),
        Show::Servers => servers(view),
        Show::Stats => stats(view),
        Show::Databases => databases(view),
        Show::Config => config(view),
        Show::Version => {
            let mut t = Table::new(&[("version", Text)]);
            t.push(vec![text(view.version())]);
            t
        }
        Show::Lists => lists(view),
        Show::Shards => shards(view),
        Show::Transactions => transactions(view),
        Show::PoolNodes => pool_nodes(view),
        Show::Help => {
            let mut t = Table::new(&[("command", Text)]);
            for c in HELP.split(", ") {
                t.push(vec![text(c)]);
            }
            t
        }
    }
}

fn role(r: Option<Role>) -> Option<String> {
    r.map(|r| r.as_str().to_string())
}

fn pools(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("database", Text),
        ("user", Text),
        ("cl_active", Int4),
        ("cl_waiting", Int4),
        ("cl_active_cancel_req", Int4),
        ("cl_waiting_cancel_req", Int4),
        ("sv_active", Int4),
        ("sv_active_cancel", Int4),
        ("sv_being_canceled", Int4),
        ("sv_idle", Int4),
        ("sv_used", Int4),
        ("sv_tested", Int4),
        ("sv_login", Int4),
        ("maxwait", Int4),
        ("maxwait_us", Int4),
        ("pool_mode", Text),
        ("shard", Int4),
        ("role", Text),
        ("pool_size", Int4),
        ("sv_available", Int4),
        ("paused", Int4),
    ]);
    for p in view.pools() {
        t.push(vec![
            text(&p.database),
            text(&p.user),
            num(p.cl_active),
            num(p.cl_waiting),
            num(p.cl_active_cancel_req),
            num(p.cl_waiting_cancel_req),
            num(p.sv_active),
            num(p.sv_active_cancel),
            num(p.sv_being_canceled),
            num(p.sv_idle),
            num(p.sv_used),
            num(p.sv_tested),
            num(p.sv_login),
            num(p.maxwait.as_secs()),
            num(p.maxwait.subsec_micros()),
            text(&p.pool_mode),
            num(p.shard),
            role(p.role),
            num(p.pool_size),
            num(p.available()),
            flag(p.paused),
        ]);
    }
    t
}

/// PgBouncer's shared column set of `SHOW CLIENTS` and `SHOW SERVERS`.
const CONNECTION_COLUMNS: [(&str, ColType); 18] = [
    ("type", Text),
    ("user", Text),
    ("database", Text),
    ("state", Text),
    ("addr", Text),
    ("port", Int4),
    ("local_addr", Text),
    ("local_port", Int4),
    ("connect_time", Text),
    ("request_time", Text),
    ("wait", Int4),
    ("wait_us", Int4),
    ("close_needed", Int4),
    ("ptr", Text),
    ("link", Text),
    ("remote_pid", Int4),
    ("tls", Text),
    ("application_name", Text),
];

/// PgBouncer shows object addresses in `ptr`/`link`; ours are connection ids.
fn ptr(id: u64) -> Option<String> {
    Some(format!("{id:#x}"))
}

fn clients(view: &dyn AdminView) -> Table {
    let mut cols = CONNECTION_COLUMNS.to_vec();
    cols.extend([("id", Int8), ("in_transaction", Int4)]);
    let mut t = Table::new(&cols);
    for c in view.clients() {
        let id = c.id;
        t.push(vec![
            text("C"),
            text(&c.user),
            text(&c.database),
            text(c.state.as_str()),
            text(&c.addr),
            num(c.port),
            text(&c.local_addr),
            num(c.local_port),
            timestamp(c.connect_time),
            timestamp(c.request_time),
            num(c.wait.as_secs()),
            num(c.wait.subsec_micros()),
            flag(c.close_needed),
            ptr(id),
            Some(c.link.and_then(ptr).unwrap_or_default()),
            // PgBouncer shows 0 for clients: they have no backend process.
            num(0),
            Some(c.tls.clone().unwrap_or_default()),
            text(&c.application_name),
            num(id),
            flag(c.in_transaction),
        ]);
    }
    t
}

fn servers(view: &dyn AdminView) -> Table {
    let mut cols = CONNECTION_COLUMNS.to_vec();
    cols.extend([
        ("id", Int8),
        ("shard", Int4),
        ("role", Text),
        ("health", Text),
        ("replication_delay", Float8),
    ]);
    let mut t = Table::new(&cols);
    for s in view.servers() {
        let id = s.id;
        t.push(vec![
            text("S"),
            text(&s.user),
            text(&s.database),
            text(s.state.as_str()),
            text(&s.addr),
            num(s.port),
            text(&s.local_addr),
            num(s.local_port),
            timestamp(s.connect_time),
            timestamp(s.request_time),
            num(s.wait.as_secs()),
            num(s.wait.subsec_micros()),
            flag(s.close_needed),
            ptr(id),
            Some(s.link.and_then(ptr).unwrap_or_default()),
            num(s.remote_pid),
            Some(s.tls.clone().unwrap_or_default()),
            text(&s.application_name),
            num(id),
            num(s.shard),
            text(s.role.as_str()),
            text(s.health.as_str()),
            s.replication_delay.and_then(seconds),
        ]);
    }
    t
}

fn stats(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("database", Text),
        ("total_xact_count", Numeric),
        ("total_query_count", Numeric),
        ("total_received", Numeric),
        ("total_sent", Numeric),
        ("total_xact_time", Numeric),
        ("total_query_time", Numeric),
        ("total_wait_time", Numeric),
        ("avg_xact_count", Numeric),
        ("avg_query_count", Numeric),
        ("avg_recv", Numeric),
        ("avg_sent", Numeric),
        ("avg_xact_time", Numeric),
        ("avg_query_time", Numeric),
        ("avg_wait_time", Numeric),
        ("total_errors", Numeric),
        ("total_cross_shard", Numeric),
    ]);
    for s in view.stats() {
        t.push(vec![
            text(&s.database),
            num(s.total_xact_count),
            num(s.total_query_count),
            num(s.total_received),
            num(s.total_sent),
            num(s.total_xact_time),
            num(s.total_query_time),
            num(s.total_wait_time),
            num(s.avg_xact_count),
            num(s.avg_query_count),
            num(s.avg_recv),
            num(s.avg_sent),
            num(s.avg_xact_time),
            num(s.avg_query_time),
            num(s.avg_wait_time),
            num(s.total_errors),
            num(s.total_cross_shard),
        ]);
    }
    t
}

fn databases(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("name", Text),
        ("host", Text),
        ("port", Int4),
        ("database", Text),
        ("force_user", Text),
        ("pool_size", Int4),
        ("min_pool_size", Int4),
        ("reserve_pool", Int4),
        ("pool_mode", Text),
        ("max_connections", Int4),
        ("current_connections", Int4),
        ("paused", Int4),
        ("disabled", Int4),
        ("shard", Int4),
        ("role", Text),
    ]);
    for d in view.databases() {
        t.push(vec![
            text(&d.name),
            text(&d.host),
            num(d.port),
            text(&d.database),
            d.force_user.clone(),
            num(d.pool_size),
            num(d.min_pool_size),
            num(d.reserve_pool),
            text(&d.pool_mode),
            num(d.max_connections),
            num(d.current_connections),
            flag(d.paused),
            flag(d.disabled),
            num(d.shard),
            role(d.role),
        ]);
    }
    t
}

fn config(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("key", Text),
        ("value", Text),
        ("default", Text),
        ("changeable", Text),
    ]);
    for c in view.config() {
        t.push(vec![
            text(&c.key),
            text(&c.value),
            text(&c.default),
            yes_no(c.changeable),
        ]);
    }
    t
}

/// PgBouncer's internal lists, computed from the snapshots. We keep no free lists, so
/// the `free_*` and DNS rows are honestly zero.
fn lists(view: &dyn AdminView) -> Table {
    let pools = view.pools();
    let clients = view.clients();
    let databases: BTreeSet<String> = view.databases().into_iter().map(|d| d.name).collect();
    let users: BTreeSet<&str> = pools.iter().map(|p| p.user.as_str()).collect();
    let login = clients
        .iter()
        .filter(|c| c.state == crate::view::ClientState::Login)
        .count();
    let mut t = Table::new(&[("list", Text), ("items", Int4)]);
    for (name, n) in [
        ("databases", databases.len()),
        ("users", users.len()),
        ("pools", pools.len()),
        ("free_clients", 0),
        ("used_clients", clients.len() - login),
        ("login_clients", login),
        ("free_servers", 0),
        ("used_servers", view.servers().len()),
        ("dns_names", 0),
        ("dns_zones", 0),
        ("dns_queries", 0),
        ("dns_pending", 0),
    ] {
        t.push(vec![text(name), num(n)]);
    }
    t
}

fn shards(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("database", Text),
        ("shard", Int4),
        ("server_database", Text),
        ("primary", Text),
        ("replicas", Text),
        ("servers_up", Int4),
        ("sharded_tables", Text),
    ]);
    for s in view.shards() {
        t.push(vec![
            text(&s.database),
            num(s.shard),
            text(&s.server_database),
            s.primary.clone(),
            text(s.replicas.join(",")),
            num(s.servers_up),
            text(s.sharded_tables.join(",")),
        ]);
    }
    t
}

fn transactions(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("gid", Text),
        ("database", Text),
        ("phase", Text),
        ("age", Float8),
        ("coordinator", Int4),
        ("shards", Text),
        ("in_doubt", Int4),
    ]);
    for x in view.transactions() {
        let shards: Vec<String> = x.shards.iter().map(|s| s.to_string()).collect();
        t.push(vec![
            text(&x.gid),
            text(&x.database),
            text(&x.phase),
            seconds(x.age),
            num(x.coordinator),
            text(shards.join(",")),
            flag(x.in_doubt),
        ]);
    }
    t
}

/// Pgpool-II's column names where they exist; then ours.
fn pool_nodes(view: &dyn AdminView) -> Table {
    let mut t = Table::new(&[
        ("node_id", Int4),
        ("hostname", Text),
        ("port", Int4),
        ("status", Text),
        ("lb_weight", Int4),
        ("role", Text),
        ("select_cnt", Int8),
        ("load_balance_node", Text),
        ("replication_delay", Float8),
        ("last_status_change", Text),
        ("database", Text),
        ("shard", Int4),
    ]);
    for n in view.pool_nodes() {
        t.push(vec![
            num(n.node_id),
            text(&n.host),
            num(n.port),
            text(n.status.as_str()),
            num(n.weight),
            text(n.role.as_str()),
            num(n.select_cnt),
            text(if n.load_balance_node { "true" } else { "false" }),
            n.replication_delay.and_then(seconds),
            timestamp(n.last_status_change),
            text(&n.database),
            num(n.shard),
        ]);
    }
    t
}
