"""Shared by the Python driver checks: the PLAN/PASS/FAIL output protocol of
testing/drivers.sh, the environment it passes, and the expected values every
scenario compares against (so all Python drivers test the same things)."""

import asyncio
import datetime as dt
import os
import ssl
import sys
import time
import traceback
import uuid
from decimal import Decimal

TARGET = os.environ.get("DRV_TARGET", "single")
HOST = os.environ.get("PGHOST", "127.0.0.1")
PORT = int(os.environ.get("PGPORT", "5432"))
USER = os.environ.get("PGUSER", "app")
PASSWORD = os.environ.get("PGPASSWORD", "secret")
DATABASE = os.environ.get("PGDATABASE", "orochi_drv")
POOL_SIZE = int(os.environ.get("DRV_POOL_SIZE", "5"))
KEY_BASE = int(os.environ.get("DRV_KEY_BASE", "1000000"))
SHARD_PORTS = [int(p) for p in os.environ.get("DRV_SHARD_PORTS", "").split(",") if p]
# The `tls` target: connections to the router use verify-full against the test CA
# (DRV_TLS_CA); DRV_TLS_OTHER_CA is a CA that did not sign the router's certificate.
# Direct connections to the fleet's PostgreSQL (no TLS there) never use these.
TLS = os.environ.get("DRV_TLS") == "1"
TLS_CA = os.environ.get("DRV_TLS_CA", "")
TLS_OTHER_CA = os.environ.get("DRV_TLS_OTHER_CA", "")

SINGLE_CASES = [
    "connect_scram",
    "simple_reuse",
    "prepared_reuse",
    "types_text",
    "types_binary",
    "txn_commit_rollback",
    "txn_error_recovery",
    "copy_in_out",
    "big_result",
    "cancel",
    "stmt_timeout_local",
    "stmt_timeout_session",
    "concurrent_20_pool_5",
    "disconnect_in_txn",
]
SHARDED_CASES = [
    "shard_point_read",
    "shard_point_write",
    "shard_fanout_aggregate",
    "shard_order_limit",
]

# One value per type the issue names; NULL is checked separately for each.
TYPE_VALUES = [
    ("int2", 32767),
    ("int4", -2147483648),
    ("int8", 9223372036854775807),
    ("numeric", Decimal("12345678901234567890.123456789")),
    ("float8", 3.141592653589793),
    ("text", "héllo 'wörld' ✓ \\ \"q\""),
    ("bytea", bytes(range(256))),
    ("bool", True),
    ("date", dt.date(2024, 2, 29)),
    ("timestamptz", dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=dt.timezone.utc)),
    ("uuid", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
    ("jsonb", {"a": [1, 2, {"b": None}], "c": "é"}),
    ("int4[]", [1, 2, None, 4]),
    ("text[]", ["a", "b c", '"q"', None]),
]

BIG_ROWS = 100_000
BIG_SUM = BIG_ROWS * (BIG_ROWS + 1) // 2
SEED_ROWS = 1000  # accounts 1..1000 on the sharded target, balance = 10 * aid


class Fail(Exception):
    """A case's check did not hold; the message is the reason printed."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def same(got, want, what):
    if got != want:
        raise Fail(f"{what}: got {got!r}, want {want!r}")


def libpq_tls(ca=None):
    """libpq connection parameters for the router: verify-full on the tls target."""
    return dict(sslmode="verify-full", sslrootcert=ca or TLS_CA) if TLS else {}


def ssl_context(ca=None):
    """An SSLContext that checks the chain against `ca` and the host name (verify-full)."""
    ctx = ssl.create_default_context(cafile=ca or TLS_CA)
    check(ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED, "context does not verify")
    return ctx


def plan(single=None, sharded=None):
    """Prints and returns this target's cases (a driver may run a subset of the single
    ones); the tls target adds verify_full_refuses."""
    cases = (single or SINGLE_CASES) if TARGET == "single" else (sharded or SHARDED_CASES)
    if TLS:
        cases = cases + ["verify_full_refuses"]
    print("PLAN " + " ".join(cases), flush=True)
    return cases


def _report(name, err, started):
    took = time.monotonic() - started
    if err is None:
        print(f"PASS {name} ({took:.1f}s)", flush=True)
        return
    if isinstance(err, Fail):
        why = str(err)
    else:
        why = f"{type(err).__name__}: {err}".replace("\n", " ")
        traceback.print_exception(err, file=sys.stderr)
    print(f"FAIL {name}: {why[:400]}", flush=True)


def run_sync(cases, impl):
    """impl: object with a method per case name."""
    for name in cases:
        started = time.monotonic()
        err = None
        try:
            getattr(impl, name)()
        except Exception as e:  # noqa: BLE001 - every failure is a reported case
            err = e
        _report(name, err, started)


def run_async(cases, impl, per_case_timeout=90):
    async def main():
        for name in cases:
            started = time.monotonic()
            err = None
            try:
                await asyncio.wait_for(getattr(impl, name)(), per_case_timeout)
            except asyncio.TimeoutError:
                err = Fail(f"did not finish within {per_case_timeout}s")
            except Exception as e:  # noqa: BLE001
                err = e
            _report(name, err, started)

    asyncio.run(main())


def sqlstate_of(exc):
    """The SQLSTATE of a driver exception (psycopg: .sqlstate, asyncpg: .sqlstate)."""
    return getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
