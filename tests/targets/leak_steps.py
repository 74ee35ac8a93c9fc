"""Retained sizes known by construction, and a slow leak driven step by step.

- `holder`: a list of N `Private` instances (__slots__, no dict), each holding private data
  (a bytes and a one-item list of bytes) nobody else references: what the list retains is
  getsizeof(holder) + N x (instance + its data), and what the type's instances retain
  together is N x (instance + its data).
- `holder_a` and `holder_b`: two lists holding one shared bytes object: neither retains it.
- Each SIGUSR1 is one step: STEP_LEAK `Leaked` instances appended to `leaks` (kept for ever)
  and `churn` replaced by STEP_CHURN fresh `Churn` instances (the new ones are made before the
  old ones are freed, so they never take an old one's address). The step count is written to
  TRUTH_PATH.step once the step is done.

usage: leak_steps.py TRUTH_PATH
"""

import gc
import json
import signal
import sys

import _truth

N = 3000
STEP_LEAK = 150
STEP_CHURN = 400


class Private:
    __slots__ = ("blob", "extra")

    def __init__(self, i):
        self.blob = bytes(1000 + i % 7)
        self.extra = [bytes(100 + i % 3)]


class Leaked:
    __slots__ = ("payload",)

    def __init__(self, i):
        self.payload = bytes(200 + i % 5)


class Churn:
    __slots__ = ("payload",)

    def __init__(self, i):
        self.payload = bytes(300 + i % 5)


holder = [Private(i) for i in range(N)]


def _shared():
    s = bytes(5000)
    return [s], [s]


holder_a, holder_b = _shared()
leaks = []
churn = []
steps = [0]


def private_bytes(p):
    return (
        sys.getsizeof(p)
        + sys.getsizeof(p.blob)
        + sys.getsizeof(p.extra)
        + sys.getsizeof(p.extra[0])
    )


def step(signum, frame):
    leaks.extend([Leaked(i) for i in range(STEP_LEAK)])
    fresh = [Churn(i) for i in range(STEP_CHURN)]
    churn[:] = fresh
    del fresh
    steps[0] += 1
    _truth.write_truth(sys.argv[1] + ".step", str(steps[0]))


def main():
    gc.collect()
    signal.signal(signal.SIGUSR1, step)
    _truth.warm_up(sys.argv[1])
    _truth.warm_up(sys.argv[1] + ".step")
    instances = sum(private_bytes(p) for p in holder)
    text = json.dumps(
        {
            "private_instances": N,
            "private_retained": instances,
            "holder_retained": sys.getsizeof(holder) + instances,
            "holder_a_retained": sys.getsizeof(holder_a),
            "shared_bytes": sys.getsizeof(holder_a[0]),
            "step_leak": STEP_LEAK,
            "step_churn": STEP_CHURN,
        }
    )
    _truth.write_truth(sys.argv[1], text)
    _truth.idle()


main()
