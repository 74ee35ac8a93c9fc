"""A heap shaped like a real program's, built from the standard library: an asyncio loop with
pending tasks and suspended async generators, a generator pipeline suspended at several depths
(and unstarted, exhausted, closed generators), coroutines, frames and tracebacks, closures,
bound methods, partials, itertools objects, collections, dataclasses, json-decoded data,
threading objects (one thread blocked), regular expressions, decimal, datetime, io buffers,
array, struct and weak references. A few classes define ``__sizeof__`` in Python, as pandas does.

usage: stdlib_heap.py TRUTH_PATH

Publishes the GC census (gc.get_objects(), per type count and sys.getsizeof sum), the full
referent closure (``full``), and ``python_sizeof``: the types in the census whose
``sys.getsizeof`` calls a ``__sizeof__`` written in Python (what no outside reader can compute).
Run with PYMEMSPY_SELFCHECK=1 to check that the census is a fixed point.
"""

import array
import asyncio
import collections
import dataclasses
import datetime
import decimal
import functools
import gc
import io
import itertools
import json
import os
import re
import struct
import sys
import threading
import types
import weakref

import _truth

# ---------------------------------------------------------------- generators and coroutines


def source(n):
    for i in range(n):
        yield i


def stage(it, factor):
    # More locals than `source`: a larger embedded frame.
    total = 0
    seen = []
    for x in it:
        total += x
        seen.append(x)
        yield x * factor


def delegate(n):
    yield from source(n)


def wide(n):
    # Many locals and a deep value stack: the frame's slot count differs from the others'.
    a, b, c, d, e, f, g, h = range(8)
    i, j, k, m, p, q, r, s = range(8, 16)
    for x in range(n):
        yield (a, b, c, d, e, f, g, h, i, j, k, m, p, q, r, s, [x, [x, [x, (x, x)]]])


def boom():
    yield 1
    raise ValueError("boom")


def generators():
    out = {}
    pipeline = stage(stage(stage(source(1000), 2), 3), 5)
    for _ in range(3):
        next(pipeline)
    out["pipeline"] = pipeline  # four generators, each suspended inside the next
    out["unstarted"] = [source(10), stage(source(5), 2), wide(3)]
    out["delegating"] = [delegate(50) for _ in range(5)]
    for g in out["delegating"]:
        next(g)
    exhausted = [source(2), wide(1), delegate(1)]
    for g in exhausted:
        list(g)
    out["exhausted"] = exhausted
    closed = source(5)
    next(closed)
    closed.close()
    out["closed"] = closed
    raised = boom()
    next(raised)
    try:
        next(raised)
    except ValueError:
        pass
    out["raised"] = raised
    started_wide = [wide(10) for _ in range(4)]
    for g in started_wide:
        next(g)
    out["wide"] = started_wide
    genexp = (x * x for x in range(100))
    next(genexp)
    out["genexp"] = genexp
    # A frame object of a suspended generator (3.11+: it points into the generator).
    out["gi_frames"] = [g.gi_frame for g in out["delegating"][:2]]
    return out


async def agen(n):
    for i in range(n):
        yield i
        await asyncio.sleep(0)


async def waiter(fut):
    return await fut


async def consumer(ag, fut):
    async for _ in ag:
        await fut


async def nested(fut, depth):
    if depth == 0:
        return await fut
    return await nested(fut, depth - 1)


async def never_started():
    await asyncio.sleep(0)


def asyncio_heap():
    loop = asyncio.new_event_loop()
    futs = [loop.create_future() for _ in range(12)]
    tasks = [loop.create_task(waiter(f)) for f in futs[:4]]
    ags = [agen(100) for _ in range(3)]
    tasks += [loop.create_task(consumer(ag, f)) for ag, f in zip(ags, futs[4:7])]
    tasks += [loop.create_task(nested(f, 3)) for f in futs[7:10]]
    # Let every task run up to its first suspension; the loop then stays stopped.
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    # An async generator suspended at a yield, one unstarted, one exhausted.
    suspended = agen(5)
    step = suspended.asend(None)
    try:
        step.send(None)
    except StopIteration:
        pass
    exhausted = agen(0)
    try:
        exhausted.asend(None).send(None)
    except StopAsyncIteration:
        pass
    coros = [never_started() for _ in range(3)]
    wrapper = coros[0].__await__()
    return {
        "loop": loop,
        "futs": futs,
        "tasks": tasks,
        "agens": [suspended, agen(3), exhausted],
        "coros": coros,
        "wrapper": wrapper,
        "pending_step": suspended.asend(None),
    }


