"""Input pipelines: TFDS / image folders / sklearn_digits -> numpy batches for JAX.

    from mobilejax.data import get_datasets
    ds = get_datasets(config.data, batch_size=64, eval_batch_size=128, seed=0)
    for batch in ds.train_batches(start_step):   # infinite, resumable: {"image", "label"}
    for batch in ds.eval_batches():              # one pass, last batch padded: {"image", "label", "mask"}

`data.pipeline` picks the pipeline: "tf" (`pipeline.py`, tf.data; TensorFlow runs on the CPU only, its GPUs hidden,
so it never holds accelerator memory) or "memory" (`memory.py`, small images held in memory; no TensorFlow).
TensorFlow is imported only when a name that needs it is first used, so the memory pipeline, the models and the
training loop run where TensorFlow is not installed.
"""
from __future__ import annotations

import importlib

from mobilejax.data.options import EVAL_RESIZES, IMAGENET_MEAN, IMAGENET_STD, TRAIN_AUGMENTS, Options

_LAZY = {"Datasets": "mobilejax.data.pipeline", "find_unreadable": "mobilejax.data.sources",
         "MemoryDatasets": "mobilejax.data.memory"}


def get_datasets(data_config, batch_size: int, eval_batch_size: int, seed: int = 0, train: bool = True,
                 process: tuple[int, int] = (0, 1)):
    """Open config.data's dataset and splits (validating names, splits and options now) with the pipeline that
    data.pipeline names -> `pipeline.Datasets` or `memory.MemoryDatasets` (the same interface).
    `train=False` opens only the evaluation split (the training split is then opened on first use).
    `process=(index, count)`: batches hold this process's share of the global `batch_size` / `eval_batch_size`."""
    if int(batch_size) < 1 or int(eval_batch_size) < 1:
        raise ValueError(f"batch_size={batch_size} and eval_batch_size={eval_batch_size} must be positive")
    options = Options.from_config(data_config)
    if options.pipeline == "memory":
        from mobilejax.data.memory import MemoryDatasets
        return MemoryDatasets(options, batch_size, eval_batch_size, seed, train, process)
    return _tf_pipeline().Datasets(options, batch_size, eval_batch_size, seed, train, process)


def load_image_for_predict(path: str, data_config):
    """An image file -> float32 [image_size, image_size, 3] with the evaluation preprocessing of `data_config`'s
    pipeline (the memory pipeline takes images already at data.image_size, as in training)."""
    options = Options.from_config(data_config)
    if options.pipeline == "memory":
        import os

        from mobilejax.data.memory import decode_images, normalize
        if not os.path.exists(path):
            raise FileNotFoundError(f"image file {path!r} does not exist")
        return normalize(decode_images([path], options.image_size, "the images to predict")[0], options.normalize)
    return _tf_pipeline().load_image_for_predict(path, data_config)


def _tf_pipeline():
    """The tf.data pipeline module, or one line saying TensorFlow is missing and what runs without it."""
    try:
        return importlib.import_module("mobilejax.data.pipeline")
    except ImportError as e:
        raise ValueError(f"data.pipeline='tf' needs TensorFlow and tensorflow-datasets, which are not installed ({e}); "
                         "install them, or use data.pipeline='memory' with an image folder") from None


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mobilejax.data' has no attribute {name!r}")


__all__ = ["get_datasets", "Datasets", "MemoryDatasets", "Options", "load_image_for_predict", "find_unreadable",
           "TRAIN_AUGMENTS", "EVAL_RESIZES", "IMAGENET_MEAN", "IMAGENET_STD"]
