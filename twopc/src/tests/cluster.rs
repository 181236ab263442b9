//! An in-memory cluster with PostgreSQL's two-phase semantics, for the sweeper and the
//! crash scenarios: committed rows, prepared transactions (with an age), the decisions
//! table (primary key on gid), a session advisory lock, and shards that can be down.
//!
//! It understands exactly the SQL text the protocol is specified to send — written out
//! here independently of `sql.rs` — and answers anything else with a syntax error, so a
//! changed statement fails the tests. Open transactions live in the participant objects,
//! so dropping a participant (a crashed router's socket closing) loses them, as on a real
//! server; prepared transactions and committed rows survive.

use crate::error::ParticipantError;
use crate::participant::{BoxFuture, Participant};
use crate::sweeper::access::{QueryResult, ShardAccess, ShardSession};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

const LOCK_KEY: &str = "8030603558299185776";
const LIST_PREPARED: &str = "SELECT gid, EXTRACT(EPOCH FROM now() - prepared)::float8 FROM pg_prepared_xacts WHERE starts_with(gid, 'orochi_') AND database = current_database()";

/// Something to go wrong with the next statement starting with a prefix (one-shot).
#[derive(Debug, Clone)]
pub enum Inject {
    Error(&'static str),
    LostBefore,
    LostAfter,
    HangBefore,
    HangAfter,
    /// Someone else runs the same statement just before (e.g. another router's COMMIT
    /// PREPARED of the same gid).
    RunFirst,
}

#[derive(Debug, Default)]
pub struct ShardState {
    pub down: bool,
    pub rows: BTreeSet<String>,
    /// gid → (rows, age in seconds)
    pub prepared: BTreeMap<String, (Vec<String>, f64)>,
    /// base → (decision, age in seconds)
    pub decisions: BTreeMap<String, (String, f64)>,
    pub lock_holder: Option<u64>,
    pub no_table: bool,
    /// Every statement received, sessions and participants alike.
    pub log: Vec<String>,
    inject: Vec<(String, Inject)>,
}

#[derive(Debug, Default)]
pub struct Cluster {
    pub shards: Vec<ShardState>,
    next_session: u64,
}

#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<Cluster>>);

impl Fake {
    pub fn new(n: usize) -> Self {
        let c = Cluster {
            shards: (0..n).map(|_| ShardState::default()).collect(),
            next_session: 1,
        };
        Fake(Arc::new(Mutex::new(c)))
    }

    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn shard<R>(&self, k: usize, f: impl FnOnce(&mut ShardState) -> R) -> R {
        f(&mut self.lock().shards[k])
    }

    /// Ages every prepared transaction and decision row.
    pub fn age(&self, secs: f64) {
        for s in &mut self.lock().shards {
            s.prepared.values_mut().for_each(|p| p.1 += secs);
            s.decisions.values_mut().for_each(|d| d.1 += secs);
        }
    }

    pub fn inject(&self, k: usize, prefix: &str, what: Inject) {
        self.shard(k, |s| s.inject.push((prefix.to_string(), what)));
    }

    pub fn prepare(&self, k: usize, gid: &str, rows: &[&str], age: f64) {
        let rows = rows.iter().map(|r| r.to_string()).collect();
        self.shard(k, |s| s.prepared.insert(gid.to_string(), (rows, age)));
    }

    pub fn decide(&self, k: usize, base: &str, decision: &str, age: f64) {
        self.shard(k, |s| {
            s.decisions
                .insert(base.to_string(), (decision.to_string(), age))
        });
    }

    pub fn participant(&self, k: usize, rows: &[&str]) -> FakeParticipant {
        FakeParticipant {
            fake: self.clone(),
            shard: k,
            rows: rows.iter().map(|r| r.to_string()).collect(),
            decision: None,
            failed: false,
        }
    }

    pub fn access(&self) -> FakeAccess {
        FakeAccess(self.clone())
    }

    pub fn has_row(&self, k: usize, row: &str) -> bool {
        self.shard(k, |s| s.rows.contains(row))
    }

    pub fn prepared_everywhere(&self) -> Vec<String> {
        self.lock()
            .shards
            .iter()
            .flat_map(|s| s.prepared.keys().cloned())
            .collect()
    }

    pub fn decisions(&self, k: usize) -> Vec<(String, String)> {
        self.shard(k, |s| {
            s.decisions
                .iter()
                .map(|(g, (d, _))| (g.clone(), d.clone()))
                .collect()
        })
    }

    pub fn log(&self, k: usize) -> Vec<String> {
        self.shard(k, |s| s.log.clone())
    }
}

fn between<'s>(s: &'s str, prefix: &str, suffix: &str) -> Option<&'s str> {
    s.strip_prefix(prefix)?.strip_suffix(suffix)
}

fn syntax(sql: &str) -> ParticipantError {
    ParticipantError::server("42601", format!("fake shard cannot run: {sql}"))
}

fn tag(t: &str) -> QueryResult {
    QueryResult {
        tag: t.to_string(),
        rows: vec![],
    }
}

