//! `reshard cutover` and `reshard reverse`: one procedure, two directions. Traffic moves
//! from the serving side to the other within `--max-pause`:
//!
//! 1. PAUSE the pool on every listed router (clients wait, they do not fail);
//! 2. require no prepared transaction on the serving side (the routers' two-phase
//!    recovery runs first, before the pause: [`crate::recover`]);
//! 3. fence the serving side (writes refused, naming the reshard), then wait until every
//!    slot passed the serving side's current WAL position;
//! 4. set the sequences of the other side;
//! 5. stop the streaming direction, arm the opposite one at the other side's current
//!    position (so `reverse` later loses nothing written after this cutover), unfence;
//! 6. switch every router to the other map and check each one's confirmation;
//! 7. record the phase, RESUME.
//!
//! The fence comes before the wait (the order the issue lists has it after): a router
//! that is not listed could otherwise write between the position read and the fence,
//! and that write would be lost. Past the bound, or on any error, everything done is
//! undone in reverse order and the routers resume on the map they had.
//!
//! Lag and prepared transactions are also checked before pausing, so a switch that
//! cannot succeed fails without pausing anyone.

use crate::catalog;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::names::{links, Direction, Link};
use crate::repl;
use crate::routers::Router;
use crate::sql;
use crate::state::{Phase, State};
use crate::topology::{Login, ShardSpec};
use std::time::{Duration, Instant};

pub struct Options {
    pub routers: Vec<String>,
    pub max_pause: Duration,
    /// `[sharding.two_phase_commit] timeout`: prepared transactions of the routers older
    /// than this are settled by the recovery sweep before the pause.
    pub twopc_timeout: Duration,
}

/// What was done, for the undo; and when each step ended, for the report.
#[derive(Default)]
struct Done {
    paused: Vec<usize>,
    fenced_from: bool,
    stream_disabled: bool,
    armed: bool,
    unfenced_to: bool,
    switched: Vec<usize>,
    /// (step, its time) in order: where a pause went, in the report of a switch that was
    /// done and of one that was undone (the bound is the operator's to tune).
    steps: Vec<(&'static str, Duration)>,
    step_began: Option<Instant>,
}

impl Done {
    /// Ends the current step, named `what`.
    fn step(&mut self, what: &'static str) {
        let now = Instant::now();
        let began = self.step_began.replace(now).unwrap_or(now);
        self.steps.push((what, now - began));
    }

