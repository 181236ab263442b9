// node-postgres (`pg`) through the router. pg sends every parameterised query
// with the extended protocol (unnamed statement unless `name` is given: then it
// is prepared once per connection and reused), Buffers as binary parameters,
// can ask for binary results (`binary: true`), and with `pipeline: true` writes
// many queries before reading any answer. COPY is pg-copy-streams.
'use strict';

const { Client, Pool, Query } = require('pg');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { pipeline } = require('node:stream/promises');
const { Readable, Writable } = require('node:stream');

const env = process.env;
const TARGET = env.DRV_TARGET || 'single';
const POOL_SIZE = Number(env.DRV_POOL_SIZE || 5);
const KEY_BASE = Number(env.DRV_KEY_BASE || 1000000);
const SHARD_PORTS = (env.DRV_SHARD_PORTS || '').split(',').filter(Boolean).map(Number);
const cfg = {
  host: env.PGHOST || '127.0.0.1',
  port: Number(env.PGPORT || 5432),
  user: env.PGUSER || 'app',
  password: env.PGPASSWORD || 'secret',
  database: env.PGDATABASE || 'orochi_drv',
  connectionTimeoutMillis: 15000,
};
// The `tls` target: the router refuses plaintext, so every case below runs over TLS,
// verified as libpq's verify-full does: the chain against the test CA and the host
// name (node's defaults once `ca` is given; node-postgres only negotiates TLS when
// told to). Direct connections to the fleet's PostgreSQL pass `ssl: false`.
const TLS = env.DRV_TLS === '1';
if (TLS) cfg.ssl = { ca: require('fs').readFileSync(env.DRV_TLS_CA), rejectUnauthorized: true };
const T = 'drv_node';
const BIG_ROWS = 100000;
const SEED_ROWS = 1000;

class Fail extends Error {}
function check(cond, msg) { if (!cond) throw new Fail(msg); }
function show(v) { return Buffer.isBuffer(v) ? `<${v.toString('hex').slice(0, 80)}>` : JSON.stringify(v); }
function same(got, want, what) {
  const g = show(got), w = show(want);
  if (g !== w) throw new Fail(`${what}: got ${g}, want ${w}`);
}
async function connect(extra = {}) {
  const c = new Client({ ...cfg, ...extra });
  await c.connect();
  return c;
}
async function withClient(fn, extra) {
  const c = await connect(extra);
  try { return await fn(c); } finally { await c.end(); }
}
async function expectCode(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    same(e.code, code, `${what}: SQLSTATE (${e.message})`);
    return;
  }
  throw new Fail(`${what}: no error, want SQLSTATE ${code}`);
}

// --- the typed values, in the wire's text and binary forms --------------------
const TEXT = {
  int2: '32767', int4: '-2147483648', int8: '9223372036854775807',
  numeric: '12345678901234567890.123456789', float8: '3.141592653589793',
  text: 'héllo \'wörld\' ✓ \\ "q"', bytea: '\\x' + Buffer.from([...Array(256).keys()]).toString('hex'),
  bool: 't', date: '2024-02-29', timestamptz: '2024-02-29 12:34:56.789012+00',
  uuid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', jsonb: '{"a": [1, 2, {"b": null}], "c": "é"}',
  'int4[]': '{1,2,NULL,4}', 'text[]': '{a,"b c","\\"q\\"",NULL}',
};
const TYPES = Object.keys(TEXT);

