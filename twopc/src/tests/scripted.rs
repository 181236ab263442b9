//! A participant whose answers are scripted per kind of statement, recording every
//! statement it receives (also into a trace shared by all participants, to check the
//! order across shards).

use crate::error::ParticipantError;
use crate::participant::{BoxFuture, Participant};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prepare,
    /// The coordinator's decision INSERT and COMMIT, one message.
    Decide,
    Commit,
    Rollback,
    CommitPrepared,
    RollbackPrepared,
}

pub fn kind_of(sql: &str) -> Kind {
    if sql.starts_with("PREPARE TRANSACTION ") {
        Kind::Prepare
    } else if sql.starts_with("SELECT orochi.record_decision(") && sql.ends_with("; COMMIT") {
        Kind::Decide
    } else if sql.starts_with("COMMIT PREPARED ") {
        Kind::CommitPrepared
    } else if sql.starts_with("ROLLBACK PREPARED ") {
        Kind::RollbackPrepared
    } else if sql == "COMMIT" {
        Kind::Commit
    } else if sql == "ROLLBACK" {
        Kind::Rollback
    } else {
        panic!("unexpected statement sent to a participant: {sql}")
    }
}

fn natural_tag(kind: Kind) -> &'static str {
    match kind {
        Kind::Prepare => "PREPARE TRANSACTION",
        Kind::Decide => "COMMIT",
        Kind::Commit => "COMMIT",
        Kind::Rollback => "ROLLBACK",
        Kind::CommitPrepared => "COMMIT PREPARED",
        Kind::RollbackPrepared => "ROLLBACK PREPARED",
    }
}

#[derive(Debug, Clone)]
pub enum Reply {
    Tag(&'static str),
    Error(&'static str),
    Lost,
    Hang,
    /// Answer normally after this long.
    Delay(Duration),
}

pub type Trace = Arc<Mutex<Vec<(usize, String)>>>;

pub struct Scripted {
    pub shard: usize,
    pub log: Vec<String>,
    trace: Trace,
    script: Vec<(Kind, Reply)>,
}

impl Scripted {
    pub fn new(shard: usize, trace: &Trace) -> Self {
        Scripted {
            shard,
            log: Vec::new(),
            trace: trace.clone(),
            script: Vec::new(),
        }
    }

    pub fn on(mut self, kind: Kind, reply: Reply) -> Self {
        self.script.push((kind, reply));
        self
    }
}

/// Participants for `shards`, sharing one trace.
pub fn parts(trace: &Trace, shards: &[usize]) -> Vec<Scripted> {
    shards.iter().map(|s| Scripted::new(*s, trace)).collect()
}

impl Participant for Scripted {
    fn shard(&self) -> usize {
        self.shard
    }

    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>> {
        let kind = kind_of(sql);
        self.log.push(sql.to_string());
        self.trace
            .lock()
            .unwrap()
            .push((self.shard, sql.to_string()));
        let reply = self
            .script
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r.clone())
            .unwrap_or(Reply::Tag(natural_tag(kind)));
        Box::pin(async move {
            match reply {
                Reply::Tag(t) => Ok(t.to_string()),
                Reply::Error(code) => {
                    Err(ParticipantError::server(code, format!("scripted {code}")))
                }
                Reply::Lost => Err(ParticipantError::lost("scripted connection loss")),
                Reply::Hang => std::future::pending().await,
                Reply::Delay(d) => {
                    tokio::time::sleep(d).await;
                    Ok(natural_tag(kind).to_string())
                }
            }
        })
    }
}
