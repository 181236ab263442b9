-- shard-seed.sql: one shard of the drivers' 2-shard target (psql -v shard=N, run
-- as app in database orochi_drv directly on the shard, not through the router).
--
-- drv_hashref is never filled: it exists so satisfies_hash_partition() can tell,
-- with PostgreSQL's own hashing, which of 2 shards a key belongs on (SPEC §3:
-- the shard of a key is the partition PARTITION BY HASH with MODULUS 2 picks).
-- The driver programs use it to check where the router put the rows they wrote.
SET client_min_messages = warning;
CREATE TABLE drv_hashref (aid bigint) PARTITION BY HASH (aid);
CREATE TABLE accounts (
    aid bigint PRIMARY KEY,
    balance bigint NOT NULL,
    name text NOT NULL
);
-- aid 1..1000, balance = 10 * aid, each on its own shard only.
INSERT INTO accounts
SELECT g, 10 * g, 'acct-' || g
FROM generate_series(1, 1000) AS g
WHERE satisfies_hash_partition('drv_hashref'::regclass, 2, :shard, g::bigint);
