"""Leaks that are not bytes: a collector switched off, uncollectable garbage, open files and
sockets never closed, descriptors opened by os.open (no Python owner), threads that never end.
Writes what it knows about itself, then idles.

usage: leaky_resources.py TRUTH_PATH
"""

import gc
import json
import os
import socket
import sys
import threading

import _truth


class Cycle:
    def __init__(self):
        self.me = self


gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds goes to gc.garbage, not freed
for _ in range(50):
    Cycle()
gc.collect()
gc.set_debug(0)
gc.disable()
gc.set_threshold(1234, 11, 12)
files = [open(os.devnull, "rb") for _ in range(7)]
closed_files = [open(os.devnull, "rb") for _ in range(2)]
for f in closed_files:
    f.close()
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
clients = [socket.socket() for _ in range(3)]
raw_fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
stop = threading.Event()
workers = [threading.Thread(target=stop.wait, daemon=True) for _ in range(5)]
for w in workers:
    w.start()


def main():
    path = sys.argv[1]
    _truth.warm_up(path)
    fds = len(os.listdir("/proc/self/fd")) - 1  # minus the listdir's own descriptor
    truth = {
        "gc_enabled": gc.isenabled(),
        "threshold": list(gc.get_threshold()),
        "garbage": len(gc.garbage),
        "frozen": gc.get_freeze_count(),
        "fds": fds,
        # sys.stdin/stdout/stderr each hold an _io.FileIO too.
        "python_fd_objects_open": len(files) + 1 + len(clients) + 3,
        "python_fd_objects_closed": len(closed_files),
        "raw_fds": len(raw_fds),
        "threads": threading.active_count(),
    }
    _truth.write_truth(path, json.dumps(truth))
    _truth.idle()


main()
