"""What C containers hold, and what weak references do not: a heap shaped like real code.

- `g_connections`: a connection handler whose threading.local holds a "database wrapper" with a
  `queries_log` deque of query dicts (Django's DEBUG leak), plus a deque of large bytes (outside
  the pymalloc arenas: only the deque's blocks point at them);
- `g_handlers`: functools.partial objects binding data; `g_lookup`: an lru_cache'd function with
  a filled cache (bounded) and `g_memo` (unbounded); `g_ordered`: an OrderedDict with attributes;
  `g_defaults`: a defaultdict whose factory is a partial; `g_chain`/`g_cycle`: itertools objects;
- `g_loop`: an asyncio loop, not running, with pending tasks (held by the loop's scheduled timer
  handles and ready deque, and also by asyncio's weak task sets);
- `g_weakset`, `g_weakvalues`, `g_weakkeys`: weak containers holding objects that `g_strong`
  also holds, and objects held ONLY weakly (kept alive by a reference cycle, with automatic
  collection off): those are unreachable, never retained through a weak reference.

The truth, per named global: the objects only it reaches (the gc.get_referents closure, which
never passes through a weak reference: tp_traverse of a weakref visits only its callback),
stopping at what every other root reaches, and their sys.getsizeof sum.

usage: containers_heap.py TRUTH_PATH
"""

import asyncio
import collections
import functools
import gc
import itertools
import json
import sys
import threading
import types
import weakref

import _truth


def text(prefix, i, n):
    """A fresh str of n characters (never interned, never shared)."""
    return ("%s-%d-" % (prefix, i)) + "x" * n


class DatabaseWrapper:
    def __init__(self):
        self.queries_log = collections.deque(maxlen=9000)


class ConnectionHandler:
    def __init__(self):
        self._connections = threading.local()


class PartialPayload:
    def __init__(self, i):
        self.rows = [i * 1000 + k for k in range(8)]


class CachedResult:
    def __init__(self, x):
        self.value = [x * 7 + 1000]


class LocalPayload:
    pass


class ChainItem:
    pass


class CycleItem:
    pass


class ODValue:
    pass


class DDValue:
    pass


class Both:
    """Held strongly by g_strong and weakly by the weak containers."""


class WeakOnly:
    """Held only weakly (alive through a cycle nobody collects)."""

    def __init__(self):
        self.me = self


def make_connections():
    h = ConnectionHandler()
    db = DatabaseWrapper()
    sql_key, time_key = "".join(["s", "ql"]), "".join(["ti", "me"])
    for i in range(3000):
        # Some statements are long: their str lives outside the arenas.
        n = 900 if i % 10 == 0 else 60
        db.queries_log.append({sql_key: text("SELECT", i, n), time_key: "%.3f" % (i / 1e4)})
    h._connections.default = db
    h._connections.payload = [LocalPayload() for _ in range(50)]
    h._connections.blobs = collections.deque(bytes(600 + i) for i in range(400))
    return h


def process(payload, scale, key=None):
    return payload, scale, key


def make_handlers():
    return [
        functools.partial(process, PartialPayload(i), 10**6 + i, key={"n": PartialPayload(-i)})
        for i in range(300)
    ]


@functools.lru_cache(maxsize=1024)
def g_lookup(x):
    return CachedResult(x)


@functools.lru_cache(maxsize=None)
def g_memo(x):
    return CachedResult(-x)


for _i in range(500):
    g_lookup(_i + 10**6)
    g_memo(_i + 10**6)
del _i


def make_ordered():
    od = collections.OrderedDict()
    for i in range(400):
        od[text("od", i, 10)] = ODValue()
    od.note = text("note", 0, 40)  # an OrderedDict's own __dict__
    return od


def make_defaults():
    dd = collections.defaultdict(functools.partial(list, [DDValue()]))
    for i in range(300):
        dd[text("dd", i, 10)].append(DDValue())
    return dd


def make_chain():
    return itertools.chain([ChainItem() for _ in range(100)], [ChainItem() for _ in range(100)])


def make_cycle():
    c = itertools.cycle([CycleItem() for _ in range(100)])
    next(c)  # the cycle keeps what it saw in its `saved` list too
    return c


async def pending(i):
    await asyncio.sleep(3600 + i)


def make_loop():
    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(pending(i)) for i in range(40)]
    # One turn: the first 40 start and wait on their timers; the next 10 stay in _ready.
    loop.run_until_complete(asyncio.sleep(0))
    for i in range(10):
        loop.create_task(pending(100 + i))
    del tasks
    return loop


g_connections = make_connections()
g_handlers = make_handlers()
g_ordered = make_ordered()
g_defaults = make_defaults()
g_chain = make_chain()
g_cycle = make_cycle()
g_loop = make_loop()

# What imports and the loop left as cyclic garbage goes now; from here on nothing collects, so
# the WeakOnly cycles stay alive, held by nothing but weak references.
gc.collect()
gc.disable()
g_strong = [Both() for _ in range(200)]
g_weakset = weakref.WeakSet(g_strong[:100])
g_weakvalues = weakref.WeakValueDictionary((text("wv", i, 4), b) for i, b in enumerate(g_strong))
g_weakkeys = weakref.WeakKeyDictionary((b, text("wk", i, 8)) for i, b in enumerate(g_strong))


def add_weak_only():
    # In a function: a module-level loop would leave the last one in a dead slot of the
    # module's frame, which a conservative scan of that frame would take for a reference.
    for i in range(150):
        w = WeakOnly()
        g_weakset.add(w)
        g_weakvalues[text("only", i, 4)] = w
        g_weakkeys[w] = text("wkonly", i, 8)


