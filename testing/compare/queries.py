"""The questions: read queries from templates × constants, plus rolled-back writes.

Why templates: issue #3's proof asks for ≥ 200 queries over every routing form
of SPEC §3 (point lookups per key type, IN, = ANY($n), ranges, AND, joins on
the key and with replicated tables, aggregates, GROUP BY, ORDER BY with
LIMIT/OFFSET, DISTINCT, empty results, subqueries) and over every merge of the
issue's executor list. Each construct is written once and instantiated with
constants picked (seeded) from the generated data: present and missing keys,
0, negatives, int8 extremes, '' and non-ASCII text, uuids.

`ordered` says the query's ORDER BY fully determines the row order (the key or
another unique column is the last sort key), so the rows must come back in
exactly that order; otherwise the rows are compared as multisets. The
self-check run (shuffled physical row order) catches a wrong `ordered` claim.

Beyond the issue's list, some queries are there to catch a router that is
almost right: predicates that mention the key but do not restrict the rows to
one shard (OR, NOT, <>, a key in a subquery or in an outer join's ON), the key
compared with other types (numeric, int2, char(n), text forms PostgreSQL's
input functions accept), NaN/±Infinity, explicit non-C collations, several
statements in one query, cursors, and writes followed by reads in one
transaction. Each must be answered exactly or refused, like everything else.

`construct` names what the query exercises; refusals are counted by it.
Templates use psycopg's %s placeholders; the judge turns them into literals
(simple protocol), %t (text parameters), %b (binary parameters) per mode.
"""

import datetime as dt
import random
import uuid
from decimal import Decimal
from types import SimpleNamespace

from dataset import INT8_MAX, INT8_MIN
from shapes import outer_joins, shapes


class Q:
    __slots__ = ("construct", "sql", "params", "ordered", "modes")

    def __init__(self, construct, sql, params=None, ordered=False, modes=None):
        self.construct = construct
        self.sql = sql
        self.params = None if params is None else tuple(params)
        self.ordered = ordered
        self.modes = modes  # None: every mode that makes sense


class Write:
    """BEGIN; steps...; ROLLBACK; then `after` outside the transaction."""

    __slots__ = ("construct", "steps", "after")

    def __init__(self, construct, steps, after):
        self.construct = construct
        self.steps = [Q(construct, s, p, o) for s, p, o in steps]
        self.after = Q(construct, *after)


def lit(s):
    """A SQL string literal (for the few templates that embed constants in the text)."""
    return "'" + s.replace("'", "''") + "'"


def _point_lookups(add, k):
    """Point lookups."""
    (present, extremes, missing, heavy, orphan, point_ids, slugs, eids, missing_eid) = (
        k.present, k.extremes, k.missing, k.heavy, k.orphan, k.point_ids, k.slugs, k.eids, k.missing_eid)
    for i in point_ids:
        add("point lookup bigint", "SELECT * FROM users WHERE id = %s", [i])
    for i in present[:3] + extremes[:4]:
        add("point lookup bigint",
            "SELECT u.id, u.name, u.score FROM public.users AS u WHERE u.id = %s::bigint", [i])
        add("point lookup bigint", "SELECT name, city FROM users WHERE %s = id", [i])
    for i in present[:3] + [INT8_MIN, INT8_MAX, -42, 0]:
        add("point lookup bigint", f"SELECT * FROM users WHERE id = '{i}'::bigint")
        add("point lookup bigint", f"SELECT id, age, flag FROM users WHERE id = {i}")
    for uid in heavy + [orphan, missing[0]]:
        add("point lookup bigint", "SELECT order_id, amount, status, placed FROM orders WHERE user_id = %s "
            "ORDER BY order_id", [uid], True)
    for uid in heavy[:2] + [orphan, missing[1]]:
        add("aggregate on one shard", "SELECT count(*), sum(amount), avg(qty), min(placed), max(status) "
            "FROM orders WHERE user_id = %s", [uid])
    for s in slugs:
        add("point lookup text", "SELECT * FROM docs WHERE slug = %s", [s])
    for s in slugs[:4]:
        add("point lookup text", "SELECT d.title, d.rating FROM docs d WHERE d.slug = %s::text", [s])
        add("point lookup text", f"SELECT slug, words FROM docs WHERE slug = {lit(s)}")
    for s in slugs[4:6]:
        add("point lookup text", "SELECT slug FROM docs WHERE slug = %s::varchar", [s])
    for e in eids + [missing_eid]:
        add("point lookup uuid", "SELECT * FROM events WHERE eid = %s", [e])
    for e in eids[:3]:
        add("point lookup uuid", "SELECT kind, w FROM events WHERE eid = %s::uuid", [str(e)])
        add("point lookup uuid", f"SELECT eid, at FROM events WHERE eid = '{e}'")
    add("point lookup uuid", f"SELECT eid, lvl FROM events WHERE eid = '{str(eids[3]).upper()}'::uuid")
    add("point lookup uuid", f"SELECT eid, lvl FROM events WHERE eid = '{{{eids[4].hex}}}'")


