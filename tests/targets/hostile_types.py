"""Many types with huge names, for the exporter's bounds.

Creates N_TYPES classes (one instance each, kept), every 100th with a 3 KB name full of
characters a label value must escape (quotes, backslashes, newlines) and PER_HUGE instances,
so that they are among the largest types by bytes; publishes how many of each.

usage: hostile_types.py TRUTH_PATH [N_TYPES]
"""

import json
import sys

import _truth

N_TYPES = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
# 3 KB: the census itself refuses names over 4 KB (heap::pyobj::MAX_NAME: such a type is not
# taken for a type, a 10 KB name never reaches the exporter); the exporter cuts at 120
# characters. TEN_KB classes with 10 KB names are made too, to show they change nothing.
HUGE = 3 * 1024
TEN_KB = 10


def name(i):
    if i % 100 == 0:
        # Distinct after the first 120 characters only: cut names must be merged, never
        # exported twice.
        return ("H\"\\\n" * (HUGE // 4)) + str(i)
    return "T%d" % i


PER_HUGE = 500


def make(i):
    cls = type(name(i), (), {})
    if i % 100 == 0:
        return [cls() for _ in range(PER_HUGE)]
    return cls()


kept = [make(i) for i in range(N_TYPES)]
kept += [type("X" * 10240 + str(i), (), {})() for i in range(TEN_KB)]

_truth.write_truth(
    sys.argv[1],
    json.dumps(
        {
            "version": "%d.%d.%d" % sys.version_info[:3],
            "types": N_TYPES,
            "huge": len(range(0, N_TYPES, 100)),
            "huge_objects": len(range(0, N_TYPES, 100)) * PER_HUGE,
        }
    ),
)
_truth.idle()
