"""A heap of objects the GC lists do not show: floats, str and bytes (small and over 512 bytes),
big ints, untracked tuples and dicts, Decimal and datetime values, and attribute values reachable
only through instances. Publishes two truths: the GC census and the full referent closure.

usage: full_heap.py TRUTH_PATH [--scale N]
"""

import datetime
import decimal
import gc
import sys

import _truth

SCALE = int(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 1


class Pair(tuple):
    """A tuple subclass whose instances carry a __dict__: sized unlike a plain tuple."""


def counter(i):
    yield i


class Holder:
    def __init__(self, big):
        self.big = big
        self.n = 3.5


def build(scale):
    n = lambda k: k * scale  # noqa: E731
    floats = [i * 0.5 for i in range(n(30000))]
    small_strs = ["s%d" % i for i in range(n(20000))]
    large_strs = [("L%d-" % i) * 400 for i in range(n(500))]
    wide_strs = ["ü%d€" % i for i in range(n(2000))]
    small_bytes = [b"b%d" % i for i in range(n(5000))]
    large_bytes = [bytes(4096) + b"%d" % i for i in range(n(300))]
    big_ints = [i * 10**12 + 7 for i in range(n(10000))]
    int_tuples = [(i * 10**9, i * 10**9 + 1) for i in range(n(8000))]
    big_tuples = [tuple(range(i * 1000, i * 1000 + 100)) for i in range(n(100))]
    atomic_dicts = [{"k": i * 10**9} for i in range(n(4000))]
    decimals = [decimal.Decimal(i) / 7 for i in range(n(3000))]
    stamps = [datetime.datetime(2020, 1, 1) + datetime.timedelta(seconds=i) for i in range(n(3000))]
    holders = [Holder("H%d" % i * 300) for i in range(n(1000))]
    # Objects whose size no getsizeof rule reproduces from their block: a generator embeds its
    # frame, a tuple subclass adds a dict. The census must still count every one.
    generators = [counter(i) for i in range(n(300))]
    pairs = [Pair((i, i + 1)) for i in range(n(300))]
    # Decoys: a list's item array [obj, obj, None, list] has the shape of a GC head, a
    # refcount (None is a small address on non-PIE builds) and a type pointer. Its size fits no
    # rule, but it is on no GC list: it must not be counted as a list.
    decoys = [[holders[i % len(holders)], holders[i % len(holders) - 1], None, list]
              for i in range(n(500))]
    return {
        "floats": floats,
        "small_strs": small_strs,
        "large_strs": large_strs,
        "wide_strs": wide_strs,
        "small_bytes": small_bytes,
        "large_bytes": large_bytes,
        "big_ints": big_ints,
        "int_tuples": int_tuples,
        "big_tuples": big_tuples,
        "atomic_dicts": atomic_dicts,
        "decimals": decimals,
        "stamps": stamps,
        "holders": holders,
        "generators": generators,
        "pairs": pairs,
        "decoys": decoys,
    }


HEAP = build(SCALE)
BUILT = {
    "float": 30000 * SCALE,
    "decimal.Decimal": 3000 * SCALE,
    "datetime.datetime": 3000 * SCALE,
    "__main__.Holder": 1000 * SCALE,
}


def main():
    path = sys.argv[1]
    gc.collect()  # untracks atomic tuples and dicts, as a long-running process would have
    _truth.warm_up(path)
    text = _truth.gc_census()
    full = _truth.full_census()
    import json

    doc = json.loads(text)
    doc["full"] = json.loads(full)
    doc["built"] = BUILT
    doc["scale"] = SCALE
    text = json.dumps(doc)
    doc.clear()
    del doc, full
    _truth.write_truth(path, text)
    _truth.idle()


main()
