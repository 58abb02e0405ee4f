"""Ablation sweeps: an experiment file declares trials; `mobilejax sweep` validates, runs, resumes and reports them.

An experiment file (`experiments/*.py`) has a `get_config()` returning a dict (or ConfigDict):

    def get_config():
        return {
            "base": "configs/cifar10.py:folder=../shared/data/cifar10",  # config file[:args], relative to the repo root
            "fixed": {"num_epochs": 3, "data.train_split": "train[:20%]"},  # applied to every trial (optional)
            "product": {"model.name": ["mobilenet_v1", "mobilenet_v2"],     # cartesian product ...
                        "model.alpha": [0.25, 0.5, 0.75, 1.0]},
            "trials": [{"model.separable": False}],                         # ... and/or an explicit list
        }

With both `product` and `trials`, every listed trial is combined with every point of the product. Keys are dotted
config paths (nested dicts are flattened). Each trial is the plain command

    mobilejax train --config BASE --config.k=v ... --workdir SWEEPDIR/<trial>

(`--dry-run` prints exactly these, one per line, for any scheduler); the trial's directory name is made of its own
overrides (`model-mobilenet_v1__alpha-0.25`). `SWEEPDIR/sweep.json` records the experiment and its trials and the
state of each trial; `SWEEPDIR/<trial>/status.json` and `train.log` that of one trial. A rerun skips finished trials
(results.json present) and resumes the others from their checkpoints. Run from the repository root: relative paths in
the configs (e.g. image folders) are relative to the working directory.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import importlib.util
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

SWEEP_FILE = "sweep.json"
STATUS_FILE = "status.json"
LOG_FILE = "train.log"
RESULTS_FILE = "results.json"
MAX_NAME = 100

# Short names of common keys in trial directory names.
SHORT_KEYS = {"model.name": "model", "data.image_size": "res", "num_epochs": "epochs", "batch_size": "batch",
              "optim.learning_rate": "lr", "num_train_steps": "steps", "data.dataset": "data"}


class SweepError(ValueError):
    """A sweep that cannot start: bad experiment file, invalid trial, conflicting sweep directory."""


# ---------------------------------------------------------------------------------------------------------------------
# Experiment files


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flatten(d: Any, prefix: str = "", where: str = "") -> dict:
    """{"model": {"alpha": x}} or {"model.alpha": x} -> {"model.alpha": x}."""
    if hasattr(d, "to_dict"):
        d = d.to_dict()
    if not isinstance(d, dict):
        raise SweepError(f"{where} must be a dict of dotted config keys, got {type(d).__name__}")
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if hasattr(v, "to_dict"):
            v = v.to_dict()
        if isinstance(v, dict):
            out.update(_flatten(v, key + ".", where))
        else:
            out[key] = v
    return out


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location(f"mobilejax_experiment_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_experiment(path: str) -> dict:
    """Read an experiment file: {"path", "name", "base", "fixed", "trials": [{"name", "overrides"}]}."""
    if not os.path.isfile(path):
        raise SweepError(f"experiment file {path!r} does not exist")
    try:
        module = _load_module(path)
    except Exception as e:
        raise SweepError(f"could not load experiment file {path!r}: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise SweepError(f"experiment file {path!r} has no get_config()")
    exp = module.get_config()
    if hasattr(exp, "to_dict"):
        exp = exp.to_dict()
    if not isinstance(exp, dict):
        raise SweepError(f"{path}: get_config() must return a dict or ConfigDict, got {type(exp).__name__}")
    unknown = sorted(set(exp) - {"base", "fixed", "product", "trials", "description"})
    if unknown:
        raise SweepError(f"{path}: unknown experiment field(s) {', '.join(unknown)}; "
                         "allowed: base, fixed, product, trials, description")
    base = exp.get("base")
    if not base or not isinstance(base, str):
        raise SweepError(f"{path}: 'base' (a config path such as 'configs/cifar10.py:res=32') is required")
    fixed = _flatten(exp.get("fixed") or {}, where=f"{path}: 'fixed'")
    product = _flatten(exp.get("product") or {}, where=f"{path}: 'product'")
    for k, values in product.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise SweepError(f"{path}: product[{k!r}] must be a non-empty list of values, got {values!r}")
    listed = exp.get("trials") or []
    if not isinstance(listed, (list, tuple)):
        raise SweepError(f"{path}: 'trials' must be a list of {{dotted key: value}} dicts")
    listed = [_flatten(t, where=f"{path}: trials[{i}]") for i, t in enumerate(listed)]
    if not product and not listed:
        raise SweepError(f"experiment {path!r} defines no trials: give 'product' ({{key: [values]}}) and/or "
                         "'trials' ([{key: value}, ...])")
    points = [dict(zip(product, combo)) for combo in itertools.product(*product.values())] if product else [{}]
    combos = [{**t, **p} for t in (listed or [{}]) for p in points]
    trials = [{"name": trial_name(o), "overrides": o} for o in combos]
    seen: dict[str, int] = {}
    for i, t in enumerate(trials):
        if t["name"] in seen:
            j = seen[t["name"]]
            raise SweepError(f"{path}: trials {j} ({trials[j]['overrides']}) and {i} ({t['overrides']}) would share "
                             f"the directory {t['name']!r}; make their overrides differ")
        seen[t["name"]] = i
    return {"path": path, "name": os.path.splitext(os.path.basename(path))[0], "base": base, "fixed": fixed,
            "trials": trials, "description": exp.get("description", "")}


def _fmt_value(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return f"{v:.1f}"
    if isinstance(v, (list, tuple)):
        return "x".join(_fmt_value(x) for x in v)
    return str(v)


def trial_name(overrides: dict) -> str:
    """A short, readable, filesystem-safe directory name from a trial's overrides."""
    if not overrides:
        return "base"
    lasts = [k.split(".")[-1] for k in overrides]
    parts = []
    for k, v in overrides.items():
        short = SHORT_KEYS.get(k) or (k.split(".")[-1] if lasts.count(k.split(".")[-1]) == 1 else k)
        parts.append(f"{short}-{_fmt_value(v)}")
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", "__".join(parts)).strip("._") or "trial"
    if len(name) > MAX_NAME:
        import hashlib
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name = name[:MAX_NAME - 9] + "-" + digest
    return name


