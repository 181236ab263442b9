"""Generated subquery shapes: every sublink kind in every position, over every mix of
distributed, replicated and no outer rows (issue 20, item 1).

Why a generator: a router that answers `SELECT EXISTS (SELECT 1 FROM t ...)` shard by
shard returns one row per shard. Such bugs hide in the combinations, not in the
constructs: the same EXISTS is right under a distributed outer table joined on the key
and wrong under a replicated one. So the shapes are the product of

    kind      EXISTS, NOT EXISTS, IN, NOT IN, = ANY, scalar, ARRAY(), LATERAL, CTE
    position  select list, WHERE, HAVING, JOIN ... ON, FROM (LATERAL and CTE)
    inner     orders (distributed by user_id), products (replicated)
    outer     users (distributed by id), products (replicated), no table
    corr      not correlated, correlated on the shard key, correlated on another column
    keys      unrestricted, or every distributed table restricted to one key (a parameter)

minus the combinations SQL cannot write (a correlation needs an outer table, HAVING is
only written uncorrelated, a CTE cannot be correlated). Every shape must come back
exactly as PostgreSQL answers it, or be refused with 0A000.
"""

import itertools

KINDS = ("EXISTS", "NOT EXISTS", "IN", "NOT IN", "= ANY", "scalar", "ARRAY")
POSITIONS = ("select list", "WHERE", "HAVING", "JOIN ON")

# Outer rows: FROM text, a filter keeping the row count small, columns, GROUP BY column,
# a replicated table to join, the key restriction.
OUTER = {
    "distributed": dict(frm="users u", filt="mod(u.id, 97) = 0", cols="u.id, u.age", group="u.city",
                        join="JOIN cities j ON j.city = u.city", key="u.id = %s"),
    "replicated": dict(frm="products p", filt="p.product_id <= 12", cols="p.product_id, p.name",
                       group="p.category", join="JOIN cities j ON j.population > 3000000", key=None),
    "none": None,
}
INNER = {
    "distributed": dict(frm="orders o", key="o.user_id = %s", agg="count(*)", filt="o.qty > 7"),
    "replicated": dict(frm="products i", key=None, agg="count(*)", filt="i.price > 100"),
}
# (outer, inner) -> (tested expression, subquery column, {corr: predicate})
PAIRS = {
    ("distributed", "distributed"): ("u.id", "o.user_id",
                                     {"key": "o.user_id = u.id", "other column": "o.qty = mod(u.age, 10)"}),
    ("distributed", "replicated"): ("u.age", "i.product_id", {"other column": "i.product_id = u.age"}),
    ("replicated", "distributed"): ("p.product_id", "o.product_id", {"other column": "o.product_id = p.product_id"}),
    ("replicated", "replicated"): ("p.product_id", "i.product_id + 1",
                                   {"other column": "i.product_id = p.product_id + 1"}),
    ("none", "distributed"): ("7", "o.product_id", {}),
    ("none", "replicated"): ("7", "i.product_id", {}),
}


def _sublink(kind, test, col, frm, where):
    sub = f"FROM {frm} WHERE {where}"
    return {
        "EXISTS": f"EXISTS (SELECT 1 {sub})",
        "NOT EXISTS": f"NOT EXISTS (SELECT 1 {sub})",
        "IN": f"{test} IN (SELECT {col} {sub})",
        "NOT IN": f"{test} NOT IN (SELECT {col} {sub})",
        "= ANY": f"{test} = ANY (SELECT {col} {sub})",
        "scalar": f"(SELECT count(*) {sub})",
        "ARRAY": f"ARRAY(SELECT {col} {sub} ORDER BY 1 LIMIT 5)",
    }[kind]


def _as_bool(kind, expr):
    if kind == "scalar":
        return f"{expr} > 2"
    if kind == "ARRAY":
        return f"cardinality({expr}) > 1"
    return expr


def _shape(kind, pos, outer, o, expr):
    """The statement with sublink `expr` of `kind` at `pos`; None if SQL cannot say it."""
    b = _as_bool(kind, expr)
    if o is None:
        return {
            "select list": f"SELECT {expr} AS x",
            "WHERE": f"SELECT 1 AS one WHERE {b}",
            "HAVING": f"SELECT 1 AS one HAVING {b}",
            "JOIN ON": f"SELECT j.city FROM cities j JOIN products q ON q.product_id = 3 AND {b}",
        }[pos]
    where = "WHERE " + o["filt"]
    return {
        "select list": f"SELECT {o['cols']}, {expr} AS x FROM {o['frm']} {where}",
        "WHERE": f"SELECT {o['cols']} FROM {o['frm']} {where} AND {b}",
        "HAVING": f"SELECT {o['group']} AS g, count(*) FROM {o['frm']} {where} GROUP BY 1 HAVING {b}",
        "JOIN ON": f"SELECT {o['cols']}, j.country FROM {o['frm']} {o['join']} AND {b} {where}",
    }[pos]


def _variants():
    """(outer, inner, corr, keyed) combinations."""
    for (outer, inner), (_, _, corrs) in PAIRS.items():
        for corr in ("none",) + tuple(corrs):
            dist = outer == "distributed" or inner == "distributed"
            for keyed in ((False, True) if dist else (False,)):
                yield outer, inner, corr, keyed


