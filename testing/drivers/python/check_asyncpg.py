"""asyncpg through the router. asyncpg prepares every statement it runs (named
__asyncpg_stmt_N__, cached per connection), sends and receives every type it
knows in binary, and pipelines Parse/Describe/Bind/Execute/Sync. Text format is
exercised with per-connection text codecs (set_type_codec(format='text'))."""

import asyncio
import json
import ssl
import time

import asyncpg

import harness as h
from harness import Fail, check, same

T = "drv_asyncpg"

# PostgreSQL's text output of harness.TYPE_VALUES (TimeZone=UTC).
TEXT_VALUES = [
    ("int2", "32767"),
    ("int4", "-2147483648"),
    ("int8", "9223372036854775807"),
    ("numeric", "12345678901234567890.123456789"),
    ("float8", "3.141592653589793"),
    ("text", "héllo 'wörld' ✓ \\ \"q\""),
    ("bytea", "\\x" + bytes(range(256)).hex()),
    ("bool", "t"),
    ("date", "2024-02-29"),
    ("timestamptz", "2024-02-29 12:34:56.789012+00"),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("jsonb", '{"a": [1, 2, {"b": null}], "c": "é"}'),
    ("int4[]", "{1,2,NULL,4}"),
    ("text[]", '{a,"b c","\\"q\\"",NULL}'),
]
TEXT_CODEC_TYPES = ["int2", "int4", "int8", "numeric", "float8", "bytea", "bool", "date",
                    "timestamptz", "uuid", "jsonb"]


async def connect(**kw):
    args = dict(host=h.HOST, port=h.PORT, user=h.USER, password=h.PASSWORD, database=h.DATABASE, timeout=15)
    if h.TLS:  # verify-full: the chain against the test CA, and the host name
        args["ssl"] = h.ssl_context()
    args.update(kw)
    return await asyncpg.connect(**args)