# ---------------------------------------------------------------- classes and containers


@dataclasses.dataclass
class Point:
    x: float
    y: float
    tags: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    version: int


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


class Registry:
    """An object holding a deque of dicts, as a queue of pending jobs."""

    def __init__(self):
        self.jobs = collections.deque({"id": i, "args": [i, str(i)]} for i in range(300))
        self.by_name = collections.OrderedDict((str(i), i) for i in range(50))
        self.lock = threading.Lock()

    def handle(self, job):
        return job["id"]


class Measured:
    """Defines __sizeof__ in Python (pandas objects do): getsizeof calls it."""

    def __init__(self, n):
        self.data = list(range(n))

    def __sizeof__(self):
        return 1000 + 8 * len(self.data)


class MeasuredChild(Measured):
    """Inherits the Python-level __sizeof__."""


class MeasuredDict(dict):
    def __sizeof__(self):
        return dict.__sizeof__(self) + 64


class NotMeasured(dict):
    """A dict subclass whose getsizeof is dict's own (C) rule."""


Pair = collections.namedtuple("Pair", "left right")


def containers():
    doc = json.dumps(
        {
            "users": [
                {"id": i, "name": "user%d" % i, "score": i * 1.5, "tags": ["a", "b"], "ok": True}
                for i in range(200)
            ],
            "meta": {"count": 200, "next": None},
        }
    )
    counter = collections.Counter("abracadabra" * 20)
    dd = collections.defaultdict(list)
    for i in range(100):
        dd[i % 7].append(i)
    return {
        "decoded": json.loads(doc),
        "points": [Point(i, i * 2.0, ["t"]) for i in range(100)],
        "keys": {Key("k%d" % i, i): i for i in range(50)},
        "slotted": [Slotted(i, [i]) for i in range(50)],
        "registry": Registry(),
        "counter": counter,
        "defaultdict": dd,
        "pairs": [Pair(i, [i]) for i in range(50)],
        "chainmap": collections.ChainMap({"a": 1}, {"b": 2}),
        "measured": [Measured(i) for i in range(10)] + [MeasuredChild(3)],
        "measured_dicts": [MeasuredDict(a=i) for i in range(5)],
        "not_measured": [NotMeasured(a=[i]) for i in range(5)],
        "sets": [set(range(i)) for i in range(20)] + [frozenset(range(30))],
        "bytearrays": [bytearray(b"x" * i) for i in range(10)],
    }


# ---------------------------------------------------------------- callables, frames, cells


def make_counter():
    count = 0

    def inc():
        nonlocal count
        count += 1
        return count

    return inc


def capture_frame(depth):
    if depth == 0:
        return sys._getframe()
    return capture_frame(depth - 1)


def raise_deep(depth):
    if depth == 0:
        raise KeyError("deep")
    raise_deep(depth - 1)


@functools.lru_cache(maxsize=64)
def cached(n):
    return [n] * 3


def callables(registry):
    try:
        raise_deep(4)
    except KeyError as e:
        err = e  # holds the traceback and its frames
    for i in range(20):
        cached(i)
    return {
        "closures": [make_counter() for _ in range(20)],
        "frames": [capture_frame(d) for d in range(3)],
        "error": err,
        "bound": [registry.handle for _ in range(10)],
        "partials": [functools.partial(int, base=b) for b in (2, 8, 16)],
        "cached": cached,
        "lambdas": [lambda x, i=i: x + i for i in range(5)],
        "staticmethods": [staticmethod(len), classmethod(dict.fromkeys)],
        "properties": [property(lambda self: 1)],
    }


