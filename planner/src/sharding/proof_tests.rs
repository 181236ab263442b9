//! The fan-out proof (`proof`) shape by shape: distributed tables under every kind of
//! sublink, in every position, with replicated, distributed or no outer rows.

use super::resolve::{resolve, Params, Resolved};
use super::tests::schema;
use super::*;

#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// Several shards, merged.
    FanOut,
    /// One shard (the one of this bigint key).
    One(i64),
    /// Any shard (no distributed table).
    Any,
    Refused,
}

fn shard_of(v: i64) -> usize {
    orochi_sharding::shard_for(&orochi_sharding::ShardKey::Int(v), 4).unwrap()
}

/// What the router does with `sql` (no bind parameters).
fn out(sql: &str) -> Route {
    let s = schema();
    let p = plan_uncached(&s, sql);
    if p.refuse.is_some() {
        return Route::Refused;
    }
    match resolve(&p.routing, 4, Params::default()) {
        Err(_) => Route::Refused,
        Ok(Resolved::Any) => Route::Any,
        Ok(Resolved::Shards(v)) if v.len() == 1 => {
            let k = (-1000..1000).find(|&k| shard_of(k) == v[0]).unwrap();
            Route::One(k)
        }
        Ok(Resolved::Shards(_)) if p.merge.is_err() => Route::Refused,
        Ok(Resolved::Shards(_)) => Route::FanOut,
    }
}

/// Two keys that live on different shards.
fn keys_on_two_shards() -> (i64, i64) {
    (0..100)
        .flat_map(|a| (0..100).map(move |b| (a, b)))
        .find(|&(a, b)| shard_of(a) != shard_of(b))
        .unwrap()
}

fn one(v: i64) -> Route {
    let s = shard_of(v);
    Route::One((-1000..1000).find(|&k| shard_of(k) == s).unwrap())
}

#[test]
fn the_issue_examples() {
    assert_eq!(
        out("SELECT EXISTS (SELECT 1 FROM users WHERE age = 99)"),
        Route::Refused
    );
    assert_eq!(
        out("SELECT 1 WHERE EXISTS (SELECT 1 FROM users WHERE age = 3)"),
        Route::Refused
    );
    assert_eq!(
        out("SELECT k FROM cities WHERE k IN (SELECT age FROM users)"),
        Route::Refused
    );
    assert_eq!(
        out("SELECT k FROM cities r WHERE NOT EXISTS (SELECT 1 FROM users t WHERE t.age = r.k + 10)"),
        Route::Refused
    );
    assert_eq!(
        out("SELECT coalesce((SELECT age FROM users WHERE id = 5), 0)"),
        one(5)
    );
    assert_eq!(
        out("SELECT ARRAY(SELECT id FROM users WHERE age = 0 ORDER BY id)"),
        Route::Refused
    );
}

#[test]
fn sublinks_over_replicated_or_no_outer_rows() {
    for sql in [
        "SELECT (SELECT count(*) FROM users)",
        "SELECT name, (SELECT max(age) FROM users u WHERE u.city = c.name) FROM cities c",
        "SELECT * FROM cities c WHERE c.id = ANY (SELECT age FROM users)",
        "SELECT * FROM cities c WHERE c.id NOT IN (SELECT age FROM users)",
        "SELECT * FROM cities c WHERE c.id > ALL (SELECT age FROM users)",
        "SELECT c.name, x.n FROM cities c, LATERAL (SELECT count(*) AS n FROM users u WHERE u.city = c.name) x",
        "SELECT * FROM cities c LEFT JOIN LATERAL (SELECT * FROM users u WHERE u.city = c.name) x ON true",
        "WITH x AS (SELECT id FROM users) SELECT * FROM cities WHERE id IN (SELECT id FROM x)",
        "SELECT * FROM cities c JOIN countries k ON k.id = c.country AND EXISTS (SELECT 1 FROM users u WHERE u.city = c.name)",
        "SELECT country, count(*) FROM cities GROUP BY country HAVING count(*) > (SELECT count(*) FROM users)",
        "SELECT * FROM cities ORDER BY (SELECT count(*) FROM users u WHERE u.city = cities.name)",
        "VALUES ((SELECT count(*) FROM users))",
        "SELECT * FROM cities c LEFT JOIN users u ON u.city = c.name",
        "SELECT * FROM cities c LEFT JOIN users u ON u.city = c.name WHERE u.id IS NULL",
        "SELECT * FROM users u FULL JOIN cities c ON u.city = c.name",
        "SELECT * FROM users u FULL JOIN orders o ON o.user_id = u.id",
        "SELECT count(*) FROM (SELECT DISTINCT city FROM users) s",
        "SELECT * FROM (SELECT city FROM users LIMIT 3) s",
        "SELECT * FROM (SELECT id FROM users UNION SELECT user_id FROM orders) s",
    ] {
        assert_eq!(out(sql), Route::Refused, "{sql}");
    }
}

