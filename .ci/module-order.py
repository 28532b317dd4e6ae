#!/usr/bin/env python3
"""Fails if the top-level modules of a crate's source directory depend on
each other in a cycle (docs/design.md, section 0: modules depend one way).

A dependency is a `crate::name` reference (in code or docs) from one
top-level module's files to another top-level module; unit tests (a
trailing `#[cfg(test)] mod tests` block or a `tests.rs` file) are left out.

    .ci/module-order.py core/src io-sim/src jubectl/src
"""
import collections
import os
import re
import sys


def module_files(root):
    mods = {}
    for entry in sorted(os.listdir(root)):
        if entry in ("lib.rs", "main.rs"):
            continue
        path = os.path.join(root, entry)
        name = entry[:-3] if entry.endswith(".rs") else entry
        if os.path.isdir(path):
            mods[name] = [
                os.path.join(d, f)
                for d, _, fs in os.walk(path)
                for f in fs
                if f.endswith(".rs") and f != "tests.rs"
            ]
        elif entry.endswith(".rs"):
            mods[name] = [path]
    return mods


def references(text, names):
    cut = text.find("#[cfg(test)]\nmod tests")
    if cut >= 0:
        text = text[:cut]
    found = re.findall(r"crate::(\w+)", text)
    for group in re.findall(r"crate::\{([^}]*)\}", text):
        found += re.findall(r"(?:^|[\s,{])(\w+)", group)
    return [name for name in found if name in names]


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(roots):
    failed = False
    for root in roots:
        mods = module_files(root)
        graph = collections.defaultdict(set)
        for name, files in mods.items():
            graph[name]
            for path in files:
                with open(path, encoding="utf-8") as f:
                    for other in references(f.read(), mods):
                        if other != name:
                            graph[name].add(other)
        found = cycles(graph)
        if found:
            failed = True
            for component in found:
                edges = [
                    f"{a} -> {b}"
                    for a in component
                    for b in sorted(graph[a])
                    if b in component
                ]
                print(f"{root}: modules in a cycle: {', '.join(edges)}")
        else:
            print(f"{root}: {len(mods)} modules, no cycle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["core/src", "io-sim/src", "jubectl/src"]))
