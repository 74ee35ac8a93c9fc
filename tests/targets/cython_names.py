"""A heap with Cython-compiled extension types (pandas' _libs): their type names must come out
exactly as repr(type) prints them (`_cython_3_3_1.cython_function_or_method`, not the bare
`cython_function_or_method`). Run in a venv that has pandas.

The truth is the GC census (type names from type.__repr__), plus the names that look
Cython-made, so the test can say which ones it checked.

usage: cython_names.py TRUTH_PATH
"""

import sys

import pandas  # noqa: F401  (its _libs are Cython 3 extension modules)

import _truth


def cython_names():
    import gc

    names = set()
    for o in gc.get_objects():
        name = type.__repr__(type(o))[8:-2]
        if "cython" in name or name.startswith("pandas._libs."):
            names.add(name)
    return sorted(names)


def main():
    _truth.warm_up(sys.argv[1])
    names = cython_names()
    _truth.publish(sys.argv[1], {"cython_types": names})
    _truth.idle()


main()
