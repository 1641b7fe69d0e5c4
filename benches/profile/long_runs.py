#!/usr/bin/env python3
"""The long runs of a process's threads on one core, and what they were doing.

A run is the time a thread holds the core between being switched in and switched out. At one
connection the gateway's request thread runs for some tens of microseconds a request and then
waits in `epoll_wait`; a run of a millisecond or more is a stall that the next request waits
behind. This finds those runs in a trace of the core and prints the stacks sampled inside
them, so the stall has a name.

Record the gateway's core (the bench pins it to core 1) while a one-connection loop runs: its
context switches and CPU samples without stacks, and, in a second recording, the gateway's
own samples with stacks (stacks of the whole core would include every compiler on it, and
`perf script` takes many minutes to unwind those):

    perf record -C 1 -o core.data -F 10000 -e cpu-clock -e sched:sched_switch -- sleep 4 &
    perf record -p PID -o gw.data -F 10000 -e cpu-clock --call-graph dwarf,16384 -- sleep 4
    (perf script -i core.data -F comm,pid,tid,cpu,time,event,trace;
     perf script -i gw.data -F comm,pid,tid,time,event,ip,sym,dso) \
        | benches/profile/long_runs.py --pid PID [--min-ms 0.5] [--frames 14] [--hz 10000]

Prints each run longer than `--min-ms` (default 0.5) of every thread of `--pid` (default:
every thread but the idle task): when, how long, how many CPU samples fell inside it and their
stacks folded (innermost frame first, `--frames` frames each, default 14), most frequent first;
then the same stacks summed over all long runs, beside how many samples of those threads fell
outside long runs, so a frame that only shows inside long runs stands out. A run that other
processes preempt is split in two; a thread that waits in the kernel (a page fault that reads
the disk, a lock) ends its run there too, so a long run is CPU work of the thread itself (or
time the hypervisor took the virtual CPU away: then it holds few samples for its length).

On a loaded machine the trace can miss switch events without reporting any as lost: a "run"
then spans other threads' work. When the recording has samples of the whole core (`-C`), a
run that holds samples of other threads is marked `switch events missing` and left out of
the sums; recording the gateway's samples alone (`-p`), this check cannot be made. A run with
under a quarter of the samples its length should hold at `--hz` (default 10000, the `-F` of
the recording) is marked `few samples`: the virtual CPU was away (or the core idled with the
switch events missing), not the thread at work.
"""
import argparse
import bisect
import collections
import re
import sys

HEADER = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+(?:\[(?P<cpu>\d+)\]\s+)?"
                    r"(?P<time>\d+\.\d+):\s+(?:\d+\s+)?(?P<event>[\w:-]+):\s*(?P<rest>.*)$")
SWITCH = re.compile(r"prev_pid=(?P<prev>\d+).*==>.*next_pid=(?P<next>\d+)")
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(?P<sym>.+?)\s+\((?P<dso>[^)]*)\)\s*$")


def frame_name(sym, dso):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    # Rust symbols: drop the hash suffix.
    sym = re.sub(r"::h[0-9a-f]{16}$", "", sym)
    if sym == "[unknown]":
        sym = "[unknown " + dso.rsplit("/", 1)[-1] + "]"
    return sym


