"""Target with a known heap of GC-tracked objects, for pymemspy's tests.

Usage: known_heap.py TRUTH_PATH [--freeze] [--deadlock] [--scale N]

Builds the heap below (counts multiplied by --scale), keeps it reachable from
module globals, writes the ground-truth census to TRUTH_PATH (see _truth.py)
and then idles forever.  Besides the census, the truth JSON records
"built" (what this script created itself, per type name), "frozen",
"deadlock" and "scale".

--freeze    after the census, gc.freeze() moves every object into the permanent
            generation (the same objects, so the same census applies).
--deadlock  two threads deadlock on two locks before the census; after the
            truth is written the main thread blocks forever on one of them.

With PYMEMSPY_SELFCHECK=1 in the environment, the script checks the
fixed-point property of the census instead of idling and exits 0 (holds) or
1 (does not).
"""

import collections
import enum
import gc
import os
import sys
import threading
import time

import _truth

# Base counts at --scale 1.
N_LEAF = 20000
N_INNER = 5000
N_ODICT = 3000
N_LIST = 4000
N_DICT = 2000
N_SET = 1000
N_TUPLE = 3000
N_DICTSUB = 1000
N_SLOTTED = 1000
N_CLOSURE = 500


class Leaf:
    def __init__(self, i):
        self.a = i
        self.b = "leaf"
        self.c = None


class Outer:
    class Inner:
        def __init__(self, i):
            self.value = i
            self.items = [i]


class DictSub(dict):
    pass


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, i):
        self.x = i
        self.y = i * 2


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


# Containers only become (and stay) GC-tracked when they hold a tracked object;
# every dict built below holds this list so that it is counted.
ANCHOR = ["anchor"]

HEAP = {}


def make_closure(i):
    captured = [i]

    def closure():
        return captured

    return closure


def build_lists(n):
    lists = []
    for i in range(n):
        length = i % 80  # up to 79 items: the long ones are over 512 bytes
        if i % 2:
            lists.append(list(range(length)))  # exact allocation
        else:
            grown = []
            for j in range(length):  # over-allocated by append
                grown.append(j)
            lists.append(grown)
    return lists


def build_dicts(n):
    dicts = []
    for i in range(n):
        shape = i % 4
        if shape == 0:
            d = {"ref": ANCHOR, "k": i}
        elif shape == 1:
            d = {"key%d" % k: k for k in range(100)}  # well over 512 bytes
            d["ref"] = ANCHOR
        elif shape == 2:
            d = {k: k * k for k in range(i % 40)}  # int-keyed
            d[-1] = ANCHOR
        else:
            d = {"s%d" % k: "v" for k in range(i % 20)}  # str-keyed
            d["ref"] = ANCHOR
        dicts.append(d)
    return dicts


def build_sets(n):
    sets = []
    for i in range(n):
        if i % 10 == 0:
            sets.append(set(range(500 + i)))  # large
        else:
            sets.append({i, i + 1, "x"})  # small
    return sets


def build_cycles():
    self_loop = []
    self_loop.append(self_loop)
    a, b = Leaf(-1), Leaf(-2)
    a.c, b.c = b, a
    return [self_loop, (a, b)]


