//! Planner cost per statement: a cold plan (pg_query parse, key walk, merge plan) and
//! the hot path the router takes for a statement seen before (cache lookup by text and
//! key resolution), and a simple-protocol point lookup with a new literal every time
//! (constants lifted, the shape's plan cached). `cargo bench -p orochi-planner --bench
//! planner`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use orochi_config::KeyType;
use orochi_planner::sharding::literals::one_shard;
use orochi_planner::sharding::resolve::{resolve, Params};
use orochi_planner::sharding::{plan, plan_uncached, DistributedTable, ShardingSchema};

const STATEMENTS: &[(&str, &str)] = &[
    ("point", "SELECT abalance FROM pgbench_accounts WHERE aid = 42"),
    ("param", "SELECT * FROM users u WHERE u.id = $1::bigint AND u.active"),
    ("fanout_agg", "SELECT city, count(*), avg(score) FROM users GROUP BY city ORDER BY 2 DESC LIMIT 10"),
    ("join", "SELECT u.name, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id IN (1, 2, 3) ORDER BY o.amount DESC"),
];

fn schema() -> ShardingSchema {
    let t = |name: &str, column: &str| DistributedTable {
        name: name.into(),
        schema: None,
        column: column.into(),
        ty: KeyType::BigInt,
    };
    ShardingSchema::new(
        4,
        vec![
            t("pgbench_accounts", "aid"),
            t("users", "id"),
            t("orders", "user_id"),
        ],
    )
}

fn planner(c: &mut Criterion) {
    let s = schema();
    let v = [Some(bytes::Bytes::from_static(b"42"))];
    let params = Params {
        values: &v,
        formats: &[],
    };
    for (name, sql) in STATEMENTS {
        c.bench_function(&format!("cold_plan/{name}"), |b| {
            b.iter(|| black_box(plan_uncached(&s, black_box(sql))))
        });
        c.bench_function(&format!("cached_route/{name}"), |b| {
            b.iter(|| {
                let p = plan(&s, black_box(sql));
                black_box(resolve(&p.routing, s.shards, params))
            })
        });
    }
    let mut aid = 0u64;
    c.bench_function("new_literal_route/point", |b| {
        b.iter(|| {
            aid += 1;
            let sql = format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};");
            black_box(one_shard(&s, black_box(&sql)))
        })
    });
}

criterion_group!(benches, planner);
criterion_main!(benches);
