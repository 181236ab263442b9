//! From a verified token to the session's identity: the role it runs as, its tenant,
//! the audit fields, and the two settings every transaction carries (`role` and
//! `request.jwt.claims`, the PostgREST/Supabase convention that RLS policies read with
//! `current_setting('request.jwt.claims', true)::jsonb`).
//!
//! The SQL is built here, quoted for any session state: the role as a double-quoted
//! identifier, the claims as an `E''` literal with quotes and backslashes doubled, so
//! the text means the same whether `standard_conforming_strings` is on or off.

use super::verify::{Outcome, Refusal, Verified};
use serde_json::Value;

/// Who a gateway session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: String,
    /// The tenant claim's value as text (a number's decimal form).
    pub tenant: Option<String>,
    pub sub: Option<String>,
    pub iss: String,
    pub kid: Option<String>,
    /// The whole claims object, compact JSON.
    pub claims_json: String,
}

fn bad(reason: String) -> Refusal {
    Refusal {
        outcome: Outcome::BadClaims,
        reason,
    }
}

/// A PostgreSQL role name a token may carry: non-empty, at most 63 bytes (longer names
/// would be truncated by the server, silently meaning another role), no control
/// characters.
fn valid_role(r: &str) -> bool {
    !r.is_empty() && r.len() <= 63 && !r.chars().any(char::is_control)
}

impl Identity {
    /// Reads the role (and tenant) claims; a missing or mistyped one refuses the token.
    pub fn from_token(
        v: &Verified,
        role_claim: &str,
        tenant_claim: Option<&str>,
    ) -> Result<Identity, Refusal> {
        let role = match v.claims.get(role_claim) {
            Some(Value::String(r)) if valid_role(r) => r.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "role claim \"{role_claim}\" is not a valid role name: {other}"
                )))
            }
            None => return Err(bad(format!("no role claim \"{role_claim}\""))),
        };
        let tenant = match tenant_claim {
            None => None,
            Some(c) => match v.claims.get(c) {
                Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => Some(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
                Some(other) => {
                    return Err(bad(format!(
                        "tenant claim \"{c}\" must be a string or an integer, found {other}"
                    )))
                }
                None => return Err(bad(format!("no tenant claim \"{c}\""))),
            },
        };
        Ok(Identity {
            role,
            tenant,
            sub: v
                .claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            iss: v
                .claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            kid: v.kid.clone(),
            claims_json: Value::Object(v.claims.clone()).to_string(),
        })
    }

    /// `SET ROLE "<role>"`.
    pub fn role_sql(&self) -> String {
        format!("SET ROLE \"{}\"", self.role.replace('"', "\"\""))
    }

    /// `SELECT pg_catalog.set_config('request.jwt.claims', E'<json>', false)`.
    pub fn claims_sql(&self) -> String {
        format!(
            "SELECT pg_catalog.set_config('request.jwt.claims', E'{}', false)",
            self.claims_json.replace('\\', "\\\\").replace('\'', "''")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(claims: Value) -> Verified {
        Verified {
            kid: Some("k".into()),
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn role_and_tenant_are_read_and_quoted() {
        let v = verified(serde_json::json!({
            "role": "app \"user\"", "tenant_id": 42, "sub": "u1", "iss": "i",
            "note": "it's a \\ test"
        }));
        let id = Identity::from_token(&v, "role", Some("tenant_id")).unwrap();
        assert_eq!(id.tenant.as_deref(), Some("42"));
        assert_eq!(id.role_sql(), "SET ROLE \"app \"\"user\"\"\"");
        let sql = id.claims_sql();
        assert!(sql.contains("it''s a \\\\\\\\ test"), "{sql}");
        assert_eq!(id.sub.as_deref(), Some("u1"));
    }

    #[test]
    fn missing_or_mistyped_claims_are_refused() {
        let v = verified(serde_json::json!({"role": 3}));
        assert!(Identity::from_token(&v, "role", None).is_err());
        let v = verified(serde_json::json!({"role": "a"}));
        assert!(Identity::from_token(&v, "role", Some("tenant_id")).is_err());
        let v = verified(serde_json::json!({"role": "a", "tenant_id": 1.5}));
        assert!(Identity::from_token(&v, "role", Some("tenant_id")).is_err());
        let v = verified(serde_json::json!({"role": "x".repeat(64)}));
        assert!(Identity::from_token(&v, "role", None).is_err());
        let v = verified(serde_json::json!({"role": "a\nb"}));
        assert!(Identity::from_token(&v, "role", None).is_err());
    }
}
