"""Input pipeline: TFDS / image folders / sklearn_digits -> tf.data -> numpy batches for JAX.

    from mobilejax.data import get_datasets, Datasets, load_image_for_predict
    ds = get_datasets(config.data, batch_size=64, eval_batch_size=128, seed=0)
    for batch in ds.train_batches(start_step):   # infinite, resumable: {"image", "label"}
    for batch in ds.eval_batches():              # one pass, last batch padded: {"image", "label", "mask"}

TensorFlow runs on the CPU only (its GPUs are hidden at import) so it never holds accelerator memory.
Importing this package registers the `sklearn_digits` TFDS builder.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF's devices were already initialised elsewhere; nothing more can be done here
    pass

from mobilejax.data import sklearn_digits  # noqa: E402,F401  (registers the `sklearn_digits` TFDS builder)
from mobilejax.data.pipeline import Datasets, get_datasets, load_image_for_predict  # noqa: E402
from mobilejax.data.preprocess import EVAL_RESIZES, IMAGENET_MEAN, IMAGENET_STD, TRAIN_AUGMENTS  # noqa: E402
from mobilejax.data.sources import find_unreadable  # noqa: E402

__all__ = ["Datasets", "get_datasets", "load_image_for_predict", "find_unreadable", "TRAIN_AUGMENTS", "EVAL_RESIZES",
           "IMAGENET_MEAN", "IMAGENET_STD"]
