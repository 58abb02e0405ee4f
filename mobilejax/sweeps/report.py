"""Sweep reports: `mobilejax report DIR` writes report.md, report.csv (one row per trial), runs.csv (one row per run),
comparisons.csv, accuracy_vs_macs.png, learning_curves.png and, for a sweep directory, runs.jsonl (the finished
runs as portable records that `mobilejax sweep --restore` brings into another sweep directory: records.py).

Works on any directory of training runs: a sweep directory (its `sweep.json` lists the runs, so runs not started yet
are reported as missing) or, without one, every sub-directory holding a run (and their `seed-<s>` runs). Partially
finished sweeps are fine: each run is `done`, `failed`, `unfinished` (started, no results.json yet: the best
validation accuracy so far is shown) or `not started`. A trial run with several seeds is reported as the mean ±
sample standard deviation over its finished runs (n of them; failed and unfinished runs are listed, not counted);
each comparison the experiment declares gets the difference of the mean best accuracies with a 95% Welch confidence
interval and a verdict, and where the interval contains 0 an estimate of the runs per trial that would resolve it
(mobilejax/sweeps/stats.py). The accuracy-vs-MACs plot has ± std error bars; the learning
curves of a replicated trial are the mean over its runs.
"""
from __future__ import annotations

import collections
import csv
import json
import math
import os
import sys

from mobilejax.metrics import figure, plot_learning_curves, read_metrics
from mobilejax.sweeps.experiment import find_runs
from mobilejax.sweeps.records import write_records
from mobilejax.sweeps.stats import compare, mean_std
from mobilejax.workdir import read_json

RUN_COLUMNS = ["run", "trial", "seed", "overrides", "status", "params", "macs", "best_accuracy", "final_accuracy",
               "epochs", "wall_time_s", "img_per_s"]
TRIAL_COLUMNS = ["trial", "overrides", "status", "n", "params", "macs", "best_accuracy", "best_accuracy_std",
                 "final_accuracy", "final_accuracy_std", "epochs", "wall_time_s", "img_per_s"]
COMPARISON_COLUMNS = ["comparison", "a", "b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "dof",
                      "verdict", "runs_to_resolve"]


def _fmt_override(v) -> str:
    return json.dumps(v) if isinstance(v, (list, tuple)) else str(v)


def overrides_label(overrides: dict) -> str:
    return ", ".join(f"{k}={_fmt_override(v)}" for k, v in overrides.items()) or "(base)"


def collect(workdir: str) -> tuple[dict | None, list[dict]]:
    """(sweep.json or None, one row per run: {"run", "trial", "seed", "status", results or progress, ...})."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir!r} is not a directory")
    manifest = read_json(os.path.join(workdir, "sweep.json"))
    if manifest is not None:
        trials = [(t["name"], t.get("overrides", {}), t.get("trial", t["name"]), t.get("seed"))
                  for t in manifest.get("trials", [])]
        state = manifest.get("state", {})
    else:
        trials = [(r["name"], (read_json(os.path.join(workdir, r["name"], "status.json")) or {}).get("overrides", {}),
                   r["trial"], r["seed"]) for r in find_runs(workdir)]
        state = {}
        if not trials:
            if os.path.exists(os.path.join(workdir, "config.json")):
                raise FileNotFoundError(f"{workdir!r} is one training run; `mobilejax report` reads a directory of "
                                        "runs (a sweep's --workdir, or a folder holding several run directories)")
            raise FileNotFoundError(f"{workdir!r} holds neither a sweep.json nor any training run")
    rows = []
    for name, overrides, trial, seed in trials:
        d = os.path.join(workdir, name)
        results = read_json(os.path.join(d, "results.json"))
        status_file = read_json(os.path.join(d, "status.json")) or {}
        metrics = read_metrics(d) if os.path.isdir(d) else []
        row = {"run": name, "trial": trial, "seed": seed, "overrides": overrides_label(overrides),
               "overrides_dict": overrides, "dir": d, "metrics": metrics, "error": ""}
        if results is not None:
            row["status"] = "done"
            for k in ("params", "macs", "best_accuracy", "final_accuracy", "epochs", "wall_time_s", "img_per_s",
                      "eval_overlap", "eval_examples"):
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
            elif started or (st in ("running", "interrupted") and os.path.isdir(d)):
                # sweep.json's word alone does not make a run unfinished: once its directory is gone (removed
                # to start it over), a rerun starts it from step 0, so it is "not started"
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


def summarize_trials(rows: list[dict]) -> list[dict]:
    """One row per trial (its runs are its seeds): mean ± sample std and n over the finished runs."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["trial"], []).append(r)
    out = []
    for trial, runs in groups.items():
        done = [r for r in runs if r["status"] == "done"]
        if len(done) == len(runs):
            status = "done"
        elif len(runs) == 1:
            status = runs[0]["status"]
        else:  # "2/3 done, 1 failed"
            status = ", ".join([f"{len(done)}/{len(runs)} done"] + [
                f"{n} {st}" for st, n in collections.Counter(r["status"] for r in runs).items() if st != "done"])
        use = done or runs  # no finished run: show the progress of the unfinished ones

        def stat(key, runs_=use):
            return mean_std([r[key] for r in runs_ if isinstance(r.get(key), (int, float))])

        overrides = {k: v for k, v in runs[0]["overrides_dict"].items() if not (k == "seed" and runs[0]["seed"]
                                                                                 is not None)}
        best, best_std = stat("best_accuracy")
        final, final_std = stat("final_accuracy")
        out.append({"trial": trial, "overrides": overrides_label(overrides), "status": status, "n": len(done),
                    "runs": [r["run"] for r in runs], "params": stat("params")[0], "macs": stat("macs")[0],
                    "best_accuracy": best, "best_accuracy_std": best_std, "final_accuracy": final,
                    "final_accuracy_std": final_std, "epochs": stat("epochs")[0],
                    "wall_time_s": stat("wall_time_s")[0], "img_per_s": stat("img_per_s")[0],
                    "best_values": [r["best_accuracy"] for r in done if r.get("best_accuracy") is not None]})
    return out


