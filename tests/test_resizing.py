"""Progressive resizing (mobilejax/train/resizing.py): the size schedule, the train step on resized batches, a run
whose steps follow the schedule, and the config checks."""
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mobilejax import cli
from mobilejax.errors import UsageError
from mobilejax.metrics import read_metrics
from mobilejax.train import resizing, train_and_evaluate, validate_config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny import ROOT, make_folder, tiny_config  # noqa: E402


def _progressive(size=24, epochs=(4, 8), step=4, image_size=32, num_epochs=10):
    c = tiny_config()
    c.data.image_size, c.num_epochs = image_size, num_epochs
    c.data.progressive_size, c.data.progressive_epochs, c.data.progressive_step = size, epochs, step
    return c


def test_size_schedule_holds_ramps_and_rounds_to_the_step():
    c = _progressive()
    sizes = [resizing.size_at(c.data, 32, e) for e in range(10)]
    # 24 before epoch 4; 24 + 8 * (e - 4) / 4 rounded down to a multiple of 4 in 4..7; 32 from epoch 8 on
    assert sizes == [24, 24, 24, 24, 24, 24, 28, 28, 32, 32]
    jump = _progressive(size=16, epochs=(5, 5))  # start == end: a switch at epoch 5
    assert [resizing.size_at(jump.data, 32, e) for e in (0, 4, 5, 9)] == [16, 16, 32, 32]
    off = tiny_config()
    assert off.data.progressive_size == 0 and resizing.size_at(off.data, 16, 0) == 16


def test_resize_is_antialiased_bilinear_and_identity_at_full_size():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    assert resizing.resize(x, 8) is x
    half = resizing.resize(x, 4)
    assert half.shape == (2, 4, 4, 3)
    # halving with the antialiased triangle filter: each output pixel weighs the 4x4 input neighbourhood
    # (weights 1, 3, 3, 1 per axis over the pixels around it, renormalised at the borders)
    w = np.array([1, 3, 3, 1], np.float64)
    inner = np.einsum("i,j,nijc->nc", w, w, np.asarray(x, np.float64)[:, 1:5, 1:5, :]) / w.sum() ** 2
    np.testing.assert_allclose(np.asarray(half)[:, 1, 1, :], inner, rtol=1e-5, atol=1e-6)


def test_train_step_at_a_size_equals_the_step_on_the_resized_batch():
    from mobilejax.optim import create_optimizer, create_schedule
    from mobilejax.train import Steps, build_model, init_state, make_mesh

    c = tiny_config()
    c.data.cutmix_alpha = 1.0  # mixing comes after the resize: the box is drawn on the small image
    model = build_model(c, 5)
    schedule = create_schedule(c.optim, 1, 1)
    tx = create_optimizer(c.optim, schedule)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.normal(size=(8, 16, 16, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, size=8), jnp.int32)
    init = jax.jit(lambda k: init_state(model, tx, k, 16, False))
    steps = Steps(c, schedule, make_mesh())
    assert steps.train_at(16, 16) is steps.train and steps.train_at(12, 16) is steps.train_at(12, 16)
    small = {"image": resizing.resize(images, 12), "label": labels}
    ref_state, ref = steps.train(init(jax.random.key(0)), steps.put_batch(small), jax.random.key(3))
    state, out = steps.train_at(12, 16)(init(jax.random.key(0)), steps.put_batch({"image": images, "label": labels}),
                                        jax.random.key(3))
    np.testing.assert_allclose(float(out["loss"]), float(ref["loss"]), rtol=1e-6)
    # the same update up to float rounding: the two graphs may round activations differently (e.g. where the native
    # kernel gradient needs its input written out), so each leaf's update is compared against its own size (plus a
    # few units in the last place of the parameters, the resolution of an update read back from them)
    start = jax.tree.leaves(init(jax.random.key(0)).params)
    for x, y, x0 in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref_state.params), start):
        dx, dy, x0 = np.asarray(x - x0), np.asarray(y - x0), np.asarray(x0)
        ulps = 4 * np.finfo(np.float32).eps * np.abs(x0).max()
        assert np.abs(dy).max() > 0 and np.abs(dx - dy).max() <= 1e-4 * np.abs(dy).max() + ulps
    _, full = steps.train(init(jax.random.key(0)), steps.put_batch({"image": images, "label": labels}),
                          jax.random.key(3))
    assert float(full["loss"]) != float(out["loss"])  # the size matters: the resize is not a no-op


@pytest.mark.heavy
def test_run_trains_each_epoch_at_its_scheduled_size(tmp_path):
    folder = make_folder(tmp_path / "images")
    c = tiny_config(dataset=f"image_folder:{folder}", train_split="train", eval_split="val")
    c.num_epochs, c.log_every_steps, c.eval_every_epochs = 4, 1, 100
    c.data.progressive_size, c.data.progressive_epochs, c.data.progressive_step = 8, (1, 3), 4
    res = train_and_evaluate(c, str(tmp_path / "run"))
    per_epoch = res["steps"] // 4
    rows = [r for r in read_metrics(str(tmp_path / "run")) if "train_loss" in r]
    assert [r["train_image_size"] for r in rows] == [8] * 2 * per_epoch + [12] * per_epoch + [16] * per_epoch
    assert res["image_size"] == 16 and res["eval_examples"] == 15  # evaluated at the full size


@pytest.mark.parametrize("key,value,match", [
    ("progressive_size", 40, r"data.progressive_size=40 is invalid; allowed: an integer in \[1, data.image_size=32\]"),
    ("progressive_size", -3, "progressive_size=-3 is invalid"),
    ("progressive_epochs", (6, 3), r"progressive_epochs=\(6, 3\) is invalid; allowed: \(start, end\)"),
    ("progressive_epochs", (2, 12), r"ends after the run's 10 epochs"),
    ("progressive_step", 0, "progressive_step=0 is invalid; allowed: an integer >= 1"),
])
def test_bad_settings_are_refused_with_the_value(key, value, match):
    c = _progressive()
    c.data[key] = value
    with pytest.raises(UsageError, match=match):
        validate_config(c)


def test_bad_setting_from_the_cli_is_one_line_and_exit_2(tmp_path, capsys):
    code = cli.main(["train", "--workdir", str(tmp_path / "w"), f"--config={ROOT}/configs/cifar10_fast.py",
                     "--config.data.progressive_size=48"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "progressive_size=48" in err[0]
    assert not os.path.exists(tmp_path / "w")
