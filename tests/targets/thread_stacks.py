"""Target with threads parked in known nested functions, for `pymemspy dump` tests.

Usage: thread_stacks.py TRUTH_PATH

Three threads end up in fixed places and stay there:

* the main thread sleeps in ``Server.main_leaf`` (called through ``Server.main_mid``);
* ``worker`` waits on an Event in ``worker_leaf`` (through ``worker_mid``, ``worker_root``);
* ``spinner`` loops in pure Python in ``spin_leaf`` (through ``spin_root``), so it holds the
  GIL nearly all the time.

The truth (JSON) gives, per thread, ``threading.get_ident()``, ``threading.get_native_id()``
and its frames innermost first as [name, filename, firstlineno, lines], where name is
``co_qualname`` on 3.11+ and ``co_name`` before (what the frames' code objects carry), read with
``sys._current_frames()`` / ``sys._getframe()`` inside the target, and lines the line numbers
the frame may be executing (``f_lineno`` where it is parked; both lines of the spinner's loop).
"""

import json
import os
import sys
import threading
import time

HAS_QUALNAME = sys.version_info >= (3, 11)


def describe(frame):
    """Frames from `frame` outward, as [name, filename, firstlineno, [current line]]."""
    out = []
    while frame is not None:
        code = frame.f_code
        name = code.co_qualname if HAS_QUALNAME else code.co_name
        out.append([name, code.co_filename, code.co_firstlineno, [frame.f_lineno]])
        frame = frame.f_back
    return out


def worker_leaf(parked, release):
    parked.set()
    release.wait()


def worker_mid(parked, release):
    worker_leaf(parked, release)


def worker_root(parked, release):
    worker_mid(parked, release)


def spin_leaf(box, ready):
    # Our own frames, taken here: the loop below never leaves this frame.
    here = sys._getframe().f_lineno
    box["frames"] = describe(sys._getframe())
    # The loop below: `while True` or `n += 1`, whichever instruction the sample lands on.
    box["frames"][0][3] = [here + 6, here + 7]
    ready.set()
    n = 0
    while True:
        n += 1


def spin_root(box, ready):
    spin_leaf(box, ready)


def deadlocker(me, mine, theirs, holding):
    mine.acquire()
    holding[me].set()
    holding[1 - me].wait()
    theirs.acquire()  # never returns: the other thread holds it and waits for ours


def parked_frames(ident, innermost_name):
    """The thread's frames once its innermost frame is `innermost_name` and stable."""
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(ident)
        frames = describe(frame) if frame is not None else None
        if frames and frames[0][0].endswith(innermost_name) and frames == last:
            return frames
        last = frames
        time.sleep(0.02)
    raise SystemExit("thread %d did not park in %s" % (ident, innermost_name))


def publish(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)


class Server:
    def __init__(self, truth_path):
        self.truth_path = truth_path

    def main_mid(self):
        self.main_leaf()

    def main_leaf(self):
        parked, release = threading.Event(), threading.Event()
        worker = threading.Thread(
            target=worker_root, args=(parked, release), name="worker", daemon=True
        )
        worker.start()
        parked.wait()
        box, ready = {}, threading.Event()
        spinner = threading.Thread(
            target=spin_root, args=(box, ready), name="spinner", daemon=True
        )
        main = {
            "ident": threading.get_ident(),
            "native_id": threading.get_native_id(),
            "frames": describe(sys._getframe()),
        }
        doc = {
            "version": "%d.%d.%d" % sys.version_info[:3],
            "threads": {
                "main": main,
                "worker": {
                    "ident": worker.ident,
                    "native_id": worker.native_id,
                    # The worker sits in Event.wait -> Condition.wait below worker_leaf.
                    "frames": parked_frames(worker.ident, "wait"),
                },
            },
        }
        spinner.start()
        ready.wait()
        doc["threads"]["spinner"] = {
            "ident": spinner.ident,
            "native_id": spinner.native_id,
            "frames": box["frames"],
        }
        # Two named threads deadlocked on two locks, as a stuck worker pool shows them.
        locks = (threading.Lock(), threading.Lock())
        holding = (threading.Event(), threading.Event())
        for me, name in enumerate(("deadlock-a", "deadlock-b")):
            t = threading.Thread(
                target=deadlocker,
                args=(me, locks[me], locks[1 - me], holding),
                name=name,
                daemon=True,
            )
            t.start()
            doc["threads"][name] = {"ident": t.ident, "native_id": t.native_id}
        for name in ("deadlock-a", "deadlock-b"):
            entry = doc["threads"][name]
            entry["frames"] = parked_frames(entry["ident"], "deadlocker")
        # What each thread does: the names the program gave them, and how they wait (the
        # kernel's view: a lock is a futex; the spinner runs).
        names = {"main": "MainThread", "worker": "worker", "spinner": "spinner"}
        for label, entry in doc["threads"].items():
            entry["name"] = names.get(label, label)
            entry["waits"] = {"main": "sleep", "spinner": "running"}.get(label, "lock")
        # Where this thread blocks from now on: the sleep two lines down.
        doc["threads"]["main"]["frames"][0][3] = [sys._getframe().f_lineno + 3]
        publish(self.truth_path, doc)
        while True:
            time.sleep(3600)


Server(sys.argv[1]).main_mid()
