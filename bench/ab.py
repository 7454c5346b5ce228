#!/usr/bin/env python3
"""Alternating runs of two or more builds of the same command, with medians.

This machine's timings wander by tens of percent from one run to the next, so
an optimisation is judged by interleaved runs (old, new, old, new, ...) and the
median of each side, never by one run of each.

    python3 bench/ab.py 6 /tmp/segflow-old /tmp/segflow-new -- \\
        X run examples/retail/retail.eql --events /tmp/1m.ndjson --out /tmp/1m.dump

Each variant is `BINARY[,VAR=VALUE...]`: the binary replaces the command's
first word (any placeholder, `X` above), and the variables are set for its
runs. For each variant it prints the median process wall time and the median
user+sys CPU time of its runs.

`--pause S` (before the run count) sleeps S seconds before every run. This VM
hands freed memory back to its host in 2 MB blocks a few seconds after it is
freed, so a run right after another finds warm memory that a run started on
its own does not; with `--pause 5` each run meets the machine as a lone run
would.
"""
import os
import resource
import statistics
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    pause = 0.0
    if args[:1] == ["--pause"]:
        try:
            pause, args = float(args[1]), args[2:]
        except (IndexError, ValueError):
            sys.exit(__doc__)
    if len(args) < 3 or "--" not in args:
        sys.exit(__doc__)
    runs, sep = int(args[0]), args.index("--")
    variants, command = args[1:sep], args[sep + 1:]
    results = {v: [] for v in variants}
    for _ in range(runs):
        for v in variants:
            binary, *assignments = v.split(",")
            env = dict(os.environ, **dict(a.split("=", 1) for a in assignments))
            time.sleep(pause)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.time()
            subprocess.run([binary, *command[1:]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            wall = time.time() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            results[v].append((wall, cpu))
    for v, xs in results.items():
        walls = " ".join(f"{w:.2f}" for w, _ in xs)
        print(f"{v}: wall median {statistics.median(w for w, _ in xs):.2f} s, "
              f"CPU median {statistics.median(c for _, c in xs):.2f} s (walls {walls})")


if __name__ == "__main__":
    main()
