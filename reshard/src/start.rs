//! `reshard start`: schema, copy, catch-up. Idempotent: each step looks for what an
//! earlier run (maybe killed with `kill -9`, maybe on another machine) left, and only
//! creates what is missing. The copy itself runs in the servers' replication workers, so
//! it goes on while no `start` runs; rerunning `start` just watches it again.
//!
//! Throttling: at most `--parallel` subscriptions copy at once, and a new one starts
//! only while every source slot holds back less than `--max-lag` bytes of WAL.

use crate::checks;
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::names::{links, Direction};
use crate::progress::{Item, Reporter};
use crate::repl;
use crate::sql;
use crate::state::{self, Phase};
use crate::topology::{Login, Spec};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct Options {
    pub parallel: usize,
    pub max_lag_bytes: i64,
    /// The pool's server users: owners of created databases, granted the `orochi` schema.
    pub grantees: Vec<String>,
    pub pg_dump: String,
}

pub async fn run(spec: Spec, login: Login, opts: &Options) -> Result<()> {
    let mut rep = Reporter::new();
    rep.step(&format!(
        "reshard {}: pool {} from {} to {} shards",
        spec.id,
        spec.pool,
        spec.old.len(),
        spec.new.len()
    ));
    // Refuse before creating anything, unless this reshard already runs.
    let probe = crate::conn::connect(&spec.old_endpoints()[0], &login, "old shard 0").await?;
    let existing = state::read_one(&probe, &spec.pool)
        .await?
        .filter(|s| s.spec.id == spec.id);
    match existing.as_ref().map(|s| s.phase) {
        Some(Phase::CutOver) | Some(Phase::Reversed) | Some(Phase::Completed) => {
            return Err(Error::State(format!(
                "reshard {} is already past the copy (phase {}): nothing to start",
                spec.id,
                existing.map(|s| s.phase.as_str()).unwrap_or_default()
            )))
        }
        Some(Phase::Copying) | Some(Phase::CaughtUp) => {
            rep.step("resuming: the copy was started before; creating only what is missing")
        }
        None | Some(Phase::Cancelled) => {
            let mut old = Vec::new();
            for (i, e) in spec.old_endpoints().iter().enumerate() {
                old.push(crate::conn::connect(e, &login, &format!("old shard {i}")).await?);
            }
            let tables = crate::catalog::tables(&old[0], &spec.tables).await?;
            let mut refusals = checks::run(
                &spec,
                &login,
                &old,
                &tables,
                &checks::Limits {
                    parallel: opts.parallel,
                },
            )
            .await?;
            refusals.extend(checks::target_not_empty(&spec, &login).await?);
            if !refusals.is_empty() {
                return Err(Error::Refused(refusals));
            }
        }
    }
    drop(probe);
    let owner = opts
        .grantees
        .first()
        .map(String::as_str)
        .unwrap_or(login.user.as_str())
        .to_string();
    let (f, created) = Fleet::connect(spec, login, Some(&owner)).await?;
    for j in &created {
        rep.step(&format!("new shard {j}: database created"));
    }
    f.bypass_guards().await?;

    // Schema first (pg_dump of old shard 0, one transaction per new shard).
    for (j, c) in f.new.iter().enumerate() {
        let have = crate::catalog::tables(c, &[]).await?;
        if have.is_empty() {
            copy_schema(&f, c, &opts.pg_dump).await?;
            rep.step(&format!("new shard {j}: schema copied from old shard 0"));
        } else {
            let want: Vec<String> = f.tables.iter().map(|t| t.shape()).collect();
            let got: Vec<String> = have.iter().map(|t| t.shape()).collect();
            if want != got {
                return Err(Error::State(format!(
                    "new shard {j} has tables {got:?}, old shard 0 has {want:?}: the schema changed since start began — cancel and start again"
                )));
            }
        }
    }
    let setup = sql::state_schema(&f.key_types(), &f.spec.id, &opts.grantees)
        + &sql::ddl_guard(&f.spec.id, &f.spec.pool);
    for c in f.all() {
        c.exec(&setup).await?;
    }
    // Until a cutover only replication writes into the new shards: a router started with
    // TARGET.toml too early has its writes refused, and follows the state recorded here
    // back to the old shards (`crate::follow`). The cutover unfences them.
    let fence = sql::fence(&f.spec.id, &f.spec.pool, &f.tables, "old");
    for c in &f.new {
        c.exec(&fence).await?;
    }
    if existing.is_none()
        || existing
            .as_ref()
            .is_some_and(|s| s.phase == Phase::Cancelled)
    {
        f.write_state(Phase::Copying, "copy started").await?;
    }
    rep.step("state recorded on every shard; DDL through the routers is refused until complete or cancel");

    // Forward links, throttled.
    let forward = links(f.old.len(), f.new.len(), Direction::Forward);
    let totals = expected_rows(&f).await?;
    let mut watch = crate::slot_wait::CopyWatch::default();
    for l in &forward {
        let name = l.name(&f.spec.id);
        if repl::has_subscription(&f.new[l.new], &name).await? {
            continue;
        }
        loop {
            let busy = copying(&f, &forward).await?;
            let held = max_retained(&f, &forward).await?;
            if busy < opts.parallel && held <= opts.max_lag_bytes {
                break;
            }
            report(&f, &totals, &mut rep).await?;
            watch.check(&f.old, &|m| rep.step(m)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        repl::ensure_link(&f, l, &|m| rep.step(m)).await?;
        rep.step(&format!(
            "{name}: old shard {} -> new shard {} ({}{})",
            l.old,
            l.new,
            if l.distributed {
                "distributed rows of its hash"
            } else {
                ""
            },
            if l.replicated {
                if l.distributed {
                    " + replicated tables"
                } else {
                    "replicated tables"
                }
            } else {
                ""
            }
        ));
    }
    // Catch-up: every table ready, every slot's unconfirmed WAL under the limit.
    loop {
        report(&f, &totals, &mut rep).await?;
        let busy = copying(&f, &forward).await?;
        let mut lag = 0;
        for l in &forward {
            if let Some((_, unconfirmed)) =
                repl::slot_lag(&f.old[l.old], &l.name(&f.spec.id)).await?
            {
                lag = lag.max(unconfirmed);
            }
        }
        if busy == 0 && lag <= opts.max_lag_bytes.min(16 << 20) {
            break;
        }
        watch.check(&f.old, &|m| rep.step(m)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rep.finish();
    // Reverse links exist from now on, disabled; a cutover arms them.
    for l in links(f.old.len(), f.new.len(), Direction::Reverse) {
        repl::ensure_link(&f, &l, &|m| rep.step(m)).await?;
    }
    f.write_state(Phase::CaughtUp, "caught up").await?;
    rep.step(&format!(
        "reshard {}: caught up; run `reshard verify`, then `reshard cutover`",
        f.spec.id
    ));
    Ok(())
}

/// pg_dump --schema-only of old shard 0 (no `orochi`, no publications or subscriptions)
/// applied to `dst` as one transaction: all of it or none, so a kill leaves no half schema.
async fn copy_schema(f: &Fleet, dst: &Conn, pg_dump: &str) -> Result<()> {
    let src = &f.old[0].ep;
    let mut cmd = tokio::process::Command::new(pg_dump);
    cmd.args([
        "--schema-only",
        "--exclude-schema=orochi",
        "--no-publications",
        "--no-subscriptions",
        "-h",
        &src.host,
        "-p",
        &src.port.to_string(),
        "-U",
        &f.login.user,
        "-d",
        &src.database,
    ]);
    if let Some(p) = &f.login.password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| Error::Config(format!("cannot run {pg_dump} (set OROCHI_PG_DUMP): {e}")))?;
    if !out.status.success() {
        return Err(Error::Db(format!(
            "pg_dump of old shard 0 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // psql meta-commands (\restrict in recent dumps) are not SQL.
    let script: String = text
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n");
    dst.exec(&format!("BEGIN;\n{script}\nCOMMIT;")).await
}

/// Rows each table should have on the new side (distributed: all old shards' rows;
/// replicated: one copy per new shard), and bytes.
pub(crate) async fn expected_rows(f: &Fleet) -> Result<BTreeMap<String, Item>> {
    let mut out = BTreeMap::new();
    for (name, _, rows, bytes, _) in crate::plan::volumes(&f.spec, &f.old).await? {
        out.insert(
            name,
            Item {
                done: 0,
                total: rows.max(0) as u64,
                bytes_total: bytes.max(0) as u64,
            },
        );
    }
    Ok(out)
}

async fn report(f: &Fleet, totals: &BTreeMap<String, Item>, rep: &mut Reporter) -> Result<()> {
    rep.update(&copied(f, totals).await?);
    Ok(())
}

/// Rows on the new side now (live rows plus rows of copies under way), per table.
pub(crate) async fn copied(
    f: &Fleet,
    totals: &BTreeMap<String, Item>,
) -> Result<BTreeMap<String, Item>> {
    let mut items = totals.clone();
    // A partitioned table's rows are counted in its partitions.
    let root: BTreeMap<String, String> = f
        .tables
        .iter()
        .flat_map(|t| t.parts.iter().map(|p| (p.display(), t.display())))
        .collect();
    let mut add = |name: String, n: i64| {
        let name = root.get(&name).cloned().unwrap_or(name);
        if let Some(it) = items.get_mut(&name) {
            it.done += n.max(0) as u64;
        }
    };
    for c in &f.new {
        for r in c
            .query(
                "SELECT schemaname || '.' || relname, n_live_tup FROM pg_stat_user_tables
                 WHERE schemaname <> 'orochi'",
                &[],
            )
            .await?
        {
            add(r.get(0), r.get(1));
        }
        for r in c
            .query(
                "SELECT n.nspname || '.' || cl.relname, p.tuples_processed
                 FROM pg_stat_progress_copy p JOIN pg_class cl ON cl.oid = p.relid
                 JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE p.datname = current_database()",
                &[],
            )
            .await?
        {
            add(r.get(0), r.get(1));
        }
    }
    Ok(items)
}

/// Forward subscriptions that exist and still copy a table.
async fn copying(f: &Fleet, forward: &[crate::names::Link]) -> Result<usize> {
    let mut n = 0;
    for l in forward {
        let name = l.name(&f.spec.id);
        if repl::has_subscription(&f.new[l.new], &name).await?
            && repl::syncing(&f.new[l.new], &name).await? > 0
        {
            n += 1;
        }
    }
    Ok(n)
}

/// The most WAL any forward slot holds back on its server.
async fn max_retained(f: &Fleet, forward: &[crate::names::Link]) -> Result<i64> {
    let mut m = 0;
    for l in forward {
        if let Some((held, _)) = repl::slot_lag(&f.old[l.old], &l.name(&f.spec.id)).await? {
            m = m.max(held);
        }
    }
    Ok(m)
}