def build(scale):
    """Build the heap into HEAP; return the counts built per type name."""
    HEAP["leaves"] = [Leaf(i) for i in range(N_LEAF * scale)]
    HEAP["inners"] = [Outer.Inner(i) for i in range(N_INNER * scale)]
    HEAP["odicts"] = [
        collections.OrderedDict([("a", i), ("b", ANCHOR), ("c", None)])
        for i in range(N_ODICT * scale)
    ]
    HEAP["lists"] = build_lists(N_LIST * scale)
    HEAP["dicts"] = build_dicts(N_DICT * scale)
    HEAP["sets"] = build_sets(N_SET * scale)
    HEAP["tuples"] = [(i, [i]) for i in range(N_TUPLE * scale)]
    HEAP["dictsubs"] = [DictSub(a=i) for i in range(N_DICTSUB * scale)]
    HEAP["slotted"] = [Slotted(i) for i in range(N_SLOTTED * scale)]
    HEAP["closures"] = [make_closure(i) for i in range(N_CLOSURE * scale)]
    HEAP["cycles"] = build_cycles()
    HEAP["enum"] = Color
    return {
        # Leaf: the instances plus the two in build_cycles.
        "__main__.Leaf": N_LEAF * scale + 2,
        "__main__.Outer.Inner": N_INNER * scale,
        "collections.OrderedDict": N_ODICT * scale,
        # lists: the plain ones, one per tuple, one per Inner, one per closure.
        "list": (N_LIST + N_TUPLE + N_INNER + N_CLOSURE) * scale,
        "dict": N_DICT * scale,
        "set": N_SET * scale,
        "tuple": N_TUPLE * scale,
        "__main__.DictSub": N_DICTSUB * scale,
        "__main__.Slotted": N_SLOTTED * scale,
        "function": N_CLOSURE * scale,
        "cell": N_CLOSURE * scale,
        "__main__.Color": len(Color),
    }


def deadlock_pair():
    """Start two threads that deadlock on two locks; return once both block.

    Each thread takes its own lock, waits until the other holds its lock too,
    then asks for the other's lock.  Returns the two locks.
    """
    lock_a, lock_b = threading.Lock(), threading.Lock()
    holding = [threading.Event(), threading.Event()]
    asking = [threading.Event(), threading.Event()]
    tids = []

    def worker(me, mine, theirs):
        tids.append(threading.get_native_id())
        mine.acquire()
        holding[me].set()
        holding[1 - me].wait()
        asking[me].set()
        theirs.acquire()  # never returns

    for me, (mine, theirs) in enumerate(((lock_a, lock_b), (lock_b, lock_a))):
        threading.Thread(target=worker, args=(me, mine, theirs), daemon=True).start()
    for ev in asking:
        ev.wait()
    wait_until_sleeping(tids)
    return lock_a, lock_b


def wait_until_sleeping(tids, timeout=30.0):
    """Wait until every thread in tids is asleep in the kernel for a while.

    After "asking" is set a thread has one more call to make (acquire); once it
    has stayed in state S across several polls it is blocked on the lock.
    """
    deadline = time.monotonic() + timeout
    stable = 0
    while stable < 5:
        if time.monotonic() > deadline:
            raise SystemExit("deadlock threads did not block in time")
        time.sleep(0.05)
        stable = stable + 1 if all(thread_state(t) == "S" for t in tids) else 0


def thread_state(tid):
    with open("/proc/self/task/%d/stat" % tid) as f:
        stat = f.read()
    return stat[stat.rindex(")") + 2]


def parse_args(argv):
    """Tiny argv parser (argparse would be fine too; this keeps imports few)."""
    if len(argv) < 1:
        raise SystemExit(__doc__)
    opts = {"path": argv[0], "freeze": False, "deadlock": False, "scale": 1}
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--freeze":
            opts["freeze"] = True
        elif arg == "--deadlock":
            opts["deadlock"] = True
        elif arg == "--scale" and rest:
            opts["scale"] = int(rest.pop(0))
        else:
            raise SystemExit("unknown argument %r\n%s" % (arg, __doc__))
    return opts


def main():
    opts = parse_args(sys.argv[1:])
    selfcheck = os.environ.get("PYMEMSPY_SELFCHECK") == "1"
    built = build(opts["scale"])
    locks = deadlock_pair() if opts["deadlock"] else None
    fields = {
        "built": built,
        "frozen": opts["freeze"],
        "deadlock": opts["deadlock"],
        "scale": opts["scale"],
    }
    text = _truth.publish(
        opts["path"], fields, before_write=gc.freeze if opts["freeze"] else None
    )
    if selfcheck:
        sys.exit(0 if _truth.self_check(text, opts["path"], frozen=opts["freeze"]) else 1)
    if locks is not None:
        locks[0].acquire()  # the main thread joins the deadlock
    _truth.idle()


if __name__ == "__main__":
    main()
