"""The comparison suite of issue #3: the sharded router must answer like one PostgreSQL.

Run by testing/compare.sh; the three steps are separate so the router starts
only once its databases exist:

    compare.py setup  --single H:P --shards H:P,H:P,H:P,H:P [--self-check]
        (re)creates and loads `cmp` (all rows) on the single server, `cmp2` on
        the first two shard servers and `cmp4` on all four (each shard only its
        rows), plus `cmpshuf` (all rows, shuffled order) with --self-check.
    compare.py config --out FILE --port P --admin P --metrics P --shards ...
        writes the router config: pools cmp2 and cmp4 with the sharded tables.
    compare.py check  --single H:P (--router H:P | --self-check)
        asks every query in every mode of the reference (`cmp`, directly) and
        of each target (the router's pools cmp2 and cmp4, or with --self-check
        the plain databases `cmp` and `cmpshuf` directly: every answer must
        match, which proves the judge itself), prints every WRONG answer and a
        summary, exits 1 on any wrong answer.
"""

import argparse
import random
import re
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import dataset
import judge
import queries

APP_USER, APP_PASSWORD = "app", "secret"
SUPERUSER, SUPERUSER_PASSWORD = "postgres", "postgres"
POOLS = {"cmp2": 2, "cmp4": 4}
REF_DB, SHUF_DB = "cmp", "cmpshuf"
SHOW_WRONG = 60  # mismatches printed in full; the rest are counted


def hostport(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host, int(port)


def dsn(hp, db, user=APP_USER, password=APP_PASSWORD):
    return f"host={hp[0]} port={hp[1]} dbname={db} user={user} password={password}"


def load_everywhere(a, spec, d, ref_db, shuf_db, pools, who):
    """Loads D (tables of module SPEC) into REF_DB on the single server, each pool's
    database on its shard servers (each shard only its rows) and, with --self-check,
    SHUF_DB (all rows, shuffled); checks the split. Returns the per-table row counts
    of REF_DB and the number of databases."""
    shards = a.shards
    if len(shards) < max(pools.values()):
        sys.exit(f"{who}: need {max(pools.values())} shard servers, got {len(shards)}")
    plan = [(a.single, ref_db, None, None)]
    for pool, n in pools.items():
        plan += [(shards[i], pool, i, n) for i in range(n)]
    if a.self_check:
        plan.append((a.single, shuf_db, None, None))

    def build(item):
        hp, db, shard, n = item
        dataset.create_database(dsn(hp, "postgres", SUPERUSER, SUPERUSER_PASSWORD), db)
        order = random.Random(99) if db == shuf_db else None
        dataset.load(dsn(hp, db), d, shard, n, order, spec)

    # One server at a time per database, servers in parallel (the work is theirs).
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(build, plan))
    # The split must be a partition of the plain data: every row on exactly
    # one shard (sums equal), every shard holding some, replicated tables whole.
    want = dataset.counts(dsn(a.single, ref_db), spec.COLUMNS)
    for table, rows in d.rows.items():
        if want[table] != len(rows):
            sys.exit(f"{who}: {ref_db}.{table} has {want[table]} rows, generated {len(rows)}")
    for pool, n in pools.items():
        per = [dataset.counts(dsn(shards[i], pool), spec.COLUMNS) for i in range(n)]
        for table in spec.COLUMNS:
            got = [c[table] for c in per]
            if table in spec.SHARDED:
                if sum(got) != want[table] or min(got) == 0:
                    sys.exit(f"{who}: {pool}.{table} split {got} does not partition {want[table]} rows")
            elif got != [want[table]] * n:
                sys.exit(f"{who}: replicated {pool}.{table} has {got} rows, want {want[table]} on each")
        print(f"{who}: {pool}: " + ", ".join(
            f"{t} {'+'.join(str(c[t]) for c in per)}" for t in spec.SHARDED))
    return want, len(plan)


def cmd_setup(a):
    t0 = time.monotonic()
    d = dataset.generate()
    _, ndb = load_everywhere(a, dataset, d, REF_DB, SHUF_DB, POOLS, "compare")
    print(f"compare: loaded {dataset.total_rows(d)} rows into {ndb} databases "
          f"in {time.monotonic() - t0:.1f}s")


def cmd_config(a):
    lines = [
        "# Written by testing/compare/compare.py: the comparison suite's router (issue #3).",
        "[general]", 'host = "127.0.0.1"', f"port = {a.port}", f"admin_port = {a.admin}",
        f"metrics_port = {a.metrics}", 'admin_username = "admin"', 'admin_password = "admin"',
        "connect_timeout = 10000", "",
    ]
    for pool, n in POOLS.items():
        lines += [f"[pools.{pool}]", 'pool_mode = "transaction"', 'sharding_function = "postgres_hash"', "",
                  f"[pools.{pool}.users.0]", f'username = "{APP_USER}"', f'password = "{APP_PASSWORD}"',
                  "pool_size = 10", ""]
        for i in range(n):
            h, p = a.shards[i]
            lines += [f"[pools.{pool}.shards.{i}]", f'database = "{pool}"',
                      f'servers = [["{h}", {p}, "primary"]]', ""]
    lines += ["[sharding]", "enabled = true", 'sharding_function = "postgres_hash"', ""]
    for pool in POOLS:
        for table, (col, typ) in dataset.SHARDED.items():
            lines += ["[[sharding.tables]]", f'name = "{table}"', f'column = "{col}"',
                      f'data_type = "{typ}"', f'pool = "{pool}"', ""]
    with open(a.out, "w") as f:
        f.write("\n".join(lines))


