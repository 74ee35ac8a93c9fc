"""Churn target: a population that never changes while two threads allocate and free.

The main thread builds STABLE instances of two classes nothing touches afterwards
(``Stable`` keeps a managed ``__dict__``, ``StableSlot`` uses ``__slots__``), then starts
two worker threads that keep building and dropping ``Churn`` objects (same shape as
``Stable``, so they share its allocator pages), dicts, lists, tuples, strings and floats.
The truth is the stable counts, published once the workers are running; the main thread
then sleeps. A snapshot must count the stable types exactly while the heap churns around
them. The workers stop by themselves after --seconds (default 300).

    python churn_heap.py TRUTH_PATH [--stable N] [--seconds S]
"""

import json
import sys
import threading
import time

import _truth


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


def arg(name, default):
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def churn(stop_at, started):
    started.release()
    keep = []
    i = 0
    while time.monotonic() < stop_at:
        keep.append([Churn(i), {"k": i}, "s%d" % i, float(i), (i, i + 1)])
        if len(keep) > 2000:
            del keep[:1000]
        i += 1


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
