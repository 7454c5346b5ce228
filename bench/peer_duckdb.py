#!/usr/bin/env python3
"""Recompute peer: every tag and segment of examples/retail/retail.eql (or, with
--model stores, of bench/models/stores.eql) computed from scratch with DuckDB
SQL, the way a team would run it on a schedule.

    python3 bench/peer_duckdb.py --events DATA.ndjson [--model retail|stores] [--now RFC3339]
                                 [--threads 2] [--check SEGFLOW_DUMP.ndjson] [--repeat 5]

Two phases are timed separately (median of --repeat runs):
  load       parse the NDJSON in Python (entity records resolved in file order into
             final attribute tables; events kept raw, duplicates included), write
             typed CSV files and read them into DuckDB tables.
  recompute  the SQL job over the loaded tables: deduplicate events (per event
             type by id, first delivery wins), fix `now`, compute every tag and
             segment of all users, stores and products into result tables.
--check compares the result with `segflow run ... --out DUMP` (one JSON line per
instance) and reports every mismatching attribute, tag or segment list.
Decimals are DECIMAL(38,6) and compared exactly; timestamps are epoch ms BIGINT.
"""
import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal

import duckdb

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MS = {"d": 86_400_000, "h": 3_600_000}

# ---------------------------------------------------------------- the model

# event type -> [(field, kind)], kind: str | ref | int | dec
EVENTS = {
    "order": [("user", "ref"), ("store", "ref"), ("product", "ref"), ("amount", "dec"), ("quantity", "int")],
    "page_view": [("user", "ref"), ("url", "str"), ("channel", "str"), ("product", "ref")],
    "add_to_cart": [("user", "ref"), ("product", "ref"), ("quantity", "int")],
    "referral": [("referrer", "ref"), ("referee", "ref")],
}
# entity -> (key column, [(attribute, kind, referenced entity)])
ENTITIES = {
    "product": ("sku", [("category", "str", None), ("price", "dec", None), ("weight_kg", "float", None)]),
    "store": ("id", [("city", "str", None), ("region", "str", None)]),
    "user": ("id", [("name", "str", None), ("city", "str", None), ("signup_at", "ts", None),
                    ("home_store", "ref", "store"), ("birth_year", "int", None), ("vip", "bool", None)]),
}
SQL_TYPE = {"str": "VARCHAR", "ref": "VARCHAR", "int": "BIGINT", "dec": "DECIMAL(38,6)",
            "float": "DOUBLE", "ts": "BIGINT", "bool": "BOOLEAN"}

# tag -> kind, per entity, in the order the result tables carry them
RETAIL_TAGS = {
    "user": [("orders_30d", "int"), ("spend_90d", "dec"), ("app_views_7d", "int"), ("shoe_spend_90d", "dec"),
             ("last_order_at", "ts"), ("first_order_at", "ts"), ("stores_visited", "int"), ("top_channel", "str"),
             ("avg_order_value", "dec"), ("first_channel", "str"), ("last_category", "str"),
             ("cart_units_7d", "int"), ("heaviest_item_kg", "float"), ("referrals", "int"),
             ("was_referred", "bool"), ("tier", "str"), ("home_city", "str"), ("home_store_revenue_7d", "dec"),
             ("age_band", "int")],
    "store": [("revenue_7d", "dec"), ("orders_24h", "int"), ("visitors_30d", "int"),
              ("share_of_vip_orders", "int")],
    "product": [("buyers_30d", "int"), ("units_30d", "int"), ("price_band", "str")],
}
RETAIL_SEGMENTS = {
    "user": ["high_value", "lapsed_gold", "hot_store_regulars", "app_shanghai", "window_shoppers",
             "big_city_vips", "shoe_lovers", "loyal_not_lapsed", "promo_candidates", "referrers"],
    "store": ["hot_stores"],
    "product": ["popular_products"],
}