class Single:
    async def connect_scram(self):
        c = await connect()
        try:
            same(tuple(await c.fetchrow("SELECT current_user, current_database()")),
                 (h.USER, h.DATABASE), "session identity")
        finally:
            await c.close()
        try:
            await (await connect(password="wrong-password")).close()
        except asyncpg.InvalidPasswordError:
            return
        except asyncpg.PostgresError as e:
            raise Fail(f"a wrong password failed with SQLSTATE {e.sqlstate}, want 28P01: {e}")
        raise Fail("a wrong password was accepted")

    async def simple_reuse(self):
        conns = [await connect() for _ in range(4)]
        try:
            for i in range(60):
                c = conns[i % 4]
                # execute() without arguments uses the simple Query protocol.
                await c.execute(f"SELECT {i}; SELECT 'x{i}'")
                same(await c.fetchval(f"SELECT {i} * 2"), i * 2, f"query #{i}")
        finally:
            for c in conns:
                await c.close()

    async def prepared_reuse(self):
        conns = [await connect() for _ in range(4)]
        try:
            for i in range(30):
                for n, c in enumerate(conns):
                    got = await c.fetchrow("SELECT $1::int8 + 1, $2::text || '!'", i, f"c{n}")
                    same(tuple(got), (i + 1, f"c{n}!"), f"cached statement run {i} on connection {n}")
            # Explicitly prepared statements, reused in and out of transactions.
            stmts = [await c.prepare("SELECT $1::int4 * $2::int4") for c in conns]
            for i in range(10):
                for n, (c, st) in enumerate(zip(conns, stmts)):
                    if i % 2:
                        async with c.transaction():
                            same(await st.fetchval(i, n), i * n, f"prepared run {i} on connection {n} (txn)")
                    else:
                        same(await st.fetchval(i, n), i * n, f"prepared run {i} on connection {n}")
        finally:
            for c in conns:
                await c.close()

    async def types_text(self):
        c = await connect(server_settings={"TimeZone": "UTC"})
        try:
            for t in TEXT_CODEC_TYPES:
                await c.set_type_codec(t, schema="pg_catalog", encoder=str, decoder=str, format="text")
            cols = ", ".join(f"${i + 1}::{t}" for i, (t, _) in enumerate(TEXT_VALUES))
            # Arrays: sent and returned as text literals (their element codecs are binary).
            cols = cols.replace("::int4[]", "::text::int4[]::text").replace("::text[]", "::text::text[]::text")
            vals = [v for _, v in TEXT_VALUES]
            row = await c.fetchrow(f"SELECT {cols}", *vals)
            for (t, want), got in zip(TEXT_VALUES, row):
                same(got, want, f"{t} as text")
            row = await c.fetchrow(f"SELECT {cols}", *([None] * len(vals)))
            same(list(row), [None] * len(vals), "NULLs as text")
        finally:
            await c.close()

    async def types_binary(self):
        c = await connect()
        try:
            # asyncpg's own jsonb codec is binary and works with JSON text: compare decoded.
            cols = ", ".join(f"${i + 1}::{t}" for i, (t, _) in enumerate(h.TYPE_VALUES))
            vals = [json.dumps(v) if t == "jsonb" else v for t, v in h.TYPE_VALUES]
            row = await c.fetchrow(f"SELECT {cols}", *vals)
            for (t, want), got in zip(h.TYPE_VALUES, row):
                same(json.loads(got) if t == "jsonb" else got, want, f"{t} (binary)")
            row = await c.fetchrow(f"SELECT {cols}", *([None] * len(vals)))
            same(list(row), [None] * len(vals), "NULLs (binary)")
            await c.execute(f"DROP TABLE IF EXISTS {T}_types")
            await c.execute(f"CREATE TABLE {T}_types ("
                            + ", ".join(f"c{i} {t}" for i, (t, _) in enumerate(h.TYPE_VALUES)) + ")")
            ph = ", ".join(f"${i + 1}" for i in range(len(vals)))
            await c.executemany(f"INSERT INTO {T}_types VALUES ({ph})", [vals, [None] * len(vals)])
            rows = await c.fetch(f"SELECT * FROM {T}_types ORDER BY c0 NULLS LAST")
            jcol = [t for t, _ in h.TYPE_VALUES].index("jsonb")
            got = [json.loads(v) if i == jcol else v for i, v in enumerate(rows[0])]
            same(got, [v for _, v in h.TYPE_VALUES], "row read back from a table")
            same(list(rows[1]), [None] * len(vals), "NULL row read back from a table")
        finally:
            await c.close()

    async def txn_commit_rollback(self):
        c = await connect()
        try:
            await c.execute(f"DROP TABLE IF EXISTS {T}_tx")
            await c.execute(f"CREATE TABLE {T}_tx (id int PRIMARY KEY)")
            async with c.transaction():
                await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 1)
                await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 2)
            tr = c.transaction()
            await tr.start()
            await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 3)
            await tr.rollback()
            async with c.transaction():
                await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 4)
                async with c.transaction():  # a savepoint
                    await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 5)
                    tr2 = c.transaction()
                    await tr2.start()
                    await c.execute(f"INSERT INTO {T}_tx VALUES ($1)", 6)
                    await tr2.rollback()
        finally:
            await c.close()
        c = await connect()
        try:
            same([r[0] for r in await c.fetch(f"SELECT id FROM {T}_tx ORDER BY id")], [1, 2, 4, 5],
                 "rows after commit/rollback/savepoints (seen from a new connection)")
        finally:
            await c.close()

    async def txn_error_recovery(self):
        c = await connect()
        try:
            await c.execute(f"DROP TABLE IF EXISTS {T}_err")
            await c.execute(f"CREATE TABLE {T}_err (id int PRIMARY KEY)")
            for r in range(3):
                try:
                    async with c.transaction():
                        await c.execute(f"INSERT INTO {T}_err VALUES ($1)", 100 + r)
                        await c.fetchval("SELECT 1 / $1::int", 0)
                    raise Fail("division by zero did not raise")
                except asyncpg.DivisionByZeroError:
                    pass
                same(await c.fetchval("SELECT 41 + $1::int", 1), 42, "query after the failed transaction")
            tr = c.transaction()
            await tr.start()
            try:
                await c.execute("SELECT no_such_column FROM pg_class")
                raise Fail("an undefined column did not raise")
            except asyncpg.UndefinedColumnError:
                pass
            try:
                await c.fetchval("SELECT 1")
                raise Fail("a statement in an aborted transaction did not fail")
            except asyncpg.InFailedSQLTransactionError:
                pass
            await tr.rollback()
            same(await c.fetchval("SELECT 7"), 7, "query after rollback")
            same(await c.fetchval(f"SELECT count(*) FROM {T}_err"), 0, "rows of failed transactions")
        finally:
            await c.close()

    async def copy_in_out(self):
        c = await connect()
        try:
            await c.execute(f"DROP TABLE IF EXISTS {T}_copy")
            await c.execute(f"CREATE TABLE {T}_copy (id int, t text, b bytea)")
            rows = [(i, f"row {i}\ttab", bytes([i % 256])) for i in range(5000)]
            res = await c.copy_records_to_table(f"{T}_copy", records=rows, columns=["id", "t", "b"])
            same(res, "COPY 5000", "copy_records_to_table status")
            chunks = []

            async def sink(data):
                chunks.append(data)

            res = await c.copy_from_query(f"SELECT id, t FROM {T}_copy ORDER BY id", output=sink, format="csv")
            same(res, "COPY 5000", "copy_from_query status")
            lines = b"".join(chunks).decode().splitlines()
            same(len(lines), 5000, "lines copied out")
            same(lines[1], "1,row 1\ttab", "second CSV line")
            got = await c.fetch(f"SELECT id, t, b FROM {T}_copy ORDER BY id")
            same([tuple(r) for r in got], rows, "rows copied in")
        finally:
            await c.close()

    async def big_result(self):
        c = await connect()
        try:
            rows = await c.fetch("SELECT g, repeat('x', 20) FROM generate_series(1, $1::int) g", h.BIG_ROWS)
            same((len(rows), sum(r[0] for r in rows)), (h.BIG_ROWS, h.BIG_SUM), "row count and sum")
            async with c.transaction():
                s = 0
                async for r in c.cursor("SELECT g FROM generate_series(1, $1::int) g", h.BIG_ROWS, prefetch=5000):
                    s += r[0]
                same(s, h.BIG_SUM, "sum through a cursor")
        finally:
            await c.close()

    async def cancel(self):
        c = await connect()
        try:
            started = time.monotonic()
            task = asyncio.ensure_future(c.fetchval("SELECT pg_sleep(30)"))
            await asyncio.sleep(0.5)
            task.cancel()  # asyncpg sends a CancelRequest for the running query
            try:
                await task
                raise Fail("pg_sleep(30) finished without being cancelled")
            except asyncio.CancelledError:
                pass
            took = time.monotonic() - started
            check(took < 10, f"the cancel took {took:.1f}s")
            same(await asyncio.wait_for(c.fetchval("SELECT 'alive'"), 10), "alive", "query after the cancel")
            # Also through the statement API with a client-side timeout (cancels on expiry).
            try:
                await c.fetchval("SELECT pg_sleep(30)", timeout=0.5)
                raise Fail("timeout=0.5 did not stop pg_sleep(30)")
            except asyncio.TimeoutError:
                pass
            same(await asyncio.wait_for(c.fetchval("SELECT 2"), 10), 2, "query after the timeout")
        finally:
            await c.close()

    async def stmt_timeout_local(self):
        c = await connect()
        try:
            try:
                async with c.transaction():
                    await c.execute("SET LOCAL statement_timeout = '300ms'")
                    await c.execute("SELECT pg_sleep(5)")
                raise Fail("pg_sleep(5) was not stopped by SET LOCAL statement_timeout")
            except asyncpg.QueryCanceledError:
                pass
            same(await c.fetchval("SELECT pg_sleep(0.5)::text || 'ok'"), "ok", "timeout ended with the transaction")
        finally:
            await c.close()

    async def stmt_timeout_session(self):
        c = await connect()
        opt = await connect(server_settings={"statement_timeout": "300"})
        others = []
        try:
            await c.execute("SET statement_timeout = '300ms'")
            for who in (c, opt):
                for _ in range(3):
                    try:
                        await who.fetchval("SELECT pg_sleep(3)")
                        raise Fail("pg_sleep(3) was not stopped by the session statement_timeout")
                    except asyncpg.QueryCanceledError:
                        pass
            others = [await connect() for _ in range(h.POOL_SIZE)]
            for o in others:
                same(await o.fetchval("SHOW statement_timeout"), "0", "statement_timeout seen by another client")
        finally:
            for x in [c, opt] + others:
                await x.close()

    async def concurrent_20_pool_5(self):
        c = await connect()
        await c.execute(f"DROP TABLE IF EXISTS {T}_conc")
        await c.execute(f"CREATE TABLE {T}_conc (client int, i int)")
        await c.close()
        backends = []
        count_sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND usename = current_user AND backend_type = 'client backend'")

        async def client(n):
            cc = await connect()
            try:
                for i in range(5):
                    async with cc.transaction():
                        await cc.execute(f"INSERT INTO {T}_conc VALUES ($1, $2)", n, i)
                        backends.append(await cc.fetchval(count_sql))
                        await cc.execute("SELECT pg_sleep(0.05)")
            finally:
                await cc.close()

        results = await asyncio.gather(*(client(n) for n in range(20)), return_exceptions=True)
        errs = [f"client {n}: {type(r).__name__}: {r}" for n, r in enumerate(results) if isinstance(r, Exception)]
        check(not errs, "; ".join(errs[:3]))
        c = await connect()
        try:
            same(tuple(await c.fetchrow(f"SELECT count(*), count(DISTINCT client) FROM {T}_conc")), (100, 20),
                 "rows written by 20 clients x 5 transactions")
        finally:
            await c.close()
        check(max(backends) <= h.POOL_SIZE, f"{max(backends)} server connections at once, pool_size is {h.POOL_SIZE}")

    async def disconnect_in_txn(self):
        # A client that closes inside a transaction (asyncpg sends Terminate): the
        # next clients must not find themselves inside its leftover transaction.
        for mode in ("open", "failed"):
            c = await connect()
            tr = c.transaction()
            await tr.start()
            await c.fetchval("SELECT 1")
            if mode == "failed":
                try:
                    await c.fetchval("SELECT 1 / $1::int", 0)
                except asyncpg.DivisionByZeroError:
                    pass
            await c.close()
            for i in range(h.POOL_SIZE + 1):
                o = await connect()
                try:
                    # The server's own transaction status (ReadyForQuery) after a query: a
                    # leftover open transaction reads 'T', an aborted one fails the query.
                    # (Not now() = statement_timestamp(): the router may re-create a
                    # prepared statement with its own Parse just before the client's Bind,
                    # which starts the implicit transaction a moment earlier.)
                    same(await o.fetchval("SELECT 1"), 1, f"client {i} after a client left a {mode} transaction")
                    same(o.is_in_transaction(), False,
                         f"client {i} after a client left a {mode} transaction (False = not in a leftover transaction)")
                finally:
                    await o.close()


    async def verify_full_refuses(self):
        # An SSLContext trusting a CA that did not sign the router's certificate.
        try:
            await (await connect(ssl=h.ssl_context(h.TLS_OTHER_CA))).close()
        except ssl.SSLCertVerificationError:
            return
        raise Fail("verify-full accepted a certificate from a CA the client does not trust")


