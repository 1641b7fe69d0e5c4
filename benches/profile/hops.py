#!/usr/bin/env python3
"""Where a forwarded request's time goes, hop by hop, from a syscall trace of the gateway's core.

Record while the load bench's open loop runs (perf itself on the load core, so it does not
take the gateway's core), then read the trace of one thread:

    taskset -c 0 perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit \
        -e sched:sched_switch,sched:sched_wakeup -C 1 -o hops.data -- sleep 12
    perf script -i hops.data -F comm,tid,time,event,trace | benches/profile/hops.py tokio-rt-worker
    perf script -i hops.data -F comm,tid,time,event,trace | benches/profile/hops.py bench-proxy

(tracefs must be mounted: `mount -t tracefs nodev /sys/kernel/tracing`.) The gateway's worker
thread is `tokio-rt-worker`; the bench's bare proxy is `bench-proxy`. An optional second argument
keeps only the seconds in which the thread forwarded at most that many requests (1500 picks the
open loop at 1,000 req/s out of a trace that also caught a closed loop). A request is a 304-byte
`recvfrom` on a client socket; the hops are: the core waking (epoll_wait returns) to that read,
the read to the `writev` upstream, that `writev` itself, the wait for the upstream's answer, the
answer's read to the `writev` to the client, and that `writev` itself. The medians are printed.
"""
import re
import statistics
import sys

REQUEST_BYTES = "304"  # the load bench's request (headers and body), as read by the proxy
EPOLL_WAIT, RECVFROM, WRITEV = 232, 45, 20

def main():
    comm = sys.argv[1] if len(sys.argv) > 1 else "tokio-rt-worker"
    max_rate = int(sys.argv[2]) if len(sys.argv) > 2 else None
    done = []  # (end time, {hop: seconds})
    line_re = re.compile(r"^\s*(\S+)\s+(\d+)\s+([\d.]+):\s+(\S+):\s+(.*)$")
    hops = {k: [] for k in ("wake_to_read", "read_to_writev_up", "writev_up", "upstream_wait",
                            "answer_to_writev_client", "writev_client", "total")}
    last_enter = None
    last_wake = None
    open_reqs = {}      # client fd -> times
    upstream_of = {}    # upstream fd -> client fd
    current = None      # the client fd whose request is being forwarded
    for line in sys.stdin:
        m = line_re.match(line)
        if not m or m.group(1) != comm:
            continue
        t, event, args = float(m.group(3)), m.group(4), m.group(5)
        if event == "raw_syscalls:sys_enter":
            nr = int(args.split()[1])
            fd = args.split("(")[1].split(",")[0]
            last_enter = (nr, fd)
            r = open_reqs.get(current)
            if nr == WRITEV and r is not None and fd != current and "upfd" not in r:
                r["up_enter"], r["upfd"] = t, fd
            if nr == WRITEV and fd in open_reqs and "answer" in open_reqs[fd]:
                open_reqs[fd]["cl_enter"] = t
        elif event == "raw_syscalls:sys_exit" and last_enter is not None:
            nr = int(args.split()[1])
            ret = args.split("=")[-1].strip()
            _, fd = last_enter
            if nr == EPOLL_WAIT:
                last_wake = t
            elif nr == RECVFROM and ret == REQUEST_BYTES and last_wake is not None:
                open_reqs[fd] = {"wake": last_wake, "read": t}
                current = fd
            elif nr == WRITEV and current in open_reqs and open_reqs[current].get("upfd") == fd \
                    and "up_exit" not in open_reqs[current]:
                open_reqs[current]["up_exit"] = t
                upstream_of[fd] = current
            elif nr == RECVFROM and fd in upstream_of:
                c = upstream_of.pop(fd)
                if c in open_reqs:
                    open_reqs[c]["answer_wake"], open_reqs[c]["answer"] = last_wake, t
            elif nr == WRITEV and fd in open_reqs and "cl_enter" in open_reqs[fd]:
                r = open_reqs.pop(fd)
                try:
                    done.append((t, {
                        "wake_to_read": r["read"] - r["wake"],
                        "read_to_writev_up": r["up_enter"] - r["read"],
                        "writev_up": r["up_exit"] - r["up_enter"],
                        "upstream_wait": r["answer_wake"] - r["up_exit"],
                        "answer_to_writev_client": r["cl_enter"] - r["answer"],
                        "writev_client": t - r["cl_enter"],
                        "total": t - r["wake"],
                    }))
                except (KeyError, TypeError):
                    pass
    per_second = {}
    for t, _ in done:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    for t, h in done:
        if max_rate is None or per_second[int(t)] <= max_rate:
            for name, v in h.items():
                hops[name].append(v)
    n = len(hops["total"])
    print(f"{comm}: {n} requests")
    if n == 0:
        return
    for name, values in hops.items():
        print(f"  {name:24} p50 {1e6 * statistics.median(values):7.1f} µs"
              f"   mean {1e6 * statistics.mean(values):7.1f} µs")

if __name__ == "__main__":
    main()
