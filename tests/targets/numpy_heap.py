"""Memory owned outside the object: numpy arrays (owning, views, slices, arrays whose base holds
the buffer, an object-dtype array), a pandas DataFrame with numeric and object columns, and
bytearray, array.array, io.BytesIO. Run with a venv's python that has numpy and pandas.

The truth, computed here:
- per type (numpy.ndarray, bytearray, array.array, _io.BytesIO): count, sum of sys.getsizeof and
  sum of the memory the objects own outside themselves, over every object reachable from
  gc.get_objects() through gc.get_referents, an ndarray's base and an object array's elements
  (ndarrays are not GC-tracked and have no tp_traverse: gc.get_referents sees none of that);
- nbytes of the owning arrays created here (20 arrays of 1-10 MB: 110 MB);
- under the named global `frame` (the DataFrame): its owning arrays' nbytes and every byte
  reachable from it;
- how many strs and dicts only the object array `labels` holds, and how many distinct strs the
  DataFrame's object column holds: `why` must find them all under those names, none of them
  "(not reachable from modules or threads)".

usage: numpy_heap.py TRUTH_PATH
"""

import array
import gc
import io
import mmap
import sys

import numpy as np
import pandas as pd

import _truth

MB = 1 << 20

# 20 owning arrays of 1..10 MB (float64 and int32), C and Fortran order.
owners = []
for i in range(20):
    mb = 1 + i % 10
    dtype = np.float64 if i % 2 == 0 else np.int32
    n = mb * MB // np.dtype(dtype).itemsize
    a = np.ones(n, dtype=dtype)
    if i % 5 == 4:
        a = np.asfortranarray(a.reshape(-1, 64))  # the reshape's copy owns; its view is dropped
    owners.append(a)

# Views, slices and arrays whose base holds the buffer: they add nothing.
base2d = np.arange(MB, dtype=np.int64).reshape(1024, 1024)  # a view of arange's owning array
views = [base2d[::2], base2d.T, base2d[10:20, 5], owners[0][100:200], owners[3].view(np.uint8)]
from_buffer = np.frombuffer(bytearray(3 * MB), dtype=np.uint8)  # base: the bytearray

# An object-dtype array holding strs and dicts: only it holds them.
labels = np.empty(3000, dtype=object)
for i in range(3000):
    labels[i] = ("label-%d-" % i) * (1 + i % 40) if i % 3 else {"row": i, "tag": "t%d" % i}

# A DataFrame with numeric and object columns held by a named global.
frame = pd.DataFrame(
    {
        "price": np.linspace(0.0, 1.0, 200_000),
        "qty": np.arange(200_000, dtype=np.int64),
        "name": ["customer-%06d" % i for i in range(200_000)],
    }
)

# Other objects with buffers of their own.
buffers = [bytearray(1 * MB), bytearray(b"x" * 100_000)]
arrays = [array.array("d", range(100_000)), array.array("i", range(50_000))]
streams = [io.BytesIO(), io.BytesIO(b"y" * 500_000)]
streams[0].write(b"z" * 300_000)
maps = [mmap.mmap(-1, 2 * MB), mmap.mmap(-1, 5000)]
maps[0].write(b"m" * MB)

KINDS = ("numpy.ndarray", "bytearray", "array.array", "_io.BytesIO", "mmap.mmap")


def owned_outside(o, name):
    """Memory `o` owns outside its own allocation, as the tool defines it per type."""
    if name == "numpy.ndarray":
        return o.nbytes if o.flags.owndata else 0
    if name == "mmap.mmap":
        return 0 if o.closed else len(o)  # the mapping: not in sys.getsizeof
    # __sizeof__, not sys.getsizeof: the latter adds the GC pre-header, which is no buffer.
    return o.__sizeof__() - type(o).__basicsize__


def extra_referents(o):
    """What gc.get_referents misses: an ndarray's base and an owning object array's items."""
    if type(o) is np.ndarray or isinstance(o, np.ndarray):
        out = [] if o.base is None else [o.base]
        if o.dtype.hasobject and o.flags.owndata:
            out.extend(o.reshape(-1, order="A").tolist() if o.size else [])
        return out
    return ()


STOP = (type, type(sys), type(owned_outside), type(len), type(frame.copy))


def reachable(roots, stop=()):
    """Every object reachable from roots (the walk the truth is taken over); the walk does not
    go through instances of `stop` (classes, modules and functions lead to everything)."""
    seen = set()
    queue = []
    for r in roots:
        if id(r) not in seen:
            seen.add(id(r))
            queue.append(r)
    i = 0
    while i < len(queue):
        o = queue[i]
        i += 1
        if stop and isinstance(o, stop):
            continue
        for r in gc.get_referents(o):
            if id(r) not in seen:
                seen.add(id(r))
                queue.append(r)
        for r in extra_referents(o):
            if id(r) not in seen:
                seen.add(id(r))
                queue.append(r)
    return queue


def c_size(o):
    """sys.getsizeof without a __sizeof__ written in Python: pandas objects report their
    memory_usage(deep=True) through one, which no reader from outside can run (nor should a
    sum over a DataFrame's referents count it twice)."""
    size = sys.getsizeof(o)
    if isinstance(type(o).__sizeof__, type(c_size)):
        size += object.__sizeof__(o) - o.__sizeof__()
    return size


def per_type(objs):
    out = {k: [0, 0, 0] for k in KINDS}
    for o in objs:
        name = type.__repr__(type(o))[8:-2]
        if name in out:
            e = out[name]
            e[0] += 1
            e[1] += sys.getsizeof(o)
            e[2] += owned_outside(o, name)
    return out


def main():
    gc.collect()
    _truth.warm_up(sys.argv[1])
    import json

    labels_strs = sum(1 for x in labels.tolist() if type(x) is str)
    labels_dicts = sum(1 for x in labels.tolist() if type(x) is dict)
    frame_strs = len(set(map(id, frame["name"].tolist())))
    # A BytesIO's size counts its buffer only while nobody else holds it: size them before the
    # walk below holds every buffer.
    streams_only = [o for o in gc.get_objects() if isinstance(o, io.BytesIO)]
    bytesio = per_type(streams_only)["_io.BytesIO"]
    del streams_only
    everything = reachable([o for o in gc.get_objects()])
    types = per_type(everything)
    types["_io.BytesIO"] = bytesio
    del everything
    under_frame = reachable([frame], STOP)
    frame_bytes = sum(c_size(o) for o in under_frame)
    frame_native = sum(
        o.nbytes for o in under_frame if isinstance(o, np.ndarray) and o.flags.owndata
    )
    del under_frame
    text = json.dumps(
        {
            "types": types,
            "owners_nbytes": sum(a.nbytes for a in owners),
            "frame_bytes": frame_bytes,
            "frame_native": frame_native,
            "labels_strs": labels_strs,
            "labels_dicts": labels_dicts,
            "frame_strs": frame_strs,
            "numpy": np.__version__,
            "version": "%d.%d.%d" % sys.version_info[:3],
        }
    )
    _truth.write_truth(sys.argv[1], text)
    _truth.idle()


main()
