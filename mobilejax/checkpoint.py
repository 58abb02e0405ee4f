"""Checkpoints (orbax): the latest few for resuming (`WORKDIR/checkpoints`) and the best by validation accuracy
(`WORKDIR/best`). Orbax writes each checkpoint to a temporary directory and renames it when complete, so an
interrupted save never leaves a half-written checkpoint behind.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, workdir: str, keep: int = 2):
        self.workdir = os.path.abspath(workdir)
        opts = ocp.CheckpointManagerOptions(max_to_keep=max(int(keep), 1), create=True,
                                            enable_async_checkpointing=False)
        self.latest = ocp.CheckpointManager(os.path.join(self.workdir, "checkpoints"), options=opts)
        best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=False)
        self.best = ocp.CheckpointManager(os.path.join(self.workdir, "best"), options=best_opts)

    def _manager(self, which: str) -> ocp.CheckpointManager:
        if which not in ("latest", "best"):
            raise ValueError(f"unknown checkpoint {which!r}; allowed: latest, best")
        return self.latest if which == "latest" else self.best

    def latest_step(self, which: str = "latest") -> int | None:
        return self._manager(which).latest_step()

    def save(self, step: int, state: Any, meta: dict, which: str = "latest") -> None:
        mgr = self._manager(which)
        if mgr.latest_step() == step:
            return
        mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                 force=True)
        mgr.wait_until_finished()

    def restore(self, abstract_state: Any, sharding: jax.sharding.Sharding, which: str = "latest",
                step: int | None = None) -> tuple[Any, dict]:
        """Restore onto the shapes/dtypes of `abstract_state` placed with `sharding` (the current devices), whatever
        devices the checkpoint was written from."""
        mgr = self._manager(which)
        step = mgr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no {which} checkpoint in {self.workdir}")
        target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract_state)
        out = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                        meta=ocp.args.JsonRestore()))
        return out.state, out.meta

    def close(self) -> None:
        self.latest.close()
        self.best.close()
