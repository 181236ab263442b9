-- The application corpus (issue 20, item 6): queries as Django, Rails, SQLAlchemy and
-- people write them, over testing/corpus/appdata.py's shop (tenants, users, orders,
-- order_items distributed by tenant; reviews by its own id; countries and products
-- replicated). Format: see corpus.py. `-- ordered` only where ORDER BY fixes the order
-- (every LIMIT below sits on a total order, else the reference itself would vary).

-- ===== Tenant-scoped reads (the key in WHERE): Django/Rails model access =====

-- name: django get tenant
SELECT "tenants"."id", "tenants"."name", "tenants"."plan", "tenants"."country_code", "tenants"."created_at", "tenants"."settings" FROM "tenants" WHERE "tenants"."id" = 7 LIMIT 21;

-- name: django user by pk and tenant
-- params: (7, 7005)
SELECT "users"."tenant_id", "users"."id", "users"."email", "users"."full_name" FROM "users" WHERE ("users"."tenant_id" = %s AND "users"."id" = %s) LIMIT 21;

-- name: django tenant users ordered
-- ordered
-- params: (3,)
SELECT "users"."id", "users"."email", "users"."is_admin" FROM "users" WHERE "users"."tenant_id" = %s ORDER BY "users"."signup_at" DESC, "users"."id" DESC LIMIT 25;

-- name: django tenant orders filter status
-- ordered
-- params: (7, 'paid')
SELECT "orders"."id", "orders"."total", "orders"."placed_at" FROM "orders" WHERE ("orders"."tenant_id" = %s AND "orders"."status" = %s) ORDER BY "orders"."placed_at" DESC, "orders"."id" DESC LIMIT 20;

-- name: django tenant order count
-- params: (3,)
SELECT COUNT(*) AS "__count" FROM "orders" WHERE "orders"."tenant_id" = %s;

-- name: rails exists user email
-- params: (7, 'user7010@tenant7.example')
SELECT 1 AS one FROM "users" WHERE "users"."tenant_id" = %s AND "users"."email" = %s LIMIT 1;

-- name: rails find order with items
-- ordered
-- params: (3, 300001)
SELECT "order_items".* FROM "order_items" WHERE "order_items"."tenant_id" = %s AND "order_items"."order_id" = %s ORDER BY "order_items"."line_no" ASC;

-- name: tenant revenue by month
-- ordered
-- params: (7,)
SELECT date_trunc('month', placed_at) AS month, count(*) AS orders, sum(total) AS revenue FROM orders WHERE tenant_id = %s AND status IN ('paid', 'shipped') GROUP BY 1 ORDER BY 1;

-- name: tenant top customers
-- ordered
-- params: (3,)
SELECT u.id, u.email, sum(o.total) AS spent FROM users u JOIN orders o ON o.tenant_id = u.tenant_id AND o.user_id = u.id WHERE u.tenant_id = %s GROUP BY u.id, u.email ORDER BY spent DESC, u.id LIMIT 10;

-- name: tenant order lines with product
-- ordered
-- params: (7,)
SELECT o.id, oi.line_no, p.sku, p.name, oi.quantity, oi.unit_price FROM orders o JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.id JOIN products p ON p.id = oi.product_id WHERE o.tenant_id = %s AND o.status = 'shipped' ORDER BY o.id, oi.line_no LIMIT 50;

-- name: tenant window rank orders
-- ordered
-- params: (7,)
SELECT user_id, id, total, rank() OVER (PARTITION BY user_id ORDER BY total DESC) AS r FROM orders WHERE tenant_id = %s ORDER BY user_id, r, id;

-- name: tenant cte with having
-- ordered
WITH spend AS (SELECT user_id, sum(total) AS s FROM orders WHERE tenant_id = 3 GROUP BY user_id) SELECT user_id, s FROM spend WHERE s > 1000 ORDER BY s DESC, user_id;

-- name: tenant distinct on latest order
-- ordered
SELECT DISTINCT ON (user_id) user_id, id, placed_at, status FROM orders WHERE tenant_id = 7 ORDER BY user_id, placed_at DESC, id DESC;

-- name: tenant exists items subquery
-- ordered
SELECT o.id, o.status FROM orders o WHERE o.tenant_id = 3 AND EXISTS (SELECT 1 FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id AND i.quantity >= 5) ORDER BY o.id;

-- name: tenant IN list of ids
-- ordered
SELECT id, user_id, total FROM orders WHERE tenant_id = 7 AND id IN (700001, 700003, 700005, 700010, 700020) ORDER BY id;

-- name: tenants any array
-- ordered
-- params: ([3, 7, 11],)
SELECT id, name, plan FROM tenants WHERE id = ANY(%s) ORDER BY id;

-- name: tenant users like
-- ordered
SELECT id, full_name FROM users WHERE tenant_id = 7 AND full_name LIKE 'A%' ORDER BY full_name, id;

-- name: tenant users ilike email
-- ordered
-- params: (3, '%USER30_%')
SELECT id, email FROM users WHERE tenant_id = %s AND email ILIKE %s ORDER BY id;

-- name: tenant status case
-- ordered
SELECT id, CASE WHEN status IN ('paid', 'shipped') THEN 'good' WHEN status = 'pending' THEN 'open' ELSE 'bad' END AS bucket FROM orders WHERE tenant_id = 11 ORDER BY id;

