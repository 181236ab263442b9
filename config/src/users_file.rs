//! `users.toml`: `[[users]]` entries (`name`, `password`, `database`, `pool_size`, ...)
//! that add users to the pools of `orochi.toml`.
//!
//! Kept apart so secrets can live in a separately mounted file (a Kubernetes Secret)
//! while the topology lives in a ConfigMap, as PgDog users do.

use crate::accepted;
use crate::model::Pool;
use crate::pools::PoolSite;
use crate::reader::{Ctx, Section};
use crate::users::{parse_user, Dialect, UserDefaults};
use std::collections::BTreeMap;

pub(crate) fn merge_users(
    cx: &mut Ctx,
    mut root: Section,
    pools: &mut BTreeMap<String, Pool>,
    sites: &BTreeMap<String, PoolSite>,
) {
    let known = pools
        .keys()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for entry in root.entries(cx, "users") {
        let mut sec = entry.section;
        let database = sec.string(cx, "database");
        if !sec.has("database") {
            cx.error(
                sec.span.clone(),
                format!(
                    "{}: missing required key \"database\" (the pool this user connects to)",
                    sec.name()
                ),
            );
        }
        let defaults = database
            .as_ref()
            .and_then(|d| sites.get(d))
            .map(|s| s.user_defaults)
            .unwrap_or_else(UserDefaults::default);
        let user = parse_user(cx, &mut sec, Dialect::UsersFile, defaults);
        sec.accept(accepted::USER);
        if let (Some(db), Some(user)) = (database, user) {
            match pools.get_mut(&db) {
                None => cx.error(
                    sec.value_span("database"),
                    format!(
                        "key \"database\" in {}: unknown pool \"{db}\"; pools are: {known}",
                        sec.name()
                    ),
                ),
                Some(pool) if pool.users.iter().any(|u| u.username == user.username) => cx.error(
                    sec.value_span("name"),
                    format!(
                        "key \"name\" in {}: user \"{}\" is already defined for pool \"{db}\"",
                        sec.name(),
                        user.username
                    ),
                ),
                Some(pool) => pool.users.push(user),
            }
        }
        sec.finish(cx);
    }
    root.finish(cx);
}
