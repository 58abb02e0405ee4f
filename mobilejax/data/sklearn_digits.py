"""`sklearn_digits`: scikit-learn's 8x8 handwritten digits as a real TFDS dataset (no download needed).

The 1,797 images ship inside the scikit-learn wheel (`sklearn.datasets.load_digits`); `download_and_prepare` writes
them as TFRecords into `data_dir/sklearn_digits/1.0.0/` like any other TFDS dataset. Importing this module registers
the builder, so `tfds.builder("sklearn_digits")` / `tfds.load("sklearn_digits")` work after
`import mobilejax.data.sklearn_digits` (the tf.data pipeline imports it).

Splits: a fixed stratified 80/20 split (seed 0): `train` (1,437 images) and `test` (360 images).
Features: `image` uint8 [8, 8, 1] (grey levels 0..16 scaled to 0..255), `label` ClassLabel "0".."9".
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import py_utils

SPLIT_SEED = 0
TEST_FRACTION = 0.2


def stratified_split(labels: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """Indices (train, test): within every class a seeded permutation, its first round(n * test_fraction) -> test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    return sorted(train), sorted(test)


class SklearnDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits (UCI optdigits test set), 8x8 grey, 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified 80/20 train/test split (seed 0); images scaled 0..16 -> 0..255."}

    # tfds locates a builder's code through `importlib_resources` (a backport not installed on Python >= 3.9) unless
    # the class lives inside tensorflow_datasets; point it at this file directly.
    @py_utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="scikit-learn's 8x8 handwritten digits (sklearn.datasets.load_digits), 1,797 images.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=[str(i) for i in range(10)]),
            }),
            supervised_keys=("image", "label"),
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#optical-recognition-of-handwritten-digits-dataset",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ships with scikit-learn
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        train, test = stratified_split(labels)
        return {
            "train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test),
        }

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            yield int(i), {"image": images[i], "label": int(labels[i])}