-- name: tenant jsonb channel
-- ordered
SELECT metadata->>'channel' AS channel, count(*) FROM orders WHERE tenant_id = 7 GROUP BY 1 ORDER BY 1 NULLS FIRST;

-- name: tenant string_agg items
-- ordered
SELECT order_id, string_agg(product_id::text, ',' ORDER BY line_no) AS products FROM order_items WHERE tenant_id = 3 AND order_id < 300030 GROUP BY order_id ORDER BY order_id;

-- name: tenant lateral last order
-- ordered
SELECT u.id, lo.id AS last_order, lo.placed_at FROM users u LEFT JOIN LATERAL (SELECT o.id, o.placed_at FROM orders o WHERE o.tenant_id = u.tenant_id AND o.user_id = u.id ORDER BY o.placed_at DESC, o.id DESC LIMIT 1) lo ON true WHERE u.tenant_id = 11 ORDER BY u.id;

-- name: tenant union all activity
-- ordered
SELECT 'order' AS kind, id, placed_at AS at FROM orders WHERE tenant_id = 5 UNION ALL SELECT 'signup', id, signup_at FROM users WHERE tenant_id = 5 ORDER BY at, kind, id;

-- name: tenant update rolled back style read
-- ordered
-- params: (7, 7001)
SELECT id, status FROM orders WHERE tenant_id = %s AND user_id = %s ORDER BY id;

-- ===== Cross-tenant lists, pagination and counts (no key) =====

-- name: admin list tenants page 1
-- ordered
SELECT "tenants"."id", "tenants"."name", "tenants"."plan" FROM "tenants" ORDER BY "tenants"."name" ASC, "tenants"."id" ASC LIMIT 10;

-- name: admin list tenants page 3
-- ordered
SELECT "tenants"."id", "tenants"."name" FROM "tenants" ORDER BY "tenants"."name" ASC, "tenants"."id" ASC LIMIT 10 OFFSET 20;

-- name: admin count tenants by plan
-- ordered
SELECT "tenants"."plan", COUNT("tenants"."id") AS "n" FROM "tenants" GROUP BY "tenants"."plan" ORDER BY "tenants"."plan" ASC;

-- name: recent orders all tenants
-- ordered
SELECT id, tenant_id, total, placed_at FROM orders ORDER BY placed_at DESC, id DESC LIMIT 25;

-- name: recent orders page offset param
-- ordered
-- params: (20, 40)
SELECT id, tenant_id, status FROM orders ORDER BY id LIMIT %s OFFSET %s;

-- name: count paid orders
SELECT COUNT(*) FROM orders WHERE status = 'paid';

-- name: count orders param filter
-- params: ('2024-01-01', 'cancelled')
SELECT COUNT(*) AS "__count" FROM "orders" WHERE ("orders"."placed_at" >= %s::timestamptz AND NOT ("orders"."status" = %s));

-- name: sum totals by currency
-- ordered
SELECT currency, count(*), sum(total), min(total), max(total) FROM orders GROUP BY currency ORDER BY currency;

-- name: avg total by status
-- ordered
SELECT status, avg(total) AS avg_total FROM orders GROUP BY status ORDER BY status;

-- name: rounded avg by status
-- ordered
SELECT status, round(avg(total), 2) AS avg_total, count(*) FROM orders GROUP BY status ORDER BY status;

-- name: avg cast numeric
-- ordered
SELECT currency, avg(total)::numeric(12,2) AS avg_total FROM orders GROUP BY currency ORDER BY currency;

-- name: orders per tenant having
-- ordered
SELECT tenant_id, count(*) AS n FROM orders GROUP BY tenant_id HAVING count(*) > 100 ORDER BY n DESC, tenant_id;

-- name: having on unselected aggregate
-- ordered
SELECT tenant_id FROM orders GROUP BY tenant_id HAVING sum(total) > 50000 ORDER BY tenant_id;

-- name: count distinct users with orders
SELECT count(DISTINCT user_id) FROM orders;

-- name: count distinct per status
-- ordered
SELECT status, count(DISTINCT tenant_id) AS tenants, count(DISTINCT user_id) AS buyers FROM orders GROUP BY status ORDER BY status;

-- name: users signed up per month
-- ordered
SELECT date_trunc('month', signup_at) AS m, count(*) FROM users GROUP BY m ORDER BY m;

-- name: orders per weekday
-- ordered
SELECT extract(isodow FROM placed_at) AS dow, count(*) FROM orders GROUP BY 1 ORDER BY 1;

-- name: users never logged in count
SELECT count(*) FROM users WHERE last_login_at IS NULL;

-- name: users nulls first listing
-- ordered
SELECT tenant_id, id, last_login_at FROM users WHERE tenant_id IN (1, 2, 4) ORDER BY last_login_at NULLS FIRST, id;

-- name: users nulls last desc
-- ordered
SELECT id, last_login_at FROM users ORDER BY last_login_at DESC NULLS LAST, id LIMIT 30;

-- name: bool_or admins per tenant
-- ordered
SELECT tenant_id, bool_or(is_admin) AS any_admin, bool_and(last_login_at IS NOT NULL) AS all_logged FROM users GROUP BY tenant_id ORDER BY tenant_id;

-- name: every shipped has date
SELECT every(shipped_at IS NOT NULL) FROM orders WHERE status = 'shipped';

-- name: stddev of totals
SELECT stddev(total), variance(total), stddev_pop(total), var_samp(total) FROM orders;

