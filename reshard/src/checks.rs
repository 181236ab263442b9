//! The up-front refusals of `plan` and `start`: everything known to break a reshard half
//! way is found before anything is created, each with its reason and its fix.

use crate::catalog::{self, ServerSettings, Table};
use crate::conn::{self, Conn};
use crate::error::Result;
use crate::names::{links, Direction};
use crate::topology::{Endpoint, Login, Spec};
use std::collections::BTreeMap;

/// Subscriptions whose initial copy runs at once (`start --parallel`); each uses up to
/// `max_sync_workers_per_subscription` extra slots, senders and workers meanwhile.
pub struct Limits {
    pub parallel: usize,
}

#[derive(Default)]
struct Need {
    slots: i64,
    senders: i64,
    workers: i64,
}

/// Runs every check; returns the refusals (empty = go).
pub async fn run(
    spec: &Spec,
    login: &Login,
    old: &[Conn],
    tables: &[Table],
    limits: &Limits,
) -> Result<Vec<String>> {
    let mut refusals = Vec::new();
    let olds = spec.old_endpoints();
    let news = spec.new_endpoints();
    let (n, m) = (olds.len(), news.len());

    // Server-wide settings, once per server.
    let mut servers: BTreeMap<String, (Endpoint, ServerSettings)> = BTreeMap::new();
    let ours = format!("orochi\\_rs\\_{}%", spec.id);
    for e in olds.iter().chain(news.iter()) {
        if servers.contains_key(&e.server()) {
            continue;
        }
        let c = conn::connect_server(e, login, &format!("server {}", e.server())).await?;
        servers.insert(e.server(), (e.clone(), catalog::settings(&c, &ours).await?));
    }
    let mut need: BTreeMap<String, Need> = BTreeMap::new();
    let sync = |s: &ServerSettings| s.max_sync_workers_per_subscription * limits.parallel as i64;
    for dir in [Direction::Forward, Direction::Reverse] {
        for l in links(n, m, dir) {
            let (src, dst) = match dir {
                Direction::Forward => (&olds[l.old], &news[l.new]),
                Direction::Reverse => (&news[l.new], &olds[l.old]),
            };
            need.entry(src.server()).or_default().slots += 1;
            if dir == Direction::Forward {
                need.entry(src.server()).or_default().senders += 1;
                need.entry(dst.server()).or_default().workers += 1;
            }
        }
    }
    for (server, (_, s)) in &servers {
        let nd = need
            .get(server)
            .map(|x| (x.slots, x.senders, x.workers))
            .unwrap_or_default();
        if !s.superuser {
            refusals.push(format!(
                "{server}: the reshard's role is not a superuser, which PostgreSQL 15 requires to create subscriptions — set OROCHI_RESHARD_USER/OROCHI_RESHARD_PASSWORD to a superuser"
            ));
        }
        if s.wal_level != "logical" {
            refusals.push(format!(
                "{server}: wal_level is '{}', logical replication needs 'logical' — ALTER SYSTEM SET wal_level = logical, then restart the server",
                s.wal_level
            ));
        }
        let extra = sync(s);
        let free_slots = s.max_replication_slots - s.slots_used;
        if nd.0 > 0 && free_slots < nd.0 + extra {
            refusals.push(format!(
                "{server}: {free_slots} free replication slots of max_replication_slots = {}, the reshard needs {} ({} links + {extra} for copies) — raise max_replication_slots (restart), or lower --parallel",
                s.max_replication_slots, nd.0 + extra, nd.0
            ));
        }
        let free_senders = s.max_wal_senders - s.senders_used;
        if nd.1 > 0 && free_senders < nd.1 + extra {
            refusals.push(format!(
                "{server}: {free_senders} free WAL senders of max_wal_senders = {}, the reshard needs {} — raise max_wal_senders (restart), or lower --parallel",
                s.max_wal_senders, nd.1 + extra
            ));
        }
        let workers = nd.2 + if nd.2 > 0 { extra } else { 0 };
        if workers > 0 && s.max_logical_replication_workers < workers {
            refusals.push(format!(
                "{server}: max_logical_replication_workers = {} but the reshard runs {workers} replication workers here — raise it (and max_worker_processes) and restart, or lower --parallel",
                s.max_logical_replication_workers
            ));
        }
        if workers > 0 && s.max_worker_processes < workers + 2 {
            refusals.push(format!(
                "{server}: max_worker_processes = {} is too few for {workers} replication workers — raise it and restart",
                s.max_worker_processes
            ));
        }
    }

    // Tables, as on old shard 0; every old shard must have the same ones.
    let names: Vec<String> = tables.iter().map(Table::shape).collect();
    for (i, c) in old.iter().enumerate().skip(1) {
        let other: Vec<String> = catalog::tables(c, &spec.tables)
            .await?
            .iter()
            .map(Table::shape)
            .collect();
        if other != names {
            refusals.push(format!(
                "old shard {i} has tables {other:?} but old shard 0 has {names:?} — give every shard the same schema first"
            ));
        }
    }
    for d in &spec.tables {
        if let Some((t, p)) = tables.iter().find_map(|t| {
            t.parts
                .iter()
                .find(|p| d.matches(&p.schema, &p.name))
                .map(|p| (t, p))
        }) {
            refusals.push(format!(
                "distributed table {} is a partition of {}: rows are routed by the partitioned table — configure {} in [[sharding.tables]] instead",
                p.display(),
                t.display(),
                t.name
            ));
        } else if !tables.iter().any(|t| d.matches(&t.schema, &t.name)) {
            refusals.push(format!(
                "distributed table {} is configured but does not exist on old shard 0 — create it or remove it from [[sharding.tables]]",
                d.name
            ));
        }
    }
    for t in tables {
        let name = t.display();
        refusals.extend(partition_refusals(t));
        if !t.has_pk && !matches!(t.replident, 'f' | 'i') {
            refusals.push(format!(
                "{name}: no primary key or replica identity, so updates and deletes cannot be replicated — add a primary key, or ALTER TABLE {} REPLICA IDENTITY FULL",
                t.qname()
            ));
        }
        if t.persistence == 'u' {
            refusals.push(format!(
                "{name}: unlogged tables are not replicated — ALTER TABLE {} SET LOGGED",
                t.qname()
            ));
        }
        let Some(k) = &t.key else { continue };
        if k.type_oid == 0 {
            refusals.push(format!(
                "{name}: the configured shard key column \"{}\" does not exist — fix [[sharding.tables]]",
                k.column
            ));
            continue;
        }
        for idx in catalog::unique_without_key(&old[0], t).await? {
            refusals.push(format!(
                "{name}: unique index {idx} does not contain the shard key \"{}\", so rows unique on one shard can collide on a new one — add the key to the index or drop it",
                k.column
            ));
        }
        for col in catalog::large_object_columns(&old[0], t).await? {
            refusals.push(format!(
                "{name}: column \"{col}\" references large objects, which logical replication does not copy — store the data in bytea first"
            ));
        }
    }
    for (i, c) in old.iter().enumerate() {
        let los = catalog::large_object_count(c).await?;
        if los > 0 {
            refusals.push(format!(
                "old shard {i}: {los} large objects, which logical replication does not copy — move them into bytea columns first"
            ));
        }
        for (gid, age) in catalog::pending_prepared(c, std::time::Duration::from_secs(2)).await? {
            refusals.push(format!(
                "old shard {i}: prepared transaction '{gid}' is pending ({age:.0} s old) — let the routers' 2PC recovery resolve it (or COMMIT/ROLLBACK PREPARED it), then plan again"
            ));
        }
    }
    Ok(refusals)
}

