"""Objects no module or thread reaches, and an asyncio task awaiting through two coroutines.

Usage: unreached_heap.py TRUTH_PATH

* CYCLE_N ``InCycle`` objects, each referring to itself, made with automatic collection off
  and never collected: cyclic garbage not yet collected;
* HELD_N ``HeldByC`` objects, each kept alive by one reference taken with ``Py_IncRef``
  (through ctypes) that no Python object owns: held by C, no Python referrer;
* the module global ``task``, an asyncio Task suspended in ``outer``, which awaits ``inner``,
  which waits on an Event never set: Task ._coro -> coroutine (outer) cr_await -> coroutine.

The truth gives the counts and the version.
"""

import asyncio
import ctypes
import gc
import json
import sys
import time

import _truth

CYCLE_N = 300
HELD_N = 200


class InCycle:
    def __init__(self):
        self.me = self


class HeldByC:
    pass


async def inner():
    await asyncio.Event().wait()


async def outer():
    await inner()


task = None


def main(path):
    global task
    gc.disable()
    for _ in range(CYCLE_N):
        InCycle()
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None
    for _ in range(HELD_N):
        incref(HeldByC())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(outer())
    # Run the loop until the task is parked in inner's wait, then leave it there.
    loop.run_until_complete(asyncio.sleep(0.05))
    text = json.dumps(
        {
            "version": "%d.%d.%d" % sys.version_info[:3],
            "cycles": CYCLE_N,
            "held_by_c": HELD_N,
        }
    )
    _truth.warm_up(path)
    _truth.write_truth(path, text)
    while True:
        time.sleep(3600)


main(sys.argv[1])