-- name: stddev per currency
-- ordered
SELECT currency, round(stddev_samp(total), 4) AS sd FROM orders GROUP BY currency ORDER BY currency;

-- name: filter aggregates
SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) FILTER (WHERE status = 'refunded') AS refunded, sum(total) FILTER (WHERE currency = 'EUR') AS eur FROM orders;

-- name: filter aggregates grouped
-- ordered
SELECT tenant_id, count(*) FILTER (WHERE status = 'cancelled') AS cancelled, count(*) AS total FROM orders GROUP BY tenant_id ORDER BY tenant_id;

-- name: percentile of totals
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total) AS median, percentile_disc(0.9) WITHIN GROUP (ORDER BY total) AS p90 FROM orders;

-- name: mode of status
SELECT mode() WITHIN GROUP (ORDER BY status) FROM orders;

-- name: distinct statuses
-- ordered
SELECT DISTINCT status FROM orders ORDER BY status;

-- name: distinct currencies unordered
SELECT DISTINCT currency FROM orders;

-- name: distinct tenant plan pairs
-- ordered
SELECT DISTINCT t.plan, o.currency FROM tenants t JOIN orders o ON o.tenant_id = t.id ORDER BY 1, 2;

-- name: large orders page
-- ordered
SELECT tenant_id, id, total FROM orders WHERE total > 500 ORDER BY total DESC, tenant_id, id LIMIT 15 OFFSET 5;

-- name: orders between dates
-- ordered
SELECT id, placed_at FROM orders WHERE placed_at BETWEEN '2023-03-01' AND '2023-03-08' ORDER BY placed_at, id;

-- name: orders interval recent
SELECT count(*) FROM orders WHERE placed_at > timestamptz '2024-06-01' - interval '30 days';

-- name: shipping delay stats
SELECT avg(shipped_at - placed_at) AS avg_delay, max(shipped_at - placed_at) AS max_delay FROM orders WHERE shipped_at IS NOT NULL;

-- name: shipping delay per status
-- ordered
SELECT status, min(shipped_at - placed_at), max(shipped_at - placed_at) FROM orders WHERE shipped_at IS NOT NULL GROUP BY status ORDER BY status;

-- name: coalesce last login
-- ordered
SELECT id, coalesce(last_login_at, signup_at) AS seen FROM users WHERE tenant_id = 12 ORDER BY id;

-- name: coalesce name listing all tenants
-- ordered
SELECT id, coalesce(full_name, '(anonymous)') AS name FROM users WHERE full_name IS NULL OR full_name LIKE 'Zoë%' ORDER BY id;

-- name: item quantity totals
-- ordered
SELECT product_id, sum(quantity) AS units FROM order_items GROUP BY product_id ORDER BY units DESC, product_id LIMIT 10;

-- name: revenue with discount expression
SELECT sum(quantity * unit_price * (1 - coalesce(discount, 0))) AS revenue FROM order_items;

-- name: sum of products of columns per tenant
-- ordered
SELECT tenant_id, sum(quantity * unit_price) AS gross FROM order_items GROUP BY tenant_id ORDER BY tenant_id;

-- name: min max dates
SELECT min(placed_at), max(placed_at), min(shipped_at), max(shipped_at) FROM orders;

-- name: count star and column
SELECT count(*), count(shipped_at), count(metadata) FROM orders;

-- name: rails pluck ids where
-- ordered
SELECT "users"."id" FROM "users" WHERE "users"."is_admin" = TRUE ORDER BY "users"."id" ASC;

-- name: rails where not null
SELECT COUNT(*) FROM "orders" WHERE "orders"."shipped_at" IS NOT NULL;

-- name: rails in list statuses
-- ordered
SELECT "orders"."id", "orders"."status" FROM "orders" WHERE "orders"."status" IN ('refunded', 'cancelled') AND "orders"."total" > 800 ORDER BY "orders"."id" ASC;

-- name: sqlalchemy select with params
-- ordered
-- params: (2, 'enterprise')
SELECT tenants.id AS tenants_id, tenants.name AS tenants_name FROM tenants WHERE tenants.id > %s AND tenants.plan = %s ORDER BY tenants.id;

-- name: sqlalchemy anon subquery count
SELECT count(*) AS count_1 FROM (SELECT orders.id AS orders_id, orders.tenant_id AS orders_tenant_id FROM orders WHERE orders.status = 'paid') AS anon_1;

-- name: not equal and not in
SELECT count(*) FROM orders WHERE status <> 'paid' AND currency NOT IN ('JPY');

-- name: array_agg ordered per tenant
-- ordered
SELECT tenant_id, array_agg(id ORDER BY id) AS admins FROM users WHERE is_admin GROUP BY tenant_id ORDER BY tenant_id;

-- name: string_agg emails admins
SELECT string_agg(email, '; ' ORDER BY email) FROM users WHERE is_admin;

-- name: jsonb_agg per status
-- ordered
SELECT status, jsonb_agg(id ORDER BY id) FILTER (WHERE total > 2000) AS big FROM orders GROUP BY status ORDER BY status;

-- name: bit_or of quantities
SELECT bit_or(quantity), bit_and(quantity) FROM order_items;

-- ===== Joins: co-located on the tenant, with replicated lookups, and not co-located =====

-- name: orders join users co-located
-- ordered
SELECT o.id, o.total, u.email FROM orders o INNER JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id WHERE o.total > 1500 ORDER BY o.id;

