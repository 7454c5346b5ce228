#!/usr/bin/env python3
"""Freshness under load: post events to a running `segflow serve` at a fixed
rate and measure how long each batch takes to become visible.

    python3 bench/freshness.py --url http://127.0.0.1:7878 --rate 50000 --seconds 10

Every `--interval-ms` a request with rate * interval events is sent (on one of
`--connections` keep-alive connections; each waits for its answer, so
few connections would cap the rate the client can offer). POST /v1/records answers only once
its batch is durable (fsync'd) and visible to reads, so the time from the
moment a request was *due* to its answer is the send -> visible latency; the
ack -> visible gap is zero by construction, which a `min_time` read after
every `--check-every`-th answer confirms. When the server cannot keep up,
requests queue and the latency grows: the rate is "sustained" when the events
were acknowledged at (at least 95 % of) the asked rate and p99 stays bounded.

The client shares the machine with the server, so it is kept light: requests
are built before the clock starts and sent on raw sockets, and the answers are
read by their Content-Length. (With `http.client` and a read after every
answer it took ~60 % of a core at 100k events/s, taken from the server.)

Prints one JSON line: rate asked and achieved, p50/p99/max latency in ms, and
the client's own CPU time.
"""
import argparse
import http.client
import os
import socket
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
            # The ids start with the run's first time: a second run against
            # the same server, with the same seed, sends new events, not
            # redeliveries that the server skips (which made such runs look
            # fast).
            lines.append('{"event":"order","id":"fr-%d-%d-%d-%d","at":%d,"user":"u%07d","store":%s,'
                         '"product":"p%06d","amount":"%d.%02d","quantity":1}'
                         % (start_ms, seed, r, i, t, rng.randrange(1, users + 1), store, rng.randrange(1, 1000),
                            rng.randrange(10, 500), rng.randrange(100)))
        out.append(("\n".join(lines) + "\n").encode())
    return out, per_request


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:7878")
    ap.add_argument("--rate", type=int, default=10_000, help="events per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--interval-ms", type=int, default=10, help="one request every this many ms")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--check-every", type=int, default=10, help="a min_time read after every n-th answer")
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.check_every < 1:
        ap.error("--check-every must be at least 1")
    host = urllib.parse.urlparse(args.url)
    port = host.port or 80
    # Event times continue from the server's clock: a jump would expire whole
    # windows in the first batch and measure that instead.
    conn = http.client.HTTPConnection(host.hostname, port, timeout=60)
    conn.request("GET", "/v1/segments")
    start_ms = max(END_MS, json.loads(conn.getresponse().read())["time"]) + 1
    conn.close()
    payloads, per_request = bodies(args.rate, args.seconds, args.interval_ms, args.users, args.seed, start_ms)

    due = queue.Queue()
    results = []  # (due, answered)
    lock = threading.Lock()
    errors = []

    def exchange(sock, request):
        """Sends one request; returns (status, body) of its answer."""
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            # segflow answers with a length; anything else would desync the socket.
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            body += chunk
        return int(head.split(b" ", 2)[1]), body

    def connect():
        sock = socket.create_connection((host.hostname, port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def sender():
        sock = connect()
        while True:
            item = due.get()
            if item is None:
                sock.close()
                return
            at, n, request = item
            try:
                status, body = exchange(sock, request)
                answered = time.perf_counter()
                if status != 200:
                    raise RuntimeError(f"{status}: {body[:300]!r}")
                if n % args.check_every == 0:
                    t = json.loads(body)["time"]
                    get = f"GET /v1/segments?min_time={t}&timeout_ms=1 HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
                    seen = json.loads(exchange(sock, get)[1])
                    if seen.get("time", -1) < t:
                        raise RuntimeError(f"not visible after the answer: {seen}")
                with lock:
                    results.append((at, answered))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                sock.close()
                sock = connect()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.connections)]
    requests = [
        b"POST /v1/records HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-ndjson\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        for body in payloads
    ]
    for t in threads:
        t.start()
    cpu = os.times()
    start = time.perf_counter()
    for i, request in enumerate(requests):
        at = start + i * args.interval_ms / 1000
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((at, i, request))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    used = os.times()
    client_cpu = (used.user - cpu.user) + (used.system - cpu.system)
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
        "client_cpu_s": round(client_cpu, 2),
    }))


if __name__ == "__main__":
    main()
