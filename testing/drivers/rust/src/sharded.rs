//! The sharded column of the driver matrix: point reads and writes by key (including
//! writes that span both shards in one transaction), a fan-out aggregate and ORDER BY …
//! LIMIT over a 2-shard pool.

use super::*;

pub(crate) async fn shard_point_read() -> Res {
    let mut c = connect().await?;
    for aid in 1..=20i64 {
        let r = sqlx::query("SELECT balance, name FROM accounts WHERE aid = $1")
            .bind(aid)
            .fetch_optional(&mut c)
            .await
            .map_err(e("point read"))?;
        let got = r.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)));
        same(
            got,
            Some((10 * aid, format!("acct-{aid}"))),
            &format!("aid {aid} (binary parameter)"),
        )?;
        let r = sqlx::raw_sql(sql(format!(
            "SELECT balance FROM accounts WHERE aid = {aid}"
        )))
        .fetch_optional(&mut c)
        .await
        .map_err(e("point read (simple)"))?;
        let got = match r {
            Some(r) => Some(r.try_get::<i64, _>(0).map_err(e("decode"))?),
            None => None,
        };
        same(
            got,
            Some(10 * aid),
            &format!("aid {aid} (literal, simple query)"),
        )?;
    }
    Ok(())
}

pub(crate) async fn shard_point_write() -> Res {
    let base: i64 = env("DRV_KEY_BASE", "1000000").parse().unwrap_or(1_000_000);
    let keys: Vec<i64> = (0..20).map(|i| base + i).collect();
    let mut c = connect().await?;
    for &k in &keys {
        sqlx::query("INSERT INTO accounts (aid, balance, name) VALUES ($1, $2, 'w')")
            .bind(k)
            .bind(k)
            .execute(&mut c)
            .await
            .map_err(e("insert"))?;
    }
    let n = sqlx::query("UPDATE accounts SET balance = balance + 1 WHERE aid = $1")
        .bind(keys[3])
        .execute(&mut c)
        .await
        .map_err(e("update"))?
        .rows_affected();
    same(n, 1, "rows updated")?;
    let n = sqlx::query("DELETE FROM accounts WHERE aid = $1")
        .bind(keys[5])
        .execute(&mut c)
        .await
        .map_err(e("delete"))?
        .rows_affected();
    same(n, 1, "rows deleted")?;
    for &k in &keys {
        let got: Option<i64> = sqlx::query_scalar("SELECT balance FROM accounts WHERE aid = $1")
            .bind(k)
            .fetch_optional(&mut c)
            .await
            .map_err(e("read back"))?;
        let want = if k == keys[5] {
            None
        } else {
            Some(k + i64::from(k == keys[3]))
        };
        same(got, want, &format!("aid {k} read back through the router"))?;
    }
    let ports: Vec<u16> = env("DRV_SHARD_PORTS", "")
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut d = Vec::new();
    for p in ports {
        d.push(
            PgConnection::connect_with(&opts_port(p))
                .await
                .map_err(e("connect to a shard"))?,
        );
    }
    for &k in &keys {
        let on0: bool = sqlx::query_scalar(
            "SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, $1::bigint)",
        )
        .bind(k)
        .fetch_one(&mut d[0])
        .await
        .map_err(e("hash"))?;
        let mut rows = Vec::new();
        for x in d.iter_mut() {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE aid = $1")
                .bind(k)
                .fetch_one(&mut *x)
                .await
                .map_err(e("count on shard"))?;
            rows.push(n);
        }
        let want = if k == keys[5] {
            vec![0, 0]
        } else if on0 {
            vec![1, 0]
        } else {
            vec![0, 1]
        };
        same(rows, want, &format!("aid {k}: rows on [shard 0, shard 1]"))?;
    }
    Ok(())
}

pub(crate) async fn shard_fanout_aggregate() -> Res {
    let mut c = connect().await?;
    let r = sqlx::query("SELECT count(*), sum(balance)::int8, min(aid), max(aid) FROM accounts WHERE aid BETWEEN 1 AND $1")
        .bind(1000i64)
        .fetch_one(&mut c)
        .await
        .map_err(e("aggregate"))?;
    same(
        (
            r.get::<i64, _>(0),
            r.get::<i64, _>(1),
            r.get::<i64, _>(2),
            r.get::<i64, _>(3),
        ),
        (1000, 5_005_000, 1, 1000),
        "count/sum/min/max over both shards",
    )
}

pub(crate) async fn shard_order_limit() -> Res {
    let mut c = connect().await?;
    let got: Vec<i64> =
        sqlx::query_scalar("SELECT aid FROM accounts WHERE aid <= $1 ORDER BY aid DESC LIMIT 5")
            .bind(1000i64)
            .fetch_all(&mut c)
            .await
            .map_err(e("order by"))?;
    same(
        got,
        vec![1000, 999, 998, 997, 996],
        "ORDER BY aid DESC LIMIT 5",
    )
}
