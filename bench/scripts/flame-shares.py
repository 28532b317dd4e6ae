#!/usr/bin/env python3
"""Shares of an inferno flamegraph's samples by frame name, as quoted in
docs/benchmarks.md: each LABEL=REGEX sums the widths of the frames whose
name matches, not counting a match nested inside another match (so a
recursive or re-entered frame counts once).

    bench/scripts/flame-shares.py docs/flamegraphs/resp-get-3b-p16.svg \
        'lock manager=jubilant_core::lock::' 'tree=btree::tree::Tree::get'
"""
import html
import re
import sys


def frames(path):
    text = open(path, encoding="utf-8").read()
    found = []
    for m in re.finditer(
        r'<g><title>(.*?)</title><rect x="([\d.]+)%" y="([\d.]+)" width="([\d.]+)%"', text
    ):
        title = re.match(r"(.*) \(([\d,]+) samples?, ([\d.]+)%\)$", html.unescape(m.group(1)))
        if title:
            found.append(
                (title.group(1), float(title.group(3)), float(m.group(2)), float(m.group(3)), float(m.group(4)))
            )
    return found


def share(all_frames, pattern):
    matching = sorted((f for f in all_frames if re.search(pattern, f[0])), key=lambda f: -f[3])
    kept, total = [], 0.0
    for name, percent, x, y, width in matching:
        if any(kx - 1e-6 <= x and x + width <= kx + kw + 1e-3 and ky > y for _, _, kx, ky, kw in kept):
            continue
        kept.append((name, percent, x, y, width))
        total += percent
    return total


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    graph = frames(sys.argv[1])
    for arg in sys.argv[2:]:
        label, pattern = arg.split("=", 1)
        print(f"{label:24} {share(graph, pattern):5.1f} %")