def parse_ts(v):
    """RFC 3339 string or epoch-ms integer -> epoch ms."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    d = dt.datetime.fromisoformat(v)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    delta = d - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def fmt_ts(ms):
    d = EPOCH + dt.timedelta(milliseconds=ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_dec(v):
    return v if isinstance(v, Decimal) else Decimal(v) if isinstance(v, (int, str)) else Decimal(str(v))


CONVERT = {
    "str": lambda v: v, "ref": lambda v: v, "int": int, "dec": to_dec, "float": float,
    "ts": parse_ts, "bool": bool,
}


def csv_cell(v):
    """NULL is an unquoted empty field; strings are always quoted, so "" stays an empty string."""
    if v is None:
        return ""
    if isinstance(v, str):
        return '"' + v.replace('"', '""') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)  # int, float (repr round-trips), Decimal (exact)


# ---------------------------------------------------------------- loading

def parse(path):
    """Return {table: rows}. Events keep their file position (seq) and duplicates;
    entities are the final attributes after applying every record in file order."""
    ev_rows = {e: [] for e in EVENTS}
    attrs = {e: {} for e in ENTITIES}      # entity -> id -> {attribute: value}
    named = {e: set() for e in ENTITIES}   # instances named by entity records (or their references)
    kinds = {e: {a: (k, r) for a, k, r in ENTITIES[e][1]} for e in ENTITIES}
    loads = json.loads
    with open(path, encoding="utf-8") as f:
        for seq, line in enumerate(f):
            if not line.strip():
                continue
            r = loads(line, parse_float=Decimal)
            ev = r.get("event")
            if ev is not None:
                row = [seq, r.get("id"), parse_ts(r["at"])]
                for field, kind in EVENTS[ev]:
                    v = r.get(field)
                    row.append(None if v is None else CONVERT[kind](v))
                ev_rows[ev].append(row)
                continue
            ent, key = r["entity"], r["id"]
            named[ent].add(key)
            cur = attrs[ent].setdefault(key, {})
            if r.get("delete"):
                cur.clear()
            for a in r.get("unset", ()):
                cur.pop(a, None)
            for a, v in (r.get("set") or {}).items():
                if a not in kinds[ent]:
                    continue  # unknown attribute: segflow warns and ignores it
                kind, target = kinds[ent][a]
                if v is None:
                    cur.pop(a, None)
                else:
                    cur[a] = CONVERT[kind](v)
                    if target:
                        named[target].add(v)
    tables = {}
    for ev, rows in ev_rows.items():
        tables["ev_" + ev] = rows
    for ent, (key, cols) in ENTITIES.items():
        rows = []
        for k in sorted(named[ent]):
            a = attrs[ent].get(k, {})
            rows.append([k] + [a.get(c) for c, _, _ in cols])
        tables["ent_" + ent] = rows
    return tables


def table_columns(name):
    if name.startswith("ev_"):
        return [("seq", "BIGINT"), ("id", "VARCHAR"), ("ts", "BIGINT")] + \
            [(f, SQL_TYPE[k]) for f, k in EVENTS[name[3:]]]
    key, cols = ENTITIES[name[4:]]
    return [(key, "VARCHAR")] + [(c, SQL_TYPE[k]) for c, k, _ in cols]


def load(con, path, tmpdir):
    tables = parse(path)
    for name, rows in tables.items():
        fn = os.path.join(tmpdir, name + ".csv")
        with open(fn, "w", newline="", encoding="utf-8") as f:
            f.writelines(",".join(map(csv_cell, row)) + "\n" for row in rows)
        cols = table_columns(name)
        spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in cols) + "}"
        con.execute(f"""CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_csv('{fn}',
            columns={spec}, header=false, delim=',', quote='"', escape='"',
            nullstr='', allow_quoted_nulls=false, auto_detect=false)""")
    return {n: len(r) for n, r in tables.items()}


# ---------------------------------------------------------------- the recompute

def w(dur, t="ts"):
    """`within dur`: now - W < t <= now."""
    n, unit = int(dur[:-1]), dur[-1]
    return f"({t} > now - {n * MS[unit]} AND {t} <= now)"


def order_key(value):
    """(at, id) with a missing id first, then the value: the first/last order."""
    return f"(ts, id IS NOT NULL, coalesce(id, ''), {value})"


def common_sql(now_ms):
    """Every model's start: events deduplicated (first delivery wins), the clock."""
    now = "NULL" if now_ms is None else str(int(now_ms))
    dedup = "\n".join(
        f"""CREATE OR REPLACE TEMP TABLE a_{e} AS SELECT * EXCLUDE (seq) FROM ev_{e}
            QUALIFY id IS NULL OR row_number() OVER (PARTITION BY id ORDER BY seq) = 1;"""
        for e in EVENTS)
    return f"""
{dedup}

CREATE OR REPLACE TEMP TABLE clock AS SELECT coalesce({now}::BIGINT, (SELECT max(m) FROM (
    SELECT max(ts) m FROM a_order UNION ALL SELECT max(ts) FROM a_page_view
    UNION ALL SELECT max(ts) FROM a_add_to_cart UNION ALL SELECT max(ts) FROM a_referral))) AS now;
"""


