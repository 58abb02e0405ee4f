"""Progressive resizing: train at a smaller image side early in the run, growing to `data.image_size` by a given epoch
(fast.ai's DAWNBench ImageNet entry, FFCV's ResNet configs, EfficientNetV2's progressive learning). The early epochs
cost a fraction of a full-size epoch (the step's work scales with the pixels: ShuffleNetV2 at 24 px trains ~2x as
many images/s as at 32 px on a 2-core CPU) and the last ones, at full size, fit the network to the size it is
evaluated at.

    data.progressive_size    the first side (pixels); 0: off (every step at data.image_size)
    data.progressive_epochs  (start, end): at progressive_size before epoch `start`, at data.image_size from epoch
                             `end` on, linear in between (each epoch's size rounded down to a multiple of
                             progressive_step)
    data.progressive_step    the sizes' granularity in pixels: each distinct size compiles the train step once

The size changes at epoch boundaries only, and is a function of the step, so a resumed run trains each step at the
size it had uninterrupted. The input pipeline is unchanged (it delivers `data.image_size`, augmented as configured);
the train step resizes the batch on the device (`resize`: antialiased bilinear, as a pipeline's resize would), and
evaluation always runs at the evaluation size.
"""
from __future__ import annotations

import jax
import ml_collections

from mobilejax.errors import UsageError


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(data: ml_collections.ConfigDict, num_epochs: float) -> None:
    """Raises UsageError naming the bad value (checked before anything is written)."""
    size, full = data.get("progressive_size", 0), data.image_size
    if not _is_int(size) or not 0 <= size <= full:
        raise UsageError(f"data.progressive_size={size!r} is invalid; allowed: an integer in [1, data.image_size="
                         f"{full}], or 0 (off)")
    if not size:
        return
    epochs = data.progressive_epochs
    ok = (isinstance(epochs, (tuple, list)) and len(epochs) == 2
          and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in epochs)
          and 0 <= epochs[0] <= epochs[1])
    if not ok:
        raise UsageError(f"data.progressive_epochs={epochs!r} is invalid; allowed: (start, end) epochs with "
                         "0 <= start <= end")
    if num_epochs > 0 and epochs[1] > num_epochs:
        raise UsageError(f"data.progressive_epochs={tuple(epochs)!r} ends after the run's {num_epochs:g} epochs; "
                         "allowed: end <= num_epochs (the last epochs train at data.image_size)")
    step = data.progressive_step
    if not _is_int(step) or step < 1:
        raise UsageError(f"data.progressive_step={step!r} is invalid; allowed: an integer >= 1 (pixels)")


def size_at(data: ml_collections.ConfigDict, image_size: int, epoch: int) -> int:
    """The training image side in (0-based, whole) `epoch` for pipeline images of `image_size` pixels."""
    low = data.get("progressive_size", 0)
    if not low:
        return image_size
    start, end = data.progressive_epochs
    if epoch >= end:
        return image_size
    if epoch < start:
        return low
    side = low + (image_size - low) * (epoch - start) / (end - start)
    step = data.progressive_step
    return max(low, min(image_size, int(side) // step * step))


def resize(images: jax.Array, size: int) -> jax.Array:
    """A batch [N, H, W, C] -> [N, size, size, C] (antialiased bilinear); unchanged if it already has that size."""
    n, h, w, c = images.shape
    if (h, w) == (size, size):
        return images
    return jax.image.resize(images, (n, size, size, c), method="linear", antialias=True)
