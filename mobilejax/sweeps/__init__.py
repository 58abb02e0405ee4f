"""Ablation sweeps: experiment files (`experiment.py`), running them (`runner.py`) and their reports (`report.py`)."""
from mobilejax.sweeps.experiment import SweepError, load_experiment, train_argv, trial_name
from mobilejax.sweeps.report import write_report
from mobilejax.sweeps.runner import run_sweep

__all__ = ["SweepError", "load_experiment", "run_sweep", "train_argv", "trial_name", "write_report"]
