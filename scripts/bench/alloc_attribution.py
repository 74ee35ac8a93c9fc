"""Driver of scripts/bench-alloc-attribution.sh: how right the allocation flamegraph is on the
public targets, what a tick costs, and how much the sampler slows its target.

Shares: for each interpreter, the share of the flamegraph's weight under the leaking function
  - alloc_server.py (one thread; the leaker and the churner each ~20 ms), sampled;
  - alloc_threads.py (four request threads; the leaker a few microseconds of each request),
    sampled, and exact (the target calls tracemalloc.start(16); alloc-profile --pause).
Slowdown: alloc_threads.py's own requests per second, alone and under the tool, in pairs run
one after the other in alternating order; the median of the ratios (alone / under), with 1 and 4
threads, at 100 and 1000 Hz, and under py-spy (--nonblocking and blocking) when pip can install
it. No figure here is asserted anywhere: they go to docs/performance.md with the command that made them.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.environ.get("PYMEMSPY", os.path.join(ROOT, "target/release/pymemspy"))
TARGETS = os.path.join(ROOT, "tests/targets")


def start(python, script, args, tmp):
    truth = os.path.join(tmp, "truth.json")
    for p in (truth, truth + ".go", truth + ".rate"):
        if os.path.exists(p):
            os.remove(p)
    proc = subprocess.Popen(python + [os.path.join(TARGETS, script), truth] + args,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if os.path.exists(truth):
            break
        time.sleep(0.05)
    with open(truth) as f:
        return proc, truth, json.load(f)


def share(folded, leaker):
    total = under = 0
    for line in open(folded):
        stack, _, w = line.rstrip("\n").rpartition(" ")
        w = int(w)
        total += w
        if leaker in [f.split(" (")[0] for f in stack.split(";")]:
            under += w
    return (100.0 * under / total) if total else 0.0


def profile(python, script, args, leaker, tmp, seconds, extra=()):
    proc, truth, doc = start(python, script, args, tmp)
    try:
        open(truth + ".go", "w").close()
        time.sleep(0.5)
        folded = os.path.join(tmp, "out.folded")
        out = subprocess.run([TOOL, "alloc-profile", "--pid", str(proc.pid), "--duration",
                              str(seconds), "-o", folded, *extra],
                             capture_output=True, text=True, timeout=seconds + 120)
        tick = re.search(r"([0-9.]+) µs mean per sample", out.stderr)
        if out.returncode != 0:
            return "fail", "-"
        return "%.1f%%" % share(folded, doc.get("leaker", leaker)), (tick.group(1) if tick else "-")
    finally:
        proc.kill()
        proc.wait()


def shares(interps, seconds):
    print(f"== share of the weight under the leaker ({seconds:.0f} s per run, 100 Hz)")
    print(f"{'interpreter':28} {'server':>8} {'µs/tick':>8} {'threads':>8} {'µs/tick':>8} "
          f"{'exact':>8}")
    for label, python in interps:
        with tempfile.TemporaryDirectory() as tmp:
            server, t1 = profile(python, "alloc_server.py", [], "leaky_handler", tmp, seconds)
            threads, t2 = profile(python, "alloc_threads.py", [], "remember", tmp, seconds)
            exact, _ = profile(python, "alloc_threads.py", ["--tracemalloc", "16"], "remember",
                               tmp, seconds, ["--pause"])
        print(f"{label:28} {server:>8} {t1:>8} {threads:>8} {t2:>8} {exact:>8}", flush=True)


def throughput(python, threads, seconds, tool, tmp):
    """Requests per second of alloc_threads.py, alone (tool None) or under a tool command."""
    proc, truth, _ = start(python, "alloc_threads.py",
                           ["--no-wait", "--exit", "--threads", str(threads), "--seconds",
                            str(seconds)], tmp)
    watcher = None
    if tool is not None:
        watcher = subprocess.Popen([a.replace("PID", str(proc.pid)) for a in tool],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait(timeout=seconds + 60)
    if watcher is not None:
        try:
            watcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
    with open(truth + ".rate") as f:
        return float(f.read())


def pyspy():
    """A py-spy binary: on PATH, or pip-installed into a scratch venv (the machine's mirrors)."""
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if os.access(os.path.join(d, "py-spy"), os.X_OK):
            return os.path.join(d, "py-spy")
    venv = os.path.join(tempfile.gettempdir(), "pymemspy-bench-pyspy")
    exe = os.path.join(venv, "bin/py-spy")
    if not os.path.exists(exe):
        subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True)
        subprocess.run([os.path.join(venv, "bin/pip"), "install", "-q", "py-spy"],
                       capture_output=True)
    return exe if os.path.exists(exe) else None


def slowdown(python, pairs, seconds):
    spy = pyspy()
    tools = [
        ("pymemspy 100 Hz", [TOOL, "alloc-profile", "--pid", "PID", "--rate", "100",
                             "--duration", str(seconds), "-o", os.devnull]),
        ("pymemspy 1000 Hz", [TOOL, "alloc-profile", "--pid", "PID", "--rate", "1000",
                              "--duration", str(seconds), "-o", os.devnull]),
    ]
    if spy:
        for mode in ("--nonblocking", None):
            name = "py-spy 100 Hz " + ("nonblocking" if mode else "blocking")
            cmd = [spy, "record", "-r", "100", "-d", str(int(seconds)), "-p", "PID", "-f", "raw",
                   "-o", os.devnull] + ([mode] if mode else [])
            tools.append((name, cmd))
    else:
        print("py-spy: not installable here (pip install py-spy failed): no comparison")
    print(f"== target slowdown: alloc_threads.py requests/s alone ÷ under the tool "
          f"(median of {pairs} alternated pairs, {seconds:.0f} s each)")
    print(f"{'tool':28} {'1 thread':>10} {'4 threads':>10}")
    for name, cmd in tools:
        cells = []
        for threads in (1, 4):
            ratios = []
            with tempfile.TemporaryDirectory() as tmp:
                for k in range(pairs):
                    order = [None, cmd] if k % 2 == 0 else [cmd, None]
                    got = {}
                    for which in order:
                        got[which is None] = throughput(python, threads, seconds, which, tmp)
                    ratios.append(got[True] / got[False])
            cells.append("%.3fx" % statistics.median(ratios))
        print(f"{name:28} {cells[0]:>10} {cells[1]:>10}", flush=True)


def main():
    args = sys.argv[1:]
    seconds = float(os.environ.get("BENCH_SECONDS", "10"))
    pairs = int(os.environ.get("BENCH_PAIRS", "5"))
    interps = []
    listing = os.environ.get("PYMEMSPY_INTERPRETERS",
                             "/opt/pymemspy-pythons/interpreters.txt")
    if args:
        interps = [(a, [a]) for a in args]
    elif os.path.exists(listing):
        for line in open(listing):
            parts = line.split()
            if len(parts) >= 2 and "free-threaded" not in parts[0]:
                interps.append((parts[0], parts[1:]))
    else:
        interps = [("python3", ["python3"])]
    if os.environ.get("BENCH_SKIP_SHARES") != "1":
        shares(interps, seconds)
    if os.environ.get("BENCH_SKIP_SLOWDOWN") != "1":
        slowdown(interps[0][1], pairs, seconds)


main()
