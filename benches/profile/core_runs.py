#!/usr/bin/env python3
"""What ran on one core, and for how long at a stretch, from a scheduler trace.

A request that waits behind another thread's run on the gateway's core shows in the p99 of
the one-connection closed loop; this lists those runs. Record the core while the load runs,
then pipe the timeline in:

    perf sched record -C 1 -o sched.data -- sleep 6        # while the gateway is under load
    perf sched timehist -i sched.data -C 1 | benches/profile/core_runs.py [cpu (0001)] [pid]

Prints, per thread name: how many runs, their total, the runs over 0.2 ms, and the longest
runs. With a pid, only that process's threads are counted.
"""
import collections
import sys

cpu = sys.argv[1] if len(sys.argv) > 1 else "0001"
pid = sys.argv[2] if len(sys.argv) > 2 else None
stats = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])
runs = []
for line in sys.stdin:
    parts = line.split()
    if len(parts) < 6 or not parts[1].startswith("[") or parts[1].strip("[]") != cpu:
        continue
    try:
        run_ms = float(parts[-1])
    except ValueError:
        continue
    task = " ".join(parts[2:-3])
    name, _, ids = task.rpartition("[")
    if pid is not None and ids.rstrip("]").split("/")[-1] != pid:
        continue
    s = stats[name or task]
    s[0] += 1
    s[1] += run_ms
    if run_ms > 0.2:
        s[2] += 1
        s[3] += run_ms
    runs.append((run_ms, parts[0], task))
for name, (n, total, long_n, long_total) in sorted(stats.items(), key=lambda kv: -kv[1][1])[:15]:
    print(f"{name:<32} runs {n:>7}  total {total:9.1f} ms  over 0.2 ms: {long_n:>5} ({long_total:.1f} ms)")
print("longest runs:")
for run_ms, at, task in sorted(runs, reverse=True)[:15]:
    print(f"  {run_ms:7.3f} ms at {at} {task}")
