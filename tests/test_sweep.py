"""Sweeps: experiment files, up-front validation, run / interrupt / resume / skip, failures, dry runs, reports.

Trials are tiny (MobileNetV1 alpha 0.25 at 16 px, 3 steps on a generated 2-class image folder, read by the in-memory
pipeline: a trial's subprocess then never imports TensorFlow) and mostly run in this process (`in_process=True`) to
save the JAX import per trial; one test runs real `mobilejax train` subprocesses two at a time."""
import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from mobilejax import cli
from mobilejax.config import load_config
from mobilejax.sweeps import load_experiment, run_sweep, train_argv, trial_name, write_report
from mobilejax.sweeps.report import pareto_front

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for c, cls in enumerate(["a", "b"]):
        os.makedirs(root / "train" / cls)
        for i in range(8):
            img = rng.integers(0, 80, (16, 16, 3)) + 150 * c
            Image.fromarray(img.astype(np.uint8)).save(root / "train" / cls / f"{i}.png")
    return str(root)


def fixed(folder):
    return {"model.name": "mobilenet_v1", "model.alpha": 0.25,
            "data.dataset": f"image_folder:{folder}", "data.train_split": "train[:75%]",
            "data.eval_split": "train[75%:]", "data.image_size": 16, "batch_size": 4, "eval_batch_size": 8,
            "num_train_steps": 3, "log_every_steps": 1, "checkpoint_every_steps": 2, "progress": False,
            "data.cache": False, "data.pipeline": "memory"}


def write_experiment(path, body: dict):
    path.write_text("def get_config():\n    return " + repr(body) + "\n")
    return str(path)


def experiment(tmp_path, folder, name="exp.py", **fields):
    body = {"base": "configs/quickstart.py", "fixed": fixed(folder)}
    body.update(fields)
    return write_experiment(tmp_path / name, body)


def statuses(sweep_dir):
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        return {k: v["status"] for k, v in json.load(f)["state"].items()}


def test_trial_names_and_product(tmp_path, image_folder):
    exp = load_experiment(experiment(tmp_path, image_folder, product={"model.alpha": [0.35, 0.5], "seed": [0, 1]},
                                     trials=[{"model.name": "mobilenet_v2"}]))
    names = [t["name"] for t in exp["trials"]]
    assert names == ["model-mobilenet_v2__alpha-0.35__seed-0", "model-mobilenet_v2__alpha-0.35__seed-1",
                     "model-mobilenet_v2__alpha-0.5__seed-0", "model-mobilenet_v2__alpha-0.5__seed-1"]
    assert trial_name({"model.separable": False, "model.activation": "hard_swish"}) == \
        "separable-False__activation-hard_swish"
    assert trial_name({"data.dataset": "image_folder:/a b/c"}) == "data-image_folder_a_b_c"
    assert len(trial_name({"x" * 80: 1, "y" * 80: 2})) <= 100


