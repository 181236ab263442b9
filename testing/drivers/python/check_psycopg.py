"""psycopg 3 through the router. psycopg sends parameters with the extended
protocol, prepares a statement server-side after it ran prepare_threshold (5)
times on a connection, and chooses text or binary per placeholder (%t / %b)
and per cursor (binary=True)."""

import threading
import time

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

import harness as h
from harness import Fail, check, same

T = "drv_psycopg"


def connect(**kw):
    args = dict(host=h.HOST, port=h.PORT, user=h.USER, password=h.PASSWORD, dbname=h.DATABASE,
                autocommit=True, connect_timeout=15, **h.libpq_tls())
    args.update(kw)
    return psycopg.connect(**args)


def expect_sqlstate(fn, state, what):
    try:
        fn()
    except psycopg.Error as e:
        same(e.sqlstate, state, f"{what}: SQLSTATE ({e})")
        return
    raise Fail(f"{what}: no error, want SQLSTATE {state}")


class Single:
    def connect_scram(self):
        with connect() as c:
            same(c.execute("SELECT current_user, current_database()").fetchone(),
                 (h.USER, h.DATABASE), "session identity")
            same(c.pgconn.ssl_in_use, h.TLS, "TLS in use")
        try:
            connect(password="wrong-password").close()
        except psycopg.OperationalError as e:
            check("28P01" in str(e) or "password" in str(e).lower(),
                  f"a wrong password failed without 28P01/password in the message: {e}")
            return
        raise Fail("a wrong password was accepted")

    def simple_reuse(self):
        conns = [connect() for _ in range(4)]
        try:
            for i in range(60):
                c = conns[i % 4]
                # ClientCursor: literal values in the text, sent as a simple Query.
                cur = psycopg.ClientCursor(c)
                cur.execute("SELECT %s::int * 2, 'x' || %s", (i, str(i)))
                same(cur.fetchone(), (i * 2, f"x{i}"), f"simple query #{i}")
        finally:
            for c in conns:
                c.close()

    def prepared_reuse(self):
        conns = [connect(prepare_threshold=0) for _ in range(3)]
        conns += [connect() for _ in range(3)]  # default threshold: prepared from the 6th run
        try:
            for i in range(30):
                for n, c in enumerate(conns):
                    got = c.execute("SELECT %s::int8 + 1, %s::text || '!'", (i, f"c{n}")).fetchone()
                    same(got, (i + 1, f"c{n}!"), f"prepared run {i} on connection {n}")
            # Explicit prepare=True with a different statement, interleaved in transactions.
            for i in range(10):
                for n, c in enumerate(conns):
                    with c.transaction():
                        got = c.execute("SELECT %s::int4 * %s::int4", (i, n), prepare=True).fetchone()
                        same(got, (i * n,), f"prepare=True run {i} on connection {n}")
        finally:
            for c in conns:
                c.close()

    def _types(self, ph, binary):
        with connect() as c:
            cols = ", ".join(f"{ph}::{t}" for t, _ in h.TYPE_VALUES)
            vals = [v for _, v in h.TYPE_VALUES]
            params = [Jsonb(v) if t == "jsonb" else v for t, v in h.TYPE_VALUES]
            for prepare in (False, True):
                cur = c.cursor(binary=binary)
                cur.execute(f"SELECT {cols}", params, prepare=prepare)
                row = cur.fetchone()
                for (t, want), got in zip(h.TYPE_VALUES, row):
                    same(got, want, f"{t} (prepare={prepare})")
                cur.execute(f"SELECT {cols}", [None] * len(vals), prepare=prepare)
                same(list(cur.fetchone()), [None] * len(vals), f"NULLs (prepare={prepare})")
            # Through a table as well: stored and read back.
            c.execute(f"DROP TABLE IF EXISTS {T}_types")
            c.execute(f"CREATE TABLE {T}_types ("
                      + ", ".join(f"c{i} {t}" for i, (t, _) in enumerate(h.TYPE_VALUES)) + ")")
            c.execute(f"INSERT INTO {T}_types VALUES ({', '.join([ph] * len(vals))})", params)
            c.execute(f"INSERT INTO {T}_types VALUES ({', '.join([ph] * len(vals))})", [None] * len(vals))
            cur = c.cursor(binary=binary)
            rows = cur.execute(f"SELECT * FROM {T}_types ORDER BY c0 NULLS LAST").fetchall()
            same(list(rows[0]), vals, "row read back from a table")
            same(list(rows[1]), [None] * len(vals), "NULL row read back from a table")

    def types_text(self):
        self._types("%t", False)

    def types_binary(self):
        self._types("%b", True)

    def txn_commit_rollback(self):
        with connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {T}_tx")
            c.execute(f"CREATE TABLE {T}_tx (id int PRIMARY KEY, v text)")
            with c.transaction():
                c.execute(f"INSERT INTO {T}_tx VALUES (1, 'committed')")
                c.execute(f"INSERT INTO {T}_tx VALUES (2, 'committed')")
            try:
                with c.transaction():
                    c.execute(f"INSERT INTO {T}_tx VALUES (3, 'rolled back')")
                    raise psycopg.Rollback()
            except psycopg.Rollback:
                pass
            # Non-autocommit connection: implicit BEGIN, explicit rollback().
            with connect(autocommit=False) as c2:
                c2.execute(f"INSERT INTO {T}_tx VALUES (4, 'rolled back')")
                c2.rollback()
                c2.execute(f"INSERT INTO {T}_tx VALUES (5, 'committed')")
                c2.commit()
        with connect() as c:
            same([r[0] for r in c.execute(f"SELECT id FROM {T}_tx ORDER BY id")], [1, 2, 5],
                 "rows after commit/rollback (seen from a new connection)")

    def txn_error_recovery(self):
        with connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {T}_err")
            c.execute(f"CREATE TABLE {T}_err (id int PRIMARY KEY)")
            for round_ in range(3):
                try:
                    with c.transaction():
                        c.execute(f"INSERT INTO {T}_err VALUES (%s)", (100 + round_,))
                        c.execute("SELECT 1 / 0")
                    raise Fail("division by zero did not raise")
                except errors.DivisionByZero:
                    pass
                same(c.execute("SELECT 41 + %s", (1,)).fetchone(), (42,), "query after the failed transaction")
            with connect(autocommit=False) as c2:
                c2.execute(f"INSERT INTO {T}_err VALUES (1)")
                try:
                    c2.execute("SELECT no_such_column FROM pg_class")
                    raise Fail("an undefined column did not raise")
                except errors.UndefinedColumn:
                    pass
                expect_sqlstate(lambda: c2.execute("SELECT 1"), "25P02", "statement in an aborted transaction")
                c2.rollback()
                same(c2.execute("SELECT 7").fetchone(), (7,), "query after rollback")
                c2.commit()
            same(c.execute(f"SELECT count(*) FROM {T}_err").fetchone(), (0,), "rows of failed transactions")

    def copy_in_out(self):
        with connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {T}_copy")
            c.execute(f"CREATE TABLE {T}_copy (id int, t text, b bytea)")
            rows = [(i, f"row {i}\ttab", bytes([i % 256])) for i in range(5000)]
            with c.cursor() as cur:
                with cur.copy(f"COPY {T}_copy (id, t, b) FROM STDIN") as cp:
                    for r in rows[:2500]:
                        cp.write_row(r)
                with cur.copy(f"COPY {T}_copy (id, t, b) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(["int4", "text", "bytea"])
                    for r in rows[2500:]:
                        cp.write_row(r)
                got = []
                with cur.copy(f"COPY (SELECT id, t, b FROM {T}_copy ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
                    cp.set_types(["int4", "text", "bytea"])
                    got = list(cp.rows())
                same(len(got), len(rows), "rows copied out (binary)")
                same(got, rows, "binary COPY out content")
                n = 0
                with cur.copy(f"COPY {T}_copy TO STDOUT") as cp:
                    for _ in cp.rows():
                        n += 1
                same(n, len(rows), "rows copied out (text)")
            # The connection is in a clean state after COPY.
            same(c.execute("SELECT 1").fetchone(), (1,), "query after COPY")

    def big_result(self):
        with connect() as c:
            for binary in (False, True):
                cur = c.cursor(binary=binary)
                cur.execute("SELECT g, repeat('x', 20) FROM generate_series(1, %s) g", (h.BIG_ROWS,))
                n = s = 0
                for g, x in cur:
                    n += 1
                    s += g
                same((n, s), (h.BIG_ROWS, h.BIG_SUM), f"row count and sum (binary={binary})")
            # A server-side cursor in a transaction, fetched in batches.
            with c.transaction():
                with c.cursor(name="drv_big") as cur:
                    cur.itersize = 5000
                    cur.execute("SELECT g FROM generate_series(1, %s) g", (h.BIG_ROWS,))
                    same(sum(r[0] for r in cur), h.BIG_SUM, "sum through a named cursor")

    def cancel(self):
        with connect() as c:
            timer = threading.Timer(0.5, c.cancel_safe)
            timer.start()
            started = time.monotonic()
            try:
                c.execute("SELECT pg_sleep(30)")
                raise Fail("pg_sleep(30) finished without being cancelled")
            except errors.QueryCanceled:
                pass
            finally:
                timer.cancel()
            took = time.monotonic() - started
            check(took < 10, f"the cancel took {took:.1f}s")
            same(c.execute("SELECT 'alive'").fetchone(), ("alive",), "query after the cancel")

    def stmt_timeout_local(self):
        with connect() as c:
            try:
                with c.transaction():
                    c.execute("SET LOCAL statement_timeout = '300ms'")
                    c.execute("SELECT pg_sleep(5)")
                raise Fail("pg_sleep(5) was not stopped by SET LOCAL statement_timeout")
            except errors.QueryCanceled:
                pass
            same(c.execute("SELECT pg_sleep(0.5), 1").fetchone()[1], 1, "the timeout ended with the transaction")

    def stmt_timeout_session(self):
        # A session SET, and the libpq `options` startup parameter: both must follow the
        # client onto whatever server connection it gets, and never leak to others.
        with connect() as c, connect(options="-c statement_timeout=300") as opt:
            c.execute("SET statement_timeout = '300ms'")
            for who in (c, opt):
                for _ in range(3):
                    try:
                        who.execute("SELECT pg_sleep(3)")
                        raise Fail("pg_sleep(3) was not stopped by the session statement_timeout")
                    except errors.QueryCanceled:
                        pass
            others = [connect() for _ in range(h.POOL_SIZE)]
            try:
                for o in others:
                    same(o.execute("SHOW statement_timeout").fetchone(), ("0",),
                         "statement_timeout seen by another client")
            finally:
                for o in others:
                    o.close()

    def concurrent_20_pool_5(self):
        with connect() as c:
            c.execute(f"DROP TABLE IF EXISTS {T}_conc")
            c.execute(f"CREATE TABLE {T}_conc (client int, i int)")
        errs, backends = [], []
        lock = threading.Lock()
        count_sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND usename = current_user AND backend_type = 'client backend'")

        def client(n):
            try:
                with connect() as cc:
                    for i in range(5):
                        with cc.transaction():
                            cc.execute(f"INSERT INTO {T}_conc VALUES (%s, %s)", (n, i))
                            (b,) = cc.execute(count_sql).fetchone()
                            cc.execute("SELECT pg_sleep(0.05)")
                        with lock:
                            backends.append(b)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errs.append(f"client {n}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not any(t.is_alive() for t in threads), "clients still running after 60s")
        check(not errs, "; ".join(errs[:3]))
        with connect() as c:
            same(c.execute(f"SELECT count(*), count(DISTINCT client) FROM {T}_conc").fetchone(), (100, 20),
                 "rows written by 20 clients x 5 transactions")
        check(max(backends) <= h.POOL_SIZE,
              f"{max(backends)} server connections at once, pool_size is {h.POOL_SIZE}")

    def disconnect_in_txn(self):
        # An application that dies (or closes) inside a transaction: PostgreSQL ends
        # that session and aborts the transaction; the next clients must start clean.
        for mode in ("open", "failed"):
            c = connect(autocommit=False)
            c.execute("SELECT 1")
            if mode == "failed":
                try:
                    c.execute("SELECT 1 / 0")
                except errors.DivisionByZero:
                    pass
            c.close()  # sends Terminate without COMMIT/ROLLBACK
            for i in range(h.POOL_SIZE + 1):
                with connect() as o:
                    got = o.execute("SELECT now() = statement_timestamp()").fetchone()
                    same(got, (True,), f"client {i} after a client left a {mode} transaction "
                                       "(True = not inside a leftover transaction)")


    def verify_full_refuses(self):
        # libpq under verify-full: a client trusting another CA, and a host name the
        # certificate does not carry (hostaddr keeps the router's address), are refused;
        # verify-ca (chain only) takes that host name, so the name is what failed.
        for kw, want in [(dict(sslrootcert=h.TLS_OTHER_CA), "certificate verify failed"),
                         (dict(host="wrong.invalid", hostaddr=h.HOST), "does not match host name")]:
            try:
                connect(**kw).close()
            except psycopg.OperationalError as e:
                check(want in str(e), f"{kw}: refused, but not for the certificate: {e}")
            else:
                raise Fail(f"verify-full connected with {kw}")
        with connect(host="wrong.invalid", hostaddr=h.HOST, sslmode="verify-ca") as c:
            same(c.execute("SELECT 1").fetchone(), (1,), "verify-ca with the other host name")


class Sharded:
    def _direct(self, shard):
        return psycopg.connect(host=h.HOST, port=h.SHARD_PORTS[shard], user=h.USER, password=h.PASSWORD,
                               dbname=h.DATABASE, autocommit=True, connect_timeout=15)

    def shard_point_read(self):
        with connect() as c:
            for aid in range(1, 21):
                got = c.execute("SELECT balance, name FROM accounts WHERE aid = %s", (aid,)).fetchone()
                same(got, (10 * aid, f"acct-{aid}"), f"aid {aid} (parameter)")
                cur = c.cursor(binary=True)
                got = cur.execute("SELECT balance FROM accounts WHERE aid = %b", (aid,)).fetchone()
                same(got, (10 * aid,), f"aid {aid} (binary parameter)")
                got = psycopg.ClientCursor(c).execute(
                    "SELECT balance FROM accounts WHERE aid = %s", (aid,)).fetchone()
                same(got, (10 * aid,), f"aid {aid} (literal, simple query)")

    def shard_point_write(self):
        keys = [h.KEY_BASE + i for i in range(20)]
        with connect() as c:
            for k in keys:
                c.execute("INSERT INTO accounts (aid, balance, name) VALUES (%s, %s, %s)", (k, k, "w"))
            c.execute("UPDATE accounts SET balance = balance + 1 WHERE aid = %s", (keys[3],))
            c.execute("DELETE FROM accounts WHERE aid = %s", (keys[5],))
            with c.transaction():
                c.execute("UPDATE accounts SET name = 'tx' WHERE aid = %s", (keys[7],))
            for k in keys:
                got = c.execute("SELECT balance, name FROM accounts WHERE aid = %s", (k,)).fetchone()
                want = None if k == keys[5] else (k + (k == keys[3]), "tx" if k == keys[7] else "w")
                same(got, want, f"aid {k} read back through the router")
        d0, d1 = self._direct(0), self._direct(1)
        try:
            for k in keys:
                (on0,) = d0.execute("SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, %s::bigint)",
                                    (k,)).fetchone()
                rows = [d.execute("SELECT count(*) FROM accounts WHERE aid = %s", (k,)).fetchone()[0]
                        for d in (d0, d1)]
                want = [0, 0] if k == keys[5] else ([1, 0] if on0 else [0, 1])
                same(rows, want, f"aid {k}: rows on [shard 0, shard 1] (hash says shard {0 if on0 else 1})")
        finally:
            d0.close()
            d1.close()

    def shard_fanout_aggregate(self):
        with connect() as c:
            got = c.execute("SELECT count(*), sum(balance), min(aid), max(aid) FROM accounts "
                            "WHERE aid BETWEEN 1 AND %s", (h.SEED_ROWS,)).fetchone()
            want = (h.SEED_ROWS, 10 * h.SEED_ROWS * (h.SEED_ROWS + 1) // 2, 1, h.SEED_ROWS)
            same(tuple(int(x) for x in got), want, "count/sum/min/max over both shards")

    def shard_order_limit(self):
        with connect() as c:
            got = [r[0] for r in c.execute(
                "SELECT aid FROM accounts WHERE aid <= %s ORDER BY aid DESC LIMIT 5", (h.SEED_ROWS,))]
            same(got, [1000, 999, 998, 997, 996], "ORDER BY aid DESC LIMIT 5")
            got = [r[0] for r in c.execute(
                "SELECT balance FROM accounts WHERE aid <= 1000 ORDER BY balance LIMIT 3 OFFSET 10")]
            same(got, [110, 120, 130], "ORDER BY balance LIMIT 3 OFFSET 10")


if __name__ == "__main__":
    cases = h.plan()
    h.run_sync(cases, Single() if h.TARGET == "single" else Sharded())