def shapes(add, k):
    """Adds every generated shape; `k.heavy[0]` is a user with many orders."""
    key = k.heavy[0]
    for outer, inner, corr, keyed in _variants():
        test, col, corrs = PAIRS[(outer, inner)]
        i = INNER[inner]
        o = None if OUTER[outer] is None else dict(OUTER[outer])
        conds = [i["filt"]]
        if corr != "none":
            conds.append(corrs[corr])
        if keyed and i["key"]:
            conds.append(i["key"])
        inner_where = " AND ".join(conds)
        if keyed and o is not None and o["key"]:
            o["filt"] = o["key"]  # the outer table restricted to the key too
        label = f"{inner} inner, {outer} outer, corr {corr}{', keyed' if keyed else ''}"

        def put(construct, sql):
            # Every parameter is the one key value.
            n = sql.count("%s")
            add(f"generated {construct}: {label}", sql, [key] * n if n else None)

        for kind, pos in itertools.product(KINDS, POSITIONS):
            if pos == "HAVING" and corr != "none":
                continue
            # HAVING sees groups: the tested expression is an aggregate of the outer rows.
            t = f"min({test})" if pos == "HAVING" and o is not None else test
            expr = _sublink(kind, t, col, i["frm"], inner_where)
            sql = _shape(kind, pos, outer, o, expr)
            put(f"{kind} in {pos}", sql)
        # LATERAL: an aggregate per outer row, and rows per outer row (LEFT JOIN).
        lat_agg = f"LATERAL (SELECT {i['agg']} AS n FROM {i['frm']} WHERE {inner_where}) x"
        lat_rows = f"LATERAL (SELECT {col} AS v FROM {i['frm']} WHERE {inner_where} ORDER BY 1 LIMIT 2) x"
        if o is None:
            put("LATERAL in FROM", f"SELECT x.n FROM {lat_agg}")
            put("LATERAL rows in FROM", f"SELECT x.v FROM {lat_rows}")
        else:
            where = "WHERE " + o["filt"]
            put("LATERAL in FROM", f"SELECT {o['cols']}, x.n FROM {o['frm']}, {lat_agg} {where}")
            put("LATERAL rows in FROM",
                f"SELECT {o['cols']}, x.v FROM {o['frm']} LEFT JOIN {lat_rows} ON true {where}")
        # CTE: never correlated; used in the select list, WHERE, FROM and HAVING.
        if corr == "none":
            cte = f"WITH s AS (SELECT {col} AS v FROM {i['frm']} WHERE {inner_where}) "
            if o is None:
                put("CTE in FROM", cte + "SELECT v FROM s")
                put("CTE in select list", cte + "SELECT (SELECT count(*) FROM s) AS n")
                put("CTE in WHERE", cte + "SELECT 1 AS one WHERE 7 IN (SELECT v FROM s)")
            else:
                where = "WHERE " + o["filt"]
                put("CTE in FROM", cte + f"SELECT {o['cols']}, s.v FROM {o['frm']} JOIN s ON s.v = {test} {where}")
                put("CTE in select list", cte + f"SELECT {o['cols']}, (SELECT count(*) FROM s) AS n "
                    f"FROM {o['frm']} {where}")
                put("CTE in WHERE", cte + f"SELECT {o['cols']} FROM {o['frm']} {where} AND {test} IN "
                    "(SELECT v FROM s)")
                put("CTE in HAVING", cte + f"SELECT {o['group']} AS g, count(*) FROM {o['frm']} {where} "
                    "GROUP BY 1 HAVING count(*) > (SELECT count(*) FROM s)")


def outer_joins(add, k):
    """Distributed tables on the NULL-extended side of an outer join."""
    key = k.heavy[0]
    c = "generated outer join"
    add(c, "SELECT j.city, u.id FROM cities j LEFT JOIN users u ON u.city = j.city AND u.age = 18")
    add(c, "SELECT j.city FROM cities j LEFT JOIN users u ON u.city = j.city WHERE u.id IS NULL")
    add(c, "SELECT j.city, u.id FROM cities j LEFT JOIN users u ON u.city = j.city WHERE u.id = %s", [key])
    add(c, "SELECT j.city, u.id FROM cities j LEFT JOIN users u ON u.city = j.city AND u.id = %s", [key])
    add(c, "SELECT u.id, j.country FROM users u LEFT JOIN cities j ON j.city = u.city WHERE mod(u.id, 97) = 0")
    add(c, "SELECT u.id, j.country FROM cities j RIGHT JOIN users u ON j.city = u.city WHERE mod(u.id, 97) = 0")
    add(c, "SELECT j.city, u.id FROM users u FULL JOIN cities j ON j.city = u.city AND u.age = 18 "
        "WHERE u.id IS NULL OR mod(u.id, 97) = 0")
    add(c, "SELECT u.id, o.order_id FROM users u LEFT JOIN orders o ON o.user_id = u.id "
        "WHERE mod(u.id, 97) = 0 AND o.user_id IS NULL")
    add(c, "SELECT count(*) FROM users u FULL JOIN orders o ON o.user_id = u.id")
    add(c, "SELECT u.id, o.order_id FROM users u, orders o WHERE mod(u.id, 97) = 0 AND o.qty = 9 "
        "AND NOT EXISTS (SELECT 1 WHERE o.user_id = u.id)")
