"""Target for `pymemspy record`: one type retained at a known rate, one churned, one steady.

Usage: growth_target.py TRUTH_PATH [--rate N] [--exit-after S]

After publishing its truth, the target runs until it is killed (or, with --exit-after, exits
by itself S seconds later):

* ``__main__.Retained``: appended to a module-level list at RATE objects per second of
  wall-clock time (default 2000) and never freed: the leak;
* ``__main__.Churn``: a sawtooth -- built up to CHURN_PEAK objects over CHURN_RAMP_S seconds,
  then all freed at once, and again every CHURN_PERIOD_S seconds (allocated and freed in bursts);
* ``__main__.Steady``: STEADY_N objects created before the truth and kept, unchanged.

Work is done in short ticks with sleeps between them, like a service between requests, so the
process is asleep most of the time. The truth JSON records the rates and counts it implements
("retain_rate", "churn_peak", "steady_count", the type names), "version", "pid" and
"free_threaded".
"""

import json
import os
import sys
import time

import _truth

TICK_S = 0.02
CHURN_PEAK = 3000
CHURN_RAMP_S = 0.9
CHURN_PERIOD_S = 1.3
STEADY_N = 500


class Retained:
    def __init__(self, i):
        self.i = i
        self.tag = None


class Churn:
    def __init__(self, i):
        self.i = i


class Steady:
    def __init__(self, i):
        self.i = i


RETAINED = []
CHURN = []
STEADY = [Steady(i) for i in range(STEADY_N)]


def churn_target(elapsed):
    """How many Churn objects the sawtooth holds at this time."""
    phase = elapsed % CHURN_PERIOD_S
    if phase >= CHURN_RAMP_S:
        return 0
    return int(CHURN_PEAK * phase / CHURN_RAMP_S)


def run(rate, exit_after):
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if exit_after is not None and elapsed >= exit_after:
            return
        want = int(rate * elapsed)
        while len(RETAINED) < want:
            RETAINED.append(Retained(len(RETAINED)))
        n = churn_target(elapsed)
        if n < len(CHURN):
            del CHURN[:]
        while len(CHURN) < n:
            CHURN.append(Churn(len(CHURN)))
        time.sleep(TICK_S)


def main():
    path = sys.argv[1]
    rate = 2000
    if "--rate" in sys.argv:
        rate = int(sys.argv[sys.argv.index("--rate") + 1])
    exit_after = None
    if "--exit-after" in sys.argv:
        exit_after = float(sys.argv[sys.argv.index("--exit-after") + 1])
    truth = {
        "retain_rate": rate,
        "retained_type": "__main__.Retained",
        "churn_type": "__main__.Churn",
        "churn_peak": CHURN_PEAK,
        "churn_period_s": CHURN_PERIOD_S,
        "steady_type": "__main__.Steady",
        "steady_count": STEADY_N,
        "version": "%d.%d.%d" % sys.version_info[:3],
        "pid": os.getpid(),
        "free_threaded": _truth._FREE_THREADED,
    }
    _truth.write_truth(path, json.dumps(truth))
    run(rate, exit_after)


if __name__ == "__main__":
    main()
