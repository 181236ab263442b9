//! Sessions to the shards. Every session of the tool (and every copy session, through
//! the subscriptions' connection strings, see [`conninfo`]) runs with statement, lock,
//! idle-in-transaction and idle-session timeouts off: a database or role default such as
//! `idle_in_transaction_session_timeout` must not kill a copy half way.

use crate::error::{db, describe, Error, Result};
use crate::topology::{Endpoint, Login};
use std::time::Duration;
use tokio_postgres::{types::ToSql, Client, NoTls, Row};

/// The settings every session of the tool, and every copy session, starts with.
pub const NO_TIMEOUTS: &str = "-c statement_timeout=0 -c lock_timeout=0 \
-c idle_in_transaction_session_timeout=0 -c idle_session_timeout=0";

pub struct Conn {
    pub client: Client,
    /// "old shard 0 (127.0.0.1:5432/app_s0)", for messages.
    pub label: String,
    pub ep: Endpoint,
}

fn config(ep: &Endpoint, login: &Login, database: &str) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&ep.host)
        .port(ep.port)
        .dbname(database)
        .user(&login.user)
        .application_name("orochi-reshard")
        .options(NO_TIMEOUTS)
        .connect_timeout(Duration::from_secs(10));
    if let Some(p) = &login.password {
        c.password(p);
    }
    c
}

/// Connects to `ep` as `login`.
pub async fn connect(ep: &Endpoint, login: &Login, label: &str) -> Result<Conn> {
    connect_db(ep, login, &ep.database, label).await
}

async fn connect_db(ep: &Endpoint, login: &Login, database: &str, label: &str) -> Result<Conn> {
    let label = format!("{label} ({ep})");
    let (client, connection) = config(ep, login, database)
        .connect(NoTls)
        .await
        .map_err(|e| db(&label, e))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn {
        client,
        label,
        ep: ep.clone(),
    })
}

/// Connects to the server of `ep`, database `postgres` (server-wide settings, and
/// databases that may not exist yet).
pub async fn connect_server(ep: &Endpoint, login: &Login, label: &str) -> Result<Conn> {
    connect_db(ep, login, "postgres", label).await
}

/// Connects, creating the database first (owned by `owner`) when it does not exist.
/// Returns whether it was created.
pub async fn connect_or_create(
    ep: &Endpoint,
    login: &Login,
    label: &str,
    owner: &str,
) -> Result<(Conn, bool)> {
    match connect(ep, login, label).await {
        Ok(c) => Ok((c, false)),
        Err(Error::Db(m)) if m.contains("(3D000)") => {
            let admin = connect_db(ep, login, "postgres", label).await?;
            admin
                .exec(&format!(
                    "CREATE DATABASE {} OWNER {}",
                    crate::quote::ident(&ep.database),
                    crate::quote::ident(owner)
                ))
                .await?;
            Ok((connect(ep, login, label).await?, true))
        }
        Err(e) => Err(e),
    }
}

/// The database exists (false on 3D000; other errors are errors).
pub async fn exists(ep: &Endpoint, login: &Login) -> Result<bool> {
    match connect(ep, login, "target").await {
        Ok(_) => Ok(true),
        Err(Error::Db(m)) if m.contains("(3D000)") => Ok(false),
        Err(e) => Err(e),
    }
}

impl Conn {
    /// Lets this session run DDL past the reshard's own DDL guard (event triggers fire
    /// only in sessions with `session_replication_role = origin`). Superuser only.
    pub async fn bypass_guards(&self) -> Result<()> {
        self.exec("SET session_replication_role = replica").await
    }

    /// One or more statements in one implicit transaction (simple query protocol).
    pub async fn exec(&self, sql: &str) -> Result<()> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| db(&self.label, e))
    }

    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| db(&self.label, e))
    }

    pub async fn one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
        self.client
            .query_one(sql, params)
            .await
            .map_err(|e| db(&self.label, e))
    }

    /// The error text of a statement that may fail, for callers that tolerate it.
    pub async fn try_exec(&self, sql: &str) -> std::result::Result<(), String> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| describe(&self.label, &e))
    }
}

/// The connection string a subscription on `dst` uses to reach `src`: no timeouts (see
/// the module doc), the tool's login.
pub fn conninfo(src: &Endpoint, login: &Login) -> String {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut s = format!(
        "host={} port={} dbname={} user={} application_name=orochi_reshard options={}",
        q(&src.host),
        src.port,
        q(&src.database),
        q(&login.user),
        q(NO_TIMEOUTS)
    );
    if let Some(p) = &login.password {
        s.push_str(&format!(" password={}", q(p)));
    }
    s
}
