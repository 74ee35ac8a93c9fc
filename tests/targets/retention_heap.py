"""Who holds the memory: ~24 MB under a module global `app_cache`, ~2 MB elsewhere, sessions in
`registry["sessions"]`, a reference cycle kept alive by a closure and one by a class attribute.
The truth: bytes (sys.getsizeof) of everything reachable from app_cache, each object once.

usage: retention_heap.py TRUTH_PATH
"""

import gc
import sys

import _truth


class Session:
    def __init__(self, i):
        self.user = "user%d" % i
        self.data = [i, i + 1]


class Node:
    """Kept alive in cycles: node.me = node."""

    def __init__(self):
        self.me = self


class Cache:
    keep = []  # a class attribute holding a cycle


def make_closure():
    node = Node()

    def handler():
        return node

    return handler


app_cache = {}
for i in range(9000):
    app_cache["k%d" % i] = [bytes(1000 + i % 7), "v%d" % i * 300, (i * 1.5,)]
elsewhere = [bytes(1000) for _ in range(2000)]
registry = {"sessions": [Session(i) for i in range(20000)]}
kept = make_closure()
Cache.keep.append(Node())


def reachable_bytes(root):
    seen = set()
    stack = [root]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def main():
    gc.collect()
    _truth.warm_up(sys.argv[1])
    import json

    text = json.dumps({"app_cache_bytes": reachable_bytes(app_cache), "sessions": 20000})
    _truth.write_truth(sys.argv[1], text)
    _truth.idle()


main()
