"""Request threads for the allocation profile: each request parses (churn) then remembers a
session (the leak), on several threads switching the GIL.

Usage: alloc_threads.py TRUTH_PATH [--threads N] [--seconds S] [--tracemalloc N] [--no-wait]
                        [--exit] [--io] [--keep N]

Each of N threads (default 4) serves requests in a loop: ``handle()`` calls ``parse()`` (builds
and drops ~2,000 small dicts and lists: long, all churn), then ``remember()`` keeps one
``Session`` object with its instance dict in ``SESSIONS`` (short: all of the heap's growth). The
truth (JSON) names the leaking function and the line that makes the kept object; the target
then waits for TRUTH_PATH + ".go", serves for S seconds (default 30) and idles. With
``--tracemalloc N`` the program traces its own allocations (``tracemalloc.start(N)``) first, as
a service started with PYTHONTRACEMALLOC=N does. ``--no-wait``: serve at once (a program the
tool starts itself). The requests served per second go to TRUTH_PATH + ".rate" when serving
ends (the benchmark's throughput); ``--exit`` ends the program then instead of idling.
``--io``: each request also waits 0.2 ms, as a request thread waits on its socket (the GIL is
released there), and TRUTH_PATH + ".state" says every 0.2 s whether tracemalloc traces, how
many requests were served, tracemalloc's own memory and the time (the live-tracing tests and
scripts/bench-live-tracing.sh read it: tracing off again, still serving, traces freed).
``--keep N``: a server in its steady state, not a leaking one: only the newest N sessions are
kept, so the heap stops growing (a growing heap slows every collection, and with it the
program: the benchmark compares throughput before and after tracing on both shapes).
"""

import json
import os
import sys
import threading
import time

SESSIONS = {}
_lock = threading.Lock()
_serial = [0]


class Session:
    def __init__(self, key, user):
        self.key = key
        self.user = user
        self.hits = [0]


def parse(n):
    items = [{"id": i, "tags": [i, i + 1]} for i in range(n)]
    total = 0
    for it in items:
        total += len(it["tags"])
    return total


KEEP = int(sys.argv[sys.argv.index("--keep") + 1]) if "--keep" in sys.argv else 0


def remember(user):
    with _lock:
        _serial[0] += 1
        key = _serial[0]
    SESSIONS[key] = Session(key, user)  # LEAK_LINE
    if KEEP:
        # The session KEEP requests older goes (when its thread has stored it already).
        SESSIONS.pop(key - KEEP, None)


def handle(user):
    parse(2000)
    remember(user)


_served = []


IO = "--io" in sys.argv


def serve(stop):
    user = served = 0
    while not stop.is_set():
        # A hundred users come back: their ids are small ints, cached by the interpreter, so a
        # kept Session holds nothing made here and all of the growth is made in remember() (a
        # new int per request made here would be kept too, and charged to this line).
        user = (user + 1) % 100
        handle(user)
        served += 1
        if IO:
            time.sleep(0.0002)
    _served.append(served)


def report_state(path):
    import tracemalloc

    while True:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            # Requests served = the last session key (no counter of its own: it would allocate);
            # tracemalloc's own memory (its traces), back to 0 once tracing stops.
            f.write(
                "%d %d %d %.3f\n"
                % (tracemalloc.is_tracing(), _serial[0], tracemalloc.get_tracemalloc_memory(), time.time())
            )
        os.replace(tmp, path)
        time.sleep(0.2)


def leak_line():
    # A plain scan of this file: inspect's tokenizer took seconds of start-up under tracemalloc
    # on a loaded machine, start-up a recording then took for the program's steady state.
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if line.strip().startswith("SESSIONS[") and "LEAK_LINE" in line:
                return number
    raise SystemExit("no leak line")


def main():
    args = sys.argv[1:]
    truth_path = args[0]
    threads = int(args[args.index("--threads") + 1]) if "--threads" in args else 4
    seconds = float(args[args.index("--seconds") + 1]) if "--seconds" in args else 30.0
    if "--tracemalloc" in args:
        import tracemalloc

        tracemalloc.start(int(args[args.index("--tracemalloc") + 1]))
    tmp = truth_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(
            {
                "version": "%d.%d.%d" % sys.version_info[:3],
                "leaker": "remember",
                "leak_line": leak_line(),
                "file": os.path.abspath(__file__),
                "threads": threads,
            },
            f,
        )
    os.replace(tmp, truth_path)
    while "--no-wait" not in args and not os.path.exists(truth_path + ".go"):
        time.sleep(0.05)
    if IO:
        threading.Thread(target=report_state, args=(truth_path + ".state",), daemon=True).start()
    stop = threading.Event()
    workers = [threading.Thread(target=serve, args=(stop,), daemon=True) for _ in range(threads)]
    began = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    with open(truth_path + ".rate.tmp", "w") as f:
        f.write("%.3f\n" % (sum(_served) / (time.perf_counter() - began)))
    os.replace(truth_path + ".rate.tmp", truth_path + ".rate")
    if "--exit" in args:
        return
    while True:
        time.sleep(3600)


main()