# ---------------------------------------------------------------------------------------------------------------------
# Commands and validation


def flag_value(v) -> str:
    """A value as ml-collections' `--config.k=v` flag parser reads it back."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return "None"
    if isinstance(v, (list, tuple)):
        return "(" + ",".join(flag_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def resolve_base(base: str) -> str:
    """The base config's path as used in commands: as given if it exists from here, else relative to the repo root."""
    path, sep, arg = base.partition(":")
    if not os.path.isabs(path) and not os.path.exists(path):
        candidate = os.path.join(repo_root(), path)
        if os.path.exists(candidate):
            rel = os.path.relpath(candidate)
            path = candidate if rel.startswith("..") else rel
    if not os.path.exists(path):
        raise SweepError(f"base config {path!r} does not exist (paths are relative to the repository root)")
    return path + sep + arg


def config_args(exp: dict, trial: dict) -> list[str]:
    args = [f"--config={resolve_base(exp['base'])}"]
    for k, v in {**exp["fixed"], **trial["overrides"]}.items():
        args.append(f"--config.{k}={flag_value(v)}")
    return args


def train_argv(exp: dict, trial: dict, sweep_dir: str) -> list[str]:
    return ["train", *config_args(exp, trial), f"--workdir={os.path.join(sweep_dir, trial['name'])}"]


def command_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in ["mobilejax", *argv])


def _check_keys(config, keys, where: str) -> None:
    from mobilejax.config import resolve_path
    for key in keys:
        try:
            resolve_path(config, key, what="unknown config key")
        except KeyError as e:
            raise SweepError(f"{where}: {e.args[0]}") from None


def validate_trial(exp: dict, trial: dict):
    """Load the trial's config exactly as its command would and build its model; SweepError naming trial and key."""
    import jax
    import jax.numpy as jnp

    from mobilejax.cli import UsageError, load_config
    from mobilejax.train import build_model, validate_config

    where = f"trial {trial['name']!r}"
    try:
        base_config = load_config([f"--config={resolve_base(exp['base'])}"])
    except (UsageError, ValueError, KeyError) as e:
        raise SweepError(f"base config {exp['base']!r}: {e}") from None
    _check_keys(base_config, exp["fixed"], "experiment 'fixed'")
    _check_keys(base_config, trial["overrides"], where)
    try:
        config = load_config(config_args(exp, trial))
        validate_config(config)
        num_classes = config.model.num_classes or 10
        model = build_model(config, num_classes)
        size = int(config.data.image_size)
        jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)},
                                          jnp.zeros((1, size, size, 3)), train=False))
    except SweepError:
        raise
    except Exception as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        raise SweepError(f"{where} ({trial['overrides']}): invalid config: {msg}") from None
    return config