-- name: orders join tenants co-located agg
-- ordered
SELECT t.plan, count(*) AS orders, sum(o.total) AS revenue FROM orders o JOIN tenants t ON t.id = o.tenant_id GROUP BY t.plan ORDER BY t.plan;

-- name: django select_related tenant
-- ordered
SELECT "users"."id", "users"."email", "tenants"."id", "tenants"."name" FROM "users" INNER JOIN "tenants" ON ("users"."tenant_id" = "tenants"."id") WHERE "tenants"."plan" = 'enterprise' ORDER BY "users"."id" ASC LIMIT 40;

-- name: three way co-located join
-- ordered
SELECT t.name, count(DISTINCT o.id) AS orders, sum(oi.quantity) AS units FROM tenants t JOIN orders o ON o.tenant_id = t.id JOIN order_items oi ON oi.tenant_id = o.tenant_id AND oi.order_id = o.id GROUP BY t.name ORDER BY t.name;

-- name: join replicated products by category
-- ordered
SELECT p.category, sum(oi.quantity * oi.unit_price) AS gross FROM order_items oi JOIN products p ON p.id = oi.product_id GROUP BY p.category ORDER BY p.category NULLS LAST;

-- name: join replicated countries users
-- ordered
SELECT c.region, count(*) AS users FROM users u JOIN countries c ON c.code = u.country_code GROUP BY c.region ORDER BY c.region;

-- name: left join countries keeps unknown
-- ordered
SELECT u.country_code, c.name, count(*) FROM users u LEFT JOIN countries c ON c.code = u.country_code GROUP BY u.country_code, c.name ORDER BY u.country_code NULLS FIRST;

-- name: tenants with country name
-- ordered
SELECT t.id, t.name, coalesce(c.name, 'unknown') AS country FROM tenants t LEFT JOIN countries c ON c.code = t.country_code ORDER BY t.id;

-- name: inactive products sold
-- ordered
SELECT p.sku, count(*) AS lines FROM order_items oi JOIN products p ON p.id = oi.product_id AND NOT p.active GROUP BY p.sku ORDER BY p.sku;

-- name: users left join orders count
-- ordered
SELECT u.tenant_id, u.id, count(o.id) AS n FROM users u LEFT JOIN orders o ON o.tenant_id = u.tenant_id AND o.user_id = u.id WHERE u.tenant_id IN (2, 9) GROUP BY u.tenant_id, u.id ORDER BY u.tenant_id, u.id;

-- name: users without orders anti join
-- ordered
SELECT u.tenant_id, u.id FROM users u LEFT JOIN orders o ON o.tenant_id = u.tenant_id AND o.user_id = u.id WHERE o.id IS NULL AND u.tenant_id < 6 ORDER BY u.tenant_id, u.id;

-- name: reviews join products
-- ordered
SELECT p.category, round(avg(r.rating), 3) AS avg_rating, count(*) FROM reviews r JOIN products p ON p.id = r.product_id GROUP BY p.category ORDER BY p.category NULLS FIRST;

-- name: reviews join users not co-located
-- ordered
SELECT r.id, r.rating, u.email FROM reviews r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id WHERE r.rating = 1 ORDER BY r.id LIMIT 20;

-- name: reviews per tenant plan not co-located
-- ordered
SELECT t.plan, count(*) FROM reviews r JOIN tenants t ON t.id = r.tenant_id GROUP BY t.plan ORDER BY t.plan;

-- name: orders join users on non key
SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id WHERE u.is_admin;

-- name: right join products
-- ordered
SELECT p.id, count(oi.order_id) AS lines FROM order_items oi RIGHT JOIN products p ON p.id = oi.product_id WHERE p.id <= 10 GROUP BY p.id ORDER BY p.id;

-- name: full join tenants countries
-- ordered
SELECT t.id, c.code FROM tenants t FULL JOIN countries c ON c.code = t.country_code WHERE t.id IS NULL OR t.id < 8 ORDER BY t.id NULLS FIRST, c.code;

-- name: join using tenant
-- ordered
SELECT tenant_id, t.name, count(*) FROM tenants t JOIN users u ON u.tenant_id = t.id GROUP BY tenant_id, t.name HAVING count(*) >= 100 ORDER BY tenant_id;

-- ===== Subqueries in WHERE, SELECT and FROM =====

-- name: in subquery co-located
SELECT count(*) FROM orders o WHERE (o.tenant_id, o.user_id) IN (SELECT u.tenant_id, u.id FROM users u WHERE u.is_admin);

-- name: in subquery tenant key
-- ordered
SELECT id, name FROM tenants WHERE id IN (SELECT tenant_id FROM orders WHERE total > 3000) ORDER BY id;

-- name: not in subquery tenant key
-- ordered
SELECT id, name FROM tenants WHERE id NOT IN (SELECT tenant_id FROM orders WHERE status = 'refunded' AND total > 1000) ORDER BY id;

-- name: exists tenant has enterprise
-- ordered
SELECT u.id FROM users u WHERE u.is_admin AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = u.tenant_id AND t.plan = 'enterprise') ORDER BY u.id;

-- name: not exists orders for user
SELECT count(*) FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = u.tenant_id AND o.user_id = u.id);

-- name: in subquery replicated products
SELECT count(*) FROM order_items WHERE product_id IN (SELECT id FROM products WHERE category = 'books');

-- name: in subquery not co-located products reviewed
-- ordered
SELECT id, sku FROM products WHERE id IN (SELECT product_id FROM reviews WHERE rating = 5) ORDER BY id;

