"""A CPU- and allocation-heavy target that measures its own throughput.

Each operation builds and drops dicts, lists, instances and strings, and keeps one instance in
RETAIN_EVERY (bounded by --retain-max, then replaced round-robin) so the heap grows at first and
churns after: `record`'s census has a heap to walk and its sampler new objects to find.

Phases: --warmup seconds (not measured: interpreter start, a tool attaching), --duration seconds
measured in --window windows, then --linger seconds of the same work, not measured (a tool that
records until then finishes its report on a live, busy target). The result (JSON) goes to --out
when the measured phase ends, or to standard output.

    python workload.py --duration 20 [--warmup 3] [--linger 0] [--out result.json]
    pymemspy record --pid PID ...     or     pymemspy record ... -- python workload.py ...
"""

import argparse
import json
import os
import sys
import time

RETAIN_EVERY = 8
# Operations between clock reads: the clock is not what is measured.
BATCH = 32


class Order:
    __slots__ = ("id", "customer", "lines", "total", "tags")

    def __init__(self, i, customer, lines):
        self.id = i
        self.customer = customer
        self.lines = lines
        self.total = sum(q * p for _, q, p in lines)
        self.tags = {"k%d" % (i % 7): i}


class Customer:
    def __init__(self, i):
        self.name = "customer-%d" % i
        self.email = self.name + "@example.invalid"
        self.history = [i, i + 1, i + 2]


def one_op(i, retained, state):
    """One unit of work; returns a number so nothing is optimised away."""
    customer = Customer(i)
    lines = [("sku-%d" % (i * 3 + k), k + 1, 1.5 * k) for k in range(6)]
    order = Order(i, customer, lines)
    index = {line[0]: line for line in lines}
    words = " ".join(name for name, _, _ in lines).split()
    counts = {}
    for w in words:
        counts[w[:5]] = counts.get(w[:5], 0) + 1
    squares = [x * x for x in range(40)]
    acc = sum(squares) + len(index) + len(counts) + int(order.total)
    if i % RETAIN_EVERY == 0:
        if len(retained) < state["retain_max"]:
            retained.append(order)
        else:
            retained[state["slot"]] = order
            state["slot"] = (state["slot"] + 1) % state["retain_max"]
    return acc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, required=True, help="measured seconds")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--linger", type=float, default=0.0)
    p.add_argument("--window", type=float, default=1.0)
    p.add_argument("--retain-max", type=int, default=50_000, help="retained orders at most")
    p.add_argument("--out", help="result JSON (default: standard output)")
    a = p.parse_args()

    retained = []
    state = {"retain_max": a.retain_max, "slot": 0}
    t_start = time.perf_counter()
    t_measure = t_start + a.warmup
    t_end = t_measure + a.duration
    t_exit = t_end + a.linger
    windows = []  # ops per second in each measured window
    window_ops, window_start = 0, None
    total_ops, measure_start, cpu_start, cpu_end = 0, None, None, None
    i, sink = 0, 0
    now = t_start
    while now < t_exit:
        for _ in range(BATCH):
            sink ^= one_op(i, retained, state)
            i += 1
        now = time.perf_counter()
        if now < t_measure:
            continue
        if window_start is None:
            window_start = measure_start = now
            cpu_start = time.process_time()
            window_ops = 0
            continue
        if cpu_end is not None:
            continue
        window_ops += BATCH
        if now - window_start >= a.window or now >= t_end:
            windows.append(window_ops / (now - window_start))
            total_ops += window_ops
            window_ops, window_start = 0, now
        if now >= t_end:
            cpu_end = time.process_time()
            result = {
                "python": sys.version.split()[0],
                "pid": os.getpid(),
                "measured_s": now - measure_start,
                "ops": total_ops,
                "ops_per_s": total_ops / (now - measure_start),
                "ops_per_cpu_s": total_ops / max(cpu_end - cpu_start, 1e-9),
                "cpu_s": cpu_end - cpu_start,
                "windows_ops_per_s": windows,
                "retained": len(retained),
                "sink": sink & 1,
            }
            text = json.dumps(result)
            if a.out:
                tmp = a.out + ".tmp"
                with open(tmp, "w") as f:
                    f.write(text)
                os.replace(tmp, a.out)
            else:
                print(text, flush=True)


if __name__ == "__main__":
    main()
