//! Online resharding against real servers (testing/reshard.sh; `make test-reshard`):
//! N -> M while two router processes carry a transfer-and-insert load, `start` killed
//! with SIGKILL and rerun, cutover, reverse and a second cutover, verify, complete; then
//! every invariant of the issue is checked on the shards themselves.

mod support;

use std::time::{Duration, Instant};
use support::load::Load;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs `start`, killing it (SIGKILL) once its stderr printed a line containing `at`;
/// returns whether it was killed.
async fn start_killed_at(c: &Cluster, args: &[&str], at: &str) -> bool {
    let mut cmd = c.reshard_cmd(args);
    cmd.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        eprintln!("start> {l}");
        if l.contains(at) {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
            return true;
        }
    }
    child.wait().await.unwrap();
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn two_to_four_under_load_killed_reversed_and_cut_over_again() {
    let c = Cluster::new("x24", &[0, 1], &[1, 0, 0, 1]).await;
    let target = c.target_arg();
    let r1 = c.router("r1").await;
    let r2 = c.router("r2").await;
    let load = Load::start(&[r1.port, r2.port], 3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = load.committed_between(Duration::ZERO, Duration::from_secs(2));

    let plan = c.reshard(&["plan", "--target", &target]).await;
    assert!(ok(&plan), "plan: {}", text(&plan));
    assert!(text(&plan).contains("CREATE PUBLICATION"));

    // Killed during the copy (after its first link), then during catch-up (after the
    // last one), then run to the end; one subscription at a time.
    let copy_from = load.began.elapsed();
    let args = ["start", "--target", &target, "--parallel", "1"];
    assert!(
        start_killed_at(&c, &args, "_0_0: old shard 0").await,
        "start was not killed during the copy"
    );
    // From another shell meanwhile: the copy's figures per table and overall.
    let st = c.reshard(&["status"]).await;
    assert!(
        text(&st).contains("phase copying") && text(&st).contains("copy public.accounts: "),
        "{}",
        text(&st)
    );
    assert!(text(&st).contains("rows/s, eta"), "{}", text(&st));
    assert!(
        start_killed_at(&c, &args, "_1_3: old shard 1").await,
        "start was not killed during catch-up"
    );
    let st = c.reshard(&args).await;
    assert!(ok(&st), "start: {}", text(&st));
    let copy_to = load.began.elapsed();
    let during = load.committed_between(copy_from, copy_to);

    // DDL through a router is refused while the reshard runs, naming it.
    let app = connect(r1.port, "app", "app", "secret").await.unwrap();
    let e = app
        .batch_execute("CREATE TABLE t_ddl (x int)")
        .await
        .unwrap_err();
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("0A000"),
        "{e}"
    );
    assert!(describe(&e).contains("reshard"), "{}", describe(&e));

    let st = c.reshard(&["status"]).await;
    assert!(ok(&st) && text(&st).contains("caught_up"), "{}", text(&st));
    let v = c.reshard(&["verify"]).await;
    assert!(ok(&v), "verify during the load: {}", text(&v));

    // r0 is not listed in the cutovers: it follows the map recorded on the shards.
    let r0 = c.router("r0").await;
    let routers = ["--router", &r1.admin_url, "--router", &r2.admin_url];
    let mut pauses = Vec::new();
    for (step, serving) in [
        ("cutover", &c.new),
        ("reverse", &c.old),
        ("cutover", &c.new),
    ] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = Instant::now();
        let out = c.reshard(&[&[step][..], &routers[..]].concat()).await;
        pauses.push(t.elapsed());
        assert!(ok(&out), "{step}: {}", text(&out));
        if let Err(got) = wait_router_map(&r0.admin_url, serving).await {
            panic!("the unlisted router did not follow the {step}: it uses {got:?}");
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = load.stop().await;
    assert!(
        stats.errors.is_empty(),
        "client errors: {:?}",
        &stats.errors[..stats.errors.len().min(10)]
    );
    assert!(
        stats.slowest < Duration::from_secs(5),
        "slowest transaction {:?}",
        stats.slowest
    );

    let v = c.reshard(&["verify"]).await;
    assert!(ok(&v), "verify: {}", text(&v));
    let done = c.reshard(&["complete"]).await;
    assert!(ok(&done), "complete: {}", text(&done));
    assert!(text(&done).contains("no replication slot, publication or subscription"));
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    check_invariants(&c.new, &stats.acked).await;

    // The old shards stay fenced: an old map's write is refused, naming the reshard.
    let o0 = superuser(c.old[0].port, &c.old[0].name).await;
    let e = o0
        .batch_execute("SET ROLE app; UPDATE accounts SET balance = balance WHERE aid = 1")
        .await
        .unwrap_err();
    assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("25006"));
    assert!(describe(&e).contains("reshard"), "{}", describe(&e));
    // A router started later with the old configuration follows the recorded map: it
    // reads a row written after `complete` (only the new shards have it) and writes.
    let fresh = connect(r1.port, "app", "app", "secret").await.unwrap();
    fresh
        .batch_execute("INSERT INTO ledger (id, aid, amount) VALUES (987654321, 1, 0)")
        .await
        .unwrap();
    let r3 = c.router("r3").await;
    if let Err(got) = wait_router_map(&r3.admin_url, &c.new).await {
        panic!("a router started with the old configuration uses {got:?}");
    }
    let restarted = connect(r3.port, "app", "app", "secret").await.unwrap();
    let seen: i64 = restarted
        .query_one("SELECT count(*) FROM ledger WHERE id = 987654321", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "the restarted router reads the new shards");
    restarted
        .batch_execute("UPDATE accounts SET balance = balance WHERE aid = 1")
        .await
        .unwrap();
    eprintln!(
        "BENCH 2->4: {} transactions acknowledged, the slowest {:?}; {before} tx in the 2 s before the copy, {during} during {:.1} s of copy; pauses {pauses:?}",
        stats.acked.len(),
        stats.slowest,
        (copy_to - copy_from).as_secs_f64()
    );
    drop((r0, r1, r2, r3));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn two_to_three_with_a_pending_prepared_transaction() {
    let c = Cluster::new("x23", &[0, 1], &[1, 0, 1]).await;
    let target = c.target_arg();
    let r1 = c.router("r1").await;
    let r2 = c.router("r2").await;
    let load = Load::start(&[r1.port, r2.port], 3);
    let st = c.reshard(&["start", "--target", &target]).await;
    assert!(ok(&st), "start: {}", text(&st));
    // Idempotent: a second start finds everything in place.
    let again = c.reshard(&["start", "--target", &target]).await;
    assert!(ok(&again), "start again: {}", text(&again));

    let old0 = superuser(c.old[0].port, &c.old[0].name).await;
    old0.batch_execute(
        "BEGIN; INSERT INTO branches VALUES (99, 'pending'); PREPARE TRANSACTION 'test_pending'",
    )
    .await
    .unwrap();
    // r3 is not listed: it stays on the old shards until a cutover is recorded.
    let r3 = c.router("r3").await;
    // r4 starts with the target configuration too early: it serves the old shards (from
    // its first query) until the cutover, then follows it.
    let r4 = c.router_on("r4", &c.target).await;
    let old: Vec<String> = c.old.iter().map(|d| d.name.clone()).collect();
    assert_eq!(
        router_map(&r4.admin_url).await,
        old,
        "r4 before the cutover"
    );
    let w4 = connect(r4.port, "app", "app", "secret").await.unwrap();
    w4.batch_execute("INSERT INTO ledger VALUES (9100001, 1, 0)")
        .await
        .unwrap();
    let routers = ["--router", &r1.admin_url, "--router", &r2.admin_url];
    let out = c.reshard(&[&["cutover"][..], &routers[..]].concat()).await;
    assert!(
        !ok(&out),
        "cutover with a pending prepared transaction must fail"
    );
    assert!(text(&out).contains("test_pending"), "{}", text(&out));
    let st = c.reshard(&["status"]).await;
    assert!(text(&st).contains("phase caught_up"), "{}", text(&st));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Vec<String> = c.old.iter().map(|d| d.name.clone()).collect();
    assert_eq!(
        router_map(&r3.admin_url).await,
        before,
        "no cutover happened"
    );
    old0.batch_execute("ROLLBACK PREPARED 'test_pending'")
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = c.reshard(&[&["cutover"][..], &routers[..]].concat()).await;
    assert!(ok(&out), "cutover: {}", text(&out));
    // r3 was not listed: it switched before the listed routers resumed, so at once it
    // uses the new shards and reads what a listed router just wrote there.
    let new: Vec<String> = c.new.iter().map(|d| d.name.clone()).collect();
    assert_eq!(
        router_map(&r3.admin_url).await,
        new,
        "the unlisted router still used the old shards when the cutover returned"
    );
    assert_eq!(router_map(&r4.admin_url).await, new, "r4 after the cutover");
    let w = connect(r1.port, "app", "app", "secret").await.unwrap();
    let r = connect(r3.port, "app", "app", "secret").await.unwrap();
    for id in 9_000_001..9_000_021i64 {
        w.batch_execute(&format!("INSERT INTO ledger VALUES ({id}, 1, 0)"))
            .await
            .unwrap();
        let n: i64 = r
            .query_one(&format!("SELECT count(*) FROM ledger WHERE id = {id}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "ledger row {id} written through r1, read through r3");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = load.stop().await;
    assert!(
        stats.errors.is_empty(),
        "client errors: {:?}",
        &stats.errors[..stats.errors.len().min(10)]
    );
    assert!(
        stats.slowest < Duration::from_secs(5),
        "slowest transaction {:?}",
        stats.slowest
    );
    let v = c.reshard(&["verify"]).await;
    assert!(ok(&v), "verify: {}", text(&v));
    let done = c.reshard(&["complete"]).await;
    assert!(ok(&done), "complete: {}", text(&done));
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    check_invariants(&c.new, &stats.acked).await;
    drop((r1, r2, r3, r4));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn cancel_leaves_nothing_and_verify_names_a_differing_key() {
    let c = Cluster::new("xc", &[0, 1], &[1, 0, 0, 1]).await;
    let target = c.target_arg();
    let st = c.reshard(&["start", "--target", &target]).await;
    assert!(ok(&st), "start: {}", text(&st));
    // A row changed behind replication's back on a new shard: verify names its key.
    let aid = (1..).find(|k| shard_of(*k, 4) == 2).unwrap();
    let n2 = superuser(c.new[2].port, &c.new[2].name).await;
    n2.batch_execute(&format!(
        "SET session_replication_role = replica; UPDATE accounts SET balance = balance + 1 WHERE aid = {aid}"
    ))
    .await
    .unwrap();
    let v = c.reshard(&["verify"]).await;
    assert!(!ok(&v), "verify must fail");
    assert!(
        text(&v).contains(&format!("aid={aid} differs")),
        "{}",
        text(&v)
    );
    let out = c.reshard(&["cancel"]).await;
    assert!(ok(&out), "cancel: {}", text(&out));
    assert!(text(&out).contains("no replication slot, publication or subscription"));
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    // The pool is still writable on the old shards.
    let o = superuser(c.old[0].port, &c.old[0].name).await;
    o.batch_execute("SET ROLE app; UPDATE accounts SET balance = balance WHERE aid = 1; CREATE TABLE after_cancel (x int)")
        .await
        .unwrap();
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn cutover_settles_the_routers_in_doubt_transactions_first() {
    let c = Cluster::new("x2p", &[0, 1], &[1, 0, 1]).await;
    // No router sweeps here (two-phase commit off in the routers), so only the tool can
    // settle what is left; its timeout is the pool's, 1 s.
    for f in [&c.current, &c.target] {
        let mut s = std::fs::read_to_string(f).unwrap();
        s.push_str("\n[sharding.two_phase_commit]\nenabled = false\ntimeout_seconds = 1\n");
        std::fs::write(f, s).unwrap();
    }
    let target = c.target_arg();
    let st = c.reshard(&["start", "--target", &target]).await;
    assert!(ok(&st), "start: {}", text(&st));
    let r1 = c.router("r1").await;

    // Left by a router that died: `a` was decided commit on its coordinator (shard 0),
    // `b` was never decided. Ledger ids on the shard each old database holds.
    let on = |s: usize| (1_000_000..).find(|k| shard_of(*k, 2) == s).unwrap();
    let (a0, a1) = (on(0), on(1));
    let b1 = (a1 + 1..).find(|k| shard_of(*k, 2) == 1).unwrap();
    let a = orochi_twopc::GidBase::new("deadrouter", 7, 0);
    let b = orochi_twopc::GidBase::new("deadrouter", 8, 1);
    let old0 = superuser(c.old[0].port, &c.old[0].name).await;
    let old1 = superuser(c.old[1].port, &c.old[1].name).await;
    for o in [&old0, &old1] {
        o.batch_execute(orochi_twopc::SETUP_SQL).await.unwrap();
    }
    let prepare = |id: i64, gid: String| {
        format!("BEGIN; INSERT INTO ledger (id, aid, amount) VALUES ({id}, 1, 0); PREPARE TRANSACTION '{gid}'")
    };
    old0.batch_execute(&prepare(a0, a.participant(0)))
        .await
        .unwrap();
    old1.batch_execute(&prepare(a1, a.participant(1)))
        .await
        .unwrap();
    old1.batch_execute(&prepare(b1, b.participant(1)))
        .await
        .unwrap();
    old0.batch_execute(&format!(
        "INSERT INTO orochi.twopc_decisions (gid, decision) VALUES ('{a}', 'commit')"
    ))
    .await
    .unwrap();
    // Older than the timeout: abandoned, not in flight.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let out = c.reshard(&["cutover", "--router", &r1.admin_url]).await;
    assert!(ok(&out), "cutover: {}", text(&out));
    for g in [a.participant(0), a.participant(1)] {
        assert!(
            text(&out).contains(&format!("committed prepared transaction {g}")),
            "{}",
            text(&out)
        );
    }
    assert!(
        text(&out).contains(&format!(
            "rolled back prepared transaction {}",
            b.participant(1)
        )),
        "{}",
        text(&out)
    );
    for o in [&old0, &old1] {
        let n: i64 = o
            .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "prepared transactions left");
    }
    // The committed rows moved with the cutover; the undecided one never existed.
    let mut seen = Vec::new();
    for d in &c.new {
        let n = superuser(d.port, &d.name).await;
        for r in n
            .query("SELECT id FROM ledger WHERE id >= 1000000", &[])
            .await
            .unwrap()
        {
            seen.push(r.get::<_, i64>(0));
        }
    }
    seen.sort();
    let mut want = vec![a0, a1];
    want.sort();
    assert_eq!(seen, want);
    let done = c.reshard(&["complete"]).await;
    assert!(ok(&done), "complete: {}", text(&done));
    check_invariants(&c.new, &[a0, a1]).await;
    drop(r1);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the logical-replication servers of testing/reshard.sh: make test-reshard"]
async fn a_reverse_undone_after_its_unfence_fences_the_old_shards_again() {
    let c = Cluster::new("xr", &[0, 1], &[1, 0, 0, 1]).await;
    let target = c.target_arg();
    let st = c.reshard(&["start", "--target", &target]).await;
    assert!(ok(&st), "start: {}", text(&st));
    let r1 = c.router("r1").await;
    let routers = ["--router", r1.admin_url.as_str()];
    let out = c.reshard(&[&["cutover"][..], &routers[..]].concat()).await;
    assert!(ok(&out), "cutover: {}", text(&out));
    // The reverse fails after it unfenced the old shards, before switching the router.
    let out = c
        .reshard_cmd(&[&["reverse"][..], &routers[..]].concat())
        .env("OROCHI_RESHARD_FAULT", "after_unfence")
        .output()
        .await
        .unwrap();
    assert!(!ok(&out), "reverse must fail: {}", text(&out));
    assert!(text(&out).contains("everything undone;"), "{}", text(&out));
    let new: Vec<String> = c.new.iter().map(|d| d.name.clone()).collect();
    assert_eq!(router_map(&r1.admin_url).await, new);
    for d in &c.old {
        let o = superuser(d.port, &d.name).await;
        let e = o
            .batch_execute("SET ROLE app; UPDATE accounts SET balance = balance WHERE aid = 1")
            .await
            .expect_err("the old shards take writes again after an undone reverse");
        assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("25006"));
    }
    // Through the router: the new shards still serve.
    let app = connect(r1.port, "app", "app", "secret").await.unwrap();
    app.batch_execute("UPDATE accounts SET balance = balance WHERE aid = 1")
        .await
        .unwrap();
    let st = c.reshard(&["status"]).await;
    assert!(text(&st).contains("phase cutover"), "{}", text(&st));
    let done = c.reshard(&["complete"]).await;
    assert!(ok(&done), "complete: {}", text(&done));
    assert_eq!(c.leftovers().await, Vec::<String>::new());
    drop(r1);
    c.cleanup().await;
}