class Sharded:
    async def shard_point_read(self):
        c = await connect()
        try:
            st = await c.prepare("SELECT balance, name FROM accounts WHERE aid = $1")
            for aid in range(1, 21):
                same(tuple(await c.fetchrow("SELECT balance, name FROM accounts WHERE aid = $1", aid)),
                     (10 * aid, f"acct-{aid}"), f"aid {aid} (binary parameter)")
                same(tuple(await st.fetchrow(aid)), (10 * aid, f"acct-{aid}"), f"aid {aid} (prepared, reused)")
                same(await c.fetchval(f"SELECT balance FROM accounts WHERE aid = {aid}"), 10 * aid,
                     f"aid {aid} (literal)")
        finally:
            await c.close()

    async def shard_point_write(self):
        keys = [h.KEY_BASE + i for i in range(20)]
        c = await connect()
        try:
            await c.executemany("INSERT INTO accounts (aid, balance, name) VALUES ($1, $2, 'w')",
                                [(k, k) for k in keys])
            await c.execute("UPDATE accounts SET balance = balance + 1 WHERE aid = $1", keys[3])
            await c.execute("DELETE FROM accounts WHERE aid = $1", keys[5])
            async with c.transaction():
                await c.execute("UPDATE accounts SET name = 'tx' WHERE aid = $1", keys[7])
            for k in keys:
                got = await c.fetchrow("SELECT balance, name FROM accounts WHERE aid = $1", k)
                want = None if k == keys[5] else (k + (k == keys[3]), "tx" if k == keys[7] else "w")
                same(tuple(got) if got else None, want, f"aid {k} read back through the router")
        finally:
            await c.close()
        d = [await asyncpg.connect(host=h.HOST, port=p, user=h.USER, password=h.PASSWORD, database=h.DATABASE)
             for p in h.SHARD_PORTS]
        try:
            for k in keys:
                on0 = await d[0].fetchval(
                    "SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, $1::bigint)", k)
                rows = [await x.fetchval("SELECT count(*) FROM accounts WHERE aid = $1", k) for x in d]
                want = [0, 0] if k == keys[5] else ([1, 0] if on0 else [0, 1])
                same(rows, want, f"aid {k}: rows on [shard 0, shard 1] (hash says shard {0 if on0 else 1})")
        finally:
            for x in d:
                await x.close()

    async def shard_fanout_aggregate(self):
        c = await connect()
        try:
            got = await c.fetchrow("SELECT count(*), sum(balance), min(aid), max(aid) FROM accounts "
                                   "WHERE aid BETWEEN 1 AND $1", h.SEED_ROWS)
            want = (h.SEED_ROWS, 10 * h.SEED_ROWS * (h.SEED_ROWS + 1) // 2, 1, h.SEED_ROWS)
            same(tuple(int(x) for x in got), want, "count/sum/min/max over both shards")
        finally:
            await c.close()

    async def shard_order_limit(self):
        c = await connect()
        try:
            got = [r[0] for r in await c.fetch(
                "SELECT aid FROM accounts WHERE aid <= $1 ORDER BY aid DESC LIMIT 5", h.SEED_ROWS)]
            same(got, [1000, 999, 998, 997, 996], "ORDER BY aid DESC LIMIT 5")
            got = [r[0] for r in await c.fetch(
                "SELECT balance FROM accounts WHERE aid <= 1000 ORDER BY balance LIMIT 3 OFFSET 10")]
            same(got, [110, 120, 130], "ORDER BY balance LIMIT 3 OFFSET 10")
        finally:
            await c.close()


if __name__ == "__main__":
    cases = h.plan()
    h.run_async(cases, Single() if h.TARGET == "single" else Sharded())