add_weak_only()

NAMED = [
    "g_connections",
    "g_handlers",
    "g_lookup",
    "g_memo",
    "g_ordered",
    "g_defaults",
    "g_chain",
    "g_cycle",
    "g_strong",
]
# Types only C containers hold: none may be filed as unreachable.
HELD_TYPES = [
    "__main__.PartialPayload",
    "__main__.CachedResult",
    "__main__.LocalPayload",
    "__main__.ChainItem",
    "__main__.CycleItem",
    "__main__.ODValue",
    "__main__.DDValue",
    "__main__.DatabaseWrapper",
    "__main__.Both",
]


def referents(o):
    """What o holds: gc.get_referents, plus what tp_traverse leaves out because it cannot be
    part of a cycle but is held all the same (a dict's str keys, the type of an object that
    is not GC-tracked)."""
    refs = gc.get_referents(o)
    refs.append(type(o))
    if isinstance(o, dict):
        refs.extend(dict.keys(o))
    elif type(o) is types.CodeType:
        refs.extend(_truth._code_referents(o))
    elif isinstance(o, threading.local) and sys.version_info < (3, 13):
        # Before 3.13 a thread-local's first field is its key, a str its traverse skips.
        refs.append(local_key(o))
    return refs


def local_key(loc):
    import ctypes

    p = ctypes.c_void_p.from_address(id(loc) + object.__basicsize__).value
    return ctypes.cast(p, ctypes.py_object).value


def hidden_names_bytes(code):
    """3.11+: the size of a code object's hidden local-names tuple (co_localsplusnames), which
    no attribute returns; it may be shared with equal code, so this only widens the bound."""
    if sys.version_info < (3, 11):
        return 0
    n = 0
    while n < 1 << 16:
        try:
            code._varname_from_oparg(n)
        except IndexError:
            break
        n += 1
    return sys.getsizeof(()) + 8 * n if n else 0


def closure(roots, stop):
    """ids of everything reached from roots, not entering `stop` ids."""
    seen = set()
    stack = list(roots)
    order = []
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen or i in stop:
            continue
        seen.add(i)
        order.append(o)
        stack.extend(referents(o))
    return seen, order


def truth():
    main = sys.modules["__main__"]
    g = vars(main)
    skip = set(NAMED) | {"g_weakset", "g_weakvalues", "g_weakkeys", "g_loop"}
    # Everything else the tool's roots reach: other modules, other globals, the names.
    others = [m for k, m in list(sys.modules.items()) if k != "__main__"]
    others += [v for k, v in g.items() if k not in skip] + list(g)
    stop = {id(g), id(main)}
    shared, _ = closure(others, stop)
    stop |= shared
    per, objs = {}, {}
    for name in NAMED:
        ids, order = closure([g[name]], stop)
        per[name] = ids
        objs[name] = order
    # Objects two named globals reach are charged to whichever the tool meets first: neither.
    counts = collections.Counter(i for ids in per.values() for i in ids)
    # The most the tool may charge to a global: also what it shares with other roots, short of
    # modules and what they export by name (a breadth-first walk from the modules meets those
    # first). The tool takes some of these first (a function object's code shared by two
    # lru_cache wrappers, a type only module state holds, interned names): a range, exact
    # where it is empty.
    exported = {id(m) for m in sys.modules.values()}
    for m in list(sys.modules.values()):
        d = getattr(m, "__dict__", None)
        if isinstance(d, dict):
            exported.add(id(d))
            exported.update(id(v) for v in d.values())
    out = {}
    for name in NAMED:
        mine = [o for o in objs[name] if counts[id(o)] == 1]
        lower = sum(sys.getsizeof(o) for o in mine)
        _, wide = closure([g[name]], exported - {id(g[name])})
        others = {i for n in NAMED if n != name for i in per[n] if counts[i] == 1}
        upper = sum(
            sys.getsizeof(o) + (hidden_names_bytes(o) if type(o) is types.CodeType else 0)
            for o in wide
            if id(o) not in others
        )
        out[name] = {"objects": len(mine), "bytes": lower, "bytes_max": max(lower, upper)}
        del wide, others
    weak_types = sorted(
        {
            type.__repr__(type(o))[8:-2]
            for o in gc.get_objects()
            if isinstance(o, (weakref.ref, weakref.ProxyType, weakref.CallableProxyType))
        }
    )
    # What weak references point at (a path must never step from a weakref into these).
    weak_referent_types = set()
    for o in gc.get_objects():
        if isinstance(o, weakref.ref):
            r = o()
            if r is not None:
                weak_referent_types.add(type.__repr__(type(r))[8:-2])
            del r
    held_counts = collections.Counter(type.__repr__(type(o))[8:-2] for o in gc.get_objects())
    held_counts = {t: held_counts[t] for t in HELD_TYPES}
    held_only_weakly = sum(1 for o in gc.get_objects() if type(o) is WeakOnly)
    tasks = sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Task))
    return {
        "globals": out,
        "held_types": HELD_TYPES,
        "held_counts": held_counts,
        "weak_types": weak_types,
        "weak_referent_types": sorted(weak_referent_types),
        "weak_only": {"__main__.WeakOnly": held_only_weakly},
        "tasks": tasks,
        "version": "%d.%d.%d" % sys.version_info[:3],
    }


def main():
    _truth.warm_up(sys.argv[1])
    doc = json.dumps(truth())
    _truth.write_truth(sys.argv[1], doc)
    del doc
    _truth.idle()


main()
