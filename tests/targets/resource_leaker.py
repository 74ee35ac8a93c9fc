"""Leaks that grow: every 0.2 s for 12 s it opens a file and a socket it never closes, starts a
thread that never ends, and, with the collector disabled, makes reference
cycles. Then it writes its final counts (TRUTH_PATH + ".final") and idles.

usage: resource_leaker.py TRUTH_PATH
"""

import gc
import json
import os
import socket
import sys
import threading
import time

import _truth


class Cycle:
    def __init__(self):
        self.me = self


files, socks, threads = [], [], []
stop = threading.Event()


def main():
    path = sys.argv[1]
    gc.disable()
    _truth.warm_up(path)
    # 60 steps: a recorder whose first sample comes seconds late on a loaded machine still
    # sees most of the growth (with 30, one that came 4 s late saw too little to judge).
    _truth.write_truth(path, json.dumps({"steps": 60}))
    for step in range(60):
        files.append(open(__file__, "rb"))
        socks.append(socket.socket())
        t = threading.Thread(target=stop.wait, daemon=True)
        t.start()
        threads.append(t)
        for _ in range(50):
            Cycle()
        time.sleep(0.2)
    final = {"files": len(files), "sockets": len(socks), "threads": threading.active_count()}
    with open(path + ".final.tmp", "w") as f:
        f.write(json.dumps(final))
    os.replace(path + ".final.tmp", path + ".final")
    _truth.idle()


main()
