//! `orochi-router token`: mint a dev token, print the dev key's JWKS, or create a dev
//! key. Claim names, issuer and audience come from `[gateway]` when a config is given
//! (`-c`), so the token fits the gateway it is meant for.

use super::token::{generate_dev_key, now, parse_ttl, Claims, SigningKey};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct TokenArgs {
    /// PEM private key (Ed25519, EC P-256 or RSA).
    #[arg(long)]
    pub key: PathBuf,
    /// Key id, in the token header and the JWKS.
    #[arg(long, default_value = "dev")]
    pub kid: String,
    /// The database role (the role claim; also the startup user).
    #[arg(long)]
    pub role: Option<String>,
    /// The tenant claim's value (the shard key of the tenant's rows).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Lifetime: 1h, 30m, 3600 ...
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// `sub` (default: the role).
    #[arg(long)]
    pub sub: Option<String>,
    /// `iss` (default: [gateway] issuer, else "orochi-dev").
    #[arg(long)]
    pub issuer: Option<String>,
    /// `aud`, repeatable (default: [gateway] audience, else "orochi").
    #[arg(long)]
    pub audience: Vec<String>,
    /// Print the key's public JWKS (for [gateway] jwks_file) instead of a token.
    #[arg(long)]
    pub print_jwks: bool,
    /// Write a new Ed25519 key to --key (refused if the file exists), then go on.
    #[arg(long)]
    pub generate_key: bool,
}

/// Runs the command; returns the exit code.
pub fn run(args: TokenArgs, config: Option<orochi_config::Config>) -> i32 {
    match run_inner(args, config) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            eprintln!("orochi-router token: {e}");
            1
        }
    }
}

fn run_inner(a: TokenArgs, config: Option<orochi_config::Config>) -> Result<String, String> {
    if a.generate_key {
        if a.key.exists() {
            return Err(format!("{} exists; not overwriting a key", a.key.display()));
        }
        std::fs::write(&a.key, generate_dev_key()?)
            .map_err(|e| format!("cannot write {}: {e}", a.key.display()))?;
        if !a.print_jwks && a.role.is_none() {
            return Ok(String::new());
        }
    }
    let pem = std::fs::read(&a.key).map_err(|e| format!("cannot read {}: {e}", a.key.display()))?;
    let key = SigningKey::from_pem(&pem)?;
    if a.print_jwks {
        return key.jwks(&a.kid);
    }
    let gw = config.and_then(|c| c.gateway);
    let role = a
        .role
        .ok_or("--role is required (the role claim, which is also the startup user)")?;
    let claims = Claims {
        issuer: a
            .issuer
            .or_else(|| gw.as_ref().map(|g| g.issuer.clone()))
            .unwrap_or_else(|| "orochi-dev".into()),
        audience: if a.audience.is_empty() {
            gw.as_ref()
                .map(|g| g.audience.clone())
                .unwrap_or_else(|| vec!["orochi".into()])
        } else {
            a.audience
        },
        role_claim: gw
            .as_ref()
            .map(|g| g.role_claim.clone())
            .unwrap_or_else(|| "role".into()),
        tenant_claim: gw
            .as_ref()
            .and_then(|g| g.tenant_claim.clone())
            .unwrap_or_else(|| "tenant_id".into()),
        sub: a.sub.unwrap_or_else(|| role.clone()),
        role,
        tenant: a.tenant,
        ttl: parse_ttl(&a.ttl)?,
    };
    key.sign(Some(&a.kid), &claims.to_json(now()))
}
