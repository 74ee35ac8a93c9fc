"""A pre-fork master whose workers come and go, for `record --subprocesses`.

The master forks three workers:
  * "leaker" keeps LEAK_PER_TICK new `__main__.LeakItem` objects every TICK seconds (forever,
    up to a cap far beyond any test's recording);
  * "steady" builds 1000 `__main__.SteadyItem` objects and holds them;
  * "recycled" builds 1000 `__main__.RecycledItem` objects and holds them.
It publishes the pids once every worker has built its heap. On SIGUSR1 it replaces the
"recycled" worker as a max-requests recycle would: SIGTERM, reap, fork a successor (same kind of
heap), and publishes {"old": pid, "new": pid} in `<truth dir>/recycled.json`. Workers exit when
the master is gone.

usage: recycled_workers.py TRUTH_PATH
"""

import json
import os
import signal
import sys
import time

import _truth

TICK = 0.05
LEAK_PER_TICK = 5
LEAK_CAP = 200000


class LeakItem:
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


class SteadyItem:
    pass


class RecycledItem:
    pass


def leaker():
    kept = []
    while len(kept) < LEAK_CAP:
        for _ in range(LEAK_PER_TICK):
            kept.append(LeakItem(len(kept)))
        yield


def holder(kind):
    keep = [kind() for _ in range(1000)]
    while True:
        yield keep


def worker(role, ready_fd, master):
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    body = leaker() if role == "leaker" else holder(
        SteadyItem if role == "steady" else RecycledItem
    )
    next(body)
    os.write(ready_fd, b"x")
    os.close(ready_fd)
    while os.getppid() == master:
        time.sleep(TICK)
        next(body, None)
    os._exit(0)


def fork_worker(role, master):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            worker(role, w, master)
        finally:
            os._exit(0)
    os.close(w)
    if os.read(r, 1) != b"x":
        raise SystemExit("worker %s did not start" % role)
    os.close(r)
    return pid


recycle_asked = []


def on_usr1(signum, frame):
    recycle_asked.append(1)


def main():
    truth_path = sys.argv[1]
    master = os.getpid()
    signal.signal(signal.SIGUSR1, on_usr1)
    pids = {}
    for role in ("leaker", "steady", "recycled"):
        pids[role] = fork_worker(role, master)
    doc = {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "master": master,
        "workers": pids,
        "leak_type": "__main__.LeakItem",
        "leak_rate": LEAK_PER_TICK / TICK,
        "types": {
            "leaker": "__main__.LeakItem",
            "steady": "__main__.SteadyItem",
            "recycled": "__main__.RecycledItem",
        },
    }
    _truth.write_truth(truth_path, json.dumps(doc))
    recycled_path = os.path.join(os.path.dirname(truth_path), "recycled.json")
    while True:
        time.sleep(0.1)
        if recycle_asked:
            del recycle_asked[:]
            old = pids["recycled"]
            os.kill(old, signal.SIGTERM)
            os.waitpid(old, 0)
            pids["recycled"] = fork_worker("recycled", master)
            _truth.write_truth(
                recycled_path, json.dumps({"old": old, "new": pids["recycled"]})
            )


main()
