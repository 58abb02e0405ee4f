"""TensorFlow for the tf.data pipeline, on the CPU only: its GPUs are hidden at import, so it never holds accelerator
memory. Every module of the pipeline imports `tf` from here (`from mobilejax.data.tensorflow_cpu import tf`)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF's devices were already initialised elsewhere; nothing more can be done here
    pass

__all__ = ["tf"]