fn one(t: &str, v: Option<&str>) -> QueryResult {
    QueryResult {
        tag: t.to_string(),
        rows: vec![vec![v.map(str::to_string)]],
    }
}

/// Takes the injection matching `sql`, if any.
fn take_inject(s: &mut ShardState, sql: &str) -> Option<Inject> {
    let i = s
        .inject
        .iter()
        .position(|(p, _)| sql.starts_with(p.as_str()))?;
    Some(s.inject.remove(i).1)
}

fn resolve_prepared(
    s: &mut ShardState,
    gid: &str,
    commit: bool,
) -> Result<QueryResult, ParticipantError> {
    match s.prepared.remove(gid) {
        Some((rows, _)) => {
            if commit {
                s.rows.extend(rows);
                Ok(tag("COMMIT PREPARED"))
            } else {
                Ok(tag("ROLLBACK PREPARED"))
            }
        }
        None => Err(ParticipantError::server(
            "42704",
            format!("prepared transaction with identifier \"{gid}\" does not exist"),
        )),
    }
}

fn secs_clause(s: &str) -> Option<f64> {
    s.strip_prefix("decided_at < now() - make_interval(secs => ")?
        .strip_suffix(')')?
        .parse()
        .ok()
}

/// An autocommit statement from a session (or COMMIT/ROLLBACK PREPARED from anyone).
fn autocommit(
    s: &mut ShardState,
    session: u64,
    sql: &str,
) -> Result<QueryResult, ParticipantError> {
    if sql == format!("SELECT pg_try_advisory_lock({LOCK_KEY})") {
        let got = match s.lock_holder {
            None => true,
            Some(h) => h == session,
        };
        if got {
            s.lock_holder = Some(session);
        }
        return Ok(one("SELECT 1", Some(if got { "t" } else { "f" })));
    }
    if sql == format!("SELECT pg_advisory_unlock({LOCK_KEY})") {
        let held = s.lock_holder == Some(session);
        if held {
            s.lock_holder = None;
        }
        return Ok(one("SELECT 1", Some(if held { "t" } else { "f" })));
    }
    if sql == LIST_PREPARED {
        let rows = s
            .prepared
            .iter()
            .map(|(g, (_, age))| vec![Some(g.clone()), Some(age.to_string())])
            .collect();
        return Ok(QueryResult {
            tag: "SELECT".into(),
            rows,
        });
    }
    if let Some(g) = between(sql, "COMMIT PREPARED '", "'") {
        return resolve_prepared(s, g, true);
    }
    if let Some(g) = between(sql, "ROLLBACK PREPARED '", "'") {
        return resolve_prepared(s, g, false);
    }
    let missing = || {
        ParticipantError::server(
            "42P01",
            "relation \"orochi.twopc_decisions\" does not exist",
        )
    };
    if let Some(b) = between(sql, "SELECT orochi.record_decision('", "', 'abort')") {
        if s.no_table {
            return Err(missing());
        }
        if s.decisions.contains_key(b) {
            return Ok(one("SELECT 1", Some("f")));
        }
        s.decisions.insert(b.to_string(), ("abort".into(), 0.0));
        return Ok(one("SELECT 1", Some("t")));
    }
    if let Some(b) = between(
        sql,
        "SELECT decision FROM orochi.twopc_decisions WHERE gid = '",
        "'",
    ) {
        if s.no_table {
            return Err(missing());
        }
        return Ok(match s.decisions.get(b) {
            Some((d, _)) => one("SELECT 1", Some(d)),
            None => tag("SELECT 0"),
        });
    }
    if let Some(rest) = sql.strip_prefix("SELECT gid FROM orochi.twopc_decisions WHERE ") {
        if s.no_table {
            return Err(missing());
        }
        let (clause, limit) = match rest.split_once(" LIMIT ") {
            Some((c, n)) => (c, n.parse().map_err(|_| syntax(sql))?),
            None => (rest, usize::MAX),
        };
        let min = secs_clause(clause).ok_or_else(|| syntax(sql))?;
        let rows = s
            .decisions
            .iter()
            .filter(|(_, (_, age))| *age > min)
            .take(limit)
            .map(|(g, _)| vec![Some(g.clone())])
            .collect();
        return Ok(QueryResult {
            tag: "SELECT".into(),
            rows,
        });
    }
    if let Some(rest) = sql.strip_prefix("SELECT orochi.forget_decisions(ARRAY[") {
        let (list, cond) = rest.split_once("]::text[], ").ok_or_else(|| syntax(sql))?;
        let min: f64 = cond
            .strip_suffix(')')
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| syntax(sql))?;
        let mut n = 0;
        for item in list.split(", ") {
            let g = between(item, "'", "'").ok_or_else(|| syntax(sql))?;
            if s.decisions.get(g).is_some_and(|(_, age)| *age > min) {
                s.decisions.remove(g);
                n += 1;
            }
        }
        return Ok(one("SELECT 1", Some(&n.to_string())));
    }
    Err(syntax(sql))
}

enum After {
    Reply(Result<QueryResult, ParticipantError>),
    Hang,
}

