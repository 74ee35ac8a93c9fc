"""A heap full of secret-looking values, plus a checksum of the raw bytes of objects the target
owns, recomputed on demand: an outside reader must neither print the values nor change a byte.

usage: secret_heap.py TRUTH_PATH
Writes TRUTH_PATH (the secret marker and the first checksum); on SIGUSR1 writes TRUTH_PATH.after
with a fresh checksum.
"""

import ctypes
import hashlib
import json
import os
import signal
import sys

import _truth

MARKER = "pmspy-secret-" + "9f3a"
secrets = {"password": MARKER + "-password", "token": (MARKER + "-token").encode()}
rows = [{"ssn": MARKER + "-%d" % i, "card": (MARKER + "-%d" % i).encode()} for i in range(2000)]
blob = bytearray(os.urandom(1 << 20))


class Account:
    def __init__(self, i):
        self.api_key = MARKER + "-key-%d" % i


accounts = [Account(i) for i in range(500)]
watched = [r["ssn"] for r in rows] + [r["card"] for r in rows]


def checksum():
    """Hash of the objects' payload bytes (not their refcounts, which any reader may bump)."""
    h = hashlib.sha256()
    for o in watched:
        # str/bytes payload: everything after the header, read straight from memory.
        size = sys.getsizeof(o)
        raw = ctypes.string_at(id(o), size)
        h.update(raw[16:])
    h.update(ctypes.string_at((ctypes.c_char * len(blob)).from_buffer(blob), len(blob)))
    return h.hexdigest()


def on_usr1(signum, frame):
    path = sys.argv[1] + ".after"
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps({"checksum": checksum()}))
    os.replace(path + ".tmp", path)


signal.signal(signal.SIGUSR1, on_usr1)


def main():
    path = sys.argv[1]
    _truth.warm_up(path)
    _truth.write_truth(path, json.dumps({"marker": MARKER, "checksum": checksum()}))
    _truth.idle()


main()
