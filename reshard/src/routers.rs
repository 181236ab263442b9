//! The routers, through their admin consoles (`postgresql://admin:pw@host:6432/orochi`):
//! PAUSE, RESHARD SWITCH (the router answers with the map it now uses, which is the
//! confirmation) and RESUME.

use crate::error::{describe, Error, Result};
use crate::topology::ShardSpec;
use std::time::Duration;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub struct Router {
    /// Without its password, for messages.
    pub url: String,
    raw: String,
    client: Client,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Router {
    pub async fn connect(url: &str) -> Result<Router> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("--router {}: {e}", redact(url))))?;
        cfg.connect_timeout(Duration::from_secs(5));
        let (client, conn) = cfg
            .connect(NoTls)
            .await
            .map_err(|e| Error::Db(describe(&format!("router {}", redact(url)), &e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Router {
            url: redact(url),
            raw: url.to_string(),
            client,
        })
    }

    async fn run(&self, cmd: &str) -> Result<Vec<Vec<String>>> {
        let msgs = self
            .client
            .simple_query(cmd)
            .await
            .map_err(|e| Error::Db(describe(&format!("router {}: {cmd}", self.url), &e)))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("").to_string())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    pub async fn pause(&self, pool: &str) -> Result<()> {
        self.run(&format!("PAUSE {pool}")).await.map(|_| ())
    }

    pub async fn resume(&self, pool: &str) -> Result<()> {
        self.run(&format!("RESUME {pool}")).await.map(|_| ())
    }

    /// RESUME over a new session: the undo's, since this session may still wait for a
    /// PAUSE that timed out (a console answers one command at a time).
    pub async fn resume_fresh(&self, pool: &str) -> Result<()> {
        Router::connect(&self.raw).await?.resume(pool).await
    }

    /// Switches `pool` to `shards`; the router's answer (pool, shard count, databases)
    /// must name exactly those databases.
    pub async fn switch(&self, pool: &str, shards: &[ShardSpec]) -> Result<()> {
        let json = serde_json::to_string(shards).map_err(|e| Error::Config(e.to_string()))?;
        let rows = self
            .run(&format!(
                "RESHARD SWITCH {pool} '{}'",
                json.replace('\'', "''")
            ))
            .await?;
        let want: Vec<&str> = shards.iter().map(|s| s.database.as_str()).collect();
        let got = rows
            .first()
            .and_then(|r| r.get(2))
            .cloned()
            .unwrap_or_default();
        if got != want.join(",") {
            return Err(Error::Db(format!(
                "router {}: switch of pool {pool} not confirmed (it reports databases '{got}', expected '{}')",
                self.url,
                want.join(",")
            )));
        }
        Ok(())
    }
}
