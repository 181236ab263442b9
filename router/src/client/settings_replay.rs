//! Bringing a server connection's settings to the client's: the SET/RESET/startup
//! parameters (`params.rs`) replayed on a connection whose fingerprint differs, and a
//! JWT gateway session's identity set before anything else runs on it.
//!
//! A method of the session's state (`session_state.rs`), with the context (who the
//! client is) and the client's output (a warning for a setting that could not be
//! restored) as arguments: both the session's checkout and the sharded path's (which
//! holds the session's parts, not the session) replay settings.

use super::context::Context;
use super::session_state::SessionState;
use crate::backend::Checkout;
use crate::error::{Result, RouterError};
use bytes::BytesMut;
use orochi_wire::{BackendMessage, PgError};

impl SessionState {
    /// Brings a connection's settings to this client's (SET/RESET/startup parameters).
    /// A setting whose replay fails (a role dropped since, a privilege revoked) is
    /// dropped from the client's settings with a warning, instead of failing every later
    /// statement of the session.
    pub(crate) async fn apply_params(
        &mut self,
        co: &mut Checkout,
        ctx: &Context,
        out: &mut BytesMut,
    ) -> Result<()> {
        if co.conn().applied_params == self.params.fingerprint() {
            return Ok(());
        }
        // Boxed: the usual checkout finds the settings in place, and its future (which
        // every statement's carries) need not hold room for these round trips.
        Box::pin(self.apply_params_now(co, ctx, out)).await
    }

    async fn apply_params_now(
        &mut self,
        co: &mut Checkout,
        ctx: &Context,
        out: &mut BytesMut,
    ) -> Result<()> {
        let fp = self.params.fingerprint();
        let conn = co.conn();
        // Marked before the first byte: even a half-applied identity is reset before
        // another client (or the router) uses this connection.
        conn.identity |= ctx.gateway.is_some();
        let sql = self.params.sync_sql(conn.applied_params);
        if sql.is_empty() || conn.run_silent(&sql).await?.is_none() {
            conn.applied_params = fp;
            return Ok(());
        }
        // One by one, from a reset state, keeping what still applies.
        conn.applied_params = super::params::UNKNOWN_PARAMS;
        if let Some(err) = conn
            .run_silent(&super::params::RESET_SQL.join(";\n"))
            .await?
        {
            return Err(RouterError::Pg(err));
        }
        let settings: Vec<(String, String)> = self
            .params
            .in_replay_order()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, set) in settings {
            if let Some(err) = conn.run_silent(&set).await? {
                if ctx.gateway.is_some() && (name == "role" || name == "request.jwt.claims") {
                    // Never run on without the token's identity (as the authenticator).
                    tracing::warn!(client = ctx.id, setting = %name, error = %err.fields.message, "the JWT gateway session's identity could not be set; session ended");
                    return Err(RouterError::Pg(PgError::error(
                        "42501",
                        format!(
                            "the role the token names cannot be used: {}",
                            err.fields.message
                        ),
                    )));
                }
                tracing::warn!(client = ctx.id, setting = %name, error = %err.fields.message, "session setting could not be restored; dropped");
                BackendMessage::NoticeResponse(
                    PgError::new(
                        "WARNING",
                        "01000",
                        format!(
                            "the session setting \"{name}\" could not be restored on a server connection and was dropped: {}",
                            err.fields.message
                        ),
                    )
                    .fields,
                )
                .encode(out);
                self.params.forget(&name);
            }
        }
        conn.applied_params = self.params.fingerprint();
        Ok(())
    }
}
