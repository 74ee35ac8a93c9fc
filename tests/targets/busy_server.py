"""A busy multi-threaded server: 4 worker threads allocate and free continuously (dicts, lists,
instances, strs, some in reference cycles, some kept a while so they reach the older GC
generations and die there), beside a stable population of known size that never changes.

The GC lists change under any reader all the time; a census must still complete and count the
stable population exactly.

usage: busy_server.py TRUTH_PATH [--threads N]
"""

import gc
import sys
import threading

import _truth

THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 4


class Stable:
    """The known population: built once, never touched again."""

    def __init__(self, i):
        self.i = i
        self.name = "stable-%d" % i


class StableSlots:
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class StableInt(int):
    """Untracked: found only by the arena scan."""

    __slots__ = ()


class Request:
    """What the workers churn."""

    def __init__(self, n):
        self.n = n
        self.headers = {"id": n, "path": "/item/%d" % n}
        self.body = [n, str(n), n * 0.5]


N_STABLE = 20000
N_SLOTS = 5000
STABLE = [Stable(i) for i in range(N_STABLE)]
STABLE_SLOTS = [StableSlots(i) for i in range(N_SLOTS)]
STABLE_INTS = [StableInt(i * 7919) for i in range(N_SLOTS)]


def worker(seed):
    keep = []
    n = seed
    while True:
        for _ in range(200):
            n += 1
            r = Request(n)
            d = {"k%d" % (n % 97): r, "v": [r.body, r.headers]}
            if n % 7 == 0:
                # A cycle: only the collector frees it.
                d["self"] = d
            keep.append(d)
            s = "x" * (n % 300) + str(n)
            keep.append(s)
        # A rolling window: survivors age into the older generations and die there.
        if len(keep) > 6000:
            del keep[: len(keep) // 2]


def main():
    path = sys.argv[1]
    gc.collect()
    _truth.warm_up(path)
    # The truth first, while nothing else runs: the stable population is all it vouches for.
    text = _truth.with_fields(
        _truth.gc_census(),
        {"stable": {"__main__.Stable": N_STABLE, "__main__.StableSlots": N_SLOTS,
                    "__main__.StableInt": N_SLOTS},
         "threads": THREADS},
    )
    for i in range(THREADS):
        threading.Thread(target=worker, args=(i * 10**9,), daemon=True).start()
    _truth.write_truth(path, text)
    del text
    _truth.idle()


main()
