"""Objects held only by local variables of sleeping functions, in two threads.

Usage: frame_locals.py TRUTH_PATH

* the main thread sleeps in ``main_holder``, whose local ``held`` is a list of MAIN_N ``Held``;
* the thread named ``holder-worker`` waits in ``worker_holder``, whose local ``held`` is a list of
  WORKER_N ``Held`` and whose cell variable ``boxed`` (captured by the closure ``peek``) is a
  list of BOXED_N ``Boxed``.

No module global, class attribute or other object refers to these lists: from outside, only the
frames' slots reach them. The truth gives the counts, the bytes (sys.getsizeof) of the Held
objects in each list, each holder function's name (co_qualname on 3.11+, co_name before), file
and first line, and each thread's name and native id.
"""

import json
import sys
import threading
import time

import _truth

MAIN_N = 3000
WORKER_N = 1700
BOXED_N = 250


class Held:
    def __init__(self, i):
        self.i = i


class Boxed:
    def __init__(self, i):
        self.i = i


def code_facts(fn, waits_at):
    """The frame as the tool names it: function, file, and the line it is executing (the first
    line of this file, after the function's `def`, that is `waits_at`)."""
    code = fn.__code__
    name = code.co_qualname if sys.version_info >= (3, 11) else code.co_name
    with open(code.co_filename) as f:
        lines = f.read().splitlines()
    line = next(
        i + 1 for i in range(code.co_firstlineno, len(lines)) if lines[i].strip() == waits_at
    )
    return {"name": name, "file": code.co_filename, "line": line}


def worker_holder(box, ready, release):
    held = [Held(i) for i in range(WORKER_N)]
    boxed = [Boxed(i) for i in range(BOXED_N)]

    def peek():
        return boxed

    box["held_bytes"] = sum(sys.getsizeof(h) for h in held)
    ready.set()
    release.wait()
    return held, peek


def main_holder(truth_path):
    held = [Held(i) for i in range(MAIN_N)]
    box, ready, release = {}, threading.Event(), threading.Event()
    worker = threading.Thread(
        target=worker_holder, args=(box, ready, release), name="holder-worker", daemon=True
    )
    worker.start()
    ready.wait()
    main = threading.current_thread()
    text = json.dumps(
        {
            "version": "%d.%d.%d" % sys.version_info[:3],
            "main": {
                "count": MAIN_N,
                "held_bytes": sum(sys.getsizeof(h) for h in held),
                "thread": main.name,
                "native_id": threading.get_native_id(),
                "function": code_facts(main_holder, "time.sleep(3600)"),
            },
            "worker": {
                "count": WORKER_N,
                "boxed": BOXED_N,
                "held_bytes": box["held_bytes"],
                "thread": worker.name,
                "native_id": worker.native_id,
                "function": code_facts(worker_holder, "release.wait()"),
            },
        }
    )
    _truth.warm_up(truth_path)
    _truth.write_truth(truth_path, text)
    while True:
        time.sleep(3600)


main_holder(sys.argv[1])
