//! One user entry, shared by `[pools.X.users.N]` (PgCat: `username`) and
//! `users.toml` `[[users]]` (PgDog: `name`, `pooler_mode`, `server_user`).

use crate::choices;
use crate::model::{AuthType, Secret, User};
use crate::password;
use crate::reader::{Ctx, Section};

/// Pool-level defaults for users that do not set their own sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserDefaults {
    pub pool_size: usize,
    pub min_pool_size: usize,
}

impl Default for UserDefaults {
    fn default() -> Self {
        UserDefaults {
            pool_size: 10,
            min_pool_size: 0,
        }
    }
}

/// Which spelling family the entry uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `orochi.toml` / `pgcat.toml`.
    Pool,
    /// `users.toml`.
    UsersFile,
}

/// Reads the user keys; the caller reads any other keys and calls `finish`.
pub(crate) fn parse_user(
    cx: &mut Ctx,
    sec: &mut Section,
    dialect: Dialect,
    defaults: UserDefaults,
) -> Option<User> {
    let name_key = match dialect {
        Dialect::Pool => "username",
        Dialect::UsersFile => "name",
    };
    let username = sec.string(cx, name_key);
    if !sec.has(name_key) {
        cx.error(
            sec.span.clone(),
            format!("{}: missing required key \"{name_key}\"", sec.name()),
        );
    }
    let raw_password = sec.string(cx, "password").unwrap_or_default();
    let password = match password::classify(&raw_password) {
        Ok(p) => Some(p),
        Err(msg) => {
            cx.error(
                sec.value_span("password"),
                format!("key \"password\" in {}: {msg}", sec.name()),
            );
            None
        }
    };
    let pool_size = sec.count(cx, "pool_size", 1).unwrap_or(defaults.pool_size);
    let min_pool_size = sec.count(cx, "min_pool_size", 0);
    let mut pool_mode = sec.choice(cx, "pool_mode", choices::POOL_MODE);
    let mut server_username = sec.string(cx, "server_username");
    if dialect == Dialect::UsersFile {
        pool_mode = pool_mode.or_else(|| sec.choice(cx, "pooler_mode", choices::POOL_MODE));
        server_username = server_username.or_else(|| sec.string(cx, "server_user"));
    }
    let server_password = sec.string(cx, "server_password");
    let statement_timeout = sec.millis(cx, "statement_timeout").filter(|d| !d.is_zero());
    let max_user_client_connections = sec.count(cx, "max_user_client_connections", 0);
    let auth_type = sec.choice(cx, "auth_type", choices::AUTH_TYPE);

    if let Some(min) = min_pool_size {
        if min > pool_size {
            cx.error(
                sec.value_span("min_pool_size"),
                format!(
                    "key \"min_pool_size\" in {}: min_pool_size ({min}) is larger than pool_size ({pool_size})",
                    sec.name()
                ),
            );
        }
    }
    let min_pool_size = min_pool_size.unwrap_or(defaults.min_pool_size.min(pool_size));

    let username = username?.trim().to_string();
    if username.is_empty() {
        cx.error(
            sec.value_span(name_key),
            format!("key \"{name_key}\" in {}: must not be empty", sec.name()),
        );
        return None;
    }
    // On a malformed password the error is recorded; keep the user so the pool does
    // not also get a misleading "has no users" error.
    let password = password.unwrap_or(Secret::None);
    // No silent trust: a user without a password logs in without one only when the
    // configuration says so in as many words (else its logins are refused).
    match (&password, auth_type) {
        (Secret::None, _) => {}
        (_, Some(AuthType::Trust)) => cx.error(
            sec.value_span("auth_type"),
            format!(
                "key \"auth_type\" in {}: \"trust\" and a password contradict each other; remove one",
                sec.name()
            ),
        ),
        _ => {}
    }
    let server_password = server_password.or_else(|| match &password {
        Secret::Plain(p) => Some(p.clone()),
        _ => None,
    });
    Some(User {
        server_username: server_username.unwrap_or_else(|| username.clone()),
        username,
        password,
        server_password,
        pool_size,
        min_pool_size,
        pool_mode,
        statement_timeout,
        max_user_client_connections: max_user_client_connections.unwrap_or(0),
        trust: auth_type == Some(AuthType::Trust),
    })
}
