"""Replicated sweeps: seeds per trial, mean ± std and n, declared comparisons with Welch's 95% interval and a verdict.

The statistics are checked on made-up numbers with known answers, the report on made-up run directories (no
training), and one tiny real sweep runs two seeds per trial end to end."""
import csv
import json
import math
import os
import shlex
import sys

import pytest
from scipy import stats as sp

from mobilejax import cli
from mobilejax.sweeps import load_experiment, run_sweep, write_report
from mobilejax.sweeps.stats import compare, mean_std, welch_ci

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sweep import experiment, image_folder  # noqa: E402,F401  (fixture)


def test_mean_std_and_welch_interval_known_values():
    assert mean_std([]) == (None, None)
    assert mean_std([0.5]) == (0.5, None)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    # equal variances and sizes: Welch's dof is 2(n - 1) = 4, se = sqrt(1/3 + 1/3)
    ci = welch_ci([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    half = 2.7764451051977987 * math.sqrt(2 / 3)  # t(0.975, 4)
    assert ci["diff"] == pytest.approx(-3.0) and ci["dof"] == pytest.approx(4.0)
    assert ci["lo"] == pytest.approx(-3.0 - half) and ci["hi"] == pytest.approx(-3.0 + half)


def test_welch_matches_scipy_with_unequal_variances():
    a, b = [0.91, 0.93, 0.95, 0.90], [0.80, 0.88, 0.70]
    ci = welch_ci(a, b)
    ref = sp.ttest_ind(a, b, equal_var=False)
    assert ci["diff"] / ci["se"] == pytest.approx(ref.statistic)
    assert ci["dof"] == pytest.approx(ref.df)
    lo, hi = ref.confidence_interval(0.95)
    assert (ci["lo"], ci["hi"]) == (pytest.approx(lo), pytest.approx(hi))


def test_verdicts():
    assert compare([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])["verdict"] == "A > B"
    assert compare([0.80, 0.81], [0.90, 0.91])["verdict"] == "A < B"
    overlap = compare([0.85, 0.90], [0.86, 0.89])
    assert overlap["verdict"].startswith("not resolved") and overlap["lo"] < 0 < overlap["hi"]
    few = compare([0.9], [0.8, 0.81])
    assert few["verdict"].startswith("not resolved (n = 1 vs 2") and few["diff"] == pytest.approx(0.095)


def _run(sweep, name, best=None, status=None, params=1000, macs=2e6):
    d = os.path.join(sweep, name)
    os.makedirs(d, exist_ok=True)
    if best is not None:
        with open(os.path.join(d, "results.json"), "w") as f:
            json.dump({"best_accuracy": best, "final_accuracy": best - 0.01, "params": params, "macs": macs,
                       "epochs": 2.0, "wall_time_s": 10.0, "img_per_s": 100.0}, f)
    if status is not None:
        with open(os.path.join(d, "status.json"), "w") as f:
            json.dump({"status": status, "error_tail": "boom" if status == "failed" else ""}, f)


def test_partial_replicated_sweep_report(tmp_path):
    sweep = str(tmp_path / "sweep")
    runs = [("lin", s) for s in (0, 1, 2)] + [("relu6", s) for s in (0, 1, 2)]
    manifest = {"name": "bottleneck", "experiment": "x.py", "base": "b.py", "fixed": {}, "seeds": [0, 1, 2],
                "trials": [{"name": f"{t}/seed-{s}", "trial": t, "seed": s, "overrides": {"act": t, "seed": s}}
                           for t, s in runs],
                "comparisons": [{"name": "linear vs relu6", "a": "lin", "b": "relu6"}],
                "state": {}}
    os.makedirs(sweep)
    with open(os.path.join(sweep, "sweep.json"), "w") as f:
        json.dump(manifest, f)
    for s, acc in enumerate((0.90, 0.91, 0.92)):
        _run(sweep, f"lin/seed-{s}", acc)
    _run(sweep, "relu6/seed-0", 0.80)
    _run(sweep, "relu6/seed-1", 0.82)
    _run(sweep, "relu6/seed-2", status="failed")
    report = write_report(sweep, echo=False)
    trials = {t["trial"]: t for t in report["trials"]}
    assert trials["lin"]["n"] == 3 and trials["lin"]["status"] == "done"
    assert trials["lin"]["best_accuracy"] == pytest.approx(0.91)
    assert trials["lin"]["best_accuracy_std"] == pytest.approx(0.01)
    assert trials["relu6"]["n"] == 2 and trials["relu6"]["status"] == "2/3 done"
    assert trials["relu6"]["overrides"] == "act=relu6"  # the seed is the replicate, not a trial setting
    assert report["failed"] == ["relu6/seed-2"]
    (comp,) = report["comparisons"]
    ref = welch_ci([0.90, 0.91, 0.92], [0.80, 0.82])
    assert comp["diff"] == pytest.approx(0.10) and comp["lo"] == pytest.approx(ref["lo"])
    assert comp["verdict"] == ("A > B" if ref["lo"] > 0 else "not resolved (the interval contains 0)")
    rows = list(csv.DictReader(open(os.path.join(sweep, "report.csv"))))
    assert [(r["trial"], r["n"]) for r in rows] == [("lin", "3"), ("relu6", "2")]
    assert len(list(csv.DictReader(open(os.path.join(sweep, "runs.csv"))))) == 6
    md = open(os.path.join(sweep, "report.md")).read()
    assert "0.9100 ± 0.0100" in md and "linear vs relu6" in md and "Failed: `relu6/seed-2`" in md
    assert os.path.getsize(os.path.join(sweep, "accuracy_vs_macs.png")) > 0

    # one seed of the linear trial not finished yet: n drops to 2 and it is listed as missing
    os.remove(os.path.join(sweep, "lin", "seed-2", "results.json"))
    report = write_report(sweep, echo=False)
    assert {t["trial"]: t["n"] for t in report["trials"]} == {"lin": 2, "relu6": 2}
    assert report["missing"] == ["lin/seed-2"]
    assert report["comparisons"][0]["n_a"] == 2


def test_seeds_and_comparisons_in_experiment_files(tmp_path, image_folder):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25, 0.5]}, seeds=(0, 1),
                     comparisons=[{"name": "wide vs narrow", "a": {"model.alpha": 0.5},
                                   "b": {"model.alpha": 0.25}}])
    loaded = load_experiment(exp)
    assert [r["name"] for r in loaded["runs"]] == ["alpha-0.25/seed-0", "alpha-0.25/seed-1", "alpha-0.5/seed-0",
                                                   "alpha-0.5/seed-1"]
    assert loaded["comparisons"] == [{"name": "wide vs narrow", "a": "alpha-0.5", "b": "alpha-0.25"}]
    assert len(load_experiment(exp, seeds=3)["runs"]) == 6  # --seeds N replaces the file's seeds
    for bad, match in (({"seeds": (0, 0)}, "repeated seeds"), ({"seeds": "0,1"}, "non-empty list of integers"),
                       ({"comparisons": [{"a": {"model.alpha": 0.75}, "b": {"model.alpha": 0.25}}]},
                        r"comparisons\[0\]\.a .* selects 0 trials"),
                       ({"comparisons": [{"a": {"model.name": "mobilenet_v1"}, "b": {"model.alpha": 0.25}}]},
                        r"selects 2 trials")):
        path = experiment(tmp_path, image_folder, name="bad.py", product={"model.alpha": [0.25, 0.5]}, **bad)
        with pytest.raises(ValueError, match=match):
            load_experiment(path)


