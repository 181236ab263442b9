//! Planner tests: routes and merge plans of typical statements.

use super::resolve::{resolve, Params, Resolved};
use super::*;
use orochi_config::KeyType;

/// Four shards; `users` and `orders` by a bigint key, `docs` by text (shared with
/// `proof_tests`).
pub(super) fn schema() -> ShardingSchema {
    let t = |name: &str, column: &str, ty| DistributedTable {
        name: name.into(),
        schema: None,
        column: column.into(),
        ty,
    };
    ShardingSchema::new(
        4,
        vec![
            t("users", "id", KeyType::BigInt),
            t("orders", "user_id", KeyType::BigInt),
            t("docs", "slug", KeyType::Text),
        ],
    )
}

fn shards(sql: &str) -> Resolved {
    let s = schema();
    let p = plan(&s, sql);
    assert!(p.refuse.is_none(), "{sql}: refused {:?}", p.refuse);
    resolve(&p.routing, 4, Params::default()).unwrap()
}

fn one(v: i64) -> Resolved {
    Resolved::Shards(vec![orochi_sharding::shard_for(
        &orochi_sharding::ShardKey::Int(v),
        4,
    )
    .unwrap()])
}

fn all() -> Resolved {
    Resolved::Shards(vec![0, 1, 2, 3])
}

#[test]
fn keys_in_every_form() {
    assert_eq!(shards("SELECT * FROM users WHERE id = 42"), one(42));
    assert_eq!(
        shards("SELECT * FROM users u WHERE u.id = '42'::bigint AND name = 'x'"),
        one(42)
    );
    assert_eq!(
        shards("SELECT * FROM public.users AS u WHERE 42 = u.id"),
        one(42)
    );
    assert_eq!(shards("UPDATE users SET name = 'a' WHERE id = 42"), one(42));
    assert_eq!(shards("DELETE FROM users WHERE id = 42"), one(42));
    assert_eq!(
        shards("INSERT INTO users (name, id) VALUES ('a', 42)"),
        one(42)
    );
    assert_eq!(
        shards("SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = 42"),
        one(42)
    );
    assert_eq!(
        shards("SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.user_id = 42)"),
        one(42)
    );
    assert_eq!(shards("SELECT * FROM users WHERE id = 1 OR id = 42"), all());
    assert_eq!(shards("SELECT * FROM users WHERE NOT (id = 42)"), all());
    assert_eq!(shards("SELECT * FROM cities"), Resolved::Any);
    assert_eq!(shards("SELECT 1"), Resolved::Any);
    match shards("SELECT * FROM users WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8)") {
        Resolved::Shards(v) => assert!(v.len() > 1),
        r => panic!("{r:?}"),
    }
}

#[test]
fn left_join_constants_do_not_restrict() {
    assert_eq!(
        shards("SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id AND o.user_id = 42"),
        all()
    );
    // An unqualified name resolves in its own query level only.
    assert_eq!(
        shards("SELECT * FROM users u WHERE EXISTS (SELECT 1 FROM cities c WHERE id = 5)"),
        all()
    );
}

#[test]
fn parameters_at_bind() {
    let s = schema();
    let p = plan(&s, "SELECT * FROM users WHERE id = $1::bigint");
    let v = [Some(bytes::Bytes::from_static(b"42"))];
    let r = resolve(
        &p.routing,
        4,
        Params {
            values: &v,
            formats: &[],
        },
    )
    .unwrap();
    assert_eq!(r, one(42));
    let b = [Some(bytes::Bytes::copy_from_slice(&42i64.to_be_bytes()))];
    let r = resolve(
        &p.routing,
        4,
        Params {
            values: &b,
            formats: &[1],
        },
    )
    .unwrap();
    assert_eq!(r, one(42));
    let p = plan(&s, "SELECT * FROM users WHERE id = ANY($1)");
    let a = [Some(bytes::Bytes::from_static(b"{42}"))];
    assert_eq!(
        resolve(
            &p.routing,
            4,
            Params {
                values: &a,
                formats: &[]
            }
        )
        .unwrap(),
        one(42)
    );
}

