//! `reshard complete` (after a cutover: the new shards stay) and `reshard cancel`
//! (before a cutover, or after a reverse: the old shards stay). Both remove every
//! replication object of the reshard on every shard, its DDL guard and hash parents, then
//! look again and print what they removed and that nothing is left.
//!
//! The fence on the side that no longer serves stays: a router restarted later with the
//! configuration of that side must still not write there, and follows the state recorded
//! there to the side that serves (`crate::follow`). After `complete` that is the old
//! side; after `cancel` the new one (emptied), so a router started later with
//! TARGET.toml goes back to the old shards instead of serving empty databases.

use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::names::{hash_parent, links, Direction};
use crate::repl;
use crate::sql;
use crate::state::{Phase, State};
use crate::topology::Login;

pub async fn complete(st: State, login: Login) -> Result<()> {
    match st.phase {
        Phase::CutOver => {}
        Phase::Completed => {
            println!("reshard {} is already complete", st.spec.id);
        }
        p => {
            return Err(Error::State(format!(
                "reshard {} is in phase {}: complete follows a cutover (the routers must use the new shards); {}",
                st.spec.id,
                p.as_str(),
                if p == Phase::Reversed { "after a reverse, run cutover again or cancel" } else { "run cutover first, or cancel" }
            )))
        }
    }
    let (f, _) = Fleet::connect(st.spec, login, None).await?;
    f.bypass_guards().await?;
    remove(&f).await?;
    f.write_state(
        Phase::Completed,
        "complete: the pool is served by the new shards",
    )
    .await?;
    println!(
        "reshard {}: complete; the old databases are fenced against writes and can be dropped",
        f.spec.id
    );
    Ok(())
}

pub async fn cancel(st: State, login: Login) -> Result<()> {
    match st.phase {
        Phase::Copying | Phase::CaughtUp | Phase::Reversed | Phase::Cancelled => {}
        p => {
            return Err(Error::State(format!(
                "reshard {} is in phase {}: the routers use the new shards; run `reshard reverse` first, or `reshard complete`",
                st.spec.id,
                p.as_str()
            )))
        }
    }
    let (f, _) = Fleet::connect(st.spec, login, None).await?;
    f.bypass_guards().await?;
    remove(&f).await?;
    // The copied rows go: a later start must begin from empty databases. The new shards
    // stay fenced (as `start` left them), so a router with their map follows the
    // cancelled state back to the old shards.
    let fence = sql::fence(&f.spec.id, &f.spec.pool, &f.tables, "old");
    for (j, c) in f.new.iter().enumerate() {
        let list: Vec<String> = f.tables.iter().map(|t| t.qname()).collect();
        if !list.is_empty() {
            c.exec(&format!("TRUNCATE {}", list.join(", "))).await?;
        }
        c.exec(&fence).await?;
        println!("new shard {j}: copied rows removed (the schema stays; drop the database if it is not wanted)");
    }
    for c in &f.old {
        c.exec(&sql::unfence(&f.spec.id, &f.tables)).await?;
    }
    f.write_state(
        Phase::Cancelled,
        "cancelled: the pool stays on the old shards",
    )
    .await?;
    println!(
        "reshard {}: cancelled; the pool stays on its old shards",
        f.spec.id
    );
    Ok(())
}

/// Drops links (both directions), guards and hash parents; then checks every shard.
async fn remove(f: &Fleet) -> Result<()> {
    let mut removed = Vec::new();
    for dir in [Direction::Forward, Direction::Reverse] {
        for l in links(f.old.len(), f.new.len(), dir) {
            removed.extend(repl::drop_link(f, &l).await?);
        }
    }
    for c in f.all() {
        c.exec(&sql::drop_ddl_guard(&f.spec.id)).await?;
        for (oid, _) in f.key_types() {
            c.exec(&format!(
                "DROP TABLE IF EXISTS {}",
                hash_parent(&f.spec.id, oid)
            ))
            .await?;
        }
    }
    for r in &removed {
        println!("removed {r}");
    }
    let mut left = Vec::new();
    for c in f.all() {
        left.extend(repl::leftovers(c, &f.spec.id).await?);
    }
    if !left.is_empty() {
        return Err(Error::State(format!(
            "still present after cleanup:\n{}",
            left.join("\n")
        )));
    }
    println!(
        "no replication slot, publication or subscription of reshard {} is left on any of the {} shards; DDL guard removed",
        f.spec.id,
        f.old.len() + f.new.len()
    );
    Ok(())
}