def compare_trials(trials: list[dict], comparisons: list[dict]) -> list[dict]:
    """Each declared comparison of two trials: difference of mean best accuracies, Welch 95% interval, verdict."""
    by_name = {t["trial"]: t for t in trials}
    out = []
    for c in comparisons:
        a, b = by_name.get(c["a"], {}), by_name.get(c["b"], {})
        out.append({"comparison": c["name"], "a": c["a"], "b": c["b"],
                    **compare(a.get("best_values", []), b.get("best_values", []))})
    return out


def trial_curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Learning curves by trial: a run's own metrics, or for a trial with several runs (seeds) the mean over them
    (its finished runs, if any) at each logged epoch, labelled "<trial> (mean of n)"."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["metrics"]:
            groups.setdefault(r["trial"], []).append(r)
    curves = {}
    for trial, runs in groups.items():
        if len(runs) == 1:
            curves[runs[0]["run"]] = runs[0]["metrics"]
            continue
        runs = [r for r in runs if r["status"] == "done"] or runs
        points: dict[tuple[str, float], list[float]] = {}
        for r in runs:
            for rec in r["metrics"]:
                for key in ("train_loss", "eval_accuracy"):
                    if isinstance(rec.get(key), (int, float)) and isinstance(rec.get("epoch"), (int, float)):
                        points.setdefault((key, round(rec["epoch"], 6)), []).append(rec[key])
        label = trial if len(runs) == 1 else f"{trial} (mean of {len(runs)})"
        curves[label] = [{"epoch": epoch, key: sum(v) / len(v)} for (key, epoch), v in sorted(
            points.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    return curves


def _num(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return format(v, fmt)


def _pm(mean, std, fmt: str = ".4f") -> str:
    if mean is None:
        return ""
    return format(mean, fmt) + (f" ± {format(std, fmt)}" if std is not None else " ± -")


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for cells in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def markdown_table(trials: list[dict]) -> str:
    """Per trial: status, n, params, MACs, best/final validation accuracy as mean ± std over its finished runs."""
    head = ["trial", "overrides", "status", "n", "params", "MACs", "best val acc", "final val acc", "epochs",
            "wall time (s)", "img/s"]
    return _table(head, [[t["trial"], t["overrides"], t["status"], t["n"], _num(t["params"], ",.0f"),
                          f"{t['macs'] / 1e6:.2f}M" if t["macs"] else "",
                          _pm(t["best_accuracy"], t["best_accuracy_std"]),
                          _pm(t["final_accuracy"], t["final_accuracy_std"]), _num(t["epochs"], ".2f"),
                          _num(t["wall_time_s"], ".0f"), _num(t["img_per_s"], ".0f")] for t in trials])


def comparisons_table(comps: list[dict]) -> str:
    head = ["comparison", "A", "B", "n (A, B)", "mean A", "mean B", "A − B", "95% CI (Welch)", "dof", "verdict",
            "runs per trial to resolve (est.)"]
    return _table(head, [[c["comparison"], c["a"], c["b"], f"{c['n_a']}, {c['n_b']}", _num(c["mean_a"], ".4f"),
                          _num(c["mean_b"], ".4f"), _num(c["diff"], "+.4f"),
                          f"[{c['lo']:+.4f}, {c['hi']:+.4f}]" if c["lo"] is not None else "-",
                          _num(c["dof"], ".1f") or "-", c["verdict"], _resolve_label(c)] for c in comps])


def _resolve_label(c: dict) -> str:
    """The estimated runs per trial for an unresolved interval to exclude 0 ("" when resolved or not estimable)."""
    if c["lo"] is None or not c["lo"] <= 0 <= c["hi"]:
        return ""
    return str(c["runs_to_resolve"]) if c.get("runs_to_resolve") else "> 20"


def eval_curve(metrics: list[dict]) -> str:
    """A run's validation accuracy after each evaluation, "epoch: accuracy" in the order logged (e.g. "2: 0.528,
    4: 0.708, 6: 0.783"); empty before the first evaluation."""
    return ", ".join(f"{round(r['epoch'], 2):g}: {r['eval_accuracy']:.3f}" for r in metrics
                     if isinstance(r.get("eval_accuracy"), (int, float)) and isinstance(r.get("epoch"), (int, float)))


def runs_table(rows: list[dict]) -> str:
    head = ["run", "status", "best val acc", "final val acc", "epochs", "wall time (s)", "img/s",
            "val acc after each evaluation (epoch: acc)"]
    return _table(head, [[r["run"], r["status"], _num(r.get("best_accuracy"), ".4f"),
                          _num(r.get("final_accuracy"), ".4f"), _num(r.get("epochs"), ".2f"),
                          _num(r.get("wall_time_s"), ".0f"), _num(r.get("img_per_s"), ".0f"),
                          eval_curve(r.get("metrics") or [])] for r in rows])


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Points not beaten by a cheaper-or-equal point with higher-or-equal accuracy, by increasing cost."""
    front, best = [], -math.inf
    for x, y, label in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y, label))
            best = y
    return front


def plot_accuracy_vs_macs(trials: list[dict], path: str, title: str = "") -> str | None:
    """Mean best accuracy of each trial against its MACs, with ± std error bars and the Pareto front."""
    done = [t for t in trials if t["n"] > 0 and t.get("macs") and t.get("best_accuracy") is not None]
    if not done:
        return None
    fig = figure(figsize=(8, 5.5))
    ax = fig.subplots()
    front = pareto_front([(t["macs"], t["best_accuracy"], t["trial"]) for t in done])
    on_front = {p[2] for p in front}
    for group, colour, label in ((False, "tab:blue", "trial (mean ± std)"), (True, "tab:red", "Pareto-optimal")):
        sel = [t for t in done if (t["trial"] in on_front) == group]
        if sel:
            ax.errorbar([t["macs"] for t in sel], [t["best_accuracy"] for t in sel],
                        yerr=[t["best_accuracy_std"] or 0.0 for t in sel], fmt="o", c=colour, ms=5, capsize=3,
                        zorder=3 + group, label=label)
    if len(front) > 1:
        ax.plot([p[0] for p in front], [p[1] for p in front], "--", c="tab:red", lw=1.2, zorder=2,
                label="Pareto front")
    for t in done:
        ax.annotate(f"{t['trial']} (n={t['n']})", (t["macs"], t["best_accuracy"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set(xlabel="multiply-adds per image (log scale)", ylabel="best validation accuracy",
           title=title or "accuracy vs. MACs")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _write_csv(path: str, columns: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)
    return path


def write_report(workdir: str, echo: bool = True) -> dict:
    """Write the report files into `workdir`; returns {"rows" (runs), "trials", "comparisons", "files", "missing",
    "failed", "counts"}."""
    manifest, rows = collect(workdir)
    trials = summarize_trials(rows)
    comps = compare_trials(trials, (manifest or {}).get("comparisons") or [])
    name = (manifest or {}).get("name") or os.path.basename(os.path.normpath(workdir))
    g = lambda v: _num(v, ".6g")  # noqa: E731
    files = {
        "csv": _write_csv(os.path.join(workdir, "report.csv"), TRIAL_COLUMNS, [
            [t["trial"], t["overrides"], t["status"], t["n"], _num(t["params"], ".0f"), _num(t["macs"], ".0f"),
             g(t["best_accuracy"]), g(t["best_accuracy_std"]), g(t["final_accuracy"]), g(t["final_accuracy_std"]),
             g(t["epochs"]), g(t["wall_time_s"]), g(t["img_per_s"])] for t in trials]),
        "runs_csv": _write_csv(os.path.join(workdir, "runs.csv"), RUN_COLUMNS + ["error"], [
            [r["run"], r["trial"], "" if r["seed"] is None else r["seed"], r["overrides"], r["status"],
             r.get("params") or "", r.get("macs") or "", g(r.get("best_accuracy")), g(r.get("final_accuracy")),
             g(r.get("epochs")), g(r.get("wall_time_s")), g(r.get("img_per_s")),
             (r["error"].strip().splitlines() or [""])[-1]] for r in rows]),
    }
    if comps:
        files["comparisons_csv"] = _write_csv(os.path.join(workdir, "comparisons.csv"), COMPARISON_COLUMNS, [
            [c["comparison"], c["a"], c["b"], c["n_a"], c["n_b"], g(c["mean_a"]), g(c["mean_b"]), g(c["diff"]),
             g(c["lo"]), g(c["hi"]), g(c["dof"]), c["verdict"], c["runs_to_resolve"] or ""] for c in comps])
    records = write_records(workdir, manifest, rows) if manifest else None
    if records:
        files["runs_jsonl"] = records
    plot = plot_accuracy_vs_macs(trials, os.path.join(workdir, "accuracy_vs_macs.png"), f"{name}: accuracy vs. MACs")
    if plot:
        files["accuracy_vs_macs"] = plot
    curves = trial_curves(rows)
    if curves:
        files["learning_curves"] = plot_learning_curves(curves, os.path.join(workdir, "learning_curves.png"),
                                                        title=f"{name}: learning curves")

    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    missing = [r["run"] for r in rows if r["status"] in ("not started", "unfinished")]
    failed = [r for r in rows if r["status"] == "failed"]
    # runs validated on examples they trained on (results.json's eval_overlap): their accuracies are not held-out ones
    overlapping = [f"`{r['run']}` ({r['eval_overlap']} of {r['eval_examples']})" for r in rows if r.get("eval_overlap")]
    md = [f"# Sweep report: {name}", ""]
    if manifest:
        md += [f"- experiment: `{manifest.get('experiment')}`", f"- base config: `{manifest.get('base')}`"]
        if manifest.get("fixed"):
            md.append("- fixed: " + ", ".join(f"`{k}={_fmt_override(v)}`" for k, v in manifest["fixed"].items()))
        if manifest.get("seeds"):
            md.append(f"- seeds: {', '.join(str(s) for s in manifest['seeds'])} (accuracies: mean ± sample std over "
                      "the finished runs, n of them)")
    md.append("- runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" (of {len(rows)})")
    md += ["", markdown_table(trials), ""]
    if comps:
        md += ["## Comparisons", "", "Difference of the mean best validation accuracies, A − B, over the finished "
               "runs, with its 95% confidence interval (Welch's t, unequal variances, Welch–Satterthwaite degrees of "
               "freedom); a verdict only where the interval excludes 0. For an unresolved one, the last column "
               "estimates how many finished runs per trial would make its interval exclude 0 if further seeds kept "
               "the present means and spreads (a planning aid, not a promise: with 2 runs a spread is itself "
               "uncertain).", "", comparisons_table(comps), ""]
    if missing:
        md += ["Missing: " + ", ".join(f"`{r['run']}` ({r['status']})" for r in rows if r["run"] in missing)
               + " (unfinished runs are not counted in n; a trial with no finished run shows the best/last "
               "validation accuracy so far).", ""]
    if overlapping:
        md += ["Validated on training examples (their accuracy is not a held-out one): " + ", ".join(overlapping),
               ""]
    for r in failed:
        md += [f"Failed: `{r['run']}`", "", "```", r["error"].strip()[-2000:] or "(no output)", "```", ""]
    if len(rows) > len(trials):
        md += ["## Runs", "", runs_table(rows), ""]
    if plot:
        md += ["![accuracy vs MACs](accuracy_vs_macs.png)", ""]
    if curves:
        md += ["![learning curves](learning_curves.png)", ""]
    md_path = os.path.join(workdir, "report.md")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    files["md"] = md_path

    if echo:
        print(markdown_table(trials))
        if comps:
            print(comparisons_table(comps))
        if missing:
            print("missing (not started / unfinished): " + ", ".join(missing), file=sys.stderr)
        if failed:
            print("failed: " + ", ".join(r["run"] for r in failed), file=sys.stderr)
        if overlapping:
            print("validated on training examples: " + ", ".join(o.replace("`", "") for o in overlapping),
                  file=sys.stderr)
        print("wrote " + ", ".join(files.values()), file=sys.stderr)
    return {"rows": [{k: v for k, v in r.items() if k not in ("metrics",)} for r in rows], "trials": trials,
            "comparisons": comps, "files": files, "missing": missing, "failed": [r["run"] for r in failed],
            "counts": counts}
