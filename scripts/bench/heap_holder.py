"""A process that holds OBJECTS live objects and idles, for scripts/bench-exporter.sh.

Rows of (int, str, float, Item) in a list: five objects a row (the tuple, an int above the
small-int cache, a str, a float, an Item). Touches "$READY" when built.

usage: heap_holder.py OBJECTS READY_FILE TAG
"""

import sys
import time


class Item:
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n


rows = [(i + 1000, str(i), float(i), Item(i)) for i in range(int(sys.argv[1]) // 5)]
open(sys.argv[2], "w").close()
while True:
    time.sleep(3600)