-- name: exists from replicated outer
-- ordered
SELECT p.id FROM products p WHERE EXISTS (SELECT 1 FROM order_items oi WHERE oi.product_id = p.id AND oi.quantity = 5) ORDER BY p.id;

-- name: scalar subquery max placed
-- ordered
SELECT tenant_id, id, placed_at FROM orders WHERE placed_at = (SELECT max(placed_at) FROM orders) ORDER BY tenant_id, id;

-- name: scalar subquery above average
SELECT count(*) FROM orders WHERE total > (SELECT avg(total) FROM orders);

-- name: correlated scalar in select list co-located
-- ordered
SELECT t.id, t.name, (SELECT count(*) FROM users u WHERE u.tenant_id = t.id) AS users FROM tenants t ORDER BY t.id;

-- name: correlated scalar last order date
-- ordered
SELECT u.id, (SELECT max(o.placed_at) FROM orders o WHERE o.tenant_id = u.tenant_id AND o.user_id = u.id) AS last FROM users u WHERE u.tenant_id = 9 ORDER BY u.id;

-- name: scalar subquery in select no table
SELECT (SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM users) AS users;

-- name: exists no outer table
SELECT EXISTS (SELECT 1 FROM orders WHERE total > 4000);

-- name: from subquery aggregate over aggregate
SELECT avg(n) FROM (SELECT tenant_id, count(*) AS n FROM orders GROUP BY tenant_id) s;

-- name: from subquery max per user then count
-- ordered
SELECT status, count(*) FROM (SELECT DISTINCT ON (tenant_id, user_id) tenant_id, user_id, status FROM orders ORDER BY tenant_id, user_id, placed_at DESC, id DESC) latest GROUP BY status ORDER BY status;

-- name: from subquery limited then aggregated
SELECT sum(total) FROM (SELECT total FROM orders ORDER BY total DESC, id LIMIT 100) top;

-- name: from subquery plain filter
-- ordered
SELECT s.tenant_id, s.n FROM (SELECT tenant_id, count(*) AS n FROM users GROUP BY tenant_id) s WHERE s.n > 30 ORDER BY s.tenant_id;

-- name: any array subquery
SELECT count(*) FROM orders WHERE user_id = ANY (SELECT id FROM users WHERE full_name IS NULL);

-- name: array subquery select
SELECT ARRAY(SELECT id FROM tenants WHERE plan = 'free' ORDER BY id);

-- name: all comparison subquery
SELECT count(*) FROM products WHERE price > ALL (SELECT unit_price FROM order_items WHERE tenant_id = 3 AND product_id < 5);

-- name: subquery in having
-- ordered
SELECT currency, count(*) FROM orders GROUP BY currency HAVING count(*) > (SELECT count(*) / 4 FROM orders) ORDER BY currency;

-- ===== CTEs =====

-- name: cte simple filter
-- ordered
WITH paid AS (SELECT tenant_id, id, total FROM orders WHERE status = 'paid') SELECT tenant_id, count(*), sum(total) FROM paid GROUP BY tenant_id ORDER BY tenant_id;

-- name: cte join back co-located
-- ordered
WITH big AS (SELECT tenant_id, id FROM orders WHERE total > 2500) SELECT b.id, count(*) AS lines FROM big b JOIN order_items i ON i.tenant_id = b.tenant_id AND i.order_id = b.id GROUP BY b.id ORDER BY b.id;

-- name: cte limit joined back
-- ordered
WITH top AS (SELECT tenant_id, id, total FROM orders ORDER BY total DESC, id LIMIT 10) SELECT top.id, top.total, u.email FROM top JOIN users u ON u.tenant_id = top.tenant_id AND u.id = (SELECT user_id FROM orders o WHERE o.tenant_id = top.tenant_id AND o.id = top.id) ORDER BY top.total DESC, top.id;

-- name: cte aggregates two levels
-- ordered
WITH per_user AS (SELECT tenant_id, user_id, sum(total) AS spent FROM orders GROUP BY tenant_id, user_id), per_tenant AS (SELECT tenant_id, max(spent) AS best FROM per_user GROUP BY tenant_id) SELECT tenant_id, best FROM per_tenant ORDER BY best DESC, tenant_id LIMIT 10;

-- name: cte with window
-- ordered
WITH ranked AS (SELECT tenant_id, id, total, row_number() OVER (PARTITION BY tenant_id ORDER BY total DESC, id) AS rn FROM orders) SELECT tenant_id, id, total FROM ranked WHERE rn <= 2 ORDER BY tenant_id, rn;

-- name: cte used twice
-- ordered
WITH t AS (SELECT tenant_id, count(*) AS n FROM orders GROUP BY tenant_id) SELECT a.tenant_id, a.n FROM t a WHERE a.n = (SELECT max(n) FROM t) ORDER BY a.tenant_id;

-- name: cte replicated only
-- ordered
WITH cats AS (SELECT DISTINCT category FROM products WHERE category IS NOT NULL) SELECT category FROM cats ORDER BY category;

-- name: cte replicated joined to distributed
-- ordered
WITH expensive AS (SELECT id FROM products WHERE price > 200) SELECT oi.tenant_id, count(*) FROM order_items oi JOIN expensive e ON e.id = oi.product_id GROUP BY oi.tenant_id ORDER BY oi.tenant_id;