function i16(v) { const b = Buffer.alloc(2); b.writeInt16BE(v); return b; }
function i32(v) { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; }
function i64(v) { const b = Buffer.alloc(8); b.writeBigInt64BE(BigInt(v)); return b; }
function f64(v) { const b = Buffer.alloc(8); b.writeDoubleBE(v); return b; }
function arr(elemOid, elems) { // one-dimensional array, lower bound 1
  const parts = [i32(1), i32(elems.includes(null) ? 1 : 0), i32(elemOid), i32(elems.length), i32(1)];
  for (const e of elems) parts.push(e === null ? i32(-1) : Buffer.concat([i32(e.length), e]));
  return Buffer.concat(parts);
}
const EPOCH_2000_MS = Date.UTC(2000, 0, 1);
const BINARY = {
  int2: i16(32767), int4: i32(-2147483648), int8: i64('9223372036854775807'),
  // numeric: ndigits 8, weight 4, sign +, dscale 9, base-10000 digits
  numeric: Buffer.concat([8, 4, 0, 9, 1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000].map(i16)),
  float8: f64(3.141592653589793), text: Buffer.from(TEXT.text), bytea: Buffer.from([...Array(256).keys()]),
  bool: Buffer.from([1]), date: i32((Date.UTC(2024, 1, 29) - EPOCH_2000_MS) / 86400000),
  timestamptz: i64(BigInt(Date.UTC(2024, 1, 29, 12, 34, 56) - EPOCH_2000_MS) * 1000n + 789012n),
  uuid: Buffer.from(TEXT.uuid.replace(/-/g, ''), 'hex'),
  jsonb: Buffer.concat([Buffer.from([1]), Buffer.from(TEXT.jsonb)]),
  'int4[]': arr(23, [i32(1), i32(2), null, i32(4)]),
  'text[]': arr(25, [Buffer.from('a'), Buffer.from('b c'), Buffer.from('"q"'), null]),
};
const RAW = { getTypeParser: () => (v) => v }; // results exactly as they came off the wire