def _in_and_any(add, k):
    """IN lists and = ANY(array)."""
    (rng, ids, present, missing, heavy, orphan, slugs_special, slugs, eids, missing_eid) = (
        k.rng, k.ids, k.present, k.missing, k.heavy, k.orphan, k.slugs_special, k.slugs, k.eids, k.missing_eid)
    for trio in (present[:3], present[3:6], [present[6], missing[0], INT8_MIN], [0, -42, INT8_MAX]):
        add("IN list", "SELECT id, name FROM users WHERE id IN (%s, %s, %s) ORDER BY id", trio, True)
    add("IN list", f"SELECT id FROM users WHERE id IN ({present[0]}, {present[1]}, -42) ORDER BY id", None, True)
    add("IN list", f"SELECT id, city FROM users WHERE id IN ({present[2]}) ORDER BY id", None, True)
    for pair in (slugs[:3], slugs[3:6]):
        add("IN list", "SELECT slug, words FROM docs WHERE slug IN (%s, %s, %s) ORDER BY slug", pair, True)
    for pair in (eids[:2], [eids[2], missing_eid]):
        add("IN list", "SELECT eid, kind FROM events WHERE eid IN (%s, %s) ORDER BY eid", pair, True)
    for lst in ([present[0]], present[:2], present[:5] + [missing[0], INT8_MAX], rng.sample(ids, 20)):
        add("= ANY(array)", "SELECT id, city, score FROM users WHERE id = ANY(%s) ORDER BY id", [lst], True)
    add("= ANY(array)", "SELECT id FROM users WHERE id = ANY(%s::bigint[]) ORDER BY id", [[]], True)
    for lst in (slugs[:2], slugs_special, ["no-such-doc", "nope"]):
        add("= ANY(array)", "SELECT slug, words FROM docs WHERE slug = ANY(%s) ORDER BY slug", [lst], True)
    for lst in (eids[:3], [missing_eid]):
        add("= ANY(array)", "SELECT eid, kind, ratio FROM events WHERE eid = ANY(%s) ORDER BY eid", [lst], True)
    for lst in (heavy, [orphan, present[0]]):
        add("= ANY(array)", "SELECT user_id, order_id, amount FROM orders WHERE user_id = ANY(%s) "
            "ORDER BY user_id, order_id", [lst], True)


def _ranges_and_conjunctions(add, k):
    """Ranges and conjunctions."""
    present, missing, heavy, slugs, d = k.present, k.missing, k.heavy, k.slugs, k.d
    for lo, hi in ((100, 400), (-100, 50), (59000, INT8_MAX)):
        add("range", "SELECT id, name, score FROM users WHERE id BETWEEN %s AND %s ORDER BY id", [lo, hi], True)
    for v in (Decimal("99000.00"), Decimal("-500.5")):
        add("range", "SELECT id, score FROM users WHERE score > %s ORDER BY score, id LIMIT 20", [v], True)
    for a, b in ((dt.date(2016, 1, 1), dt.date(2016, 2, 1)), (dt.date(2024, 12, 1), dt.date(2030, 1, 1))):
        add("range", "SELECT id, created FROM users WHERE created >= %s AND created < %s ORDER BY created, id",
            [a, b], True)
    utc = dt.timezone.utc
    for a, b in ((dt.datetime(2021, 3, 1, tzinfo=utc), dt.datetime(2021, 3, 5, tzinfo=utc)),
                 (dt.datetime(2019, 1, 1, tzinfo=utc), dt.datetime(2020, 1, 2, tzinfo=utc))):
        add("range", "SELECT order_id, placed FROM orders WHERE placed >= %s AND placed < %s "
            "ORDER BY placed, order_id LIMIT 30", [a, b], True)
    for a, b in ((20, 30), (85, 200)):
        add("range", "SELECT count(*) FROM users WHERE age BETWEEN %s AND %s", [a, b])
    for a, b in (("doc-1", "doc-2"), ("z", "\U0010ffff")):
        add("range", "SELECT slug FROM docs WHERE slug > %s AND slug < %s ORDER BY slug", [a, b], True)
    for i in present[:3]:
        add("AND with key", "SELECT id, name FROM users WHERE id = %s AND flag", [i])
    for row in d.rows["users"][:3]:
        add("AND with key", "SELECT * FROM users WHERE city = %s AND id = %s", [row[2], row[0]])
    for uid in heavy[:2]:
        add("AND with key", "SELECT * FROM orders WHERE user_id = %s AND status = %s ORDER BY order_id",
            [uid, "paid"], True)
    for s in slugs[8:10]:
        add("AND with key", "SELECT * FROM docs WHERE slug = %s AND words > %s", [s, 100])
    for c, a in (("Tokyo", 80), ("München", 60), ("Nowhere", 20)):
        add("AND without key", "SELECT id FROM users WHERE city = %s AND age > %s ORDER BY id", [c, a], True)
    for a, b in ((present[0], present[1]), (present[2], missing[0])):
        add("OR of keys", "SELECT id, name FROM users WHERE id = %s OR id = %s ORDER BY id", [a, b], True)


