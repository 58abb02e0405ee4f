"""Sweep reports: `mobilejax report DIR` writes report.md, report.csv, accuracy_vs_macs.png and learning_curves.png.

Works on any directory of training runs: a sweep directory (its `sweep.json` lists the trials, so trials not started
yet are reported as missing) or, without one, every sub-directory holding a run. Partially finished sweeps are fine:
each trial is `done`, `failed`, `unfinished` (started, no results.json yet: the best validation accuracy so far is
shown) or `not started`.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys

from mobilejax.metrics import plot_learning_curves, read_metrics
from mobilejax.workdir import read_json

COLUMNS = ["trial", "overrides", "status", "params", "macs", "best_accuracy", "final_accuracy", "epochs",
           "wall_time_s", "img_per_s"]


def _fmt_override(v) -> str:
    return json.dumps(v) if isinstance(v, (list, tuple)) else str(v)


def overrides_label(overrides: dict) -> str:
    return ", ".join(f"{k}={_fmt_override(v)}" for k, v in overrides.items()) or "(base)"


def collect(workdir: str) -> tuple[dict | None, list[dict]]:
    """(sweep.json or None, one row per trial)."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir!r} is not a directory")
    manifest = read_json(os.path.join(workdir, "sweep.json"))
    if manifest is not None:
        trials = [(t["name"], t.get("overrides", {})) for t in manifest.get("trials", [])]
        state = manifest.get("state", {})
    else:
        trials = []
        for d in sorted(os.listdir(workdir)):
            p = os.path.join(workdir, d)
            if os.path.isdir(p) and any(os.path.exists(os.path.join(p, f))
                                        for f in ("config.json", "results.json", "status.json")):
                status = read_json(os.path.join(p, "status.json")) or {}
                trials.append((d, status.get("overrides", {})))
        state = {}
        if not trials:
            raise FileNotFoundError(f"{workdir!r} holds neither a sweep.json nor any training run")
    rows = []
    for name, overrides in trials:
        d = os.path.join(workdir, name)
        results = read_json(os.path.join(d, "results.json"))
        status_file = read_json(os.path.join(d, "status.json")) or {}
        metrics = read_metrics(d) if os.path.isdir(d) else []
        row = {"trial": name, "overrides": overrides_label(overrides), "overrides_dict": overrides, "dir": d,
               "metrics": metrics, "error": ""}
        if results is not None:
            row["status"] = "done"
            for k in ("params", "macs", "best_accuracy", "final_accuracy", "epochs", "wall_time_s", "img_per_s"):
                row[k] = results.get(k)
        else:
            st = status_file.get("status") or state.get(name, {}).get("status")
            evals = [r["eval_accuracy"] for r in metrics if isinstance(r.get("eval_accuracy"), (int, float))]
            steps = [r for r in metrics if "epoch" in r]
            started = os.path.isdir(d) and (metrics or os.path.exists(os.path.join(d, "config.json"))
                                            or os.path.isdir(os.path.join(d, "checkpoints")))
            if st == "failed":
                row["status"] = "failed"
                row["error"] = status_file.get("error_tail") or state.get(name, {}).get("error_tail") or ""
            elif started or st in ("running", "interrupted"):
                row["status"] = "unfinished"
            else:
                row["status"] = "not started"
            row["best_accuracy"] = max(evals) if evals else None
            row["final_accuracy"] = evals[-1] if evals else None
            row["epochs"] = steps[-1]["epoch"] if steps else None
            imgs = [r["img_per_s"] for r in metrics if isinstance(r.get("img_per_s"), (int, float))]
            row["img_per_s"] = sum(imgs) / len(imgs) if imgs else None
        rows.append(row)
    return manifest, rows


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return format(v, fmt)


def _cells(row: dict) -> list[str]:
    macs = row.get("macs")
    return [row["trial"], row["overrides"], row["status"], _num(row.get("params"), ","),
            f"{macs / 1e6:.2f}M" if macs else "", _num(row.get("best_accuracy"), ".4f"),
            _num(row.get("final_accuracy"), ".4f"), _num(row.get("epochs"), ".2f"),
            _num(row.get("wall_time_s"), ".0f"), _num(row.get("img_per_s"), ".0f")]


