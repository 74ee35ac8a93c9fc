"""Ground truth for pymemspy's integration tests, computed inside the target.

Targets import this module (sys.path[0] is the script's directory), build a
heap, then call ``publish(path, ...)`` and ``idle()``.  The census must be a
*fixed point*: the set of GC-tracked objects alive while the target idles
(which is when pymemspy reads it from outside) must be exactly the set the
census counted.  Everything below is written to keep that promise:

* the census result is a JSON ``str`` (strings are not GC-tracked, so holding
  it does not perturb the census);
* every temporary the census creates is freed before it returns (no cycles,
  no caches), and automatic collections are disabled while it runs so a
  collection triggered by its own allocations cannot change tracking state;
* the list returned by ``gc.get_objects()`` and any frame object of this
  module's census code are excluded;
* lazy imports and codec lookups done by writing the truth file and by the
  json module are triggered by a warm-up *before* the census.

Run ``python known_heap.py PATH`` with ``PYMEMSPY_SELFCHECK=1`` to verify the
fixed-point property on an interpreter (see ``self_check``).
"""

import gc
import json
import os
import sys
import time
import types

_FrameType = types.FrameType
_type_repr = type.__repr__  # not repr(): enum metaclasses override __repr__
_getsizeof = sys.getsizeof
_get_objects = gc.get_objects


def _is_free_threaded():
    """True on a free-threaded (no-GIL) build; such builds keep no GC lists."""
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


# Computed at import time so the census never imports anything.
_FREE_THREADED = _is_free_threaded()
_VERSION = "%d.%d.%d" % sys.version_info[:3]


def _summarize(objs):
    """Per-type [count, bytes] over objs, skipping the census's own objects."""
    per_type = {}
    names = {}
    total_objects = 0
    total_bytes = 0
    for o in objs:
        if o is objs:
            continue
        t = type(o)
        if t is _FrameType and o.f_code in _OWN_CODES:
            continue
        name = names.get(t)
        if name is None:
            name = _type_repr(t)[8:-2]
            names[t] = name
        size = _getsizeof(o)
        entry = per_type.get(name)
        if entry is None:
            per_type[name] = [1, size]
        else:
            entry[0] += 1
            entry[1] += size
        total_objects += 1
        total_bytes += size
    # Drop the last object and the per-type name cache before returning, so the
    # caller frees everything deterministically (no references linger).
    o = t = None
    names.clear()
    return per_type, total_objects, total_bytes


def gc_census(collect=True):
    """Census of gc.get_objects() as a JSON string.

    collect=False skips the initial gc.collect(): the self-check uses it to see
    the heap exactly as an outside reader would, without tidying it first.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if collect:
            gc.collect()
        objs = _get_objects()
        per_type, total_objects, total_bytes = _summarize(objs)
        del objs
        doc = {
            "types": per_type,
            "total_objects": total_objects,
            "total_bytes": total_bytes,
            "freeze_count": gc.get_freeze_count(),
            "version": _VERSION,
            "pid": os.getpid(),
            "free_threaded": _FREE_THREADED,
        }
        text = json.dumps(doc)
        doc.clear()
        per_type.clear()
        return text
    finally:
        if was_enabled:
            gc.enable()


def full_census():
    """Census of everything reachable: gc.get_objects() and, transitively, gc.get_referents.

    This sees what GC lists miss (str, int, float, bytes, untracked tuples and dicts, objects
    over 512 bytes) as long as some GC-visible object refers to it. Returns JSON text.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        objs = _get_objects()
        seen = set()
        queue = []
        for o in objs:
            if o is objs:
                continue
            if type(o) is _FrameType and o.f_code in _OWN_CODES:
                continue
            if id(o) not in seen:
                seen.add(id(o))
                queue.append(o)
        del objs
        i = 0
        # [distinct hidden tuples, their bytes, code objects holding one, not verified]
        hidden = [0, 0, 0, 0]
        mem = _SelfMemory.open() if _HIDDEN_NAMES else None
        try:
            while i < len(queue):
                o = queue[i]
                refs = gc.get_referents(o)
                if type(o) is _CodeType:
                    # Code objects are not GC-tracked, so gc.get_referents sees nothing in them.
                    refs = refs + _code_referents(o)
                    if _HIDDEN_NAMES:
                        refs = refs + _hidden_names(mem, o, seen, hidden)
                for r in refs:
                    if id(r) not in seen and r is not queue and r is not seen:
                        seen.add(id(r))
                        queue.append(r)
                i += 1
        finally:
            if mem is not None:
                mem.close()
        o = refs = r = mem = None
        seen.clear()
        per_type, total_objects, total_bytes = _summarize(queue)
        del queue[:]
        if hidden[0]:
            entry = per_type.setdefault("tuple", [0, 0])
            entry[0] += hidden[0]
            entry[1] += hidden[1]
            total_objects += hidden[0]
            total_bytes += hidden[1]
        doc = {
            "types": per_type,
            "total_objects": total_objects,
            "total_bytes": total_bytes,
            "hidden_name_tuples": {
                "distinct": hidden[0],
                "code_objects": hidden[2],
                "unverified": hidden[3],
            },
        }
        text = json.dumps(doc)
        doc.clear()
        per_type.clear()
        return text
    finally:
        if was_enabled:
            gc.enable()