def _joins(add, k):
    """Joins."""
    present, missing, heavy = k.present, k.missing, k.heavy
    for uid in heavy + [present[0]]:
        add("join on key", "SELECT u.id, u.name, o.order_id, o.amount FROM users u JOIN orders o "
            "ON o.user_id = u.id WHERE u.id = %s ORDER BY o.order_id", [uid], True)
    for uid in heavy[:2]:
        add("join on key", "SELECT u.name, o.order_id, o.status FROM orders o JOIN users u ON u.id = o.user_id "
            "WHERE o.user_id = %s ORDER BY o.order_id", [uid], True)
    add("join on key (fan-out)", "SELECT u.city, count(*), sum(o.amount) FROM users u JOIN orders o "
        "ON o.user_id = u.id GROUP BY u.city ORDER BY u.city NULLS FIRST", None, True)
    for st in ("shipped", "refunded"):
        add("join on key (fan-out)", "SELECT u.id, o.order_id, o.status FROM users u JOIN orders o "
            "ON u.id = o.user_id WHERE o.status = %s ORDER BY u.id, o.order_id LIMIT 25", [st], True)
    for lst in (heavy, present[:4] + [missing[0]]):
        add("join on key (fan-out)", "SELECT u.id, count(o.order_id), sum(o.qty) FROM users u LEFT JOIN orders o "
            "ON o.user_id = u.id WHERE u.id = ANY(%s) GROUP BY u.id ORDER BY u.id", [lst], True)
    for a in (30, 85):
        add("join on key (fan-out)", "SELECT count(*), sum(o.amount) FROM orders o JOIN users u "
            "ON u.id = o.user_id WHERE u.age > %s", [a])
    for uid in heavy:
        add("join with replicated", "SELECT o.order_id, p.name, p.price FROM orders o JOIN products p "
            "ON p.product_id = o.product_id WHERE o.user_id = %s ORDER BY o.order_id", [uid], True)
    add("join with replicated", "SELECT p.category, count(*), sum(o.qty) FROM orders o JOIN products p "
        "ON p.product_id = o.product_id GROUP BY p.category ORDER BY p.category NULLS FIRST", None, True)
    add("join with replicated", "SELECT c.country, count(*), avg(u.age) FROM users u JOIN cities c "
        "ON c.city = u.city GROUP BY c.country ORDER BY c.country", None, True)
    add("join with replicated", "SELECT u.id, u.name, c.country FROM users u JOIN cities c ON c.city = u.city "
        "WHERE u.id = ANY(%s) ORDER BY u.id", [present], True)
    for pop in (1000000, 5000000):
        add("join with replicated", "SELECT u.id, c.population FROM users u LEFT JOIN cities c ON c.city = u.city "
            "WHERE c.population > %s ORDER BY c.population DESC NULLS LAST, u.id LIMIT 15", [pop], True)
    for uid in heavy[:2]:
        add("join with replicated", "SELECT u.city, p.category, sum(o.amount) FROM users u JOIN orders o "
            "ON o.user_id = u.id JOIN products p ON p.product_id = o.product_id WHERE u.id = %s "
            "GROUP BY 1, 2 ORDER BY 1 NULLS FIRST, 2 NULLS FIRST", [uid], True)


def _aggregates(add, k):
    """Aggregates."""
    for sql in (
        "SELECT count(*) FROM users",
        "SELECT count(name), count(city), count(u) FROM users",
        "SELECT sum(score), sum(age), sum(id) FROM users",
        "SELECT min(score), max(score), min(age), max(age), min(id), max(id) FROM users",
        "SELECT min(name), max(name), min(city), max(city) FROM users",
        "SELECT min(created), max(created), min(ts), max(ts) FROM users",
        "SELECT avg(age), avg(score), avg(id) FROM users",
        "SELECT sum(lvl), avg(lvl), min(lvl), max(lvl) FROM events",
        "SELECT sum(ratio), avg(ratio), min(ratio), max(ratio) FROM events",
        "SELECT min(w), max(w), sum(w), count(w) FROM events",
        "SELECT count(*), sum(amount), avg(amount), min(amount), max(amount) FROM orders",
        "SELECT count(*), min(slug), max(slug), avg(words), sum(rating), avg(rating) FROM docs",
        "SELECT count(1) AS n, sum(qty) AS total_qty, max(placed) FROM orders",
        "SELECT min(at), max(at), count(kind) FROM events",
    ):
        add("aggregate", sql)
    for st in ("new", "cancelled"):
        add("aggregate", "SELECT count(*) AS n, sum(qty) AS total_qty FROM orders WHERE status = %s", [st])
    for a in (18, 50, 90):
        add("aggregate", "SELECT count(*), avg(score), sum(age) FROM users WHERE age > %s", [a])
    add("expression over aggregates", "SELECT max(placed) - min(placed) FROM orders")
    add("expression over aggregates", "SELECT sum(score) / count(score) FROM users")
    add("aggregate FILTER", "SELECT count(*) FILTER (WHERE flag) FROM users")
    add("bool_and/bool_or", "SELECT bool_and(flag), bool_or(flag) FROM users")


def _group_by(add, k):
    """GROUP BY."""
    present = k.present
    add("GROUP BY", "SELECT city, count(*), sum(score), avg(age), min(created), max(ts) FROM users "
        "GROUP BY city ORDER BY city NULLS LAST", None, True)
    add("GROUP BY", "SELECT city, count(*), sum(score), avg(score) FROM users GROUP BY city "
        "ORDER BY city DESC NULLS FIRST", None, True)
    add("GROUP BY", "SELECT flag, count(*), sum(age), avg(id) FROM users GROUP BY flag ORDER BY flag", None, True)
    add("GROUP BY", "SELECT city, flag, count(*) FROM users GROUP BY city, flag ORDER BY city, flag", None, True)
    add("GROUP BY", "SELECT status, count(*), sum(amount), avg(amount) FROM orders GROUP BY status")
    add("GROUP BY", "SELECT kind, count(*), sum(ratio), avg(lvl), max(w), min(at) FROM events "
        "GROUP BY kind ORDER BY kind", None, True)
    add("GROUP BY", "SELECT published, count(*) FROM docs GROUP BY published "
        "ORDER BY published DESC NULLS LAST LIMIT 10", None, True)
    add("GROUP BY", "SELECT user_id, count(*), sum(amount) FROM orders GROUP BY user_id "
        "ORDER BY user_id LIMIT 20 OFFSET 1", None, True)
    for p in (10, 45):
        add("GROUP BY", "SELECT status, product_id, count(*) FROM orders WHERE product_id < %s "
            "GROUP BY status, product_id ORDER BY status NULLS FIRST, product_id NULLS FIRST", [p], True)
    add("GROUP BY", "SELECT extract(year FROM created) AS y, count(*) FROM users GROUP BY 1 ORDER BY 1",
        None, True)
    add("GROUP BY", "SELECT city, count(*) FROM users WHERE id = %s GROUP BY city", [present[0]])
    for a in (20, 60):
        add("GROUP BY, ORDER BY aggregate", "SELECT age, count(*) FROM users WHERE age > %s GROUP BY age "
            "ORDER BY 2 DESC, 1 LIMIT 5", [a], True)
    # ~450..640 users per city: 200 keeps every group (but no shard of cmp4 alone has
    # 200), 490 about half; a HAVING applied per shard gets both wrong.
    for n in (200, 490):
        add("HAVING", "SELECT city, count(*) FROM users GROUP BY city HAVING count(*) > %s ORDER BY city",
            [n], True)


