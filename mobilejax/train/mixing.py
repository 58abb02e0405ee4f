"""MixUp and CutMix: batch-level augmentations that blend pairs of training images and their labels, on device.

Each image of the batch is paired with its neighbour in the batch (the batch rolled by one, as in big_vision; the
input pipeline shuffles, so neighbours are random pairs). One mixing weight `lam` ~ Beta(alpha, alpha) is drawn per
batch, as in timm:
- MixUp (Zhang et al., 2018): `lam * image + (1 - lam) * partner`, targets `lam * y + (1 - lam) * y_partner`.
- CutMix (Yun et al., 2019): a box covering ~(1 - lam) of the image, centred uniformly at random and clipped at the
  borders, is pasted from the partner; the target weight is the area actually kept, `1 - box area / image area`.
With both alphas > 0, each batch uses one of the two with probability 1/2 (timm's default switch probability).

The loss is `lam * CE(logits, labels) + (1 - lam) * CE(logits, partner labels)` (with label smoothing on both), which
equals the cross-entropy against the mixed soft targets; the logged training accuracy counts the image's own label.
With both alphas 0 (the default) nothing is drawn and the train step is unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from mobilejax.errors import UsageError


def validate(mixup_alpha, cutmix_alpha) -> None:
    """Raises UsageError naming the bad value: both alphas must be numbers >= 0 (0: off)."""
    for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise UsageError(f"data.{name}={value!r} is invalid; allowed: a number >= 0 (0: off)")


def cutmix_box(rng, height: int, width: int, lam):
    """A (height, width) boolean mask, True inside a box of about (1 - lam) of the area (centre uniform, clipped)."""
    ky, kx = jax.random.split(rng)
    cut = jnp.sqrt(1.0 - lam)
    cy = jax.random.uniform(ky, (), minval=0.0, maxval=height)
    cx = jax.random.uniform(kx, (), minval=0.0, maxval=width)
    half_h, half_w = jnp.round(cut * height) / 2, jnp.round(cut * width) / 2
    y0, y1 = jnp.clip(jnp.round(cy - half_h), 0, height), jnp.clip(jnp.round(cy + half_h), 0, height)
    x0, x1 = jnp.clip(jnp.round(cx - half_w), 0, width), jnp.clip(jnp.round(cx + half_w), 0, width)
    ys = jnp.arange(height, dtype=jnp.float32)[:, None]
    xs = jnp.arange(width, dtype=jnp.float32)[None, :]
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def mix_batch(rng, images, labels, *, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
    """(mixed images, partner labels, lam): each image blended with the batch rolled by one, and the weight of its
    own label in the target. With both alphas 0: (images, labels, 1.0), nothing drawn."""
    if not mixup_alpha and not cutmix_alpha:
        return images, labels, jnp.float32(1.0)
    k_choice, k_mixup, k_cutmix, k_box = jax.random.split(rng, 4)
    partner = jnp.roll(images, 1, axis=0)

    def mixup():
        lam = jax.random.beta(k_mixup, mixup_alpha, mixup_alpha)
        return lam * images + (1.0 - lam) * partner, lam

    def cutmix():
        lam = jax.random.beta(k_cutmix, cutmix_alpha, cutmix_alpha)
        box = cutmix_box(k_box, images.shape[1], images.shape[2], lam)
        return jnp.where(box[None, :, :, None], partner, images), 1.0 - jnp.mean(box.astype(jnp.float32))

    if mixup_alpha and cutmix_alpha:
        (m_images, m_lam), (c_images, c_lam) = mixup(), cutmix()
        use_cutmix = jax.random.bernoulli(k_choice)
        mixed, lam = jnp.where(use_cutmix, c_images, m_images), jnp.where(use_cutmix, c_lam, m_lam)
    else:
        mixed, lam = mixup() if mixup_alpha else cutmix()
    return mixed.astype(images.dtype), jnp.roll(labels, 1, axis=0), lam.astype(jnp.float32)