    /// `pause 12 ms, fence 3 ms, ...`.
    fn timeline(&self) -> String {
        self.steps
            .iter()
            .map(|(what, d)| format!("{what} {} ms", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn run(st: State, login: Login, opts: &Options, to_new: bool) -> Result<()> {
    let id = st.spec.id.clone();
    match (to_new, st.phase) {
        (true, Phase::CaughtUp | Phase::Reversed) | (false, Phase::CutOver) => {}
        (true, p) => {
            return Err(Error::State(format!(
                "reshard {id} is in phase {}: cutover needs a caught-up copy (run `reshard start` until it exits 0)",
                p.as_str()
            )))
        }
        (false, p) => {
            return Err(Error::State(format!(
                "reshard {id} is in phase {}: reverse follows a cutover",
                p.as_str()
            )))
        }
    }
    let (f, _) = Fleet::connect(st.spec, login.clone(), None).await?;
    f.bypass_guards().await?;
    let (stream_dir, arm_dir) = if to_new {
        (Direction::Forward, Direction::Reverse)
    } else {
        (Direction::Reverse, Direction::Forward)
    };
    let stream = links(f.old.len(), f.new.len(), stream_dir);
    let arm = links(f.old.len(), f.new.len(), arm_dir);
    let (from_map, to_map) = if to_new {
        (&f.spec.old, &f.spec.new)
    } else {
        (&f.spec.new, &f.spec.old)
    };

    // Before pausing anyone: lag, prepared transactions, the routers reachable.
    for l in &stream {
        let name = l.name(&id);
        match repl::slot_lag(&f.src(stream_dir)[l.src()], &name).await? {
            None => return Err(Error::State(format!("slot {name} is missing: run `reshard start` again"))),
            Some((_, lag)) if lag > 64 << 20 => {
                return Err(Error::State(format!(
                    "{name} is {} behind: wait for replication to catch up (see `reshard status`), nothing was paused",
                    crate::plan::human_bytes(lag)
                )))
            }
            _ => {}
        }
        if repl::syncing(&f.dst(stream_dir)[l.dst()], &name).await? > 0 {
            return Err(Error::State(format!(
                "{name} still copies tables: let `reshard start` finish"
            )));
        }
    }
    // Every streaming worker running and confirmed up to now: a switch that would wait for
    // lag fails here, before anyone is paused.
    let mut pre = Vec::new();
    for c in f.src(stream_dir) {
        pre.push(repl::current_lsn(c).await?);
    }
    let until = Instant::now() + Duration::from_secs(60);
    for l in &stream {
        let name = l.name(&id);
        let (src, dst) = (&f.src(stream_dir)[l.src()], &f.dst(stream_dir)[l.dst()]);
        while repl::worker_gone(dst, &name).await?
            || !repl::slot_passed(src, &name, &pre[l.src()]).await?
        {
            if Instant::now() > until {
                return Err(Error::State(format!(
                    "{name} has not caught up within 60 s (see `reshard status`): nothing was paused"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let serving = if to_new {
        f.spec.old_endpoints()
    } else {
        f.spec.new_endpoints()
    };
    crate::recover::sweep(&f.spec.pool, &serving, &login, opts.twopc_timeout).await;
    prepared_check(&f, stream_dir, Duration::from_secs(2)).await?;
    for l in &arm {
        repl::advance_slot(&f.src(arm_dir)[l.src()], &l.name(&id)).await?;
    }
    let mut routers = Vec::new();
    for u in &opts.routers {
        routers.push(Router::connect(u).await?);
    }

    let t0 = Instant::now();
    // Keep a fifth of the bound for the undo.
    let deadline = t0 + opts.max_pause.mul_f64(0.8);
    let mut done = Done {
        step_began: Some(t0),
        ..Done::default()
    };
    let result = steps(
        &f, &routers, stream_dir, &stream, &arm, to_map, deadline, &mut done,
    )
    .await;
    match result {
        Ok(()) => {
            let phase = if to_new {
                Phase::CutOver
            } else {
                Phase::Reversed
            };
            let note = format!(
                "{} at pause {} ms",
                phase.as_str(),
                t0.elapsed().as_millis()
            );
            let recorded = f.write_state(phase, &note).await;
            done.step("record");
            // The routers that were not listed switch before the listed ones resume.
            let stale = match &recorded {
                Ok(()) => followers_gone(&f.src(stream_dir)[0], t0 + opts.max_pause).await,
                Err(_) => Ok(vec![]),
            };
            done.step("unlisted routers");
            let mut resume_err = Vec::new();
            for r in &routers {
                if let Err(e) = r.resume(&f.spec.pool).await {
                    resume_err.push(e.to_string());
                }
            }
            done.step("resume");
            let pause = t0.elapsed();
            recorded?;
            if !resume_err.is_empty() {
                return Err(Error::Db(resume_err.join("\n")));
            }
            match stale {
                Ok(s) if s.is_empty() => {}
                Ok(s) => eprintln!(
                    "reshard {id}: the followers of {} did not leave {} within the bound: those routers read the {} shards until they follow (at their next poll, every 0.5 s)",
                    s.join(", "),
                    f.src(stream_dir)[0].label,
                    if to_new { "old" } else { "new" }
                ),
                Err(e) => eprintln!("reshard {id}: could not wake the routers' followers: {e}"),
            }
            println!(
                "reshard {id}: {} done; pool {} now on {} shards ({}); routers paused for {} ms ({})",
                if to_new { "cutover" } else { "reverse" },
                f.spec.pool,
                to_map.len(),
                to_map
                    .iter()
                    .map(|s| s.database.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                pause.as_millis(),
                done.timeline()
            );
            Ok(())
        }
        Err(e) => {
            done.step("failed step");
            let undo = undo(&f, &routers, stream_dir, &stream, &arm, from_map, &done).await;
            done.step("undo");
            let pause = t0.elapsed();
            Err(Error::Aborted(format!(
                "{} aborted after {} ms ({}), everything undone{}; the routers go on with the {} shards: {e}",
                if to_new { "cutover" } else { "reverse" },
                pause.as_millis(),
                done.timeline(),
                match undo {
                    Ok(()) => String::new(),
                    Err(u) => format!(" EXCEPT: {u}"),
                },
                if to_new { "old" } else { "new" }
            )))
        }
    }
}

/// Wakes the routers' followers connected to `left` (shard 0 of the side traffic left;
/// `crate::follow`) and waits, until `until`, for every one to leave it: an unlisted
/// router's follower leaves once its router switched, a listed router's once it saw its
/// router's new map. Notified again every 20 ms (a notification that arrives while a
/// follower is in a round is not seen by it). Returns the followers still there.
async fn followers_gone(left: &crate::conn::Conn, until: Instant) -> Result<Vec<String>> {
    let notify = format!("NOTIFY {}", crate::follow::CHANNEL);
    loop {
        left.exec(&notify).await?;
        let still: Vec<String> = left
            .query(
                "SELECT coalesce(host(client_addr), 'local') || ':' || coalesce(client_port, -1)
                 FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
                &[&crate::follow::APPLICATION_NAME],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if still.is_empty() || Instant::now() >= until {
            return Ok(still);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// No prepared transaction on the serving side; before the pause (`window` > 0) those
/// that resolve within the window are two-phase commits in flight, not pending ones.
/// During the pause the listed routers have no transaction running, so none may exist.
async fn prepared_check(f: &Fleet, stream_dir: Direction, window: Duration) -> Result<()> {
    for c in f.src(stream_dir) {
        if let Some((gid, age)) = catalog::pending_prepared(c, window)
            .await?
            .into_iter()
            .next()
        {
            return Err(Error::State(format!(
                "{}: prepared transaction '{gid}' is pending ({age:.0} s old): run the routers' 2PC recovery (or COMMIT/ROLLBACK PREPARED it) first",
                c.label
            )));
        }
    }
    Ok(())
}

/// `OROCHI_RESHARD_FAULT=<point>` fails the procedure there, as a lost router or the
/// bound would: how the tests reach the undo of the late steps (unset in production).
pub const FAULT_ENV: &str = "OROCHI_RESHARD_FAULT";

fn fault(point: &str) -> Result<()> {
    match std::env::var(FAULT_ENV) {
        Ok(p) if p == point => Err(Error::Aborted(format!(
            "{FAULT_ENV}={point}: failing here on purpose"
        ))),
        _ => Ok(()),
    }
}

fn left(deadline: Instant, what: &str) -> Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Aborted(format!("the pause bound passed while {what}")))
}

#[allow(clippy::too_many_arguments)]
async fn steps(
    f: &Fleet,
    routers: &[Router],
    stream_dir: Direction,
    stream: &[Link],
    arm: &[Link],
    to_map: &[ShardSpec],
    deadline: Instant,
    done: &mut Done,
) -> Result<()> {
    let id = &f.spec.id;
    let pool = &f.spec.pool;
    let arm_dir = if stream_dir == Direction::Forward {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    // 1. PAUSE.
    for (i, r) in routers.iter().enumerate() {
        let t = left(deadline, "pausing the routers")?;
        done.paused.push(i);
        tokio::time::timeout(t, r.pause(pool)).await.map_err(|_| {
            Error::Aborted(format!(
                "router {} did not pause in time (transactions still running)",
                r.url
            ))
        })??;
    }
    done.step("pause");
    // 2. No prepared transaction.
    prepared_check(f, stream_dir, Duration::ZERO).await?;
    done.step("prepared check");
    // 3. Fence, then wait for every slot to pass the fenced side's position.
    let from = f.src(stream_dir);
    let fence = sql::fence(
        id,
        pool,
        &f.tables,
        if stream_dir == Direction::Forward {
            "new"
        } else {
            "old"
        },
    );
    done.fenced_from = true;
    for c in from {
        let ms = left(deadline, "fencing")?.as_millis().max(1);
        // One implicit transaction; SET LOCAL ends with it.
        c.exec(&format!("SET LOCAL lock_timeout = {ms}; {fence}"))
            .await?;
    }
    done.step("fence");
    let mut lsn = Vec::new();
    for c in from {
        lsn.push(repl::current_lsn(c).await?);
    }
    for l in stream {
        let name = l.name(id);
        loop {
            if repl::slot_passed(&from[l.src()], &name, &lsn[l.src()]).await? {
                break;
            }
            left(deadline, &format!("waiting for {name} to catch up"))?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    done.step("catch-up");
    // 4. Sequences: the other side starts past every value handed out here.
    let to = f.dst(stream_dir);
    let mut seqs: Vec<(String, i64)> = Vec::new();
    for c in from {
        for (name, v) in catalog::sequences(c).await? {
            match seqs.iter_mut().find(|s| s.0 == name) {
                Some(s) => s.1 = s.1.max(v),
                None => seqs.push((name, v)),
            }
        }
    }
    for c in to {
        for (name, v) in &seqs {
            c.query(
                "SELECT setval($1::text::regclass, greatest($2::int8, (SELECT coalesce(last_value, $2::int8) FROM pg_sequences
                   WHERE format('%I.%I', schemaname, sequencename) = $1::text)))",
                &[name, v],
            )
            .await?;
        }
    }
    done.step("sequences");
    // 5. Stop the streaming direction; arm the opposite one from here on.
    done.stream_disabled = true;
    for l in stream {
        repl::set_enabled(&to[l.dst()], &l.name(id), false).await?;
    }
    for l in stream {
        while !repl::worker_gone(&to[l.dst()], &l.name(id)).await? {
            left(deadline, "stopping the replication workers")?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    done.step("stop replication");
    let mut start = Vec::new();
    for c in to {
        start.push(repl::current_lsn(c).await?);
    }
    done.armed = true;
    for l in arm {
        let dst = &f.dst(arm_dir)[l.dst()];
        repl::start_at(dst, &l.name(id), &start[l.src()]).await?;
        repl::set_enabled(dst, &l.name(id), true).await?;
    }
    done.unfenced_to = true;
    let unfence = sql::unfence(id, &f.tables);
    for c in to {
        c.exec(&unfence).await?;
    }
    done.step("arm and unfence");
    fault("after_unfence")?;
    // 6. Switch, confirmed by each router.
    for (i, r) in routers.iter().enumerate() {
        let t = left(deadline, "switching the routers")?;
        done.switched.push(i);
        tokio::time::timeout(t, r.switch(pool, to_map))
            .await
            .map_err(|_| {
                Error::Aborted(format!(
                    "router {} did not confirm the switch in time",
                    r.url
                ))
            })??;
    }
    done.step("switch");
    left(deadline, "switching the routers")?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn undo(
    f: &Fleet,
    routers: &[Router],
    stream_dir: Direction,
    stream: &[Link],
    arm: &[Link],
    from_map: &[ShardSpec],
    done: &Done,
) -> Result<(), String> {
    let id = &f.spec.id;
    let arm_dir = if stream_dir == Direction::Forward {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let mut errs = Vec::new();
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            errs.push(e.to_string());
        }
    };
    for i in &done.switched {
        note(routers[*i].switch(&f.spec.pool, from_map).await);
    }
    let to = f.dst(stream_dir);
    // The side traffic moved to was fenced: the new shards since `start`, the old ones
    // since the cutover a reverse undoes.
    if done.unfenced_to {
        let fence = sql::fence(
            id,
            &f.spec.pool,
            &f.tables,
            if stream_dir == Direction::Forward {
                "old"
            } else {
                "new"
            },
        );
        for c in to {
            note(c.exec(&fence).await);
        }
    }
    if done.armed {
        for l in arm {
            note(repl::set_enabled(&f.dst(arm_dir)[l.dst()], &l.name(id), false).await);
        }
    }
    if done.stream_disabled {
        for l in stream {
            note(repl::set_enabled(&to[l.dst()], &l.name(id), true).await);
        }
    }
    if done.fenced_from {
        let unfence = sql::unfence(id, &f.tables);
        for c in f.src(stream_dir) {
            note(c.exec(&unfence).await);
        }
    }
    for i in &done.paused {
        note(routers[*i].resume_fresh(&f.spec.pool).await);
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}
