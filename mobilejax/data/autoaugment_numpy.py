"""TrivialAugment for the in-memory pipeline: `autoaugment.py`'s operations in numpy, on whole batches, no TensorFlow.

The operations, their wide ranges and their formulas are those of the tf.data version (`autoaugment.py`, each
operation tested against PIL's there, and this one against that one in tests/test_autoaugment.py): identity,
shear x/y, translate x/y and rotate (bilinear, grey fill), brightness, colour, contrast, sharpness, posterize,
solarize, autocontrast and equalize. The op table lives here, where it imports nothing heavy, and `autoaugment.py`
takes it from here.

`trivial_augment_batch(images, ops, magnitudes, signs)` applies operation ops[i] at magnitudes[i] (in [0, 1] of its
range) with signs[i] (+-1) to image i of a uint8 [B, H, W, 3] batch, each operation vectorised over the images that
drew it, and rounds the result to uint8 (the tf.data version keeps floats; PIL, and so torchvision's
TrivialAugmentWide on PIL images, returns 8-bit images too). The in-memory pipeline draws (op, magnitude, sign) per
image from its per-epoch numpy stream (`memory.py`), so a resumed run sees the same images.
"""
from __future__ import annotations

import math
from concurrent.futures import Executor

import numpy as np

OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast",
       "sharpness", "posterize", "solarize", "autocontrast", "equalize")

# the wide ranges (torchvision TrivialAugmentWide): the magnitude is uniform in [0, max]
MAX_SHEAR = 0.99
MAX_TRANSLATE = 32.0 / 224.0  # 32 px at 224 px, as a fraction of the side
MAX_ROTATE = 135.0  # degrees
MAX_ENHANCE = 0.99  # brightness, colour, contrast, sharpness: factor 1 +- m
MIN_POSTERIZE_BITS = 2
FILL = 128.0

_LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)
_F = np.float32


def affine(images: np.ndarray, t: np.ndarray) -> np.ndarray:
    """float32 [n, h, w, c] -> output pixel (x, y) of image i reads input (t[i,0] x + t[i,1] y + t[i,2],
    t[i,3] x + t[i,4] y + t[i,5]), bilinear; neighbours outside the image read FILL (TensorFlow's
    ImageProjectiveTransformV3 with fill_mode CONSTANT)."""
    n, h, w, c = images.shape
    t = t.astype(np.float32)[:, :, None, None]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    sx = t[:, 0] * x + t[:, 1] * y + t[:, 2]
    sy = t[:, 3] * x + t[:, 4] * y + t[:, 5]
    x0, y0 = np.floor(sx), np.floor(sy)
    # a one-pixel FILL border: every neighbour outside the image reads it once its coordinate is clipped to [-1, side]
    # (channels first, so that each gather and product below runs over contiguous [n, h, w] planes)
    padded = np.pad(images.transpose(3, 0, 1, 2), ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=FILL)
    padded = padded.reshape(c, -1)
    base = (np.arange(n) * ((h + 2) * (w + 2)))[:, None, None]
    ix0 = np.clip(x0, -1, w).astype(np.intp) + 1
    ix1 = np.clip(x0 + 1, -1, w).astype(np.intp) + 1
    iy0 = base + (np.clip(y0, -1, h).astype(np.intp) + 1) * (w + 2)
    iy1 = base + (np.clip(y0 + 1, -1, h).astype(np.intp) + 1) * (w + 2)
    wx1, wy1 = sx - x0, sy - y0
    wx0, wy0 = x0 + 1 - sx, y0 + 1 - sy
    out = np.empty((c, n, h, w), np.float32)
    for k in range(c):
        plane = padded[k]
        top = wx0 * plane.take(iy0 + ix0) + wx1 * plane.take(iy0 + ix1)
        bottom = wx0 * plane.take(iy1 + ix0) + wx1 * plane.take(iy1 + ix1)
        out[k] = wy0 * top + wy1 * bottom
    return out.transpose(1, 2, 3, 0)


def centred_affine(images: np.ndarray, a0, a1, b0, b1) -> np.ndarray:
    """The linear maps [[a0, a1], [b0, b1]] (output -> input coordinates, one per image) about the images' centre."""
    h, w = images.shape[1:3]
    cx, cy = _F((w - 1) / 2), _F((h - 1) / 2)
    a0, a1, b0, b1 = (np.asarray(v, np.float32) * np.ones(len(images), np.float32) for v in (a0, a1, b0, b1))
    return affine(images, np.stack([a0, a1, cx - (a0 * cx + a1 * cy), b0, b1, cy - (b0 * cx + b1 * cy)], axis=1))