# ---------------------------------------------------------------------------------------------------------------------
# Sweep state


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def _init_sweep_dir(exp: dict, sweep_dir: str) -> dict:
    """Create or check `sweep.json`; a directory of another experiment is refused."""
    path = os.path.join(sweep_dir, SWEEP_FILE)
    real = os.path.realpath(exp["path"])
    old = read_json(path)
    if old is None and os.path.exists(path):
        raise SweepError(f"{path} is not readable JSON; remove it or use another --workdir")
    if old is not None and old.get("experiment_path") != real:
        raise SweepError(f"sweep directory {sweep_dir!r} holds the experiment {old.get('experiment')!r} "
                         f"({old.get('experiment_path')}), not {exp['path']!r}; use another --workdir")
    if old is None and os.path.isdir(sweep_dir) and any(
            os.path.exists(os.path.join(sweep_dir, d, "config.json")) for d in os.listdir(sweep_dir)):
        raise SweepError(f"{sweep_dir!r} already holds training runs but no {SWEEP_FILE}; use another --workdir")
    os.makedirs(sweep_dir, exist_ok=True)
    state = (old or {}).get("state", {})
    manifest = {
        "experiment": exp["path"], "experiment_path": real, "name": exp["name"], "description": exp["description"],
        "base": exp["base"], "fixed": exp["fixed"],
        "trials": [{"name": t["name"], "overrides": t["overrides"],
                    "command": command_line(train_argv(exp, t, sweep_dir))} for t in exp["trials"]],
        "created": (old or {}).get("created", _now()), "updated": _now(),
        "state": {t["name"]: state.get(t["name"], {"status": "pending"}) for t in exp["trials"]},
    }
    _write_json(path, manifest)
    return manifest


class _State:
    """sweep.json's per-trial state, updated from the runner threads."""

    def __init__(self, sweep_dir: str, manifest: dict):
        self.path = os.path.join(sweep_dir, SWEEP_FILE)
        self.manifest = manifest
        self.lock = threading.Lock()

    def set(self, name: str, **fields) -> None:
        with self.lock:
            self.manifest["state"][name] = {**self.manifest["state"].get(name, {}), **fields}
            self.manifest["updated"] = _now()
            _write_json(self.path, self.manifest)


def log_tail(path: str, lines: int = 25) -> str:
    """The end of a log, with progress-bar redraws (carriage returns) dropped."""
    try:
        with open(path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200_000))
            text = f.read()
    except FileNotFoundError:
        return ""
    out = [l.rsplit("\r", 1)[-1].rstrip() for l in text.split("\n")]
    return "\n".join([l for l in out if l.strip()][-lines:])


# ---------------------------------------------------------------------------------------------------------------------
# Running trials


def _cpu_sets(parallel: int) -> list[list[int]]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if parallel <= 1:
        return [cpus]
    if parallel >= len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(parallel)]
    per, extra = divmod(len(cpus), parallel)
    sets, start = [], 0
    for i in range(parallel):
        n = per + (1 if i < extra else 0)
        sets.append(cpus[start:start + n])
        start += n
    return sets


_LIVE: set = set()  # running trial subprocesses, terminated when the sweep is interrupted
_LIVE_LOCK = threading.Lock()