def retail_sql(now_ms):
    return common_sql(now_ms) + f"""

-- order rows with the current attributes of what they reference
CREATE OR REPLACE TEMP TABLE o AS
SELECT o.*, p.category, p.weight_kg, u.vip, c.now
FROM a_order o CROSS JOIN clock c
LEFT JOIN ent_product p ON p.sku = o.product
LEFT JOIN ent_user u ON u.id = o."user";

-- ---------------- store
CREATE OR REPLACE TEMP TABLE store_agg AS
SELECT store AS id,
  sum(amount) FILTER (WHERE {w('7d')}) AS revenue_7d,
  count(*) FILTER (WHERE {w('24h')}) AS orders_24h,
  count(DISTINCT "user") FILTER (WHERE {w('30d')}) AS visitors_30d,
  count(*) FILTER (WHERE vip AND {w('30d')}) AS vip_orders_30d,
  count(*) FILTER (WHERE {w('30d')}) AS orders_30d
FROM o WHERE store IS NOT NULL GROUP BY store;

CREATE OR REPLACE TABLE store_result AS
WITH ids AS (SELECT id FROM ent_store UNION SELECT store FROM a_order WHERE store IS NOT NULL)
SELECT ids.id, s.city, s.region,
  coalesce(a.revenue_7d, 0)::DECIMAL(38,6) AS revenue_7d,
  coalesce(a.orders_24h, 0) AS orders_24h,
  coalesce(a.visitors_30d, 0) AS visitors_30d,
  (coalesce(a.vip_orders_30d, 0) * 100) // (coalesce(a.orders_30d, 0) + 1) AS share_of_vip_orders,
  coalesce(a.revenue_7d, 0) > 20000 AS hot_stores
FROM ids LEFT JOIN ent_store s USING (id) LEFT JOIN store_agg a USING (id);

-- ---------------- product
CREATE OR REPLACE TABLE product_result AS
WITH ids AS (SELECT sku FROM ent_product UNION SELECT product FROM a_order
             UNION SELECT product FROM a_page_view WHERE product IS NOT NULL
             UNION SELECT product FROM a_add_to_cart),
agg AS (SELECT product AS sku,
          count(DISTINCT "user") FILTER (WHERE {w('30d')}) AS buyers_30d,
          sum(quantity) FILTER (WHERE {w('30d')}) AS units_30d
        FROM o GROUP BY product),
t AS (
  SELECT ids.sku, p.category, p.price, p.weight_kg,
    coalesce(agg.buyers_30d, 0) AS buyers_30d,
    coalesce(agg.units_30d, 0)::BIGINT AS units_30d,
    CASE WHEN p.price IS NULL THEN NULL WHEN p.price < 50 THEN 'low'
         WHEN p.price < 200 THEN 'mid' ELSE 'high' END AS price_band
  FROM ids LEFT JOIN ent_product p USING (sku) LEFT JOIN agg USING (sku))
SELECT *, coalesce(buyers_30d >= 5 AND price_band != 'low', false) AS popular_products FROM t;

-- ---------------- user
CREATE OR REPLACE TEMP TABLE user_orders AS
SELECT "user" AS id,
  count(*) FILTER (WHERE {w('30d')}) AS orders_30d,
  sum(amount) FILTER (WHERE {w('90d')}) AS spend_90d,
  sum(amount) FILTER (WHERE category = 'shoes' AND {w('90d')}) AS shoe_spend_90d,
  max(ts) AS last_order_at,
  min(ts) AS first_order_at,
  count(DISTINCT store) FILTER (WHERE {w('180d')}) AS stores_visited,
  count(*) FILTER (WHERE {w('90d')}) AS orders_90d,
  arg_max(category, {order_key('category')}) FILTER (WHERE category IS NOT NULL AND {w('90d')}) AS last_category,
  max(weight_kg) FILTER (WHERE {w('365d')}) AS heaviest_item_kg,
  count(*) FILTER (WHERE {w('60d')}) > 0 AS ordered_60d
FROM o GROUP BY "user";

CREATE OR REPLACE TEMP TABLE user_views AS
WITH v AS (SELECT pv.*, c.now FROM a_page_view pv CROSS JOIN clock c),
modes AS (
  SELECT "user", channel, count(*) AS n FROM v WHERE channel IS NOT NULL AND {w('30d')}
  GROUP BY "user", channel
  QUALIFY row_number() OVER (PARTITION BY "user" ORDER BY n DESC, channel ASC) = 1),
agg AS (
  SELECT "user",
    count(*) FILTER (WHERE channel = 'app' AND {w('7d')}) AS app_views_7d,
    arg_min(channel, {order_key('channel')}) FILTER (WHERE channel IS NOT NULL) AS first_channel
  FROM v GROUP BY "user")
SELECT agg."user" AS id, app_views_7d, first_channel, modes.channel AS top_channel
FROM agg LEFT JOIN modes USING ("user");

CREATE OR REPLACE TEMP TABLE user_carts AS
SELECT "user" AS id, sum(quantity) FILTER (WHERE {w('7d')}) AS cart_units_7d
FROM a_add_to_cart CROSS JOIN clock GROUP BY "user";

CREATE OR REPLACE TEMP TABLE user_referrals AS
WITH a AS (SELECT referrer AS id, count(*) AS referrals FROM a_referral GROUP BY referrer),
b AS (SELECT DISTINCT referee AS id FROM a_referral)
SELECT coalesce(a.id, b.id) AS id, coalesce(a.referrals, 0) AS referrals, b.id IS NOT NULL AS was_referred
FROM a FULL JOIN b USING (id);

CREATE OR REPLACE TABLE user_result AS
WITH ids AS (SELECT id FROM ent_user UNION SELECT "user" FROM a_order UNION SELECT "user" FROM a_page_view
             UNION SELECT "user" FROM a_add_to_cart UNION SELECT referrer FROM a_referral
             UNION SELECT referee FROM a_referral),
t AS (
  SELECT ids.id, u.name, u.city, u.signup_at, u.home_store, u.birth_year, u.vip,
    coalesce(o.orders_30d, 0) AS orders_30d,
    coalesce(o.spend_90d, 0)::DECIMAL(38,6) AS spend_90d,
    coalesce(v.app_views_7d, 0) AS app_views_7d,
    coalesce(o.shoe_spend_90d, 0)::DECIMAL(38,6) AS shoe_spend_90d,
    o.last_order_at, o.first_order_at,
    coalesce(o.stores_visited, 0) AS stores_visited,
    v.top_channel,
    -- avg of decimals: exact sum / count, rounded half away from zero to 6 places
    CASE WHEN coalesce(o.orders_90d, 0) = 0 THEN NULL ELSE
      (sign((o.spend_90d * 1000000)::HUGEINT)
       * ((abs((o.spend_90d * 1000000)::HUGEINT) * 2 + o.orders_90d) // (2 * o.orders_90d)))::DECIMAL(38,0)
      * 0.000001 END::DECIMAL(38,6) AS avg_order_value,
    v.first_channel, o.last_category,
    coalesce(c.cart_units_7d, 0)::BIGINT AS cart_units_7d,
    o.heaviest_item_kg,
    coalesce(r.referrals, 0) AS referrals,
    coalesce(r.was_referred, false) AS was_referred,
    coalesce(o.ordered_60d, false) AS ordered_60d,
    s.city AS home_store_city, s.revenue_7d AS home_store_revenue_7d, s.hot_stores AS home_store_hot
  FROM ids LEFT JOIN ent_user u USING (id)
  LEFT JOIN user_orders o USING (id) LEFT JOIN user_views v USING (id)
  LEFT JOIN user_carts c USING (id) LEFT JOIN user_referrals r USING (id)
  LEFT JOIN store_result s ON s.id = u.home_store),
t2 AS (
  SELECT *,
    CASE WHEN spend_90d >= 5000 THEN 'gold' WHEN spend_90d >= 1000 THEN 'silver' ELSE 'bronze' END AS tier,
    coalesce(city, home_store_city, 'unknown') AS home_city,
    CASE WHEN birth_year IS NULL THEN NULL
         ELSE (2026 - birth_year) - (2026 - birth_year) % 10 END AS age_band
  FROM t),
t3 AS (
  SELECT *,
    coalesce(spend_90d >= 1000 AND orders_30d >= 3, false) AS high_value,
    coalesce(tier = 'gold' AND NOT ordered_60d, false) AS lapsed_gold
  FROM t2)
SELECT * EXCLUDE (home_store_city, home_store_hot, ordered_60d),
  coalesce(home_store_hot AND orders_30d >= 2, false) AS hot_store_regulars,
  coalesce(city = 'Shanghai' AND app_views_7d >= 5, false) AS app_shanghai,
  coalesce(cart_units_7d > 0 AND orders_30d = 0, false) AS window_shoppers,
  coalesce(vip AND lower(home_city) IN ('shanghai', 'beijing'), false) AS big_city_vips,
  coalesce(shoe_spend_90d > 500 OR last_category = 'shoes', false) AS shoe_lovers,
  coalesce(high_value AND NOT lapsed_gold, false) AS loyal_not_lapsed,
  coalesce(abs(round(avg_order_value, 0) - 100) < 20 AND NOT (top_channel IS NULL)
           AND starts_with(upper(coalesce(top_channel, '')), 'MINI') = false, false) AS promo_candidates,
  coalesce(referrals >= 2 OR (was_referred AND contains(home_city, 'Shang')), false) AS referrers
FROM t3;
"""


