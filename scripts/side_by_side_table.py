"""Summarise scripts/side_by_side.sh output as Markdown tables: per shape (model, resolution, batch, stem, dtype), the
runs of ours and of every peer variant (e.g. torch eager, torch.compile) in run order, the ratio of medians and the
per-pair ratios (ours / peer within the same rep; lines with "levers", from scripts/bn_levers.py, are a side of
their own, compared with the peers and with plain mobilejax), plus the achieved GFLOP/s of each side (6 x MACs per image for a
train step; the MACs come from our JSON line, the same network on both sides).

usage: python scripts/side_by_side_table.py OUT_JSONL [OUT_JSONL ...] [--figure PNG] [--peak GFLOPS]
  --figure: a bar chart of achieved GFLOP/s per shape and side, with the machine's peak (--peak, e.g. from
            scripts/cpu_peak.py) as a line.
"""
import argparse
import collections
import json
import statistics


def peer_name(r):
    name = r["peer"]
    if name == "torch":
        name = "torch.compile" if r.get("compile") else "torch eager"
    return name + (" AMP" if r.get("amp") else "")


def load(paths):
    """{shape key: {side: [(rep, img/s), ...]}}, {shape key: MACs per image}."""
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    macs = {}
    for path in paths:
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if "error" in r:
                continue
            key = (r["model"], r.get("resolution", 224), r.get("batch", 32), bool(r.get("small_input", False)),
                   r.get("dtype", "float32"))
            side = peer_name(r) if "peer" in r else "mobilejax"
            if r.get("levers", "none") != "none":  # scripts/bn_levers.py's rewrites: a side of its own
                side += f" [{r['levers']}]"
            runs[key][side].append((r.get("rep"), r["img_per_s"]))
            if "macs_per_image" in r:
                macs[key] = r["macs_per_image"]
    return runs, macs


def label(key):
    model, res, batch, small, dtype = key
    return f"{model}{' (small-input)' if small else ''}, {res} px, b{batch}, {dtype}"


def tables(runs, macs):
    lines = []
    for key, sides in sorted(runs.items()):
        for ours_side in sorted(s for s in sides if s.startswith("mobilejax")):
            ours = sides[ours_side]
            mo = statistics.median(v for _, v in ours)
            lines.append(f"\n**{label(key)}** ({ours_side} runs: {' / '.join(f'{v:g}' for _, v in ours)} img/s, "
                         f"median {mo:g}" + (f", {6 * macs[key] * mo / 1e9:.1f} GFLOP/s" if key in macs else "") + ")\n")
            lines.append("| peer | peer img/s (runs) | peer median | ratio of medians | per-pair ratios | peer GFLOP/s |")
            lines.append("|---|---|---|---|---|---|")
            by_rep = dict(ours)
            for side, peer in sorted(sides.items()):
                # the peers, and for a variant of ours (bn_levers) also plain mobilejax
                if side == ours_side or (side.startswith("mobilejax") and (side != "mobilejax" or ours_side == side)):
                    continue
                mp = statistics.median(v for _, v in peer)
                pairs = [by_rep[rep] / v for rep, v in peer if rep in by_rep]
                gf = f"{6 * macs[key] * mp / 1e9:.1f}" if key in macs else ""
                lines.append(f"| {side} | {' / '.join(f'{v:g}' for _, v in peer)} | {mp:g} | **{mo / mp:.2f}x** | "
                             f"{', '.join(f'{p:.2f}' for p in pairs)} | {gf} |")
    return "\n".join(lines)


def figure(runs, macs, path, peak=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = [k for k in sorted(runs) if k in macs]
    sides = sorted({s for k in keys for s in runs[k]}, key=lambda s: (s != "mobilejax", s))
    width = 0.8 / max(len(sides), 1)
    fig, ax = plt.subplots(figsize=(1.8 + 1.9 * len(keys), 4.2))
    for i, side in enumerate(sides):
        xs, ys = [], []
        for j, k in enumerate(keys):
            if side in runs[k]:
                xs.append(j + (i - (len(sides) - 1) / 2) * width)
                ys.append(6 * macs[k] * statistics.median(v for _, v in runs[k][side]) / 1e9)
        ax.bar(xs, ys, width, label=side)
    if peak:
        ax.axhline(peak, color="k", linestyle="--", linewidth=1)
        ax.text(len(keys) - 0.5, peak, f"fp32 matmul peak {peak:.0f}", ha="right", va="bottom", fontsize=8)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([label(k).replace(", ", "\n", 1) for k in keys], fontsize=7)
    ax.set_ylabel("achieved GFLOP/s (train step, 6 x MACs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("paths", nargs="+")
    p.add_argument("--figure")
    p.add_argument("--peak", type=float)
    a = p.parse_args()
    runs, macs = load(a.paths)
    print(tables(runs, macs))
    if a.figure:
        figure(runs, macs, a.figure, a.peak)


if __name__ == "__main__":
    main()
