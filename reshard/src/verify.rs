//! `reshard verify`: the rows of the serving side against the other side, table by
//! table, in chunks of the shard key's range (an index range scan on each shard, so big
//! tables finish), by count and an order-independent checksum of the rows' text. A chunk
//! that differs is compared again after replication drained (a row in flight is not a
//! difference); one that still differs is compared row by row and every differing key is
//! named. Progress is kept in `orochi.reshard_verify` on old shard 0: a killed verify
//! goes on from the last chunk checked.

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::names::{links, Direction};
use crate::repl;
use crate::state::{Phase, State};
use crate::topology::Login;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Options {
    pub chunk_rows: i64,
    /// Compare the keys of a differing chunk again this many times (after replication drains).
    pub rechecks: usize,
}

/// One table as compared: which column orders it and which shards hold it.
struct Target<'a> {
    name: String,
    qname: String,
    column: String,
    ty: String,
    old: Vec<&'a Conn>,
    new: Vec<&'a Conn>,
}

pub async fn run(st: State, login: Login, opts: &Options) -> Result<()> {
    if !st.phase.active() || st.phase == Phase::Copying {
        return Err(Error::State(format!(
            "reshard {} is in phase {}: verify runs once `start` has caught up and until complete",
            st.spec.id,
            st.phase.as_str()
        )));
    }
    let stream_dir = if st.phase == Phase::CutOver {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let (f, _) = Fleet::connect(st.spec, login, None).await?;
    let id = f.spec.id.clone();
    let book = &f.old[0];
    let done: Vec<(String, Option<String>, i64, bool)> = book
        .query(
            "SELECT tbl, last_key, rows_done, done FROM orochi.reshard_verify WHERE id = $1",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let fresh = done.is_empty() || done.iter().all(|d| d.3) && done.len() >= f.tables.len();
    if fresh {
        book.query("DELETE FROM orochi.reshard_verify WHERE id = $1", &[&id])
            .await?;
    } else {
        println!(
            "verify: resuming ({} tables checked before)",
            done.iter().filter(|d| d.3).count()
        );
    }
    let mut targets = Vec::new();
    for t in &f.tables {
        let (column, ty, old, new): (String, String, Vec<&Conn>, Vec<&Conn>) = match &t.key {
            Some(k) => (
                k.column.clone(),
                k.type_name.clone(),
                f.old.iter().collect(),
                f.new.iter().collect(),
            ),
            None => {
                let Some(c) = t.pk_cols.first() else {
                    return Err(Error::State(format!(
                        "{}: no primary key to verify by",
                        t.display()
                    )));
                };
                let ty: String = f.old[0]
                    .one(
                        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1 AND attname = $2",
                        &[&t.oid, c],
                    )
                    .await?
                    .get(0);
                // Replicated: every new shard holds the whole table; each is compared.
                for (j, n) in f.new.iter().enumerate() {
                    targets.push(Target {
                        name: format!("{} (new shard {j})", t.display()),
                        qname: t.qname(),
                        column: c.clone(),
                        ty: ty.clone(),
                        old: vec![&f.old[0]],
                        new: vec![n],
                    });
                }
                continue;
            }
        };
        targets.push(Target {
            name: t.display(),
            qname: t.qname(),
            column,
            ty,
            old,
            new,
        });
    }
    let stream = links(f.old.len(), f.new.len(), stream_dir);
    let mut all_diffs = Vec::new();
    let started = Instant::now();
    let mut last_print = Instant::now();
    for t in &targets {
        let prior = done.iter().find(|d| d.0 == t.name).filter(|_| !fresh);
        if prior.is_some_and(|d| d.3) {
            continue;
        }
        let mut last: Option<String> = prior.and_then(|d| d.1.clone());
        let mut rows_done = prior.map(|d| d.2).unwrap_or(0);
        let est = estimate(t).await?.max(1);
        loop {
            let hi = boundary(t, last.as_deref(), opts.chunk_rows / t.old.len() as i64).await?;
            let (a, b) = (
                sums(&t.old, t, last.as_deref(), hi.as_deref()).await?,
                sums(&t.new, t, last.as_deref(), hi.as_deref()).await?,
            );
            if a != b {
                let keys = chunk_rows(t, last.as_deref(), hi.as_deref()).await?;
                let left = settle(&f, stream_dir, &stream, t, keys, opts.rechecks).await?;
                all_diffs.extend(left.iter().map(|k| format!("{}: {k}", t.name)));
            }
            let rows = a.0;
            rows_done += rows;
            last = hi.clone();
            book.query(
                "INSERT INTO orochi.reshard_verify (id, tbl, last_key, rows_done, done) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id, tbl) DO UPDATE SET last_key = EXCLUDED.last_key, rows_done = EXCLUDED.rows_done, done = EXCLUDED.done",
                &[&id, &t.name, &last, &rows_done, &hi.is_none()],
            )
            .await?;
            if last_print.elapsed() > Duration::from_secs(2) || hi.is_none() {
                last_print = Instant::now();
                eprintln!(
                    "verify: {} {:.0}% ({rows_done} rows, {:.1} s)",
                    t.name,
                    (100.0 * rows_done as f64 / est as f64).min(100.0),
                    started.elapsed().as_secs_f64()
                );
            }
            if hi.is_none() {
                break;
            }
        }
    }
    if all_diffs.is_empty() {
        println!(
            "verify: reshard {id}: no difference in {} tables",
            f.tables.len()
        );
        Ok(())
    } else {
        for d in &all_diffs {
            println!("DIFF {d}");
        }
        Err(Error::State(format!(
            "verify: {} differing keys (listed above)",
            all_diffs.len()
        )))
    }
}

fn range(t: &Target, lo: Option<&str>, hi: Option<&str>) -> String {
    let col = crate::quote::ident(&t.column);
    let mut w = vec!["true".to_string()];
    if let Some(lo) = lo {
        w.push(format!("{col} > {}::{}", crate::quote::lit(lo), t.ty));
    }
    if let Some(hi) = hi {
        w.push(format!("{col} <= {}::{}", crate::quote::lit(hi), t.ty));
    }
    w.join(" AND ")
}

async fn estimate(t: &Target<'_>) -> Result<i64> {
    let mut n = 0;
    for c in &t.old {
        n += c
            .one(
                &format!(
                    // A partitioned table's rows are estimated in its partitions.
                    "SELECT sum(greatest(c.reltuples, 0))::int8 FROM pg_class c
                     WHERE c.oid = '{q}'::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree('{q}'))",
                    q = t.qname.replace('\'', "''")
                ),
                &[],
            )
            .await?
            .get::<_, i64>(0);
    }
    Ok(n)
}

/// The upper key of the next chunk (`None`: the chunk runs to the end).
async fn boundary(t: &Target<'_>, lo: Option<&str>, step: i64) -> Result<Option<String>> {
    let col = crate::quote::ident(&t.column);
    let q = format!(
        "SELECT {col}::text FROM {} WHERE {} ORDER BY {col} OFFSET {} LIMIT 1",
        t.qname,
        range(t, lo, None),
        step.max(1)
    );
    Ok(t.old[0].query(&q, &[]).await?.first().map(|r| r.get(0)))
}

/// (rows, checksum) of a key range summed over shards.
async fn sums(
    side: &[&Conn],
    t: &Target<'_>,
    lo: Option<&str>,
    hi: Option<&str>,
) -> Result<(i64, String)> {
    let q = format!(
        "SELECT count(*), coalesce(sum(('x' || substr(md5(x::text), 1, 15))::bit(60)::int8::numeric), 0)::text
         FROM {} x WHERE {}",
        t.qname,
        range(t, lo, hi)
    );
    let mut n = 0;
    let mut sum: u128 = 0;
    for c in side {
        let r = c.one(&q, &[]).await?;
        n += r.get::<_, i64>(0);
        sum += r.get::<_, String>(1).parse::<u128>().unwrap_or(0);
    }
    Ok((n, sum.to_string()))
}

/// Waits until every streaming slot confirmed its source's current position.
async fn drain(f: &Fleet, dir: Direction, stream: &[crate::names::Link]) -> Result<()> {
    let mut lsn = BTreeMap::new();
    for (i, c) in f.src(dir).iter().enumerate() {
        lsn.insert(i, repl::current_lsn(c).await?);
    }
    let until = Instant::now() + Duration::from_secs(60);
    for l in stream {
        while !repl::slot_passed(&f.src(dir)[l.src()], &l.name(&f.spec.id), &lsn[&l.src()]).await? {
            if Instant::now() > until {
                return Err(Error::State(format!(
                    "{} did not catch up within 60 s",
                    l.name(&f.spec.id)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

type Rows = BTreeMap<String, Vec<String>>;

/// Key -> sorted md5 of its rows, over `side`, for the query's rows.
async fn rows_of(side: &[&Conn], q: &str, keys: Option<&Vec<String>>) -> Result<Rows> {
    let mut m = Rows::new();
    for c in side {
        let rows = match keys {
            Some(k) => c.query(q, &[k]).await?,
            None => c.query(q, &[]).await?,
        };
        for r in rows {
            m.entry(r.get(0)).or_default().push(r.get(1));
        }
    }
    for v in m.values_mut() {
        v.sort();
    }
    Ok(m)
}

/// The keys whose rows differ between old and new in one chunk.
async fn chunk_rows(t: &Target<'_>, lo: Option<&str>, hi: Option<&str>) -> Result<Vec<String>> {
    let col = crate::quote::ident(&t.column);
    let q = format!(
        "SELECT {col}::text, md5(x::text) FROM {} x WHERE {}",
        t.qname,
        range(t, lo, hi)
    );
    let (a, b) = (
        rows_of(&t.old, &q, None).await?,
        rows_of(&t.new, &q, None).await?,
    );
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.dedup();
    Ok(keys)
}

/// Compares the given keys again, `rounds` times and then until 30 s passed: read old,
/// let replication drain past that point, read new. A key whose new rows equal the old read is in sync (it was
/// in flight); one changed again meanwhile is looked at next round. What is left after
/// the last round is reported, one line per key.
async fn settle(
    f: &Fleet,
    dir: Direction,
    stream: &[crate::names::Link],
    t: &Target<'_>,
    mut keys: Vec<String>,
    rounds: usize,
) -> Result<Vec<String>> {
    let col = crate::quote::ident(&t.column);
    let q = format!(
        "SELECT {col}::text, md5(x::text) FROM {} x WHERE {col} = ANY($1::text[]::{}[])",
        t.qname, t.ty
    );
    let mut last = (Rows::new(), Rows::new());
    // At least `rounds` rounds, and for up to 30 s: a key that several writers keep
    // changing settles once the chance of catching it in flight runs out.
    let until = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    while !keys.is_empty() && (round < rounds.max(1) || Instant::now() < until) {
        round += 1;
        if round > 1 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let before = rows_of(&t.old, &q, Some(&keys)).await?;
        drain(f, dir, stream).await?;
        let new = rows_of(&t.new, &q, Some(&keys)).await?;
        keys.retain(|k| before.get(k) != new.get(k));
        last = (before, new);
    }
    let (a, b) = last;
    Ok(keys
        .iter()
        .map(|k| match (a.get(k), b.get(k)) {
            (Some(_), None) => format!("{}={k} on the old shards only", t.column),
            (None, Some(_)) => format!("{}={k} on the new shards only", t.column),
            (v, w) => format!(
                "{}={k} differs between old and new ({} vs {} rows)",
                t.column,
                v.map_or(0, Vec::len),
                w.map_or(0, Vec::len)
            ),
        })
        .collect())
}