def _grey(images: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma rounded to integers (PIL's "L"), [n, h, w, 1]."""
    return np.round(np.sum(images * _LUMA, axis=-1, keepdims=True, dtype=np.float32))


def _blend(degenerate: np.ndarray, images: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """PIL's ImageEnhance: degenerate + factor (image - degenerate), clipped to [0, 255]; one factor per image."""
    factor = factor.astype(np.float32)[:, None, None, None]
    return np.clip(degenerate + factor * (images - degenerate), _F(0), _F(255))


def _sharpness_degenerate(images: np.ndarray) -> np.ndarray:
    """PIL's SMOOTH filter ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13) inside, the border pixels unchanged."""
    h, w = images.shape[1:3]
    out = images.copy()
    if h < 3 or w < 3:
        return out
    kernel = np.asarray([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / _F(13)
    smooth = np.zeros((len(images), h - 2, w - 2, images.shape[3]), np.float32)
    for dy in range(3):
        for dx in range(3):
            smooth += kernel[dy, dx] * images[:, dy:dy + h - 2, dx:dx + w - 2]
    out[:, 1:-1, 1:-1] = np.round(smooth)
    return out


def posterize(images: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Keep the `bits` high bits (one count per image) of each (rounded) 8-bit value."""
    step = np.power(_F(2), _F(8) - bits.astype(np.float32))[:, None, None, None]
    return np.floor(np.round(images) / step) * step


def solarize(images: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Values >= threshold (one per image) are inverted (255 - v)."""
    return np.where(images >= threshold.astype(np.float32)[:, None, None, None], _F(255) - images, images)


def autocontrast(images: np.ndarray) -> np.ndarray:
    """Each channel stretched linearly so its minimum is 0 and its maximum 255 (flat channels unchanged)."""
    flat = images.reshape(len(images), -1, images.shape[-1])
    lo, hi = flat.min(axis=1)[:, None, None], flat.max(axis=1)[:, None, None]
    scale = np.where(hi > lo, _F(255) / np.maximum(hi - lo, _F(1e-6)), _F(1))
    offset = np.where(hi > lo, lo, _F(0))
    return np.clip((images - offset) * scale, _F(0), _F(255))


def equalize(images: np.ndarray) -> np.ndarray:
    """PIL's ImageOps.equalize per image and channel on the rounded 8-bit values (one bincount for the batch)."""
    n, h, w, c = images.shape
    values = np.clip(np.round(images), 0, 255).astype(np.int64).transpose(0, 3, 1, 2).reshape(n * c, h * w)
    rows = np.arange(n * c)[:, None]
    hist = np.bincount((values + 256 * rows).ravel(), minlength=256 * n * c).reshape(n * c, 256)
    last = hist[rows[:, 0], values.max(axis=1)]  # the count of the highest value present
    step = (h * w - last) // 255
    safe = np.maximum(step, 1)[:, None]
    lut = np.clip((np.cumsum(hist, axis=1) - hist + safe // 2) // safe, 0, 255)
    out = np.where(step[:, None] > 0, np.take_along_axis(lut, values, axis=1), values)
    return out.reshape(n, c, h, w).transpose(0, 2, 3, 1).astype(np.float32)


def apply_op(op: int, images: np.ndarray, magnitudes: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Operation number `op` (an index into OPS) on float32 images [n, h, w, 3] in [0, 255], image i at
    magnitudes[i] in [0, 1] of the operation's range, signed by signs[i] (+-1): float32, as the formulas give it."""
    name = OPS[op]
    size = _F(images.shape[2])
    magnitudes = np.asarray(magnitudes, np.float32)
    m = magnitudes * np.asarray(signs, np.float32)
    zero, one = np.zeros_like(m), np.ones_like(m)
    if name == "identity":
        return images
    if name == "shear_x":
        return centred_affine(images, one, m * _F(MAX_SHEAR), zero, one)
    if name == "shear_y":
        return centred_affine(images, one, zero, m * _F(MAX_SHEAR), one)
    if name == "translate_x":
        return affine(images, np.stack([one, zero, -m * _F(MAX_TRANSLATE) * size, zero, one, zero], axis=1))
    if name == "translate_y":
        return affine(images, np.stack([one, zero, zero, zero, one, -m * _F(MAX_TRANSLATE) * size], axis=1))
    if name == "rotate":
        angle = m * _F(MAX_ROTATE * math.pi / 180)
        c, s = np.cos(angle), np.sin(angle)
        return centred_affine(images, c, -s, s, c)
    factor = _F(1) + m * _F(MAX_ENHANCE)
    if name == "brightness":
        return _blend(np.zeros_like(images), images, factor)
    if name == "color":
        return _blend(np.repeat(_grey(images), 3, axis=-1), images, factor)
    if name == "contrast":
        mean = _grey(np.round(images)).mean(axis=(1, 2, 3), dtype=np.float32)
        return _blend(np.broadcast_to(mean[:, None, None, None], images.shape), images, factor)
    if name == "sharpness":
        return _blend(_sharpness_degenerate(images), images, factor)
    if name == "posterize":
        return posterize(images, _F(8) - np.round(magnitudes * _F(8 - MIN_POSTERIZE_BITS)))
    if name == "solarize":
        return solarize(images, _F(255) * (_F(1) - magnitudes))
    if name == "autocontrast":
        return autocontrast(images)
    if name == "equalize":
        return equalize(images)
    raise ValueError(f"unknown operation {op}")


def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ops, magnitudes, signs) for n images: each op uniform over OPS, magnitude uniform in [0, 1), sign +-1."""
    ops = rng.integers(0, len(OPS), size=n)
    magnitudes = rng.random(n, dtype=np.float32)
    signs = np.where(rng.random(n) < 0.5, np.float32(-1), np.float32(1))
    return ops, magnitudes, signs


def trivial_augment_batch(images: np.ndarray, ops: np.ndarray, magnitudes: np.ndarray, signs: np.ndarray,
                          pool: Executor | None = None) -> np.ndarray:
    """uint8 [B, H, W, 3] -> uint8: image i under operation ops[i] at magnitudes[i] with signs[i], rounded. With a
    thread `pool`, the operations run in parallel (numpy releases the GIL in their loops)."""
    out = images.copy()

    def one(op):
        idx = np.flatnonzero(ops == op)
        result = apply_op(int(op), images[idx].astype(np.float32), magnitudes[idx], signs[idx])
        out[idx] = np.clip(np.round(result), 0, 255).astype(np.uint8)

    todo = [op for op in np.unique(ops) if OPS[op] != "identity"]
    for _ in (pool.map(one, todo) if pool is not None else map(one, todo)):
        pass
    return out
