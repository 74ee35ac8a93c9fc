"""A job queue that a worker thread keeps turning while pymemspy reads it: `why` without
--pause must either count every job or say that the queue changed while it was read.

usage: churning_deque.py TRUTH_PATH
"""

import collections
import json
import sys
import threading

import _truth

JOBS = 9000


class Job:
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


queue = collections.deque(Job(i) for i in range(JOBS))


def worker():
    # Every turn moves one job from the right end to the left: the deque's indexes and
    # blocks change all the time, its jobs never.
    while True:
        queue.rotate(1)


def main():
    _truth.warm_up(sys.argv[1])
    threading.Thread(target=worker, daemon=True).start()
    _truth.write_truth(sys.argv[1], json.dumps({"jobs": JOBS}))
    _truth.idle()


main()
