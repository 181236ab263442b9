// pgjdbc through the router (testing/drivers.sh). pgjdbc runs everything with the
// extended protocol; a PreparedStatement switches from the unnamed statement to a
// named server-side one (S_1, S_2, ... per connection, so the same names mean
// different statements on different connections) on its prepareThreshold-th
// (5th) execution, and then also asks for binary results of the types it knows.
// setFetchSize in a transaction reads through a portal, Execute with a row limit.

import java.math.BigDecimal;
import java.sql.*;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.*;
import java.util.concurrent.*;
import java.io.*;
import java.nio.charset.StandardCharsets;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.postgresql.util.PGobject;

public class DriverCheck {
    static final String TARGET = env("DRV_TARGET", "single");
    static final String HOST = env("PGHOST", "127.0.0.1");
    static final int PORT = Integer.parseInt(env("PGPORT", "5432"));
    static final String USER = env("PGUSER", "app");
    static final String PASSWORD = env("PGPASSWORD", "secret");
    static final String DB = env("PGDATABASE", "orochi_drv");
    static final int POOL_SIZE = Integer.parseInt(env("DRV_POOL_SIZE", "5"));
    static final long KEY_BASE = Long.parseLong(env("DRV_KEY_BASE", "1000000"));
    static final String T = "drv_jdbc";
    static final int BIG_ROWS = 100_000;
    static final long BIG_SUM = (long) BIG_ROWS * (BIG_ROWS + 1) / 2;

    static String env(String k, String d) {
        String v = System.getenv(k);
        return v == null || v.isEmpty() ? d : v;
    }

    static class Fail extends Exception {
        Fail(String m) { super(m); }
    }

    static void check(boolean cond, String msg) throws Fail {
        if (!cond) throw new Fail(msg);
    }

    static String show(Object o) {
        if (o instanceof byte[]) {
            StringBuilder sb = new StringBuilder("<");
            for (byte b : (byte[]) o) sb.append(String.format("%02x", b));
            return sb.append(">").toString();
        }
        if (o instanceof Object[]) return Arrays.deepToString((Object[]) o);
        return String.valueOf(o);
    }

    static void same(Object got, Object want, String what) throws Fail {
        boolean eq = (got instanceof byte[] && want instanceof byte[]) ? Arrays.equals((byte[]) got, (byte[]) want)
            : (got instanceof Object[] && want instanceof Object[]) ? Arrays.deepEquals((Object[]) got, (Object[]) want)
            : Objects.equals(got, want);
        if (!eq) throw new Fail(what + ": got " + show(got) + ", want " + show(want));
    }

    /** The tls target: connections to the router use verify-full against the test CA. */
    static final boolean TLS = env("DRV_TLS", "0").equals("1");

    /** A connection to the router; later pairs in kv override earlier ones. */
    static Connection connect(String... kv) throws SQLException {
        if (!TLS) return connect(PORT, kv);
        List<String> all = new ArrayList<>(List.of("sslmode", "verify-full", "sslrootcert", env("DRV_TLS_CA", "")));
        all.addAll(Arrays.asList(kv));
        return connect(PORT, all.toArray(new String[0]));
    }