STORES_TAGS = {
    "user": [("spend_30d", "dec")],
    "store": [("heaviest_30d", "float"), ("top_buyer", "str"), ("max_amount", "dec")],
    "product": [("last_buyer", "str")],
}
STORES_SEGMENTS = {"user": ["big_spenders"], "store": ["heavy_stores"], "product": []}


def stores_sql(now_ms):
    return common_sql(now_ms) + f"""
CREATE OR REPLACE TEMP TABLE o AS
SELECT o.*, p.weight_kg, c.now
FROM a_order o CROSS JOIN clock c LEFT JOIN ent_product p ON p.sku = o.product;

CREATE OR REPLACE TABLE store_result AS
WITH ids AS (SELECT id FROM ent_store UNION SELECT store FROM a_order WHERE store IS NOT NULL),
agg AS (SELECT store AS id,
          max(weight_kg) FILTER (WHERE {w('30d')}) AS heaviest_30d,
          max(amount) FILTER (WHERE {w('30d')}) AS max_amount,
          count(*) FILTER (WHERE {w('7d')}) AS orders_7d
        FROM o WHERE store IS NOT NULL GROUP BY store),
-- mode: ties go to the smallest value, for a reference its key (as the engine orders them)
buyers AS (SELECT store AS id, "user" AS top_buyer, count(*) AS n FROM o
           WHERE store IS NOT NULL AND {w('30d')} GROUP BY store, "user"
           QUALIFY row_number() OVER (PARTITION BY store ORDER BY n DESC, "user" ASC) = 1)
SELECT ids.id, s.city, s.region, a.heaviest_30d, b.top_buyer, a.max_amount,
  coalesce(a.max_amount > 900 AND coalesce(a.orders_7d, 0) > 1000, false) AS heavy_stores
FROM ids LEFT JOIN ent_store s USING (id) LEFT JOIN agg a USING (id) LEFT JOIN buyers b USING (id);

CREATE OR REPLACE TABLE product_result AS
WITH ids AS (SELECT sku FROM ent_product UNION SELECT product FROM a_order
             UNION SELECT product FROM a_page_view WHERE product IS NOT NULL
             UNION SELECT product FROM a_add_to_cart),
agg AS (SELECT product AS sku, arg_max("user", {order_key('"user"')}) FILTER (WHERE {w('30d')}) AS last_buyer
        FROM o GROUP BY product)
SELECT ids.sku, p.category, p.price, p.weight_kg, agg.last_buyer
FROM ids LEFT JOIN ent_product p USING (sku) LEFT JOIN agg USING (sku);

CREATE OR REPLACE TABLE user_result AS
WITH ids AS (SELECT id FROM ent_user UNION SELECT "user" FROM a_order UNION SELECT "user" FROM a_page_view
             UNION SELECT "user" FROM a_add_to_cart UNION SELECT referrer FROM a_referral
             UNION SELECT referee FROM a_referral),
agg AS (SELECT "user" AS id, sum(amount) FILTER (WHERE {w('30d')}) AS spend_30d FROM o GROUP BY "user")
SELECT ids.id, u.name, u.city, u.signup_at, u.home_store, u.birth_year, u.vip,
  coalesce(agg.spend_30d, 0)::DECIMAL(38,6) AS spend_30d,
  coalesce(agg.spend_30d, 0) > 500 AS big_spenders
FROM ids LEFT JOIN ent_user u USING (id) LEFT JOIN agg USING (id);
"""


