"""Experiment files: what a sweep's trials are, their directory names and their `mobilejax train` commands.

An experiment file (`experiments/*.py`) has a `get_config()` returning a dict (or ConfigDict):

    def get_config():
        return {
            "base": "configs/cifar10.py:folder=../shared/data/cifar10",  # config file[:args], relative to the repo root
            "fixed": {"num_epochs": 3, "data.train_split": "train[:20%]"},  # applied to every trial (optional)
            "product": {"model.name": ["mobilenet_v1", "mobilenet_v2"],     # cartesian product ...
                        "model.alpha": [0.25, 0.5, 0.75, 1.0]},
            "trials": [{"model.separable": False}],                         # ... and/or an explicit list
            "seeds": (0, 1, 2),                                             # replicates of every trial (optional)
            "comparisons": [{"name": "v1 vs v2 at 0.5",                     # differences the report tests (optional)
                             "a": {"model.name": "mobilenet_v1", "model.alpha": 0.5},
                             "b": {"model.name": "mobilenet_v2", "model.alpha": 0.5}}],
            "description": "...",
        }

With both `product` and `trials`, every listed trial is combined with every point of the product. Keys are dotted
config paths (nested dicts are flattened). Each trial is one run, the plain command

    mobilejax train --config BASE --config.k=v ... --workdir SWEEPDIR/<trial>

or, with `seeds` (or `mobilejax sweep --seeds N`: seeds 0 .. N-1), one run per seed

    mobilejax train --config BASE --config.k=v ... --config.seed=S --workdir SWEEPDIR/<trial>/seed-S

(`--dry-run` prints exactly these, one per line, for any scheduler); the trial's directory name is made of its own
overrides (`model-mobilenet_v1__alpha-0.25`). Each side of a comparison is a dict of settings that must select
exactly one trial (the trial whose overrides, or the fixed settings, hold all of them); the report gives the
difference of the two trials' mean best accuracies with a 95% Welch interval. `SWEEPDIR/sweep.json` records the
experiment, its runs and the state of each run; `SWEEPDIR/<run>/status.json` and `train.log` that of one run. A rerun
skips finished runs (results.json present) and resumes the others from their checkpoints. Run from the repository
root: relative paths in the configs (e.g. image folders) are relative to the working directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import re
import shlex
from typing import Any

from mobilejax.errors import UsageError

MAX_NAME = 100
FIELDS = ("base", "fixed", "product", "trials", "seeds", "comparisons", "description")

# Short names of common keys in trial directory names.
SHORT_KEYS = {"model.name": "model", "data.image_size": "res", "num_epochs": "epochs", "batch_size": "batch",
              "optim.learning_rate": "lr", "num_train_steps": "steps", "data.dataset": "data"}


class SweepError(UsageError):
    """A sweep that cannot start: bad experiment file, invalid trial, conflicting sweep directory."""


# ---------------------------------------------------------------------------------------------------------------------
# Experiment files


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def load_experiment(path: str, seeds: int | None = None) -> dict:
    """Read an experiment file: {"path", "name", "base", "fixed", "trials": [{"name", "overrides"}], "seeds",
    "runs": [{"name", "trial", "seed", "overrides"}], "comparisons": [{"name", "a", "b"}]}.

    `seeds` (the `--seeds N` flag) replaces the file's `seeds` by 0 .. N-1. With seeds, each trial runs once per
    seed in `<trial>/seed-<s>` with `seed=<s>`; without, once in `<trial>` (its config's own seed)."""
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
    unknown = sorted(set(exp) - set(FIELDS))
    if unknown:
        raise SweepError(f"{path}: unknown experiment field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
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
    seed_list = _seeds(path, exp.get("seeds"), seeds)
    if seed_list is not None:
        source = "--seeds" if seeds is not None else "'seeds'"
        for where, overrides in [("'fixed'", fixed)] + [(f"trial {t['name']!r}", t["overrides"]) for t in trials]:
            if "seed" in overrides:
                raise SweepError(f"{path}: {where} sets 'seed', but with {source} ({seed_list}) every trial runs "
                                 "once per seed; remove one of them")
        runs = [{"name": run_name(t["name"], s), "trial": t["name"], "seed": s,
                 "overrides": {**t["overrides"], "seed": s}} for t in trials for s in seed_list]
    else:
        runs = [{"name": t["name"], "trial": t["name"], "seed": None, "overrides": t["overrides"]} for t in trials]
    return {"path": path, "name": os.path.splitext(os.path.basename(path))[0], "base": base, "fixed": fixed,
            "trials": trials, "seeds": seed_list, "runs": runs,
            "comparisons": _comparisons(path, exp.get("comparisons") or [], fixed, trials),
            "description": exp.get("description", "")}


def _seeds(path: str, declared, flag: int | None) -> list[int] | None:
    """The seeds of every trial: 0 .. flag-1 (`--seeds N`), else the file's `seeds`, else None (no replicates)."""
    if flag is not None:
        if isinstance(flag, bool) or not isinstance(flag, int) or flag < 1:
            raise SweepError(f"--seeds must be a positive integer, got {flag!r}")
        return list(range(flag))
    if declared is None:
        return None
    if (not isinstance(declared, (list, tuple)) or not declared
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in declared)):
        raise SweepError(f"{path}: 'seeds' must be a non-empty list of integers >= 0 (e.g. (0, 1, 2)), "
                         f"got {declared!r}")
    if len(set(declared)) != len(declared):
        raise SweepError(f"{path}: 'seeds' has repeated seeds: {list(declared)}")
    return list(declared)


def _same(x, y) -> bool:
    """Setting equality, with lists and tuples alike (`(224, 224)` matches `[224, 224]`)."""
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def _comparisons(path: str, declared, fixed: dict, trials: list[dict]) -> list[dict]:
    """Each declared comparison {"name", "a": {key: value}, "b": {key: value}} -> {"name", "a": trial, "b": trial};
    each side must select exactly one trial (by its overrides, or the fixed settings), and the two must differ."""
    if not isinstance(declared, (list, tuple)):
        raise SweepError(f"{path}: 'comparisons' must be a list of {{'a': {{...}}, 'b': {{...}}, 'name': ...}}")
    out = []
    for i, comp in enumerate(declared):
        if hasattr(comp, "to_dict"):
            comp = comp.to_dict()
        if not isinstance(comp, dict) or set(comp) - {"a", "b", "name"} or not {"a", "b"} <= set(comp):
            raise SweepError(f"{path}: comparisons[{i}] must be a dict with 'a' and 'b' (and optionally 'name'), "
                             f"got {comp!r}")
        sides = {}
        for side in ("a", "b"):
            want = _flatten(comp[side], where=f"{path}: comparisons[{i}].{side}")
            hits = [t["name"] for t in trials
                    if all(k in (settings := {**fixed, **t["overrides"]}) and _same(settings[k], v)
                           for k, v in want.items())]
            if len(hits) != 1:
                raise SweepError(f"{path}: comparisons[{i}].{side} {want} selects {len(hits)} trials "
                                 f"({', '.join(hits) or 'none'}); it must select exactly one")
            sides[side] = hits[0]
        if sides["a"] == sides["b"]:
            raise SweepError(f"{path}: comparisons[{i}] compares the trial {sides['a']!r} with itself")
        out.append({"name": comp.get("name") or f"{sides['a']} vs {sides['b']}", **sides})
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Directory layout: SWEEPDIR/<trial> (one run per trial) or SWEEPDIR/<trial>/seed-<s> (one run per trial and seed)


SEED_DIR_PREFIX = "seed-"
_RUN_MARKERS = ("config.json", "results.json", "status.json")


def run_name(trial: str, seed: int | None) -> str:
    """A run's directory, relative to the sweep directory."""
    return trial if seed is None else f"{trial}/{SEED_DIR_PREFIX}{seed}"


def find_runs(sweep_dir: str) -> list[dict]:
    """The training runs under a directory without a sweep.json: [{"name", "trial", "seed"}], sub-directories
    holding a run and their `seed-<s>` sub-directories holding one."""
    def is_run(d):
        return any(os.path.exists(os.path.join(d, f)) for f in _RUN_MARKERS)

    def seed_of(d):
        tail = d[len(SEED_DIR_PREFIX):]
        return int(tail) if d.startswith(SEED_DIR_PREFIX) and tail.isdigit() else None

    runs = []
    for d in sorted(os.listdir(sweep_dir)) if os.path.isdir(sweep_dir) else []:
        p = os.path.join(sweep_dir, d)
        if not os.path.isdir(p):
            continue
        if is_run(p):
            runs.append({"name": d, "trial": d, "seed": None})
        seeds = sorted(seed_of(s) for s in os.listdir(p) if seed_of(s) is not None and is_run(os.path.join(p, s)))
        runs += [{"name": run_name(d, seed), "trial": d, "seed": seed} for seed in seeds]
    return runs


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

    from mobilejax.config import load_config
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
