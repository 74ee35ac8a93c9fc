#!/usr/bin/env python3
"""Rust functions over 80 lines, and whether each says why it is long (issue 35).

    scripts/long-functions.py                  every function under src/
    scripts/long-functions.py src/heap a.rs    under these folders or files
    scripts/long-functions.py --max 60 src     another limit (lines from `fn` to its `}`)

Prints one line per function over the limit: its length, file:line and name, and
`[reason given]` when its doc comment (the `///` lines just above it, attributes between
allowed) holds a sentence starting `Long:` that says why it is long and kept whole, e.g.
"Long: one arm per size rule, kept together so the rules read as one table." Exit status 1
when a function over the limit has no such sentence, 0 otherwise.

Functions are found by a small lexer, not a parser: comments, strings (raw ones too) and char
literals are blanked before braces are counted, and a signature ending in `;` (a trait's
declaration) has no body. Nested functions are counted on their own as well.
"""

import os
import re
import sys

LIMIT = 80
FN = re.compile(
    r'^\s*(?:pub(?:\s*\([^)]*\))?\s+)?(?:(?:const|async|unsafe)\s+)*'
    r'(?:extern\s+(?:"[^"]*"\s+)?)?fn\s+(\w+)'
)
REASON = re.compile(r"\bLong:\s*\S")
CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")


def code_lines(text):
    """`text`'s lines with comments, strings and char literals blanked (line count kept)."""
    out = []
    i, n = 0, len(text)
    block = 0  # depth of /* */ comments (they nest in Rust)
    while i < n:
        c = text[i]
        if block:
            if text.startswith("/*", i):
                block += 1
                i += 2
            elif text.startswith("*/", i):
                block -= 1
                i += 2
            else:
                out.append("\n" if c == "\n" else " ")
                i += 1
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            block = 1
            i += 2
            continue
        raw = re.match(r'b?r(#*)"', text[i:i + 300])
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = '"' + raw.group(1)
            j = text.find(end, i + raw.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == "'":
            m = CHAR.match(text, i)
            if m:  # a char literal; otherwise a lifetime's quote
                out.append("''")
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out).split("\n")


def body_end(code, start):
    """The line where the function starting at line `start` ends, or None without a body."""
    depth = 0  # braces
    nest = 0  # parentheses and brackets of the signature
    for j in range(start, len(code)):
        for c in code[j]:
            if c in "([":
                nest += 1
            elif c in ")]":
                nest -= 1
            elif c == ";" and depth == 0 and nest == 0:
                return None
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return j
    return None


def doc_above(lines, i):
    """The doc comment of the item at line `i`: the `///` lines above it, over attributes."""
    doc = []
    k = i - 1
    while k >= 0 and re.match(r"\s*(///|#\[)", lines[k]):
        if lines[k].lstrip().startswith("///"):
            doc.append(lines[k].lstrip()[3:].strip())
        k -= 1
    return " ".join(reversed(doc))


def long_functions(path, limit):
    """(length, line, name, reason given) of each function over `limit` lines in `path`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    code = code_lines(text)
    found = []
    for i, line in enumerate(code):
        m = FN.match(line)
        if not m:
            continue
        end = body_end(code, i)
        if end is None or end - i + 1 <= limit:
            continue
        reason = bool(REASON.search(doc_above(lines, i)))
        found.append((end - i + 1, i + 1, m.group(1), reason))
    return found


def rust_files(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for d, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                if f.endswith(".rs"):
                    yield os.path.join(d, f)


def main(argv):
    limit = LIMIT
    if argv[:1] == ["--max"]:
        limit = int(argv[1])
        argv = argv[2:]
    if any(a.startswith("-") for a in argv):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    paths = argv or [os.path.relpath(os.path.join(root, "src"))]
    missing = 0
    for path in sorted(set(rust_files(paths))):
        for n, line, name, reason in long_functions(path, limit):
            print(f"{n:4d} {path}:{line} {name}{'  [reason given]' if reason else ''}")
            missing += not reason
    if missing:
        print(
            f"{missing} function(s) over {limit} lines without a `Long:` sentence in their doc "
            "comment saying why they are long and kept whole",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
