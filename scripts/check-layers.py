#!/usr/bin/env python3
"""Checks that src/ has no import cycle between files and that the top-level modules import
only the layers below them (see docs/architecture.md).

Every `use crate::…`, `use super::…`, `use self::…` and inline `crate::…` path is resolved to
the file that defines the module it names (the longest prefix that is a file). Rule 1 covers
every import, tests included: no two files may reach each other. Rule 2 covers non-test code
(test modules and tests.rs/testdata.rs children are left out): a top-level module may import
only modules of a lower layer. Exit status 1 on any violation, with the path that shows it.
"""
import os
import re
import sys

# Lowest first. `fixtures` (crafted frames, certificates, workloads) is on top: any layer's
# tests may use it, no non-test code below it may.
LAYERS = [
    "text", "capture", "wire", "flow", "proto", "inspect", "detect", "verdict", "engine",
    "datapath", "host", "config", "output", "app", "fixtures",
]
TEST_FILES = ("tests.rs", "testdata.rs")


def rs_files(root):
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            if f.endswith(".rs"):
                yield os.path.join(d, f)


def module_path(root, f):
    rel = os.path.relpath(f, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def resolve(root, parts):
    """The file defining the longest module prefix of `parts`."""
    for n in range(len(parts), 0, -1):
        p = os.path.join(root, *parts[:n])
        for c in (p + ".rs", os.path.join(p, "mod.rs")):
            if os.path.exists(c):
                return c
    return None


def split_top(s):
    depth, cur, out = 0, "", []
    for ch in s:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def expand(prefix, tree):
    """Paths named by one use tree, e.g. `a::{b, c::d}` -> [a,b], [a,c,d]."""
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, re.S)
    if m:
        head = [p for p in m.group(1).split("::") if p]
        return [q for part in split_top(m.group(2)) for q in expand(prefix + head, part)]
    parts = [p for p in tree.split(" as ")[0].split("::") if p and p not in ("self", "*")]
    return [prefix + parts]


def imports(root, f, text):
    """Files that `text` (the source of file `f`) imports."""
    text = re.sub(r"//[^\n]*", "", text)
    here = module_path(root, f)
    found = set()
    use_re = r"^([ \t]*)(?:pub(?:\([^)]*\))?\s+)?use\s+(crate|super|self)::([^;]*);"
    for m in re.finditer(use_re, text, re.S | re.M):
        indent, kind, tree = m.groups()
        if kind == "crate":
            base = []
        elif kind == "self" or indent:
            # An indented `super::` sits in an inline module (tests): it names this file.
            base = here if kind == "super" else here
        else:
            base = here[:-1]
        for parts in expand(list(base), re.sub(r"\s+", "", tree)):
            found.add(resolve(root, parts))
    for m in re.finditer(r"(?<![\w:])crate::((?:\w+::)*\w+)", text):
        found.add(resolve(root, m.group(1).split("::")))
    found.discard(None)
    found.discard(f)
    return found


def cycles(edges):
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    root = os.path.normpath(root)
    failed = False
    all_edges, prod_edges = {}, {}
    for f in rs_files(root):
        text = open(f, encoding="utf-8").read()
        all_edges[f] = imports(root, f, text)
        if os.path.basename(f) in TEST_FILES:
            continue
        cut = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+ \{", text, re.M)
        prod_edges[f] = imports(root, f, text[: cut.start()] if cut else text)
    for comp in cycles(all_edges):
        failed = True
        print(f"import cycle between {len(comp)} files:")
        for a in comp:
            print(f"  {os.path.relpath(a, root)} -> {', '.join(sorted(os.path.relpath(b, root) for b in all_edges[a] if b in comp))}")

    def layer(f):
        top = os.path.relpath(f, root).split(os.sep)[0]
        top = top[:-3] if top.endswith(".rs") else top
        return LAYERS.index(top) if top in LAYERS else None

    for f, deps in sorted(prod_edges.items()):
        lf = layer(f)
        if lf is None:
            continue
        for d in sorted(deps):
            ld = layer(d)
            if ld is not None and ld > lf:
                failed = True
                print(f"layer violation: {os.path.relpath(f, root)} ({LAYERS[lf]}) imports {os.path.relpath(d, root)} ({LAYERS[ld]})")
    unknown = sorted({os.path.relpath(f, root).split(os.sep)[0] for f in all_edges} -
                     {x + s for x in LAYERS for s in ("", ".rs")} - {"lib.rs", "main.rs", "bin"})
    if unknown:
        failed = True
        print(f"top-level modules with no layer in scripts/check-layers.py: {', '.join(unknown)}")
    if not failed:
        print(f"check-layers: {len(all_edges)} files, no import cycle, every layer imports only below it")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