-- name: recursive cte numbers with join
-- ordered
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT n.i, count(o.id) FROM n LEFT JOIN orders o ON o.tenant_id = 3 AND extract(month FROM o.placed_at) = n.i GROUP BY n.i ORDER BY n.i;

-- name: cte materialized tenant stats
-- ordered
WITH s AS MATERIALIZED (SELECT tenant_id, count(*) AS users, count(*) FILTER (WHERE is_admin) AS admins FROM users GROUP BY tenant_id) SELECT t.name, s.users, s.admins FROM tenants t JOIN s ON s.tenant_id = t.id ORDER BY t.id;

-- name: cte monthly cohort
-- ordered
WITH cohort AS (SELECT tenant_id, id, date_trunc('quarter', signup_at) AS q FROM users) SELECT c.q, count(DISTINCT c.id) AS users, count(o.id) AS orders FROM cohort c LEFT JOIN orders o ON o.tenant_id = c.tenant_id AND o.user_id = c.id GROUP BY c.q ORDER BY c.q;

-- ===== Window functions =====

-- name: row_number per tenant
-- ordered
SELECT tenant_id, id, row_number() OVER (PARTITION BY tenant_id ORDER BY signup_at, id) AS n FROM users WHERE tenant_id <= 4 ORDER BY tenant_id, n;

-- name: rank totals global
-- ordered
SELECT id, total, rank() OVER (ORDER BY total DESC) AS r FROM orders ORDER BY r, id LIMIT 20;

-- name: dense_rank by status
-- ordered
SELECT status, id, dense_rank() OVER (PARTITION BY status ORDER BY total DESC) AS dr FROM orders WHERE tenant_id = 7 ORDER BY status, dr, id;

-- name: lag between orders
-- ordered
SELECT user_id, id, placed_at - lag(placed_at) OVER (PARTITION BY user_id ORDER BY placed_at, id) AS gap FROM orders WHERE tenant_id = 3 ORDER BY user_id, placed_at, id;

-- name: lead next order cross tenant
-- ordered
SELECT tenant_id, id, lead(id) OVER (PARTITION BY tenant_id ORDER BY id) AS next_id FROM orders WHERE status = 'refunded' ORDER BY tenant_id, id;

-- name: running total per tenant
-- ordered
SELECT tenant_id, id, sum(total) OVER (PARTITION BY tenant_id ORDER BY id) AS running FROM orders WHERE tenant_id IN (1, 2) ORDER BY tenant_id, id;

-- name: share of tenant revenue
-- ordered
SELECT tenant_id, sum(total) AS rev, round(100 * sum(total) / sum(sum(total)) OVER (), 2) AS pct FROM orders GROUP BY tenant_id ORDER BY tenant_id;

-- name: window count over all
-- ordered
SELECT id, count(*) OVER () AS all_tenants FROM tenants ORDER BY id;

-- name: ntile quartiles
-- ordered
SELECT id, total, ntile(4) OVER (ORDER BY total, id) AS q FROM orders WHERE tenant_id = 11 ORDER BY id;

-- name: first_value per user
-- ordered
SELECT DISTINCT user_id, first_value(id) OVER (PARTITION BY user_id ORDER BY placed_at, id) AS first_order FROM orders WHERE tenant_id = 9 ORDER BY user_id;

-- name: window with named window clause
-- ordered
SELECT tenant_id, id, avg(total) OVER w AS avg_to_date FROM orders WHERE tenant_id = 4 WINDOW w AS (PARTITION BY tenant_id ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) ORDER BY id;

-- name: top product per category window
-- ordered
SELECT category, sku, units FROM (SELECT p.category, p.sku, sum(oi.quantity) AS units, rank() OVER (PARTITION BY p.category ORDER BY sum(oi.quantity) DESC) AS r FROM order_items oi JOIN products p ON p.id = oi.product_id GROUP BY p.category, p.sku) s WHERE r = 1 ORDER BY category NULLS FIRST, sku;

-- ===== DISTINCT ON, CASE, string and date functions =====

-- name: distinct on first signup per tenant
-- ordered
SELECT DISTINCT ON (tenant_id) tenant_id, id, email FROM users ORDER BY tenant_id, signup_at, id;

-- name: distinct on latest review per product
-- ordered
SELECT DISTINCT ON (product_id) product_id, id, rating FROM reviews ORDER BY product_id, created_at DESC, id DESC;

-- name: case buckets count
-- ordered
SELECT CASE WHEN total < 100 THEN 'small' WHEN total < 1000 THEN 'medium' ELSE 'large' END AS size, count(*) FROM orders GROUP BY 1 ORDER BY 1;

-- name: case in order by
-- ordered
SELECT id, status FROM orders WHERE tenant_id = 13 ORDER BY CASE status WHEN 'pending' THEN 0 WHEN 'paid' THEN 1 ELSE 2 END, id;

-- name: lower email domain
-- ordered
SELECT split_part(email, '@', 2) AS domain, count(*) FROM users GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;

-- name: upper and concat
-- ordered
SELECT id, upper(coalesce(full_name, '')) || ' <' || email || '>' AS display FROM users WHERE tenant_id = 20 ORDER BY id;

-- name: length and substring
-- ordered
SELECT substring(full_name from 1 for 3) AS prefix, count(*) FROM users WHERE full_name IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 10;

-- name: date_trunc week to_char
-- ordered
SELECT to_char(date_trunc('week', placed_at), 'YYYY-MM-DD') AS week, count(*) FROM orders WHERE placed_at >= '2024-01-01' AND placed_at < '2024-02-15' GROUP BY 1 ORDER BY 1;

