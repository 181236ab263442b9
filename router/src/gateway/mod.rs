//! The JWT gateway (SPEC §9): a second listener, off unless `[gateway]` is configured,
//! where the password is a token from the company's identity provider.
//!
//! Layout: `verify` (signature and claims), `keys` (JWKS file, HS256 secret), `claims`
//! (role, tenant, the SQL of the session's identity), `guard` (statements that would
//! change that identity) and `tenant` (shard pinning) are pure and unit-tested;
//! `login` is the handshake on the socket; `token` mints dev tokens for the CLI.
//!
//! How a session carries its identity. Every gateway session uses the server
//! connections of `[gateway] user` (the authenticator, as in PostgREST). The token's
//! role and claims are two of the session's settings, `SET ROLE "<role>"` and
//! `set_config('request.jwt.claims', <json>, false)`, replayed by the ordinary
//! settings machinery (`client::params`) on every server connection the session takes,
//! and re-applied at the start of *every* transaction (the pool forgets the applied
//! settings of a connection that carried an identity when it is given back, whichever
//! path gave it back; in session mode the session forgets them at each transaction's
//! end). Session-level settings were
//! chosen over `SET LOCAL` inside each transaction because `SET LOCAL` ends at the
//! first COMMIT: a pipeline or a multi-statement query (`COMMIT; SELECT ...`) would run
//! its tail as the authenticator. A connection that carried a gateway identity is
//! marked; before any other client (or the router itself) uses it, the pool resets it
//! (`RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE`) or closes it, so nothing of
//! one token's session reaches the next client of that connection. The client cannot
//! change either setting (see `guard`).

pub mod claims;
pub mod guard;
pub mod keys;
pub mod login;
pub mod tenant;
pub mod token;
pub mod token_cli;
pub mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Pre-authentication messages larger than this are refused before they are read
/// (a few-KB token from Azure AD or AWS fits many times over).
pub const MAX_PRE_AUTH_MESSAGE: usize = 16 * 1024;

/// The gateway's running state, kept across reloads.
pub struct Gateway {
    pub keys: keys::KeyStore,
    /// Gateway sessions per tenant, for `max_connections_per_tenant`.
    tenants: Mutex<HashMap<String, usize>>,
}

/// One admitted session of a tenant; the count drops with it.
pub struct TenantTicket {
    gateway: Arc<Gateway>,
    tenant: String,
}

impl Drop for TenantTicket {
    fn drop(&mut self) {
        if let Ok(mut t) = self.gateway.tenants.lock() {
            if let Some(n) = t.get_mut(&self.tenant) {
                *n -= 1;
                if *n == 0 {
                    t.remove(&self.tenant);
                }
            }
        }
    }
}

/// What a gateway login gives its session.
pub struct SessionIdentity {
    pub identity: claims::Identity,
    /// The tenant's shard on a sharded pool (`tenant_claim`).
    pub pin: Option<tenant::Pin>,
    pub _ticket: Option<TenantTicket>,
}

impl Gateway {
    pub fn new() -> Arc<Self> {
        Arc::new(Gateway {
            keys: keys::KeyStore::empty(),
            tenants: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the configured keys (start and every reload). On error the running keys
    /// stay and the reason returns (the caller logs it; a reload goes on).
    pub fn configure(&self, config: &orochi_config::Config) -> Result<(), String> {
        let Some(g) = &config.gateway else {
            return Ok(());
        };
        let n = self.keys.configure(&g.keys)?;
        tracing::info!(keys = n, "JWT gateway keys loaded");
        Ok(())
    }

    /// Counts a session of `tenant`; `None` when `max` sessions of it are running.
    pub fn admit(self: &Arc<Self>, tenant: &str, max: Option<usize>) -> Option<TenantTicket> {
        let mut t = self.tenants.lock().ok()?;
        let n = t.entry(tenant.to_string()).or_insert(0);
        if max.is_some_and(|m| *n >= m) {
            return None;
        }
        *n += 1;
        Some(TenantTicket {
            gateway: self.clone(),
            tenant: tenant.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_match_the_metric() {
        let ours: Vec<&str> = verify::Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(ours, orochi_admin::GATEWAY_LOGIN_OUTCOMES.to_vec());
    }

    #[test]
    fn tenant_tickets_count_and_release() {
        let g = Gateway::new();
        let a = g.admit("7", Some(2)).unwrap();
        let _b = g.admit("7", Some(2)).unwrap();
        assert!(g.admit("7", Some(2)).is_none());
        assert!(g.admit("8", Some(2)).is_some());
        drop(a);
        assert!(g.admit("7", Some(2)).is_some());
    }
}