def test_dry_run_prints_one_command_per_trial_and_seed(tmp_path, image_folder, capsys):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25, 0.5]})
    sweep = str(tmp_path / "sweep")
    assert cli.main(["sweep", exp, "--workdir", sweep, "--dry-run", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    argv = [shlex.split(line) for line in lines]
    assert [a[-1] for a in argv] == [f"--workdir={sweep}/alpha-{w}/seed-{s}" for w in ("0.25", "0.5") for s in (0, 1)]
    assert [[x for x in a if x.startswith("--config.seed=")] for a in argv] == [["--config.seed=0"],
                                                                               ["--config.seed=1"]] * 2
    assert cli.main(["sweep", exp, "--workdir", sweep, "--dry-run", "--seeds", "0"]) == 2


def test_replicated_sweep_end_to_end(tmp_path, image_folder):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"data.random_flip": [True, False]}, seeds=(0, 1),
                     comparisons=[{"a": {"data.random_flip": True}, "b": {"data.random_flip": False}}])
    sweep = str(tmp_path / "sweep")
    assert run_sweep(exp, sweep, in_process=True, report=False) == 0
    report = write_report(sweep, echo=False)
    assert [(t["trial"], t["n"], t["status"]) for t in report["trials"]] == [
        ("random_flip-True", 2, "done"), ("random_flip-False", 2, "done")]
    seeds = {json.load(open(os.path.join(sweep, r, "config.json")))["seed"] for r in
             ("random_flip-True/seed-0", "random_flip-True/seed-1")}
    assert seeds == {0, 1}
    (comp,) = report["comparisons"]
    assert comp["n_a"] == comp["n_b"] == 2 and comp["verdict"] in (
        "A > B", "A < B", "not resolved (the interval contains 0)")
