//! The JWT gateway's test bed: two real shards with `notes` distributed by `tenant_id`
//! under an RLS policy on `request.jwt.claims`, a role `gw_reader` the tokens name, a
//! self-signed certificate (rcgen), signing keys made here (Ed25519 by rcgen, RSA by the
//! `rsa` crate), a JWKS file and a router config file (so RELOAD re-reads both).

use super::certs::{scratch_dir, write, Ca};
use super::raw::RawClient;
use super::shards::{shard_db, shard_of};
use super::*;
use orochi_router::gateway::token::{generate_dev_key, now, SigningKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub const ROLE: &str = "gw_reader";
pub const ISSUER: &str = "https://idp.test/";
pub const AUDIENCE: &str = "orochi-test";
/// Tenants: A and B share shard 0, C lives on shard 1 (chosen by the real hash).
pub fn tenants() -> (i64, i64, i64) {
    let on = |s: usize| (1..).filter(move |t| shard_of(*t) == s);
    let mut zero = on(0);
    (
        zero.next().unwrap(),
        zero.next().unwrap(),
        on(1).next().unwrap(),
    )
}

/// Rows of tenant `t` (a few, different per tenant).
pub fn rows_of(t: i64) -> i64 {
    2 + t % 5
}

pub type Tls = TlsStream<TcpStream>;

pub struct Bed {
    pub router: Router,
    pub db: String,
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub jwks: PathBuf,
    pub config: PathBuf,
    /// `k1`: the key the JWKS file starts with.
    pub key: SigningKey,
}

/// The role, the table with its policy and the rows, on both shards.
async fn make_db() -> String {
    // Roles are per instance and shared by test processes: tolerate a race.
    let admin = [
        format!("DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN OTHERS THEN NULL; END $$"),
        format!("DO $$ BEGIN GRANT {ROLE} TO app; EXCEPTION WHEN OTHERS THEN NULL; END $$"),
    ];
    shard_db("gw", &admin, |k| {
        format!(
            "CREATE TABLE notes (tenant_id bigint NOT NULL, id int NOT NULL, body text);
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY tenant_rows ON notes
               USING (tenant_id = (current_setting('request.jwt.claims', true)::jsonb->>'tenant_id')::bigint);
             GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO {ROLE};
             CREATE TEMP TABLE ks (id bigint) PARTITION BY HASH (id);
             INSERT INTO notes SELECT t, g, 'note ' || g || ' of ' || t
               FROM generate_series(1, 40) t, generate_series(1, 2 + t % 5) g
              WHERE satisfies_hash_partition('ks'::regclass, 2, {k}, t::bigint);"
        )
    })
    .await
}

/// `[general]` + pool + `[gateway]` as text; `gateway_extra` goes in `[gateway]`.
pub fn config_text(
    bed_dir: &Path,
    db: &str,
    mode: &str,
    pool_size: usize,
    gateway_extra: &str,
) -> String {
    let f = fleet();
    format!(
        r#"[general]
host = "127.0.0.1"
port = 0
admin_port = 0
metrics_port = 0
tls_certificate = "{cert}"
tls_private_key = "{key}"

[pools.{db}]
pool_mode = "{mode}"

[pools.{db}.users.0]
username = "{APP_USER}"
password = "{APP_PASSWORD}"
pool_size = {pool_size}

[pools.{db}.shards.0]
database = "{db}"
servers = [["{h0}", {p0}, "primary"]]

[pools.{db}.shards.1]
database = "{db}"
servers = [["{h1}", {p1}, "primary"]]

[sharding]
enabled = true

[[sharding.tables]]
name = "notes"
column = "tenant_id"
data_type = "bigint"

[gateway]
port = 0
pool = "{db}"
jwks_file = "{jwks}"
issuer = "{ISSUER}"
audience = ["other", "{AUDIENCE}"]
user = "{APP_USER}"
role_claim = "role"
leeway_seconds = 5
{gateway_extra}
"#,
        cert = bed_dir.join("server.crt").display(),
        key = bed_dir.join("server.key").display(),
        jwks = bed_dir.join("jwks.json").display(),
        h0 = f.shards[0].0,
        p0 = f.shards[0].1,
        h1 = f.shards[1].0,
        p1 = f.shards[1].1,
    )
}

pub fn new_key() -> SigningKey {
    SigningKey::from_pem(generate_dev_key().unwrap().as_bytes()).unwrap()
}

/// A JWKS document with these (kid, key) pairs.
pub fn jwks_of(keys: &[(&str, &SigningKey)]) -> String {
    let all: Vec<Value> = keys
        .iter()
        .map(|(kid, k)| {
            let doc: Value = serde_json::from_str(&k.jwks(kid).unwrap()).unwrap();
            doc["keys"][0].clone()
        })
        .collect();
    json!({ "keys": all }).to_string()
}

impl Bed {
    /// Transaction mode, sessions pinned by `tenant_claim = "tenant_id"`.
    pub async fn start(pool_size: usize, gateway_extra: &str) -> Bed {
        let extra = format!("tenant_claim = \"tenant_id\"\n{gateway_extra}");
        Bed::start_mode("transaction", pool_size, &extra).await
    }

    pub async fn start_mode(mode: &str, pool_size: usize, gateway_extra: &str) -> Bed {
        let db = make_db().await;
        let dir = scratch_dir("gateway");
        let ca = Ca::new("gateway test CA");
        let leaf = ca.leaf("router", &["127.0.0.1", "localhost"], 1);
        write(&dir, "server.crt", &leaf.cert_pem);
        write(&dir, "server.key", &leaf.key_pem);
        let ca_path = write(&dir, "ca.crt", &ca.pem());
        let key = new_key();
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, jwks_of(&[("k1", &key)])).unwrap();
        let config = dir.join("orochi.toml");
        std::fs::write(
            &config,
            config_text(&dir, &db, mode, pool_size, gateway_extra),
        )
        .unwrap();
        let router = Router::start_file(&config).await;
        Bed {
            router,
            db,
            dir,
            ca: ca_path,
            jwks,
            config,
            key,
        }
    }

    pub fn port(&self) -> u16 {
        self.router.gateway_port.expect("gateway listener")
    }

    /// Claims of a good token for `tenant`.
    pub fn claims(&self, tenant: i64) -> Map<String, Value> {
        let n = now();
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{tenant}"),
               "role": ROLE, "tenant_id": tenant, "iat": n, "exp": n + 600})
        .as_object()
        .unwrap()
        .clone()
    }

    pub fn token(&self, tenant: i64) -> String {
        self.key.sign(Some("k1"), &self.claims(tenant)).unwrap()
    }

    /// A TLS stream to the gateway port (SSLRequest, the test CA trusted).
    pub async fn tls(&self) -> Tls {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tcp = TcpStream::connect(("127.0.0.1", self.port()))
            .await
            .unwrap();
        tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .await
            .unwrap();
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[0], b'S', "the gateway must accept TLS");
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// Logs in over TLS as `user` with `token` as the password.
    pub async fn login_as(&self, user: &str, token: &str) -> Result<RawClient<Tls>, ErrorFields> {
        let s = self.tls().await;
        RawClient::login_password(s, user, &self.db, &[], Some(token)).await
    }

    pub async fn login(&self, token: &str) -> Result<RawClient<Tls>, ErrorFields> {
        self.login_as(ROLE, token).await
    }

    /// `escape_role()` on the shard of `tenant`: dynamic SQL that ends the session's
    /// `SET ROLE` (what the router cannot see; the README's residual risk).
    pub async fn create_escape_function(&self, tenant: i64) {
        use sqlx::ConnectOptions;
        let opts =
            super::shards::shard_opts(shard_of(tenant), SUPERUSER, SUPERUSER_PASSWORD, &self.db);
        let mut su = opts.connect().await.unwrap();
        sqlx::raw_sql("CREATE FUNCTION escape_role() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN EXECUTE 'RE' || 'SET ROLE'; RETURN current_user; END $f$")
            .execute(&mut su)
            .await
            .unwrap();
    }

    /// The metrics text (`/metrics`).
    pub fn metrics(&self) -> String {
        let view = orochi_router::admin_view::AppView::new(self.router.app.clone());
        self.router.app.metrics.scrape(&view)
    }

    /// `orochi_pgdog_gateway_logins_total{outcome="..."}`.
    pub fn logins(&self, outcome: &str) -> u64 {
        let needle = format!("orochi_pgdog_gateway_logins_total{{outcome=\"{outcome}\"}} ");
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or_else(|| panic!("no metric for outcome {outcome}"))
    }
}

pub use orochi_wire::ErrorFields;

/// The SQLSTATE of a refused login.
pub fn code(r: Result<RawClient<Tls>, ErrorFields>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.code.clone(),
    }
}