# model -> (tags, segments, SQL of a `now`)
MODELS = {
    "retail": (RETAIL_TAGS, RETAIL_SEGMENTS, retail_sql),
    "stores": (STORES_TAGS, STORES_SEGMENTS, stores_sql),
}
TAGS, SEGMENTS, SQL = MODELS["retail"]


def run_recompute(con, now_ms):
    for stmt in SQL(now_ms).split(";\n"):
        if stmt.strip():
            con.execute(stmt)


# ---------------------------------------------------------------- --check

def norm(kind, v):
    """A dump value or a SQL value, in one comparable form."""
    if v is None:
        return None
    if kind == "dec":
        return to_dec(v).normalize() + 0
    if kind == "ts":
        return parse_ts(v)
    if kind == "float":
        return float(v)
    if kind == "int":
        return int(v)
    return v


def results(con):
    out = {}
    for ent, (key, cols) in ENTITIES.items():
        names = [key] + [c for c, _, _ in cols] + [t for t, _ in TAGS[ent]] + SEGMENTS[ent]
        kinds = [k for _, k, _ in cols]
        for row in con.execute(f"SELECT {', '.join(names)} FROM {ent}_result").fetchall():
            i = 1
            attributes = {}
            for (c, _, _), k in zip(cols, kinds):
                if row[i] is not None:
                    attributes[c] = norm(k, row[i])
                i += 1
            tags = {}
            for t, k in TAGS[ent]:
                tags[t] = norm(k, row[i])
                i += 1
            segs = sorted(s for s, m in zip(SEGMENTS[ent], row[i:]) if m)
            out[(ent, row[0])] = {"attributes": attributes, "tags": tags, "segments": segs}
    return out