#[test]
fn pinned_subqueries_go_to_their_shard() {
    for sql in [
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM users WHERE id = 5)",
        "SELECT * FROM cities WHERE id IN (SELECT age FROM users WHERE id = 5)",
        "SELECT * FROM cities c LEFT JOIN users u ON u.id = 5 AND u.city = c.name",
        "SELECT * FROM cities c LEFT JOIN users u ON u.city = c.name WHERE u.id = 5",
        "SELECT ARRAY(SELECT o.order_id FROM orders o JOIN users u ON u.id = o.user_id WHERE u.id = 5)",
        "WITH x AS (SELECT * FROM users WHERE id = 5) SELECT * FROM x a, x b",
        "SELECT * FROM users u WHERE u.id = 5 AND u.age > (SELECT age FROM users WHERE id = 5)",
        "SELECT id FROM users WHERE id = 5 UNION ALL SELECT user_id FROM orders WHERE user_id = 5",
        "SELECT * FROM cities WHERE NOT EXISTS (SELECT 1 FROM orders WHERE user_id = 5 AND qty > 1)",
    ] {
        assert_eq!(out(sql), one(5), "{sql}");
    }
    // Pins on different shards, or a pin that is not a filter, are refused.
    let (a, b) = keys_on_two_shards();
    assert_eq!(
        out(&format!(
            "SELECT (SELECT age FROM users WHERE id = {a}), (SELECT age FROM users WHERE id = {b})"
        )),
        Route::Refused
    );
    assert_eq!(
        out("SELECT * FROM cities c LEFT JOIN users u ON u.city = c.name AND c.id = 5"),
        Route::Refused
    );
    assert_eq!(
        out("SELECT EXISTS (SELECT 1 FROM users WHERE id = 5 OR age = 3)"),
        Route::Refused
    );
}

#[test]
fn co_located_sublinks_fan_out() {
    for sql in [
        "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
        "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
        "SELECT id FROM users WHERE id IN (SELECT user_id FROM orders WHERE qty > 3)",
        "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u",
        "SELECT u.id, ARRAY(SELECT order_id FROM orders o WHERE o.user_id = u.id ORDER BY 1) FROM users u",
        "SELECT u.id, x.n FROM users u, LATERAL (SELECT count(*) AS n FROM orders o WHERE o.user_id = u.id) x",
        "SELECT u.id, x.* FROM users u LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.user_id = u.id LIMIT 2) x ON true",
        "SELECT c.name, x.n FROM cities c, LATERAL (SELECT * FROM users u WHERE u.city = c.name) x",
        "SELECT * FROM users u LEFT JOIN cities c ON c.name = u.city",
        "SELECT * FROM users u JOIN cities c ON c.name = u.city AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
        "WITH x AS (SELECT * FROM users) SELECT count(*) FROM x",
        "SELECT * FROM (SELECT * FROM users u JOIN orders o ON o.user_id = u.id) s",
        "SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE o.user_id IS NULL",
        "SELECT * FROM cities c RIGHT JOIN users u ON u.city = c.name",
        "DELETE FROM users u USING cities c WHERE c.name = u.city",
        "UPDATE users u SET age = (SELECT count(*) FROM orders o WHERE o.user_id = u.id)",
        "DELETE FROM orders WHERE user_id IN (SELECT id FROM users WHERE age > 90)",
    ] {
        assert_eq!(out(sql), Route::FanOut, "{sql}");
    }
}

