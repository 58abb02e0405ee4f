"""MixUp and CutMix (mobilejax/train/mixing.py): what they do to a batch, the loss, and the config checks."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mobilejax.errors import UsageError
from mobilejax.train import mixing
from mobilejax.train.steps import cross_entropy


def _batch(n=6, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = jnp.asarray(rng.normal(size=(n, size, size, 3)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, size=n), jnp.int32)
    return images, labels


def test_off_changes_nothing():
    images, labels = _batch()
    out, partner, lam = mixing.mix_batch(jax.random.key(0), images, labels)
    assert out is images and partner is labels and float(lam) == 1.0


def test_mixup_blends_each_image_with_its_neighbour():
    images, labels = _batch()
    lams = set()
    for seed in range(5):
        out, partner, lam = mixing.mix_batch(jax.random.key(seed), images, labels, mixup_alpha=0.4)
        lam = float(lam)
        assert 0.0 < lam < 1.0
        lams.add(round(lam, 6))
        np.testing.assert_allclose(out, lam * images + (1 - lam) * jnp.roll(images, 1, axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(partner, np.roll(labels, 1))
    assert len(lams) == 5  # a new weight per batch


def test_cutmix_pastes_one_box_and_weights_by_the_area_kept():
    images, labels = _batch(size=16)
    partner_images = np.roll(np.asarray(images), 1, axis=0)
    kept_fractions = []
    for seed in range(8):
        out, partner, lam = mixing.mix_batch(jax.random.key(seed), images, labels, cutmix_alpha=1.0)
        out = np.asarray(out)
        from_partner = np.all(out == partner_images, axis=-1) & np.any(out != np.asarray(images), axis=-1)
        # every pixel is either its own or its neighbour's, and the pasted pixels are the same box in every image
        assert np.all(np.all(out == np.asarray(images), axis=-1) | from_partner)
        box = from_partner[0]
        assert np.all(from_partner == box[None])
        if box.any():
            rows, cols = np.where(box.any(axis=1))[0], np.where(box.any(axis=0))[0]
            assert box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # a filled rectangle
        assert float(lam) == pytest.approx(1.0 - box.mean())
        np.testing.assert_array_equal(partner, np.roll(labels, 1))
        kept_fractions.append(float(lam))
    assert len(set(kept_fractions)) > 1 and min(kept_fractions) < 1.0


def test_cutmix_box_area_follows_lam_away_from_the_borders():
    """A box that does not touch the borders of a 100x100 image covers (1 - lam) of it, to the rounding of its
    sides (several keys per lam, so that some boxes are not clipped; each lam is checked at least once)."""
    for lam in (0.5, 0.7, 0.9):  # (a box of 90% of the image almost always touches a border)
        checked = 0
        for seed in range(40):
            box = np.asarray(mixing.cutmix_box(jax.random.key(seed), 100, 100, jnp.float32(lam)))
            rows, cols = np.where(box.any(axis=1))[0], np.where(box.any(axis=0))[0]
            if rows[0] > 0 and rows[-1] < 99 and cols[0] > 0 and cols[-1] < 99:  # not clipped
                assert box.mean() == pytest.approx(1.0 - lam, abs=0.02)
                checked += 1
        assert checked > 0, lam


def test_both_switch_between_mixup_and_cutmix_per_batch():
    images, labels = _batch()
    kinds = set()
    for seed in range(16):
        out, _, _ = mixing.mix_batch(jax.random.key(seed), images, labels, mixup_alpha=0.4, cutmix_alpha=1.0)
        out = np.asarray(out)
        exact = np.all((out == np.asarray(images)) | (out == np.roll(np.asarray(images), 1, axis=0)))
        kinds.add("cutmix" if exact else "mixup")
    assert kinds == {"cutmix", "mixup"}


def test_the_loss_is_the_cross_entropy_against_mixed_soft_targets():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(6, 5)), jnp.float32)
    images, labels = _batch()
    _, partner, lam = mixing.mix_batch(jax.random.key(3), images, labels, mixup_alpha=0.4)
    for smoothing in (0.0, 0.1):
        ours = lam * cross_entropy(logits, labels, 5, smoothing) + (1 - lam) * cross_entropy(logits, partner, 5,
                                                                                               smoothing)
        soft = (lam * optax.smooth_labels(jax.nn.one_hot(labels, 5), smoothing)
                + (1 - lam) * optax.smooth_labels(jax.nn.one_hot(partner, 5), smoothing)) if smoothing else (
            lam * jax.nn.one_hot(labels, 5) + (1 - lam) * jax.nn.one_hot(partner, 5))
        np.testing.assert_allclose(ours, optax.softmax_cross_entropy(logits, soft), rtol=1e-5)


@pytest.mark.parametrize("value", [-0.2, "0.2", True, float("nan")])
def test_bad_alpha_is_one_clear_error(value):
    with pytest.raises(UsageError, match=r"data.mixup_alpha=.* allowed: a number >= 0"):
        mixing.validate(value, 0.0)
    with pytest.raises(UsageError, match=r"data.cutmix_alpha=.* allowed: a number >= 0"):
        mixing.validate(0.0, value)


@pytest.mark.heavy
def test_the_configured_train_step_mixes_its_batch():
    """`data.mixup_alpha` / `data.cutmix_alpha` reach the compiled step: its loss is the mixed-target loss of the
    batch mixed with the step's own key, and differs from the unmixed loss (of the same forward pass, so the test
    compiles one train step per mixing, not a third for no mixing)."""
    from mobilejax.config import get_config, model_config
    from mobilejax.optim import create_optimizer, create_schedule
    from mobilejax.train import Steps, build_model, init_state, make_mesh

    config = get_config()
    config.model = model_config("mobilenet_v1", alpha=0.25, small_input=True, dropout=0.0)
    config.optim.label_smoothing, config.optim.warmup_epochs, config.optim.schedule = 0.1, 0.0, "constant"
    model = build_model(config, 5)
    schedule = create_schedule(config.optim, 1, 1)
    tx = create_optimizer(config.optim, schedule)
    images, labels = _batch(n=8, size=16)
    batch = {"image": images, "label": labels}
    rng = jax.random.key(7)
    losses = {}
    init = jax.jit(lambda k: init_state(model, tx, k, 16, False))  # compiled: eager Flax compiles op by op
    train_logits = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])[0])
    for mix in ((0.4, 0.0), (0.0, 1.0)):
        config.data.mixup_alpha, config.data.cutmix_alpha = mix
        steps = Steps(config, schedule, make_mesh())
        state = init(jax.random.key(0))  # afresh: the train step donates it
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        mixed, partner, lam = mixing.mix_batch(jax.random.fold_in(jax.random.fold_in(rng, 0), 1), images, labels,
                                               mixup_alpha=mix[0], cutmix_alpha=mix[1])
        logits = train_logits(variables, mixed)
        expected = (lam * cross_entropy(logits, labels, 5, 0.1)
                    + (1 - lam) * cross_entropy(logits, partner, 5, 0.1)).mean()
        losses["unmixed" + str(mix)] = float(cross_entropy(train_logits(variables, images), labels, 5, 0.1).mean())
        _, metrics = steps.train(state, steps.put_batch(batch), rng)  # donates the state: after the reference
        np.testing.assert_allclose(float(metrics["loss"]), float(expected), rtol=1e-4)
        losses[mix] = float(metrics["loss"])
    assert losses["unmixed(0.4, 0.0)"] == losses["unmixed(0.0, 1.0)"]  # the same initial state
    assert len({losses[(0.4, 0.0)], losses[(0.0, 1.0)], losses["unmixed(0.4, 0.0)"]}) == 3
