"""Starting a run from another run's weights (`config.init_from`): a trained mobilejax run or a `mobilejax convert`ed
Keras/torchvision model. Every tensor of the new model takes the pretrained value at the same path; the classifier
(`classifier/`) keeps its fresh initialisation when the number of classes differs. Anything else that does not fit
(another model, width or resolution-independent layout) is an error naming the tensors."""
from __future__ import annotations

import os
import sys

import jax
import numpy as np

from mobilejax import distributed
from mobilejax.errors import UsageError
from mobilejax.optim import HEAD

CHECKPOINTS = ("best", "latest")
# How the pretrained network computes, without changing its tensors' shapes: a fine-tuning run that sets these
# otherwise (e.g. the default symmetric padding, epsilon 1e-5 and ImageNet mean/std for weights converted from Keras,
# which pads "same", uses epsilon 1e-3 and scales to [-1, 1]) feeds the pretrained features other inputs. Said, not
# refused: it may be meant.
NUMERICS = ("model.padding", "model.bn_epsilon", "data.normalize")


def checkpoint_path(run_dir: str, which: str = "best") -> tuple[str, int]:
    """(path, step) of a run directory's `which` checkpoint; a UsageError if there is none. Only reads `run_dir`
    (a training run checks its init_from with this before it writes anything)."""
    from mobilejax.checkpoint import Checkpoints

    if which not in CHECKPOINTS:
        raise UsageError(f"init_checkpoint={which!r} is invalid; allowed: {', '.join(CHECKPOINTS)}")
    needed = "a run directory of `mobilejax train` or `mobilejax convert` is needed"
    if not os.path.isdir(run_dir):
        raise UsageError(f"init_from={run_dir!r} is not a directory ({needed})")
    ckpt = Checkpoints(run_dir, create=False)  # another run's directory: read it, never add to it
    try:
        step = ckpt.latest_step(which)
        if step is None:
            raise UsageError(f"init_from={run_dir!r} holds no {which} checkpoint ({needed})")
        return os.path.join(ckpt.directory(which), str(step), "state"), int(step)
    finally:
        ckpt.close()


def check_init_from(config, workdir: str) -> None:
    """A fresh run's `init_from` holds the asked checkpoint (a run checks this before it writes anything). A run
    that resumes from its own checkpoint does not read `init_from` again, so it may have moved or gone since."""
    from mobilejax.checkpoint import Checkpoints

    if not config.get("init_from"):
        return
    own = Checkpoints(workdir, create=False)
    try:
        resuming = own.latest_step() is not None
    finally:
        own.close()
    if not resuming:
        checkpoint_path(config.init_from, config.init_checkpoint)
        different = numerics_difference(config, config.init_from)
        if different and distributed.is_primary():
            print(f"mobilejax: warning: init_from={config.init_from!r} computed with {different[0]} and this run uses "
                  f"{different[1]}: its pretrained features see other inputs than they were trained on "
                  f"({different[2]} match them)", file=sys.stderr, flush=True)


def numerics_difference(config, run_dir: str) -> tuple[str, str, str] | None:
    """None if `config` computes as the run in `run_dir` did (`NUMERICS`); else (its values, this config's, the
    overrides that match it), in words. A run directory without a readable config.json says nothing."""
    from mobilejax import workdir as workdir_lib
    from mobilejax.models import create_model_from_config

    try:
        source = workdir_lib.load_config(run_dir)
    except UsageError:
        return None

    def value(cfg, key):
        section, name = key.split(".")
        if section == "model":  # what the model computes with: the knob, else its family's default
            return getattr(create_model_from_config(cfg.model, num_classes=2), name, None)
        return cfg[section].get(name)
    try:
        theirs, ours = ({k: value(cfg, k) for k in NUMERICS} for cfg in (source, config))
    except (ValueError, TypeError, KeyError, AttributeError):  # a source config this version cannot read: say nothing
        return None
    keys = [k for k in NUMERICS if theirs[k] is not None and theirs[k] != ours[k]]
    if not keys:
        return None
    return (", ".join(f"{k}={theirs[k]!r}" for k in keys), ", ".join(f"{ours[k]!r}" for k in keys),
            " ".join(f"--config.{k}={theirs[k]}" for k in keys))


def load(run_dir: str, which: str = "best") -> tuple[dict, dict, int]:
    """(params, batch_stats, step) of a run directory's checkpoint as numpy arrays, whatever devices wrote it."""
    from mobilejax.checkpoint import ocp

    path, step = checkpoint_path(run_dir, which)
    reader = ocp.StandardCheckpointer()
    try:
        tree = reader.metadata(path).item_metadata.tree
        state = reader.restore(path, jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree))
    finally:
        reader.close()
    return state["params"], state.get("batch_stats") or {}, int(step)


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def merge(fresh: dict, pretrained: dict, what: str) -> tuple[dict, list[str]]:
    """`fresh` with every tensor taken from `pretrained` (same path, same shape); returns it and the paths kept fresh
    (only allowed under the classifier)."""
    flat_new = {_name(path): v for path, v in jax.tree_util.tree_leaves_with_path(fresh)}
    flat_old = {_name(path): v for path, v in jax.tree_util.tree_leaves_with_path(pretrained)}
    kept, bad = [], []
    for name, value in flat_new.items():
        old = flat_old.get(name)
        if old is not None and tuple(old.shape) == tuple(value.shape):
            continue
        if name.split("/")[0] == HEAD:
            kept.append(name)
        else:
            bad.append(f"{name} {tuple(value.shape)} vs {'missing' if old is None else tuple(old.shape)}")
    if bad:
        raise UsageError(f"init_from {what}: {len(bad)} tensor(s) do not fit this model ({'; '.join(bad[:3])}"
                         f"{'; ...' if len(bad) > 3 else ''}): it holds another model or width")

    def pick(path, value):
        name = _name(path)
        return value if name in kept else np.asarray(flat_old[name], dtype=value.dtype)

    return jax.tree_util.tree_map_with_path(pick, fresh), kept


def init_from(state, run_dir: str, which: str, sharding):
    """The train state with the pretrained params and BatchNorm statistics of `run_dir` (fresh optimizer state)."""
    params, stats, step = load(run_dir, which)
    fresh_params, fresh_stats = jax.device_get(state.params), jax.device_get(state.batch_stats)
    new_params, kept = merge(fresh_params, params, run_dir)
    new_stats, _ = merge(fresh_stats, stats, run_dir)
    n = len(jax.tree.leaves(new_params))
    note = f"; new: {', '.join(sorted({k.split('/')[0] for k in kept}))}" if kept else ""
    print(f"mobilejax: initialised {n - len(kept)} of {n} parameter tensors from {run_dir} ({which} checkpoint, "
          f"step {step}){note}", file=sys.stderr, flush=True)
    put = lambda t: jax.device_put(t, sharding)  # noqa: E731
    state = state.replace(params=put(new_params), batch_stats=put(new_stats))
    if state.ema_params is not None:
        state = state.replace(ema_params=put(new_params), ema_batch_stats=put(new_stats))
    return state