#[test]
fn refusals_name_the_construct() {
    let s = schema();
    let p = plan(&s, "SELECT count(DISTINCT name) FROM users");
    assert!(p.merge.as_ref().unwrap_err().contains("DISTINCT"));
    let p = plan(&s, "SELECT id, rank() OVER (ORDER BY id) FROM users");
    assert!(p.merge.as_ref().unwrap_err().contains("window"));
    let p = plan(&s, "SELECT * FROM users u JOIN orders o ON o.id = u.id");
    assert!(p.merge.is_err());
    let p = plan(&s, "UPDATE users SET id = 5 WHERE id = 4");
    assert!(p.refuse.is_some());
    let p = plan(
        &s,
        "SELECT count(*) FROM (SELECT DISTINCT name FROM users) s",
    );
    assert!(p.merge.is_err());
}

#[test]
fn merge_plans() {
    let s = schema();
    let p = plan(
        &s,
        "SELECT name, avg(score) FROM users GROUP BY name ORDER BY 2 DESC LIMIT 5 OFFSET 2",
    );
    let m = p.merge.clone().unwrap();
    assert_eq!(m.hidden, 1);
    assert_eq!(m.limit, Some(Count::Const(5)));
    let sql = p.fanout_sql.clone().unwrap();
    assert!(
        sql.contains("sum(score)") && sql.contains("count(score)") && !sql.contains("LIMIT"),
        "{sql}"
    );
    let p = plan(
        &s,
        "SELECT id, name FROM users ORDER BY name LIMIT 10 OFFSET 5",
    );
    assert!(
        p.fanout_sql.as_ref().unwrap().contains("LIMIT 15"),
        "{:?}",
        p.fanout_sql
    );
    let m = p.merge.clone().unwrap();
    assert_eq!(m.order[0].col, Col::At(1));
    let p = plan(&s, "SELECT name FROM users ORDER BY id DESC");
    let m = p.merge.clone().unwrap();
    assert_eq!(m.order[0].col, Col::Hidden(0));
    assert!(m.order[0].desc && m.order[0].nulls_first);
}

#[test]
fn casts_that_change_the_value_are_not_hashed() {
    // char(n) compares without trailing blanks: the padded text is not the key.
    assert_eq!(
        shards("SELECT * FROM docs WHERE slug = 'a  '::char(5)"),
        all()
    );
    assert_eq!(
        shards("SELECT * FROM users WHERE id = '42'::numeric"),
        all()
    );
    assert_eq!(shards("SELECT * FROM users WHERE id = $1::bigint"), all()); // no params: every shard
    assert_eq!(shards("SELECT * FROM users WHERE id = '42'::int8"), one(42));
}

#[test]
fn non_c_collations_are_not_merged() {
    let s = schema();
    let p = plan(
        &s,
        "SELECT name FROM users ORDER BY name COLLATE \"en-x-icu\" LIMIT 3",
    );
    assert!(p.merge.as_ref().unwrap_err().contains("COLLATE"));
    let p = plan(&s, "SELECT max(name COLLATE \"en-x-icu\") FROM users");
    assert!(p.merge.is_err());
    let p = plan(
        &s,
        "SELECT name FROM users ORDER BY name COLLATE \"C\" LIMIT 3",
    );
    assert!(p.merge.is_ok());
}

#[test]
fn cursors_follow_their_query() {
    let s = schema();
    assert_eq!(
        shards("DECLARE c CURSOR FOR SELECT * FROM users WHERE id = 42"),
        one(42)
    );
    let p = plan(&s, "DECLARE c CURSOR FOR SELECT id FROM users ORDER BY id");
    assert_eq!(p.routing, Routing::All);
    assert!(p.merge.as_ref().unwrap_err().contains("cursor"));
    // Anything else naming a distributed table in a shape the walk does not know is refused.
    let p = plan(&s, "PREPARE q AS SELECT * FROM users");
    assert!(p.refuse.is_some() || p.kind == Kind::Session);
}

