//! Who a session is and what it runs under: the router's shared state, the client's id,
//! its user's pools and pool mode, a JWT gateway identity, the shard and role it chose by
//! hand, its cancel key and registry entry, its time bounds and its trace span.
//!
//! Mostly read while a statement runs; the pause gate (`pause_gate.rs`) is what replaces
//! the pools after a reload or a reshard switch. Here: which schema plans and which role
//! serves (`sharding`, `target_for`); the traced checkout is in `trace.rs`, the end of
//! an expired wait in `expiry.rs`. Its own type so that the sharded path
//! (`sharded_path.rs`) borrows it next to the other parts of the session, instead of the
//! whole session.

use super::deadline::Deadlines;
use crate::app::App;
use crate::backend::registry::Target;
use crate::backend::UserPools;
use crate::cancel::CancelKey;
use crate::clients::Registered;
use crate::gateway::SessionIdentity;
use crate::planner::sharding::ShardingSchema;
use orochi_config::{DefaultRole, PoolMode};
use std::sync::Arc;

/// The session's identity and the context its statements run in.
pub(crate) struct Context {
    pub(crate) app: Arc<App>,
    pub(crate) id: u64,
    pub(crate) user: Arc<UserPools>,
    /// `App::registry_generation` when `user` was last looked up (`pause_gate`); `MAX`
    /// until the first look.
    pub(crate) user_gen: u64,
    pub(crate) mode: PoolMode,
    /// A JWT gateway session: the token's identity (role, claims, tenant pin).
    pub(crate) gateway: Option<Arc<SessionIdentity>>,
    /// Shard chosen with `SET orochi.shard` (SPEC §3 manual override).
    pub(crate) shard: Option<usize>,
    /// Role chosen with `SET orochi.role`; `None` = read/write splitting decides.
    pub(crate) role: Option<Target>,
    pub(crate) cancel: CancelKey,
    pub(crate) client: Registered,
    /// `query_timeout` / `idle_transaction_timeout` (`deadline.rs`).
    pub(crate) deadlines: Deadlines,
    /// The span of the client's current transaction, when tracing (`trace.rs`).
    pub(crate) trace: Option<opentelemetry::Context>,
}

impl Context {
    pub(crate) fn new(
        app: Arc<App>,
        id: u64,
        user: Arc<UserPools>,
        cancel: CancelKey,
        client: Registered,
    ) -> Self {
        Context {
            id,
            mode: user.mode,
            user,
            user_gen: u64::MAX,
            gateway: None,
            shard: None,
            role: None,
            cancel,
            client,
            deadlines: Deadlines::new(&app.config().general.bounds),
            trace: None,
            app,
        }
    }

    /// Does `sharding()` give a schema? (Without the reference count.)
    pub(crate) fn is_sharded(&self) -> bool {
        self.shard.is_none() && self.user.sharding.is_some()
    }

    /// The planner's view of this pool, unless the session chose its shard by hand.
    pub(crate) fn sharding(&self) -> Option<Arc<ShardingSchema>> {
        if self.shard.is_some() {
            return None;
        }
        self.user.sharding.clone()
    }

    /// Primary or read server for a new checkout whose first statement `read`s only.
    pub(crate) fn target_for_read(&self) -> Target {
        self.target_for(true)
    }

    /// Primary or read server for a new checkout: the role chosen by hand, else the
    /// pool's read/write splitting (`read`: the request only reads).
    pub(crate) fn target_for(&self, read: bool) -> Target {
        if let Some(t) = self.role {
            return t;
        }
        let p = &self.user.pool;
        if !(p.query_parser_enabled && p.query_parser_read_write_splitting) {
            // Without the parser only the configured default can decide.
            return match p.default_role {
                DefaultRole::Replica => Target::Read,
                _ => Target::Primary,
            };
        }
        match p.default_role {
            DefaultRole::Primary => Target::Primary,
            _ if read => Target::Read,
            _ => Target::Primary,
        }
    }
}