// --- single-shard cases ------------------------------------------------------
const single = {
  async connect_scram() {
    await withClient(async (c) => {
      const r = await c.query('SELECT current_user AS u, current_database() AS d');
      same([r.rows[0].u, r.rows[0].d], [cfg.user, cfg.database], 'session identity');
    });
    try {
      await (await connect({ password: 'wrong-password' })).end();
    } catch (e) {
      same(e.code, '28P01', `wrong password (${e.message})`);
      return;
    }
    throw new Fail('a wrong password was accepted');
  },

  async simple_reuse() {
    const cs = await Promise.all([1, 2, 3, 4].map(() => connect()));
    try {
      for (let i = 0; i < 60; i++) {
        const r = await cs[i % 4].query(`SELECT ${i} * 2 AS v; SELECT 'x${i}' AS s`); // simple Query, 2 results
        same([r[0].rows[0].v, r[1].rows[0].s], [i * 2, `x${i}`], `simple query #${i}`);
      }
    } finally { await Promise.all(cs.map((c) => c.end())); }
  },

  async prepared_reuse() {
    const cs = await Promise.all([1, 2, 3, 4].map(() => connect()));
    try {
      for (let i = 0; i < 30; i++) {
        for (let n = 0; n < cs.length; n++) {
          const named = await cs[n].query({ name: 'drv_inc', text: 'SELECT $1::int8 + 1 AS a, $2::text || \'!\' AS b',
            values: [i, `c${n}`] });
          same([named.rows[0].a, named.rows[0].b], [String(i + 1), `c${n}!`], `named statement run ${i} on connection ${n}`);
          const unnamed = await cs[n].query('SELECT $1::int4 * $2::int4 AS p', [i, n]);
          same(unnamed.rows[0].p, i * n, `unnamed statement run ${i} on connection ${n}`);
        }
      }
      // Named statements inside transactions, reused across them.
      for (let i = 0; i < 10; i++) {
        const c = cs[i % 4];
        await c.query('BEGIN');
        const r = await c.query({ name: 'drv_inc', text: 'SELECT $1::int8 + 1 AS a, $2::text || \'!\' AS b', values: [i, 'tx'] });
        same(r.rows[0].a, String(i + 1), `named statement in transaction ${i}`);
        await c.query('COMMIT');
      }
    } finally { await Promise.all(cs.map((c) => c.end())); }
  },

  async types_text() {
    await withClient(async (c) => {
      const sqlText = 'SELECT ' + TYPES.map((t, i) => `$${i + 1}::${t}`).join(', ');
      const r = await c.query({ text: sqlText, values: TYPES.map((t) => TEXT[t]), rowMode: 'array' });
      const row = r.rows[0];
      const want = [32767, -2147483648, '9223372036854775807', '12345678901234567890.123456789', 3.141592653589793,
        TEXT.text, BINARY.bytea, true, null, null, TEXT.uuid, { a: [1, 2, { b: null }], c: 'é' }, [1, 2, null, 4],
        ['a', 'b c', '"q"', null]];
      TYPES.forEach((t, i) => {
        if (t === 'date') {
          same([row[i].getFullYear(), row[i].getMonth(), row[i].getDate()], [2024, 1, 29], 'date');
        } else if (t === 'timestamptz') {
          same(row[i].getTime(), Date.UTC(2024, 1, 29, 12, 34, 56, 789), 'timestamptz (ms)');
        } else {
          same(row[i], want[i], t);
        }
      });
      // The exact text PostgreSQL sends, unparsed (microseconds included), in UTC.
      await c.query('BEGIN');
      await c.query("SET LOCAL TimeZone = 'UTC'");
      const raw = await c.query({ text: sqlText, values: TYPES.map((t) => TEXT[t]), rowMode: 'array', types: RAW });
      await c.query('COMMIT');
      TYPES.forEach((t, i) => same(raw.rows[0][i], TEXT[t], `${t} as text`));
      const nulls = await c.query({ text: sqlText, values: TYPES.map(() => null), rowMode: 'array' });
      same(nulls.rows[0], TYPES.map(() => null), 'NULLs');
    });
  },

  async types_binary() {
    // Every parameter a Buffer: pg sends those in binary format. (Binary *results* are
    // not usable in pg 8: its protocol parser decodes every DataRow field as UTF-8
    // text — "TODO(bmc) support binary mode" in pg/lib/connection.js — so a binary
    // int4 arrives mangled even from PostgreSQL directly. Results are read as text.)
    await withClient(async (c) => {
      const sqlText = 'SELECT ' + TYPES.map((t, i) => `$${i + 1}::${t}`).join(', ');
      await c.query('BEGIN');
      await c.query("SET LOCAL TimeZone = 'UTC'");
      for (let run = 0; run < 7; run++) { // named on odd runs: prepared once, then reused
        const r = await c.query({ text: sqlText, values: TYPES.map((t) => BINARY[t]), rowMode: 'array',
          types: RAW, name: run % 2 ? 'drv_types_bin' : undefined });
        TYPES.forEach((t, i) => same(r.rows[0][i], TEXT[t], `${t} binary parameter (run ${run})`));
      }
      await c.query('COMMIT');
      const nulls = await c.query({ text: sqlText, values: TYPES.map(() => null), rowMode: 'array', types: RAW });
      same(nulls.rows[0], TYPES.map(() => null), 'NULLs');
    });
  },

  async txn_commit_rollback() {
    await withClient(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${T}_tx`);
      await c.query(`CREATE TABLE ${T}_tx (id int PRIMARY KEY)`);
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T}_tx VALUES ($1), ($2)`, [1, 2]);
      await c.query('COMMIT');
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T}_tx VALUES ($1)`, [3]);
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${T}_tx VALUES ($1)`, [4]);
      await c.query('SAVEPOINT a');
      await c.query(`INSERT INTO ${T}_tx VALUES ($1)`, [5]);
      await c.query('ROLLBACK TO SAVEPOINT a');
      await c.query('COMMIT');
    });
    await withClient(async (c) => {
      const r = await c.query(`SELECT id FROM ${T}_tx ORDER BY id`);
      same(r.rows.map((x) => x.id), [1, 2, 4], 'rows after commit/rollback (seen from a new connection)');
    });
  },

  async txn_error_recovery() {
    await withClient(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${T}_err`);
      await c.query(`CREATE TABLE ${T}_err (id int PRIMARY KEY)`);
      for (let round = 0; round < 3; round++) {
        await c.query('BEGIN');
        await c.query(`INSERT INTO ${T}_err VALUES ($1)`, [100 + round]);
        await expectCode(c.query('SELECT 1 / $1::int', [0]), '22012', 'division by zero');
        await expectCode(c.query('SELECT 1'), '25P02', 'statement in an aborted transaction');
        await c.query('ROLLBACK');
        same((await c.query('SELECT 41 + $1::int AS v', [1])).rows[0].v, 42, 'query after the failed transaction');
      }
      // An error in an implicit transaction (simple Query with several statements).
      await expectCode(c.query(`INSERT INTO ${T}_err VALUES (1); SELECT 1/0`), '22012', 'multi-statement error');
      same((await c.query(`SELECT count(*)::int AS n FROM ${T}_err`)).rows[0].n, 0, 'rows of failed transactions');
    });
  },

  async copy_in_out() {
    await withClient(async (c) => {
      await c.query(`DROP TABLE IF EXISTS ${T}_copy`);
      await c.query(`CREATE TABLE ${T}_copy (id int, t text)`);
      const lines = [];
      for (let i = 0; i < 5000; i++) lines.push(`${i}\trow ${i}\n`);
      await pipeline(Readable.from(lines), c.query(copyFrom(`COPY ${T}_copy (id, t) FROM STDIN`)));
      const chunks = [];
      await pipeline(c.query(copyTo(`COPY (SELECT id, t FROM ${T}_copy ORDER BY id) TO STDOUT`)),
        new Writable({ write(chunk, _enc, cb) { chunks.push(chunk); cb(); } }));
      same(Buffer.concat(chunks).toString(), lines.join(''), 'COPY out content');
      // A COPY the server refuses (bad data) leaves the connection usable.
      await expectCode(pipeline(Readable.from(['x\tnot a number\n']), c.query(copyFrom(`COPY ${T}_copy (id, t) FROM STDIN`))),
        '22P02', 'bad COPY data');
      same((await c.query(`SELECT count(*)::int AS n FROM ${T}_copy`)).rows[0].n, 5000, 'rows after COPY');
    });
  },

  async big_result() {
    await withClient(async (c) => {
      const r = await c.query({ text: "SELECT g, repeat('x', 20) AS x FROM generate_series(1, $1::int) g",
        values: [BIG_ROWS] });
      let sum = 0;
      for (const row of r.rows) sum += row.g;
      same([r.rows.length, sum], [BIG_ROWS, BIG_ROWS * (BIG_ROWS + 1) / 2], 'row count and sum');
      const s = await c.query({ text: 'SELECT g FROM generate_series(1, $1::int) g', values: [BIG_ROWS], rowMode: 'array' });
      same(s.rows.reduce((acc, row) => acc + row[0], 0), BIG_ROWS * (BIG_ROWS + 1) / 2, 'sum in array row mode');
    });
  },

  async cancel() {
    await withClient(async (c) => {
      const started = Date.now();
      const q = new Query('SELECT pg_sleep(30)');
      const done = new Promise((resolve) => c.query(q, (err) => resolve(err)));
      await new Promise((r) => setTimeout(r, 500));
      new Client(cfg).cancel(c, q);
      const err = await done;
      check(err, 'pg_sleep(30) finished without being cancelled');
      same(err.code, '57014', `cancelled query (${err.message})`);
      check(Date.now() - started < 10000, `the cancel took ${(Date.now() - started) / 1000}s`);
      same((await c.query("SELECT 'alive' AS a")).rows[0].a, 'alive', 'query after the cancel');
    });
  },

  async stmt_timeout_local() {
    await withClient(async (c) => {
      await c.query('BEGIN');
      await c.query("SET LOCAL statement_timeout = '300ms'");
      await expectCode(c.query('SELECT pg_sleep(5)'), '57014', 'SET LOCAL statement_timeout');
      await c.query('ROLLBACK');
      same((await c.query("SELECT pg_sleep(0.5)::text || 'ok' AS v")).rows[0].v, 'ok', 'the timeout ended with the transaction');
    });
  },

  async stmt_timeout_session() {
    // pg's own statement_timeout option (a startup parameter), libpq-style options, and SET.
    const cs = [await connect({ statement_timeout: 300 }), await connect({ options: '-c statement_timeout=300' }), await connect()];
    try {
      await cs[2].query("SET statement_timeout = '300ms'");
      for (const [n, c] of cs.entries()) {
        for (let i = 0; i < 3; i++) await expectCode(c.query('SELECT pg_sleep(3)'), '57014', `session timeout #${n}`);
      }
      const others = await Promise.all([...Array(POOL_SIZE)].map(() => connect()));
      try {
        for (const o of others) same((await o.query('SHOW statement_timeout')).rows[0].statement_timeout, '0', 'seen by another client');
      } finally { await Promise.all(others.map((o) => o.end())); }
    } finally { await Promise.all(cs.map((c) => c.end())); }
  },

  async pipeline() {
    await withClient(async (c) => {
      // 200 queries written before any answer is read; one fails in the middle.
      const ps = [];
      for (let i = 0; i < 200; i++) {
        ps.push(i === 100 ? c.query('SELECT 1 / $1::int AS v', [0]).then(() => 'no error', (e) => e.code)
          : c.query(i % 2 ? 'SELECT $1::int AS v' : { name: 'drv_pipe', text: 'SELECT $1::int AS v', values: [i] }, [i]));
      }
      const rs = await Promise.all(ps);
      rs.forEach((r, i) => same(i === 100 ? r : r.rows[0].v, i === 100 ? '22012' : i, `pipelined query ${i}`));
    }, { pipeline: true });
  },

  async concurrent_20_pool_5() {
    const pool = new Pool({ ...cfg, max: 20 });
    try {
      await pool.query(`DROP TABLE IF EXISTS ${T}_conc`);
      await pool.query(`CREATE TABLE ${T}_conc (client int, i int)`);
      const backends = [];
      const countSql = "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() " +
        "AND usename = current_user AND backend_type = 'client backend'";
      const clients = await Promise.all([...Array(20)].map(() => pool.connect()));
      const results = await Promise.allSettled(clients.map(async (c, n) => {
        for (let i = 0; i < 5; i++) {
          await c.query('BEGIN');
          await c.query(`INSERT INTO ${T}_conc VALUES ($1, $2)`, [n, i]);
          backends.push((await c.query(countSql)).rows[0].n);
          await c.query('SELECT pg_sleep(0.05)');
          await c.query('COMMIT');
        }
      }));
      clients.forEach((c) => c.release());
      const errs = results.map((r, n) => (r.status === 'rejected' ? `client ${n}: ${r.reason.message}` : null)).filter(Boolean);
      check(errs.length === 0, errs.slice(0, 3).join('; '));
      const r = await pool.query(`SELECT count(*)::int AS n, count(DISTINCT client)::int AS d FROM ${T}_conc`);
      same([r.rows[0].n, r.rows[0].d], [100, 20], 'rows written by 20 clients x 5 transactions');
      check(Math.max(...backends) <= POOL_SIZE, `${Math.max(...backends)} server connections at once, pool_size is ${POOL_SIZE}`);
    } finally { await pool.end(); }
  },
};

