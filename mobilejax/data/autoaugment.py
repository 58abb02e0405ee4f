"""TrivialAugment (Müller & Hutter, 2021): one random image operation per image, at a random strength.

`trivial_augment(image, key)` picks one of the 14 operations of torchvision's `TrivialAugmentWide` (identity,
shear x/y, translate x/y, rotate, brightness, colour, contrast, sharpness, posterize, solarize, autocontrast,
equalize) uniformly, and its magnitude uniformly in that operation's wide range (a random sign where it has one).
Like the rest of the pipeline it is pure TensorFlow graph code and stateless: the same key gives the same image,
so a resumed run sees the same augmented images (data.auto_augment="trivial").

Images are float32 [h, w, 3] in [0, 255] (after the crop and resize, before normalisation); geometric operations
fill the uncovered area with grey (128, as timm does). The in-memory pipeline has the same operations in numpy
(`autoaugment_numpy.py`, which holds the op table and the ranges).
"""
from __future__ import annotations

import math

from mobilejax.data.autoaugment_numpy import (FILL, MAX_ENHANCE, MAX_ROTATE, MAX_SHEAR, MAX_TRANSLATE,  # noqa: F401
                                              MIN_POSTERIZE_BITS, OPS)  # the op table, shared with the numpy version
from mobilejax.data.tensorflow_cpu import tf

_OP_STREAM, _MAGNITUDE_STREAM, _SIGN_STREAM = 0x5441, 0x544D, 0x5453  # keys folded from the example's key


def affine(image: tf.Tensor, a0, a1, a2, b0, b1, b2, fill_mode: str = "CONSTANT") -> tf.Tensor:
    """Output pixel (x, y) reads input (a0 x + a1 y + a2, b0 x + b1 y + b2), bilinear; outside the image: grey
    ("CONSTANT") or the mirrored image ("REFLECT")."""
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.shape(image)[:2], fill_value=FILL,
        interpolation="BILINEAR", fill_mode=fill_mode)[0]


def centred_affine(image: tf.Tensor, a0, a1, b0, b1, fill_mode: str = "CONSTANT") -> tf.Tensor:
    """The linear map [[a0, a1], [b0, b1]] (output -> input coordinates) about the image's centre."""
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return affine(image, a0, a1, cx - (a0 * cx + a1 * cy), b0, b1, cy - (b0 * cx + b1 * cy), fill_mode)


def rotate(image: tf.Tensor, angle, fill_mode: str = "CONSTANT") -> tf.Tensor:
    """Rotated by `angle` radians about the centre (same size): pi/2 gives `np.rot90(image)` on a square image."""
    c, s = tf.cos(angle), tf.sin(angle)
    return centred_affine(image, c, -s, s, c, fill_mode)


def _grey(image: tf.Tensor) -> tf.Tensor:
    """ITU-R 601-2 luma rounded to integers (PIL's "L"), [h, w, 1]."""
    return tf.round(tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114], tf.float32), axis=-1, keepdims=True))


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor) -> tf.Tensor:
    """PIL's ImageEnhance: degenerate + factor (image - degenerate), clipped to [0, 255]."""
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _sharpness_degenerate(image: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13) inside, the border pixels unchanged."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(image[None], kernel, strides=[1, 1, 1, 1], padding="VALID")[0]
    smooth = tf.round(smooth)
    inside = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    return inside * tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]) + (1.0 - inside) * image


def posterize(image: tf.Tensor, bits) -> tf.Tensor:
    """Keep the `bits` high bits of each (rounded) 8-bit value."""
    step = tf.pow(2.0, 8.0 - tf.cast(bits, tf.float32))
    return tf.floor(tf.round(image) / step) * step


def solarize(image: tf.Tensor, threshold) -> tf.Tensor:
    """Values >= threshold are inverted (255 - v)."""
    return tf.where(image >= threshold, 255.0 - image, image)


def autocontrast(image: tf.Tensor) -> tf.Tensor:
    """Each channel stretched linearly so its minimum is 0 and its maximum 255 (flat channels unchanged)."""
    lo = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1e-6), 1.0)
    offset = tf.where(hi > lo, lo, 0.0)
    return tf.clip_by_value((image - offset) * scale, 0.0, 255.0)


def equalize(image: tf.Tensor) -> tf.Tensor:
    """PIL's ImageOps.equalize per channel on the rounded 8-bit values."""
    values = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.int32)

    def channel(v):
        hist = tf.math.bincount(tf.reshape(v, [-1]), minlength=256, maxlength=256)
        last = tf.gather(hist, tf.reduce_max(tf.where(hist > 0)))  # the count of the highest value present
        step = (tf.reduce_sum(hist) - last) // 255
        safe = tf.maximum(step, 1)
        lut = tf.clip_by_value((tf.cumsum(hist, exclusive=True) + safe // 2) // safe, 0, 255)
        return tf.where(step > 0, tf.gather(lut, v), v)

    channels = [channel(values[:, :, c]) for c in range(3)]
    return tf.cast(tf.stack(channels, axis=-1), tf.float32)


def apply_op(image: tf.Tensor, op: tf.Tensor, magnitude: tf.Tensor, sign: tf.Tensor) -> tf.Tensor:
    """Operation number `op` (an index into OPS) at `magnitude` in [0, 1] of its range, signed by `sign` (+-1)."""
    size = tf.cast(tf.shape(image)[1], tf.float32)
    m = magnitude * sign
    branches = [
        lambda: image,
        lambda: centred_affine(image, 1.0, m * MAX_SHEAR, 0.0, 1.0),
        lambda: centred_affine(image, 1.0, 0.0, m * MAX_SHEAR, 1.0),
        lambda: affine(image, 1.0, 0.0, -m * MAX_TRANSLATE * size, 0.0, 1.0, 0.0),
        lambda: affine(image, 1.0, 0.0, 0.0, 0.0, 1.0, -m * MAX_TRANSLATE * size),
        lambda: rotate(image, m * MAX_ROTATE * math.pi / 180),
        lambda: _blend(tf.zeros_like(image), image, 1.0 + m * MAX_ENHANCE),
        lambda: _blend(tf.tile(_grey(image), [1, 1, 3]), image, 1.0 + m * MAX_ENHANCE),
        lambda: _blend(tf.fill(tf.shape(image), tf.reduce_mean(_grey(tf.round(image)))), image,
                       1.0 + m * MAX_ENHANCE),
        lambda: _blend(_sharpness_degenerate(image), image, 1.0 + m * MAX_ENHANCE),
        lambda: posterize(image, 8 - tf.round(magnitude * (8 - MIN_POSTERIZE_BITS))),
        lambda: solarize(image, 255.0 * (1.0 - magnitude)),
        lambda: autocontrast(image),
        lambda: equalize(image),
    ]
    out = tf.switch_case(tf.cast(op, tf.int32), branches)
    out.set_shape(image.shape)
    return out


def trivial_augment(image: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """One operation drawn uniformly from OPS, its magnitude uniform in [0, 1] of the wide range and a random
    sign, all from the stateless `key` ([2] int64)."""
    fold = tf.random.experimental.stateless_fold_in
    op = tf.random.stateless_uniform([], seed=fold(key, _OP_STREAM), minval=0, maxval=len(OPS), dtype=tf.int32)
    magnitude = tf.random.stateless_uniform([], seed=fold(key, _MAGNITUDE_STREAM))
    sign = tf.where(tf.random.stateless_uniform([], seed=fold(key, _SIGN_STREAM)) < 0.5, -1.0, 1.0)
    return apply_op(image, op, magnitude, sign)
