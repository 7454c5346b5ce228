#!/usr/bin/env python3
"""Refresh of two builds side by side: both servers loaded at once, then
rounds of refresh batches posted to each in turn (the order alternating),
with each server's dataflow workers' CPU time per batch and the refresh p50.

    python3 bench/ab_refresh.py /tmp/segflow-old /tmp/segflow-new --load /tmp/1m.ndjson

This VM's speed wanders over tens of seconds; runs of a whole server each
(load, then batches) compared one build's slow spell with the other's fast
one. Here a round is a second or two, so both builds meet the same spell,
and a pair of rounds is one paired difference. The CPU is read from
/proc (the `timely:work-*` threads, in 10 ms ticks), which is steadier than
the p50: the refresh waits for both workers, the engine thread and HTTP.

Prints, per build, the median of its rounds and each round's figure, then
the median paired difference (first build minus second) and how many
pairs had the first build dearer.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def workers_cpu_ms(pid):
    """CPU time of the process's dataflow worker threads, in ms."""
    ticks = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("timely:work"):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs=2, help="the two segflow binaries")
    ap.add_argument("--load", required=True, help="data each server loads first (segflow gen output)")
    ap.add_argument("--model", default=os.path.join(ROOT, "examples/retail/retail.eql"))
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--batches", type=int, default=50, help="refresh batches a round")
    ap.add_argument("--port", type=int, default=7960, help="the first server's; the second takes the next")
    args = ap.parse_args()
    servers, dirs = [], []
    try:
        for i, build in enumerate(args.builds):
            d = tempfile.mkdtemp(prefix="segflow-ab-")
            dirs.append(d)
            servers.append(subprocess.Popen(
                [build, "serve", args.model, "--clock", "event", "--listen", f"127.0.0.1:{args.port + i}",
                 "--load", args.load, "--data-dir", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i, server in enumerate(servers):
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{args.port + i}/healthz", timeout=1).read()
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if server.poll() is not None:
                        sys.exit(f"{args.builds[i]} did not start")
                    time.sleep(0.3)
        cpu = [[], []]
        p50 = [[], []]
        seed = 100
        for r in range(args.rounds):
            for i in ([0, 1] if r % 2 == 0 else [1, 0]):
                seed += 1  # new events every round
                before = workers_cpu_ms(servers[i].pid)
                out = subprocess.run(
                    [sys.executable, os.path.join(ROOT, "bench/refresh.py"), "--url", f"http://127.0.0.1:{args.port + i}",
                     "--batches", str(args.batches), "--seed", str(seed)], capture_output=True, text=True, check=True)
                cpu[i].append((workers_cpu_ms(servers[i].pid) - before) / args.batches)
                p50[i].append(json.loads(out.stdout.strip().splitlines()[-1])["p50_ms"])
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    for i, build in enumerate(args.builds):
        print(f"{build}: workers' CPU {statistics.median(cpu[i]):.2f} ms a batch "
              f"({' '.join(f'{x:.1f}' for x in cpu[i])}); p50 {statistics.median(p50[i]):.2f} ms "
              f"({' '.join(f'{x:.1f}' for x in p50[i])})")
    diffs = [a - b for a, b in zip(cpu[0], cpu[1])]
    print(f"paired difference of workers' CPU (first - second): median {statistics.median(diffs):+.2f} ms a batch, "
          f"first dearer in {sum(d > 0 for d in diffs)} of {len(diffs)} pairs")


if __name__ == "__main__":
    main()
