"""Server-like target for the allocation profile: one handler leaks, another churns.

Usage: alloc_server.py TRUTH_PATH [--same-class] [--untracked] [--seconds N]
                        [--churn-threads N]

The request loop calls, over and over:

* ``leaky_handler()``: ~20 ms, builds 2,000 ``CacheEntry`` objects and keeps every one of them
  in the module-level ``CACHE`` list: all of the heap's growth comes from here;
  (``--untracked``: 2,000 bytes objects, response bodies, which no GC list ever shows);
* ``churn_worker()``: ~20 ms, builds ~10x as many ``Request`` objects (``--same-class``:
  ``CacheEntry`` objects too, the hardest case for telling them apart by address reuse) and
  frees them all before returning;
* then sleeps 5 ms.

With ``--churn-threads N`` the roles are threads of their own, as in a server whose request
threads leak while its worker threads churn: the main thread loops ``leaky_handler()`` (and
the 5 ms sleep), N threads loop ``churn_worker()`` (and a 5 ms sleep) at the same time.

The truth (JSON, published before the loop starts) gives the objects each call builds and the
bytes one call keeps (sys.getsizeof of its entries and of their instance dicts where they have
one). The target then waits, idle, until the file TRUTH_PATH + ".go" exists, runs the loop for
``--seconds`` (default 30) and idles again.
"""

import gc
import json
import os
import sys
import threading
import time

N_KEEP = 2000
N_CHURN = 20000
SLICES = 20
CALL_SECONDS = 0.020

CACHE = []
_serial = [0]
UNTRACKED = "--untracked" in sys.argv


class CacheEntry:
    def __init__(self, key, size):
        self.key = key
        self.size = size
        self.hits = 0


class Request:
    def __init__(self, key, size):
        self.key = key
        self.size = size
        self.hits = 0


def next_key():
    # Distinct int objects (beyond the small-int cache), as real keys would be.
    _serial[0] += 1
    return _serial[0] + 100000


def busy_until(deadline):
    """Burn CPU without allocating GC objects, as request parsing would."""
    x = 0
    while time.perf_counter() < deadline:
        for _ in range(50):
            x += 1
    return x


def response_body(key):
    return b"HTTP/1.1 200 OK response %d " % key * 2


def leaky_handler():
    start = time.perf_counter()
    per_slice = N_KEEP // SLICES
    for s in range(SLICES):
        for _ in range(per_slice):
            if UNTRACKED:
                CACHE.append(response_body(next_key()))
            else:
                CACHE.append(CacheEntry(next_key(), 64))
        busy_until(start + (s + 1) * CALL_SECONDS / SLICES)


def churn_worker(kind):
    start = time.perf_counter()
    per_slice = N_CHURN // SLICES
    for s in range(SLICES):
        batch = [kind(next_key(), 64) for _ in range(per_slice)]
        del batch
        busy_until(start + (s + 1) * CALL_SECONDS / SLICES)


def kept_bytes_of_one_call():
    if UNTRACKED:
        return sum(sys.getsizeof(response_body(next_key())) for _ in range(N_KEEP))
    entries = [CacheEntry(next_key(), 64) for _ in range(N_KEEP)]
    total = 0
    for e in entries:
        total += sys.getsizeof(e)
        d = getattr(e, "__dict__", None)
        # Before 3.11 every instance owns a dict object; later ones keep values inline/managed.
        if sys.version_info < (3, 11) and d is not None:
            total += sys.getsizeof(d)
    return total


def main():
    truth_path = sys.argv[1]
    same_class = "--same-class" in sys.argv
    seconds = 30.0
    if "--seconds" in sys.argv:
        seconds = float(sys.argv[sys.argv.index("--seconds") + 1])
    churn_kind = CacheEntry if same_class else Request
    doc = {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "keep_per_call": N_KEEP,
        "churn_per_call": N_CHURN,
        "kept_bytes_per_call": kept_bytes_of_one_call(),
        "same_class": same_class,
        "untracked": UNTRACKED,
        "gc_threshold": list(gc.get_threshold()),
    }
    tmp = truth_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, truth_path)
    go = truth_path + ".go"
    while not os.path.exists(go):
        time.sleep(0.01)
    end = time.monotonic() + seconds
    churn_threads = 0
    if "--churn-threads" in sys.argv:
        churn_threads = int(sys.argv[sys.argv.index("--churn-threads") + 1])

    def churn_loop():
        while time.monotonic() < end:
            churn_worker(churn_kind)
            time.sleep(0.005)

    for _ in range(churn_threads):
        threading.Thread(target=churn_loop, daemon=True).start()
    while time.monotonic() < end:
        leaky_handler()
        if not churn_threads:
            churn_worker(churn_kind)
        time.sleep(0.005)
    while True:
        time.sleep(3600)


main()