// --- sharded cases -----------------------------------------------------------
const sharded = {
  async shard_point_read() {
    await withClient(async (c) => {
      for (let aid = 1; aid <= 20; aid++) {
        const r = await c.query('SELECT balance::int AS b, name FROM accounts WHERE aid = $1', [aid]);
        same(r.rows[0] && [r.rows[0].b, r.rows[0].name], [10 * aid, `acct-${aid}`], `aid ${aid} (parameter)`);
        const p = await c.query({ name: 'drv_point', text: 'SELECT balance::int AS b FROM accounts WHERE aid = $1', values: [aid] });
        same(p.rows[0] && p.rows[0].b, 10 * aid, `aid ${aid} (named statement)`);
        const s = await c.query(`SELECT balance::int AS b FROM accounts WHERE aid = ${aid}`);
        same(s.rows[0] && s.rows[0].b, 10 * aid, `aid ${aid} (literal, simple query)`);
      }
    });
  },

  async shard_point_write() {
    const keys = [...Array(20).keys()].map((i) => KEY_BASE + i);
    await withClient(async (c) => {
      for (const k of keys) await c.query("INSERT INTO accounts (aid, balance, name) VALUES ($1, $2, 'w')", [k, k]);
      await c.query('UPDATE accounts SET balance = balance + 1 WHERE aid = $1', [keys[3]]);
      await c.query('DELETE FROM accounts WHERE aid = $1', [keys[5]]);
      for (const k of keys) {
        const r = await c.query('SELECT balance::int8::text AS b FROM accounts WHERE aid = $1', [k]);
        const want = k === keys[5] ? null : String(k + (k === keys[3] ? 1 : 0));
        same(r.rows[0] ? r.rows[0].b : null, want, `aid ${k} read back through the router`);
      }
    });
    const d = await Promise.all(SHARD_PORTS.map((port) => connect({ port, ssl: false })));
    try {
      for (const k of keys) {
        const on0 = (await d[0].query("SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, $1::bigint) AS s", [k])).rows[0].s;
        const rows = [];
        for (const x of d) rows.push((await x.query('SELECT count(*)::int AS n FROM accounts WHERE aid = $1', [k])).rows[0].n);
        const want = k === keys[5] ? [0, 0] : (on0 ? [1, 0] : [0, 1]);
        same(rows, want, `aid ${k}: rows on [shard 0, shard 1] (hash says shard ${on0 ? 0 : 1})`);
      }
    } finally { await Promise.all(d.map((x) => x.end())); }
  },

  async shard_fanout_aggregate() {
    await withClient(async (c) => {
      const r = await c.query('SELECT count(*)::int AS n, sum(balance)::int8::text AS s, min(aid)::int AS lo, max(aid)::int AS hi ' +
        'FROM accounts WHERE aid BETWEEN 1 AND $1', [SEED_ROWS]);
      const x = r.rows[0];
      same([x.n, x.s, x.lo, x.hi], [SEED_ROWS, String(10 * SEED_ROWS * (SEED_ROWS + 1) / 2), 1, SEED_ROWS], 'count/sum/min/max over both shards');
    });
  },

  async shard_order_limit() {
    await withClient(async (c) => {
      const r = await c.query('SELECT aid::int AS a FROM accounts WHERE aid <= $1 ORDER BY aid DESC LIMIT 5', [SEED_ROWS]);
      same(r.rows.map((x) => x.a), [1000, 999, 998, 997, 996], 'ORDER BY aid DESC LIMIT 5');
      const s = await c.query('SELECT balance::int AS b FROM accounts WHERE aid <= 1000 ORDER BY balance LIMIT 3 OFFSET 10');
      same(s.rows.map((x) => x.b), [110, 120, 130], 'ORDER BY balance LIMIT 3 OFFSET 10');
    });
  },
};