#[test]
fn writes_of_replicated_tables_go_everywhere() {
    let s = schema();
    for sql in [
        "INSERT INTO countries VALUES (1, 'x')",
        "UPDATE countries SET name = 'y' WHERE id = 1",
        "DELETE FROM countries WHERE id = 1 RETURNING *",
        "COPY countries FROM STDIN",
    ] {
        let p = plan(&s, sql);
        assert!(p.refuse.is_none(), "{sql}: {:?}", p.refuse);
        assert!(p.replicated, "{sql}");
        assert_eq!(
            resolve(&p.routing, 4, Params::default()).unwrap(),
            all(),
            "{sql}"
        );
    }
    // Reads of a replicated table still go to one shard.
    assert_eq!(
        shards("SELECT * FROM countries WHERE id = 1"),
        Resolved::Any
    );
    // A replicated write fed by distributed rows would differ per shard.
    for sql in [
        "UPDATE countries c SET name = u.name FROM users u WHERE u.id = c.id AND u.id = 5",
        "DELETE FROM countries WHERE id IN (SELECT id FROM users WHERE id = 5)",
        "INSERT INTO countries SELECT id, name FROM users",
    ] {
        assert!(plan(&s, sql).refuse.is_some(), "{sql}");
    }
}

#[test]
fn copy_from_stdin_options() {
    let s = schema();
    let spec = |sql: &str| {
        let p = plan(&s, sql);
        assert!(p.refuse.is_none(), "{sql}: {:?}", p.refuse);
        assert_eq!(p.kind, Kind::Write, "{sql}");
        p.copy_in
            .clone()
            .ok_or_else(|| p.merge.clone().unwrap_err())
    };
    let c = spec("COPY users FROM STDIN").unwrap();
    assert_eq!(
        (c.format, c.delimiter, c.null.as_slice(), c.header),
        (CopyFormat::Text, b'\t', &b"\\N"[..], false)
    );
    let k = c.key.unwrap();
    assert_eq!(
        k.at,
        KeyAt::Column {
            table: "users".into()
        }
    );
    assert_eq!((k.ty, k.column.as_str()), (KeyType::BigInt, "id"));
    // The old syntax and a column list.
    let c = spec("COPY public.users (name, id) FROM STDIN WITH CSV HEADER").unwrap();
    assert_eq!(
        (c.format, c.delimiter, c.quote, c.escape, c.header),
        (CopyFormat::Csv, b',', b'"', b'"', true)
    );
    assert_eq!(c.key.unwrap().at, KeyAt::Field(1));
    let c = spec(
        "COPY docs FROM STDIN (FORMAT csv, DELIMITER ';', NULL 'NA', QUOTE '''', ESCAPE '\\', FORCE_NULL (slug), HEADER match)",
    )
    .unwrap();
    assert_eq!(
        (c.delimiter, c.null.as_slice(), c.quote, c.escape, c.header),
        (b';', &b"NA"[..], b'\'', b'\\', true)
    );
    let k = c.key.unwrap();
    assert!(k.force_null && !k.force_not_null);
    assert_eq!(
        k.at,
        KeyAt::Column {
            table: "docs".into()
        }
    );
    assert!(
        spec("COPY docs FROM STDIN (FORMAT csv, FORCE_NOT_NULL *)")
            .unwrap()
            .key
            .unwrap()
            .force_not_null
    );
    assert_eq!(
        spec("COPY users FROM STDIN (FORMAT binary)")
            .unwrap()
            .format,
        CopyFormat::Binary
    );
    // What the router cannot split is refused when it needs several shards.
    for sql in [
        "COPY users (name) FROM STDIN",
        "COPY users FROM '/tmp/users.txt'",
        "COPY users FROM PROGRAM 'cat x'",
        "COPY users FROM STDIN (ENCODING 'LATIN1')",
        "COPY users FROM STDIN (FORMAT csv, DEFAULT 'x')",
        "COPY users FROM STDIN (DELIMITER '||')",
    ] {
        assert!(spec(sql).is_err(), "{sql}");
    }
    assert!(spec("COPY users FROM STDIN (ENCODING 'utf-8')").is_ok());
}