class Tally:
    def __init__(self, labels):
        self.labels = labels
        self.matched = Counter()
        self.refused = Counter()
        self.wrong = Counter()
        self.refusals = defaultdict(lambda: [0, Counter()])  # construct -> [runs, messages]
        self.mismatches = []
        self.suite_errors = []

    def record(self, label, construct, q, mode, want, got):
        why = None
        if got.error is not None:
            if got.sqlstate == "0A000":
                self.refused[label] += 1
                r = self.refusals[construct]
                r[0] += 1
                r[1][got.error] += 1
                return
            why = "error instead of an answer"
        else:
            why = judge.differ(q, want, got)
        if why is None:
            self.matched[label] += 1
            return
        self.wrong[label] += 1
        self.mismatches.append((label, mode, q, why, want, got))

    def record_write(self, label, construct, mode, expect, got):
        """One verdict per transaction: wrong if any statement (or the state after
        ROLLBACK) differs or fails other than by refusal; refused if a statement
        was refused and the rest agrees; else matched."""
        refusal = None
        for key, q, g in got:
            m = f"{mode}, {key} of BEGIN..ROLLBACK"
            if g.error is not None and g.sqlstate == "0A000":
                refusal = refusal or g
                continue
            why = "error instead of an answer" if g.error is not None else judge.differ(q, expect[key], g)
            if why is not None:
                self.wrong[label] += 1
                self.mismatches.append((label, m, q, why, expect[key], g))
                return
        if refusal is not None:
            self.refused[label] += 1
            r = self.refusals[construct]
            r[0] += 1
            r[1][refusal.error] += 1
        else:
            self.matched[label] += 1


def _params(q):
    return "" if q.params is None else " params=" + _cut(repr(list(q.params)), 200)


def _cut(s, n):
    return s if len(s) <= n else s[: n - 1] + "…"


def run_reads(ref, targets, qs, tally):
    runs = 0
    for q in qs:
        lit = judge.literal(ref, q)
        for mode in q.modes or (judge.MODES if q.params is not None else ("simple", "prepared", "binary")):
            want = judge.execute(ref, q, mode, lit)
            if want.error is not None:
                tally.suite_errors.append(f"reference failed ({mode}): {q.sql}{_params(q)}: {want.brief()}")
                continue
            if mode == "prepared":
                again = judge.execute(ref, q, mode, lit)
                if again.error is not None or judge.differ(q, want, again):
                    tally.suite_errors.append(f"reference not repeatable (prepared): {q.sql}{_params(q)}")
            runs += 1
            for t in targets:
                got = judge.execute(t, q, mode, lit)
                shown = mode
                if mode == "prepared" and got.error is None and judge.differ(q, want, got) is None:
                    got = judge.execute(t, q, mode, lit)  # Bind/Execute of the already prepared statement
                    shown = "prepared, 2nd execution"
                tally.record(t.label, q.construct, q, shown, want, got)
    return runs


def run_write(ref, target, w, mode):
    """BEGIN; steps (in MODE); ROLLBACK; then `after`: [(key, query, outcome)] from TARGET.

    A transaction stops at its first error. `after` always runs, on the other
    connection, so it sees only committed state: whatever was refused or
    failed, nothing may have been applied. Literal SQL comes from REF, so
    every target gets the same text."""
    on = "prep" if mode == "prepared" else "plain"  # one connection for the whole transaction
    out = []

    def run(key, q, m, conn):
        lit = judge.literal(ref, q) if m == "simple" else None
        o = judge.execute(target, q, m, lit, conn)
        out.append((key, q, o))
        return o.error is None

    if run("BEGIN", queries.Q(w.construct, "BEGIN"), "simple", on):
        for i, step in enumerate(w.steps):
            if not run(f"step {i}", step, mode, on):
                break
    if not run("ROLLBACK", queries.Q(w.construct, "ROLLBACK"), "simple", on):
        target.close()  # a transaction that could not be ended dies with its connection
    run("after", w.after, "simple", "plain" if on == "prep" else "prep")
    return out


def run_writes(ref, targets, ws, tally):
    runs = 0
    for w in ws:
        for mode in judge.MODES:
            want = run_write(ref, ref, w, mode)
            bad = [o for _, _, o in want if o.error is not None]
            if bad:
                tally.suite_errors.append(f"reference write failed ({mode}): {w.steps[0].sql}: {bad[0].brief()}")
                continue
            runs += 1
            expect = {key: o for key, _, o in want}
            for t in targets:
                tally.record_write(t.label, w.construct, mode, expect, run_write(ref, t, w, mode))
    return runs


