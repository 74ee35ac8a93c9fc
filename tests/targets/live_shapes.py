"""Server shapes for live tracing (tests/live_tracing.rs), none of which traces on its own.

Usage: live_shapes.py TRUTH_PATH MODE [--bench] [--keep N]

MODE is one of:

* ``asyncio``: an asyncio TCP server on a loopback port; a client thread sends requests over
  real sockets; each request's handler ``remember_request()`` keeps one ``Session`` in
  ``SESSIONS`` (all of the growth) while its parsing churns.
* ``deadlock``: the main thread waits forever on a lock it already holds (in C, the GIL
  released), the only thread: no Python code ever runs again.
* ``idle-select``: a pre-fork worker between requests: ``select()`` on a listening socket with a
  1 s timeout, looping (Python code runs once a second), never served.

The truth (JSON): the mode and, for asyncio, the leaking function. TRUTH_PATH + ".state" is
rewritten every 0.2 s by the loop that runs Python code (asyncio, idle-select): whether
tracemalloc traces, the requests served, tracemalloc's own memory and the time.

For scripts/bench-live-tracing.sh (asyncio): ``--bench`` makes the client send its next request
as soon as the answer comes (the server's throughput, not the client's pauses, is measured);
``--keep N`` keeps only the newest N sessions (a server in its steady state, not a leaking one).
"""

import json
import os
import select
import socket
import sys
import threading
import time

SESSIONS = {}


class Session:
    def __init__(self, key, data):
        self.key = key
        self.data = data


def publish(path, truth):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(truth, f)
    os.replace(tmp, path)


def write_state(path):
    import tracemalloc

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(
            "%d %d %d %.3f\n"
            % (tracemalloc.is_tracing(), _serial[0], tracemalloc.get_tracemalloc_memory(), time.time())
        )
    os.replace(tmp, path)


_serial = [0]
BENCH = "--bench" in sys.argv
KEEP = int(sys.argv[sys.argv.index("--keep") + 1]) if "--keep" in sys.argv else 0


def remember_request(payload):
    # The key is made here too: everything a request leaves behind is made in this function.
    _serial[0] += 1
    key = _serial[0]
    SESSIONS[key] = Session(key, payload.decode())
    if KEEP:
        SESSIONS.pop(key - KEEP, None)


def parse(payload):
    return [{"k": i, "v": [i] * 3} for i in range(200)], payload.split(b" ")


def run_asyncio(truth_path):
    import asyncio

    async def handle(reader, writer):
        while True:
            line = await reader.readline()
            if not line:
                break
            parse(line)
            remember_request(line)
            writer.write(b"ok\n")
            await writer.drain()
        writer.close()

    async def report():
        while True:
            write_state(truth_path + ".state")
            await asyncio.sleep(0.2)

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client():
            s = socket.create_connection(("127.0.0.1", port))
            f = s.makefile("rb")
            while True:
                s.sendall(b"GET /item user=42 session=abc\n")
                f.readline()
                if not BENCH:
                    time.sleep(0.001)

        threading.Thread(target=client, daemon=True).start()
        asyncio.ensure_future(report())
        publish(truth_path, {"mode": "asyncio", "leaker": "remember_request"})
        await asyncio.Event().wait()

    asyncio.run(main())


def run_deadlock(truth_path):
    publish(truth_path, {"mode": "deadlock"})
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()


def run_idle_select(truth_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    publish(truth_path, {"mode": "idle-select"})
    while True:
        write_state(truth_path + ".state")
        select.select([listener], [], [], 1.0)


def main():
    truth_path, mode = sys.argv[1], sys.argv[2]
    {"asyncio": run_asyncio, "deadlock": run_deadlock, "idle-select": run_idle_select}[mode](
        truth_path
    )


main()
