"""Run logs: scalars to `WORKDIR/metrics.jsonl` (one JSON object per line, easy to aggregate) and to TensorBoard
event files in `WORKDIR/tensorboard`; learning-curve plots (PNG, matplotlib)."""
from __future__ import annotations

import json
import math
import os
import shutil
import time

from mobilejax.workdir import METRICS_FILE


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short by a kill: ignore it
                    continue
    return rows


class MetricWriter:
    """Appends scalars to metrics.jsonl and TensorBoard. A run (re)starting at `start_step` first drops what was
    logged after it (a resumed run logs those steps again): metrics.jsonl is rewritten with the earlier lines and
    the TensorBoard event files are rebuilt from them, so no step ever appears twice."""

    def __init__(self, workdir: str, start_step: int = 0, tensorboard: bool = True):
        self.workdir = workdir
        self.path = os.path.join(workdir, METRICS_FILE)
        rows = [r for r in read_metrics(workdir) if r.get("step", 0) <= start_step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)
        self._tb = None
        if tensorboard:
            tb_dir = os.path.join(workdir, "tensorboard")
            shutil.rmtree(tb_dir, ignore_errors=True)
            self._tb = _EventFile(tb_dir)
            for r in rows:
                self._write_tb(r["step"], {k: v for k, v in r.items() if k != "step" and isinstance(v, (int, float))})

    def write(self, step: int, scalars: dict) -> None:
        row = {"step": int(step)}
        for k, v in scalars.items():
            v = float(v)
            row[k] = v if math.isfinite(v) else str(v)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_tb(step, scalars)

    def _write_tb(self, step: int, scalars: dict) -> None:
        if self._tb is None:
            return
        self._tb.scalars(step, scalars)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class _EventFile:
    """A TensorBoard event file of scalars, written with tensorboard's record framing and protos only: no
    TensorFlow import (tf.summary, and tensorboard's own EventFileWriter, import TensorFlow where it is installed:
    ~10 CPU s per process, which a run on the in-memory pipeline would pay for nothing)."""

    def __init__(self, logdir: str):
        import socket

        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        self._records = RecordWriter(open(os.path.join(logdir, name), "wb"))
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def scalars(self, step: int, scalars: dict) -> None:
        values = [self._summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self._write(self._event(step=int(step), wall_time=time.time(), summary=self._summary(value=values)))

    def close(self) -> None:
        self._records.close()


def figure(figsize: tuple[float, float]):
    """A matplotlib figure of its own, outside pyplot: drawing and saving it neither switches the calling process's
    backend (a notebook's inline one) nor adds to pyplot's list of open figures."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize)


def plot_learning_curves(runs: dict[str, list[dict]], path: str, title: str = "") -> str:
    """One figure: training loss (left) and validation accuracy (right) against epoch, one line per run."""
    fig = figure(figsize=(12, 4.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for label, rows in runs.items():
        tr = [(r["epoch"], r["train_loss"]) for r in rows if "train_loss" in r and "epoch" in r]
        ev = [(r["epoch"], r["eval_accuracy"]) for r in rows if "eval_accuracy" in r and "epoch" in r]
        if tr:
            ax_loss.plot(*zip(*tr), label=label, lw=1.2)
        if ev:
            ax_acc.plot(*zip(*ev), marker="o", ms=3, label=label, lw=1.2)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if len(runs) > 1 or any(runs):
        ax_acc.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
