#!/usr/bin/env python3
"""Freshness under load: post events to a running `segflow serve` at a fixed
rate and measure how long each batch takes to become visible.

    python3 bench/freshness.py --url http://127.0.0.1:7878 --rate 50000 --seconds 10

Every `--interval-ms` a request with rate * interval events is sent (on one of
`--connections` keep-alive connections; each waits for its answer, so
few connections would cap the rate the client can offer). POST /v1/records answers only once
its batch is durable (fsync'd) and visible to reads, so the time from the
moment a request was *due* to its answer is the send -> visible latency; the
ack -> visible gap is zero by construction, which a `min_time` read after each
answer confirms. When the server cannot keep up, requests queue and the
latency grows: the rate is "sustained" when the events were acknowledged at
(at least 95 % of) the asked rate and p99 stays bounded.

Prints one JSON line: rate asked and achieved, p50/p99/max latency in ms.
"""
import argparse
import http.client
import json
import queue
import random
import statistics
import threading
import time
import urllib.parse

END_MS = 1_795_132_800_000  # where `segflow gen` data ends (2026-11-20)


def bodies(rate, seconds, interval_ms, users, seed, start_ms):
    rng = random.Random(seed)
    per_request = max(1, rate * interval_ms // 1000)
    requests = max(1, seconds * 1000 // interval_ms)
    t = start_ms
    out = []
    for r in range(requests):
        lines = []
        for i in range(per_request):
            t += 1
            # As in generated data, about 40% of orders are at a store (here
            # any of the 50 that `segflow gen` makes for 100,000 users).
            store = '"s%04d"' % rng.randrange(1, 51) if rng.random() < 0.4 else "null"
            lines.append('{"event":"order","id":"fr-%d-%d-%d","at":%d,"user":"u%07d","store":%s,'
                         '"product":"p%06d","amount":"%d.%02d","quantity":1}'
                         % (seed, r, i, t, rng.randrange(1, users + 1), store, rng.randrange(1, 1000),
                            rng.randrange(10, 500), rng.randrange(100)))
        out.append(("\n".join(lines) + "\n").encode())
    return out, per_request


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:7878")
    ap.add_argument("--rate", type=int, default=10_000, help="events per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--interval-ms", type=int, default=10, help="one request every this many ms")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    host = urllib.parse.urlparse(args.url)
    # Event times continue from the server's clock: a jump would expire whole
    # windows in the first batch and measure that instead.
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
    conn.request("GET", "/v1/segments")
    start_ms = max(END_MS, json.loads(conn.getresponse().read())["time"]) + 1
    conn.close()
    payloads, per_request = bodies(args.rate, args.seconds, args.interval_ms, args.users, args.seed, start_ms)

    due = queue.Queue()
    results = []  # (due, answered)
    lock = threading.Lock()
    errors = []

    def sender():
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        while True:
            item = due.get()
            if item is None:
                return
            at, body = item
            try:
                conn.request("POST", "/v1/records", body, {"Content-Type": "application/x-ndjson"})
                reply = conn.getresponse()
                answer = json.loads(reply.read())
                answered = time.perf_counter()
                if reply.status != 200:
                    raise RuntimeError(f"{reply.status}: {answer}")
                conn.request("GET", f"/v1/segments?min_time={answer['time']}&timeout_ms=1")
                seen = json.loads(conn.getresponse().read())
                if seen.get("time", -1) < answer["time"]:
                    raise RuntimeError(f"not visible after the answer: {seen}")
                with lock:
                    results.append((at, answered))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.connections)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i, body in enumerate(payloads):
        at = start + i * args.interval_ms / 1000
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((at, body))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    if not results:
        raise SystemExit(f"no request succeeded: {errors[0][:300]}")
    latencies = sorted((answered - at) * 1000 for at, answered in results)
    elapsed = max(a for _, a in results) - start
    achieved = len(results) * per_request / elapsed
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(json.dumps({
        "rate": args.rate, "achieved": round(achieved), "requests": len(results), "events": len(results) * per_request,
        "errors": len(errors), "p50_ms": round(statistics.median(latencies), 1), "p99_ms": round(p(0.99), 1),
        "max_ms": round(latencies[-1], 1), "sustained": achieved >= 0.95 * args.rate and not errors,
    }))


if __name__ == "__main__":
    main()
