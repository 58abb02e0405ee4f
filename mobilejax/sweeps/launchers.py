"""Where a sweep's runs execute on a cluster: one SLURM array job per sweep through submitit, one array task per
run, each task a plain `mobilejax train` of that run (the `local` launcher is runner.py's own subprocesses).

    mobilejax sweep experiments/width_multiplier.py --workdir /shared/sweeps/width --launcher slurm \
        --partition gpu --gpus-per-trial 1 --cpus-per-trial 8 --time 240 [--nodes 1] [--max-parallel 16] [--dry-run]

A rerun of the same command submits only the runs without results.json (unfinished ones resume from their
checkpoints); `mobilejax report DIR` works as for local sweeps. submitit's logs go to DIR/slurm/<job id>_<task>.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys

from mobilejax.errors import UsageError
from mobilejax.sweeps.experiment import command_line, train_argv

LAUNCHERS = ("local", "slurm")


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """Resources of one array task (one run)."""
    partition: str | None = None
    gpus_per_trial: int = 0
    cpus_per_trial: int | None = None
    time_min: int = 60
    nodes: int = 1
    mem_gb: float | None = None
    max_parallel: int = 256
    account: str | None = None

    def validate(self) -> None:
        for name in ("gpus_per_trial", "time_min", "nodes", "max_parallel", "cpus_per_trial"):
            v = getattr(self, name)
            low = 0 if name == "gpus_per_trial" else 1
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                flag = "--" + name.replace("_min", "").replace("_", "-")
                raise UsageError(f"{flag}={v!r} must be an integer >= {low}")

    def executor_parameters(self, name: str) -> dict:
        """submitit.AutoExecutor.update_parameters(...) for one task per node, one run per array task."""
        p = {"name": name, "timeout_min": self.time_min, "nodes": self.nodes, "tasks_per_node": 1,
             "gpus_per_node": self.gpus_per_trial, "slurm_array_parallelism": self.max_parallel}
        if self.cpus_per_trial:
            p["cpus_per_task"] = self.cpus_per_trial
        if self.mem_gb:
            p["mem_gb"] = self.mem_gb
        if self.partition:
            p["slurm_partition"] = self.partition
        if self.account:
            p["slurm_account"] = self.account
        return p


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UsageError("the slurm launcher needs submitit: pip install 'mobilejax[slurm]' (or pip install "
                         "submitit)") from None
    return submitit


def run_command(argv: list[str]) -> int:
    """What each array task executes: `mobilejax train` for one run (a subprocess, so that the CLI's own process
    set-up — malloc tuning, signals — applies as on a workstation)."""
    proc = subprocess.run([sys.executable, "-m", "mobilejax.cli", *argv], check=False)
    if proc.returncode:
        raise RuntimeError(f"{command_line(argv)} exited with status {proc.returncode}")
    return proc.returncode


def sbatch_script(exp: dict, runs: list[dict], sweep_dir: str, options: SlurmOptions) -> str:
    """The sbatch script submitit submits for these runs (one array task per run), followed by each task's command."""
    from submitit.slurm.slurm import _make_sbatch_string  # the script submitit writes; shown for --dry-run

    _submitit()
    folder = os.path.join(os.path.abspath(sweep_dir), "slurm", "%j")
    script = _make_sbatch_string(
        command=f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(folder)}", folder=folder,
        job_name=f"mobilejax-{exp['name']}", partition=options.partition, time=options.time_min,
        nodes=options.nodes, ntasks_per_node=1, cpus_per_task=options.cpus_per_trial,
        gpus_per_node=options.gpus_per_trial or None, mem=f"{options.mem_gb}GB" if options.mem_gb else None,
        account=options.account, array_parallelism=options.max_parallel, map_count=len(runs))
    tasks = [f"# array task {i}: {command_line(train_argv(exp, r, sweep_dir))}" for i, r in enumerate(runs)]
    return script.rstrip() + "\n\n" + "\n".join(tasks) + "\n"


def submit_slurm(exp: dict, runs: list[dict], sweep_dir: str, options: SlurmOptions, cluster: str | None = None):
    """Submit one array job for `runs`; returns submitit's jobs (one per run). `cluster="local"` runs the same jobs
    as local processes (submitit's local executor), which is how the tests exercise this path."""
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=os.path.join(sweep_dir, "slurm", "%j"), cluster=cluster)
    executor.update_parameters(**options.executor_parameters(f"mobilejax-{exp['name']}"))
    return executor.map_array(run_command, [train_argv(exp, r, sweep_dir) for r in runs])
