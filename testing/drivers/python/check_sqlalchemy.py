"""SQLAlchemy 2 (Core and ORM) on psycopg 3 through the router: what an
application's data layer does — a client-side connection pool in front of the
router's, pool_pre_ping, bound parameters (server-side prepared after five
runs by psycopg), ORM unit-of-work flushes, Session rollbacks, streaming
results. COPY and cancel are the DBAPI's (see check_psycopg.py), not
SQLAlchemy's, so they are not repeated here."""

import datetime as dt
import threading
import uuid
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, Date, DateTime, Float, Integer, LargeBinary, Numeric,
                        SmallInteger, String, Text, create_engine, exc, func, select, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import harness as h
from harness import Fail, check, same

SINGLE = ["connect_scram", "simple_reuse", "prepared_reuse", "types_orm", "txn_commit_rollback",
          "txn_error_recovery", "big_result", "stmt_timeout_local", "stmt_timeout_session",
          "concurrent_20_pool_5"]


def url(password=h.PASSWORD):
    return f"postgresql+psycopg://{h.USER}:{password}@{h.HOST}:{h.PORT}/{h.DATABASE}"


def cargs(**kw):
    """psycopg connection arguments for the router (verify-full on the tls target)."""
    return {"connect_timeout": 15, **h.libpq_tls(), **kw}


def engine(**kw):
    args = dict(pool_pre_ping=True, pool_size=5, max_overflow=20, connect_args=cargs())
    args.update(kw)
    return create_engine(url(), **args)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "drv_sqlalchemy_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    i2: Mapped[int | None] = mapped_column(SmallInteger)
    i8: Mapped[int | None] = mapped_column(BigInteger)
    num: Mapped[Decimal | None] = mapped_column(Numeric)
    f8: Mapped[float | None] = mapped_column(Float(53))
    txt: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    flag: Mapped[bool | None] = mapped_column(Boolean)
    day: Mapped[dt.date | None] = mapped_column(Date)
    at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    uid: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    doc: Mapped[dict | None] = mapped_column(JSONB)
    ints: Mapped[list | None] = mapped_column(ARRAY(Integer))
    strs: Mapped[list | None] = mapped_column(ARRAY(String))


class Account(Base):
    __tablename__ = "accounts"
    aid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(Text)


def values():
    v = dict((t, x) for t, x in h.TYPE_VALUES)
    return dict(i2=v["int2"], i8=v["int8"], num=v["numeric"], f8=v["float8"], txt=v["text"], raw=v["bytea"],
                flag=v["bool"], day=v["date"], at=v["timestamptz"], uid=v["uuid"], doc=v["jsonb"],
                ints=v["int4[]"], strs=v["text[]"])


