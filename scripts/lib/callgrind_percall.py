#!/usr/bin/env python3
"""Inclusive cost per call of the functions a callgrind profile names, from its call records.

    callgrind_percall.py PROFILE REGEX

Sums, over every call record whose callee's name matches REGEX (Python `re.search`), the
number of calls and the inclusive cost of the first event (Ir under the default
`--tool=callgrind`), and prints `calls=N incl=C per_call=X`. Works whether or not the profile
was written with `--dump-instr=yes` (extra position columns) and with name compression, where
a name is spelled out once as `(id) name` and referred to as `(id)` afterwards.
Exits 1 when no call matched.
"""
import re
import sys

NAME = re.compile(r"\((\d+)\)(?: (.*))?$")


def main(path, pattern):
    want = re.compile(pattern)
    names = {}  # compressed id -> function name (fn= and cfn= share one table)
    positions = 1  # columns before the costs on a cost line ("positions: instr line" = 2)
    callee = None
    pending = None  # calls of the call record just read; its cost line comes next
    calls = cost = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if pending is not None:
                fields = line.split()
                calls += pending
                cost += int(fields[positions]) if len(fields) > positions else 0
                pending = None
                continue
            if line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith(("fn=", "cfn=")):
                m = NAME.match(line.split("=", 1)[1])
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), "")
                else:
                    name = line.split("=", 1)[1]
                callee = name if line.startswith("cfn=") else None
            elif line.startswith("calls="):
                if callee is not None and want.search(callee):
                    pending = int(line[len("calls="):].split()[0])
    if calls == 0:
        print(f"no call to a function matching {pattern!r} in {path}", file=sys.stderr)
        return 1
    print(f"calls={calls} incl={cost} per_call={cost / calls:.1f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