def markdown_table(rows: list[dict]) -> str:
    head = ["trial", "overrides", "status", "params", "MACs", "best val acc", "final val acc", "epochs",
            "wall time (s)", "img/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    return "\n".join(lines)


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points not beaten by a cheaper-or-equal point with higher-or-equal accuracy, by increasing cost."""
    front, best = [], -math.inf
    for x, y, label in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y, label))
            best = y
    return front


def plot_accuracy_vs_macs(rows: list[dict], path: str, title: str = "") -> str | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(r["macs"], r["best_accuracy"], r["trial"]) for r in rows
           if r["status"] == "done" and r.get("macs") and r.get("best_accuracy") is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    front = pareto_front(pts)
    on_front = {p[2] for p in front}
    ax.scatter([p[0] for p in pts if p[2] not in on_front], [p[1] for p in pts if p[2] not in on_front],
               c="tab:blue", s=30, zorder=3, label="trial")
    ax.scatter([p[0] for p in front], [p[1] for p in front], c="tab:red", s=40, zorder=4, label="Pareto-optimal")
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", c="tab:red", lw=1.2, zorder=2,
                label="Pareto front")
    for x, y, label in pts:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="multiply-adds per image (log scale)", ylabel="best validation accuracy",
           title=title or "accuracy vs. MACs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(workdir: str, echo: bool = True) -> dict:
    """Write report.md, report.csv and the PNG plots into `workdir`; returns {"rows", "files", "missing", ...}."""
    manifest, rows = collect(workdir)
    name = (manifest or {}).get("name") or os.path.basename(os.path.normpath(workdir))
    files = {}

    csv_path = os.path.join(workdir, "report.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS + ["error"])
        for r in rows:
            w.writerow([r["trial"], r["overrides"], r["status"], r.get("params") or "", r.get("macs") or "",
                        _num(r.get("best_accuracy"), ".6g"), _num(r.get("final_accuracy"), ".6g"),
                        _num(r.get("epochs"), ".4g"), _num(r.get("wall_time_s"), ".6g"),
                        _num(r.get("img_per_s"), ".6g"), (r["error"].strip().splitlines() or [""])[-1]])
    files["csv"] = csv_path

    plot = plot_accuracy_vs_macs(rows, os.path.join(workdir, "accuracy_vs_macs.png"), f"{name}: accuracy vs. MACs")
    if plot:
        files["accuracy_vs_macs"] = plot
    curves = {r["trial"]: r["metrics"] for r in rows if r["metrics"]}
    if curves:
        files["learning_curves"] = plot_learning_curves(curves, os.path.join(workdir, "learning_curves.png"),
                                                        title=f"{name}: learning curves")

    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    missing = [r["trial"] for r in rows if r["status"] in ("not started", "unfinished")]
    failed = [r for r in rows if r["status"] == "failed"]
    md = [f"# Sweep report: {name}", ""]
    if manifest:
        md += [f"- experiment: `{manifest.get('experiment')}`", f"- base config: `{manifest.get('base')}`"]
        if manifest.get("fixed"):
            md.append("- fixed: " + ", ".join(f"`{k}={_fmt_override(v)}`" for k, v in manifest["fixed"].items()))
    md.append("- trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" (of {len(rows)})")
    md += ["", markdown_table(rows), ""]
    if missing:
        md += ["Missing: " + ", ".join(f"`{r['trial']}` ({r['status']})" for r in rows if r["trial"] in missing)
               + " (unfinished rows show the best/last validation accuracy so far).", ""]
    for r in failed:
        md += [f"Failed: `{r['trial']}`", "", "```", r["error"].strip()[-2000:] or "(no output)", "```", ""]
    if plot:
        md += ["![accuracy vs MACs](accuracy_vs_macs.png)", ""]
    if curves:
        md += ["![learning curves](learning_curves.png)", ""]
    md_path = os.path.join(workdir, "report.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    files["md"] = md_path

    if echo:
        print(markdown_table(rows))
        if missing:
            print("missing (not started / unfinished): " + ", ".join(missing), file=sys.stderr)
        if failed:
            print("failed: " + ", ".join(r["trial"] for r in failed), file=sys.stderr)
        print("wrote " + ", ".join(files.values()), file=sys.stderr)
    return {"rows": [{k: v for k, v in r.items() if k not in ("metrics",)} for r in rows], "files": files,
            "missing": missing, "failed": [r["trial"] for r in failed], "counts": counts}
