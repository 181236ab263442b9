//! Background work kept per pool (the 2PC recovery sweeper) follows the pool set, not
//! the pools of the start-up configuration. A pool added by RELOAD gets its task at the
//! next check; a pool removed, or whose task settings changed (say the sweep interval),
//! has its task stopped and, when still wanted, started again with the new settings.
//! Without this, the in-doubt transactions of a pool added by RELOAD stayed prepared —
//! holding their locks — until the router restarted.
//!
//! The check is a cheap read of the registry every [`RECHECK`], so it needs no hook in
//! the reload path and sees every way the registry changes (RELOAD, SIGHUP, a reshard's
//! switch that turns a one-shard pool into a sharded one).

use crate::app::App;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the wanted tasks are compared with the running ones.
pub const RECHECK: Duration = Duration::from_secs(1);

/// Runs, until shutdown, one task per pool that `wanted` names, with the settings `K`
/// it gives. `start(app, pool, settings, stop)` spawns a task that must return once
/// `stop` is cancelled.
pub fn supervise<K, W, S>(app: &Arc<App>, what: &'static str, wanted: W, start: S)
where
    K: PartialEq + Send + 'static,
    W: Fn(&App) -> Vec<(String, K)> + Send + 'static,
    S: Fn(&Arc<App>, &str, &K, CancellationToken) + Send + 'static,
{
    let app = app.clone();
    tokio::spawn(async move {
        let mut running = Running::default();
        let mut tick = tokio::time::interval(RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let changes = running.reconcile(wanted(&app), |pool, settings| {
                let stop = app.shutdown.child_token();
                start(&app, pool, settings, stop.clone());
                stop
            });
            for pool in &changes.started {
                tracing::debug!(pool = %pool, "{what} started");
            }
            for pool in &changes.stopped {
                tracing::info!(pool = %pool, "{what} stopped: the pool left the configuration");
            }
        }
    });
}

/// The tasks running now, by pool: their settings and their stop switch.
struct Running<K> {
    tasks: HashMap<String, (K, CancellationToken)>,
}

impl<K> Default for Running<K> {
    fn default() -> Self {
        Running {
            tasks: HashMap::new(),
        }
    }
}

/// What one reconcile did, by pool name (a restart with new settings is in `started`).
#[derive(Debug, Default, PartialEq)]
struct Changes {
    started: Vec<String>,
    stopped: Vec<String>,
}

impl<K: PartialEq> Running<K> {
    /// Makes the running tasks match `wanted`: stops the tasks of pools no longer wanted
    /// or wanted with other settings, starts the missing ones.
    fn reconcile(
        &mut self,
        wanted: Vec<(String, K)>,
        mut start: impl FnMut(&str, &K) -> CancellationToken,
    ) -> Changes {
        let mut changes = Changes::default();
        let mut wanted: HashMap<String, K> = wanted.into_iter().collect();
        self.tasks.retain(|pool, (settings, stop)| {
            let keep = wanted.get(pool) == Some(settings);
            if !keep {
                stop.cancel();
                if !wanted.contains_key(pool) {
                    changes.stopped.push(pool.clone());
                }
            }
            keep
        });
        for (pool, settings) in wanted.drain() {
            if self.tasks.contains_key(&pool) {
                continue;
            }
            let stop = start(&pool, &settings);
            changes.started.push(pool.clone());
            self.tasks.insert(pool, (settings, stop));
        }
        changes.started.sort();
        changes.stopped.sort();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(pools: &[(&str, u32)]) -> Vec<(String, u32)> {
        pools.iter().map(|(p, k)| (p.to_string(), *k)).collect()
    }

    #[test]
    fn pools_added_removed_and_changed_follow_the_configuration() {
        let mut running = Running::default();
        let mut tokens: HashMap<String, Vec<CancellationToken>> = HashMap::new();
        let mut start = |pool: &str, _: &u32| {
            let t = CancellationToken::new();
            tokens.entry(pool.to_string()).or_default().push(t.clone());
            t
        };
        let c = running.reconcile(want(&[("a", 1)]), &mut start);
        assert_eq!(c.started, ["a"]);
        // A pool added by a reload gets its task; the running one is left alone.
        let c = running.reconcile(want(&[("a", 1), ("b", 1)]), &mut start);
        assert_eq!((c.started, c.stopped.len()), (vec!["b".to_string()], 0));
        // New settings restart the task; a removed pool's task stops.
        let c = running.reconcile(want(&[("a", 2)]), &mut start);
        assert_eq!(c.stopped, ["b"]);
        assert!(c.started.contains(&"a".to_string()));
        let _ = running.reconcile(Vec::new(), &mut start);
        let a = &tokens["a"];
        assert_eq!(a.len(), 2, "a started again with its new settings");
        assert!(a.iter().all(|t| t.is_cancelled()));
        assert!(tokens["b"][0].is_cancelled());
        assert!(running.tasks.is_empty());
    }

    #[test]
    fn an_unchanged_set_starts_and_stops_nothing() {
        let mut running = Running::default();
        let mut starts = 0;
        for _ in 0..3 {
            running.reconcile(want(&[("a", 1), ("b", 7)]), |_, _| {
                starts += 1;
                CancellationToken::new()
            });
        }
        assert_eq!(starts, 2);
    }
}
