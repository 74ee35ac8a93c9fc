"""A heap built under tracemalloc (the test starts it with PYTHONTRACEMALLOC=N). Publishes, as
truth, `tracemalloc.take_snapshot().statistics('lineno')` for the lines marked `# traced`
below (they run once, before the snapshot, and never again), then idles.

usage: tracemalloc_heap.py TRUTH_PATH
"""

import json
import sys
import tracemalloc

import _truth

if not tracemalloc.is_tracing():
    raise SystemExit("start me with PYTHONTRACEMALLOC=N")


class Node:
    def __init__(self, i):
        self.payload = bytes(64 + i % 7)  # traced
        self.tags = ["t%d" % i]  # traced


def make_records(n):
    return [{"id": i, "name": "r%d" % i} for i in range(n)]  # traced


def build():
    records = make_records(3000)
    nodes = [Node(i) for i in range(2000)]  # traced
    blob = bytearray(1 << 20)  # traced
    words = ["w%06d" % i for i in range(5000)]  # traced
    return records, nodes, blob, words


HEAP = build()


def traced_lines():
    with open(__file__, encoding="utf-8") as f:
        return {n for n, text in enumerate(f, 1) if text.rstrip().endswith("# traced")}


def traced_stats(lines):
    snap = tracemalloc.take_snapshot()
    stats = snap.filter_traces([tracemalloc.Filter(True, __file__)]).statistics("lineno")
    out = {}
    for s in stats:
        frame = s.traceback[0]
        if frame.lineno in lines:
            out["%s:%d" % (frame.filename, frame.lineno)] = [s.size, s.count]
    return out


def truth():
    lines = traced_lines()
    # The first snapshot still sees a block or two that the interpreter frees right after
    # building (seen at the last allocating line on every version): take snapshots until two
    # agree, so the truth is what stays while the target idles.
    out, previous = traced_stats(lines), None
    for _ in range(10):
        if out == previous:
            break
        out, previous = traced_stats(lines), out
    doc = {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "nframe": tracemalloc.get_traceback_limit(),
        "lines": out,
    }
    return json.dumps(doc)


_truth.write_truth(sys.argv[1], truth())
_truth.idle()