def _terminate_all() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _run_subprocess(argv: list[str], trial_dir: str, cpus: list[int] | None) -> int:
    env = dict(os.environ)
    if cpus is not None:
        n = str(len(cpus))
        env.update({"OMP_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": "1",
                    "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n})
        flags = env.get("XLA_FLAGS", "")
        if len(cpus) == 1 and "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    with open(os.path.join(trial_dir, LOG_FILE), "a") as log:
        log.write(f"\n=== {_now()} {command_line(argv)}" + (f" (cpus {cpus})" if cpus else "") + "\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "mobilejax.cli", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, cpus)
        try:
            return proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)


def _run_in_process(argv: list[str], trial_dir: str, cpus) -> int:
    """Run `mobilejax train` in this process (saves the JAX import per trial; used by tests)."""
    from mobilejax.cli import main
    with open(os.path.join(trial_dir, LOG_FILE), "a") as log:
        log.write(f"\n=== {_now()} {command_line(argv)} (in process)\n")
        log.flush()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                return main(argv)
            except Exception:
                traceback.print_exc()
                return 1


def run_trial(exp: dict, trial: dict, sweep_dir: str, state: _State, cpus=None, in_process: bool = False) -> str:
    name = trial["name"]
    trial_dir = os.path.join(sweep_dir, name)
    os.makedirs(trial_dir, exist_ok=True)
    argv = train_argv(exp, trial, sweep_dir)
    resumed = os.path.isdir(os.path.join(trial_dir, "checkpoints"))
    info = {"name": name, "overrides": trial["overrides"], "command": command_line(argv), "status": "running",
            "started": _now(), "resumed": resumed}
    _write_json(os.path.join(trial_dir, STATUS_FILE), info)
    state.set(name, status="running", started=info["started"], resumed=resumed)
    print(f"[sweep] {name}: {'resuming' if resumed else 'starting'}" + (f" on cpus {cpus}" if cpus else ""),
          file=sys.stderr, flush=True)
    t0 = time.time()
    try:
        rc = (_run_in_process if in_process else _run_subprocess)(argv, trial_dir, cpus)
    except KeyboardInterrupt:
        info.update(status="interrupted", finished=_now())
        _write_json(os.path.join(trial_dir, STATUS_FILE), info)
        state.set(name, status="interrupted", finished=info["finished"])
        raise
    ok = rc == 0 and os.path.exists(os.path.join(trial_dir, RESULTS_FILE))
    info.update(status="done" if ok else "failed", returncode=rc, finished=_now(), seconds=round(time.time() - t0, 1))
    if not ok:
        info["error_tail"] = log_tail(os.path.join(trial_dir, LOG_FILE))
    _write_json(os.path.join(trial_dir, STATUS_FILE), info)
    state.set(name, **{k: info[k] for k in ("status", "returncode", "finished", "seconds")},
              **({"error_tail": info["error_tail"]} if not ok else {}))
    msg = f"[sweep] {name}: {info['status']} in {info['seconds']:.0f}s"
    if not ok:
        last = info["error_tail"].strip().splitlines()[-1:] or ["(no output)"]
        msg += f" (exit code {rc}): {last[0]}; see {os.path.join(trial_dir, LOG_FILE)}"
    print(msg, file=sys.stderr, flush=True)
    return info["status"]


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _run_all(exp, todo, workdir, state, parallel, in_process) -> list[str]:
    """Run the trials; SIGTERM (e.g. a scheduler's kill) stops them like Ctrl-C, terminating the running trials."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        return _run_trials(exp, todo, workdir, state, parallel, in_process)
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)


def _run_trials(exp, todo, workdir, state, parallel, in_process) -> list[str]:
    cpu_sets = _cpu_sets(parallel)
    if parallel == 1:
        return [run_trial(exp, trial, workdir, state, None, in_process) for trial in todo]
    free = list(range(parallel))
    lock = threading.Lock()

    def job(trial):
        with lock:
            slot = free.pop(0)
        try:
            return run_trial(exp, trial, workdir, state, cpu_sets[slot], False)
        finally:
            with lock:
                free.append(slot)

    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(job, todo))


def run_sweep(experiment: str, workdir: str, parallel: int = 1, dry_run: bool = False, *,
              max_trials: int | None = None, in_process: bool = False, report: bool = True) -> int:
    """Validate every trial, then run the unfinished ones (`parallel` at a time); 0 if none failed.

    `max_trials` runs at most that many trials in this call (the rest stay pending for a rerun); `in_process` runs
    trials in this process instead of `mobilejax train` subprocesses (only with parallel=1)."""
    try:
        exp = load_experiment(experiment)
        if parallel < 1:
            raise SweepError(f"--parallel must be >= 1, got {parallel}")
        if in_process and parallel > 1:
            raise SweepError("in-process trials run one at a time (parallel=1)")
        for trial in exp["trials"]:
            validate_trial(exp, trial)
        manifest = _init_sweep_dir(exp, workdir)
    except SweepError as e:
        print(f"mobilejax: error: {e}", file=sys.stderr)
        return 2

    if dry_run:
        for trial in exp["trials"]:
            print(command_line(train_argv(exp, trial, workdir)), flush=True)
        return 0

    state = _State(workdir, manifest)
    todo = []
    for trial in exp["trials"]:
        if os.path.exists(os.path.join(workdir, trial["name"], RESULTS_FILE)):
            if state.manifest["state"].get(trial["name"], {}).get("status") != "done":
                state.set(trial["name"], status="done")
            print(f"[sweep] {trial['name']}: finished, skipped", file=sys.stderr, flush=True)
        else:
            todo.append(trial)
    if max_trials is not None:
        todo = todo[:max_trials]
    print(f"[sweep] {exp['name']}: {len(exp['trials'])} trials, {len(todo)} to run, parallel {parallel}",
          file=sys.stderr, flush=True)

    try:
        _run_all(exp, todo, workdir, state, parallel, in_process)
    except KeyboardInterrupt:
        _terminate_all()
        for name, st in state.manifest["state"].items():
            if st.get("status") == "running":
                state.set(name, status="interrupted", finished=_now())
        print("[sweep] interrupted; rerun the same command to resume", file=sys.stderr, flush=True)
        return 130

    if report:
        try:
            from mobilejax.report import write_report
            write_report(workdir, echo=True)
        except Exception as e:  # the report must not hide the sweep's outcome
            print(f"[sweep] warning: could not write the report: {type(e).__name__}: {e}", file=sys.stderr)
    failed = [t["name"] for t in exp["trials"]
              if state.manifest["state"].get(t["name"], {}).get("status") == "failed"]
    if failed:
        print(f"[sweep] {len(failed)} trial(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
