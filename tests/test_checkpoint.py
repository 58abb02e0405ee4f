"""`mobilejax.checkpoint.Checkpoints` on its own: a state round-trips exactly (values, dtypes, placement), including
checkpoints written by earlier versions, which saved `jax.Array` leaves rather than host (numpy) values."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from mobilejax.checkpoint import Checkpoints


def _state():
    rng = np.random.default_rng(0)
    return {"step": jnp.asarray(7, jnp.int32),
            "params": {"conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 1, 8)), jnp.float32)},
                       "bn": {"scale": jnp.asarray(rng.uniform(0.5, 1.5, size=(8,)), jnp.float32)}},
            "ema": {"kernel": jnp.asarray(rng.normal(size=(4, 5)), jnp.bfloat16)}}


def _assert_restored(restored, state, sharding):
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(restored), jax.tree.leaves(state)):
        assert isinstance(got, jax.Array) and got.sharding == sharding, path
        assert got.dtype == want.dtype and got.shape == want.shape, path
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=str(path))


def test_state_round_trips_exactly(tmp_path):
    state, sharding = _state(), jax.sharding.SingleDeviceSharding(jax.devices()[0])
    ckpt = Checkpoints(str(tmp_path), keep=2)
    try:
        for step in (1, 2, 3):
            ckpt.save(step, jax.tree.map(lambda x, s=step: x + s if x.ndim else x, state), {"step": step})
        assert ckpt.latest_step() == 3 and sorted(ckpt.latest.all_steps()) == [2, 3]  # keep=2
        restored, meta = ckpt.restore(jax.eval_shape(lambda: state), sharding)
    finally:
        ckpt.close()
    assert meta == {"step": 3}
    _assert_restored(restored, jax.tree.map(lambda x: x + 3 if x.ndim else x, state), sharding)


def test_checkpoint_with_jax_array_leaves_restores(tmp_path):
    """The layout earlier versions wrote (orbax's `jax.Array` path) reads back through today's `restore`."""
    state, sharding = _state(), jax.sharding.SingleDeviceSharding(jax.devices()[0])
    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager(os.path.join(tmp_path, "checkpoints"), options=opts) as mgr:
        mgr.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": 5})))
        mgr.wait_until_finished()
    ckpt = Checkpoints(str(tmp_path))
    try:
        restored, meta = ckpt.restore(jax.eval_shape(lambda: state), sharding)
    finally:
        ckpt.close()
    assert meta == {"step": 5}
    _assert_restored(restored, state, sharding)
