//! Publications, slots and subscriptions of a reshard's links: created only when
//! missing (so reruns after `kill -9` go on), observed, and dropped without leaving a
//! slot behind on any server.

use crate::conn::{conninfo, Conn};
use crate::error::Result;
use crate::fleet::Fleet;
use crate::names::{Direction, Link};
use crate::sql;

pub async fn has_publication(c: &Conn, name: &str) -> Result<bool> {
    Ok(c.one(
        "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)",
        &[&name],
    )
    .await?
    .get(0))
}

pub async fn has_slot(c: &Conn, name: &str) -> Result<bool> {
    Ok(c.one(
        "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        &[&name],
    )
    .await?
    .get(0))
}

pub async fn has_subscription(c: &Conn, name: &str) -> Result<bool> {
    Ok(c.one(
        "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1
                        AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))",
        &[&name],
    )
    .await?
    .get(0))
}

/// Creates whatever of the link is missing: publication and slot on the source, then
/// the subscription on the destination (forward: copying and enabled; reverse: disabled,
/// no copy, armed by a cutover). `say` hears what a slow slot waits for
/// ([`crate::slot_wait`]).
pub async fn ensure_link(f: &Fleet, l: &Link, say: &dyn Fn(&str)) -> Result<bool> {
    let name = l.name(&f.spec.id);
    let src = &f.src(l.dir)[l.src()];
    let dst = &f.dst(l.dir)[l.dst()];
    let mut created = false;
    if !has_publication(src, &name).await? {
        let dst_count = f.dst(l.dir).len();
        src.exec(&sql::publication(&f.spec.id, l, &f.tables, dst_count))
            .await?;
        created = true;
    }
    if !has_slot(src, &name).await? {
        crate::slot_wait::create_slot(src, &f.login, &name, say).await?;
        created = true;
    }
    if !has_subscription(dst, &name).await? {
        let forward = l.dir == Direction::Forward;
        dst.exec(&sql::subscription(
            &name,
            &conninfo(&src.ep, &f.login),
            forward,
            forward,
        ))
        .await?;
        created = true;
    }
    Ok(created)
}

/// Tables of a subscription not yet in state 'r' (ready: copied and streaming).
pub async fn syncing(dst: &Conn, name: &str) -> Result<i64> {
    Ok(dst
        .one(
            "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
             WHERE s.subname = $1 AND r.srsubstate <> 'r'",
            &[&name],
        )
        .await?
        .get(0))
}

/// Bytes of WAL the slot holds back on its server, and bytes not yet confirmed by its
/// subscriber (`None` when the slot does not exist).
pub async fn slot_lag(src: &Conn, name: &str) -> Result<Option<(i64, i64)>> {
    let rows = src
        .query(
            "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8,
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    Ok(rows.first().map(|r| (r.get(0), r.get(1))))
}

pub async fn current_lsn(c: &Conn) -> Result<String> {
    Ok(c.one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0))
}

/// True once the slot's subscriber confirmed everything up to `lsn`.
pub async fn slot_passed(src: &Conn, name: &str, lsn: &str) -> Result<bool> {
    Ok(src
        .one(
            "SELECT coalesce((SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots
                              WHERE slot_name = $1), false)",
            &[&name, &lsn],
        )
        .await?
        .get(0))
}

/// Stops or starts a subscription's apply.
pub async fn set_enabled(dst: &Conn, name: &str, enabled: bool) -> Result<()> {
    let verb = if enabled { "ENABLE" } else { "DISABLE" };
    dst.exec(&format!("ALTER SUBSCRIPTION {} {verb}", sql::ident(name)))
        .await
}

/// Waits (at most `until`) for the subscription's apply worker to exit after DISABLE.
pub async fn worker_gone(dst: &Conn, name: &str) -> Result<bool> {
    Ok(dst
        .one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL)",
            &[&name],
        )
        .await?
        .get(0))
}

/// Makes a disabled subscription start streaming at `lsn` (the source's position when
/// the cutover took over): what the source wrote before that came the other way.
pub async fn start_at(dst: &Conn, name: &str, lsn: &str) -> Result<()> {
    dst.query(
        "SELECT pg_replication_origin_advance('pg_' || s.oid, $2::text::pg_lsn)
         FROM pg_subscription s WHERE s.subname = $1",
        &[&name, &lsn],
    )
    .await?;
    Ok(())
}

/// Moves the slot up to the server's current position (cheap when done often), so a
/// later cutover does not decode a backlog while the routers are paused.
pub async fn advance_slot(src: &Conn, name: &str) -> Result<()> {
    src.query(
        "SELECT pg_replication_slot_advance(slot_name, pg_current_wal_lsn()) FROM pg_replication_slots
         WHERE slot_name = $1 AND NOT active",
        &[&name],
    )
    .await?;
    Ok(())
}

/// Drops the link everywhere: subscription (which drops its slot and any table-sync
/// slots on the publisher), then whatever slot or publication is still there. Returns a
/// line per object removed.
pub async fn drop_link(f: &Fleet, l: &Link) -> Result<Vec<String>> {
    let name = l.name(&f.spec.id);
    let src = &f.src(l.dir)[l.src()];
    let dst = &f.dst(l.dir)[l.dst()];
    let mut done = Vec::new();
    let had_slot = has_slot(src, &name).await?;
    if has_subscription(dst, &name).await? {
        let q = sql::ident(&name);
        let _ = dst
            .try_exec(&format!("ALTER SUBSCRIPTION {q} DISABLE"))
            .await;
        if dst
            .try_exec(&format!("DROP SUBSCRIPTION {q}"))
            .await
            .is_err()
        {
            // The publisher's slot is gone or unreachable: detach it and drop locally.
            dst.exec(&format!(
                "ALTER SUBSCRIPTION {q} SET (slot_name = NONE); DROP SUBSCRIPTION {q}"
            ))
            .await?;
        }
        done.push(format!("subscription {name} on {}", dst.label));
        if had_slot && !has_slot(src, &name).await? {
            done.push(format!(
                "slot {name} on {} (with its subscription)",
                src.label
            ));
        }
    }
    for attempt in 0..50 {
        if !has_slot(src, &name).await? {
            break;
        }
        match src
            .try_exec(&format!(
                "SELECT pg_drop_replication_slot({})",
                sql::lit(&name)
            ))
            .await
        {
            Ok(()) => {
                done.push(format!("slot {name} on {}", src.label));
                break;
            }
            Err(e) if attempt == 49 => return Err(crate::error::Error::Db(e)),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    if has_publication(src, &name).await? {
        src.exec(&format!("DROP PUBLICATION {}", sql::ident(&name)))
            .await?;
        done.push(format!("publication {name} on {}", src.label));
    }
    Ok(done)
}

/// Replication objects of this reshard still present on a shard's server: slots
/// (including table-sync slots of its subscriptions), publications, subscriptions.
pub async fn leftovers(c: &Conn, id: &str) -> Result<Vec<String>> {
    let pat = format!("orochi\\_rs\\_{id}%");
    let rows = c
        .query(
            "SELECT 'slot ' || slot_name FROM pg_replication_slots
               WHERE slot_name LIKE $1 OR (slot_name LIKE 'pg\\_%\\_sync\\_%' AND database = current_database())
             UNION ALL SELECT 'publication ' || pubname FROM pg_publication WHERE pubname LIKE $1
             UNION ALL SELECT 'subscription ' || subname FROM pg_subscription WHERE subname LIKE $1",
            &[&pat],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| format!("{}: {}", c.label, r.get::<_, String>(0)))
        .collect())
}