def check(con, dump_path, limit=20):
    mine = results(con)
    attr_kind = {e: {c: k for c, k, _ in ENTITIES[e][1]} for e in ENTITIES}
    tag_kind = {e: dict(TAGS[e]) for e in TAGS}
    theirs = {}
    with open(dump_path, encoding="utf-8") as f:
        for line in f:
            p = json.loads(line, parse_float=Decimal)
            e = p["entity"]
            theirs[(e, p["id"])] = {
                "attributes": {a: norm(attr_kind[e].get(a, "str"), v) for a, v in p["attributes"].items()},
                "tags": {t: norm(tag_kind[e].get(t, "str"), v) for t, v in p["tags"].items()},
                "segments": sorted(p["segments"]),
            }
    problems = []
    for k in sorted(set(mine) | set(theirs)):
        if k not in mine:
            problems.append(f"{k[0]} {k[1]}: in the segflow dump only")
            continue
        if k not in theirs:
            problems.append(f"{k[0]} {k[1]}: in the SQL result only")
            continue
        a, b = mine[k], theirs[k]
        for part in ("attributes", "tags"):
            for name in sorted(set(a[part]) | set(b[part])):
                x, y = a[part].get(name, "<absent>"), b[part].get(name, "<absent>")
                if x != y:
                    problems.append(f"{k[0]} {k[1]} {part[:-1]} {name}: sql={x!r} segflow={y!r}")
        if a["segments"] != b["segments"]:
            problems.append(f"{k[0]} {k[1]} segments: sql={a['segments']} segflow={b['segments']}")
    print(f"check: {len(mine)} instances in SQL, {len(theirs)} in {dump_path}; "
          f"{len(problems)} mismatches")
    for p in problems[:limit]:
        print("  " + p)
    if len(problems) > limit:
        print(f"  ... {len(problems) - limit} more")
    return len(problems)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="NDJSON data file (segflow's record format)")
    ap.add_argument("--model", choices=sorted(MODELS), default="retail",
                    help="retail: examples/retail/retail.eql; stores: bench/models/stores.eql")
    ap.add_argument("--now", help="RFC 3339 time for the windows (default: latest accepted event time)")
    ap.add_argument("--threads", type=int, default=1, help="DuckDB threads (SET threads=N)")
    ap.add_argument("--check", metavar="DUMP", help="segflow profile dump to compare with")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each phase; the median is reported")
    args = ap.parse_args()
    global TAGS, SEGMENTS, SQL
    TAGS, SEGMENTS, SQL = MODELS[args.model]
    now_ms = parse_ts(args.now) if args.now else None

    con = duckdb.connect()  # in memory
    con.execute(f"SET threads={args.threads}")
    con.execute("SET preserve_insertion_order=false")
    load_times, recompute_times = [], []
    with tempfile.TemporaryDirectory(prefix="peer_duckdb_") as tmp:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            counts = load(con, args.events, tmp)
            load_times.append(time.perf_counter() - t0)
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        run_recompute(con, now_ms)
        recompute_times.append(time.perf_counter() - t0)

    events = sum(v for k, v in counts.items() if k.startswith("ev_"))
    now = con.execute("SELECT now FROM clock").fetchone()[0]
    n = {e: con.execute(f"SELECT count(*) FROM {e}_result").fetchone()[0] for e in ENTITIES}
    print(f"peer_duckdb: duckdb {duckdb.__version__}, threads={args.threads}, {events} event records, "
          f"now = {fmt_ts(now) if now is not None else None}, "
          f"{n['user']} users, {n['store']} stores, {n['product']} products")
    print(f"load      (parse NDJSON + resolve entities + load tables): median {statistics.median(load_times):.3f}s "
          f"over {args.repeat} runs {[round(t, 3) for t in load_times]}")
    print(f"recompute (SQL: dedup + all tags + all segments):          median {statistics.median(recompute_times):.3f}s "
          f"over {args.repeat} runs {[round(t, 3) for t in recompute_times]}")
    if args.check:
        sys.exit(1 if check(con, args.check) else 0)


if __name__ == "__main__":
    main()
