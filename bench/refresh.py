#!/usr/bin/env python3
"""Refresh latency: post batches of new events to a running `segflow serve` and
measure the time until their effect is readable.

POST /v1/records answers only once the batch is durable and visible, so the
POST's round trip is the refresh latency; a read with ?min_time confirms it.

    python3 bench/refresh.py --url http://127.0.0.1:7878 --batches 100 --size 1000

The events are retail orders for users u0000001.. (the `segflow gen` key space),
timed from where the server's clock is (just after the generated data ends, on
a server just loaded with it), with fresh ids; as in generated data, about 40%
of them are at a store and the rest online. The store is picked uniformly from
s0001..s0050 (`--stores`), where generated data favours a user's home store,
and the product from p000001..p000999 (below `--products`). With `--event
page_view` they are page views instead: channels in about the generated data's
shares, a product page for 55% of them.

For data generated with other `--users` than 100,000, give the users, stores
and products it has (`segflow gen` makes one store per 2,000 users and one
product per 100 users, at least 5 and 50), or the events name instances that
it lacks.

With `--events-from FILE` the events are those of FILE instead, in its order,
each with a fresh id and the next time (7 ms apart): for any model, from data
that `segflow gen --model MODEL.eql` wrote with the same `--users` as the data
loaded and another `--seed` (its entity lines are skipped):

    segflow gen --model M.eql --users 100000 --events 1000000 --out load.ndjson
    segflow serve M.eql --clock event --load load.ndjson
    segflow gen --model M.eql --users 100000 --events 200000 --seed 2 --out more.ndjson
    python3 bench/refresh.py --events-from more.ndjson
"""
import argparse
import json
import random
import statistics
import time
import urllib.request

END_MS = 1_795_132_800_000  # 2026-11-20T00:00:00Z, where `segflow gen` data ends


def post(url, body):
    req = urllib.request.Request(url + "/v1/records", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def get(url, path):
    with urllib.request.urlopen(url + path, timeout=60) as r:
        return json.loads(r.read())


def events_from(path):
    """The event records of an NDJSON file, in order, as dicts."""
    with open(path) as f:
        for line in f:
            if line.startswith('{"event":'):
                yield json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:7878")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--stores", type=int, default=50)
    ap.add_argument("--products", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--event", choices=["order", "page_view"], default="order")
    ap.add_argument("--events-from", metavar="FILE", help="post the events of FILE (any model's)")
    args = ap.parse_args()
    given = events_from(args.events_from) if args.events_from else None
    rng = random.Random(args.seed)
    latencies = []
    # Times go on from the server's clock, and ids start with the first: a
    # second run against the same server sends new, current events, not
    # redeliveries (skipped) or late ones.
    start = max(END_MS, get(args.url, "/v1/segments")["time"])
    t = start
    for b in range(args.batches):
        lines = []
        for i in range(args.size):
            t += 7
            if given is not None:
                event = next(given, None)
                if event is None:
                    raise SystemExit(f"{args.events_from} has fewer than {args.batches * args.size} events")
                event.update({"id": f"refresh-given-{start}-{args.seed}-{b}-{i}", "at": t})
                lines.append(json.dumps(event))
                continue
            u = rng.randrange(1, args.users + 1)
            # (Orders' ids as they always were, so that figures stay comparable.)
            kind = "" if args.event == "order" else "view-"
            event = {"event": args.event, "id": f"refresh-{kind}{start}-{args.seed}-{b}-{i}", "at": t,
                     "user": f"u{u:07d}"}
            if args.event == "order":
                store = f"s{rng.randrange(1, args.stores + 1):04d}" if rng.random() < 0.4 else None
                event.update({"store": store, "product": f"p{rng.randrange(1, args.products):06d}",
                              "amount": f"{rng.randrange(1000, 50000) / 100:.2f}", "quantity": 1})
            else:
                product = f"p{rng.randrange(1, args.products):06d}" if rng.random() < 0.55 else None
                channel = rng.choices(["app", "mini_program", "web", "store_kiosk"], weights=[44, 25, 23, 8])[0]
                event.update({"url": f"/p/{product}" if product else "/", "channel": channel, "product": product})
            lines.append(json.dumps(event))
        body = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        answer = post(args.url, body)
        latencies.append(time.perf_counter() - started)
        # The effect is readable at the returned time (no wait needed).
        seen = get(args.url, f"/v1/segments?min_time={answer['time']}&timeout_ms=1")
        assert seen["time"] >= answer["time"], seen
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(json.dumps({
        "batches": args.batches, "size": args.size,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(p(0.99), 1), "max_ms": round(latencies[-1] * 1000, 1),
    }))


if __name__ == "__main__":
    main()
