"""The application corpus's data: a multi-tenant shop, generated (seeded), loaded three ways.

Why a second schema: the generated comparison (testing/compare) asks every routing
form over tables made to stress the merge; applications ask other things of other
tables. This is the schema a Django, Rails or SQLAlchemy shop has when it shards by
tenant (Citus's layout): every tenant-owned table carries `tenant_id` and is
distributed by it, so joins on the tenant are co-located; lookups are replicated;
one table (`reviews`) is distributed by its own id, so joins with it are not.

    tenants      (id)         distributed, 40 tenants, a few heavy
    users        (tenant_id)  distributed, ids tenant*1000 + n
    orders       (tenant_id)  distributed, ids tenant*100000 + n, jsonb metadata
    order_items  (tenant_id)  distributed, 1-5 lines per order
    reviews      (id)         distributed by its own key (not co-located)
    countries, products       replicated

Rows are loaded straight into PostgreSQL (never through the router) by the
comparison suite's loader (`dataset.load`): each shard keeps the rows
`satisfies_hash_partition` puts there.
"""

import datetime as dt
import json
import random
from decimal import Decimal

SEED = 20261205

SHARDED = {
    "tenants": ("id", "bigint"),
    "users": ("tenant_id", "bigint"),
    "orders": ("tenant_id", "bigint"),
    "order_items": ("tenant_id", "bigint"),
    "reviews": ("id", "bigint"),
}

SCHEMA = """
SET client_min_messages = warning;
CREATE TABLE countries (
    code char(2) PRIMARY KEY, name text NOT NULL, region text NOT NULL, vat_rate numeric(4,2));
CREATE TABLE products (
    id int PRIMARY KEY, sku text NOT NULL UNIQUE, name text NOT NULL, category text,
    price numeric(10,2) NOT NULL, active bool NOT NULL, attrs jsonb);
CREATE TABLE tenants (
    id bigint PRIMARY KEY, name text NOT NULL, plan text NOT NULL, country_code char(2),
    created_at timestamptz NOT NULL, settings jsonb);
CREATE TABLE users (
    tenant_id bigint NOT NULL, id bigint NOT NULL, email text NOT NULL, full_name text,
    country_code char(2), is_admin bool NOT NULL DEFAULT false, signup_at timestamptz NOT NULL,
    last_login_at timestamptz, PRIMARY KEY (tenant_id, id));
CREATE TABLE orders (
    tenant_id bigint NOT NULL, id bigint NOT NULL, user_id bigint NOT NULL, status text NOT NULL,
    total numeric(12,2) NOT NULL, currency text NOT NULL, placed_at timestamptz NOT NULL,
    shipped_at timestamptz, metadata jsonb, PRIMARY KEY (tenant_id, id));
CREATE TABLE order_items (
    tenant_id bigint NOT NULL, order_id bigint NOT NULL, line_no int NOT NULL,
    product_id int NOT NULL, quantity int NOT NULL, unit_price numeric(10,2) NOT NULL,
    discount numeric(4,2), PRIMARY KEY (tenant_id, order_id, line_no));
CREATE TABLE reviews (
    id bigint PRIMARY KEY, product_id int NOT NULL, tenant_id bigint NOT NULL, user_id bigint NOT NULL,
    rating smallint NOT NULL, body text, created_at timestamptz NOT NULL);
CREATE INDEX ON orders (user_id);
CREATE INDEX ON order_items (product_id);
"""

COLUMNS = {
    "countries": ("code", "name", "region", "vat_rate"),
    "products": ("id", "sku", "name", "category", "price", "active", "attrs"),
    "tenants": ("id", "name", "plan", "country_code", "created_at", "settings"),
    "users": ("tenant_id", "id", "email", "full_name", "country_code", "is_admin", "signup_at",
              "last_login_at"),
    "orders": ("tenant_id", "id", "user_id", "status", "total", "currency", "placed_at", "shipped_at",
               "metadata"),
    "order_items": ("tenant_id", "order_id", "line_no", "product_id", "quantity", "unit_price", "discount"),
    "reviews": ("id", "product_id", "tenant_id", "user_id", "rating", "body", "created_at"),
}

COUNTRIES = [("JP", "Japan", "APAC", Decimal("10.00")), ("FR", "France", "EMEA", Decimal("20.00")),
             ("DE", "Germany", "EMEA", Decimal("19.00")), ("US", "United States", "AMER", None),
             ("BR", "Brazil", "AMER", Decimal("17.00")), ("GB", "United Kingdom", "EMEA", Decimal("20.00")),
             ("CA", "Canada", "AMER", Decimal("5.00")), ("IN", "India", "APAC", Decimal("18.00")),
             ("AU", "Australia", "APAC", Decimal("10.00")), ("ES", "España", "EMEA", Decimal("21.00")),
             ("IT", "Italy", "EMEA", Decimal("22.00")), ("NL", "Netherlands", "EMEA", Decimal("21.00"))]