def events(lines):
    """Yields (tid, pid, comm, time, event, rest, frames, cpu); cpu is None when not printed."""
    cur = None
    cpu = None
    frames = []
    for line in lines:
        if not line.strip():
            continue
        m = HEADER.match(line)
        if m:
            if cur:
                yield (*cur, frames, cpu)
            cur = (int(m["tid"]), int(m["pid"]), m["comm"], float(m["time"]), m["event"],
                   m["rest"])
            cpu = int(m["cpu"]) if m["cpu"] is not None else None
            frames = []
            continue
        f = FRAME.match(line)
        if f and cur:
            frames.append(frame_name(f["sym"], f["dso"]))
    if cur:
        yield (*cur, frames, cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int)
    ap.add_argument("--min-ms", type=float, default=0.5)
    ap.add_argument("--frames", type=int, default=14)
    ap.add_argument("--top", type=int, default=8, help="stacks printed per run")
    ap.add_argument("--hz", type=float, default=10000, help="the sampling rate of the recording")
    args = ap.parse_args()

    started = {}  # tid -> switch-in time
    names = {}
    runs = []  # (start, end, tid)
    samples = collections.defaultdict(list)  # tid -> [(time, frames)]
    every = []  # (time, tid): every sample, for runs that hold other threads' samples
    pids = {}
    for tid, pid, comm, t, event, rest, frames, cpu in events(sys.stdin):
        if event.endswith("sched_switch"):
            m = SWITCH.search(rest)
            if not m:
                continue
            prev, nxt = int(m["prev"]), int(m["next"])
            if prev in started:
                runs.append((started.pop(prev), t, prev))
            if nxt != 0:
                started[nxt] = t
                nm = re.search(r"next_comm=(.+?) next_pid=", rest)
                if nm:
                    names[nxt] = nm.group(1)
        elif "cpu-clock" in event or "task-clock" in event:
            pids[tid] = pid
            names.setdefault(tid, comm)
            if cpu is not None:
                every.append((t, tid))
            if frames or cpu is None:
                samples[tid].append((t, frames))

    def wanted(tid):
        if args.pid is None:
            return tid != 0
        return pids.get(tid) == args.pid

    long_runs = sorted((r for r in runs if wanted(r[2]) and (r[1] - r[0]) * 1e3 >= args.min_ms),
                       key=lambda r: r[0])
    per_thread = collections.Counter()
    for s, e, tid in runs:
        if wanted(tid):
            per_thread[tid] += 1
    print(f"runs of the selected threads: {sum(per_thread.values())}; "
          f"over {args.min_ms} ms: {len(long_runs)}")
    for tid, n in per_thread.most_common(10):
        durs = sorted((e - s) * 1e3 for s, e, t in runs if t == tid)
        print(f"  {names.get(tid, '?'):<28} tid {tid:<8} runs {n:>7}  total {sum(durs):8.1f} ms  "
              f"p99 {durs[int(len(durs) * 0.99)] if durs else 0:6.3f} ms  max {durs[-1]:6.3f} ms")

    every.sort()
    times = [t for t, _ in every]
    inside = collections.Counter()
    inside_ids = set()
    missing = 0
    for s, e, tid in long_runs:
        got = [(t, f) for t, f in samples.get(tid, []) if s <= t <= e]
        for t, _ in got:
            inside_ids.add((tid, t))
        lo, hi = bisect.bisect_left(times, s), bisect.bisect_right(times, e)
        foreign = sum(1 for _, other in every[lo:hi] if other != tid)
        folded = collections.Counter(";".join(f[: args.frames]) for _, f in got)
        note = f"  other threads' samples {foreign}: switch events missing" if foreign else ""
        if not foreign and len(got) < (e - s) * args.hz / 4:
            note = "  few samples for its length: the CPU was away"
        print(f"\n{(e - s) * 1e3:7.3f} ms  {names.get(tid, '?')} tid {tid}  from {s:.6f}  "
              f"samples {len(got)}{note}")
        for stack, n in folded.most_common(args.top):
            print(f"  {n:>5}  {stack}")
        if foreign:
            missing += 1
            continue
        for _, f in got:
            inside[";".join(f[: args.frames])] += 1

    outside = collections.Counter()
    for tid, got in samples.items():
        if not wanted(tid):
            continue
        for t, f in got:
            if (tid, t) not in inside_ids:
                outside[";".join(f[: args.frames])] += 1
    total_in = sum(inside.values())
    total_out = sum(outside.values())
    print(f"\nall long runs ({missing} with switch events missing left out): {total_in} samples; "
          f"outside them: {total_out} samples")
    for stack, n in inside.most_common(25):
        print(f"  {n:>5} in  {outside.get(stack, 0):>6} out  {stack}")


if __name__ == "__main__":
    main()