    static Connection connect(int port, String... kv) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", USER);
        p.setProperty("password", PASSWORD);
        p.setProperty("connectTimeout", "15");
        for (int i = 0; i + 1 < kv.length; i += 2) p.setProperty(kv[i], kv[i + 1]);
        return DriverManager.getConnection("jdbc:postgresql://" + HOST + ":" + port + "/" + DB, p);
    }

    static void expectState(String state, String what, SqlCall call) throws Exception {
        try {
            call.run();
        } catch (SQLException e) {
            same(e.getSQLState(), state, what + ": SQLSTATE (" + e.getMessage() + ")");
            return;
        }
        throw new Fail(what + ": no error, want SQLSTATE " + state);
    }

    interface SqlCall { void run() throws Exception; }

    static long scalarLong(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(sql)) {
            r.next();
            return r.getLong(1);
        }
    }

    static void exec(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute(sql);
        }
    }

    // ---------------------------------------------------------------- single
    static void connect_scram() throws Exception {
        try (Connection c = connect(); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT current_user, current_database()")) {
            r.next();
            same(r.getString(1) + "/" + r.getString(2), USER + "/" + DB, "session identity");
        }
        expectState("28P01", "wrong password", () -> connect("password", "wrong-password").close());
    }

    static void simple_reuse() throws Exception {
        List<Connection> cs = new ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) cs.add(connect("preferQueryMode", "simple"));
            for (int i = 0; i < 60; i++) {
                try (Statement s = cs.get(i % 4).createStatement(); ResultSet r = s.executeQuery("SELECT " + i + " * 2")) {
                    r.next();
                    same(r.getInt(1), i * 2, "simple query #" + i);
                }
            }
        } finally {
            for (Connection c : cs) c.close();
        }
    }

    static void prepared_reuse() throws Exception {
        List<Connection> cs = new ArrayList<>();
        List<PreparedStatement> ps = new ArrayList<>(), ps2 = new ArrayList<>();
        try {
            for (int n = 0; n < 4; n++) {
                Connection c = connect();
                cs.add(c);
                // Different statements created in a different order per connection:
                // the server-side names S_1, S_2 mean different statements on each.
                PreparedStatement a = c.prepareStatement("SELECT ?::int8 + 1, ?::text || '!'");
                PreparedStatement b = c.prepareStatement("SELECT ?::int4 * " + (n + 2));
                if (n % 2 == 0) { ps.add(a); ps2.add(b); } else { ps2.add(b); ps.add(a); }
            }
            for (int i = 0; i < 30; i++) {
                for (int n = 0; n < 4; n++) {
                    Connection c = cs.get(n);
                    boolean tx = i % 3 == 2;
                    if (tx) c.setAutoCommit(false);
                    PreparedStatement a = ps.get(n), b = ps2.get(n);
                    a.setLong(1, i);
                    a.setString(2, "c" + n);
                    try (ResultSet r = a.executeQuery()) {
                        r.next();
                        same(r.getLong(1) + "/" + r.getString(2), (i + 1) + "/c" + n + "!", "run " + i + " on connection " + n);
                    }
                    b.setInt(1, i);
                    try (ResultSet r = b.executeQuery()) {
                        r.next();
                        same(r.getInt(1), i * (n + 2), "second statement run " + i + " on connection " + n);
                    }
                    if (tx) {
                        c.commit();
                        c.setAutoCommit(true);
                    }
                }
            }
        } finally {
            for (Connection c : cs) c.close();
        }
    }

    static final String TYPES_SQL = "SELECT ?::int2, ?::int4, ?::int8, ?::numeric, ?::float8, ?::text, ?::bytea, ?::bool, "
        + "?::date, ?::timestamptz, ?::uuid, ?::jsonb, ?::int4[], ?::text[]";
    static final BigDecimal NUMERIC = new BigDecimal("12345678901234567890.123456789");
    static final String TEXT = "héllo 'wörld' ✓ \\ \"q\"";
    static final LocalDate DATE = LocalDate.of(2024, 2, 29);
    static final OffsetDateTime TS = OffsetDateTime.of(2024, 2, 29, 12, 34, 56, 789012000, ZoneOffset.UTC);
    static final UUID ID = UUID.fromString("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    static final String JSON = "{\"a\": [1, 2, {\"b\": null}], \"c\": \"é\"}";

    static byte[] allBytes() {
        byte[] b = new byte[256];
        for (int i = 0; i < 256; i++) b[i] = (byte) i;
        return b;
    }

    static void types(String... props) throws Exception {
        try (Connection c = connect(props); PreparedStatement p = c.prepareStatement(TYPES_SQL)) {
            for (int run = 0; run < 8; run++) { // unnamed, then named + binary from the 5th run
                PGobject json = new PGobject();
                json.setType("jsonb");
                json.setValue(JSON);
                p.setShort(1, (short) 32767);
                p.setInt(2, Integer.MIN_VALUE);
                p.setLong(3, Long.MAX_VALUE);
                p.setBigDecimal(4, NUMERIC);
                p.setDouble(5, Math.PI);
                p.setString(6, TEXT);
                p.setBytes(7, allBytes());
                p.setBoolean(8, true);
                p.setObject(9, DATE);
                p.setObject(10, TS);
                p.setObject(11, ID);
                p.setObject(12, json);
                p.setArray(13, c.createArrayOf("int4", new Integer[] {1, 2, null, 4}));
                p.setArray(14, c.createArrayOf("text", new String[] {"a", "b c", "\"q\"", null}));
                try (ResultSet r = p.executeQuery()) {
                    r.next();
                    String at = " (run " + run + ")";
                    same(r.getShort(1), (short) 32767, "int2" + at);
                    same(r.getInt(2), Integer.MIN_VALUE, "int4" + at);
                    same(r.getLong(3), Long.MAX_VALUE, "int8" + at);
                    same(r.getBigDecimal(4), NUMERIC, "numeric" + at);
                    same(r.getDouble(5), Math.PI, "float8" + at);
                    same(r.getString(6), TEXT, "text" + at);
                    same(r.getBytes(7), allBytes(), "bytea" + at);
                    same(r.getBoolean(8), true, "bool" + at);
                    same(r.getObject(9, LocalDate.class), DATE, "date" + at);
                    same(r.getObject(10, OffsetDateTime.class).toInstant(), TS.toInstant(), "timestamptz" + at);
                    same(r.getObject(11), ID, "uuid" + at);
                    same(r.getString(12), JSON, "jsonb" + at);
                    same(r.getArray(13).getArray(), new Integer[] {1, 2, null, 4}, "int4[]" + at);
                    same(r.getArray(14).getArray(), new String[] {"a", "b c", "\"q\"", null}, "text[]" + at);
                }
                for (int i = 1; i <= 14; i++) p.setNull(i, Types.OTHER);
                p.setNull(1, Types.SMALLINT);
                p.setNull(7, Types.BINARY);
                try (ResultSet r = p.executeQuery()) {
                    r.next();
                    for (int i = 1; i <= 14; i++) {
                        r.getObject(i);
                        check(r.wasNull(), "column " + i + " is not NULL (run " + run + ")");
                    }
                }
            }
        }
    }

    static void types_text() throws Exception {
        types("binaryTransfer", "false");
    }

    static void types_binary() throws Exception {
        types("prepareThreshold", "-1"); // named statement and binary transfer from the first run
    }

    static void txn_commit_rollback() throws Exception {
        try (Connection c = connect()) {
            exec(c, "DROP TABLE IF EXISTS " + T + "_tx");
            exec(c, "CREATE TABLE " + T + "_tx (id int PRIMARY KEY)");
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement("INSERT INTO " + T + "_tx VALUES (?)")) {
                for (int id : new int[] {1, 2}) { p.setInt(1, id); p.executeUpdate(); }
                c.commit();
                p.setInt(1, 3);
                p.executeUpdate();
                c.rollback();
                p.setInt(1, 4);
                p.executeUpdate();
                Savepoint sp = c.setSavepoint();
                p.setInt(1, 5);
                p.executeUpdate();
                c.rollback(sp);
                c.commit();
            }
        }
        try (Connection c = connect(); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT string_agg(id::text, ',' ORDER BY id) FROM " + T + "_tx")) {
            r.next();
            same(r.getString(1), "1,2,4", "rows after commit/rollback/savepoint (seen from a new connection)");
        }
    }

    static void txn_error_recovery() throws Exception {
        try (Connection c = connect()) {
            exec(c, "DROP TABLE IF EXISTS " + T + "_err");
            exec(c, "CREATE TABLE " + T + "_err (id int PRIMARY KEY)");
            c.setAutoCommit(false);
            for (int round = 0; round < 3; round++) {
                try (PreparedStatement p = c.prepareStatement("INSERT INTO " + T + "_err VALUES (?)")) {
                    p.setInt(1, 100 + round);
                    p.executeUpdate();
                }
                expectState("22012", "division by zero", () -> scalarLong(c, "SELECT 1 / 0"));
                expectState("25P02", "statement in an aborted transaction", () -> scalarLong(c, "SELECT 1"));
                c.rollback();
                same(scalarLong(c, "SELECT 42"), 42L, "query after rollback");
                c.commit();
            }
            same(scalarLong(c, "SELECT count(*) FROM " + T + "_err"), 0L, "rows of failed transactions");
        }
    }

    static void copy_in_out() throws Exception {
        try (Connection c = connect()) {
            exec(c, "DROP TABLE IF EXISTS " + T + "_copy");
            exec(c, "CREATE TABLE " + T + "_copy (id int, t text)");
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < 5000; i++) sb.append(i).append("\trow ").append(i).append('\n');
            CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
            long n = cm.copyIn("COPY " + T + "_copy (id, t) FROM STDIN",
                new ByteArrayInputStream(sb.toString().getBytes(StandardCharsets.UTF_8)));
            same(n, 5000L, "rows copied in");
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            n = cm.copyOut("COPY (SELECT id, t FROM " + T + "_copy ORDER BY id) TO STDOUT", out);
            same(n, 5000L, "rows copied out");
            same(out.toString(StandardCharsets.UTF_8), sb.toString(), "COPY out content");
            same(scalarLong(c, "SELECT 1"), 1L, "query after COPY");
        }
    }

    static void big_result() throws Exception {
        try (Connection c = connect()) {
            try (PreparedStatement p = c.prepareStatement("SELECT g, repeat('x', 20) FROM generate_series(1, ?) g")) {
                p.setInt(1, BIG_ROWS);
                long n = 0, sum = 0;
                try (ResultSet r = p.executeQuery()) {
                    while (r.next()) { n++; sum += r.getLong(1); }
                }
                same(n + "/" + sum, BIG_ROWS + "/" + BIG_SUM, "row count and sum");
            }
            // Fetch size in a transaction: a portal read 5000 rows at a time.
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement("SELECT g FROM generate_series(1, ?) g")) {
                p.setFetchSize(5000);
                p.setInt(1, BIG_ROWS);
                long sum = 0;
                try (ResultSet r = p.executeQuery()) {
                    while (r.next()) sum += r.getLong(1);
                }
                same(sum, BIG_SUM, "sum fetched 5000 rows at a time");
            }
            c.commit();
        }
    }

    static void cancel() throws Exception {
        try (Connection c = connect(); Statement s = c.createStatement()) {
            ScheduledExecutorService ex = Executors.newSingleThreadScheduledExecutor();
            long started = System.nanoTime();
            ex.schedule(() -> { s.cancel(); return null; }, 500, TimeUnit.MILLISECONDS);
            try {
                expectState("57014", "cancelled pg_sleep(30)", () -> s.execute("SELECT pg_sleep(30)"));
            } finally {
                ex.shutdownNow();
            }
            double took = (System.nanoTime() - started) / 1e9;
            check(took < 10, "the cancel took " + took + "s");
            same(scalarLong(c, "SELECT 7"), 7L, "query after the cancel");
            // setQueryTimeout: pgjdbc cancels the statement itself when it expires.
            s.setQueryTimeout(1);
            expectState("57014", "setQueryTimeout(1) on pg_sleep(30)", () -> s.execute("SELECT pg_sleep(30)"));
            s.setQueryTimeout(0);
            same(scalarLong(c, "SELECT 8"), 8L, "query after the query timeout");
        }
    }

    static void stmt_timeout_local() throws Exception {
        try (Connection c = connect()) {
            c.setAutoCommit(false);
            exec(c, "SET LOCAL statement_timeout = '300ms'");
            expectState("57014", "SET LOCAL statement_timeout", () -> exec(c, "SELECT pg_sleep(5)"));
            c.rollback();
            exec(c, "SELECT pg_sleep(0.5)");
            c.commit();
        }
    }

    static void stmt_timeout_session() throws Exception {
        try (Connection a = connect("options", "-c statement_timeout=300"); Connection b = connect()) {
            exec(b, "SET statement_timeout = '300ms'");
            for (Connection c : new Connection[] {a, b}) {
                for (int i = 0; i < 3; i++) {
                    expectState("57014", "session statement_timeout", () -> exec(c, "SELECT pg_sleep(3)"));
                }
            }
            List<Connection> others = new ArrayList<>();
            try {
                for (int i = 0; i < POOL_SIZE; i++) others.add(connect());
                for (Connection o : others) {
                    try (Statement s = o.createStatement(); ResultSet r = s.executeQuery("SHOW statement_timeout")) {
                        r.next();
                        same(r.getString(1), "0", "statement_timeout seen by another client");
                    }
                }
            } finally {
                for (Connection o : others) o.close();
            }
        }
    }

    static void concurrent_20_pool_5() throws Exception {
        try (Connection c = connect()) {
            exec(c, "DROP TABLE IF EXISTS " + T + "_conc");
            exec(c, "CREATE TABLE " + T + "_conc (client int, i int)");
        }
        ExecutorService pool = Executors.newFixedThreadPool(20);
        CyclicBarrier barrier = new CyclicBarrier(20);
        List<Future<Long>> fs = new ArrayList<>();
        for (int n = 0; n < 20; n++) {
            final int client = n;
            fs.add(pool.submit(() -> {
                long max = 0;
                try (Connection c = connect()) {
                    barrier.await(30, TimeUnit.SECONDS); // 20 client connections open at once
                    c.setAutoCommit(false);
                    try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + T + "_conc VALUES (?, ?)");
                         PreparedStatement cnt = c.prepareStatement("SELECT count(*) FROM pg_stat_activity WHERE "
                             + "datname = current_database() AND usename = current_user AND backend_type = 'client backend'")) {
                        for (int i = 0; i < 5; i++) {
                            ins.setInt(1, client);
                            ins.setInt(2, i);
                            ins.executeUpdate();
                            try (ResultSet r = cnt.executeQuery()) {
                                r.next();
                                max = Math.max(max, r.getLong(1));
                            }
                            exec(c, "SELECT pg_sleep(0.05)");
                            c.commit();
                        }
                    }
                }
                return max;
            }));
        }
        pool.shutdown();
        long max = 0;
        List<String> errs = new ArrayList<>();
        for (int n = 0; n < 20; n++) {
            try {
                max = Math.max(max, fs.get(n).get(90, TimeUnit.SECONDS));
            } catch (Exception e) {
                errs.add("client " + n + ": " + (e.getCause() != null ? e.getCause() : e));
            }
        }
        check(errs.isEmpty(), String.join("; ", errs.subList(0, Math.min(3, errs.size()))));
        try (Connection c = connect()) {
            same(scalarLong(c, "SELECT count(*) * 1000 + count(DISTINCT client) FROM " + T + "_conc"), 100_020L,
                "rows * 1000 + clients written by 20 clients x 5 transactions");
        }
        check(max <= POOL_SIZE, max + " server connections at once, pool_size is " + POOL_SIZE);
    }

    // ---------------------------------------------------------------- sharded
    static void shard_point_read() throws Exception {
        try (Connection c = connect();
             PreparedStatement p = c.prepareStatement("SELECT balance, name FROM accounts WHERE aid = ?")) {
            for (int round = 0; round < 2; round++) { // past prepareThreshold: named + binary
                for (long aid = 1; aid <= 20; aid++) {
                    p.setLong(1, aid);
                    try (ResultSet r = p.executeQuery()) {
                        check(r.next(), "aid " + aid + ": not found (round " + round + ")");
                        same(r.getLong(1) + "/" + r.getString(2), (10 * aid) + "/acct-" + aid, "aid " + aid);
                    }
                }
            }
        }
    }

    static void shard_point_write() throws Exception {
        long[] keys = new long[20];
        for (int i = 0; i < 20; i++) keys[i] = KEY_BASE + i;
        try (Connection c = connect()) {
            try (PreparedStatement p = c.prepareStatement("INSERT INTO accounts (aid, balance, name) VALUES (?, ?, 'w')")) {
                for (long k : keys) { p.setLong(1, k); p.setLong(2, k); p.executeUpdate(); }
            }
            try (PreparedStatement p = c.prepareStatement("UPDATE accounts SET balance = balance + 1 WHERE aid = ?")) {
                p.setLong(1, keys[3]);
                same(p.executeUpdate(), 1, "rows updated");
            }
            try (PreparedStatement p = c.prepareStatement("DELETE FROM accounts WHERE aid = ?")) {
                p.setLong(1, keys[5]);
                same(p.executeUpdate(), 1, "rows deleted");
            }
            try (PreparedStatement p = c.prepareStatement("SELECT balance FROM accounts WHERE aid = ?")) {
                for (long k : keys) {
                    p.setLong(1, k);
                    try (ResultSet r = p.executeQuery()) {
                        Long got = r.next() ? r.getLong(1) : null;
                        same(got, k == keys[5] ? null : k + (k == keys[3] ? 1 : 0), "aid " + k + " read back");
                    }
                }
            }
        }
        int[] ports = Arrays.stream(env("DRV_SHARD_PORTS", "").split(",")).mapToInt(Integer::parseInt).toArray();
        try (Connection d0 = connect(ports[0]); Connection d1 = connect(ports[1])) {
            for (long k : keys) {
                boolean on0;
                try (PreparedStatement p = d0.prepareStatement(
                    "SELECT satisfies_hash_partition('drv_hashref'::regclass, 2, 0, ?::bigint)")) {
                    p.setLong(1, k);
                    try (ResultSet r = p.executeQuery()) { r.next(); on0 = r.getBoolean(1); }
                }
                String rows = scalarLong(d0, "SELECT count(*) FROM accounts WHERE aid = " + k) + ","
                    + scalarLong(d1, "SELECT count(*) FROM accounts WHERE aid = " + k);
                same(rows, k == keys[5] ? "0,0" : on0 ? "1,0" : "0,1", "aid " + k + ": rows on shard 0,1");
            }
        }
    }

    static void shard_fanout_aggregate() throws Exception {
        try (Connection c = connect(); PreparedStatement p = c.prepareStatement(
            "SELECT count(*), sum(balance), min(aid), max(aid) FROM accounts WHERE aid BETWEEN 1 AND ?")) {
            p.setLong(1, 1000);
            try (ResultSet r = p.executeQuery()) {
                r.next();
                same(r.getLong(1) + "/" + r.getLong(2) + "/" + r.getLong(3) + "/" + r.getLong(4), "1000/5005000/1/1000",
                    "count/sum/min/max over both shards");
            }
        }
    }

    static void shard_order_limit() throws Exception {
        try (Connection c = connect(); Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT aid FROM accounts WHERE aid <= 1000 ORDER BY aid DESC LIMIT 5")) {
            List<Long> got = new ArrayList<>();
            while (r.next()) got.add(r.getLong(1));
            same(got.toString(), "[1000, 999, 998, 997, 996]", "ORDER BY aid DESC LIMIT 5");
        }
    }

    /** verify-full trusting a CA that did not sign the router's certificate is refused. */
    static void verify_full_refuses() throws Exception {
        try {
            connect("sslrootcert", env("DRV_TLS_OTHER_CA", "")).close();
        } catch (SQLException e) {
            for (Throwable t = e; t != null; t = t.getCause()) {
                if (t instanceof javax.net.ssl.SSLException) return;
            }
            throw new Fail("refused, but not by TLS: " + e);
        }
        throw new Fail("verify-full accepted a certificate from a CA the client does not trust");
    }

    public static void main(String[] args) throws Exception {
        String[] cases = TARGET.equals("single")
            ? new String[] {"connect_scram", "simple_reuse", "prepared_reuse", "types_text", "types_binary",
                "txn_commit_rollback", "txn_error_recovery", "copy_in_out", "big_result", "cancel",
                "stmt_timeout_local", "stmt_timeout_session", "concurrent_20_pool_5"}
            : new String[] {"shard_point_read", "shard_point_write", "shard_fanout_aggregate", "shard_order_limit"};
        if (TLS) {
            cases = Arrays.copyOf(cases, cases.length + 1);
            cases[cases.length - 1] = "verify_full_refuses";
        }
        System.out.println("PLAN " + String.join(" ", cases));
        DriverManager.setLoginTimeout(15);
        for (String name : cases) {
            long started = System.nanoTime();
            ExecutorService one = Executors.newSingleThreadExecutor();
            Future<?> f = one.submit(() -> {
                DriverCheck.class.getDeclaredMethod(name).invoke(null);
                return null;
            });
            String why = null;
            try {
                f.get(90, TimeUnit.SECONDS);
            } catch (TimeoutException e) {
                f.cancel(true);
                why = "did not finish within 90s";
            } catch (ExecutionException e) {
                Throwable t = e.getCause();
                if (t instanceof java.lang.reflect.InvocationTargetException) t = t.getCause();
                if (t instanceof Fail) {
                    why = t.getMessage();
                } else {
                    t.printStackTrace();
                    String state = t instanceof SQLException ? ((SQLException) t).getSQLState() + " " : "";
                    why = t.getClass().getSimpleName() + ": " + state + t.getMessage();
                }
            }
            one.shutdownNow();
            if (why == null) {
                System.out.printf("PASS %s (%.1fs)%n", name, (System.nanoTime() - started) / 1e9);
            } else {
                why = why.replace('\n', ' ');
                System.out.println("FAIL " + name + ": " + why.substring(0, Math.min(400, why.length())));
            }
        }
        System.exit(0);
    }
}
