"""Attacks on two-phase commit run alongside the bank test (issue 19, `--attack`).

While the transfer clients run, an attacker keeps trying to split or stall the
router's cross-shard transactions, both through the router (as the application's
login) and directly on the shards (as `mallory`, an application role that is not the
router's server login):
  - COMMIT PREPARED / ROLLBACK PREPARED of the router's gids it can see in
    pg_prepared_xacts;
  - recording a decision for an in-doubt gid (`orochi.record_decision`), writing the
    decisions table, forgetting decisions;
  - squatting on the sweeper's advisory lock for a few seconds at a time.

Every attempt must be refused (an accepted one is recorded as a breach and fails the
test); a lost connection (the router is being killed) is only retried. The bank test's
invariants are then checked as usual: all-or-nothing across shards, no money created,
nothing left prepared once the attacker is gone.
"""
import threading, time
import psycopg

SWEEP_LOCK_KEY = 8030603558299185776
MALLORY = ("mallory", "mallory-secret")


def create_mallory(conn):
    """On one shard's bank database, as a superuser: an application role of its own."""
    user, password = MALLORY
    conn.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN "
        f"CREATE ROLE {user} LOGIN PASSWORD '{password}'; END IF; END $$")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE ON accounts, ledger TO {user}")


class Attacker(threading.Thread):
    def __init__(self, router_dsn, shard_dsns, stop):
        super().__init__(daemon=True)
        user, password = MALLORY
        self.router_dsn, self.stop = router_dsn, stop
        self.mallory = [f"{d} user={user} password={password}" for d in shard_dsns]
        self.refused = {}
        self.breaches = []

    def visible_gids(self):
        gids = []
        for dsn in self.mallory:
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as c:
                    gids += [g for (g,) in c.execute(
                        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'orochi\\_%%' LIMIT 4")]
            except psycopg.OperationalError:
                pass
        return gids

    def attempt(self, where, conn, sql):
        """Runs one attack statement; True when the connection is still usable."""
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege:
            self.refused[where] = self.refused.get(where, 0) + 1
            return True
        except psycopg.errors.UndefinedObject:
            # No such prepared transaction any more (it finished): not a breach.
            return True
        except (psycopg.OperationalError, psycopg.errors.AdminShutdown):
            return False
        except psycopg.Error as e:
            if e.sqlstate in ("42704", "42883", "3F000", "25P02"):
                return True
            self.breaches.append(f"{where}: {sql!r} failed with {e.sqlstate}, not 42501: {e}")
            return True
        self.breaches.append(f"{where}: {sql!r} was accepted")
        return True

    def statements(self, gids):
        out = []
        for gid in gids:
            base = gid.rsplit("_s", 1)[0]
            out += [f"COMMIT PREPARED '{gid}'", f"ROLLBACK PREPARED '{gid}'",
                    f"SELECT orochi.record_decision('{base}', 'commit')",
                    f"INSERT INTO orochi.twopc_decisions VALUES ('{base}', 'commit')"]
        out += ["UPDATE orochi.twopc_decisions SET decision = 'abort'",
                "DELETE FROM orochi.twopc_decisions",
                "SELECT orochi.forget_decisions(ARRAY(SELECT gid FROM orochi.twopc_decisions), 0)"]
        return out

    def squat(self, dsn, seconds):
        """Holds the sweeper's lock for a while, then lets it go (and disconnects)."""
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as c:
                c.execute(f"SELECT pg_advisory_lock({SWEEP_LOCK_KEY})")
                self.refused["lock squatted (held, then released)"] = (
                    self.refused.get("lock squatted (held, then released)", 0) + 1)
                self.stop.wait(seconds)
                c.execute(f"SELECT pg_advisory_unlock({SWEEP_LOCK_KEY})")
        except psycopg.Error:
            pass

    def run(self):
        mallory = self.mallory
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            sqls = self.statements(self.visible_gids())
            for where, dsn in [("router", self.router_dsn)] + [(f"shard{k}", d) for k, d in enumerate(mallory)]:
                try:
                    with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as c:
                        for sql in sqls:
                            if self.stop.is_set() or not self.attempt(where, c, sql):
                                break
                except psycopg.OperationalError:
                    pass
            if rounds % 10 == 0:
                self.squat(mallory[0], 2.0)
            self.stop.wait(0.05)
