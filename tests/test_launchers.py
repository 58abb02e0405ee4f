"""The slurm launcher without a cluster: the sbatch script of a sweep (array size, resources, command), and the
same submitit code path run end to end by submitit's local executor on a 2-trial sweep."""
import json
import os
import sys

import pytest

pytest.importorskip("submitit")

from mobilejax import cli  # noqa: E402
from mobilejax.sweeps import run_sweep, write_report  # noqa: E402
from mobilejax.sweeps.launchers import SlurmOptions  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sweep import experiment, image_folder  # noqa: E402,F401  (fixture)


def test_slurm_dry_run_shows_the_sbatch_script(tmp_path, image_folder, capsys):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25, 0.5]}, seeds=(0, 1, 2))
    sweep = str(tmp_path / "sweep")
    capsys.readouterr()
    assert cli.main(["sweep", exp, "--workdir", sweep, "--dry-run", "--launcher", "slurm", "--partition", "gpu",
                     "--gpus-per-trial", "2", "--cpus-per-trial", "8", "--time", "90", "--nodes", "2",
                     "--max-parallel", "4"]) == 0
    script = capsys.readouterr().out
    lines = script.splitlines()
    assert "#SBATCH --array=0-5%4" in lines  # 2 trials x 3 seeds, at most 4 at once
    for expected in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=8",
                     "#SBATCH --time=90", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1"):
        assert expected in lines, expected
    assert any("submitit.core._submit" in line for line in lines)
    tasks = [line for line in lines if line.startswith("# array task ")]
    assert len(tasks) == 6 and tasks[5].endswith(f"--config.seed=2 --workdir={sweep}/alpha-0.5/seed-2")
    assert not os.path.exists(os.path.join(sweep, "slurm"))  # nothing submitted


def test_slurm_launcher_bad_options(tmp_path, image_folder, capsys):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"model.alpha": [0.25]})
    assert cli.main(["sweep", exp, "--workdir", str(tmp_path / "s"), "--launcher", "pbs"]) == 2
    assert "unknown launcher 'pbs'; allowed: local, slurm" in capsys.readouterr().err
    assert cli.main(["sweep", exp, "--workdir", str(tmp_path / "s"), "--launcher", "slurm", "--time", "0",
                     "--dry-run"]) == 2
    assert "--time=0 must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.heavy(100)
def test_submitit_local_executor_runs_a_sweep(tmp_path, image_folder):  # noqa: F811
    exp = experiment(tmp_path, image_folder, product={"data.random_flip": [True, False]})
    sweep = str(tmp_path / "sweep")
    assert run_sweep(exp, sweep, launcher="slurm", slurm=SlurmOptions(time_min=10), cluster="local", wait=True,
                     report=False) == 0
    state = json.load(open(os.path.join(sweep, "sweep.json")))["state"]
    assert {s["status"] for s in state.values()} == {"done"} and all(s["job_id"] for s in state.values())
    report = write_report(sweep, echo=False)
    assert [t["status"] for t in report["trials"]] == ["done", "done"]
    # a rerun submits nothing: every run has its results
    assert run_sweep(exp, sweep, launcher="slurm", cluster="local", wait=True, report=False) == 0
    assert json.load(open(os.path.join(sweep, "sweep.json")))["state"] == state
