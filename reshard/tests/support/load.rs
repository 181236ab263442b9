//! A transfer-and-insert load through the routers: each transaction moves money between
//! two accounts (usually on two shards, so two-phase commit) and inserts a ledger row
//! with a client-chosen id, so afterwards every acknowledged write can be looked for.

use super::{connect, ACCOUNTS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Stats {
    pub acked: Vec<i64>,
    pub errors: Vec<String>,
    pub slowest: Duration,
    /// (when it committed, since the load began) per transaction.
    pub commits: Vec<Duration>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<Mutex<Stats>>,
    pub began: Instant,
}

impl Load {
    /// `clients` sessions on each router port.
    pub fn start(ports: &[u16], clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let began = Instant::now();
        let mut tasks = Vec::new();
        for (r, port) in ports.iter().enumerate() {
            for k in 0..clients {
                let worker = (r * clients + k) as i64;
                let (stop, stats, port) = (stop.clone(), stats.clone(), *port);
                tasks.push(tokio::spawn(async move {
                    client(port, worker, stop, stats, began).await
                }));
            }
        }
        Load {
            stop,
            tasks,
            stats,
            began,
        }
    }

    pub async fn stop(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        std::mem::take(&mut *self.stats.lock().unwrap())
    }

    /// Transactions committed in [from, to) since the load began.
    pub fn committed_between(&self, from: Duration, to: Duration) -> usize {
        self.stats
            .lock()
            .unwrap()
            .commits
            .iter()
            .filter(|c| **c >= from && **c < to)
            .count()
    }
}

async fn client(
    port: u16,
    worker: i64,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    began: Instant,
) {
    let c = match connect(port, "app", "app", "secret").await {
        Ok(c) => c,
        Err(e) => {
            stats.lock().unwrap().errors.push(format!("connect: {e}"));
            return;
        }
    };
    let mut seed = 0x9e3779b97f4a7c15u64 ^ (worker as u64 + 1);
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut n = 0i64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let id = worker * 1_000_000_000 + n;
        let a = (next() % ACCOUNTS as u64) as i64 + 1;
        let b = (next() % ACCOUNTS as u64) as i64 + 1;
        if a == b {
            continue;
        }
        let amount = (next() % 10) as i64 + 1;
        // Rows are locked in `aid` order, whichever way the money goes: two transfers
        // locking two accounts in opposite orders on two shards would wait for each other
        // forever, a cycle no server sees (and every logical slot created on those
        // servers meanwhile would wait for them too).
        let (first, second) = if a < b {
            ((a, -amount), (b, amount))
        } else {
            ((b, amount), (a, -amount))
        };
        let t = Instant::now();
        let r = async {
            c.batch_execute("BEGIN").await?;
            for (aid, delta) in [first, second] {
                c.batch_execute(&format!(
                    "UPDATE accounts SET balance = balance + ({delta}) WHERE aid = {aid}"
                ))
                .await?;
            }
            c.batch_execute(&format!(
                "INSERT INTO ledger (id, aid, amount) VALUES ({id}, {a}, {amount})"
            ))
            .await?;
            c.batch_execute("COMMIT").await
        }
        .await;
        let took = t.elapsed();
        let failed = {
            let mut s = stats.lock().unwrap();
            match r {
                Ok(()) => {
                    s.acked.push(id);
                    s.slowest = s.slowest.max(took);
                    s.commits.push(began.elapsed());
                    false
                }
                Err(e) => {
                    s.errors
                        .push(format!("worker {worker} tx {id}: {}", super::describe(&e)));
                    true
                }
            }
        };
        if failed {
            let _ = c.batch_execute("ROLLBACK").await;
        }
    }
}
