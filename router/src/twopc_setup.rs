//! Two-phase commit setup on every shard of a pool (SPEC §4), run by `orochi-router
//! setup` and on a pool's first two-phase commit.
//!
//! Many clients of one router, and several routers, make their first cross-shard write at
//! once: setup is serialized per database by a transaction-level advisory lock (see
//! [`orochi_twopc::setup`]), and a unique violation from a racing older router is retried
//! rather than shown to a client.
//!
//! Then setup tries to hand the decisions table to a role of its own (`orochi_twopc`),
//! so that clients, which run as the router's server users, cannot write decisions. That
//! needs CREATEROLE (or superuser) and the right to grant CREATE on the database; a
//! server user without them gets today's behaviour (the table is its own) and one warning
//! per pool and process, naming what to grant.

use crate::backend::UserPools;
use crate::twopc::PoolShards;
use orochi_twopc::setup as sql;
use orochi_twopc::{ParticipantError, ShardAccess, ShardSession};

/// 23505 (a racing setup without the lock, e.g. an older router) and 40P01 are retried.
const ATTEMPTS: usize = 4;

/// Creates the `orochi` schema objects on every shard of a pool (idempotent, race-free),
/// granting their use to this user's server user.
pub async fn setup_pool(user: &UserPools) -> Result<(), String> {
    setup_pool_for(user, std::slice::from_ref(&user.user.server_username), None).await
}

/// As [`setup_pool`], granting to every server user in `grantees` (role names), and
/// connecting as `admin` (user, password) instead of the pool's server user when given.
pub async fn setup_pool_for(
    user: &UserPools,
    grantees: &[String],
    admin: Option<(String, Option<String>)>,
) -> Result<(), String> {
    let access = match admin {
        Some((name, password)) => PoolShards::with_login(user, &name, password),
        None => PoolShards::new(user),
    };
    let grantees: Vec<String> = grantees.iter().map(|g| sql::ident(g)).collect();
    for s in 0..access.shard_count() {
        let mut session = access
            .connect(s)
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        run_retrying(session.as_mut(), &sql::setup())
            .await
            .map_err(|e| format!("shard {s}: {e}"))?;
        harden(session.as_mut(), s, user, &grantees).await?;
    }
    Ok(())
}

async fn run_retrying(
    session: &mut dyn ShardSession,
    statement: &str,
) -> Result<(), ParticipantError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.simple_query(statement).await {
            Ok(_) => return Ok(()),
            Err(e)
                if attempt < ATTEMPTS
                    && !e.connection_lost
                    && matches!(e.sqlstate.as_str(), "23505" | "40P01") =>
            {
                tracing::debug!("two-phase commit setup raced another session ({e}); again");
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The role of its own, when not done yet and the server user may create it.
async fn harden(
    session: &mut dyn ShardSession,
    shard: usize,
    user: &UserPools,
    grantees: &[String],
) -> Result<(), String> {
    let hardened = session
        .simple_query(sql::IS_HARDENED)
        .await
        .map_err(|e| format!("shard {shard}: {e}"))?;
    let can_execute = session
        .simple_query(
            "SELECT has_function_privilege('orochi.record_decision(text, text)', 'EXECUTE')",
        )
        .await
        .map_err(|e| format!("shard {shard}: {e}"))?;
    if hardened.first_value() == Some("t") && can_execute.first_value() == Some("t") {
        return Ok(());
    }
    match run_retrying(session, &sql::harden(grantees)).await {
        Ok(()) => {
            tracing::info!(pool = %user.pool_name, shard, "two-phase commit: orochi.twopc_decisions now belongs to role {}; server users may only call orochi.record_decision", sql::OWNER_ROLE);
            Ok(())
        }
        Err(e) if e.connection_lost => Err(format!("shard {shard}: {e}")),
        Err(e) if hardened.first_value() == Some("t") => Err(format!(
            "shard {shard}: server user \"{}\" may not call orochi.record_decision and could not be granted it ({e}); run GRANT USAGE ON SCHEMA orochi TO ...; GRANT SELECT ON orochi.twopc_decisions TO ...; GRANT EXECUTE ON FUNCTION orochi.record_decision(text, text), orochi.forget_decisions(text[], float8) TO ... as a superuser (README: Two-phase commit)",
            user.user.server_username
        )),
        Err(e) => {
            warn_once(user, shard, &e);
            Ok(())
        }
    }
}

/// One warning per pool and process: the table stays writable by the server user.
fn warn_once(user: &UserPools, shard: usize, e: &ParticipantError) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut w = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if !w
        .get_or_insert_with(HashSet::new)
        .insert(user.pool_name.clone())
    {
        return;
    }
    tracing::warn!(
        pool = %user.pool_name,
        shard,
        "two-phase commit: orochi.twopc_decisions stays owned by server user \"{}\", so clients of this pool can write decisions ({e}); give that user CREATEROLE for one `orochi-router setup` run (or run it with a superuser), see README: Two-phase commit",
        user.user.server_username
    );
}
