"""Run a script with SIGUSR1 toggling tracemalloc (16 frames) from inside: the program turning
its own tracing on and off, the baseline pymemspy's live tracing is compared with
(scripts/bench-after-tracing.sh).

Usage: python toggle_tracemalloc.py SCRIPT [ARGS...]
"""

import runpy
import signal
import sys
import tracemalloc


def toggle(*_):
    if tracemalloc.is_tracing():
        tracemalloc.stop()
    else:
        tracemalloc.start(16)


signal.signal(signal.SIGUSR1, toggle)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
