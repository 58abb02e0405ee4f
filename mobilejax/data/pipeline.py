"""tf.data input pipeline: deterministic, resumable training batches and exact, padded evaluation batches.

Training stream (`Datasets.train_batches(start_step)`), for epoch e = start_epoch, start_epoch + 1, ...:
  undecoded split (cached in memory when data.cache) -> shuffle(buffer, seed=f(seed, e)) -> enumerate (position p)
  -> keep the first steps_per_epoch * batch_size -> [first epoch only] skip to the resume offset
  then, across epochs: parallel deterministic decode + augment keyed by (seed, e, p) -> batch(drop_remainder) -> prefetch.
  (With data.alternate_flip the split is enumerated before the shuffle, and image i is mirrored in epoch e iff
  coin_i XOR (e odd), one coin per image keyed by (seed, i): any two consecutive epochs show every image both ways.)
Every epoch contributes exactly steps_per_epoch batches, so step s is batch s % steps_per_epoch of epoch
s // steps_per_epoch, and `train_batches(s)` yields exactly what `train_batches(0)` yields from its s-th batch on.

Multi-process runs (`process=(i, n)`): every process walks the same shuffled stream, and process i decodes and
augments only its 1/n of every global batch (positions i * B/n .. (i + 1) * B/n - 1 of it), so the global batch that
`jax.make_array_from_process_local_data` assembles is exactly the single-process batch, whatever the process count,
and resuming works as above. Evaluation splits each padded global batch the same way: every example is counted
exactly once across processes, and every process runs the same number of evaluation batches.
"""
from __future__ import annotations

import functools
from typing import Iterator

import numpy as np

from mobilejax.data import preprocess
from mobilejax.data.base import DatasetsBase
from mobilejax.data.options import Options
from mobilejax.data.sources import Split, open_source
from mobilejax.data.tensorflow_cpu import tf

_SHUFFLE_STREAM = 0x5348  # separate key streams for the epoch shuffle and the augmentation
_AUGMENT_STREAM = 0x4155
_FLIP_STREAM = 0x464C     # data.alternate_flip: each image's flip in even epochs


def _parallel(o: Options) -> int:
    return tf.data.AUTOTUNE if o.num_parallel_calls == -1 else o.num_parallel_calls


def _eval_map(o: Options):
    def fn(ex):
        image = preprocess.eval_preprocess(ex["image"], image_size=o.eval_size, eval_resize=o.eval_resize,
                                           crop_fraction=o.eval_crop_fraction, normalization=o.normalize)
        return {"image": image, "label": tf.cast(ex["label"], tf.int32), "mask": tf.ones([], tf.float32)}
    return fn


def _stream_key(seed: int, stream: int) -> tf.Tensor:
    return tf.constant([seed, stream], tf.int64)


