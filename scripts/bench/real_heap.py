"""Benchmark target shaped like a real service's heap rather than one uniform class: a pandas
DataFrame with object and categorical columns, JSON-like records (dicts of str, int, float,
lists and nested dicts), instances with and without __slots__, dataclasses, a deque and a
numpy object array of records, suspended generators, an asyncio loop in a thread with pending
tasks holding their data, and worker threads whose frames hold locals. SCALE (argv[2], default
1) multiplies every part; SCALE 1 is about 4M objects.

Times the in-process census Counter(type(o) for o in gc.get_objects()) (median of 5), writes
it and len(gc.get_objects()) to argv[1] when built, then idles for the outside tool."""
import asyncio
import collections
import dataclasses
import gc
import json
import os
import sys
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd

SCALE = int(sys.argv[2]) if len(sys.argv) > 2 else 1


class Session:
    def __init__(self, i):
        self.user_id = i
        self.token = "tok-%08x" % i
        self.created = 1.7e9 + i
        self.roles = ["reader", "writer"] if i % 3 else ["reader"]
        self.prefs = {"theme": "dark" if i % 2 else "light", "lang": "en", "page": i % 50}


class Point:
    __slots__ = ("x", "y", "label")

    def __init__(self, i):
        self.x = float(i)
        self.y = float(-i)
        self.label = "p%d" % i


@dataclasses.dataclass
class Order:
    order_id: int
    customer: str
    items: list
    total: float


def record(i):
    return {
        "id": i,
        "name": "customer-%d" % i,
        "email": "c%d@example.com" % i,
        "score": i * 0.5,
        "tags": ["t%d" % (i % 17), "t%d" % (i % 5)],
        "address": {"city": "city-%d" % (i % 1000), "zip": "%05d" % (i % 100000)},
    }


def stream(n):
    batch = [record(k) for k in range(n)]
    for r in batch:
        yield r


async def pending(i, payload):
    await asyncio.sleep(3600)
    return payload


def event_loop(ready):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    tasks = [loop.create_task(pending(i, [record(i) for _ in range(20)])) for i in range(2000 * SCALE)]
    ready.set()
    loop.run_until_complete(asyncio.gather(*tasks))


def worker(ready, stop):
    local_cache = {("k", i): "v%d" % i for i in range(50_000 * SCALE)}
    ready.set()
    stop.wait()
    return local_cache


n = 100_000 * SCALE
frame = pd.DataFrame(
    {
        "id": np.arange(n * 2),
        "price": np.linspace(0, 1, n * 2),
        "sku": ["sku-%d" % i for i in range(n * 2)],
        "region": pd.Categorical(["north", "south", "east", "west"] * (n // 2)),
    }
)
records = [record(i) for i in range(n)]
sessions = {i: Session(i) for i in range(n)}
points = [Point(i) for i in range(n)]
orders = [Order(i, "customer-%d" % i, [i, i + 1, i + 2], i * 1.5) for i in range(n // 2)]
recent = collections.deque((record(i) for i in range(n // 4)), maxlen=n)
table = np.empty(n // 4, dtype=object)
for i in range(n // 4):
    table[i] = (i, "row-%d" % i)
generators = [stream(10) for _ in range(n // 100)]
for g in generators:
    next(g)
payload_json = [json.dumps(record(i)) for i in range(n // 10)]

stop = threading.Event()
threads = []
for target, args in ((event_loop, ()), (worker, (stop,)), (worker, (stop,))):
    ready = threading.Event()
    t = threading.Thread(target=target, args=(ready,) + args, daemon=True)
    t.start()
    ready.wait()
    threads.append(t)

gc.collect()
runs = []
for _ in range(5):
    t0 = time.perf_counter()
    c = Counter(type(o) for o in gc.get_objects())
    runs.append(time.perf_counter() - t0)
    del c
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(
        {"in_process_counter_s": sorted(runs)[2], "objects_gc": len(gc.get_objects()), "n": SCALE},
        f,
    )
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