/// A partitioned table moves through its root, but its rows are written into the
/// partitions: each leaf must be able to log updates and deletes (PostgreSQL checks the
/// replica identity of the partition written, not the root's), be logged, and be a table
/// of this database (a foreign partition's rows are not replicated).
fn partition_refusals(t: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for p in &t.parts {
        let name = format!("{} (partition of {})", p.display(), t.display());
        match p.kind {
            'f' => out.push(format!(
                "{name}: a foreign-table partition's rows are not replicated — detach it (ALTER TABLE {} DETACH PARTITION {}) or move its rows into a local partition",
                t.qname(),
                p.qname()
            )),
            'r' if !p.has_pk && !matches!(p.replident, 'f' | 'i') => out.push(format!(
                "{name}: no primary key or replica identity, so updates and deletes in it cannot be replicated — add a primary key to {}, or ALTER TABLE {} REPLICA IDENTITY FULL",
                t.qname(),
                p.qname()
            )),
            _ => {}
        }
        if p.persistence == 'u' {
            out.push(format!(
                "{name}: unlogged tables are not replicated — ALTER TABLE {} SET LOGGED",
                p.qname()
            ));
        }
    }
    out
}

/// New databases that exist and already hold user tables, with no reshard of this id
/// recorded: copying into them would mix rows.
pub async fn target_not_empty(spec: &Spec, login: &Login) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (j, e) in spec.new_endpoints().iter().enumerate() {
        if !conn::exists(e, login).await? {
            continue;
        }
        let c = conn::connect(e, login, &format!("new shard {j}")).await?;
        if let Some(st) = crate::state::read_one(&c, &spec.pool).await? {
            if st.spec.id == spec.id {
                continue;
            }
        }
        let t = catalog::tables(&c, &[]).await?;
        if !t.is_empty() {
            out.push(format!(
                "new shard {j} ({e}) already has tables ({}) — targets must be new, empty databases",
                t.iter().map(Table::display).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(out)
}
