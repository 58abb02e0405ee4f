"""Replicated sweeps: seeds per trial, mean ± std and n, declared comparisons with Welch's 95% interval and a verdict.

The statistics are checked on made-up numbers with known answers, the report on made-up run directories (no
training), and one tiny real sweep runs two seeds per trial end to end."""
import csv
import json
import math
import os
import shlex
import shutil
import sys

import pytest
from scipy import stats as sp

from mobilejax import cli
from mobilejax.sweeps import load_experiment, run_sweep, write_report
from mobilejax.sweeps.stats import Interval, compare, mean_std, runs_to_resolve, verdict, welch_ci

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sweep import experiment, image_folder  # noqa: E402,F401  (fixture)


def test_mean_std_and_welch_interval_known_values():
    assert mean_std([]) == (None, None)
    assert mean_std([0.5]) == (0.5, None)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    # equal variances and sizes: Welch's dof is 2(n - 1) = 4, se = sqrt(1/3 + 1/3)
    diff, lo, hi, dof = welch_ci([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    half = 2.7764451051977987 * math.sqrt(2 / 3)  # t(0.975, 4) * se
    assert diff == pytest.approx(-3.0) and dof == pytest.approx(4.0)
    assert lo == pytest.approx(-3.0 - half) and hi == pytest.approx(-3.0 + half)
    # a wider interval at 99%; no spread on either side: the interval is the point
    assert welch_ci([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], confidence=0.99).lo < lo
    assert welch_ci([0.5, 0.5], [0.25, 0.25, 0.25]) == Interval(0.25, 0.25, 0.25, 3.0)
    with pytest.raises(ValueError, match=">= 2 values per side"):
        welch_ci([1.0], [1.0, 2.0])


def test_welch_matches_scipy_with_unequal_variances():
    a, b = [0.91, 0.93, 0.95, 0.90], [0.80, 0.88, 0.70]
    ci = welch_ci(a, b)
    ref = sp.ttest_ind(a, b, equal_var=False)
    assert ci.dof == pytest.approx(ref.df) and ci.dof != pytest.approx(len(a) + len(b) - 2)
    se = (ci.hi - ci.diff) / sp.t.ppf(0.975, ci.dof)
    assert ci.diff / se == pytest.approx(ref.statistic)
    lo, hi = ref.confidence_interval(0.95)
    assert (ci.lo, ci.hi) == (pytest.approx(lo), pytest.approx(hi))


def test_verdicts():
    assert verdict(Interval(0.1, 0.05, 0.15, 4.0), 3, 3) == "A > B"
    assert verdict(Interval(-0.1, -0.15, -0.05, 4.0), 3, 3) == "A < B"
    assert verdict(Interval(0.01, -0.05, 0.07, 4.0), 3, 3) == "not resolved (the interval contains 0)"
    assert verdict(None, 1, 3) == "not resolved (n = 1 vs 3; needs >= 2 finished runs each)"
    assert compare([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])["verdict"] == "A > B"
    assert compare([0.80, 0.81], [0.90, 0.91])["verdict"] == "A < B"
    overlap = compare([0.85, 0.90], [0.86, 0.89])
    assert overlap["verdict"].startswith("not resolved") and overlap["lo"] < 0 < overlap["hi"]
    few = compare([0.9], [0.8, 0.81])
    assert few["verdict"].startswith("not resolved (n = 1 vs 2") and few["diff"] == pytest.approx(0.095)
    assert few["lo"] is None and few["mean_a"] == 0.9 and few["mean_b"] == pytest.approx(0.805)
    none = compare([], [0.8, 0.81])
    assert none["diff"] is None and none["verdict"].startswith("not resolved (n = 0 vs 2")


def test_runs_to_resolve_known_values():
    # means 2 and 0, both sample stds sqrt(2): with n runs a side, se = 2 / sqrt(n) and Welch's dof = 2(n - 1), so the
    # interval excludes 0 once t(0.975, 2(n - 1)) < sqrt(n): n = 5 gives 2.306 > 2.236, n = 6 gives 2.228 < 2.449
    assert runs_to_resolve([1.0, 3.0], [-1.0, 1.0]) == 6
    assert runs_to_resolve([1.0, 3.0], [-1.0, 1.0], most=5) is None
    assert runs_to_resolve([1.0, 3.0, 2.0], [2.5, 1.5]) is None  # equal means: no number of runs separates them
    assert runs_to_resolve([0.9], [0.8, 0.81]) is None
    assert runs_to_resolve([0.5, 0.5], [0.25, 0.25]) == 2  # no spread: resolved with what there is
    # compare() gives the estimate only for an interval that contains 0
    assert compare([1.0, 3.0], [-1.0, 1.0])["runs_to_resolve"] == 6
    assert compare([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])["runs_to_resolve"] is None


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
    with open(os.path.join(sweep, "lin", "seed-0", "metrics.jsonl"), "w") as f:
        for rec in ({"step": 5, "epoch": 0.5, "train_loss": 1.0}, {"step": 10, "epoch": 1.0, "eval_accuracy": 0.8512},
                    {"step": 20, "epoch": 2.0, "eval_accuracy": 0.9}):
            f.write(json.dumps(rec) + "\n")
    import matplotlib
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for the caller's own backend, e.g. a notebook's inline one
    try:
        report = write_report(sweep, echo=False)
        assert matplotlib.get_backend() == "svg"  # the plots did not switch it
    finally:
        matplotlib.use(backend)
    for png in ("accuracy_vs_macs.png", "learning_curves.png"):
        assert open(os.path.join(sweep, png), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    trials = {t["trial"]: t for t in report["trials"]}
    assert trials["lin"]["n"] == 3 and trials["lin"]["status"] == "done"
    assert trials["lin"]["best_accuracy"] == pytest.approx(0.91)
    assert trials["lin"]["best_accuracy_std"] == pytest.approx(0.01)
    assert trials["relu6"]["n"] == 2 and trials["relu6"]["status"] == "2/3 done, 1 failed"
    assert trials["relu6"]["overrides"] == "act=relu6"  # the seed is the replicate, not a trial setting
    assert report["failed"] == ["relu6/seed-2"]
    (comp,) = report["comparisons"]
    ref = welch_ci([0.90, 0.91, 0.92], [0.80, 0.82])
    assert comp["diff"] == pytest.approx(0.10) and comp["lo"] == pytest.approx(ref.lo)
    assert (comp["n_a"], comp["n_b"]) == (3, 2) and comp["verdict"] == verdict(ref, 3, 2)
    (row,) = csv.DictReader(open(os.path.join(sweep, "comparisons.csv")))
    assert (row["a"], row["b"], row["n_a"], row["n_b"], row["verdict"]) == ("lin", "relu6", "3", "2", comp["verdict"])
    assert float(row["ci_low"]) == pytest.approx(ref.lo) and float(row["dof"]) == pytest.approx(ref.dof)
    assert row["runs_to_resolve"] == ""  # resolved: no estimate
    rows = list(csv.DictReader(open(os.path.join(sweep, "report.csv"))))
    assert [(r["trial"], r["n"]) for r in rows] == [("lin", "3"), ("relu6", "2")]
    assert len(list(csv.DictReader(open(os.path.join(sweep, "runs.csv"))))) == 6
    md = open(os.path.join(sweep, "report.md")).read()
    assert "0.9100 ± 0.0100" in md and "linear vs relu6" in md and "Failed: `relu6/seed-2`" in md
    assert "Validated on training examples" not in md  # results without eval_overlap (or 0): nothing to say
    # the runs table lists each run's validation accuracy after every evaluation (none logged: an empty cell)
    (lin0,) = [line for line in md.splitlines() if line.startswith("| lin/seed-0 |")]
    assert lin0.endswith("| 1: 0.851, 2: 0.900 |")
    (lin1,) = [line for line in md.splitlines() if line.startswith("| lin/seed-1 |")]
    assert lin1.endswith("| 100 |  |")

    # one seed of the linear trial not finished yet (and one of relu6 not started): n drops; both listed as missing
    os.remove(os.path.join(sweep, "lin", "seed-2", "results.json"))
    with open(os.path.join(sweep, "lin", "seed-2", "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 2, "epoch": 1.0, "eval_accuracy": 0.99}) + "\n")
    shutil.rmtree(os.path.join(sweep, "relu6", "seed-1"))
    report = write_report(sweep, echo=False)
    assert {t["trial"]: (t["n"], t["status"]) for t in report["trials"]} == {
        "lin": (2, "2/3 done, 1 unfinished"), "relu6": (1, "1/3 done, 1 not started, 1 failed")}
    assert report["trials"][0]["best_accuracy"] == pytest.approx(0.905)  # the unfinished run's 0.99 is not counted
    assert report["missing"] == ["lin/seed-2", "relu6/seed-1"] and report["failed"] == ["relu6/seed-2"]
    assert {r["run"]: r["status"] for r in report["rows"]}["relu6/seed-1"] == "not started"
    (comp,) = report["comparisons"]
    assert (comp["n_a"], comp["n_b"], comp["lo"]) == (2, 1, None) and comp["verdict"].startswith("not resolved (n = 2")
    md = open(os.path.join(sweep, "report.md")).read()
    assert "0.8000 ± -" in md  # n = 1: no standard deviation
    assert "`lin/seed-2` (unfinished)" in md and "`relu6/seed-1` (not started)" in md

    # relu6's second seed lands far from its first: the interval contains 0, and the report estimates the runs per
    # trial that would resolve it
    _run(sweep, "relu6/seed-1", 0.91)
    report = write_report(sweep, echo=False)
    (comp,) = report["comparisons"]
    want = runs_to_resolve([0.90, 0.91], [0.80, 0.91])
    assert comp["lo"] < 0 < comp["hi"] and comp["runs_to_resolve"] == want and 2 < want <= 20
    (row,) = csv.DictReader(open(os.path.join(sweep, "comparisons.csv")))
    assert row["runs_to_resolve"] == str(want)
    assert f"| not resolved (the interval contains 0) | {want} |" in open(os.path.join(sweep, "report.md")).read()


def test_report_without_sweep_json_finds_seed_runs(tmp_path):
    """A directory of runs laid out as a replicated sweep, without its sweep.json, is reported per trial too."""
    sweep = str(tmp_path / "runs")
    _run(sweep, "wide/seed-0", 0.70)
    _run(sweep, "wide/seed-1", 0.74)
    _run(sweep, "narrow", 0.60)
    with open(os.path.join(sweep, "narrow", "results.json")) as f:  # validated on examples it trained on
        results = json.load(f)
    with open(os.path.join(sweep, "narrow", "results.json"), "w") as f:
        json.dump({**results, "eval_overlap": 40, "eval_examples": 50}, f)
    report = write_report(sweep, echo=False)
    assert ("Validated on training examples (their accuracy is not a held-out one): `narrow` (40 of 50)"
            in open(os.path.join(sweep, "report.md")).read())
    assert [(r["run"], r["trial"], r["seed"]) for r in report["rows"]] == [
        ("narrow", "narrow", None), ("wide/seed-0", "wide", 0), ("wide/seed-1", "wide", 1)]
    assert {t["trial"]: (t["n"], round(t["best_accuracy"], 6)) for t in report["trials"]} == {
        "narrow": (1, 0.6), "wide": (2, 0.72)}


def test_seeds_and_comparisons_in_experiment_files(tmp_path, image_folder):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25, 0.5]}, seeds=(0, 1),
                     comparisons=[{"name": "wide vs narrow", "a": {"model.alpha": 0.5},
                                   "b": {"model.alpha": 0.25}}])
    loaded = load_experiment(exp)
    assert [r["name"] for r in loaded["runs"]] == ["alpha-0.25/seed-0", "alpha-0.25/seed-1", "alpha-0.5/seed-0",
                                                   "alpha-0.5/seed-1"]
    assert loaded["comparisons"] == [{"name": "wide vs narrow", "a": "alpha-0.5", "b": "alpha-0.25"}]
    assert len(load_experiment(exp, seeds=3)["runs"]) == 6  # --seeds N replaces the file's seeds
    assert [r["overrides"] for r in load_experiment(exp, seeds=1)["runs"]] == [{"model.alpha": 0.25, "seed": 0},
                                                                              {"model.alpha": 0.5, "seed": 0}]
    for n in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="--seeds must be a positive integer"):
            load_experiment(exp, seeds=n)
    # a side may name fixed settings too, and a tuple matches a list
    ok = experiment(tmp_path, image_folder, name="ok.py", product={"model.alpha": [0.25, 0.5]},
                    trials=[{"optim.step_epochs": (1, 2)}, {"optim.step_epochs": (3,)}],
                    comparisons=[{"a": {"model.name": "mobilenet_v1", "model.alpha": 0.5,
                                        "optim.step_epochs": [1, 2]},
                                  "b": {"model.alpha": 0.5, "optim.step_epochs": [3]}}])
    (comp,) = load_experiment(ok)["comparisons"]
    assert comp["name"] == f"{comp['a']} vs {comp['b']}" and comp["a"].endswith("alpha-0.5")
    for bad, match in (({"seeds": (0, 0)}, "repeated seeds"), ({"seeds": "0,1"}, "non-empty list of integers"),
                       ({"seeds": ()}, "non-empty list"), ({"seeds": (0, -1)}, "integers >= 0"),
                       ({"seeds": (0, 1), "trials": [{"seed": 3}]}, "trial 'seed-3__alpha-0.25' sets 'seed'"),
                       ({"comparisons": [{"a": {"model.alpha": 0.75}, "b": {"model.alpha": 0.25}}]},
                        r"comparisons\[0\]\.a \{'model.alpha': 0.75\} selects 0 trials \(none\)"),
                       ({"comparisons": [{"a": {"model.name": "mobilenet_v1"}, "b": {"model.alpha": 0.25}}]},
                        r"comparisons\[0\]\.a .* selects 2 trials \(alpha-0.25, alpha-0.5\)"),
                       ({"comparisons": [{"a": {"model.alpha": 0.5}, "b": {"model.alpha": 0.5}}]}, "with itself"),
                       ({"comparisons": [{"a": {"model.alpha": 0.5}}]}, "must be a dict with 'a' and 'b'"),
                       ({"comparisons": {"a": {}, "b": {}}}, "'comparisons' must be a list")):
        path = experiment(tmp_path, image_folder, name="bad.py", product={"model.alpha": [0.25, 0.5]}, **bad)
        with pytest.raises(ValueError, match=match) as e:
            load_experiment(path)
        assert str(e.value).startswith(path)  # the error names the experiment file
    with pytest.raises(ValueError, match="sets 'seed', but with --seeds"):
        load_experiment(experiment(tmp_path, image_folder, name="s.py", trials=[{"seed": 3}]), seeds=2)


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
    # sweep.json: one entry per run, its state pending
    manifest = json.load(open(os.path.join(sweep, "sweep.json")))
    assert manifest["seeds"] == [0, 1]
    assert [(t["name"], t["trial"], t["seed"]) for t in manifest["trials"]] == [
        (f"alpha-{w}/seed-{s}", f"alpha-{w}", s) for w in ("0.25", "0.5") for s in (0, 1)]
    assert [t["command"] for t in manifest["trials"]] == lines
    assert manifest["state"] == {t["name"]: {"status": "pending"} for t in manifest["trials"]}
    # once a run has started there, the same directory is refused for the layout without seeds (and vice versa)
    assert cli.main(["sweep", exp, "--workdir", sweep, "--dry-run"]) == 0  # nothing started yet: fine
    os.makedirs(os.path.join(sweep, "alpha-0.25"))
    capsys.readouterr()
    assert cli.main(["sweep", exp, "--workdir", sweep, "--dry-run", "--seeds", "2"]) == 2
    assert "with no seeds (alpha-0.25)" in capsys.readouterr().err
    # a directory of replicated runs without a sweep.json is not taken over
    other = tmp_path / "runs"
    os.makedirs(other / "x" / "seed-0")
    (other / "x" / "seed-0" / "config.json").write_text("{}")
    assert cli.main(["sweep", exp, "--workdir", str(other), "--dry-run", "--seeds", "2"]) == 2
    assert "no sweep.json" in capsys.readouterr().err


@pytest.mark.heavy
def test_replicated_sweep_end_to_end(tmp_path, image_folder, capsys):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"data.random_flip": [True, False]}, seeds=(0, 1),
                     comparisons=[{"a": {"data.random_flip": True}, "b": {"data.random_flip": False}}])
    sweep = str(tmp_path / "sweep")
    assert run_sweep(exp, sweep, in_process=True, report=False) == 0
    runs = [f"random_flip-{f}/seed-{s}" for f in (True, False) for s in (0, 1)]
    state = json.load(open(os.path.join(sweep, "sweep.json")))["state"]
    assert {k: v["status"] for k, v in state.items()} == dict.fromkeys(runs, "done")
    status = json.load(open(os.path.join(sweep, runs[1], "status.json")))
    assert (status["trial"], status["seed"], status["status"]) == ("random_flip-True", 1, "done")
    assert "--config.seed=1" in status["command"]

    # finished runs are skipped; one that lost its results resumes from its checkpoint, alone
    os.remove(os.path.join(sweep, runs[2], "results.json"))
    capsys.readouterr()
    assert run_sweep(exp, sweep, in_process=True) == 0  # and writes the report
    err = capsys.readouterr().err
    assert [r for r in runs if f"{r}: finished, skipped" in err] == [runs[0], runs[1], runs[3]]
    assert "resuming from step 3" in open(os.path.join(sweep, runs[2], "train.log")).read()
    for f in ("report.md", "report.csv", "runs.csv", "comparisons.csv", "accuracy_vs_macs.png", "learning_curves.png"):
        assert os.path.getsize(os.path.join(sweep, f)) > 0
    report = write_report(sweep, echo=False)
    assert [(t["trial"], t["n"], t["status"]) for t in report["trials"]] == [
        ("random_flip-True", 2, "done"), ("random_flip-False", 2, "done")]
    seeds = {json.load(open(os.path.join(sweep, r, "config.json")))["seed"] for r in
             ("random_flip-True/seed-0", "random_flip-True/seed-1")}
    assert seeds == {0, 1}
    (comp,) = report["comparisons"]
    assert comp["n_a"] == comp["n_b"] == 2 and comp["verdict"] in (
        "A > B", "A < B", "not resolved (the interval contains 0)")