def cmd_check(a):
    d = dataset.generate()
    qs = queries.reads(d)
    ws = queries.writes(d)
    if a.only:
        pat = re.compile(a.only)
        qs = [q for q in qs if pat.search(q.construct) or pat.search(q.sql)]
        ws = [w for w in ws if pat.search(w.construct)]
    if a.list:
        for q in qs:
            print(f"[{q.construct}] {q.sql}{_params(q)}")
        return 0
    ref = judge.Target(f"direct {REF_DB}", dsn(a.single, REF_DB))
    if a.self_check:
        targets = [judge.Target(f"self:{REF_DB}", dsn(a.single, REF_DB)),
                   judge.Target(f"self:{SHUF_DB}", dsn(a.single, SHUF_DB))]
    else:
        targets = [judge.Target(pool, dsn(a.router, pool)) for pool in POOLS]
    t0 = time.monotonic()
    ref.connect()
    tally = Tally([t.label for t in targets])
    read_runs = run_reads(ref, targets, qs, tally)
    write_runs = run_writes(ref, targets, ws, tally)
    for t in targets + [ref]:
        t.close()
    return report(a, tally, targets, qs, ws, read_runs, write_runs, time.monotonic() - t0)


def print_details(tally, verbose):
    """Every wrong answer (the first SHOW_WRONG in full), suite error and refusal."""
    for n, (label, mode, q, why, want, got) in enumerate(tally.mismatches):
        if n == SHOW_WRONG:
            print(f"... {len(tally.mismatches) - SHOW_WRONG} more wrong answers not shown")
            break
        print(f"WRONG [{label} / {mode}] {q.construct}: {why}")
        print(f"    query: {_cut(q.sql, 400)}{_params(q)}")
        at = judge.first_diff(q, want, got) - 1
        print(f"    want:  {_cut(want.brief(at, ordered=q.ordered), 400)}")
        print(f"    got:   {_cut(got.brief(at, ordered=q.ordered), 400)}")
    for e in tally.suite_errors:
        print(f"SUITE ERROR {e}")
    if tally.refusals:
        print("refused (SQLSTATE 0A000), by construct:")
        for construct, (runs, msgs) in sorted(tally.refusals.items(), key=lambda kv: (-kv[1][0], kv[0])):
            print(f"  {construct}: {runs} runs")
            for msg, _ in msgs.most_common(2 if verbose else 1):
                print(f"      {_cut(msg, 240)}")


def report(a, tally, targets, qs, ws, read_runs, write_runs, secs):
    wrong = sum(tally.wrong.values())
    print_details(tally, a.verbose)
    nconstructs = len({q.construct for q in qs} | {w.construct for w in ws})
    print(f"compare: {len(qs)} read queries + {len(ws)} rolled-back write transactions "
          f"({nconstructs} constructs) × up to {len(judge.MODES)} modes "
          f"({', '.join(judge.MODES)}) = {read_runs} + {write_runs} runs per target, "
          f"targets: {', '.join(t.label for t in targets)} (reference: direct {REF_DB}); {secs:.1f}s")
    for t in targets:
        print(f"compare: {t.label:12s} matched {tally.matched[t.label]:5d}, refused {tally.refused[t.label]:5d}, "
              f"wrong {tally.wrong[t.label]}")
    total = sum(tally.matched.values()) + sum(tally.refused.values()) + wrong
    print(f"compare: {total} answers: {sum(tally.matched.values())} matched, "
          f"{sum(tally.refused.values())} refused, {wrong} wrong"
          + (f", {len(tally.suite_errors)} suite errors" if tally.suite_errors else ""))
    if a.self_check and sum(tally.refused.values()):
        print("compare: self-check: a plain database refused something (0A000): the suite is broken")
        return 1
    return 1 if wrong or tally.suite_errors else 0


def run_cli(doc, setup, config, check, ports=True):
    """The setup / config / check command line (this suite's and the corpus's)."""
    shards = lambda v: [hostport(x) for x in v.split(",") if x]  # noqa: E731
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--single", type=hostport, required=True)
    s.add_argument("--shards", type=shards, required=True)
    s.add_argument("--self-check", action="store_true")
    c = sub.add_parser("config")
    c.add_argument("--out", required=True)
    for k in ("port", "admin", "metrics") if ports else ():
        c.add_argument(f"--{k}", type=int, required=True)
    c.add_argument("--shards", type=shards, required=True)
    k = sub.add_parser("check")
    k.add_argument("--single", type=hostport, required=True)
    k.add_argument("--router", type=hostport)
    k.add_argument("--self-check", action="store_true")
    k.add_argument("--only", help="regex: only queries whose name, construct or SQL matches")
    k.add_argument("--list", action="store_true", help="print the queries and exit")
    k.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    if a.cmd == "setup":
        setup(a)
        return 0
    if a.cmd == "config":
        config(a)
        return 0
    if not a.self_check and a.router is None and not a.list:
        p.error("check needs --router HOST:PORT or --self-check")
    return check(a)


def main():
    return run_cli(__doc__, cmd_setup, cmd_config, cmd_check)


if __name__ == "__main__":
    sys.exit(main())