-- name: age in days
-- ordered
SELECT id, (shipped_at::date - placed_at::date) AS days FROM orders WHERE tenant_id = 7 AND shipped_at IS NOT NULL ORDER BY id;

-- name: interval arithmetic filter
SELECT count(*) FROM orders WHERE shipped_at > placed_at + interval '5 days';

-- name: generate_series calendar join
-- ordered
SELECT d::date AS day, count(o.id) FROM generate_series('2024-03-01'::timestamptz, '2024-03-07', '1 day') d LEFT JOIN orders o ON o.placed_at >= d AND o.placed_at < d + interval '1 day' GROUP BY d ORDER BY d;

-- name: greatest least
-- ordered
SELECT id, greatest(signup_at, last_login_at) AS latest FROM users WHERE tenant_id = 6 ORDER BY id;

-- name: nullif division
-- ordered
SELECT tenant_id, round(sum(total) / nullif(count(*), 0), 2) AS aov FROM orders GROUP BY tenant_id ORDER BY tenant_id;

-- name: expression over aggregates ratio
-- ordered
SELECT status, sum(total) / count(*) AS ratio FROM orders GROUP BY status ORDER BY status;

-- name: boolean expression column
-- ordered
SELECT id, total > 1000 AS big, shipped_at IS NULL AS unshipped FROM orders WHERE tenant_id = 21 ORDER BY id;

-- name: regexp match
SELECT count(*) FROM users WHERE email ~ '^user3[0-9]{3}@';

-- name: similar escape like
SELECT count(*) FROM tenants WHERE name LIKE '%GmbH';

-- name: cast to text and numeric
-- ordered
SELECT id, total::text, total::int AS whole FROM orders WHERE tenant_id = 2 ORDER BY id;

-- ===== Set operations =====

-- name: union all two tables
SELECT id FROM tenants WHERE plan = 'free' UNION ALL SELECT tenant_id FROM users WHERE is_admin;

-- name: union all ordered limit
-- ordered
SELECT id, 'tenant' AS src FROM tenants UNION ALL SELECT id, 'user' FROM users ORDER BY 1 DESC, 2 LIMIT 15;

-- name: union all with offset
-- ordered
SELECT tenant_id, id FROM orders WHERE status = 'refunded' UNION ALL SELECT tenant_id, id FROM users WHERE is_admin ORDER BY tenant_id, id LIMIT 10 OFFSET 10;

-- name: union all counted in from
SELECT count(*) FROM (SELECT user_id FROM orders WHERE total > 2000 UNION ALL SELECT user_id FROM reviews WHERE rating = 5) s;

-- name: union all grouped in from
-- ordered
SELECT kind, count(*) FROM (SELECT 'order' AS kind FROM orders UNION ALL SELECT 'review' FROM reviews UNION ALL SELECT 'user' FROM users) s GROUP BY kind ORDER BY kind;

-- name: union all three branches
-- ordered
SELECT tenant_id, id, 'paid' AS s FROM orders WHERE status = 'paid' AND total > 3000 UNION ALL SELECT tenant_id, id, 'shipped' FROM orders WHERE status = 'shipped' AND total > 3000 UNION ALL SELECT tenant_id, id, 'refunded' FROM orders WHERE status = 'refunded' AND total > 3000 ORDER BY tenant_id, id;

-- name: union all with replicated branch
-- ordered
SELECT 'product' AS kind, id::bigint AS id FROM products WHERE price > 240 UNION ALL SELECT 'tenant', id FROM tenants WHERE plan = 'pro' ORDER BY kind, id;

-- name: union all of joins
-- ordered
SELECT o.id, u.email FROM orders o JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id WHERE o.total > 3500 UNION ALL SELECT r.id, u.email FROM reviews r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id WHERE r.rating = 1 AND r.id < 300 ORDER BY 1, 2;

-- name: union all with tenant keys
-- ordered
-- params: (3, 7)
SELECT id FROM orders WHERE tenant_id = %s AND status = 'refunded' UNION ALL SELECT id FROM orders WHERE tenant_id = %s AND status = 'refunded' ORDER BY id;

-- name: union distinct
-- ordered
SELECT country_code FROM tenants UNION SELECT country_code FROM users ORDER BY 1 NULLS FIRST;

-- name: union distinct unordered
SELECT user_id FROM orders WHERE total > 3000 UNION SELECT user_id FROM reviews WHERE rating = 5;

-- name: intersect
-- ordered
SELECT tenant_id, user_id FROM orders WHERE status = 'refunded' INTERSECT SELECT tenant_id, user_id FROM reviews WHERE rating <= 2 ORDER BY 1, 2;

-- name: except
SELECT count(*) FROM (SELECT tenant_id, id FROM users EXCEPT SELECT tenant_id, user_id FROM orders) s;

-- name: union all in cte
-- ordered
WITH feed AS (SELECT tenant_id, placed_at AS at, 'order' AS kind FROM orders UNION ALL SELECT tenant_id, created_at, 'review' FROM reviews) SELECT kind, count(*), min(at), max(at) FROM feed WHERE tenant_id = 7 GROUP BY kind ORDER BY kind;

-- ===== LATERAL =====

