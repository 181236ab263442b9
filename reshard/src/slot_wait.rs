//! Creating a link's logical slot, saying what it waits for.
//!
//! PostgreSQL starts a logical slot only once every transaction running on the slot's
//! *server* when it began has ended: any database, prepared transactions included. One
//! that never ends — a session left idle in transaction, a prepared transaction nobody
//! resolves, two transactions of the routers waiting for each other's locks on two
//! shards (a deadlock no server sees) — holds `start` back for ever, and PostgreSQL says
//! nothing about it. So while the slot is being created, a second session of the tool
//! looks at the server now and then and names the transactions older than the wait:
//! pid, database, state, age, statement. The operator can then end them
//! (`pg_terminate_backend`, `ROLLBACK PREPARED`); `start` goes on by itself once they
//! are gone.

use crate::conn::{connect, Conn};
use crate::error::Result;
use crate::sql;
use crate::topology::Login;
use std::time::{Duration, Instant};

/// The first report after this long, then one every [`REPORT_EVERY`].
pub const FIRST_REPORT: Duration = Duration::from_secs(10);
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// At most this many transactions are named in one report.
const NAMED: usize = 5;

/// Creates the logical slot `name` on `src`; while it waits, `say` gets a line naming
/// the transactions it waits for (see the module doc).
pub async fn create_slot(src: &Conn, login: &Login, name: &str, say: &dyn Fn(&str)) -> Result<()> {
    let began = Instant::now();
    let statement = sql::create_slot(name);
    let create = src.exec(&statement);
    tokio::pin!(create);
    let mut next = FIRST_REPORT;
    let mut probe: Option<Conn> = None;
    loop {
        let wait = next.saturating_sub(began.elapsed());
        tokio::select! {
            r = &mut create => return r,
            _ = tokio::time::sleep(wait) => {}
        }
        next += REPORT_EVERY;
        let waited = began.elapsed();
        if probe.is_none() {
            probe = connect(&src.ep, login, &src.label).await.ok();
        }
        let named = match &probe {
            Some(p) => holders(p, waited).await,
            None => Err(crate::error::Error::Db("no second session".into())),
        };
        if named.is_err() {
            probe = None;
        }
        say(&report(
            &format!("slot {name} on {}", src.label),
            waited,
            named,
        ));
    }
}

/// Slots being created on `src`'s server for [`FIRST_REPORT`] or more, by anyone:
/// the subscriptions' table-copy workers (walsenders running `CREATE_REPLICATION_SLOT`)
/// or a `start`. A report line naming what they wait for, or `None`.
pub async fn slots_waiting(src: &Conn) -> Result<Option<String>> {
    let row = src
        .one(
            "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(query_start)), 0)::float8
             FROM pg_stat_activity
             WHERE state = 'active' AND pid <> pg_backend_pid()
               AND (query LIKE 'CREATE\\_REPLICATION\\_SLOT%'
                    OR query LIKE '%pg\\_create\\_logical\\_replication\\_slot(%')
               AND query_start <= clock_timestamp() - make_interval(secs => $1)",
            &[&FIRST_REPORT.as_secs_f64()],
        )
        .await?;
    let n: i64 = row.get(0);
    if n == 0 {
        return Ok(None);
    }
    let waited = Duration::from_secs_f64(row.get(1));
    let named = holders(src, waited).await;
    let what = format!("{n} slot creation(s) on the server of {}", src.label);
    Ok(Some(report(&what, waited, named)))
}

/// [`slots_waiting`] once per server of `conns`. Errors are left out: a diagnosis,
/// not a step.
pub async fn waiting_lines(conns: &[Conn]) -> Vec<String> {
    let mut servers = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for c in conns {
        if servers.insert((c.ep.host.clone(), c.ep.port)) {
            if let Ok(Some(line)) = slots_waiting(c).await {
                out.push(line);
            }
        }
    }
    out
}

/// Reports waiting slots while `start` watches the copy, at most once per
/// [`REPORT_EVERY`].
pub struct CopyWatch {
    next: Instant,
}

impl Default for CopyWatch {
    fn default() -> Self {
        CopyWatch {
            next: Instant::now() + FIRST_REPORT,
        }
    }
}

impl CopyWatch {
    pub async fn check(&mut self, sources: &[Conn], say: &dyn Fn(&str)) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + REPORT_EVERY;
        for line in waiting_lines(sources).await {
            say(&line);
        }
    }
}

fn report(what: &str, waited: Duration, named: Result<Vec<String>>) -> String {
    let head = format!(
        "{what}: waiting {} s for the transactions open on its server to end (a logical slot starts once every transaction running when it began has ended)",
        waited.as_secs()
    );
    match named {
        Ok(v) if v.is_empty() => format!("{head}; none older than the wait is left now"),
        Ok(v) => {
            let more = v.len().saturating_sub(NAMED);
            let mut s = format!("{head}: {}", v[..v.len().min(NAMED)].join("; "));
            if more > 0 {
                s.push_str(&format!("; and {more} more"));
            }
            s + " — end them (COMMIT or ROLLBACK, pg_terminate_backend(pid), ROLLBACK PREPARED) or let them finish; two that wait for each other on two shards never finish"
        }
        Err(e) => format!("{head} (cannot see which: {e})"),
    }
}

/// Transactions of the server holding a transaction id since before the wait began:
/// sessions (with their state and statement) and prepared transactions.
pub async fn holders(c: &Conn, waited: Duration) -> Result<Vec<String>> {
    let secs = waited.as_secs_f64();
    let mut out = Vec::new();
    for r in c
        .query(
            "SELECT pid, coalesce(datname::text, ''), coalesce(state, backend_type),
                    extract(epoch FROM clock_timestamp() - xact_start)::float8,
                    left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 80)
             FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
               AND xact_start <= clock_timestamp() - make_interval(secs => $1)
             ORDER BY xact_start",
            &[&secs],
        )
        .await?
    {
        let (pid, db, state, age, query): (i32, String, String, f64, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        out.push(format!(
            "pid {pid} in {db}, {state} for {age:.0} s ({query})"
        ));
    }
    for r in c
        .query(
            "SELECT gid, database::text, extract(epoch FROM clock_timestamp() - prepared)::float8
             FROM pg_prepared_xacts
             WHERE prepared <= clock_timestamp() - make_interval(secs => $1)
             ORDER BY prepared",
            &[&secs],
        )
        .await?
    {
        let (gid, db, age): (String, String, f64) = (r.get(0), r.get(1), r.get(2));
        out.push(format!(
            "prepared transaction '{gid}' in {db}, {age:.0} s old"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_at_most_five_and_counts_the_rest() {
        let v: Vec<String> = (1..=7).map(|i| format!("pid {i}")).collect();
        let s = report(
            "slot s1 on old shard 1 (h:1/d)",
            Duration::from_secs(40),
            Ok(v),
        );
        assert!(
            s.starts_with("slot s1 on old shard 1 (h:1/d): waiting 40 s"),
            "{s}"
        );
        assert!(
            s.contains("pid 1; pid 2; pid 3; pid 4; pid 5; and 2 more"),
            "{s}"
        );
        assert!(!s.contains("pid 6"), "{s}");
        let none = report("slot s1 on x", Duration::from_secs(10), Ok(vec![]));
        assert!(
            none.ends_with("none older than the wait is left now"),
            "{none}"
        );
    }
}