# ---------------------------------------------------------------- itertools


def iterators():
    data = list(range(40))
    its = {
        "count": itertools.count(5, 2),
        "cycle": itertools.cycle("abc"),
        "repeat": itertools.repeat(data, 3),
        "chain": itertools.chain(data, "xyz"),
        "islice": itertools.islice(data, 2, 30, 3),
        "accumulate": itertools.accumulate(data),
        "product": itertools.product("ab", range(3), repeat=2),
        "permutations": itertools.permutations(range(5), 3),
        "combinations": itertools.combinations(range(6), 2),
        "cwr": itertools.combinations_with_replacement("abcd", 3),
        "zip_longest": itertools.zip_longest(data, "ab"),
        "starmap": itertools.starmap(pow, [(2, 3), (3, 2)]),
        "takewhile": itertools.takewhile(lambda x: x < 30, data),
        "dropwhile": itertools.dropwhile(lambda x: x < 3, data),
        "compress": itertools.compress(data, [1, 0] * 20),
        "filterfalse": itertools.filterfalse(None, data),
        "groupby": itertools.groupby(sorted(data, key=lambda x: x % 3), key=lambda x: x % 3),
        "map": map(str, data),
        "zip": zip(data, data),
        "enumerate": enumerate(data),
        "reversed": reversed(data),
        "list_iter": iter(data),
        "dict_items": iter({1: 2}.items()),
    }
    tee_a, tee_b = itertools.tee(iter(data), 2)
    its["tee"] = [tee_a, tee_b]
    if hasattr(itertools, "pairwise"):
        its["pairwise"] = itertools.pairwise(data)
    if hasattr(itertools, "batched"):
        its["batched"] = itertools.batched(data, 4)
    # Advance every iterator once so each is mid-way (cycle saves, tee buffers, groupby groups).
    for it in list(its.values()):
        for x in it if isinstance(it, list) else [it]:
            next(x)
    key, grouper = next(its["groupby"])
    its["grouper"] = grouper
    return its


# ---------------------------------------------------------------- threading


def threading_heap():
    release = threading.Event()
    blocked = threading.Thread(target=release.wait, name="blocked-worker", daemon=True)
    blocked.start()
    done = threading.Thread(target=lambda: None, name="finished-worker")
    done.start()
    done.join()
    local = threading.local()
    local.value = [1, 2, 3]
    return {
        "release": release,
        "blocked": blocked,
        "done": done,
        "lock": threading.Lock(),
        "rlock": threading.RLock(),
        "condition": threading.Condition(),
        "semaphore": threading.Semaphore(3),
        "bounded": threading.BoundedSemaphore(2),
        "barrier": threading.Barrier(2),
        "local": local,
        "timer": threading.Timer(3600, print),
    }


# ---------------------------------------------------------------- values and buffers


def values():
    pattern = re.compile(r"(?P<word>[a-z]+)(\d+)")
    text = "abc12 def345 ghi6 " * 5
    finder = pattern.finditer(text)
    next(finder)
    ctx = decimal.Context(prec=50)
    big = ctx.divide(decimal.Decimal(1), decimal.Decimal(7))
    stringio = io.StringIO()
    stringio.write("line\n" * 200)
    bytesio = io.BytesIO()
    bytesio.write(b"x" * 5000)
    shared = b"shared bytes " * 100
    bytesio_shared = io.BytesIO(shared)
    tz = datetime.timezone(datetime.timedelta(hours=2), "X")
    packer = struct.Struct("<iqd10s")
    return {
        "patterns": [pattern, re.compile("x*y+", re.I), re.compile(r"\bfoo\b")],
        "matches": [pattern.match(text), pattern.search(text, 5)],
        "finder": finder,
        "scanner": pattern.scanner(text),
        "decimals": [decimal.Decimal(i) / 3 for i in range(20)] + [big, decimal.Decimal(10) ** 80],
        "context": ctx,
        "datetimes": [datetime.datetime(2024, 1, 1, tzinfo=tz) + datetime.timedelta(hours=i)
                      for i in range(20)],
        "dates": [datetime.date(2024, 1, i + 1) for i in range(10)],
        "times": [datetime.time(12, i) for i in range(10)],
        "tz": tz,
        "stringio": stringio,
        "bytesio": [bytesio, bytesio_shared, io.BytesIO()],
        "shared": shared,
        "arrays": [array.array("d", range(100)), array.array("b", b"abc"), array.array("q"),
                   array.array("I", range(1000))],
        "packer": packer,
        "packed": [packer.pack(i, i, i / 2, b"x") for i in range(5)],
        "unpacked": [packer.unpack(packer.pack(i, i, 0.5, b"y")) for i in range(5)],
    }