def _order_by(add, k):
    """ORDER BY with LIMIT/OFFSET."""
    windows = [(10, 0), (7, 13), (25, 100), (5, 7990), (3, 8000), (40, 3000)]
    k = 0
    for col in ("name", "city", "score", "age", "created", "ts", "u", "flag"):
        for direction, nulls, tie in (("ASC", "NULLS LAST", "ASC"), ("DESC", "NULLS FIRST", "DESC"),
                                      ("ASC", "NULLS FIRST", "DESC"), ("DESC", "NULLS LAST", "ASC")):
            lim, off = windows[k % len(windows)]
            k += 1
            add("ORDER BY + LIMIT/OFFSET", f"SELECT id, {col} FROM users ORDER BY {col} {direction} {nulls}, "
                f"id {tie} LIMIT %s OFFSET %s", [lim, off], True)
    for lim in (5, 50):
        add("ORDER BY position", "SELECT city, age, id FROM users ORDER BY 1 DESC NULLS LAST, 2, 3 LIMIT %s",
            [lim], True)
    add("ORDER BY several keys", "SELECT city, age, score, id FROM users "
        "ORDER BY city, age DESC NULLS LAST, score NULLS FIRST, id LIMIT 30 OFFSET 5", None, True)
    add("ORDER BY selected expression", "SELECT id, score * 2 AS s2 FROM users "
        "ORDER BY s2 DESC NULLS LAST, id LIMIT 10", None, True)
    add("ORDER BY unselected expression", "SELECT id, name FROM users ORDER BY lower(name), id LIMIT 10",
        None, True)
    add("ORDER BY (no LIMIT)", "SELECT id, name, score FROM users ORDER BY score DESC, id", None, True)
    add("ORDER BY (no LIMIT)", "SELECT * FROM orders ORDER BY placed NULLS FIRST, user_id, order_id", None, True)
    for lim, off in ((10, 0), (10, 15990)):
        add("ORDER BY + LIMIT/OFFSET", "SELECT user_id, order_id, amount FROM orders "
            "ORDER BY amount DESC NULLS LAST, user_id, order_id LIMIT %s OFFSET %s", [lim, off], True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT slug, title FROM docs ORDER BY slug LIMIT 30", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT slug, title FROM docs ORDER BY slug DESC LIMIT 30", None, True)
    for lim, off in ((12, 0), (12, 40)):
        add("ORDER BY + LIMIT/OFFSET", "SELECT title, slug FROM docs ORDER BY title NULLS FIRST, slug "
            "LIMIT %s OFFSET %s", [lim, off], True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT slug, rating FROM docs ORDER BY rating DESC, slug LIMIT 20", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid FROM events ORDER BY eid LIMIT 20", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, kind FROM events ORDER BY eid DESC LIMIT 20", None, True)
    # w holds NaN (sorts above every number), ±Infinity and ~5% NULLs.
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, w FROM events ORDER BY w NULLS LAST, eid LIMIT 20", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, w FROM events ORDER BY w DESC NULLS LAST, eid LIMIT 20",
        None, True)
    add("ORDER BY + LIMIT/OFFSET",
        "SELECT eid, w FROM events ORDER BY w NULLS FIRST, eid DESC LIMIT 20 OFFSET 140", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, w FROM events ORDER BY w DESC, eid LIMIT 20 OFFSET 150",
        None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, ratio FROM events ORDER BY ratio, eid LIMIT 15 OFFSET 2",
        None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT eid, at, lvl FROM events ORDER BY at DESC NULLS LAST, lvl, eid "
        "LIMIT 15", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT * FROM users ORDER BY id LIMIT 0", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT id FROM users ORDER BY id OFFSET 7995", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT id, age FROM users ORDER BY age DESC NULLS LAST, id "
        "FETCH FIRST 5 ROWS ONLY", None, True)


def _distinct(add, k):
    """DISTINCT."""
    heavy = k.heavy
    add("DISTINCT", "SELECT DISTINCT city FROM users")
    add("DISTINCT", "SELECT DISTINCT city FROM users ORDER BY city NULLS FIRST", None, True)
    add("DISTINCT", "SELECT DISTINCT status, product_id FROM orders ORDER BY 1 NULLS FIRST, 2 NULLS FIRST",
        None, True)
    for a in (30, 88):
        add("DISTINCT", "SELECT DISTINCT age FROM users WHERE age > %s ORDER BY age DESC LIMIT 5", [a], True)
    add("DISTINCT", "SELECT DISTINCT kind FROM events ORDER BY kind", None, True)
    add("DISTINCT", "SELECT DISTINCT flag FROM users")
    add("DISTINCT", "SELECT DISTINCT user_id FROM orders WHERE user_id = ANY(%s) ORDER BY user_id", [heavy], True)
    add("DISTINCT ON", "SELECT DISTINCT ON (city) city, id FROM users ORDER BY city, id", None, True)


