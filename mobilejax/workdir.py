"""A run's directory: the names of its files, atomic JSON, and the checks that keep runs from being mixed.

    WORKDIR/config.json      the config the run was started with (resumes must match it, see `check_resume`)
    WORKDIR/run.json         model identity, classes, image size, and any changes accepted on resume
    WORKDIR/results.json     final/best accuracy, params, MACs, wall time, steps, images/s
    WORKDIR/metrics.jsonl    one JSON object per log line (mobilejax.metrics)
    WORKDIR/tensorboard/, checkpoints/ (latest), best/ (best validation accuracy), learning_curves.png
    WORKDIR/.lock            held by the `mobilejax train` writing the run (see `hold`)
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import threading
from typing import Any, Iterator

import ml_collections

from mobilejax import config as config_lib
from mobilejax.errors import UsageError, WorkdirConflictError

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "learning_curves.png"
RUN_DIRS = ("checkpoints", "best", "tensorboard")
LOCK_FILE = ".lock"

# Config keys a resumed run may change freely: they change how a run is watched, not what it computes.
HARMLESS_CHANGES = ("eval_every_epochs", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints", "progress",
                    "overwrite", "allow_changes", "eval_batch_size", "data.num_parallel_calls", "data.cache",
                    "data.data_dir", "model.depthwise_impl")


def write_json(path: str, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename): a reader never sees half a file, even after a kill."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_json(path: str, default: Any = None) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def model_identity(config) -> dict:
    return {k: v for k, v in config.model.to_dict().items() if v is not None and k != "depthwise_impl"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def config_changes(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every run-changing difference between two configs (as dicts)."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in HARMLESS_CHANGES and a.get(k) != b.get(k)]


def prepare(workdir: str) -> None:
    """Create the workdir and prove it writable, or fail with one line (read-only, full, not a directory, ...)."""
    probe = os.path.join(workdir, f".write_test.{os.getpid()}")
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(probe, "w") as f:
            f.write("ok\n")
            f.flush()
            os.fsync(f.fileno())
        os.remove(probe)
    except OSError as e:
        raise UsageError(f"workdir {workdir!r} cannot be written: {describe_os_error(e)}") from None


@contextlib.contextmanager
def hold(workdir: str, what: str = "workdir", command: str = "mobilejax train") -> Iterator[None]:
    """Hold the directory while this process works in it: an exclusive `flock` on DIR/.lock, which the system
    releases when the process ends however it ends (kill -9 included). A second `mobilejax train` on the same workdir
    (the same command started again in another terminal while the first still runs) stops at once with one line
    naming the holder, instead of both resuming from one checkpoint and writing the same steps; a sweep directory
    likewise (`what`, `command`). Where the file system has no locks (some network file systems) or the platform no
    `fcntl`, the work goes on unlocked."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644) if fcntl is not None else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with open(path) as f:
                    holder = f.read().strip() or "starting"
                raise UsageError(f"{what} {workdir!r} is in use by another `{command}` ({holder}); wait for it to "
                                 "finish or stop it (it resumes later), or give another --workdir") from None
            except OSError:  # no locks on this file system
                pass
            else:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def describe_os_error(e: OSError) -> str:
    reasons = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
               errno.EDQUOT: "disk quota exceeded", errno.ENOTDIR: "a part of the path is not a directory"}
    reason = reasons.get(e.errno, e.strerror or str(e))
    return f"{e.filename}: {reason}" if e.filename else reason