class Datasets(DatasetsBase):
    """Train/eval input pipelines over one dataset; see `get_datasets`."""

    def __init__(self, options: Options, batch_size: int, eval_batch_size: int, seed: int, train: bool = True,
                 process: tuple[int, int] = (0, 1)):
        super().__init__(options, batch_size, eval_batch_size, seed, process)
        self._source = open_source(options.dataset, options.data_dir, options.cache)
        self.class_names: list[str] = list(self._source.class_names)
        self._eval_splits: dict[str, Split] = {options.eval_split: self._source.load(options.eval_split)}
        self.num_eval_examples: int = self._eval_splits[options.eval_split].num_examples
        if train:  # open and check the training split now (evaluation alone never needs it)
            _ = self.steps_per_epoch

    @functools.cached_property
    def _train(self) -> Split:
        """The training split, opened on first use (evaluation alone never needs it)."""
        return self._source.load(self._o.train_split)

    @property
    def num_train_examples(self) -> int:
        return self._train.num_examples

    @functools.cached_property
    def eval_overlap(self) -> int | None:
        return self._source.overlap(self._o.train_split, self._o.eval_split)

    # ---- training -------------------------------------------------------------------------------------------------
    def train_dataset(self, start_step: int = 0) -> tf.data.Dataset:
        """The infinite training `tf.data.Dataset` starting at global step `start_step`."""
        if int(start_step) < 0:
            raise ValueError(f"start_step={start_step} must be >= 0")
        o, b, spe = self._o, self.batch_size, self.steps_per_epoch
        start_epoch, offset_steps = divmod(int(start_step), spe)
        per_epoch = spe * b
        base = self._train.dataset
        if o.alternate_flip:  # the image's index in its split, before the shuffle: its flip alternates by epoch
            base = base.enumerate().map(lambda i, ex: {**ex, "index": i})
        buffer = max(1, min(o.shuffle_buffer, self.num_train_examples))
        shuffle_key = _stream_key(self.seed, _SHUFFLE_STREAM)
        augment_key = _stream_key(self.seed, _AUGMENT_STREAM)
        flip_key = _stream_key(self.seed, _FLIP_STREAM)

        def epoch(e):
            ds = base
            if buffer > 1:
                epoch_key = tf.random.experimental.stateless_fold_in(shuffle_key, e)
                seed = tf.random.stateless_uniform([], seed=epoch_key, minval=None, maxval=None, dtype=tf.int64)
                ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
            ds = ds.enumerate()
            # `filter` (not `take`) reads the epoch to its end, so the in-memory cache is completed in epoch one.
            ds = ds.filter(lambda p, ex: p < per_epoch)
            ds = ds.skip(tf.where(tf.equal(e, start_epoch), tf.constant(offset_steps * b, tf.int64), 0))
            return ds.map(lambda p, ex: (e, p, ex))

        def augment(e, p, ex):
            key = tf.random.experimental.stateless_fold_in(tf.random.experimental.stateless_fold_in(augment_key, e), p)
            flip = None
            if o.alternate_flip:  # image i is mirrored in epoch e iff coin_i XOR (e odd)
                coin = tf.random.stateless_uniform(
                    [], seed=tf.random.experimental.stateless_fold_in(flip_key, ex["index"])) < 0.5
                flip = tf.math.logical_xor(coin, tf.equal(e % 2, 1))
            image = preprocess.train_preprocess(
                ex["image"], key, image_size=o.image_size, augment=o.train_augment, random_flip=o.random_flip,
                min_crop_area=o.min_crop_area, crop_padding=o.crop_padding, pad_mode=o.pad_mode,
                normalization=o.normalize, flip=flip, rotation=o.random_rotation,
                auto_augment=o.auto_augment)
            return {"image": image, "label": tf.cast(ex["label"], tf.int32)}

        ds = tf.data.Dataset.counter(start_epoch).flat_map(epoch)
        local_b = b // self.process_count
        if self.process_count > 1:  # this process's share of every global batch, chosen before the decode
            ds = ds.filter(lambda e, p, ex: tf.equal((p % b) // local_b, self.process_index))
        ds = ds.map(augment, num_parallel_calls=_parallel(o), deterministic=True)
        ds = ds.batch(local_b, drop_remainder=True)
        return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())

    def train_batches(self, start_step: int = 0) -> Iterator[dict]:
        """Infinite iterator of {"image": float32 [B, H, W, 3], "label": int32 [B]}, from global step `start_step`
        (B = batch_size / process_count: this process's share)."""
        return _iterate(self.train_dataset(start_step), self._source, self._train)

    # ---- evaluation -----------------------------------------------------------------------------------------------
    def _eval_split(self, split: str | None) -> Split:
        split = self._o.eval_split if split is None else split
        if split not in self._eval_splits:
            self._eval_splits[split] = self._source.load(split)
        return self._eval_splits[split]

    def eval_dataset(self, split: str | None = None) -> tf.data.Dataset:
        """One pass over `split` (default data.eval_split) in batches of eval_batch_size, the last padded (mask 0)."""
        e = self.eval_batch_size // self.process_count  # this process's share of a global batch

        def pad(batch):
            n = tf.shape(batch["label"])[0]
            return {k: tf.pad(v, [[0, e - n]] + [[0, 0]] * (len(v.shape) - 1)) for k, v in batch.items()}

        split = self._eval_split(split)
        ds = split.dataset
        if self.process_count > 1:
            g, i = self.eval_batch_size, self.process_index
            ds = ds.enumerate().filter(lambda p, ex: tf.equal((p % g) // e, i)).map(lambda p, ex: ex)
        ds = ds.map(_eval_map(self._o), num_parallel_calls=_parallel(self._o), deterministic=True)
        ds = ds.batch(e).map(pad)
        if self.process_count > 1:  # a process whose share ran out early pads with empty batches (all mask 0)
            size = self._o.eval_size
            empty = {"image": tf.zeros([e, size, size, 3], tf.float32), "label": tf.zeros([e], tf.int32),
                     "mask": tf.zeros([e], tf.float32)}
            ds = ds.concatenate(tf.data.Dataset.from_tensors(empty).repeat()).take(
                -(-split.num_examples // self.eval_batch_size))
        return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())

    def eval_batches(self, split: str | None = None) -> Iterator[dict]:
        """One pass: {"image": float32 [E, H, W, 3], "label": int32 [E], "mask": float32 [E]}; every example of the
        split exactly once, padding examples (label 0, zero image) in the last batch have mask 0."""
        split_obj = self._eval_split(split)
        return _iterate(self.eval_dataset(split), self._source, split_obj)

    def __repr__(self):
        return (f"Datasets({self._o.dataset!r}, classes={self.num_classes}, train={self._o.train_split!r} "
                f"({self.num_train_examples}), eval={self._o.eval_split!r} ({self.num_eval_examples}), "
                f"image_size={self.image_size}, batch={self.batch_size}, steps_per_epoch={self.steps_per_epoch})")


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True
    return options


def _iterate(ds: tf.data.Dataset, source, split: Split) -> Iterator[dict]:
    iterator = ds.as_numpy_iterator()

    def gen():
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as e:
                raise source.describe_error(split, e) from e
            yield batch

    return gen()


def load_image_for_predict(path: str, data_config) -> np.ndarray:
    """An image file -> float32 [S, S, 3] (S: the evaluation size) with the evaluation preprocessing of `data_config`."""
    o = Options.from_config(data_config)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    try:
        image = preprocess.eval_preprocess(tf.io.read_file(path), image_size=o.eval_size, eval_resize=o.eval_resize,
                                           crop_fraction=o.eval_crop_fraction, normalization=o.normalize)
    except tf.errors.OpError as e:
        raise ValueError(f"cannot read image file {path!r}: {e.message.strip().splitlines()[0]}") from None
    return image.numpy().astype(np.float32)