@pytest.mark.heavy
def test_sweep_runs_interrupts_resumes_and_skips(tmp_path, image_folder, capsys):
    # seed and flip do not change the compiled step: one compilation for the four trials
    exp = experiment(tmp_path, image_folder, product={"seed": [0, 1], "data.random_flip": [True, False]})
    sweep = str(tmp_path / "sweep")
    names = [t["name"] for t in load_experiment(exp)["trials"]]

    # "interrupted": only the first two trials run
    assert run_sweep(exp, sweep, max_trials=2, in_process=True) == 0
    st = statuses(sweep)
    assert [st[n] for n in names] == ["done", "done", "pending", "pending"]
    report = write_report(sweep, echo=False)
    assert report["missing"] == names[2:]
    assert {r["trial"]: r["status"] for r in report["rows"]}[names[3]] == "not started"

    # the second trial lost its results (killed before writing them): it resumes from its last checkpoint
    os.remove(os.path.join(sweep, names[1], "results.json"))
    assert write_report(sweep, echo=False)["missing"] == names[1:]
    log0 = open(os.path.join(sweep, names[0], "train.log")).read()
    capsys.readouterr()
    assert run_sweep(exp, sweep, in_process=True) == 0
    err = capsys.readouterr().err
    assert f"{names[0]}: finished, skipped" in err
    assert open(os.path.join(sweep, names[0], "train.log")).read() == log0  # not run again
    assert "resuming from step 3" in open(os.path.join(sweep, names[1], "train.log")).read()
    assert set(statuses(sweep).values()) == {"done"}
    for n in names:
        results = json.load(open(os.path.join(sweep, n, "results.json")))
        assert results["steps"] == 3
        assert json.load(open(os.path.join(sweep, n, "status.json")))["status"] == "done"

    # the report: table, CSV, both plots
    for f in ("report.md", "report.csv", "accuracy_vs_macs.png", "learning_curves.png"):
        assert os.path.getsize(os.path.join(sweep, f)) > 0
    rows = list(csv.DictReader(open(os.path.join(sweep, "report.csv"))))
    assert [r["trial"] for r in rows] == names
    assert all(r["status"] == "done" and int(r["params"]) > 0 and int(r["macs"]) > 0 for r in rows)
    md = open(os.path.join(sweep, "report.md")).read()
    assert "seed=1, data.random_flip=False" in md and "Missing" not in md

    # a rerun of a finished sweep runs nothing
    assert run_sweep(exp, sweep, in_process=True) == 0
    assert capsys.readouterr().err.count("finished, skipped") == 4


@pytest.mark.heavy
def test_failing_trial_does_not_stop_the_others(tmp_path, image_folder):
    """Real `mobilejax train` subprocesses, two at a time on disjoint CPUs; one trial's data is missing."""
    missing = str(tmp_path / "no_such_folder")
    exp = experiment(tmp_path, image_folder, trials=[{"data.dataset": f"image_folder:{missing}"},
                                                     {"data.dataset": f"image_folder:{image_folder}"}])
    sweep = str(tmp_path / "sweep")
    bad, good = [t["name"] for t in load_experiment(exp)["trials"]]
    assert run_sweep(exp, sweep, parallel=2) == 1
    st = statuses(sweep)
    assert st == {bad: "failed", good: "done"}
    status = json.load(open(os.path.join(sweep, bad, "status.json")))
    assert status["returncode"] != 0 and "does not exist" in status["error_tail"]
    state = json.load(open(os.path.join(sweep, "sweep.json")))["state"][bad]
    assert "does not exist" in state["error_tail"]
    assert "cpus" in open(os.path.join(sweep, good, "train.log")).read()
    report = write_report(sweep, echo=False)
    assert report["failed"] == [bad] and report["missing"] == []
    md = open(os.path.join(sweep, "report.md")).read()
    assert f"Failed: `{bad}`" in md and "does not exist" in md


def test_trial_stopped_by_a_signal_is_interrupted_not_failed(tmp_path, image_folder, monkeypatch, capsys):
    """A run that exits 143 (SIGTERM, checkpoint saved: a preempted job) is unfinished, and the next sweep runs it."""
    import mobilejax.train
    from mobilejax.errors import TrainingStopped
    exp = experiment(tmp_path, image_folder, trials=[{"seed": 0}])
    sweep = str(tmp_path / "sweep")
    (name,) = [t["name"] for t in load_experiment(exp)["trials"]]

    def stopped(config, workdir):
        raise TrainingStopped("stopped at step 2; checkpoint saved; rerun the same command to resume", 143)
    real = mobilejax.train.train_and_evaluate
    monkeypatch.setattr(mobilejax.train, "train_and_evaluate", stopped)
    assert run_sweep(exp, sweep, in_process=True) == 0
    assert f"{name}: interrupted" in capsys.readouterr().err and statuses(sweep) == {name: "interrupted"}
    assert json.load(open(os.path.join(sweep, name, "status.json")))["returncode"] == 143
    report = write_report(sweep, echo=False)
    assert report["failed"] == [] and report["missing"] == [name]
    monkeypatch.setattr(mobilejax.train, "train_and_evaluate", real)
    assert run_sweep(exp, sweep, in_process=True) == 0 and statuses(sweep) == {name: "done"}


