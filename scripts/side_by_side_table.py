"""Summarise scripts/side_by_side.sh output: per model and dtype, the runs of ours and of the peer, their medians and
the ratio of medians, as a Markdown table.

usage: python scripts/side_by_side_table.py OUT_JSONL [OUT_JSONL ...]
"""
import collections
import json
import statistics
import sys


def main(paths):
    runs = collections.defaultdict(lambda: {"ours": [], "peer": []})
    peers = set()
    for path in paths:
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if "error" in r:
                continue
            side = "peer" if "peer" in r else "ours"
            if side == "peer":
                peers.add(r["peer"])
            runs[(r["model"], r.get("dtype", "float32"))][side].append(r["img_per_s"])
    peer = "/".join(sorted(peers)) or "peer"
    print(f"| model | dtype | mobilejax img/s (runs) | {peer} img/s (runs) | ratio of medians |")
    print("|---|---|---|---|---|")
    for (model, dtype), r in sorted(runs.items()):
        if not r["ours"] or not r["peer"]:
            continue
        mo, mp = statistics.median(r["ours"]), statistics.median(r["peer"])
        fmt = lambda xs: " / ".join(f"{x:g}" for x in xs)  # noqa: E731
        print(f"| {model} | {dtype} | {fmt(r['ours'])} | {fmt(r['peer'])} | {mo / mp:.2f}x |")


if __name__ == "__main__":
    main(sys.argv[1:])
