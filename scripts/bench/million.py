"""Benchmark target: N instances (default 1,000,000), each with a list and a str: ~4M objects.
Times the in-process census Counter(type(o) for o in gc.get_objects()) itself, writes the
figures to the path given, then idles for the outside tool."""
import gc
import json
import sys
import time
from collections import Counter


class Item:
    def __init__(self, i):
        self.tags = [i]
        self.name = "item-%d" % i


N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
items = [Item(i) for i in range(N)]
gc.collect()
runs = []
for _ in range(7):
    t0 = time.perf_counter()
    c = Counter(type(o) for o in gc.get_objects())
    runs.append(time.perf_counter() - t0)
    del c
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"in_process_counter_s": sorted(runs)[3], "n": N}, f)
import os

os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(3600)