class Target:
    def method(self):
        return self


def weak_heap(keep):
    objs = [Target() for _ in range(20)]
    keep.append(objs)
    vd = weakref.WeakValueDictionary({i: o for i, o in enumerate(objs)})
    kd = weakref.WeakKeyDictionary({o: i for i, o in enumerate(objs[:10])})
    ws = weakref.WeakSet(objs[:5])
    return {
        "refs": [weakref.ref(o) for o in objs],
        "proxies": [weakref.proxy(o) for o in objs[:5]],
        "value_dict": vd,
        "key_dict": kd,
        "set": ws,
        "methods": [weakref.WeakMethod(o.method) for o in objs[:3]],
        "finalizers": [weakref.finalize(o, print) for o in objs[:3]],
    }


# ---------------------------------------------------------------- the truth


def python_sizeof_types():
    """Names of the types in the heap whose sys.getsizeof calls a __sizeof__ written in Python:
    the first class of the MRO that defines __sizeof__ defines it as something other than a
    builtin method descriptor."""
    method_descriptor = type(object.__sizeof__)
    names = set()
    seen = set()
    for o in gc.get_objects():
        t = type(o)
        if id(t) in seen:
            continue
        seen.add(id(t))
        for k in t.__mro__:
            v = k.__dict__.get("__sizeof__")
            if v is not None:
                if type(v) is not method_descriptor:
                    names.add(type.__repr__(t)[8:-2])
                break
    o = t = k = v = None
    return sorted(names)


HEAP = {}


def main():
    path = sys.argv[1]
    selfcheck = os.environ.get("PYMEMSPY_SELFCHECK") == "1"
    keep = []
    HEAP["generators"] = generators()
    HEAP["asyncio"] = asyncio_heap()
    HEAP["containers"] = containers()
    HEAP["callables"] = callables(HEAP["containers"]["registry"])
    HEAP["iterators"] = iterators()
    HEAP["threading"] = threading_heap()
    HEAP["values"] = values()
    HEAP["weak"] = weak_heap(keep)
    HEAP["keep"] = keep
    # The first full census and JSON round trip leave objects behind on some versions (3.8/3.9:
    # a tuple and a weakref): done once before the census that is published.
    json.loads(_truth.full_census())
    gc.collect()  # untracks atomic tuples and dicts, as a long-running process would have
    python_sizeof = python_sizeof_types()
    _truth.warm_up(path)
    if selfcheck:
        text = _truth.gc_census()
        _truth.write_truth(path, text)
        ok = _truth.self_check(text, path)
        sys.stderr.flush()
        # No interpreter shutdown: it would report the pending tasks and unawaited coroutines.
        os._exit(0 if ok else 1)
    # 3.12 keeps a few hundred immortal tuples in the permanent generation (each collection
    # moves them back there), which gc.get_objects() does not list: thawed after the last
    # collection, they are on the lists both the truth and the tool read. No collection may run
    # from here on (idling allocates nothing).
    gc.disable()
    gc.collect()
    gc.unfreeze()
    text = _truth.gc_census(collect=False)
    full = _truth.full_census()
    doc = json.loads(text)
    doc["full"] = json.loads(full)
    doc["python_sizeof"] = python_sizeof
    text = json.dumps(doc)
    doc.clear()
    del doc, full
    _truth.write_truth(path, text)
    gc.enable()
    _truth.idle()


main()