/// Common path: down check, log, injections.
fn run_on(
    fake: &Fake,
    shard: usize,
    sql: &str,
    exec: impl FnOnce(&mut ShardState) -> Result<QueryResult, ParticipantError>,
) -> After {
    let mut c = fake.lock();
    let s = &mut c.shards[shard];
    if s.down {
        return After::Reply(Err(ParticipantError::lost("shard is down")));
    }
    s.log.push(sql.to_string());
    match take_inject(s, sql) {
        None => After::Reply(exec(s)),
        Some(Inject::Error(code)) => After::Reply(Err(ParticipantError::server(code, "injected"))),
        Some(Inject::LostBefore) => After::Reply(Err(ParticipantError::lost("injected, not run"))),
        Some(Inject::LostAfter) => {
            let _ = exec(s);
            After::Reply(Err(ParticipantError::lost("injected, after running")))
        }
        Some(Inject::HangBefore) => After::Hang,
        Some(Inject::HangAfter) => {
            let _ = exec(s);
            After::Hang
        }
        Some(Inject::RunFirst) => {
            let _ = autocommit(s, u64::MAX, sql);
            After::Reply(exec(s))
        }
    }
}

/// A router connection holding a client transaction that wrote `rows`.
pub struct FakeParticipant {
    fake: Fake,
    shard: usize,
    rows: Vec<String>,
    decision: Option<String>,
    failed: bool,
}

impl FakeParticipant {
    fn exec(&mut self, s: &mut ShardState, sql: &str) -> Result<QueryResult, ParticipantError> {
        // A query string of several statements stops at the first error, as PostgreSQL's.
        if let Some((first, rest)) = sql.split_once("; ") {
            self.exec(s, first)?;
            return self.exec(s, rest);
        }
        if let Some(g) = between(sql, "PREPARE TRANSACTION '", "'") {
            if self.failed {
                self.rows.clear();
                return Ok(tag("ROLLBACK"));
            }
            if s.prepared.contains_key(g) {
                self.rows.clear();
                return Err(ParticipantError::server(
                    "42710",
                    "transaction identifier is already in use",
                ));
            }
            s.prepared
                .insert(g.to_string(), (std::mem::take(&mut self.rows), 0.0));
            return Ok(tag("PREPARE TRANSACTION"));
        }
        if let Some(b) = between(sql, "SELECT orochi.record_decision('", "', 'commit')") {
            if s.decisions.contains_key(b) {
                self.failed = true;
                return Err(ParticipantError::server(
                    "23505",
                    "duplicate key value violates unique constraint \"twopc_decisions_pkey\"",
                ));
            }
            self.decision = Some(b.to_string());
            return Ok(tag("SELECT 1"));
        }
        match sql {
            "COMMIT" => {
                if self.failed {
                    self.rows.clear();
                    return Ok(tag("ROLLBACK"));
                }
                s.rows.extend(std::mem::take(&mut self.rows));
                if let Some(b) = self.decision.take() {
                    s.decisions.insert(b, ("commit".into(), 0.0));
                }
                Ok(tag("COMMIT"))
            }
            "ROLLBACK" => {
                self.rows.clear();
                self.decision = None;
                self.failed = false;
                Ok(tag("ROLLBACK"))
            }
            _ => autocommit(s, 0, sql),
        }
    }
}

impl Participant for FakeParticipant {
    fn shard(&self) -> usize {
        self.shard
    }

    fn execute<'a>(&'a mut self, sql: &'a str) -> BoxFuture<'a, Result<String, ParticipantError>> {
        Box::pin(async move {
            let fake = self.fake.clone();
            let after = run_on(&fake, self.shard, sql, |s| self.exec(s, sql));
            match after {
                After::Reply(r) => r.map(|q| q.tag),
                After::Hang => std::future::pending().await,
            }
        })
    }
}

pub struct FakeAccess(Fake);

pub struct FakeSession {
    fake: Fake,
    shard: usize,
    id: u64,
}

impl ShardAccess for FakeAccess {
    fn shard_count(&self) -> usize {
        self.0.lock().shards.len()
    }

    fn connect(
        &self,
        shard: usize,
    ) -> BoxFuture<'_, Result<Box<dyn ShardSession>, ParticipantError>> {
        Box::pin(async move {
            let mut c = self.0.lock();
            if c.shards[shard].down {
                return Err(ParticipantError::lost("connection refused"));
            }
            c.next_session += 1;
            let id = c.next_session;
            Ok(Box::new(FakeSession {
                fake: self.0.clone(),
                shard,
                id,
            }) as Box<dyn ShardSession>)
        })
    }
}

impl ShardSession for FakeSession {
    fn simple_query<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<QueryResult, ParticipantError>> {
        Box::pin(async move {
            let id = self.id;
            match run_on(&self.fake, self.shard, sql, |s| autocommit(s, id, sql)) {
                After::Reply(r) => r,
                After::Hang => std::future::pending().await,
            }
        })
    }
}

impl Drop for FakeSession {
    /// Closing the connection releases its session locks.
    fn drop(&mut self) {
        let id = self.id;
        self.fake.shard(self.shard, |s| {
            if s.lock_holder == Some(id) {
                s.lock_holder = None;
            }
        });
    }
}
