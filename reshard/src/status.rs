//! `reshard status`: phase, per link its tables still copying and its lag, while copying
//! the rows, bytes, rate and ETA per table and overall (two samples a second apart), and
//! rows per table on both sides — the same figures `start` shows, from any shell.

use crate::error::Result;
use crate::fleet::Fleet;
use crate::names::{links, Direction};
use crate::repl;
use crate::state::{Phase, State};
use crate::topology::Login;

pub async fn run(st: State, login: Login) -> Result<()> {
    println!(
        "reshard {}: pool {}, {} -> {} shards, phase {} ({})",
        st.spec.id,
        st.spec.pool,
        st.spec.old.len(),
        st.spec.new.len(),
        st.phase.as_str(),
        st.note
    );
    if !st.phase.active() {
        return Ok(());
    }
    let (f, _) = Fleet::connect(st.spec, login, None).await?;
    for dir in [Direction::Forward, Direction::Reverse] {
        for l in links(f.old.len(), f.new.len(), dir) {
            let name = l.name(&f.spec.id);
            let src = &f.src(dir)[l.src()];
            let dst = &f.dst(dir)[l.dst()];
            let sub = repl::has_subscription(dst, &name).await?;
            let enabled: bool = if sub {
                dst.one(
                    "SELECT subenabled FROM pg_subscription WHERE subname = $1",
                    &[&name],
                )
                .await?
                .get(0)
            } else {
                false
            };
            let syncing = if sub {
                repl::syncing(dst, &name).await?
            } else {
                0
            };
            let lag = repl::slot_lag(src, &name).await?;
            println!(
                "  {name}: {} {}, {} tables copying, slot {}",
                if sub {
                    "subscription"
                } else {
                    "no subscription"
                },
                if enabled { "enabled" } else { "disabled" },
                syncing,
                match lag {
                    Some((held, unconfirmed)) => format!(
                        "holds {} of WAL, {} not yet confirmed",
                        crate::plan::human_bytes(held),
                        crate::plan::human_bytes(unconfirmed)
                    ),
                    None => "missing".into(),
                }
            );
        }
    }
    if st.phase == Phase::Copying {
        // The copy's rate and ETA, as `start` shows them, from two samples a second apart.
        let totals = crate::start::expected_rows(&f).await?;
        let a = crate::start::copied(&f, &totals).await?;
        let t = std::time::Instant::now();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let b = crate::start::copied(&f, &totals).await?;
        for l in crate::progress::rate_lines(&a, &b, t.elapsed()) {
            println!("  copy {l}");
        }
        for l in crate::slot_wait::waiting_lines(&f.old).await {
            println!("  {l}");
        }
    }
    println!("  {:<32} {:>12} {:>12}", "table", "old rows", "new rows");
    for t in &f.tables {
        let q = format!("SELECT count(*) FROM {}", t.qname());
        let mut old = 0;
        for c in &f.old {
            old += c.one(&q, &[]).await?.get::<_, i64>(0);
            if t.key.is_none() {
                break;
            }
        }
        let mut new = 0;
        for c in &f.new {
            new += c.one(&q, &[]).await?.get::<_, i64>(0);
            if t.key.is_none() {
                break;
            }
        }
        println!("  {:<32} {:>12} {:>12}", t.display(), old, new);
    }
    Ok(())
}