class Single:
    def __init__(self):
        self.eng = engine()

    def connect_scram(self):
        with self.eng.connect() as c:
            same(tuple(c.execute(text("SELECT current_user, current_database()")).one()),
                 (h.USER, h.DATABASE), "session identity")
        bad = create_engine(url("wrong-password"), connect_args=cargs())
        try:
            with bad.connect():
                pass
            raise Fail("a wrong password was accepted")
        except exc.OperationalError as e:
            check("28P01" in str(e) or "password" in str(e).lower(), f"wrong password: unexpected error {e}")
        finally:
            bad.dispose()

    def simple_reuse(self):
        for i in range(60):
            with self.eng.connect() as c:
                same(c.exec_driver_sql(f"SELECT {i} * 2").scalar(), i * 2, f"query #{i}")

    def prepared_reuse(self):
        stmt = text("SELECT CAST(:a AS bigint) + 1, CAST(:b AS text) || '!'")
        for i in range(30):
            with self.eng.connect() as c:
                same(tuple(c.execute(stmt, {"a": i, "b": f"r{i}"}).one()), (i + 1, f"r{i}!"), f"run {i}")
        # The same statement from several pooled connections held at once.
        conns = [self.eng.connect() for _ in range(5)]
        try:
            for i in range(10):
                for n, c in enumerate(conns):
                    same(c.execute(stmt, {"a": i, "b": str(n)}).one()[0], i + 1, f"run {i} on connection {n}")
                    c.commit()
        finally:
            for c in conns:
                c.close()

    def types_orm(self):
        Base.metadata.drop_all(self.eng, tables=[Item.__table__])
        Base.metadata.create_all(self.eng, tables=[Item.__table__])
        with Session(self.eng) as s:
            s.add_all([Item(id=1, **values()), Item(id=2)])
            s.commit()
        with Session(self.eng) as s:
            it = s.get(Item, 1)
            for k, want in values().items():
                same(getattr(it, k), want, f"column {k}")
            empty = s.get(Item, 2)
            for k in values():
                same(getattr(empty, k), None, f"NULL column {k}")
            n = s.scalar(select(func.count()).select_from(Item).where(Item.doc["c"].astext == "é",
                                                                         Item.ints.contains([4])))
            same(n, 1, "jsonb/array predicates")

    def txn_commit_rollback(self):
        with self.eng.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS drv_sqlalchemy_tx")
            c.exec_driver_sql("CREATE TABLE drv_sqlalchemy_tx (id int PRIMARY KEY)")
        ins = text("INSERT INTO drv_sqlalchemy_tx VALUES (:id)")
        with self.eng.begin() as c:
            c.execute(ins, [{"id": 1}, {"id": 2}])
        with self.eng.connect() as c:
            c.execute(ins, {"id": 3})
            c.rollback()
            with c.begin_nested():
                c.execute(ins, {"id": 4})
            sp = c.begin_nested()
            c.execute(ins, {"id": 5})
            sp.rollback()
            c.commit()
        with self.eng.connect() as c:
            same([r[0] for r in c.execute(text("SELECT id FROM drv_sqlalchemy_tx ORDER BY id"))], [1, 2, 4],
                 "rows after commit/rollback/savepoints")

    def txn_error_recovery(self):
        with self.eng.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS drv_sqlalchemy_err")
            c.exec_driver_sql("CREATE TABLE drv_sqlalchemy_err (id int PRIMARY KEY)")
        with Session(self.eng) as s:
            for r in range(3):
                s.execute(text("INSERT INTO drv_sqlalchemy_err VALUES (:id)"), {"id": 1})
                try:
                    s.execute(text("INSERT INTO drv_sqlalchemy_err VALUES (:id)"), {"id": 1})
                    raise Fail("a duplicate key did not raise")
                except exc.IntegrityError as e:
                    same(getattr(e.orig, "sqlstate", None), "23505", "duplicate key SQLSTATE")
                try:
                    s.execute(text("SELECT 1"))
                    raise Fail("a statement in an aborted transaction did not fail")
                except exc.InternalError as e:
                    same(getattr(e.orig, "sqlstate", None), "25P02", "aborted transaction SQLSTATE")
                s.rollback()
                same(s.execute(text("SELECT count(*) FROM drv_sqlalchemy_err")).scalar(), 0, f"rows after round {r}")
                s.commit()

    def big_result(self):
        with self.eng.connect() as c:
            rows = c.execute(text("SELECT g, repeat('x', 20) FROM generate_series(1, :n) g"), {"n": h.BIG_ROWS}).all()
            same((len(rows), sum(r[0] for r in rows)), (h.BIG_ROWS, h.BIG_SUM), "row count and sum")
            res = c.execution_options(stream_results=True, yield_per=5000).execute(
                text("SELECT g FROM generate_series(1, :n) g"), {"n": h.BIG_ROWS})
            same(sum(r[0] for r in res), h.BIG_SUM, "sum streamed with yield_per")
            c.commit()

    def stmt_timeout_local(self):
        with self.eng.connect() as c:
            c.exec_driver_sql("SET LOCAL statement_timeout = '300ms'")
            try:
                c.exec_driver_sql("SELECT pg_sleep(5)")
                raise Fail("pg_sleep(5) was not stopped by SET LOCAL statement_timeout")
            except exc.OperationalError as e:
                same(getattr(e.orig, "sqlstate", None), "57014", "timeout SQLSTATE")
            c.rollback()
            same(c.exec_driver_sql("SELECT pg_sleep(0.5)::text || 'ok'").scalar(), "ok", "after the timeout")

    def stmt_timeout_session(self):
        eng = engine(connect_args=cargs(options="-c statement_timeout=300"))
        try:
            for _ in range(3):
                with eng.connect() as c:
                    try:
                        c.exec_driver_sql("SELECT pg_sleep(3)")
                        raise Fail("pg_sleep(3) was not stopped by options=-c statement_timeout=300")
                    except exc.OperationalError as e:
                        same(getattr(e.orig, "sqlstate", None), "57014", "timeout SQLSTATE")
            with self.eng.connect() as c:
                same(c.exec_driver_sql("SHOW statement_timeout").scalar(), "0", "seen by another client")
        finally:
            eng.dispose()

    def concurrent_20_pool_5(self):
        eng = engine(pool_size=20, max_overflow=0)
        with eng.begin() as c:
            c.exec_driver_sql("DROP TABLE IF EXISTS drv_sqlalchemy_conc")
            c.exec_driver_sql("CREATE TABLE drv_sqlalchemy_conc (client int, i int)")
        errs, backends = [], []
        lock = threading.Lock()
        barrier = threading.Barrier(20)
        count_sql = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                         "AND usename = current_user AND backend_type = 'client backend'")

        def client(n):
            try:
                with eng.connect() as c:
                    barrier.wait(30)  # 20 client connections open at once
                    for i in range(5):
                        with c.begin():
                            c.execute(text("INSERT INTO drv_sqlalchemy_conc VALUES (:n, :i)"), {"n": n, "i": i})
                            b = c.execute(count_sql).scalar()
                            c.exec_driver_sql("SELECT pg_sleep(0.05)")
                        with lock:
                            backends.append(b)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errs.append(f"client {n}: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        try:
            check(not any(t.is_alive() for t in threads), "clients still running after 90s")
            check(not errs, "; ".join(errs[:3]))
            with eng.connect() as c:
                same(tuple(c.exec_driver_sql("SELECT count(*), count(DISTINCT client) FROM drv_sqlalchemy_conc").one()),
                     (100, 20), "rows written by 20 clients x 5 transactions")
            check(max(backends) <= h.POOL_SIZE, f"{max(backends)} server connections at once, pool_size is {h.POOL_SIZE}")
        finally:
            eng.dispose()


    def verify_full_refuses(self):
        # verify-full with a CA that did not sign the router's certificate is refused.
        bad = create_engine(url(), connect_args=cargs(sslrootcert=h.TLS_OTHER_CA))
        try:
            with bad.connect():
                pass
            raise Fail("verify-full accepted a certificate from a CA the client does not trust")
        except exc.OperationalError as e:
            check("certificate verify failed" in str(e), f"refused, but not for the certificate: {e}")
        finally:
            bad.dispose()


class Sharded:
    def __init__(self):
        self.eng = engine()

    def shard_point_read(self):
        with Session(self.eng) as s:
            for aid in range(1, 21):
                a = s.get(Account, aid)
                check(a is not None, f"aid {aid}: not found")
                same((a.balance, a.name), (10 * aid, f"acct-{aid}"), f"aid {aid}")

    def shard_point_write(self):
        keys = [h.KEY_BASE + i for i in range(20)]
        with Session(self.eng) as s:
            s.add_all([Account(aid=k, balance=k, name="w") for k in keys])
            s.commit()
            s.get(Account, keys[3]).balance += 1
            s.delete(s.get(Account, keys[5]))
            s.commit()
        with Session(self.eng) as s:
            for k in keys:
                a = s.get(Account, k)
                got = None if a is None else (a.balance, a.name)
                same(got, None if k == keys[5] else (k + (k == keys[3]), "w"), f"aid {k} read back")
        directs = [create_engine(f"postgresql+psycopg://{h.USER}:{h.PASSWORD}@{h.HOST}:{p}/{h.DATABASE}")
                   for p in h.SHARD_PORTS]
        try:
            with directs[0].connect() as d0, directs[1].connect() as d1:
                for k in keys:
                    on0 = d0.execute(text("SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, "
                                          "CAST(:k AS bigint))"), {"k": k}).scalar()
                    rows = [d.execute(text("SELECT count(*) FROM accounts WHERE aid = :k"), {"k": k}).scalar()
                            for d in (d0, d1)]
                    want = [0, 0] if k == keys[5] else ([1, 0] if on0 else [0, 1])
                    same(rows, want, f"aid {k}: rows on [shard 0, shard 1]")
        finally:
            for d in directs:
                d.dispose()

    def shard_fanout_aggregate(self):
        with Session(self.eng) as s:
            got = s.execute(select(func.count(), func.sum(Account.balance), func.min(Account.aid),
                                   func.max(Account.aid)).where(Account.aid.between(1, h.SEED_ROWS))).one()
            want = (h.SEED_ROWS, 10 * h.SEED_ROWS * (h.SEED_ROWS + 1) // 2, 1, h.SEED_ROWS)
            same(tuple(int(x) for x in got), want, "count/sum/min/max over both shards")

    def shard_order_limit(self):
        with Session(self.eng) as s:
            got = s.scalars(select(Account.aid).where(Account.aid <= h.SEED_ROWS)
                            .order_by(Account.aid.desc()).limit(5)).all()
            same(got, [1000, 999, 998, 997, 996], "ORDER BY aid DESC LIMIT 5")


if __name__ == "__main__":
    cases = h.plan(single=SINGLE)
    h.run_sync(cases, Single() if h.TARGET == "single" else Sharded())