_CodeType = types.CodeType
_STORED_CODE_ATTRS = (
    ("co_consts", "co_names", "co_filename", "co_name", "co_code", "co_varnames",
     "co_freevars", "co_cellvars", "co_lnotab" if sys.version_info < (3, 10) else "co_linetable")
    if sys.version_info < (3, 11)
    else ("co_consts", "co_names", "co_filename", "co_name", "co_qualname", "co_linetable",
          "co_exceptiontable")
)
_TUPLE_HEAD = sys.getsizeof(())
# 3.11+ keep each code object's local names (co_localsplusnames) in a tuple no attribute returns:
# co_varnames and friends build new tuples from it (and 3.12+ keep those: reading them would add
# tuples the census did not count), code._varname_from_oparg reads its items. The compiler merges
# equal name tuples into its constant cache and deepfreeze shares equal tuples, so one such tuple
# may serve many code objects and be one of their co_consts too: it is found by address (read
# from /proc/self/mem) and counted once.
_HIDDEN_NAMES = sys.version_info >= (3, 11)
_MAX_NAMES = 1 << 16


def _code_referents(code):
    """The objects a code object stores (attributes that are fields, not computed)."""
    return [getattr(code, a) for a in _STORED_CODE_ATTRS]


class _SelfMemory:
    """This process's own memory read through /proc/self/mem (id() is an address in CPython).

    Used only to read the address of a code object's hidden name tuple and check that it is
    one; no object is made from what is read.
    """

    def __init__(self):
        self.fd = os.open("/proc/self/mem", os.O_RDONLY)
        probe = (_CodeType, _FrameType)
        words = [self.word(id(probe) + 8 * k) for k in range(8)]
        # Where a tuple keeps its type and length, and its first item (3.14 adds a cached hash
        # before the items; free-threaded builds a longer header).
        self.type_at = 8 * words.index(id(tuple))
        self.size_at = self.type_at + 8
        self.items_at = tuple.__basicsize__
        code = _code_referents.__code__
        fields = [self.word(id(code) + 8 * k) for k in range(type(code).__basicsize__ // 8)]
        # co_localsplusnames, co_localspluskinds, co_filename follow each other (3.11+; each
        # tuple found this way is checked item by item).
        self.names_at = 8 * fields.index(id(code.co_filename)) - 16
        if words[self.items_at // 8] != id(_CodeType) or self.names_at < 0:
            raise RuntimeError("unexpected object layout")

    @classmethod
    def open(cls):
        """None where the memory cannot be read: every hidden tuple then counts as unverified."""
        try:
            return cls()
        except (OSError, ValueError, IndexError, RuntimeError):
            return None

    def word(self, addr):
        return int.from_bytes(os.pread(self.fd, 8, addr), sys.byteorder)

    def close(self):
        os.close(self.fd)


def _hidden_names(mem, code, seen, hidden):
    """The names in the code object's hidden tuple; the tuple is counted once in `hidden`
    (count, bytes, code objects with names, tuples that could not be verified)."""
    names = []
    while len(names) < _MAX_NAMES:
        try:
            names.append(code._varname_from_oparg(len(names)))
        except IndexError:
            break
    if not names:
        return names
    hidden[2] += 1
    if mem is None:
        hidden[3] += 1
        return names
    try:
        p = mem.word(id(code) + mem.names_at)
        ok = (
            mem.word(p + mem.type_at) == id(tuple)
            and mem.word(p + mem.size_at) == len(names)
            and all(mem.word(p + mem.items_at + 8 * k) == id(x) for k, x in enumerate(names))
        )
    except OSError:
        ok = False
    if not ok:
        hidden[3] += 1
    elif p not in seen:
        # In seen, so that reaching it again as a constant does not count it twice.
        seen.add(p)
        hidden[0] += 1
        hidden[1] += _TUPLE_HEAD + 8 * len(names)
    return names


_OWN_CODES = (gc_census.__code__, _summarize.__code__, full_census.__code__,
              _code_referents.__code__, _hidden_names.__code__)


def with_fields(text, fields):
    """Return census JSON text with extra top-level fields merged in."""
    doc = json.loads(text)
    doc.update(fields)
    merged = json.dumps(doc)
    doc.clear()
    return merged


def write_truth(path, text):
    """Atomically publish text at path (tmp file + os.replace)."""
    tmp = path + ".tmp"
    f = open(tmp, "w", encoding="utf-8")
    try:
        f.write(text)
    finally:
        f.close()
    # Free the file objects (GC-tracked) before the truth becomes visible, so
    # a reader that starts the moment it appears sees the final heap.
    del f
    os.replace(tmp, path)


def warm_up(path):
    """Do once, before the census, everything publishing will do afterwards.

    The first open() may import modules lazily (_bootlocale on 3.8/3.9) and the
    first codec lookup of a name caches a CodecInfo; json has its own first-call
    paths.  Doing an identical write to a scratch file now means none of that
    happens after the census.
    """
    scratch = path + ".warmup"
    text = with_fields(json.dumps({"warm": [1, 2]}), {"up": {"x": [True]}})
    write_truth(scratch, text)
    os.remove(scratch)


def publish(path, fields=None, before_write=None):
    """Warm up, take the census, merge fields, write it; return the text.

    before_write, if given, runs between the census and the write (e.g.
    gc.freeze), so the truth file appears only once the target is final.
    Automatic GC stays off throughout so no collection can run in between.
    """
    warm_up(path)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        text = gc_census()
        if fields:
            text = with_fields(text, fields)
        if before_write is not None:
            before_write()
        write_truth(path, text)
        return text
    finally:
        if was_enabled:
            gc.enable()


def idle():
    """Sleep forever without allocating GC-tracked objects."""
    while True:
        time.sleep(3600)


def _census_only(text):
    """The census part of a truth document (drops fields merged by targets)."""
    doc = json.loads(text)
    keep = ("types", "total_objects", "total_bytes", "freeze_count")
    return {k: doc[k] for k in keep}


def _diff(a, b):
    """Human-readable per-type differences between two census documents."""
    lines = []
    for name in sorted(set(a["types"]) | set(b["types"])):
        x = a["types"].get(name)
        y = b["types"].get(name)
        if x != y:
            lines.append("  %s: %s -> %s" % (name, x, y))
    for key in ("total_objects", "total_bytes", "freeze_count"):
        if a[key] != b[key]:
            lines.append("  %s: %s -> %s" % (key, a[key], b[key]))
    return "\n".join(lines)


def _thawed_matches(first, after):
    """After freeze + unfreeze: the census plus what was frozen before it."""
    ok = after["total_objects"] == first["total_objects"] + first["freeze_count"]
    for name, (count, _) in first["types"].items():
        ok = ok and after["types"].get(name, [0, 0])[0] >= count
    if first["freeze_count"] == 0:
        ok = ok and after["types"] == first["types"]
    if not ok:
        sys.stderr.write("SELFCHECK frozen census != thawed census:\n%s\n" % _diff(first, after))
    return ok


def self_check(published, published_path, frozen=False):
    """Check the fixed-point property after publish(); return True if it holds.

    Compares the published census with a census taken *without* collecting
    (what an outside reader sees), checks two back-to-back censuses agree, and
    that len(gc.get_objects()) is stable across a write_truth.  Not part of the
    normal flow: it allocates (harmlessly) and the target then exits.
    """
    if frozen:
        # gc.get_objects() cannot see the permanent generation: thaw it so the
        # later census sees what pymemspy sees (normal + permanent objects).
        gc.unfreeze()
    # Take every census before parsing any: parsed documents are GC-tracked
    # and would show up in a census taken while they are alive.
    after_text = gc_census(collect=False)
    again_text = gc_census()
    ok = True
    first = _census_only(published)
    after = _census_only(after_text)
    again = _census_only(again_text)
    if frozen:
        ok = _thawed_matches(first, after)
    elif first != after:
        ok = False
        sys.stderr.write("SELFCHECK published != later census:\n%s\n" % _diff(first, after))
    if after != again and not frozen:
        ok = False
        sys.stderr.write("SELFCHECK census not repeatable:\n%s\n" % _diff(after, again))
    objects, freeze_count = first["total_objects"], first["freeze_count"]
    first = after = again = None
    scratch = published_path + ".selfcheck"
    before = len(_get_objects())
    write_truth(scratch, published)
    later = len(_get_objects())
    os.remove(scratch)
    if before != later:
        ok = False
        sys.stderr.write("SELFCHECK len(gc.get_objects()) %d -> %d across write_truth\n" % (before, later))
    sys.stderr.write(
        "SELFCHECK %s python=%s objects=%d freeze_count=%d\n"
        % ("OK" if ok else "FAIL", _VERSION, objects, freeze_count)
    )
    return ok


def python_sizeof_types():
    """Names of the types in the heap whose sys.getsizeof calls a __sizeof__ written in Python
    (no outside reader can compute those bytes): the first class of the MRO that defines
    __sizeof__ defines it as something other than a builtin method descriptor."""
    method_descriptor = type(object.__sizeof__)
    names = set()
    seen = set()
    objs = _get_objects()
    for o in objs:
        t = type(o)
        if id(t) in seen:
            continue
        seen.add(id(t))
        for k in t.__mro__:
            v = k.__dict__.get("__sizeof__")
            if v is not None:
                if type(v) is not method_descriptor:
                    names.add(_type_repr(t)[8:-2])
                break
    o = t = k = v = objs = None
    return sorted(names)


def publish_settled(path, fields):
    """Publish the census of a program that has settled (its other threads parked), for a
    census compared type by type: a collection first, then 3.12's immortal tuples thawed out of
    the permanent generation (gc.get_objects() does not list them, the tool does), and the
    collector left off so nothing the census counted is collected while the tool reads.

    fields (a dict the caller keeps alive, as it is during the census) gets "python_sizeof".
    """
    fields["python_sizeof"] = python_sizeof_types()
    warm_up(path)
    gc.disable()
    gc.collect()
    gc.unfreeze()
    text = gc_census(collect=False)
    write_truth(path, with_fields(text, fields))