# A stand-in for `mobilejax train` on a slow machine: SIGTERM makes it finish its "step" and save (2 s), then exit 143.
SLOW_STOPPER = """
import os, signal, sys, time
workdir = sys.argv[1]
def stop(signum, frame):
    time.sleep(2)
    open(os.path.join(workdir, "saved"), "w").close()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(os.path.join(workdir, "started"), "w").close()
time.sleep(600)
"""


@pytest.mark.parametrize("parallel", [1, 2])
def test_interrupted_sweep_waits_for_its_runs_to_save(tmp_path, image_folder, monkeypatch, capsys, parallel):
    """SIGTERM to the sweep: each running run gets SIGTERM and the sweep waits until it has saved and exited, however
    long that takes; the runs not yet started never start; the sweep exits 130 and the runs are "interrupted"."""
    exp = experiment(tmp_path, image_folder, product={"seed": [0, 1, 2]})
    sweep = str(tmp_path / "sweep")
    real_popen = subprocess.Popen

    def stand_in(cmd, **kwargs):
        workdir = next(a.split("=", 1)[1] for a in cmd if a.startswith("--workdir="))
        return real_popen([sys.executable, "-c", SLOW_STOPPER, workdir], **kwargs)
    monkeypatch.setattr(subprocess, "Popen", stand_in)
    names = [t["name"] for t in load_experiment(exp)["runs"]]
    started = [os.path.join(sweep, n, "started") for n in names]

    def interrupt_once_running():
        deadline = time.time() + 60
        while time.time() < deadline and sum(map(os.path.exists, started)) < parallel:
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=interrupt_once_running, daemon=True).start()
    assert run_sweep(exp, sweep, parallel=parallel) == 130
    err = capsys.readouterr().err
    assert f"stopping {parallel} running run(s)" in err and "interrupted; rerun the same command" in err
    ran = [n for n in names if os.path.exists(os.path.join(sweep, n, "started"))]
    assert len(ran) == parallel
    for n in ran:  # each saved before it exited: the sweep did not kill it
        assert os.path.exists(os.path.join(sweep, n, "saved"))
    assert all(statuses(sweep)[n] == "interrupted" for n in ran)
    assert all(not os.path.exists(p) for p in started[parallel:])  # the rest never started


def test_stop_trials_has_no_fixed_grace_period_and_a_second_interrupt_kills():
    from mobilejax.sweeps.runner import stop_trials

    class Run:
        def __init__(self, interrupt_wait=False):
            self.sent, self.interrupt_wait = [], interrupt_wait

        def terminate(self):
            self.sent.append("TERM")

        def kill(self):
            self.sent.append("KILL")

        def wait(self, timeout=None):
            if timeout is not None:  # it takes longer than any fixed grace period to save its checkpoint
                raise subprocess.TimeoutExpired("mobilejax train", timeout)
            if self.interrupt_wait and "KILL" not in self.sent:
                raise KeyboardInterrupt  # the user interrupts again while the sweep waits
            return 143 if "KILL" not in self.sent else -9

    slow = [Run(), Run()]
    stop_trials(slow)
    assert [r.sent for r in slow] == [["TERM"], ["TERM"]]
    impatient = [Run(interrupt_wait=True), Run()]
    with pytest.raises(KeyboardInterrupt):
        stop_trials(impatient)
    assert [r.sent for r in impatient] == [["TERM", "KILL"], ["TERM", "KILL"]]


def test_sweep_sigterm_delivered_twice_at_once_is_one_interrupt(monkeypatch):
    """GNU `timeout` sends its SIGTERM to the sweep and then to its process group: the second delivery, at once, must
    not count as the second interrupt that kills the running runs; a SIGTERM later does."""
    from mobilejax.runtime import StopRequest
    from mobilejax.sweeps import runner
    monkeypatch.setattr(runner, "_FIRST_TERM", [0.0])
    with pytest.raises(KeyboardInterrupt):
        runner._interrupt(signal.SIGTERM, None)
    assert runner._interrupt(signal.SIGTERM, None) is None  # the same request, delivered again
    time.sleep(StopRequest.REPEAT_S)
    with pytest.raises(KeyboardInterrupt):
        runner._interrupt(signal.SIGTERM, None)


