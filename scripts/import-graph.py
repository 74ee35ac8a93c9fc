#!/usr/bin/env python3
"""The import graph of src/, checked against ARCHITECTURE.md's map.

    scripts/import-graph.py            print the graph (layers, heap subsystems) and check it
    scripts/import-graph.py --files    also every file-to-file edge inside heap/

Reads every `use` (braces expanded, `crate::`, `super::`, `self::` resolved) and every inline
`crate::a::b` path of each file under src/, resolves each to the module file it names, and
checks three things (exit status 1 when one fails; tests/architecture_doc.rs runs it):

* no arrow up: each layer imports only what ARCHITECTURE.md's table lets it (`ALLOWED`);
* no cycle between layers, nor between heap/'s subsystems;
* no cycle between the files of heap/.
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# ARCHITECTURE.md's table: what each layer may import (besides itself, `error` and
# `atomic_file`, which sit below everything). `interrupt` (Ctrl-C) is a leaf any loop may use.
BASE = {"error", "atomic_file", "interrupt"}
ALLOWED = {
    "crate": {"cli", "record", "top", "live_tracing", "exporter", "render", "analysis", "profile",
              "heap", "python", "process"},
    "cli": {"record", "top", "live_tracing", "exporter", "render", "analysis", "profile", "heap",
            "python", "process"},
    "record": {"top", "live_tracing", "render", "analysis", "profile", "heap", "python", "process"},
    "top": {"record", "render", "analysis", "profile", "heap", "python", "process"},
    "live_tracing": {"analysis", "heap", "python", "process"},
    "exporter": {"analysis", "profile", "heap", "python", "process"},
    "render": {"analysis", "profile", "heap", "python", "process"},
    "analysis": {"profile", "heap", "python", "process"},
    "profile": set(),
    "heap": {"python", "process"},
    "python": {"process"},
    "process": set(),
    "error": set(),
    "atomic_file": {"error"},
    "interrupt": set(),
}


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r'"(\\.|[^"\\])*"', '""', text)


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = tree.strip()
    at = tree.find("{")
    if at < 0:
        return [re.sub(r"\s+as\s+\w+$", "", tree)]
    head, body = tree[:at], tree[at + 1: tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            out.extend(expand(head + p.strip()))
    return out


def resolve(here, path, modules):
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super" and base:
                base.pop()
            segs = segs[1:]
    else:
        return None  # another crate, or a name in scope
    full = base + segs
    for n in range(len(full), 0, -1):
        if tuple(full[:n]) in modules:
            return tuple(full[:n])
    return None


def edges():
    files = {}
    for d, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                files[module_of(p)] = p
    modules = set(files)
    out = defaultdict(set)
    for mod, p in files.items():
        text = strip(open(p).read())
        # A test module may reach anywhere: only the code that ships is checked.
        text = re.split(r"#\[cfg\(test\)\]", text)[0]
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths.extend(expand(m.group(1)))
        paths.extend(re.findall(r"\bcrate(?:::\w+)+", text))
        paths.extend(re.findall(r"\b(?:super::)+\w+(?:::\w+)*", text))
        for path in paths:
            target = resolve(mod, path, modules)
            if target is not None and target != mod and target[: len(mod)] != mod:
                out[mod].add(target)
    return out


def layer(mod):
    return mod[0] if mod else "crate"


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def main():
    e = edges()
    problems = []
    layers, subsystems, heap_files = defaultdict(set), defaultdict(set), defaultdict(set)
    for src, targets in e.items():
        for dst in targets:
            a, b = layer(src), layer(dst)
            if a != b:
                layers[a].add(b)
                if b not in ALLOWED.get(a, set()) | BASE:
                    problems.append("arrow up: %s -> %s" % ("::".join(src), "::".join(dst)))
            elif a == "heap":
                sa = src[1] if len(src) > 1 else "(heap)"
                sb = dst[1] if len(dst) > 1 else "(heap)"
                heap_files["::".join(src)].add("::".join(dst))
                if sa != sb:
                    subsystems[sa].add(sb)
    print("layers (each imports):")
    for a in sorted(layers):
        print("  %-13s -> %s" % (a, ", ".join(sorted(layers[a]))))
    print("heap subsystems (each imports):")
    for a in sorted(subsystems):
        print("  %-13s -> %s" % (a, ", ".join(sorted(subsystems[a]))))
    if "--files" in sys.argv:
        print("heap files:")
        for a in sorted(heap_files):
            print("  %s -> %s" % (a, ", ".join(sorted(heap_files[a]))))
    for name, graph in (("layers", layers), ("heap subsystems", subsystems), ("heap files", heap_files)):
        for c in cycles(graph):
            problems.append("cycle among %s: %s" % (name, " <-> ".join(c)))
    for p in problems:
        print("PROBLEM " + p)
    print("%d problem(s): %s" % (len(problems), "no cycle, no arrow up" if not problems else "see above"))
    return 1 if problems else 0


sys.exit(main())
