"""The application corpus (issue 20, item 6): queries written the way applications write
them, answered by the sharded router exactly as by one PostgreSQL database, or refused.

Why a corpus beside the generated comparison: testing/compare builds its queries from
templates that cover the routing rules one by one; applications combine them (an ORM's
join, filter, GROUP BY, ORDER BY and LIMIT in one statement, CTEs, windows, set
operations, jsonb). Each query of app_queries.sql is asked of the plain reference
database and of the router's pools `corpus2` and `corpus4` (2 and 4 shards), in the
simple, prepared and binary modes (and extended, when it has parameters), and judged
by the comparison suite's judge (testing/compare/judge.py: types, values, tags; rows in
order only when marked `-- ordered`). Run by testing/compare.sh:

    corpus.py setup  --single H:P --shards H:P,... [--self-check]
    corpus.py config --out FILE --shards H:P,...     (appends the pools to FILE)
    corpus.py check  --single H:P (--router H:P | --self-check) [--only REGEX] [--verbose]

check exits 1 on any wrong answer (an error other than 0A000 is one), on a reference
failure, or when more than MAX_REFUSED of the queries are refused.

app_queries.sql: each query is a block starting with `-- name: ...`, optionally
`-- ordered` (its ORDER BY determines the row order) and `-- params: <python tuple>`
(the query uses %s placeholders), then the SQL, ended by a `;` at the end of a line.
"""

import ast
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compare"))

import appdata  # noqa: E402
import compare  # noqa: E402
import dataset  # noqa: E402
import judge  # noqa: E402
from queries import Q  # noqa: E402

POOLS = {"corpus2": 2, "corpus4": 4}
REF_DB, SHUF_DB = "corpus", "corpusshuf"
QUERIES = os.path.join(HERE, "app_queries.sql")
MAX_REFUSED = 0.05  # of the queries: issue 20's goal


def parse(path=QUERIES):
    """The queries of app_queries.sql, in file order."""
    out, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.rstrip("\n")
            if s.startswith("-- name:"):
                if cur is not None:
                    sys.exit(f"{path}:{n}: query {cur['name']!r} has no terminating ';'")
                cur = {"name": s[8:].strip(), "ordered": False, "params": None, "sql": [], "line": n}
            elif cur is None:
                if s.strip() and not s.startswith("--"):
                    sys.exit(f"{path}:{n}: SQL outside a `-- name:` block")
            elif s.strip() == "-- ordered" and not cur["sql"]:
                cur["ordered"] = True
            elif s.startswith("-- params:") and not cur["sql"]:
                cur["params"] = ast.literal_eval(s[10:].strip())
            else:
                cur["sql"].append(s)
                if s.rstrip().endswith(";"):
                    sql = "\n".join(cur["sql"]).strip().rstrip(";").strip()
                    out.append(Q(cur["name"], sql, cur["params"], cur["ordered"]))
                    cur = None
    if cur is not None:
        sys.exit(f"{path}: query {cur['name']!r} has no terminating ';'")
    names = [q.construct for q in out]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        sys.exit(f"{path}: duplicate query names: {sorted(dup)}")
    return out


def cmd_setup(a):
    t0 = time.monotonic()
    d = appdata.generate()
    want, ndb = compare.load_everywhere(a, appdata, d, REF_DB, SHUF_DB, POOLS, "corpus")
    print(f"corpus: loaded {dataset.total_rows(d)} rows ("
          + ", ".join(f"{t} {want[t]}" for t in appdata.COLUMNS)
          + f") into {ndb} databases in {time.monotonic() - t0:.1f}s")


def cmd_config(a):
    """Appends the corpus pools (and their distributed tables) to the router config."""
    lines = ["", "# The application corpus (testing/corpus/corpus.py)."]
    for pool, n in POOLS.items():
        lines += [f"[pools.{pool}]", 'pool_mode = "transaction"', 'sharding_function = "postgres_hash"', "",
                  f"[pools.{pool}.users.0]", f'username = "{compare.APP_USER}"',
                  f'password = "{compare.APP_PASSWORD}"', "pool_size = 10", ""]
        for i in range(n):
            h, p = a.shards[i]
            lines += [f"[pools.{pool}.shards.{i}]", f'database = "{pool}"',
                      f'servers = [["{h}", {p}, "primary"]]', ""]
        for table, (col, typ) in appdata.SHARDED.items():
            lines += ["[[sharding.tables]]", f'name = "{table}"', f'column = "{col}"',
                      f'data_type = "{typ}"', f'pool = "{pool}"', ""]
    with open(a.out, "a") as f:
        f.write("\n".join(lines))


def cmd_check(a):
    qs = parse()
    if a.only:
        pat = re.compile(a.only)
        qs = [q for q in qs if pat.search(q.construct) or pat.search(q.sql)]
    if a.list:
        for q in qs:
            print(f"[{q.construct}] {q.sql}")
        return 0
    ref = judge.Target(f"direct {REF_DB}", compare.dsn(a.single, REF_DB))
    if a.self_check:
        targets = [judge.Target(f"self:{SHUF_DB}", compare.dsn(a.single, SHUF_DB))]
    else:
        targets = [judge.Target(pool, compare.dsn(a.router, pool)) for pool in POOLS]
    t0 = time.monotonic()
    ref.connect()
    tally = compare.Tally([t.label for t in targets])
    runs = compare.run_reads(ref, targets, qs, tally)
    for t in targets + [ref]:
        t.close()
    compare.print_details(tally, a.verbose)
    wrong_q = {m[2].construct for m in tally.mismatches}
    refused_q = set(tally.refusals) - wrong_q
    nq = len(qs)
    print(f"corpus: {nq} application queries × up to {len(judge.MODES)} modes = {runs} runs per target, "
          f"targets: {', '.join(t.label for t in targets)} (reference: direct {REF_DB}); "
          f"{time.monotonic() - t0:.1f}s")
    for t in targets:
        print(f"corpus: {t.label:12s} matched {tally.matched[t.label]:5d}, refused {tally.refused[t.label]:5d}, "
              f"wrong {tally.wrong[t.label]}")
    print(f"corpus: {nq} queries: {nq - len(refused_q) - len(wrong_q)} answered exactly everywhere, "
          f"{len(refused_q)} refused somewhere ({100 * len(refused_q) / max(nq, 1):.1f}%), {len(wrong_q)} wrong"
          + (f", {len(tally.suite_errors)} suite errors" if tally.suite_errors else ""))
    if a.self_check and tally.refusals:
        print("corpus: self-check: a plain database refused something (0A000): the corpus is broken")
        return 1
    if wrong_q or tally.suite_errors:
        return 1
    if not a.only and len(refused_q) > MAX_REFUSED * nq:
        print(f"corpus: more than {MAX_REFUSED:.0%} of the queries refused")
        return 1
    return 0


def main():
    return compare.run_cli(__doc__, cmd_setup, cmd_config, cmd_check, ports=False)


if __name__ == "__main__":
    sys.exit(main())
