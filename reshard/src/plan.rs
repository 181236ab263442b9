//! `reshard plan`: what moves (rows and bytes per table), the checks, and every
//! statement `start` will run, in order — without changing anything.

use crate::catalog::{self, Table};
use crate::conn::{conninfo, Conn};
use crate::error::Result;
use crate::names::{links, Direction, Link};
use crate::sql;
use crate::topology::{Login, Spec};

/// One statement and where it runs.
pub struct Step {
    pub target: String,
    pub sql: String,
}

/// The statements of `start`, in order: state and guards everywhere, the schema on the
/// new shards, then per link its publication, slot and subscription.
pub fn statements(
    spec: &Spec,
    tables: &[Table],
    key_types: &[(u32, String)],
    login: &Login,
    grantees: &[String],
) -> Vec<Step> {
    let olds = spec.old_endpoints();
    let news = spec.new_endpoints();
    let mut out = Vec::new();
    let everywhere = olds
        .iter()
        .enumerate()
        .map(|(i, e)| format!("old shard {i} ({e})"))
        .chain(
            news.iter()
                .enumerate()
                .map(|(j, e)| format!("new shard {j} ({e})")),
        );
    for (j, e) in news.iter().enumerate() {
        out.push(Step {
            target: format!("server {} (if missing)", e.server()),
            sql: format!(
                "CREATE DATABASE {} OWNER {}",
                sql::ident(&e.database),
                sql::ident(&grantees[0])
            ),
        });
        out.push(Step {
            target: format!("new shard {j} ({e})"),
            sql: "-- the schema of old shard 0: pg_dump --schema-only --exclude-schema=orochi, applied in one transaction".into(),
        });
    }
    for target in everywhere {
        out.push(Step {
            target: target.clone(),
            sql: sql::state_schema(key_types, &spec.id, grantees),
        });
        out.push(Step {
            target,
            sql: sql::ddl_guard(&spec.id, &spec.pool),
        });
    }
    for dir in [Direction::Forward, Direction::Reverse] {
        for l in links(olds.len(), news.len(), dir) {
            out.extend(link_steps(spec, &l, tables, login));
        }
    }
    out
}

/// Publication and slot on the source, subscription on the destination.
pub fn link_steps(spec: &Spec, l: &Link, tables: &[Table], login: &Login) -> Vec<Step> {
    let (olds, news) = (spec.old_endpoints(), spec.new_endpoints());
    let (src, dst, src_label, dst_label, dst_count) = match l.dir {
        Direction::Forward => (
            &olds[l.old],
            &news[l.new],
            format!("old shard {}", l.old),
            format!("new shard {}", l.new),
            news.len(),
        ),
        Direction::Reverse => (
            &news[l.new],
            &olds[l.old],
            format!("new shard {}", l.new),
            format!("old shard {}", l.old),
            olds.len(),
        ),
    };
    let name = l.name(&spec.id);
    let forward = l.dir == Direction::Forward;
    vec![
        Step {
            target: format!("{src_label} ({src})"),
            sql: sql::publication(&spec.id, l, tables, dst_count),
        },
        Step {
            target: format!("{src_label} ({src})"),
            sql: sql::create_slot(&name),
        },
        Step {
            target: format!("{dst_label} ({dst})"),
            sql: sql::subscription(&name, &conninfo(src, login), forward, forward),
        },
    ]
}

/// Per table: (name, kind, rows, bytes, exact) summed over the old shards; replicated
/// tables count once per new shard (each gets a whole copy).
pub async fn volumes(
    spec: &Spec,
    old: &[Conn],
) -> Result<Vec<(String, &'static str, i64, i64, bool)>> {
    let mut out: Vec<(String, &'static str, i64, i64, bool)> = Vec::new();
    for (i, c) in old.iter().enumerate() {
        for t in catalog::tables(c, &spec.tables).await? {
            let distributed = t.key.is_some();
            if !distributed && i > 0 {
                continue;
            }
            let (rows, exact) = if t.rows < 10_000 {
                let r = c
                    .one(&format!("SELECT count(*) FROM {}", t.qname()), &[])
                    .await?;
                (r.get::<_, i64>(0), true)
            } else {
                (t.rows, false)
            };
            let copies = if distributed {
                1
            } else {
                spec.new.len() as i64
            };
            let kind = if distributed {
                "distributed"
            } else {
                "replicated"
            };
            match out.iter_mut().find(|o| o.0 == t.display()) {
                Some(o) => {
                    o.2 += rows * copies;
                    o.3 += t.bytes * copies;
                    o.4 &= exact;
                }
                None => out.push((t.display(), kind, rows * copies, t.bytes * copies, exact)),
            }
        }
    }
    Ok(out)
}

pub fn human_bytes(b: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// `reshard plan`: prints volumes, refusals and statements; `Err(Refused)` when a check
/// fails (exit 1), after printing everything else.
pub async fn print(spec: Spec, login: Login, grantees: &[String], parallel: usize) -> Result<()> {
    println!(
        "reshard {}: pool {}, {} -> {} shards",
        spec.id,
        spec.pool,
        spec.old.len(),
        spec.new.len()
    );
    let mut old = Vec::new();
    for (i, e) in spec.old_endpoints().iter().enumerate() {
        old.push(crate::conn::connect(e, &login, &format!("old shard {i}")).await?);
    }
    let tables = catalog::tables(&old[0], &spec.tables).await?;
    println!("\nto move:");
    println!(
        "  {:<32} {:<12} {:>12} {:>12}",
        "table", "kind", "rows", "bytes"
    );
    let (mut rows, mut bytes) = (0, 0);
    for (name, kind, r, b, exact) in volumes(&spec, &old).await? {
        println!(
            "  {:<32} {:<12} {:>12} {:>12}",
            name,
            kind,
            format!("{}{r}", if exact { "" } else { "~" }),
            human_bytes(b)
        );
        rows += r;
        bytes += b;
    }
    println!(
        "  {:<32} {:<12} {:>12} {:>12}",
        "total",
        "",
        rows,
        human_bytes(bytes)
    );
    let key_types = catalog::key_types(&tables);
    println!("\nstatements start will run:");
    // The statements as start runs them, the password of connection strings masked.
    let shown = Login {
        user: login.user.clone(),
        password: login.password.as_ref().map(|_| "***".to_string()),
    };
    for s in statements(&spec, &tables, &key_types, &shown, grantees) {
        println!(
            "-- on {}\n{};\n",
            s.target,
            s.sql.trim_end().trim_end_matches(';')
        );
    }
    let mut refusals = crate::checks::run(
        &spec,
        &login,
        &old,
        &tables,
        &crate::checks::Limits { parallel },
    )
    .await?;
    refusals.extend(crate::checks::target_not_empty(&spec, &login).await?);
    if refusals.is_empty() {
        println!("checks: all passed");
        Ok(())
    } else {
        Err(crate::error::Error::Refused(refusals))
    }
}