def check_resume(config, workdir: str, class_names: list[str], train_examples: int | None = None) -> dict | None:
    """Refuse to mix runs; returns the run-changing differences to record when the user allowed them.

    A workdir holding another model's run (another architecture, or another number of classes in the data) is only
    replaced with config.overwrite=True (which deletes that run). A run resumed with settings that change what it
    computes (learning rate, schedule, batch size, resolution, epochs, data, the classes' names, the number of
    training examples: an image folder that gained or lost images since) is refused with the list of differences unless
    config.allow_changes=True."""
    run = read_json(os.path.join(workdir, RUN_FILE))
    if run is None:
        return None
    previous, current = run.get("model", {}), model_identity(config)
    trained = run.get("class_names", class_names)
    if previous != current or len(trained) != len(class_names):
        if not config.overwrite:
            what = (f"a different model ({previous}) than this config ({current})" if previous != current else
                    f"a model of {len(trained)} classes and {config.data.dataset!r} has {len(class_names)} "
                    f"({class_difference(class_names, trained)})")
            raise WorkdirConflictError(
                f"workdir {workdir!r} holds a run of {what}; use another --workdir, or pass --config.overwrite=True "
                "to delete that run and start over")
        clear(workdir)
        return None
    saved = read_json(os.path.join(workdir, CONFIG_FILE))
    # read back on top of today's defaults, so a field added since the run started is not taken for a change
    changes = config_changes(config_lib.from_dict(saved).to_dict(), config.to_dict()) if saved is not None else []
    relabelled = class_difference(class_names, trained)
    if relabelled:
        changes.append(f"classes of {config.data.dataset!r}: {relabelled}")
    if train_examples is not None and run.get("train_examples", train_examples) != train_examples:
        changes.append(f"training examples of {config.data.dataset!r} {config.data.train_split!r}: "
                       f"{run['train_examples']} -> {train_examples}")
    if changes and not config.allow_changes:
        raise WorkdirConflictError(
            f"workdir {workdir!r} holds a run started with other settings: {'; '.join(changes)}. Resuming would "
            "mix them; use another --workdir, rerun with the original settings, or pass --config.allow_changes=True "
            "to resume with the new ones (recorded in run.json)")
    return {"changes": changes} if changes else None


def class_difference(names: list[str], trained: list[str]) -> str | None:
    """None when the data's class `names` are a run's `trained` ones (the same names in the same order: label i means
    the same class); else what differs, in words. An image folder with a class added, removed or renamed since the
    run started gives other labels: resuming or evaluating on it would score them against the wrong classes. Names
    that are the label indices ("0", "1", ...: a converted model without a class-name file, a dataset without names)
    say nothing of the classes: then only the counts are compared."""
    names, trained = list(names), list(trained)
    unnamed = [str(i) for i in range(len(names))] in (names, trained) and len(names) == len(trained)
    if names == trained or unnamed:
        return None
    if len(names) != len(trained):
        what = [f"{len(names)} classes here, {len(trained)} in the run"]
    else:
        i = next(i for i, (a, b) in enumerate(zip(names, trained)) if a != b)
        what = [f"label {i} is {names[i]!r} here and {trained[i]!r} in the run"]

    def listed(values):
        return ", ".join(map(repr, values[:5])) + (" ..." if len(values) > 5 else "")
    new, gone = [n for n in names if n not in trained], [n for n in trained if n not in names]
    what += ([f"not in the run: {listed(new)}"] if new else []) + ([f"missing here: {listed(gone)}"] if gone else [])
    return "; ".join(what if new or gone else what + ["the same names in another order"])


def clear(workdir: str) -> None:
    """Delete a run's files (config.overwrite=True)."""
    for name in RUN_DIRS:
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    for name in (RUN_FILE, CONFIG_FILE, RESULTS_FILE, METRICS_FILE, CURVES_FILE):
        if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))


def record_run(workdir: str, config, *, class_names: list[str], image_size: int, step: int,
               accepted: dict | None, train_examples: int | None = None) -> None:
    """Write config.json (the settings the run started with, kept on resume) and run.json."""
    run = read_json(os.path.join(workdir, RUN_FILE)) or {}
    if not os.path.exists(os.path.join(workdir, CONFIG_FILE)) or not run:
        write_json(os.path.join(workdir, CONFIG_FILE), config.to_dict())
    history = run.get("accepted_changes", [])
    if accepted:
        history.append({"step": step, **accepted})
        write_json(os.path.join(workdir, CONFIG_FILE), config.to_dict())
    write_json(os.path.join(workdir, RUN_FILE), {
        "model": model_identity(config), "class_names": class_names, "num_classes": len(class_names),
        "image_size": image_size, **({"train_examples": train_examples} if train_examples is not None else {}),
        **({"accepted_changes": history} if history else {})})


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config a workdir's run was trained with."""
    values = read_json(os.path.join(workdir, CONFIG_FILE))
    if values is None:
        raise UsageError(f"{workdir!r} holds no training run (no readable {CONFIG_FILE}); train one with "
                         f"`mobilejax train --config ... --workdir {workdir}`")
    return config_lib.from_dict(values)


def load_run(workdir: str) -> dict:
    run = read_json(os.path.join(workdir, RUN_FILE))
    if run is None:
        raise UsageError(f"{workdir!r} holds no training run (no readable {RUN_FILE})")
    return run