# Users and tenants also name countries the lookup table lacks, and none.
COUNTRY_CODES = [c[0] for c in COUNTRIES] + ["ZZ", None]
CATEGORIES = ["books", "games", "food", "tools", "music", "garden", None]
ADJ = ["Red", "Blue", "Tiny", "Giant", "Smart", "Classic", "Eco", "Ünique", "Quiet", "Rapid"]
NOUN = ["Lamp", "Chair", "Novel", "Puzzle", "Kettle", "Drill", "Guitar", "Seeds", "Tea", "Mug"]
PLANS = ["free", "pro", "enterprise"]
STATUSES = ["pending", "paid", "shipped", "cancelled", "refunded"]
CURRENCIES = ["USD", "EUR", "JPY"]
CHANNELS = ["web", "mobile", "api"]
FIRST = ["Aiko", "Ben", "Chloé", "Dmitri", "Eve", "Fatima", "Goro", "Hana", "Ivan", "José", "Kenji",
         "Lena", "Miyu", "Noah", "Olga", "Pierre", "Quinn", "Ren", "Sora", "Taro", "Uma", "Zoë"]
LAST = ["Sato", "Suzuki", "Müller", "Martin", "Silva", "Novak", "Ito", "Kim", "O'Neil", "Smith"]
WORDS = ["great", "bad", "fast shipping", "broken", "love it", "meh", "would buy again", "Ünicode ok"]

T0 = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)


class Data:
    def __init__(self):
        self.rows = {}


def _at(rng, start, days):
    return start + dt.timedelta(days=rng.randrange(days), seconds=rng.randrange(86400))


def _cents(rng, lo, hi):
    return Decimal(rng.randrange(lo, hi)).scaleb(-2)


def generate():
    """The data set; the same rows on every call."""
    rng = random.Random(SEED)
    d = Data()
    d.rows["countries"] = list(COUNTRIES)
    products = []
    for p in range(1, 61):
        attrs = None if p % 11 == 0 else json.dumps(
            {"color": rng.choice(["red", "blue", "green"]), "weight": rng.randrange(1, 50),
             "tags": rng.sample(["new", "sale", "eco", "gift"], rng.randrange(0, 3))})
        products.append((p, f"SKU-{p:04d}", f"{rng.choice(ADJ)} {rng.choice(NOUN)} {p}",
                         CATEGORIES[p % len(CATEGORIES)], _cents(rng, 199, 25000), p % 9 != 0, attrs))
    d.rows["products"] = products
    prices = {p[0]: p[4] for p in products}

    tenants, users, orders, items, reviews = [], [], [], [], []
    for t in range(1, 41):
        settings = None if t % 7 == 0 else json.dumps(
            {"theme": rng.choice(["dark", "light"]), "seats": rng.randrange(1, 200), "beta": rng.random() < 0.3})
        tenants.append((t, f"Tenant {t:02d}" + (" GmbH" if t % 5 == 0 else ""), rng.choice(PLANS),
                        rng.choice(COUNTRY_CODES), _at(rng, T0 - dt.timedelta(days=730), 700), settings))
        n_users = 120 if t in (3, 7) else rng.randrange(3, 40)
        tenant_users = []
        for n in range(1, n_users + 1):
            uid = t * 1000 + n
            signup = _at(rng, T0, 500)
            name = None if rng.random() < 0.06 else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            login = None if rng.random() < 0.2 else signup + dt.timedelta(days=rng.randrange(0, 200))
            users.append((t, uid, f"user{uid}@tenant{t}.example", name, rng.choice(COUNTRY_CODES),
                          rng.random() < 0.08, signup, login))
            tenant_users.append((uid, signup))
        oid = t * 100000
        for uid, signup in tenant_users:
            for _ in range(rng.choice([0, 0, 1, 2, 3, 4, 6, 9])):
                oid += rng.randrange(1, 3)
                status = rng.choice(STATUSES)
                placed = _at(rng, signup, 300)
                shipped = placed + dt.timedelta(days=rng.randrange(1, 10), hours=rng.randrange(24)) \
                    if status in ("shipped", "refunded") else None
                meta = None if rng.random() < 0.1 else json.dumps(
                    {"channel": rng.choice(CHANNELS), "gift": rng.random() < 0.2,
                     **({"coupon": rng.choice(["SPRING", "VIP", "WELCOME10"])} if rng.random() < 0.3 else {})})
                total = Decimal(0)
                for line in range(1, rng.randrange(2, 7)):
                    pid = rng.randrange(1, 61)
                    qty = rng.randrange(1, 6)
                    disc = None if rng.random() < 0.7 else Decimal(rng.randrange(5, 31)).scaleb(-2)
                    items.append((t, oid, line, pid, qty, prices[pid], disc))
                    total += prices[pid] * qty * (1 - (disc or 0))
                orders.append((t, oid, uid, status, total.quantize(Decimal("0.01")),
                               rng.choice(CURRENCIES), placed, shipped, meta))
                if rng.random() < 0.25:
                    reviews.append([None, rng.randrange(1, 61), t, uid, rng.randrange(1, 6),
                                    None if rng.random() < 0.2 else rng.choice(WORDS),
                                    placed + dt.timedelta(days=rng.randrange(1, 30))])
    rng.shuffle(reviews)
    for n, r in enumerate(reviews, 1):
        r[0] = n * 7
    d.rows["tenants"] = tenants
    d.rows["users"] = users
    d.rows["orders"] = orders
    d.rows["order_items"] = items
    d.rows["reviews"] = [tuple(r) for r in reviews]
    return d
