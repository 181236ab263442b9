"""Runs each question every way a client can ask it, and compares the answers.

Why four modes: the router plans from the statement text and resolves
parameters at Bind, in text or binary format, and merges results it must
re-encode in the client's result format. So one query is asked as:

    simple    the parameters inlined as literals (psycopg ClientCursor.mogrify),
              sent with the simple query protocol (no params, no preparation)
    extended  unnamed statement, parameters bound by the server, text format (%t)
    prepared  named prepared statement (prepare=True), psycopg's automatic
              formats (%s: binary for numbers/uuid/dates, text for strings);
              executed twice, the second time Bind/Execute only
    binary    unnamed statement, binary parameters (%b) and binary results

A query without parameters has no `extended` run (psycopg sends it with the
simple protocol, so it would repeat `simple`).

An answer is: column names and type OIDs, the rows (values normalised to
type + exact text: Decimal keeps its scale, floats their repr, timestamps
their offset), and the command tag. The reference is the plain database in the
same mode. A target's answer matches when all of that is identical (rows in
order when the query's ORDER BY determines it, else as multisets). An error
with SQLSTATE 0A000 is a refusal (allowed, counted); any other error or
difference is a WRONG answer.
"""

import datetime as dt
import threading
import uuid
from decimal import Decimal

import psycopg
from psycopg import ClientCursor

QUERY_TIMEOUT = 30.0
MODES = ("simple", "extended", "prepared", "binary")


class Outcome:
    """One answer; `rest` holds the answers of further statements of a multi-statement query."""

    __slots__ = ("cols", "rows", "tag", "sqlstate", "error", "rest")

    def __init__(self, cols=None, rows=None, tag=None, sqlstate=None, error=None):
        self.cols, self.rows, self.tag, self.sqlstate, self.error = cols, rows, tag, sqlstate, error
        self.rest = []

    def brief(self, start=0, limit=4, ordered=True):
        """A one-line summary: tag, columns and LIMIT rows from START (sorted unless ORDERED)."""
        if self.error is not None:
            return f"ERROR {self.sqlstate}: {self.error}"
        if self.rows is None:
            return f"{self.tag} (no result set)"
        rows = self.rows if ordered else sorted(self.rows, key=repr)
        start = max(0, min(start, len(rows) - limit))
        shown = "; ".join(_show_row(r) for r in rows[start:start + limit])
        before = f"… {start} rows; " if start else ""
        after = f"; … {len(rows) - start - limit} rows" if len(rows) > start + limit else ""
        how = "" if ordered else "sorted "
        return f"{self.tag} cols={_show_cols(self.cols)} {how}rows=[{before}{shown}{after}]"


def _show_cols(cols):
    return "(" + ", ".join(f"{n}:{t}" for n, t in cols) + ")"


def _show_row(r):
    return "(" + ", ".join("NULL" if v is None else v[1] for v in r) + ")"