def _empty_results(add, k):
    """Empty results."""
    heavy = k.heavy
    add("empty result", "SELECT * FROM users WHERE false")
    add("empty result", "SELECT id, score FROM users WHERE score > %s ORDER BY id", [Decimal("1e9")], True)
    add("empty result (aggregate)", "SELECT count(*), sum(score), avg(age), min(name), max(ts) FROM users "
        "WHERE age > %s", [1000])
    add("empty result", "SELECT city, count(*) FROM users WHERE age > %s GROUP BY city", [1000])
    add("empty result", "SELECT * FROM orders WHERE user_id = %s AND order_id < 0", [heavy[0]])
    add("empty result", "SELECT DISTINCT city FROM users WHERE id < %s", [INT8_MIN])
    add("empty result", "SELECT eid, kind FROM events WHERE kind = %s ORDER BY eid LIMIT 5", ["nothing"], True)


def _replicated(add, k):
    """Replicated tables alone."""
    add("replicated table", "SELECT * FROM products ORDER BY product_id", None, True)
    add("replicated table", "SELECT * FROM products")
    add("replicated table", "SELECT category, count(*), avg(price), sum(price) FROM products "
        "GROUP BY category ORDER BY category NULLS FIRST", None, True)
    for c in ("Zürich", "Tokyo", "nope"):
        add("replicated table", "SELECT * FROM cities WHERE city = %s", [c])
    add("replicated table", "SELECT country, sum(population) FROM cities GROUP BY country ORDER BY country",
        None, True)
    add("replicated table", "SELECT count(*) FROM products")
    add("replicated table", "SELECT name, row_number() OVER (ORDER BY price DESC NULLS LAST, product_id) "
        "FROM products ORDER BY 2", None, True)
    add("replicated table", "SELECT count(DISTINCT country) FROM cities")


def _subqueries(add, k):
    """Subqueries and CTEs."""
    present, heavy = k.present, k.heavy
    for i in present[:2]:
        add("CTE on one shard", "WITH t AS (SELECT * FROM users WHERE id = %s) SELECT * FROM t", [i])
    for uid in heavy[:2]:
        add("subquery on one shard", "SELECT * FROM orders WHERE user_id IN (SELECT id FROM users WHERE id = %s) "
            "ORDER BY order_id", [uid], True)
    add("subquery in FROM", "SELECT count(*) FROM (SELECT city FROM users WHERE age > %s) s", [40])
    add("CTE fan-out", "WITH big AS (SELECT user_id, sum(amount) AS s FROM orders GROUP BY user_id) "
        "SELECT count(*) FROM big WHERE s > %s", [Decimal(5000)])
    add("scalar subquery over sharded", "SELECT id, name FROM users WHERE id = (SELECT max(id) FROM users)")
    add("subquery on replicated", "SELECT id FROM users WHERE city = (SELECT city FROM cities "
        "ORDER BY population DESC NULLS LAST LIMIT 1) ORDER BY id LIMIT 10", None, True)
    add("correlated EXISTS on key", "SELECT u.id FROM users u WHERE EXISTS (SELECT 1 FROM orders o "
        "WHERE o.user_id = u.id AND o.amount > %s) ORDER BY u.id LIMIT 20", [Decimal(4500)], True)
    add("IN subquery on key", "SELECT id FROM users WHERE id IN (SELECT user_id FROM orders WHERE amount > %s) "
        "ORDER BY id LIMIT 20", [Decimal(4900)], True)
    add("subquery on one shard", "SELECT p.name FROM products p WHERE p.product_id IN "
        "(SELECT product_id FROM orders WHERE user_id = %s) ORDER BY p.name", [heavy[0]], True)
    add("CTE fan-out", "WITH c AS (SELECT city FROM cities WHERE country = %s) "
        "SELECT count(*) FROM users WHERE city IN (SELECT city FROM c)", ["JP"])
    for a, b in ((present[0], present[0]), (present[1], heavy[0])):
        add("UNION ALL", "SELECT id FROM users WHERE id = %s UNION ALL SELECT user_id FROM orders "
            "WHERE user_id = %s", [a, b])