#[test]
fn uncorrelated_or_non_filtering_keys_are_refused() {
    for sql in [
        "SELECT u.id, (SELECT count(*) FROM orders) FROM users u",
        "SELECT * FROM users u WHERE u.age > (SELECT avg(age) FROM users)",
        // The equality is not a filter of either table: it pairs rows across shards.
        "SELECT u.id, o.order_id FROM users u, orders o WHERE NOT EXISTS (SELECT 1 WHERE o.user_id = u.id)",
        "SELECT u.id, (SELECT 1 WHERE o.user_id = u.id) FROM users u, orders o",
        "SELECT id FROM users WHERE id NOT IN (SELECT user_id FROM orders)",
        "SELECT id FROM users WHERE id IN (SELECT user_id FROM orders LIMIT 5)",
        "SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id OR o.qty = 1)",
        "WITH x AS (SELECT * FROM users) SELECT * FROM x a JOIN x b ON a.id = b.id",
        "SELECT * FROM users u, docs d WHERE d.slug = u.name",
        "UPDATE users SET age = (SELECT count(*) FROM orders)",
        "DELETE FROM users WHERE age > (SELECT avg(qty) FROM orders)",
        "INSERT INTO users (id, age) VALUES (5, (SELECT count(*) FROM orders WHERE user_id = 5))",
        "INSERT INTO users (id, age) VALUES (5, 1) RETURNING (SELECT count(*) FROM orders)",
    ] {
        assert_eq!(out(sql), Route::Refused, "{sql}");
    }
    let s = schema();
    let p = plan_uncached(&s, "SELECT EXISTS (SELECT 1 FROM users WHERE age = 99)");
    let m = p.merge.unwrap_err();
    assert!(m.contains("\"users\"") && m.contains("subquery"), "{m}");
}

#[test]
fn tables_and_writes_still_route() {
    assert_eq!(out("SELECT 1"), Route::Any);
    assert_eq!(out("SELECT (SELECT max(id) FROM cities)"), Route::Any);
    assert_eq!(out("SELECT * FROM users WHERE id = 5"), one(5));
    assert_eq!(
        out("SELECT * FROM users u WHERE u.id = 5 AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)"),
        one(5)
    );
    assert_eq!(out("SELECT count(*) FROM users"), Route::FanOut);
    assert_eq!(
        out("UPDATE users SET age = 1 WHERE id IN (SELECT user_id FROM orders WHERE user_id = 5)"),
        one(5)
    );
}

#[test]
fn writable_ctes_run_on_the_one_shard_their_keys_name() {
    let s = schema();
    for sql in [
        "WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) SELECT count(*) FROM d",
        "WITH u AS (UPDATE users SET age = 1 WHERE id = 5 RETURNING id) SELECT * FROM u",
        "WITH i AS (INSERT INTO orders (user_id, qty) VALUES (5, 1), ($1, 2) RETURNING *) SELECT * FROM i",
        "WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) UPDATE users SET age = 0 WHERE id = 5",
        "WITH d AS (DELETE FROM orders o USING users u WHERE u.id = o.user_id AND u.id = 5 RETURNING o.*) SELECT * FROM d",
        "WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) SELECT * FROM d JOIN users u ON u.id = d.user_id WHERE u.id = 5",
    ] {
        let p = plan_uncached(&s, sql);
        assert_eq!(p.kind, Kind::Write, "{sql}");
        if sql.contains("$1") {
            continue; // the parameter decides at Bind
        }
        assert_eq!(out(sql), one(5), "{sql}");
    }
    let (a, b) = keys_on_two_shards();
    for sql in [
        "WITH d AS (DELETE FROM orders WHERE qty = 1 RETURNING *) SELECT count(*) FROM d".to_string(),
        "WITH d AS (DELETE FROM orders WHERE user_id = 5 RETURNING *) SELECT * FROM users".into(),
        "WITH d AS (DELETE FROM orders WHERE user_id = 5 OR qty = 1 RETURNING *) SELECT 1".into(),
        format!("WITH d AS (DELETE FROM orders WHERE user_id IN ({a}, {b}) RETURNING *) SELECT 1"),
        format!("WITH d AS (DELETE FROM orders WHERE user_id = {a} RETURNING *) SELECT * FROM users WHERE id = {b}"),
        "WITH d AS (UPDATE cities SET x = 1 RETURNING *) SELECT * FROM users WHERE id = 5".into(),
        "WITH i AS (INSERT INTO orders SELECT * FROM orders WHERE user_id = 5 RETURNING *) SELECT 1".into(),
        "WITH i AS (INSERT INTO orders (user_id) VALUES (5) RETURNING *) INSERT INTO orders (user_id) VALUES (5)".into(),
    ] {
        assert_eq!(out(&sql), Route::Refused, "{sql}");
    }
}