// The tls target only: what verify-full must refuse. A CA that did not sign the
// router's certificate, and a host name (SNI and the name checked) it does not carry.
async function verify_full_refuses() {
  const other = { ...cfg.ssl, ca: require('fs').readFileSync(env.DRV_TLS_OTHER_CA) };
  const wrongName = { ...cfg.ssl, servername: 'wrong.invalid' };
  for (const [what, ssl, want] of [['another CA', other, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/],
    ['another host name', wrongName, /ERR_TLS_CERT_ALTNAME_INVALID/]]) {
    let c;
    try {
      c = await connect({ ssl });
    } catch (e) {
      check(want.test(e.code || ''), `${what}: refused, but not for the certificate: ${e.code} ${e.message}`);
      continue;
    }
    await c.end();
    throw new Fail(`${what}: the connection was accepted`);
  }
}

async function main() {
  const cases = TARGET === 'single' ? { ...single } : sharded;
  if (TLS) cases.verify_full_refuses = verify_full_refuses;
  console.log('PLAN ' + Object.keys(cases).join(' '));
  for (const [name, fn] of Object.entries(cases)) {
    const started = Date.now();
    let timer;
    try {
      await Promise.race([fn(), new Promise((_, rej) => { timer = setTimeout(() => rej(new Fail('did not finish within 90s')), 90000); })]);
      console.log(`PASS ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
    } catch (e) {
      if (!(e instanceof Fail)) console.error(e);
      const why = e instanceof Fail ? e.message : `${e.code ? e.code + ' ' : ''}${e.message}`;
      console.log(`FAIL ${name}: ${why.replace(/\n/g, ' ').slice(0, 400)}`);
    } finally { clearTimeout(timer); }
  }
  process.exit(0);
}
main();
