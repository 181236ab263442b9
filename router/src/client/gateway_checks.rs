//! What a JWT gateway session may not send, checked before the ordinary routing sees a
//! message: commands that would change the identity its token gave it
//! (`gateway::guard`), manual shard choices (`SET orochi.shard`, shard comments), and,
//! on a tenant-pinned session, keys of another tenant (`gateway::tenant`). Each is
//! refused with 42501; the session goes on.

use super::session::Session;
use crate::planner::directive::{comment_shard, directive, Directive};
use crate::planner::sharding::resolve::Params;
use orochi_wire::{FrontendMessage, PgError};

fn denied(m: impl Into<String>) -> PgError {
    PgError::error(crate::gateway::guard::SQLSTATE, m)
}

impl Session {
    /// Why a simple query (or a Parse's text) may not run in this gateway session.
    pub(crate) fn gateway_refuse_query(&self, sql: &str) -> Option<PgError> {
        let g = self.ctx.gateway.as_ref()?;
        if comment_shard(sql).is_some()
            || matches!(
                directive(sql),
                Some(Directive::SetShard(_) | Directive::ResetShard)
            )
        {
            return Some(denied("permission denied: choosing the shard by hand (orochi.shard) is not allowed through the JWT gateway; the token's tenant decides"));
        }
        if let Some(m) = crate::gateway::guard::refuse(sql) {
            return Some(denied(m));
        }
        let (pin, schema) = (g.pin.as_ref()?, self.ctx.user.sharding.as_ref()?);
        pin.refuse(schema, sql, None).map(denied)
    }

    /// As [`gateway_refuse_query`](Self::gateway_refuse_query), for extended-protocol
    /// messages: Parse by its text, Bind by its statement's keys with the bound values,
    /// FunctionCall (a function by OID, `set_config` included) always.
    pub(crate) fn gateway_refuse_message(&self, msg: &FrontendMessage) -> Option<PgError> {
        let g = self.ctx.gateway.as_ref()?;
        match msg {
            FrontendMessage::Parse { query, .. } => self.gateway_refuse_query(query),
            FrontendMessage::Bind {
                statement,
                params,
                param_formats,
                ..
            } => {
                let (pin, schema) = (g.pin.as_ref()?, self.ctx.user.sharding.as_ref()?);
                let stmt = self.statement_for(statement)?;
                let p = Params {
                    values: params,
                    formats: param_formats,
                };
                pin.refuse(schema, &stmt.query, Some(p)).map(denied)
            }
            FrontendMessage::FunctionCall(_) => Some(denied(
                "permission denied: the FunctionCall message is not allowed through the JWT gateway",
            )),
            _ => None,
        }
    }
}