#[test]
fn cte_names_are_scoped_like_postgresql_scopes_them() {
    // A CTE named like a distributed table hides it only where it is visible.
    assert_eq!(
        out("SELECT * FROM (WITH users AS (SELECT 1 AS id) SELECT * FROM users) a, users b"),
        Route::FanOut
    );
    assert_eq!(
        out("SELECT * FROM (WITH users AS (SELECT 1 AS id) SELECT * FROM users) a, cities b"),
        Route::Any
    );
    // Inside a non-recursive CTE its own name is the table.
    assert_eq!(
        out("WITH users AS (SELECT * FROM users WHERE id = 5) SELECT * FROM users"),
        one(5)
    );
    assert_eq!(
        out("WITH users AS (SELECT * FROM users WHERE age = 5) SELECT count(*) FROM users"),
        Route::FanOut
    );
    assert_eq!(
        out(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
             SELECT * FROM users u JOIN r ON r.n = u.age"
        ),
        Route::FanOut
    );
}

#[test]
fn unions_of_fanouts_are_concatenated() {
    for sql in [
        "SELECT id FROM users UNION ALL SELECT user_id FROM orders",
        "SELECT id, 'u' FROM users WHERE age > 3 UNION ALL SELECT u.id, 'o' FROM users u JOIN orders o ON o.user_id = u.id ORDER BY 2, 1 LIMIT 5",
        "SELECT id FROM users UNION SELECT user_id FROM orders UNION SELECT id FROM users WHERE age = 3",
        "(SELECT id FROM users UNION ALL SELECT user_id FROM orders) UNION ALL SELECT id FROM users",
        "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) UNION ALL SELECT user_id FROM orders",
        "WITH a AS (SELECT id FROM users) SELECT id FROM a UNION ALL SELECT user_id FROM orders",
    ] {
        assert_eq!(out(sql), Route::FanOut, "{sql}");
    }
    // Every branch pinned: the shards of the keys (one, when they share it).
    assert_eq!(
        out("SELECT id FROM users WHERE id = 5 UNION ALL SELECT user_id FROM orders WHERE user_id IN (5)"),
        one(5)
    );
    let (a, b) = keys_on_two_shards();
    assert_eq!(
        out(&format!(
            "SELECT id FROM users WHERE id = {a} UNION ALL SELECT user_id FROM orders WHERE user_id = {b}"
        )),
        Route::FanOut
    );
    // A branch whose rows are not made on one shard each (replicated, aggregated, limited,
    // unjoined), a mixed tree, INTERSECT/EXCEPT: not a concatenation (gathered instead).
    for sql in [
        "SELECT id FROM users UNION ALL SELECT id FROM cities",
        "SELECT id FROM users UNION ALL SELECT 1",
        "SELECT count(*) FROM users UNION ALL SELECT count(*) FROM orders",
        "(SELECT id FROM users ORDER BY id LIMIT 3) UNION ALL SELECT user_id FROM orders",
        "SELECT DISTINCT city FROM users UNION ALL SELECT status FROM orders",
        "SELECT u.id FROM users u, orders o UNION ALL SELECT id FROM users",
        "SELECT id FROM users UNION SELECT user_id FROM orders UNION ALL SELECT id FROM users",
        "SELECT id FROM users INTERSECT SELECT user_id FROM orders",
        "SELECT id FROM users EXCEPT SELECT user_id FROM orders",
        "WITH a AS (SELECT id FROM users) SELECT id FROM a UNION ALL SELECT id FROM a",
        "SELECT id FROM users UNION ALL VALUES (1)",
    ] {
        assert_eq!(out(sql), Route::Refused, "{sql}");
    }
}

#[test]
fn copy_of_a_query_is_only_concatenated() {
    for sql in [
        "COPY (SELECT id FROM users WHERE age > 3) TO STDOUT",
        "COPY (SELECT id FROM users UNION ALL SELECT user_id FROM orders) TO STDOUT",
    ] {
        assert_eq!(out(sql), Route::FanOut, "{sql}");
    }
    for sql in [
        "COPY (SELECT count(*) FROM users) TO STDOUT",
        "COPY (SELECT id, row_number() OVER () FROM users) TO STDOUT",
        "COPY (SELECT id FROM users UNION SELECT user_id FROM orders) TO STDOUT",
        "COPY (SELECT id FROM users UNION ALL SELECT user_id FROM orders LIMIT 3) TO STDOUT",
        "COPY (SELECT id FROM users OFFSET 3) TO STDOUT",
    ] {
        assert_eq!(out(sql), Route::Refused, "{sql}");
    }
}