#[test]
fn literal_routes_agree_with_full_plans() {
    let s = schema();
    let mut fast_hits = 0;
    for v in [
        "0",
        "1",
        "42",
        "-7",
        "9223372036854775807",
        "-9223372036854775808",
        "'42'",
        "' 5 '",
        "1.0",
        "99999999999999999999",
        "'x'",
        "'-0'",
    ] {
        for t in [
            "SELECT * FROM users WHERE id = {v}",
            "SELECT name FROM users u WHERE u.id = {v} AND name <> 'a' LIMIT 3",
            "SELECT * FROM users WHERE id IN ({v}, {v})",
            "SELECT * FROM users WHERE id = {v}::bigint ORDER BY 1",
            "SELECT * FROM users WHERE id = {v} OR id = 3",
            "SELECT * FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {v}",
            "SELECT * FROM users WHERE id = {v} - 1",
            "UPDATE users SET name = 'n' WHERE id = {v}",
            "UPDATE users SET id = 5 WHERE id = {v}",
            "DELETE FROM users WHERE id = {v} RETURNING id",
            "INSERT INTO users (id, name) VALUES ({v}, 'a')",
            "INSERT INTO users (id, name) VALUES ({v}, 'a'), (12, 'b')",
            "INSERT INTO users (name) VALUES ({v})",
            "SELECT * FROM docs WHERE slug = {v}",
            "SELECT * FROM countries WHERE id = {v}",
            "UPDATE countries SET name = 'x' WHERE id = {v}",
            "SELECT count(*) FROM users WHERE id = {v}",
            "SELECT * FROM users WHERE id = {v}; SELECT 1",
        ] {
            let sql = t.replace("{v}", v);
            let fast = super::literals::one_shard(&s, &sql);
            let full = plan_uncached(&s, &sql);
            let full_route = resolve(&full.routing, 4, Params::default());
            if let Some((shard, kind)) = fast {
                fast_hits += 1;
                assert!(full.refuse.is_none(), "{sql}: fast {shard}, full refused");
                assert_eq!(full_route, Ok(Resolved::Shards(vec![shard])), "{sql}");
                assert_eq!(full.kind, kind, "{sql}");
            }
        }
    }
    assert!(fast_hits > 60, "{fast_hits}");
    // The usual point lookup takes the fast path.
    assert_eq!(
        super::literals::one_shard(&s, "SELECT * FROM users WHERE id = 42").map(|x| x.0),
        Some(match one(42) {
            Resolved::Shards(v) => v[0],
            _ => unreachable!(),
        })
    );
    // A typed literal (`date '...'` becomes `date $2`) still routes by the key alone.
    let sql = "SELECT * FROM users WHERE id = 5 AND d = date '2020-01-01'";
    if let Some((shard, _)) = super::literals::one_shard(&s, sql) {
        assert_eq!(
            resolve(&plan_uncached(&s, sql).routing, 4, Params::default()),
            Ok(Resolved::Shards(vec![shard]))
        );
    }
}

#[test]
fn insert_without_column_list_asks_for_the_column_order() {
    let s = schema();
    let sql =
        "INSERT INTO users VALUES (42, 'a'), (7, 'b') ON CONFLICT (id) DO NOTHING RETURNING id";
    let p = plan(&s, sql);
    assert_eq!(p.needs_columns.as_deref(), Some("\"users\""));
    assert!(super::literals::one_shard(&s, "INSERT INTO users VALUES (42, 'a')").is_none());
    let cols: Vec<String> = ["name", "id", "extra"].map(String::from).to_vec();
    let sql = "INSERT INTO public.users VALUES ('a', 42), ('b', $1)";
    assert_eq!(
        plan(&s, sql).needs_columns.as_deref(),
        Some("\"public\".\"users\"")
    );
    let p = plan_with_columns(&s, sql, &cols);
    assert!(p.refuse.is_none() && p.needs_columns.is_none());
    assert_eq!(
        p.insert_rows,
        Some(vec![KeyValue::Text("42".into()), KeyValue::Param(1)])
    );
    // Only the columns the rows write are named when the INSERT is split.
    assert_eq!(p.insert_columns, Some(vec!["name".into(), "id".into()]));
    // Another order is another plan.
    let other: Vec<String> = ["id", "name"].map(String::from).to_vec();
    let p = plan_with_columns(&s, "INSERT INTO users VALUES (42, 'a')", &other);
    assert_eq!(resolve(&p.routing, 4, Params::default()).unwrap(), one(42));
    // Rows wider than the order: the order is asked for again.
    let p = plan_with_columns(&s, "INSERT INTO users VALUES ('a', 1, 2, 3)", &cols);
    assert!(p.needs_columns.is_some() && p.insert_rows.is_none());
    // A key left to its default (a row too short) is refused.
    let p = plan_with_columns(&s, "INSERT INTO users VALUES ('a')", &cols);
    assert!(p.refuse.is_some());
}
