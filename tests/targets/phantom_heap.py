"""Arrays of pointers shaped like objects, alive and freed, beside a known population.

A pymalloc block holding pointers can look like an object header: a list's item array
[obj, type(obj), ...] has a word that reads as a small refcount (a static object's address on a
non-PIE build, a type's hash, a tuple's length) followed by a type pointer. Real programs hold
such arrays everywhere (gc.get_referents results, isinstance tuples, dispatch tables keyed by
type). The complete census must count none of them.

Phases, each published as a truth with its number (SIGUSR1 moves on):
  0 "start":   the known population only;
  1 "base":    the same, republished from the signal handler as the later phases are (whatever
               that path creates lazily, a codec's name, exists from here on);
  2 "planted": plus decoy lists, tuples and dicts whose arrays repeat such patterns for every
               type below (the decoys are lists, tuples and dicts themselves, counted here);
  3 "freed":   the decoys deleted, and lists grown by append into the freed blocks (their
               over-allocated tails keep the stale patterns).
The decoys hold only objects that existed before them: apart from the decoys themselves no
int, str, float, bytes, tuple or dict comes or goes between phases.

usage: phantom_heap.py TRUTH_PATH
"""

import gc
import os
import signal
import sys

import _truth


class Plain:
    pass


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a):
        self.a = a
        self.b = None


# Subclasses without a __dict__: the base's size rule, no GC (int, float, str, bytes) or tracked
# for good (tuple and dict subclasses are never untracked), and a count known exactly.
class MyInt(int):
    __slots__ = ()


class MyFloat(float):
    __slots__ = ()


class MyStr(str):
    __slots__ = ()


class MyBytes(bytes):
    __slots__ = ()


class MyTuple(tuple):
    __slots__ = ()


class MyDict(dict):
    __slots__ = ()


N_PLAIN = 20000
N_EACH = 2000
# The known population, built before anything is counted.
PLAINS = [Plain() for _ in range(N_PLAIN)]
for _i, _p in enumerate(PLAINS[:5000]):
    _p.x = _i  # some with attributes (a dict or inline values), some without
SLOTTED = [Slotted(i) for i in range(N_EACH)]
MYINTS = [MyInt(i * 7919) for i in range(N_EACH)]
MYFLOATS = [MyFloat(i + 0.5) for i in range(N_EACH)]
MYSTRS = [MyStr("m%d" % i) for i in range(N_EACH)]
MYBYTES = [MyBytes(b"m%d" % i) for i in range(N_EACH)]
MYTUPLES = [MyTuple((i, i + 1)) for i in range(N_EACH)]
MYDICTS = [MyDict(k=i) for i in range(N_EACH)]
# Samples of the builtin types the decoys name (existing objects: the decoys create none).
SAMPLE_INT = 10**12 + 3
SAMPLE_FLOAT = 2.5e10
SAMPLE_STR = "a sample str"
SAMPLE_BYTES = b"sample bytes"
SAMPLE_TUPLE = (SAMPLE_INT, SAMPLE_STR)
SAMPLE_DICT = {"k": SAMPLE_INT}
SAMPLE_LIST = [SAMPLE_INT]
KINDS = [
    (PLAINS[0], Plain),
    (PLAINS[-1], Plain),
    (SLOTTED[0], Slotted),
    (MYINTS[1], MyInt),
    (MYFLOATS[1], MyFloat),
    (MYSTRS[1], MyStr),
    (MYBYTES[1], MyBytes),
    (MYTUPLES[1], MyTuple),
    (MYDICTS[1], MyDict),
    (SAMPLE_INT, int),
    (SAMPLE_FLOAT, float),
    (SAMPLE_STR, str),
    (SAMPLE_BYTES, bytes),
    (SAMPLE_TUPLE, tuple),
    (SAMPLE_DICT, dict),
    (SAMPLE_LIST, list),
    (Plain, type),
]
# Words that read as a small refcount on some build: static objects (non-PIE), small ints.
SMALL = [None, True, False, 0, 1, ()]
COPIES = 2

DECOYS = []
STALE = []


def shapes(o, t):
    """Item arrays of every pymalloc size class with `t` at each odd word (where a header
    keeps its type) after words that pass for a refcount or a GC head."""
    for k in range(1, 33):
        yield [o, t] * k
        yield [t] * (2 * k)
        yield [o, o, None, t] * ((k + 1) // 2)
        for s in SMALL:
            yield [s, t] * k


def plant():
    """The decoys: lists, tuples (items inline, after the tuple's header) and dicts keyed by
    type (entries hash, key, value). Returns how many of each it made."""
    made = {"list": 0, "tuple": 0, "dict": 0}
    for o, t in KINDS:
        for _ in range(COPIES):
            for items in shapes(o, t):
                DECOYS.append(items)
                DECOYS.append(tuple(items))
                DECOYS.append(tuple([o] + items))
                made["list"] += 1
                made["tuple"] += 2
        DECOYS.append({t: o, type(t): t, type(o): o})
        made["dict"] += 1
    # What users reported: lists of gc.get_referents results, kept.
    for p in PLAINS[:3000]:
        DECOYS.append(gc.get_referents(p))
        made["list"] += 1
    for s in SLOTTED[:500]:
        DECOYS.append(gc.get_referents(s))
        made["list"] += 1
    # DECOYS itself.
    made["list"] += 0
    return made


def free_and_reuse():
    """Delete every decoy; lists grown by append land in the freed blocks of each size class
    and leave the stale words past their last item in place."""
    del DECOYS[:]
    gc.collect()
    for k in range(1, 65):
        for _ in range(40):
            lst = []
            for _ in range(k):
                lst.append(None)
            STALE.append(lst)
    return {"list": 64 * 40}


PHASES = ["start", "base", "planted", "freed"]
STATE = {"phase": 0, "path": None, "made": {}}


def publish():
    text = _truth.gc_census()
    text = _truth.with_fields(
        text,
        {
            "phase": STATE["phase"],
            "phase_name": PHASES[STATE["phase"]],
            "made": STATE["made"],
            "known": {
                "__main__.Plain": N_PLAIN,
                "__main__.Slotted": N_EACH,
                "__main__.MyInt": N_EACH,
                "__main__.MyFloat": N_EACH,
                "__main__.MyStr": N_EACH,
                "__main__.MyBytes": N_EACH,
                "__main__.MyTuple": N_EACH,
                "__main__.MyDict": N_EACH,
            },
        },
    )
    write_raw(STATE["path"], text)


def write_raw(path, text):
    """_truth.write_truth without a text file: opening one looks up the codec's incremental
    encoder by a name string that 3.12's attribute cache keeps (a str that comes and goes with
    each write, which the phase comparison would see)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def next_phase(signum, frame):
    frame = None
    if STATE["phase"] + 1 >= len(PHASES):
        return
    STATE["phase"] += 1
    name = PHASES[STATE["phase"]]
    if name == "planted":
        STATE["made"] = plant()
    elif name == "freed":
        STATE["made"] = free_and_reuse()
    publish()
    # The counts are in the truth: not kept, they would be ints the census counts.
    STATE["made"] = {}


def main():
    STATE["path"] = sys.argv[1]
    gc.collect()
    _truth.warm_up(STATE["path"])
    signal.signal(signal.SIGUSR1, next_phase)
    publish()
    _truth.idle()


main()