def norm(v):
    """A value as (type, exact text): equal only when type and value (incl. scale, offset) are."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("bool", str(v))
    if isinstance(v, int):
        return ("int", str(v))
    if isinstance(v, Decimal):
        return ("numeric", str(v))
    if isinstance(v, float):
        return ("float", repr(v))
    if isinstance(v, (dt.datetime, dt.date, dt.time, dt.timedelta)):
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            return ("timestamptz", v.isoformat())
        return (type(v).__name__, str(v) if isinstance(v, dt.timedelta) else v.isoformat())
    if isinstance(v, uuid.UUID):
        return ("uuid", str(v))
    if isinstance(v, list):
        return ("array", repr([norm(x) for x in v]))
    if isinstance(v, (bytes, memoryview)):
        return ("bytes", bytes(v).hex())
    return (type(v).__name__, str(v))


def _capture_one(cur):
    desc = cur.description
    if desc is None:
        return Outcome(tag=cur.statusmessage)
    cols = tuple((c.name, c.type_code) for c in desc)
    rows = [tuple(norm(v) for v in r) for r in cur.fetchall()]
    return Outcome(cols=cols, rows=rows, tag=cur.statusmessage)


def _capture(cur):
    first = _capture_one(cur)
    while cur.nextset():
        first.rest.append(_capture_one(cur))
    return first


class Target:
    """One database to ask: the reference, a router pool, or (self-check) a plain copy."""

    def __init__(self, label, dsn):
        self.label, self.dsn = label, dsn
        self.plain = self.prep = None

    def connect(self):
        self.close()
        # plain: never prepares (so simple/extended/binary stay what they say);
        # prep: prepares only when asked (prepare=True), keeps every statement.
        self.plain = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None, connect_timeout=10)
        self.prep = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=10**9, connect_timeout=10)
        self.prep.prepared_max = 10**6

    def close(self):
        for c in (self.plain, self.prep):
            if c is not None:
                try:
                    c.close()
                except psycopg.Error:
                    pass
        self.plain = self.prep = None

    def healthy(self):
        return self.plain is not None and not self.plain.closed and not self.prep.closed

    def conn_for(self, mode, on=None):
        if on is not None:
            return self.prep if on == "prep" else self.plain
        return self.prep if mode == "prepared" else self.plain


def _sql_for(q, mode):
    if q.params is None:
        return q.sql
    if mode == "extended":
        return q.sql.replace("%s", "%t")
    if mode == "binary":
        return q.sql.replace("%s", "%b")
    return q.sql


def execute(target, q, mode, literal_sql=None, on=None):
    """Runs Q once on TARGET in MODE; returns its Outcome (errors included).

    on: "plain" or "prep" to pick the connection (a transaction's statements
    must share one); default: `prep` for the prepared mode, else `plain`.
    """
    if not target.healthy():
        try:
            target.connect()
        except psycopg.Error as e:
            return Outcome(sqlstate=getattr(e, "sqlstate", None) or "connect", error=str(e).strip())
    conn = target.conn_for(mode, on)
    timer = threading.Timer(QUERY_TIMEOUT, conn.cancel_safe)
    timer.start()
    try:
        if mode == "simple":
            cur = conn.cursor()
            cur.execute(literal_sql if literal_sql is not None else q.sql)
        elif mode == "binary":
            cur = conn.cursor(binary=True)
            cur.execute(_sql_for(q, mode), q.params)
        else:
            cur = conn.cursor()
            cur.execute(_sql_for(q, mode), q.params, prepare=(mode == "prepared"))
        return _capture(cur)
    except psycopg.Error as e:
        state = getattr(e, "sqlstate", None)
        if state is None:  # no server error: the connection broke, or a client-side failure
            state = "client"
            if conn.closed:
                target.close()
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return Outcome(sqlstate=state, error=msg)
    finally:
        timer.cancel()


def literal(reference, q):
    """The simple-protocol text of Q: its parameters inlined by psycopg."""
    if q.params is None:
        return q.sql
    if not reference.healthy():
        reference.connect()
    return ClientCursor(reference.plain).mogrify(q.sql, q.params)


def first_diff(q, want, got):
    """Index of the first differing row (in the order the comparison used), or 0."""
    a, b = want.rows or [], got.rows or []
    if not q.ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def differ(q, want, got):
    """None when GOT is the same answer as WANT, else what differs."""
    if len(got.rest) != len(want.rest):
        return f"{1 + len(got.rest)} result sets instead of {1 + len(want.rest)}"
    for n, (w, g) in enumerate(zip(want.rest, got.rest), 2):
        why = _differ_one(q, w, g)
        if why is not None:
            return f"result set {n}: {why}"
    return _differ_one(q, want, got)


def _differ_one(q, want, got):
    if got.cols != want.cols:
        return f"columns differ: want {_show_cols(want.cols or ())}, got {_show_cols(got.cols or ())}"
    if got.tag != want.tag:
        return f"command tag differs: want {want.tag!r}, got {got.tag!r}"
    if want.rows is None:
        return None
    a, b = want.rows, got.rows
    if not q.ordered:
        a, b = sorted(a, key=repr), sorted(b, key=repr)
    if a == b:
        return None
    if len(a) != len(b):
        return f"{len(b)} rows instead of {len(a)}" + ("" if q.ordered else " (compared as multisets)")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            how = "row" if q.ordered else "sorted row"
            return f"{how} {i} differs: want {_show_row(x)}, got {_show_row(y)}"
    return "rows differ"