-- name: lateral top two orders per tenant
-- ordered
SELECT t.id, x.id AS order_id, x.total FROM tenants t CROSS JOIN LATERAL (SELECT o.id, o.total FROM orders o WHERE o.tenant_id = t.id ORDER BY o.total DESC, o.id LIMIT 2) x ORDER BY t.id, x.total DESC, x.id;

-- name: lateral items count per order
-- ordered
SELECT o.id, c.n FROM orders o, LATERAL (SELECT count(*) AS n FROM order_items i WHERE i.tenant_id = o.tenant_id AND i.order_id = o.id) c WHERE o.tenant_id = 5 ORDER BY o.id;

-- name: lateral from replicated products
-- ordered
SELECT p.id, s.units FROM products p CROSS JOIN LATERAL (SELECT coalesce(sum(quantity), 0) AS units FROM order_items oi WHERE oi.product_id = p.id) s WHERE p.id <= 8 ORDER BY p.id;

-- name: lateral jsonb_each settings
-- ordered
SELECT t.id, s.key, s.value FROM tenants t, LATERAL jsonb_each(t.settings) s WHERE t.id <= 5 ORDER BY t.id, s.key;

-- name: lateral unnest tags
-- ordered
SELECT tag, count(*) FROM products p, LATERAL jsonb_array_elements_text(p.attrs->'tags') tag GROUP BY tag ORDER BY tag;

-- ===== json / jsonb =====

-- name: jsonb containment
SELECT count(*) FROM orders WHERE metadata @> '{"gift": true}';

-- name: jsonb key exists
-- ordered
SELECT metadata->>'coupon' AS coupon, count(*) FROM orders WHERE metadata ? 'coupon' GROUP BY 1 ORDER BY 1;

-- name: jsonb path filter tenant settings
-- ordered
SELECT id, (settings->>'seats')::int AS seats FROM tenants WHERE (settings->>'beta')::boolean ORDER BY id;

-- name: jsonb_build_object rows
-- ordered
SELECT jsonb_build_object('id', id, 'status', status, 'total', total) AS doc FROM orders WHERE tenant_id = 17 ORDER BY id;

-- name: json_agg per tenant ordered
-- ordered
SELECT tenant_id, json_agg(json_build_object('id', id, 'email', email) ORDER BY id) AS users FROM users WHERE tenant_id IN (1, 8) GROUP BY tenant_id ORDER BY tenant_id;

-- name: jsonb_agg all admins
SELECT jsonb_agg(id ORDER BY id) FROM users WHERE is_admin;

-- name: jsonb_object_agg per tenant
-- ordered
SELECT tenant_id, jsonb_object_agg(status, n) FROM (SELECT tenant_id, status, count(*) AS n FROM orders WHERE tenant_id <= 3 GROUP BY tenant_id, status) s GROUP BY tenant_id ORDER BY tenant_id;

-- name: jsonb arrow in group by all tenants
-- ordered
SELECT metadata->>'channel' AS ch, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY 1 NULLS LAST;

-- name: product attrs color join
-- ordered
SELECT p.attrs->>'color' AS color, sum(oi.quantity) FROM order_items oi JOIN products p ON p.id = oi.product_id GROUP BY 1 ORDER BY 1 NULLS FIRST;

-- name: row_to_json of tenant
SELECT row_to_json(t) FROM (SELECT id, name, plan FROM tenants WHERE id = 12) t;

-- ===== More of what ORMs send =====

-- name: keyset pagination
-- ordered
-- params: ('2024-05-01T00:00:00+00:00', 500000)
SELECT id, tenant_id, placed_at FROM orders WHERE (placed_at, id) < (%s::timestamptz, %s) ORDER BY placed_at DESC, id DESC LIMIT 20;

-- name: django exists across tenants
SELECT 1 AS "a" FROM "orders" WHERE "orders"."total" > 3500 LIMIT 1;

-- name: count over for pagination
-- ordered
SELECT id, total, count(*) OVER () AS full_count FROM orders WHERE status = 'paid' ORDER BY id LIMIT 10;

-- name: any array of order ids cross tenant
-- ordered
-- params: ([300004, 700001, 1100002, 999, 2300003],)
SELECT tenant_id, id, status FROM orders WHERE id = ANY(%s) ORDER BY id;

-- name: rails group count hash
SELECT "orders"."currency", COUNT(*) AS "count_all" FROM "orders" GROUP BY "orders"."currency";

-- name: rails sum with where in
-- params: ('paid', 'shipped')
SELECT SUM("orders"."total") FROM "orders" WHERE "orders"."status" IN (%s, %s);

-- name: sqlalchemy func count group having param
-- ordered
-- params: (20,)
SELECT users.tenant_id, count(users.id) AS count_1 FROM users GROUP BY users.tenant_id HAVING count(users.id) > %s ORDER BY users.tenant_id;

-- name: exists correlated on non key
SELECT count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = o.user_id AND r.rating = 5);

-- name: in subquery with limit
-- ordered
SELECT id, name FROM tenants WHERE id IN (SELECT tenant_id FROM orders ORDER BY total DESC, id LIMIT 5) ORDER BY id;

-- name: order by aggregate desc with tiebreak
-- ordered
SELECT user_id, count(*) AS n FROM orders GROUP BY user_id ORDER BY n DESC, user_id LIMIT 10;

-- name: min max text
SELECT min(email), max(email), min(full_name), max(full_name) FROM users;

-- name: avg integer column
-- ordered
SELECT tenant_id, avg(quantity) FROM order_items GROUP BY tenant_id ORDER BY tenant_id;
