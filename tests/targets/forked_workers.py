"""A gunicorn-style master: forks 3 workers that each build a known number of objects of their
own type, and starts one non-Python child (`sleep`). Publishes the pids and per-worker counts
once every worker has built its heap, then idles. Workers exit when the master is gone.

usage: forked_workers.py TRUTH_PATH
"""

import json
import os
import subprocess
import sys
import time

import _truth


class Worker0Item:
    pass


class Worker1Item:
    pass


class Worker2Item:
    pass


KINDS = [Worker0Item, Worker1Item, Worker2Item]
COUNTS = [1000, 2000, 3000]


def worker(index, ready_fd, master):
    kind = KINDS[index]
    keep = [kind() for _ in range(COUNTS[index])]
    os.write(ready_fd, b"x")
    os.close(ready_fd)
    while os.getppid() == master:
        time.sleep(0.2)
    del keep
    os._exit(0)


def main():
    truth_path = sys.argv[1]
    master = os.getpid()
    sleeper = subprocess.Popen(["sleep", "600"])
    workers = {}
    for i in range(len(KINDS)):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            worker(i, w, master)
        os.close(w)
        if os.read(r, 1) != b"x":
            raise SystemExit("worker %d did not start" % i)
        os.close(r)
        workers[str(pid)] = {
            "type": "__main__." + KINDS[i].__name__,
            "count": COUNTS[i],
        }
    doc = {
        "version": "%d.%d.%d" % sys.version_info[:3],
        "master": master,
        "sleep": sleeper.pid,
        "workers": workers,
    }
    _truth.write_truth(truth_path, json.dumps(doc))
    try:
        _truth.idle()
    finally:
        sleeper.kill()


main()