def test_dry_run_prints_exactly_the_trials(tmp_path, image_folder, capsys):
    exp_path = experiment(tmp_path, image_folder,
                          product={"model.name": ["mobilenet_v1", "mobilenet_v2"], "model.alpha": [0.25, 1.0]},
                          trials=[{"data.eval_split": "train[75%:]"}])
    sweep = str(tmp_path / "sweep")
    capsys.readouterr()
    assert cli.main(["sweep", exp_path, "--workdir", sweep, "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    exp = load_experiment(exp_path)
    assert len(lines) == len(exp["trials"]) == 4
    for line, trial in zip(lines, exp["trials"]):
        argv = shlex.split(line)
        assert argv[:2] == ["mobilejax", "train"]
        assert argv[1:] == train_argv(exp, trial, sweep)
        assert argv[-1] == f"--workdir={os.path.join(sweep, trial['name'])}"
        config = load_config([a for a in argv[2:] if a.startswith("--config")])
        assert config.model.name == trial["overrides"]["model.name"]
        assert config.model.alpha == trial["overrides"]["model.alpha"]
        assert config.num_train_steps == 3 and config.data.image_size == 16
        assert not os.path.exists(os.path.join(sweep, trial["name"]))  # nothing ran
    # the manifest lets `mobilejax report` aggregate runs launched by any scheduler
    assert cli.main(["report", sweep]) == 0
    out = capsys.readouterr()
    assert out.out.count("not started") == 4 and "missing" in out.err


def test_report_of_what_is_not_a_directory_of_runs(tmp_path, capsys):
    """An empty folder, and one training run given instead of the folder holding runs: one line each saying which."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    for d, message in (("empty", "holds neither a sweep.json nor any training run"),
                       ("run", "is one training run; `mobilejax report` reads a directory of runs")):
        assert cli.main(["report", str(tmp_path / d)]) == 2
        err = capsys.readouterr().err
        assert err == f"mobilejax: error: {str(tmp_path / d)!r} {message}" + err.split(message)[1]
        assert err.count("\n") == 1
    assert os.listdir(tmp_path / "empty") == [] and os.listdir(tmp_path / "run") == ["config.json"]


def test_report_of_partial_sweep_without_training(tmp_path, image_folder):
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25, 0.5, 0.75]})
    sweep = str(tmp_path / "sweep")
    assert run_sweep(exp, sweep, dry_run=True) == 0
    names = [t["name"] for t in load_experiment(exp)["trials"]]
    # a finished trial, an unfinished one (metrics but no results), one not started
    os.makedirs(os.path.join(sweep, names[0]))
    json.dump({"params": 1000, "macs": 2_000_000, "best_accuracy": 0.5, "final_accuracy": 0.4, "epochs": 1.0,
               "wall_time_s": 3.0, "img_per_s": 10.0}, open(os.path.join(sweep, names[0], "results.json"), "w"))
    os.makedirs(os.path.join(sweep, names[1]))
    with open(os.path.join(sweep, names[1], "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "epoch": 0.5, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1,
                            "img_per_s": 5.0}) + "\n")
        f.write(json.dumps({"step": 2, "epoch": 1.0, "eval_accuracy": 0.25, "eval_loss": 2.0}) + "\n")
        f.write('{"step": 3, "epo')  # a line cut short by a kill
    # the third was stopped at once and its directory removed (to start it over): sweep.json still says
    # "interrupted", but nothing is left to resume, so it reads "not started"
    manifest = json.load(open(os.path.join(sweep, "sweep.json")))
    manifest["state"][names[2]] = {"status": "interrupted"}
    json.dump(manifest, open(os.path.join(sweep, "sweep.json"), "w"))
    report = write_report(sweep, echo=False)
    assert [r["status"] for r in report["rows"]] == ["done", "unfinished", "not started"]
    assert report["missing"] == names[1:]
    assert report["rows"][1]["best_accuracy"] == 0.25
    md = open(os.path.join(sweep, "report.md")).read()
    assert "Missing:" in md and f"`{names[2]}` (not started)" in md and "2.00M" in md
    assert os.path.exists(os.path.join(sweep, "accuracy_vs_macs.png"))
    assert os.path.exists(os.path.join(sweep, "learning_curves.png"))


def test_pareto_front():
    pts = [(1, 0.5, "a"), (2, 0.4, "b"), (3, 0.7, "c"), (4, 0.7, "d"), (5, 0.9, "e"), (0.5, 0.1, "f")]
    assert [p[2] for p in pareto_front(pts)] == ["f", "a", "c", "e"]


def test_misspelt_key_fails_before_anything_starts(tmp_path, image_folder, capsys):
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.35, 0.5]},
                     trials=[{"seed": 0}, {"optim.learnig_rate": 0.1}])
    sweep = str(tmp_path / "sweep")
    assert run_sweep(exp, sweep) == 2
    err = capsys.readouterr().err
    assert "optim.learnig_rate" in err and "learnig_rate-0.1__alpha-0.35" in err and "learning_rate" in err
    assert not os.path.exists(sweep)
    # an invalid knob value fails up front too (the model is built for every trial)
    exp = experiment(tmp_path, image_folder, name="exp2.py", trials=[{"seed": 0}, {"model.activation": "relu7"}])
    assert run_sweep(exp, sweep) == 2
    err = capsys.readouterr().err
    assert "activation-relu7" in err and "unknown activation 'relu7'" in err
    exp = experiment(tmp_path, image_folder, name="exp3.py", trials=[{"model.bottleneck_activation": "linear"}])
    assert run_sweep(exp, sweep) == 2
    assert "not an option of mobilenet_v1" in capsys.readouterr().err
    exp = experiment(tmp_path, image_folder, name="exp4.py", trials=[{"model.alpha": "wide"}])
    assert run_sweep(exp, sweep) == 2
    assert "alpha-wide" in capsys.readouterr().err
    assert not os.path.exists(sweep)


def test_experiment_file_errors(tmp_path, image_folder, capsys):
    sweep = str(tmp_path / "sweep")
    assert cli.main(["sweep", str(tmp_path / "nope.py"), "--workdir", sweep]) == 2
    assert f"experiment file '{tmp_path / 'nope.py'}' does not exist" in capsys.readouterr().err

    empty = experiment(tmp_path, image_folder, name="empty.py")
    assert run_sweep(empty, sweep) == 2
    assert "defines no trials" in capsys.readouterr().err
    empty2 = experiment(tmp_path, image_folder, name="empty2.py", product={"model.alpha": []})
    assert run_sweep(empty2, sweep) == 2
    assert "non-empty list" in capsys.readouterr().err

    dup = experiment(tmp_path, image_folder, name="dup.py", trials=[{"seed": 1}, {"model.alpha": 0.5}, {"seed": 1}])
    assert run_sweep(dup, sweep) == 2
    err = capsys.readouterr().err
    assert "would share the directory 'seed-1'" in err
    dup2 = experiment(tmp_path, image_folder, name="dup2.py",
                      trials=[{"data.dataset": "image_folder:a/b"}, {"data.dataset": "image_folder:a b"}])
    assert run_sweep(dup2, sweep) == 2
    assert "would share the directory" in capsys.readouterr().err
    assert not os.path.exists(sweep)

    bad_base = write_experiment(tmp_path / "badbase.py", {"base": "configs/nope.py", "trials": [{"seed": 1}]})
    assert run_sweep(bad_base, sweep) == 2
    assert "configs/nope.py" in capsys.readouterr().err


def test_sweep_dir_of_another_experiment_is_refused(tmp_path, image_folder, capsys):
    a = experiment(tmp_path, image_folder, name="a.py", product={"model.alpha": [0.35, 0.5]})
    b = experiment(tmp_path, image_folder, name="b.py", product={"model.alpha": [0.35, 0.5]})
    sweep = str(tmp_path / "sweep")
    assert run_sweep(a, sweep, dry_run=True) == 0
    assert run_sweep(a, sweep, dry_run=True) == 0  # the same experiment again is fine
    capsys.readouterr()
    assert run_sweep(b, sweep, dry_run=True) == 2
    err = capsys.readouterr().err
    assert "holds the experiment" in err and "a.py" in err and "b.py" in err
    # the same experiment file in another checkout (a fresh clone) continues the sweep
    os.makedirs(tmp_path / "clone")
    moved = str(tmp_path / "clone" / "a.py")
    with open(a) as src, open(moved, "w") as dst:
        dst.write(src.read())
    assert run_sweep(moved, sweep, dry_run=True) == 0
    assert json.load(open(os.path.join(sweep, "sweep.json")))["experiment_path"] == os.path.realpath(moved)
    # a directory of plain training runs without a sweep.json is not taken over either
    other = tmp_path / "runs"
    os.makedirs(other / "x")
    (other / "x" / "config.json").write_text("{}")
    assert run_sweep(a, str(other), dry_run=True) == 2
    assert "no sweep.json" in capsys.readouterr().err
    # a sweep directory another sweep is working in (its .lock held) is refused, and its sweep.json is left alone
    import socket

    from mobilejax.workdir import hold
    manifest = open(os.path.join(sweep, "sweep.json")).read()
    with hold(sweep):
        assert run_sweep(moved, sweep) == 2
        assert capsys.readouterr().err == (
            f"mobilejax: error: sweep directory {sweep!r} is in use by another `mobilejax sweep` (pid {os.getpid()} "
            f"on {socket.gethostname()}); wait for it to finish or stop it (it resumes later), or give another "
            "--workdir\n")
    assert open(os.path.join(sweep, "sweep.json")).read() == manifest


def test_base_relative_to_repo_root(tmp_path, image_folder, monkeypatch):
    """`base` is relative to the repository root, wherever the sweep is started from."""
    exp = experiment(tmp_path, image_folder, trials=[{"seed": 1}])
    monkeypatch.chdir(tmp_path)
    assert run_sweep(exp, "sw", dry_run=True) == 0
    manifest = json.load(open(tmp_path / "sw" / "sweep.json"))
    assert os.path.join(REPO, "configs", "quickstart.py") in manifest["trials"][0]["command"]


def test_shipped_experiments_validate(tmp_path, capsys):
    """The experiments/ files load, name their runs uniquely, declare comparisons of their own trials, and every
    trial validates (config keys and values, model built): a dry run prints one command per run, nothing trains."""
    exps = sorted(f for f in os.listdir(os.path.join(REPO, "experiments")) if f.endswith(".py") and f[0] != "_")
    assert len(exps) == 4
    for f in exps:
        path = os.path.join(REPO, "experiments", f)
        exp = load_experiment(path)
        assert exp["trials"] and exp["seeds"] and len(exp["seeds"]) >= 2 and exp["comparisons"]
        capsys.readouterr()
        assert run_sweep(path, str(tmp_path / f), dry_run=True) == 0, capsys.readouterr().err
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == len(exp["runs"]) == len(exp["trials"]) * len(exp["seeds"])
        assert not any(os.path.isdir(os.path.join(tmp_path, f, t["name"])) for t in exp["trials"])
        # the committed records still restore: a change to the base config or `fixed` that alters what a run resolves
        # to would strand them (experiments/README.md's `--restore` command)
        records = os.path.join(REPO, "experiments", f[:-3], "results", "runs.jsonl")
        assert run_sweep(path, str(tmp_path / f"{f}-restored"), dry_run=True, restore=[records]) == 0, \
            capsys.readouterr().err
        out, err = capsys.readouterr()
        assert not out.strip() and f"{len(exp['runs'])} finished run(s) left out" in err


@pytest.mark.heavy
def test_restore_continues_a_sweep_elsewhere_from_its_records(tmp_path, image_folder, capsys):
    # a sweep runs on one machine; its report's runs.jsonl (no checkpoints) continues it in another directory
    exp = experiment(tmp_path, image_folder, product={"data.random_flip": [True, False]}, seeds=[0, 1])
    first = str(tmp_path / "first")
    assert run_sweep(exp, first, max_trials=3, in_process=True) == 0
    report = write_report(first, echo=False)
    records = report["files"]["runs_jsonl"]
    lines = [json.loads(line) for line in open(records)]
    assert [r["run"] for r in lines] == [r["run"] for r in report["rows"] if r["status"] == "done"]
    assert len(lines) == 3 and all(set(r) == {"version", "experiment", "base", "fixed", "run", "trial", "seed",
                                              "overrides", "config", "results", "metrics"} for r in lines)

    # a dry run after the restore prints the one run still to do (for a scheduler) and says what it left out
    capsys.readouterr()
    assert run_sweep(exp, str(tmp_path / "dry"), dry_run=True, restore=[records]) == 0
    out, err = capsys.readouterr()
    assert "3 finished run(s) left out" in err
    (command,) = out.strip().splitlines()
    assert f"--workdir={tmp_path / 'dry'}/{report['rows'][3]['run']}" in command

    second = str(tmp_path / "second")
    assert run_sweep(exp, second, in_process=True, restore=[records]) == 0
    err = capsys.readouterr().err
    assert f"restored 3 finished run(s) from {records}" in err
    names = [r["run"] for r in report["rows"]]
    trained = [n for n in names if os.path.exists(os.path.join(second, n, "train.log"))]
    assert trained == names[3:]  # only the run the first machine had not finished
    again = write_report(second, echo=False)
    assert [r["status"] for r in again["rows"]] == ["done"] * 4
    for old, new in zip(report["rows"][:3], again["rows"][:3]):
        keys = ("best_accuracy", "params", "macs", "wall_time_s")
        assert [new[k] for k in keys] == [old[k] for k in keys]
    assert [t["n"] for t in again["trials"]] == [2, 2]
    # restoring into a directory that already has the runs changes nothing
    assert run_sweep(exp, second, in_process=True, restore=[records]) == 0
    assert "restored 0 finished run(s)" in capsys.readouterr().err


@pytest.mark.heavy
def test_restore_refuses_records_of_other_settings(tmp_path, image_folder, capsys):
    # the base config is a file of its own here, so that it can change after the records were written
    base = tmp_path / "base.py"
    base.write_text("from mobilejax.config import get_config as default_config, model_config\n\n\n"
                    "def get_config(arg=None):\n    config = default_config()\n"
                    "    config.model = model_config('mobilenet_v1', small_input=True)\n"
                    "    config.data.train_augment, config.data.eval_resize = 'pad_crop', 'resize'\n"
                    "    config.optim.label_smoothing = 0.0\n    return config\n")
    exp = experiment(tmp_path, image_folder, base=str(base), trials=[{"model.alpha": 0.25}], seeds=[0])
    assert run_sweep(exp, str(tmp_path / "first"), in_process=True) == 0
    records = write_report(str(tmp_path / "first"), echo=False)["files"]["runs_jsonl"]
    run = load_experiment(exp)["runs"][0]["name"]
    # the experiment file changed: another number of steps
    changed = experiment(tmp_path, image_folder, name="changed.py", base=str(base), trials=[{"model.alpha": 0.25}],
                         seeds=[0], fixed={**fixed(image_folder), "num_train_steps": 4})
    capsys.readouterr()
    assert run_sweep(changed, str(tmp_path / "second"), in_process=True, restore=[records]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was trained with other settings" in err[0] and "config num_train_steps=3 vs 4" in err[0]
    assert not os.path.exists(tmp_path / "second" / run / "results.json")
    # the same experiment file, but its base config file changed since: the resolved configs differ
    base.write_text(base.read_text().replace("label_smoothing = 0.0", "label_smoothing = 0.2"))
    capsys.readouterr()
    assert run_sweep(exp, str(tmp_path / "b2"), in_process=True, restore=[records]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config optim.label_smoothing=0.0 vs 0.2" in err[0], err
    assert not os.path.exists(tmp_path / "b2" / run / "results.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"run": "seed-0"}\n')
    for path, says in ((str(bad), "line 1 is not a run record"), (str(tmp_path / "none.jsonl"), "no such file")):
        assert cli.main(["sweep", exp, "--workdir", str(tmp_path / "third"), "--restore", path]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