def _expected_refusals(add, k):
    """Constructs the merge cannot do exactly (refusal expected, or a correct answer)."""
    present, heavy = k.present, k.heavy
    add("window function", "SELECT id, row_number() OVER (ORDER BY score NULLS LAST, id) FROM users "
        "ORDER BY id LIMIT 10", None, True)
    add("window function", "SELECT city, rank() OVER (ORDER BY count(*) DESC, city) FROM users "
        "GROUP BY city ORDER BY city", None, True)
    add("count(DISTINCT)", "SELECT count(DISTINCT city) FROM users")
    add("count(DISTINCT)", "SELECT count(DISTINCT status) FROM orders")
    add("count(DISTINCT) on one shard", "SELECT count(DISTINCT status) FROM orders WHERE user_id = %s", [heavy[0]])
    add("join on non-key", "SELECT count(*) FROM docs d JOIN users u ON u.id = d.author_id")
    add("join on non-key", "SELECT count(*) FROM users u JOIN orders o ON o.order_id = u.id")
    add("join on non-key", "SELECT e.kind, count(*) FROM events e JOIN users u ON u.id = e.user_id "
        "GROUP BY e.kind ORDER BY e.kind", None, True)
    add("join across shards", "SELECT u.id, o.order_id FROM users u CROSS JOIN orders o "
        "WHERE u.id = %s AND o.user_id = %s ORDER BY o.order_id", [present[0], heavy[0]], True)
    add("ordered-set aggregate", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM users")
    add("string_agg/array_agg", "SELECT string_agg(name, ',' ORDER BY id) FROM users WHERE id = ANY(%s)",
        [present])
    add("string_agg/array_agg", "SELECT array_agg(id ORDER BY id) FROM users WHERE city = %s", ["Oslo"])
    add("other aggregate", "SELECT stddev(age), variance(age) FROM users")


def _key_predicates_that_do_not_restrict(add, k):
    """Predicates that mention the key but must not be routed by it."""
    present, heavy, slugs, eids = k.present, k.heavy, k.slugs, k.eids
    # A router that takes any `key = v` it sees as the statement's shard answers these
    # from one shard and misses rows (or joins them to the wrong shard's rows).
    fan = "key predicate that does not restrict"
    for i in present[:2]:
        add(fan, "SELECT id FROM users WHERE id = %s OR city = 'Oslo' ORDER BY id", [i], True)
        add(fan, "SELECT count(*), sum(age) FROM users WHERE NOT (id = %s)", [i])
        add(fan, "SELECT count(*) FROM users WHERE id <> %s", [i])
        add(fan, "SELECT count(*) FROM users WHERE age > (SELECT age FROM users WHERE id = %s)", [i])
        add(fan, "WITH x AS (SELECT city FROM users WHERE id = %s) "
            "SELECT count(*) FROM users WHERE city IN (SELECT city FROM x)", [i])
        add(fan, "SELECT id, age FROM users WHERE id = abs(%s::bigint) ORDER BY id", [-i], True)
        add(fan, "SELECT id FROM users WHERE id::text = %s ORDER BY id", [str(i)], True)
    for uid in heavy[:2]:
        add(fan, "SELECT u.id, o.order_id FROM users u LEFT JOIN orders o ON o.user_id = u.id "
            "AND o.user_id = %s WHERE u.age > 88 ORDER BY u.id, o.order_id NULLS FIRST", [uid], True)
        add(fan, "SELECT id, name FROM users WHERE (id = %s AND flag) OR (id = %s AND NOT flag) "
            "OR age = 18 ORDER BY id", [uid, present[0]], True)
    add(fan, "SELECT * FROM users WHERE id = %s UNION SELECT * FROM users WHERE id = %s",
        [present[0], present[1]])
    add(fan, "SELECT id FROM users WHERE id = %s AND id = %s", [present[0], present[1]])
    add(fan, "SELECT u.id, x.n FROM users u, LATERAL (SELECT count(*) AS n FROM orders o "
        "WHERE o.user_id = u.id) x WHERE u.id = ANY(%s) ORDER BY u.id", [heavy + present[:3]], True)
    add(fan, "SELECT id, (SELECT country FROM cities c WHERE c.city = u.city) FROM users u "
        "WHERE id = %s", [present[1]])
    add("NULL key", "SELECT * FROM users WHERE id = NULL")
    add("NULL key", "SELECT count(*) FROM users WHERE id IS NULL")
    # The key compared with other types: PostgreSQL casts, so must the router.
    conv = "key of another type"
    for i in present[:2] + [-42]:
        add(conv, f"SELECT id, name FROM users WHERE id = {i}.0")
        add(conv, "SELECT id, name FROM users WHERE id = %s", [Decimal(i)])
        add(conv, "SELECT id, name FROM users WHERE id = %s::int", [i])
    i = present[0]
    for form in (f"' {i}'::bigint", f"'+{i}'::bigint", f"'00{i}'::bigint", f"'{i} '", f"{i}::int4", "'-42'::int2",
                 f"'{i}'::numeric"):
        add(conv, f"SELECT id, city FROM users WHERE id = {form}")
    for text in (f" {i}", f"+{i}", f"{i}  "):
        add(conv, "SELECT id, city FROM users WHERE id = %s::bigint", [text])
    h = eids[5].hex
    for form in (h, f"{{{h[:8]}-{h[8:16]}-{h[16:24]}-{h[24:]}}}", "-".join(h[k:k + 4] for k in range(0, 32, 4))):
        add(conv, f"SELECT eid, kind FROM events WHERE eid = '{form}'")
    add(conv, "SELECT slug FROM docs WHERE slug = %s::char(12)", [slugs[8]])
    add(conv, "SELECT slug, words FROM docs WHERE slug = %s::char(12)", [slugs[9] + "  "])
    add(conv, "SELECT eid FROM events WHERE eid::text = %s", [str(eids[0])])
    add("quoted identifiers", f'SELECT "id", "name" FROM "users" WHERE "id" = %s', [present[0]])
    add("quoted identifiers", "SELECT ID, NAME FROM PUBLIC.USERS WHERE ID = %s", [present[1]])
    add("quoted identifiers", 'SELECT "u"."id" FROM users "u" WHERE "u"."id" IN (%s, %s) ORDER BY 1',
        [present[2], present[3]], True)


def _more_merge_shapes(add, k):
    """More merge shapes."""
    rng, ids, present = k.rng, k.ids, k.present
    add("ORDER BY unselected column", "SELECT id FROM users ORDER BY score DESC NULLS LAST, id LIMIT 10",
        None, True)
    add("ORDER BY unselected column", "SELECT name FROM users ORDER BY created, id LIMIT 10 OFFSET 20",
        None, True)
    add("ORDER BY aggregate", "SELECT city, sum(score) FROM users GROUP BY city "
        "ORDER BY sum(score) DESC NULLS LAST, city", None, True)
    add("GROUP BY unselected key", "SELECT count(*), sum(age) FROM users GROUP BY city")
    add("GROUP BY unselected key", "SELECT count(*) FROM orders GROUP BY status ORDER BY status NULLS FIRST",
        None, True)
    add("duplicate column names", "SELECT count(*), count(*) FROM users")
    add("duplicate column names", "SELECT min(age) AS a, max(age) AS a FROM users WHERE city = %s", ["Lyon"])
    add("aggregate of interval", "SELECT sum(qty * interval '1 hour'), max(placed - timestamptz '2020-01-01') "
        "FROM orders")
    add("cast over aggregate", "SELECT avg(score)::numeric(10,2), count(*)::int FROM users")
    add("numeric NaN", "SELECT count(*), sum(rating), avg(rating), min(rating), max(rating) FROM docs")
    add("numeric NaN", "SELECT slug, rating FROM docs ORDER BY rating DESC NULLS LAST, slug LIMIT 12", None, True)
    add("numeric NaN", "SELECT rating, count(*) FROM docs GROUP BY rating ORDER BY rating DESC LIMIT 5",
        None, True)
    # A deterministic collation breaks ties by bytes: unique slugs are totally ordered.
    add("non-C collation", 'SELECT slug FROM docs ORDER BY slug COLLATE "und-x-icu" LIMIT 25', None, True)
    add("non-C collation", 'SELECT id, city FROM users ORDER BY city COLLATE "und-x-icu" DESC NULLS LAST, id '
        "LIMIT 20", None, True)
    add("non-C collation", 'SELECT city, count(*) FROM users GROUP BY city ORDER BY city COLLATE "und-x-icu"',
        None, True)
    add("non-C collation", 'SELECT min(name COLLATE "und-x-icu"), max(city COLLATE "und-x-icu") FROM users')
    # Shards whose own maxima differ, and differ in order between the collation and bytes:
    # ICU puts 'Zürich' after 'tokyo', byte order before.
    zurich = [r[0] for r in k.d.rows["users"] if r[2] == "Zürich"][:1]
    tokyo = [r[0] for r in k.d.rows["users"] if r[2] == "tokyo"][:6]
    add("non-C collation", 'SELECT max(city COLLATE "und-x-icu"), min(city COLLATE "und-x-icu") FROM users '
        "WHERE id = ANY(%s)", [zurich + tokyo])

    add("ORDER BY interval", "SELECT order_id, placed - timestamptz '2020-01-01' AS since FROM orders "
        "ORDER BY 2 DESC NULLS LAST, order_id LIMIT 10", None, True)
    add("ORDER BY timestamp", "SELECT id, ts::timestamp AS t FROM users ORDER BY t DESC NULLS LAST, id LIMIT 10",
        None, True)
    add("ORDER BY money", "SELECT id, score::money AS m FROM users ORDER BY m DESC NULLS LAST, id LIMIT 10",
        None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT id FROM users ORDER BY id DESC LIMIT ALL OFFSET 7996", None, True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT id FROM users ORDER BY id LIMIT %s OFFSET %s", [None, 7993], True)
    add("ORDER BY + LIMIT/OFFSET", "SELECT id, name FROM users ORDER BY name NULLS FIRST, id OFFSET %s",
        [7990], True)
    # The set of rows is determined (ties included), their order among ties is not.
    add("FETCH ... WITH TIES", "SELECT id, age FROM users ORDER BY age DESC NULLS LAST "
        "FETCH FIRST 3 ROWS WITH TIES")
    add("aggregate", "SELECT count(*), sum(score) FROM users WHERE id = ANY(%s)", [rng.sample(ids, 30)])
    add("parameter in the select list", "SELECT %s::text AS label, count(*) FROM users", ["all users"])
    add("parameter in the select list", "SELECT id, %s AS tag FROM users WHERE id = ANY(%s) ORDER BY id",
        ["t", present[:4]], True)
    # Several statements in one simple-protocol query: one answer each, in order.
    multi = "several statements in one query"
    add(multi, f"SELECT count(*) FROM users; SELECT id, name FROM users WHERE id = {present[0]}; "
        "SELECT city, count(*) FROM users GROUP BY city ORDER BY city", None, True, ("simple",))
    add(multi, "SELECT * FROM products ORDER BY product_id; SELECT max(id) FROM users", None, True, ("simple",))


def _no_table(add, k):
    """No table."""
    add("no table", "SELECT 1 AS one, 'x'::text AS t, NULL::int AS n")
    add("no table", "SELECT %s::int + 1 AS x", [41])


SECTIONS = (
    _point_lookups,
    _in_and_any,
    _ranges_and_conjunctions,
    _joins,
    _aggregates,
    _group_by,
    _order_by,
    _distinct,
    _empty_results,
    _replicated,
    _subqueries,
    _expected_refusals,
    _key_predicates_that_do_not_restrict,
    _more_merge_shapes,
    _no_table,
    shapes,
    outer_joins,
)


def reads(d):
    """The read queries, in a fixed order."""
    rng = random.Random(7)
    ids = d.user_ids
    present = rng.sample(ids, 8)
    extremes = [0, -42, 2**31 - 1, 2**31, -(2**31), INT8_MAX, INT8_MIN]
    missing = [123456789, -7, 60000]
    heavy = ids[:3]
    orphan = d.orphan_user_ids[0]
    point_ids = present + extremes + missing
    slugs_special = ["", "Zoë", "東京", "O'Brien", "emoji-🙂", "tab\tslug", "ß", "back\\slash"]
    slugs = slugs_special + rng.sample(d.slugs, 4) + ["no-such-doc"]
    eids = rng.sample(d.eids, 7)
    missing_eid = uuid.UUID(int=12345)
    out = []

    def add(construct, sql, params=None, ordered=False, modes=None):
        out.append(Q(construct, sql, params, ordered, modes))

    k = SimpleNamespace(rng=rng, ids=ids, present=present, extremes=extremes, missing=missing, heavy=heavy,
                        orphan=orphan, point_ids=point_ids, slugs_special=slugs_special, slugs=slugs, eids=eids,
                        missing_eid=missing_eid, d=d)
    for section in SECTIONS:
        section(add, k)
    return out


def writes(d):
    """Single-key writes inside a transaction that is rolled back."""
    rng = random.Random(11)
    ids = rng.sample(d.user_ids, 2)
    heavy = d.user_ids[:2]
    slugs = ["Zoë", rng.choice(d.slugs)]
    eids = rng.sample(d.eids, 2)
    out = []
    for i in ids:
        out.append(Write("UPDATE by key, rolled back", [
            ("UPDATE users SET score = score + 1 WHERE id = %s", [i], False),
            ("SELECT id, score FROM users WHERE id = %s", [i], False),
        ], ("SELECT id, score FROM users WHERE id = %s", [i])))
    for n, uid in enumerate(heavy):
        out.append(Write("INSERT by key, rolled back", [
            ("INSERT INTO orders (user_id, order_id, amount, status) VALUES (%s, %s, %s, %s)",
             [uid, 900000 + n, Decimal("12.34"), "new"], False),
            ("SELECT order_id, amount, status FROM orders WHERE user_id = %s ORDER BY order_id", [uid], True),
        ], ("SELECT count(*), sum(amount) FROM orders WHERE user_id = %s", [uid])))
    for s in slugs:
        out.append(Write("DELETE by key, rolled back", [
            ("DELETE FROM docs WHERE slug = %s", [s], False),
            ("SELECT count(*) FROM docs WHERE slug = %s", [s], False),
        ], ("SELECT * FROM docs WHERE slug = %s", [s])))
    for e in eids:
        out.append(Write("UPDATE RETURNING by key, rolled back", [
            ("UPDATE events SET kind = %s, lvl = lvl + 1 WHERE eid = %s RETURNING eid, kind, lvl",
             ["x", e], False),
        ], ("SELECT kind, lvl FROM events WHERE eid = %s", [e])))
    # A fan-out read after a write in the same transaction must see the write: the
    # router has to read that shard through the transaction's own connection.
    for i in ids:
        out.append(Write("fan-out read after a write, in the transaction", [
            ("UPDATE users SET age = coalesce(age, 0) + 1000 WHERE id = %s", [i], False),
            ("SELECT count(*), sum(age), max(age) FROM users", None, False),
            ("SELECT id, age FROM users ORDER BY age DESC NULLS LAST, id LIMIT 3", None, True),
        ], ("SELECT sum(age) FROM users", None)))
    # Writes to several shards: refused (0A000) until two-phase commit, or done and rolled back.
    out.append(Write("multi-shard write, rolled back", [
        ("INSERT INTO users (id, name) VALUES (%s, 'new a'), (%s, 'new b'), (%s, 'new c'), (%s, 'new d')",
         [70001, 70002, 70003, 70004], False),
        ("SELECT id, name FROM users WHERE id > 70000 ORDER BY id", None, True),
    ], ("SELECT count(*) FROM users", None)))
    out.append(Write("multi-shard write, rolled back", [
        ("UPDATE orders SET qty = qty + 1 WHERE status = %s", ["new"], False),
        ("SELECT sum(qty) FROM orders", None, False),
    ], ("SELECT sum(qty) FROM orders", None)))
    out.append(Write("cursor (DECLARE/FETCH)", [
        ("DECLARE c CURSOR FOR SELECT id, name FROM users ORDER BY id", None, False),
        ("FETCH 5 FROM c", None, True),
        ("FETCH 5 FROM c", None, True),
    ], ("SELECT count(*) FROM users", None)))
    out.append(Write("SELECT ... FOR UPDATE", [
        ("SELECT id, age FROM users WHERE id = %s FOR UPDATE", [ids[0]], False),
        ("SELECT id FROM users WHERE city = 'Oslo' ORDER BY id LIMIT 3 FOR UPDATE", None, True),
    ], ("SELECT count(*) FROM users", None)))
    # A data-modifying CTE on one key; an INSERT without a column list (issue 20).
    for i in ids:
        out.append(Write("writable CTE by key, rolled back", [
            ("WITH d AS (UPDATE users SET score = score + 1 WHERE id = %s RETURNING id, score) "
             "SELECT id, score FROM d", [i], False),
            ("SELECT id, score FROM users WHERE id = %s", [i], False),
        ], ("SELECT id, score FROM users WHERE id = %s", [i])))
    for n, uid in enumerate(heavy):
        out.append(Write("INSERT without a column list, rolled back", [
            ("INSERT INTO orders VALUES (%s, %s, %s, 1, 'new') RETURNING user_id, order_id, amount, qty",
             [uid, 910000 + n, Decimal("1.50")], False),
            ("SELECT order_id, amount FROM orders WHERE user_id = %s ORDER BY order_id", [uid], True),
        ], ("SELECT count(*) FROM orders WHERE user_id = %s", [uid])))
    out.append(Write("INSERT without a column list, rolled back", [
        ("INSERT INTO orders VALUES (%s, 920001, 2.00), (%s, 920002, 3.00)", [heavy[0], heavy[1]], False),
        ("SELECT user_id, order_id, amount FROM orders WHERE order_id > 920000 ORDER BY order_id", None, True),
    ], ("SELECT count(*) FROM orders", None)))
    for uid in heavy:
        out.append(Write("two writes on one key, rolled back", [
            ("DELETE FROM orders WHERE user_id = %s", [uid], False),
            ("DELETE FROM users WHERE id = %s", [uid], False),
            ("SELECT count(*) FROM orders WHERE user_id = %s", [uid], False),
        ], ("SELECT count(*) FROM orders WHERE user_id = %s", [uid])))
    return out
