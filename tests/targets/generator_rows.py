"""Rows built through nested generators and partly kept: the shape of an ORM compiling a query
(Django's compilers yield rows through generator pipelines), where a stack read while its
thread runs on was seen cut off: the innermost generator frames alone, no thread root.

Usage: generator_rows.py TRUTH_PATH [--seconds N]

Publishes its truth (the version), idles until TRUTH_PATH + ".go" exists, then runs the
pipeline for N seconds (default 60) on the main thread and idles again.
"""

import json
import os
import sys
import time

import _truth

KEEP = []


class Col:
    def __init__(self, i):
        self.i = i
        self.sql = "c%d" % i

    def as_sql(self):
        for k in range(3):
            yield {"sql": self.sql, "k": k, "params": [self.i, k]}


def compile_cols(n):
    for i in range(n):
        yield from Col(i).as_sql()


def results(n):
    for row in compile_cols(n):
        yield tuple(row.items())


def handle(n):
    out = []
    for r in results(n):
        out.append(r)
    if len(KEEP) < 400000:
        KEEP.extend(out[:5])


def main(path, seconds):
    text = json.dumps({"version": "%d.%d.%d" % sys.version_info[:3]})
    _truth.warm_up(path)
    _truth.write_truth(path, text)
    while not os.path.exists(path + ".go"):
        time.sleep(0.05)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        handle(200)
    _truth.idle()


args = sys.argv[1:]
main(args[0], float(args[args.index("--seconds") + 1]) if "--seconds" in args else 60.0)
