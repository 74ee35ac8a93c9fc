"""Churn target: a population that never changes while two threads tear the heap around it.

The main thread builds STABLE instances of two classes nothing touches afterwards
(``Stable`` keeps a managed ``__dict__``, ``StableSlot`` uses ``__slots__``), then starts
two worker threads that, without pausing, each:

* build and drop ``Churn`` objects (same shape as ``Stable``, so they share its allocator
  pages), dicts, lists, tuples, strings and floats;
* resize dicts: grow one past several resize thresholds (8 -> 16 -> ... -> 2048 slots), then
  pop half of it and clear it; and grow ``Wide`` instances' attribute dicts past the shared-keys
  limit, so instance dicts are materialized and resized too;
* make cyclic garbage (self-referencing lists and dicts, a ``Churn`` in a cycle with a list)
  that only the collector frees;
* call ``gc.collect()`` on generations 0, 1 and 2 in turn after every batch, so the collector
  keeps moving objects (the stable ones included) between generations while the heap is read.

The truth is the stable counts, published once the workers are running; the main thread
then sleeps. A snapshot must count the stable types exactly while the heap churns around
them. The workers stop by themselves after --seconds (default 300).

    python churn_heap.py TRUTH_PATH [--stable N] [--seconds S]
"""

import gc
import json
import sys
import threading
import time

import _truth

# Objects built between two collections by one worker.
BATCH = 200
# Keys a resized dict grows to: past the 8, 16, ..., 1024 slot thresholds.
GROW_TO = 1500
# Attributes a Wide instance grows to: past the shared-keys limit (30 on 3.11+).
WIDE_ATTRS = 40


class Stable:
    def __init__(self, i):
        self.i = i


class StableSlot:
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class Churn:
    def __init__(self, i):
        self.i = i


class Wide:
    pass


def arg(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def resize_dicts(i):
    grown = {}
    for k in range(GROW_TO):
        grown[k] = i
    for k in range(0, GROW_TO, 2):
        grown.pop(k)
    grown.clear()
    wide = Wide()
    for a in range(WIDE_ATTRS):
        setattr(wide, "a%d" % a, a)
    for a in range(0, WIDE_ATTRS, 2):
        delattr(wide, "a%d" % a)


def make_cycles(i):
    looped = [Churn(i)]
    looped.append(looped)
    mapping = {"i": i}
    mapping["me"] = mapping
    pair = Churn(i)
    pair.back = [pair]


def churn(stop_at, started):
    started.release()
    keep = []
    i = 0
    generation = 0
    while time.monotonic() < stop_at:
        for _ in range(BATCH):
            keep.append([Churn(i), {"k": i}, "s%d" % i, float(i), (i, i + 1)])
            if len(keep) > 2000:
                del keep[:1000]
            if i % 20 == 0:
                make_cycles(i)
            i += 1
        resize_dicts(i)
        gc.collect(generation)
        generation = (generation + 1) % 3


def main():
    path = sys.argv[1]
    n = arg("--stable", 20000)
    stable = [Stable(i) for i in range(n)]
    slots = [StableSlot(i) for i in range(n)]
    started = threading.Semaphore(0)
    stop_at = time.monotonic() + arg("--seconds", 300)
    for _ in range(2):
        threading.Thread(target=churn, args=(stop_at, started), daemon=True).start()
    started.acquire()
    started.acquire()
    text = json.dumps(
        {"stable": {"__main__.Stable": len(stable), "__main__.StableSlot": len(slots)}}
    )
    _truth.write_truth(path, text)
    _truth.idle()


main()
